import { test } from 'node:test';
import assert from 'node:assert/strict';

import { LEVELS, buildRecord, errorFields, normalizeLevel, redact, uuidv7 } from '../../src/record.js';
import { encodeRecord } from '../../src/record-text.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const COMMON = { service: 'shop', environment: 'test', service_version: 'v1.2.3', log_type: 'FRONTEND' };

test('LEVELS lists the six levels, lowest first', () => {
  assert.deepEqual(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'], [...LEVELS]);
});

test('normalizeLevel reads any case and the aliases WARNING and CRITICAL', () => {
  assert.equal('WARN', normalizeLevel('warning'));
  assert.equal('WARN', normalizeLevel('WARNING'));
  assert.equal('FATAL', normalizeLevel('critical'));
  assert.equal('DEBUG', normalizeLevel(' debug '));
  assert.equal('ERROR', normalizeLevel('ERROR'));
});

test('normalizeLevel gives an unknown level upper-cased and no level INFO', () => {
  assert.equal('NOTICE', normalizeLevel('notice'));
  assert.equal('INFO', normalizeLevel(undefined));
  assert.equal('42', normalizeLevel(42));
});

test('uuidv7 ids are version 7, variant 10, and carry the millisecond timestamp', () => {
  const ms = Date.UTC(2030, 0, 2, 3, 4, 5, 678);
  const id = uuidv7(ms);
  assert.match(id, UUID_V7);
  assert.equal(ms, parseInt(id.replaceAll('-', '').slice(0, 12), 16));
});

test('uuidv7 ids made in one millisecond sort in the order they were made', () => {
  const ms = Date.now() + 10_000;
  const ids = Array.from({ length: 5000 }, () => uuidv7(ms));
  assert.deepEqual([...ids].sort(), ids);
  assert.equal(ids.length, new Set(ids).size);
});

test('uuidv7 stays ordered when the clock steps back', () => {
  const later = uuidv7(Date.now() + 20_000);
  const earlier = uuidv7(Date.now());
  assert.ok(earlier > later, `${earlier} should sort after ${later}`);
});

test('redact replaces sensitive keys at any depth, matching case and dashes, in a copy', () => {
  const original = {
    user: 'ann',
    Password: 'p',
    nested: { 'X-Api-Key': 'k', list: [{ access_token: 't', keep: 1 }] },
    token_count: 3,
  };
  const before = structuredClone(original);
  const copy = redact(original);
  assert.deepEqual(
    {
      user: 'ann',
      Password: '[REDACTED]',
      nested: { 'X-Api-Key': '[REDACTED]', list: [{ access_token: '[REDACTED]', keep: 1 }] },
      token_count: 3,
    },
    copy,
  );
  assert.deepEqual(before, original);
});

test('redact makes values JSON can hold: cycles, BigInt, NaN, Date, Error, Map, Set', () => {
  const cyclic = { name: 'loop' };
  cyclic.self = cyclic;
  const value = {
    cyclic,
    big: 12345678901234567890n,
    nan: NaN,
    when: new Date(Date.UTC(2024, 0, 1)),
    error: new TypeError('bad'),
    map: new Map([['a', 1]]),
    set: new Set([1, 2]),
    gone: undefined,
    fn() {},
    list: [undefined, 1],
  };
  assert.deepEqual(
    {
      cyclic: { name: 'loop', self: '<circular>' },
      big: '12345678901234567890',
      nan: null,
      when: '2024-01-01T00:00:00.000Z',
      error: 'TypeError: bad',
      map: { a: 1 },
      set: [1, 2],
      list: [null, 1],
    },
    redact(value),
  );
});

test('redact keeps a value that appears twice without a cycle', () => {
  const shared = { a: 1 };
  assert.deepEqual({ x: { a: 1 }, y: { a: 1 } }, redact({ x: shared, y: shared }));
});

test('redact survives a getter that throws', () => {
  const value = {
    get broken() {
      throw new Error('no');
    },
  };
  assert.deepEqual({ value: { broken: '<unserializable: Error: no>' } }, redact({ value }));
});

test('buildRecord makes the wire record: columns at the top, other fields under metadata', () => {
  const record = buildRecord({
    level: 'warning',
    message: 'paid',
    fields: { order_id: 42, user_id: 'u-1', duration_ms: 12.5 },
    common: COMMON,
    caller: { function_name: 'checkout', file_path: '/app/shop.js', line_no: 7 },
    now: 1_700_000_000_123,
  });
  const { event_id: eventId, ...rest } = record;
  assert.match(eventId, UUID_V7);
  assert.deepEqual(
    {
      level: 'WARN',
      message: 'paid',
      created_at: 1_700_000_000.123,
      user_id: 'u-1',
      duration_ms: 12.5,
      function_name: 'checkout',
      file_path: '/app/shop.js',
      service: 'shop',
      environment: 'test',
      service_version: 'v1.2.3',
      log_type: 'FRONTEND',
      metadata: { order_id: 42, line_no: 7 },
    },
    rest,
  );
});

test('buildRecord keeps falsy values and lets them win over the contexts', () => {
  const record = buildRecord({
    level: 'INFO',
    message: 'm',
    fields: { user_id: null, count: 0, ok: false, note: '', path: '' },
    requestContext: { user_id: 'ctx', path: '/x', count: 9 },
  });
  assert.equal(null, record.user_id);
  assert.equal('', record.path);
  assert.deepEqual({ count: 0, ok: false, note: '' }, record.metadata);
});

test('buildRecord fills from the request context, then the user context, then common', () => {
  const record = buildRecord({
    level: 'INFO',
    message: 'm',
    fields: { trace_id: 'from-call' },
    requestContext: { trace_id: 'from-request', path: '/orders', method: 'POST', ip: '10.0.0.1' },
    userContext: { user_id: 'u-9', path: '/ignored', session_id: 's-1', service: 'ctx-service' },
    common: COMMON,
  });
  assert.equal('from-call', record.trace_id);
  assert.equal('/orders', record.path);
  assert.equal('POST', record.method);
  assert.equal('u-9', record.user_id);
  assert.equal('s-1', record.session_id);
  assert.equal('ctx-service', record.service);
  assert.equal('test', record.environment);
  assert.deepEqual({ ip: '10.0.0.1' }, record.metadata);
});

test('buildRecord never changes its inputs', () => {
  const fields = { password: 'p', nested: { token: 't' }, metadata: { a: 1 }, autoCaller: false };
  const context = { cookie: 'c' };
  const before = structuredClone({ fields, context });
  buildRecord({ level: 'INFO', message: 'm', fields, requestContext: context });
  assert.deepEqual(before, { fields, context });
});

test('buildRecord redacts the fields and the contexts', () => {
  const record = buildRecord({
    level: 'INFO',
    message: 'login',
    fields: { password: 'hunter2', form: { user: 'ann', Secret: 's' } },
    userContext: { authorization: 'Bearer x' },
  });
  assert.deepEqual(
    { password: '[REDACTED]', form: { user: 'ann', Secret: '[REDACTED]' }, authorization: '[REDACTED]' },
    record.metadata,
  );
});

test('buildRecord keeps fields named level, message or event_id in metadata', () => {
  const record = buildRecord({
    level: 'ERROR',
    message: 'real',
    fields: { level: 'DEBUG', message: 'shadow', event_id: 'mine' },
  });
  assert.equal('ERROR', record.level);
  assert.equal('real', record.message);
  assert.match(record.event_id, UUID_V7);
  assert.deepEqual({ level: 'DEBUG', message: 'shadow', event_id: 'mine' }, record.metadata);
});

test('buildRecord merges an explicit metadata object, top-level fields winning', () => {
  const record = buildRecord({
    level: 'INFO',
    message: 'm',
    fields: { metadata: { a: 1, b: 2 }, b: 3 },
  });
  assert.deepEqual({ a: 1, b: 3 }, record.metadata);
});

test('buildRecord takes created_at from the fields and leaves out autoCaller', () => {
  const record = buildRecord({
    level: 'INFO',
    message: 'm',
    fields: { created_at: 1_600_000_000.5, autoCaller: false },
    now: 1_700_000_000_000,
  });
  assert.equal(1_600_000_000.5, record.created_at);
  assert.equal(undefined, record.metadata);
});

test('buildRecord gives a message that is no string a text form', () => {
  assert.equal('{"a":1}', buildRecord({ level: 'INFO', message: { a: 1 } }).message);
  assert.equal('42', buildRecord({ level: 'INFO', message: 42 }).message);
  assert.equal('', buildRecord({ level: 'INFO', message: undefined }).message);
  assert.equal('Error: x', buildRecord({ level: 'INFO', message: new Error('x') }).message);
});

test('buildRecord makes a record JSON.stringify can encode whatever the fields hold', () => {
  const cyclic = {};
  cyclic.me = cyclic;
  const record = buildRecord({ level: 'INFO', message: 'm', fields: { cyclic, n: 1n } });
  assert.deepEqual({ cyclic: { me: '<circular>' }, n: '1' }, JSON.parse(JSON.stringify(record)).metadata);
});

test('errorFields gives the stack and the type of an Error', () => {
  const error = new RangeError('too far');
  const { stack_trace: stack, error_type: type } = errorFields(error);
  assert.equal('RangeError', type);
  assert.ok(stack.startsWith('RangeError: too far\n'), stack);
  assert.match(stack, /record\.test\.js/);
});

test('errorFields adds the message line when the stack lacks it, and the causes', () => {
  const inner = new Error('disk full');
  const error = new Error('save failed', { cause: inner });
  error.stack = '    at save (app.js:1:1)';
  const { stack_trace: stack } = errorFields(error);
  assert.ok(stack.startsWith('Error: save failed\n    at save (app.js:1:1)\nCaused by: Error: disk full'), stack);
});

test('errorFields reads values that are no Error', () => {
  assert.deepEqual({ stack_trace: 'oops', error_type: 'string' }, errorFields('oops'));
  assert.deepEqual({ stack_trace: '{"code":7}', error_type: 'Object' }, errorFields({ code: 7 }));
  assert.deepEqual({ stack_trace: null, error_type: null }, errorFields(undefined));
});

test('fields named like Object.prototype members are kept, __proto__ too', () => {
  const fields = JSON.parse('{"constructor": "c", "toString": "t", "hasOwnProperty": 1, "__proto__": {"a": 1}, '
    + '"nested": {"__proto__": {"b": 2}, "valueOf": 3}}');
  const text = JSON.stringify(buildRecord({ level: 'INFO', message: 'm', fields, now: 1 }));
  const metadata = JSON.parse(text).metadata;
  assert.deepEqual(Object.keys(metadata), ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'nested']);
  assert.equal(metadata.constructor, 'c');
  assert.equal(metadata.toString, 't');
  assert.deepEqual(JSON.parse(JSON.stringify(metadata.__proto__)), { a: 1 });
  assert.ok(text.includes('"nested":{"__proto__":{"b":2},"valueOf":3}'));
  const { body } = encodeRecord({ level: 'INFO', message: 'm', fields, now: 1 });
  assert.equal(body.replace(/"event_id":"[^"]+"/, ''), text.replace(/"event_id":"[^"]+"/, ''));
});
