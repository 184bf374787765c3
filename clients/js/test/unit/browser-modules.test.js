// The browser client's environment-neutral parts, under Node: contexts, stack parsing,
// options, the in-memory queue and what pagehide sends. The IndexedDB queue and the
// sender run in Chromium: tests/ui/test_js_client.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { parseFrame, parseStack } from '../../src/browser-caller.js';
import * as context from '../../src/browser-context.js';
import { DEFAULTS, resolveSettings } from '../../src/browser-options.js';
import { entriesToSendBeforeLeaving } from '../../src/browser-page.js';
import { DEAD_LETTER_CAP, MemoryQueue, utf8Length, withinBytes } from '../../src/browser-queue.js';
import { KEEPALIVE_BYTES } from '../../src/browser-sender.js';

test('runWithContext shows the context while fn runs and returns what fn returns', () => {
  const seen = context.runWithContext({ path: '/a' }, () => context.getRequestContext());
  assert.deepEqual({ path: '/a' }, seen);
  assert.equal(undefined, context.getRequestContext());
  assert.equal(42, context.runWithContext({}, () => 42));
});

test('runWithContext restores the outer context when fn throws', () => {
  context.runWithContext({ path: '/outer' }, () => {
    assert.throws(() => context.runWithContext({ path: '/inner' }, () => {
      throw new Error('x');
    }));
    assert.deepEqual({ path: '/outer' }, context.getRequestContext());
  });
});

test('runWithUserContext merges over the outer user context, inner keys winning', () => {
  context.setUserContext({ user_id: 'u-1', session_id: 's-1' });
  try {
    const inner = context.runWithUserContext({ session_id: 's-2', trace_id: 't' }, () => context.getUserContext());
    assert.deepEqual({ user_id: 'u-1', session_id: 's-2', trace_id: 't' }, inner);
    assert.deepEqual({ user_id: 'u-1', session_id: 's-1' }, context.getUserContext());
  } finally {
    context.clearUserContext();
  }
  assert.equal(undefined, context.getUserContext());
});

test('setUserContext inside a run replaces that run\'s context only', () => {
  context.setUserContext({ user_id: 'page' });
  try {
    context.runWithUserContext({ user_id: 'run' }, () => {
      context.setUserContext({ user_id: 'changed' });
      assert.deepEqual({ user_id: 'changed' }, context.getUserContext());
    });
    assert.deepEqual({ user_id: 'page' }, context.getUserContext());
  } finally {
    context.clearUserContext();
  }
});

test('parseFrame reads V8 and Gecko/WebKit stack lines', () => {
  assert.deepEqual(
    { function_name: 'Cart.pay', file_path: 'https://shop.example/app.js', line_no: 12 },
    parseFrame('    at async Cart.pay (https://shop.example/app.js:12:7)'),
  );
  assert.deepEqual(
    { function_name: '<anonymous>', file_path: 'https://shop.example/app.js', line_no: 3 },
    parseFrame('    at https://shop.example/app.js:3:1'),
  );
  assert.deepEqual(
    { function_name: 'pay', file_path: 'https://shop.example/app.js', line_no: 12 },
    parseFrame('pay@https://shop.example/app.js:12:7'),
  );
  assert.equal(null, parseFrame('TypeError: x is undefined'));
});

test('parseStack skips the message line', () => {
  const frames = parseStack('Error: boom\n    at a (http://h/x.js:1:2)\n    at b (http://h/y.js:3:4)');
  assert.deepEqual(['a', 'b'], frames.map((f) => f.function_name));
});

test('resolveSettings fills the defaults and strips the trailing slash', () => {
  const s = resolveSettings('http://127.0.0.1:8000/', { service: 'web' });
  assert.equal('http://127.0.0.1:8000', s.serverUrl);
  assert.equal('web', s.service);
  assert.equal(DEFAULTS.logType, s.logType);
  assert.equal('log-collector-durable:http://127.0.0.1:8000', s.queueName);
});

test('resolveSettings names the invalid option', () => {
  assert.throws(() => resolveSettings('ftp://x', {}), /serverUrl/);
  assert.throws(() => resolveSettings(null, { batchSize: 0 }), /batchSize/);
  assert.throws(() => resolveSettings(null, { maxSpoolBytes: 10 }), /maxSpoolBytes/);
  assert.throws(() => resolveSettings(null, { flushInterval: 'soon' }), /flushInterval/);
});

