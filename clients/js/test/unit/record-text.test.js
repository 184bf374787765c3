import { test } from 'node:test';
import assert from 'node:assert/strict';

import { buildRecord } from '../../src/record.js';
import { encodeRecord, frozenCaller } from '../../src/record-text.js';

const COMMON = { service: 'shop', environment: 'test', service_version: 'v1.2.3', log_type: 'FRONTEND' };

// encodeRecord writes the text JSON.stringify(buildRecord(args)) gives; each makes its own
// event_id, so the comparison leaves it out.
function withoutEventId(text) {
  return text.replace(/"event_id":"[0-9a-f-]{36}"/, '"event_id":"-"');
}

function assertEncodesAsBuilt(args) {
  const expected = JSON.stringify(buildRecord(args));
  const { body, createdAt } = encodeRecord(args);
  assert.equal(withoutEventId(body), withoutEventId(expected));
  const created = JSON.parse(expected).created_at;
  assert.equal(createdAt, typeof created === 'number' ? created : args.now / 1000);
}

/** A small seeded generator, so a test makes the same cases on every run. */
function seeded(start) {
  let seed = start;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  return { random, pick: (list) => list[Math.floor(random() * list.length)] };
}

test('encodeRecord writes the text of the built record, whatever the fields hold', () => {
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  const cyclic = { name: 'loop' };
  cyclic.self = cyclic;
  const withGetter = {
    get broken() {
      throw new Error('no');
    },
    fine: 1,
  };
  const caller = { function_name: 'checkout', file_path: '/app/shop.js', line_no: 7 };
  const cases = [
    {},
    { fields: { order_id: 42, amount: 19.99, currency: 'EUR' }, caller },
    { fields: { user_id: 'u-1', duration_ms: 12.5, function_name: 'mine', line_no: 3 }, caller },
    { fields: { password: 'p', Nested: { 'X-Api-Key': 'k', list: [1, { token: 't' }] } } },
    { fields: { cyclic, big: 12n, nan: NaN, inf: -Infinity, zero: -0, when: new Date(0), error: new TypeError('bad') } },
    { fields: { map: new Map([['a', 1]]), set: new Set([1]), typed: new Uint8Array([1, 2]), fn() {}, gone: undefined } },
    { fields: { metadata: { a: 1, b: 2 }, b: 3 }, requestContext: { metadata: { c: 4, a: 9 } } },
    { fields: { metadata: 'text' }, userContext: { metadata: [1, 2] } },
    { fields: { created_at: 1_600_000_000.5, autoCaller: false } },
    { fields: { created_at: '2024-01-01T00:00:00Z' } },
    { fields: { level: 'DEBUG', message: 'shadow', event_id: 'mine' } },
    { fields: { b: 1, 2: 'two', 10: 'ten' }, requestContext: { 1: 'one', a: 'x', b: 'ctx' }, userContext: { '01': 'lead', 3: 'three' } },
    { fields: { constructor: 'c', toString: 't', ['__proto__']: 'p', hasOwnProperty: 1 } },
    { fields: JSON.parse('{"__proto__": {"a": 1}, "x": 2}') },
    { fields: withGetter },
    { fields: revoked.proxy, requestContext: { trace_id: 't' } },
    { fields: { text: 'quote " backslash \\ newline \n tab \t nul \u0000 sep \u2028 pair \ud83d\ude00 lone \ud800 end' } },
    { message: 'a "quoted" message\n', fields: { emoji: '\u{1F600}' } },
    { level: 'warning', message: { a: 1 } },
    { level: 42, message: 42 },
    { level: 'no"tice', message: new Error('x') },
    { level: null, message: undefined },
    {
      fields: { trace_id: 'from-call' },
      requestContext: { trace_id: 'from-request', path: '/orders', method: 'POST', ip: '10.0.0.1' },
      userContext: { user_id: 'u-9', path: '/ignored', session_id: 's-1', service: 'ctx-service', ip: 'again' },
      caller,
    },
    { fields: { service: 'mine', log_type: null }, common: COMMON },
    { common: { service: 's', environment: undefined, service_version: null, log_type: () => 'x' } },
    { common: { service: { nested: true }, environment: 5, service_version: NaN, log_type: 'T' } },
  ];
  for (const each of cases) {
    assertEncodesAsBuilt({ level: 'INFO', message: 'm', common: COMMON, now: 1_700_000_000_123, ...each });
  }
  for (const now of [0, 1_700_000_000_123.5, NaN, Infinity]) assertEncodesAsBuilt({ level: 'INFO', message: 'm', now });
});