test('utf8Length counts UTF-8 bytes', () => {
  for (const text of ['', 'abc', 'é', '中文', '💥', 'a\ud800b', `x${'ü'.repeat(100)}`]) {
    assert.equal(Buffer.byteLength(text, 'utf8'), utf8Length(text), JSON.stringify(text));
  }
});

test('withinBytes keeps rows up to the limit, and always the first', () => {
  const rows = [1, 2, 3].map((id) => ({ id, body: 'x', size: 10 }));
  assert.deepEqual([1, 2], withinBytes(rows, 22).map((r) => r.id));
  assert.deepEqual([1], withinBytes(rows, 1).map((r) => r.id));
});

test('MemoryQueue reads oldest first, removes by id and drops the oldest over its cap', async () => {
  const queue = new MemoryQueue(25);
  const { ids } = await queue.append([{ body: 'a', size: 10 }, { body: 'b', size: 10 }]);
  assert.deepEqual([1, 2], ids);
  const { dropped } = await queue.append([{ body: 'c', size: 10 }]);
  assert.equal(1, dropped);
  assert.deepEqual(['b', 'c'], (await queue.read(10, 1000)).map((r) => r.body));
  await queue.remove([2]);
  assert.deepEqual(['c'], (await queue.read(10, 1000)).map((r) => r.body));
  assert.equal(0, await queue.pending(2));
  assert.equal(1, await queue.pending());
  assert.deepEqual({ bytes: 10, dropped_spool_full: 1, dead_lettered: 0 }, await queue.counters());
});

test('MemoryQueue dead-letters with the reason and keeps only the newest', async () => {
  const queue = new MemoryQueue(1_000_000);
  const entries = Array.from({ length: DEAD_LETTER_CAP + 5 }, (_, i) => ({ body: `r${i}`, size: 1 }));
  await queue.append(entries);
  const rows = await queue.read(1000, 1_000_000);
  await queue.deadLetter(rows.map((row) => ({ row, reason: 'bad' })));
  const dead = await queue.deadLetters();
  assert.equal(DEAD_LETTER_CAP, dead.length);
  assert.equal(`r${DEAD_LETTER_CAP + 4}`, dead.at(-1).body);
  assert.equal(0, await queue.pending());
  assert.equal(DEAD_LETTER_CAP + 5, (await queue.counters()).dead_lettered);
});

test('pagehide sends records not yet in IndexedDB first, within the keepalive budget', () => {
  const durable = { durable: true };
  const entry = (body, queue, urgentSent = false) => ({ body, size: 1000, queue, urgentSent });
  const recent = [
    entry('old-written', durable),
    entry('already-sent', durable, true),
    entry('unwritten', null),
    ...Array.from({ length: 100 }, (_, i) => entry(`more ${i}`, durable)),
  ];
  const batch = entriesToSendBeforeLeaving(recent);
  assert.deepEqual(['unwritten', 'old-written'], batch.slice(0, 2).map((e) => e.body));
  assert.ok(!batch.some((e) => e.body === 'already-sent'));
  assert.ok(batch.reduce((sum, e) => sum + e.size + 1, 0) <= KEEPALIVE_BYTES);
  assert.ok(batch.length < recent.length);
});

test('both clients have the context helpers as static methods, the context modules\' own functions', async () => {
  const { BrowserLogClient } = await import('../../src/browser-client.js');
  const { WorkerThreadsLogClient } = await import('../../src/node-client.js');
  const nodeContext = await import('../../src/context.js');
  const { CONTEXT_HELPERS } = await import('../../src/context-helpers.js');
  for (const [Client, module] of [[BrowserLogClient, context], [WorkerThreadsLogClient, nodeContext]]) {
    assert.deepEqual(Object.keys(Client), [], 'not enumerable, as a class body defines them');
    for (const name of CONTEXT_HELPERS) assert.equal(Client[name], module[name], `${Client.name}.${name}`);
  }
  assert.deepEqual({ path: '/b' }, BrowserLogClient.runWithContext({ path: '/b' }, () => BrowserLogClient.getRequestContext()));
});