test('encodeRecord copies a frozen caller\'s text, and the fields still win over it', () => {
  const caller = frozenCaller('checkout', '/app/"shop".js', 7);
  assert.ok(Object.isFrozen(caller));
  assert.deepEqual({ function_name: 'checkout', file_path: '/app/"shop".js', line_no: 7 }, { ...caller });
  for (const fields of [{}, { function_name: 'mine' }, { file_path: null }, { line_no: 1 }, { a: 1, line_no: undefined }]) {
    for (const common of [COMMON, null]) {
      assertEncodesAsBuilt({ level: 'ERROR', message: 'm', fields, caller, common, now: 1_700_000_000_000 });
      assertEncodesAsBuilt({ level: 'ERROR', message: 'm', fields, caller, common, requestContext: { line_no: 9 }, now: 1 });
    }
  }
  assertEncodesAsBuilt({ level: 'INFO', message: 'm', caller: frozenCaller('<anonymous>', null, null), now: 5 });
});

test('encodeRecord writes the text of the built record for random fields', () => {
  const { random, pick } = seeded(12345);
  const keys = ['a', 'b', 'user_id', 'trace_id', 'path', 'line_no', 'metadata', 'token', 'Password', '0', '7', 'created_at',
    'service', 'level', 'function_name', 'duration_ms', 'x-api-key', 'valueOf', 'ip', 'é'];
  const values = [0, -1, 2.5, 1e21, NaN, true, false, null, undefined, '', 'text', 'with "quote"', '\ud83d', 7n,
    [1, undefined], { k: 1 }, { token: 'x' }, new Date(1), () => 1];
  const object = (depth) => {
    const out = {};
    const n = Math.floor(random() * 5);
    for (let i = 0; i < n; i += 1) out[pick(keys)] = depth > 0 && random() < 0.2 ? object(depth - 1) : pick(values);
    return out;
  };
  for (let i = 0; i < 500; i += 1) {
    assertEncodesAsBuilt({
      level: pick(['INFO', 'warn', 'x']),
      message: pick(['m', 'a\nb', 3]),
      fields: random() < 0.9 ? object(2) : null,
      caller: random() < 0.5 ? frozenCaller(pick(['f', 'g']), pick(['/a.js', null]), pick([1, null])) : null,
      requestContext: random() < 0.5 ? object(1) : undefined,
      userContext: random() < 0.5 ? object(1) : null,
      common: random() < 0.8 ? COMMON : object(0),
      now: 1_700_000_000_000 + i,
    });
  }
});

test('encodeRecord writes the built record\'s text for repeated calls from one call site', () => {
  // The second call of a shape makes the site's layout and the later ones use it; every
  // call must still give the text of the built record, whatever its values.
  const { random, pick } = seeded(777);
  const values = [0, -0, -1, 2.5, 1e21, NaN, Infinity, true, false, null, undefined, '', 'text', 'with "quote"',
    'new\nline', '\ud83d', 'é', 7n, { k: 1 }, [1]];
  const shapes = [[], ['order_id', 'amount', 'currency'], ['a'], ['b', 'a'], ['line_no', 'x'], ['token'],
    ['é', 'ok'], ['12', 'a'], ['metadata'], ['trace_id'], ['constructor']];
  // A site per shape: a site whose calls cannot use a layout (a redacted or column field)
  // keeps none, so each shape gets sites of its own.
  const sites = shapes.map((_, k) => [
    frozenCaller('checkout', '/app/shop.js', 7 + k),
    frozenCaller('<anonymous>', null, null),
    frozenCaller('quoted', '/app/"x".js', 100 + k),
  ]);
  const commons = [COMMON, { ...COMMON, service: 'other' }, null];
  for (let i = 0; i < 3000; i += 1) {
    const k = Math.floor(random() * shapes.length);
    const shape = shapes[k];
    const fields = {};
    for (const key of shape) fields[key] = random() < 0.9 ? pick(values.slice(0, 16)) : pick(values);
    assertEncodesAsBuilt({
      level: random() < 0.9 ? 'INFO' : pick(['warn', 'ERROR', 7]),
      message: random() < 0.9 ? 'Order paid' : pick(['other', 'a "b"', 'line\n']),
      fields,
      caller: pick(sites[k]),
      common: random() < 0.95 ? commons[0] : pick(commons),
      now: random() < 0.98 ? 1_700_000_000_000 + i : pick([0, 1.5, 1_700_000_000_000.25]),
    });
  }
  // A common object changed between calls, and a getter that throws once the layout is made.
  const common = { ...COMMON };
  const caller = frozenCaller('site', '/app/site.js', 3);
  for (let i = 0; i < 4; i += 1) assertEncodesAsBuilt({ level: 'INFO', message: 'm', fields: { a: i }, caller, common, now: 10 + i });
  common.service = 'renamed';
  assertEncodesAsBuilt({ level: 'INFO', message: 'm', fields: { a: 1 }, caller, common, now: 20 });
  let reads = 0;
  const flaky = {
    get a() {
      reads += 1;
      if (reads > 6) throw new Error('gone');
      return 'same';
    },
  };
  for (let i = 0; i < 5; i += 1) assertEncodesAsBuilt({ level: 'INFO', message: 'm', fields: flaky, caller, common, now: 30 + i });
});
