/**
 * The client's API against a real `log-collector serve`: every method's record arrives
 * with its fields, contexts, caller and common fields.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogClient, WorkerThreadsLogClient } from '../../src/index.js';
import { useServer, tempDir } from './helpers/server.js';
import { FaultProxy } from './helpers/proxy.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const suite = useServer();
const dirs = suite.dirs;

function makeClient(service, options = {}, url = suite.server.url) {
  const spoolDir = tempDir('lc-spool-');
  dirs.push(spoolDir);
  return createLogClient(url, {
    service, environment: 'test', serviceVersion: 'v1.2.3', flushInterval: 50, spoolDir, ...options,
  });
}

async function delivered(client) {
  assert.equal(await client.flush(30_000), true, 'flush() resolves true once acknowledged');
}

test('each level method stores a record with its level, message and fields', async () => {
  const client = makeClient('api-levels');
  function checkout() {
    client.trace('t', { n: 1 });
    client.debug('d', { n: 2 });
    client.info('i', { n: 3 });
    client.warn('w', { n: 4 });
    client.error('e', { n: 5 });
    client.fatal('f', { n: 6 });
    client.log('warning', 'aliased', { n: 7 });
    client.log('critical', 'aliased too', { n: 8 });
  }
  checkout();
  await delivered(client);
  const rows = suite.server.rowsOf('api-levels');
  assert.deepEqual(
    rows.map((row) => [row.level, row.message, row.metadata.n]),
    [
      ['TRACE', 't', 1], ['DEBUG', 'd', 2], ['INFO', 'i', 3], ['WARN', 'w', 4], ['ERROR', 'e', 5],
      ['FATAL', 'f', 6], ['WARN', 'aliased', 7], ['FATAL', 'aliased too', 8],
    ],
  );
  for (const row of rows) {
    assert.equal(row.function_name, 'checkout');
    assert.equal(row.file_path, THIS_FILE);
    assert.equal(row.service, 'api-levels');
    assert.equal(row.environment, 'test');
    assert.equal(row.service_version, 'v1.2.3');
    assert.equal(row.log_type, 'BACKEND');
    assert.match(row.event_id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
  await client.close();
});

test('falsy values are kept, columns go to columns, and the caller\'s object is never changed', async () => {
  const client = makeClient('api-fields');
  const fields = { zero: 0, no: false, empty: '', nothing: null, user_id: 'u-1', action_type: 'pay', nested: { a: [1, 2] } };
  const copy = structuredClone(fields);
  client.info('fields', fields);
  assert.deepEqual(fields, copy);
  await delivered(client);
  const [row] = suite.server.rowsOf('api-fields');
  assert.equal(row.user_id, 'u-1');
  assert.equal(row.action_type, 'pay');
  assert.equal(row.metadata.zero, 0);
  assert.equal(row.metadata.no, false);
  assert.equal(row.metadata.empty, '');
  assert.equal(row.metadata.nothing, null);
  assert.deepEqual(row.metadata.nested, { a: [1, 2] });
  await client.close();
});

test('sensitive keys are redacted before the record reaches the spool', async () => {
  const client = makeClient('api-redact');
  client.info('login', { password: 'hunter2', profile: { api_key: 'k', name: 'ann' } });
  await delivered(client);
  const [row] = suite.server.rowsOf('api-redact');
  assert.equal(row.metadata.password, '[REDACTED]');
  assert.deepEqual(row.metadata.profile, { api_key: '[REDACTED]', name: 'ann' });
  await client.close();
});

test('autoCaller: false leaves the caller out, and an explicit function_name wins', async () => {
  const client = makeClient('api-caller');
  client.info('no caller', { autoCaller: false });
  client.info('explicit', { function_name: 'chosen', file_path: '/somewhere.js' });
  await delivered(client);
  const [none, explicit] = suite.server.rowsOf('api-caller');
  assert.equal(none.function_name, null);
  assert.equal(none.file_path, null);
  assert.equal(explicit.function_name, 'chosen');
  assert.equal(explicit.file_path, '/somewhere.js');
  await client.close();
});

test('endTimer logs duration_ms since startTimer', async () => {
  const client = makeClient('api-timer');
  const started = client.startTimer();
  await new Promise((resolve) => setTimeout(resolve, 20));
  client.endTimer(started, 'INFO', 'timed', { step: 'a' });
  await delivered(client);
  const [row] = suite.server.rowsOf('api-timer');
  assert.equal(row.message, 'timed');
  assert.ok(row.duration_ms >= 15, `duration_ms ${row.duration_ms}`);
  assert.equal(row.metadata.step, 'a');
  await client.close();
});

test('measure times sync and async functions and logs a failure with its stack', async () => {
  const client = makeClient('api-measure');
  assert.equal(client.measure(function addUp() { return 1 + 1; }), 2);
  assert.equal(await client.measure(async function fetchThing() { return 'x'; }, 'fetched'), 'x');
  assert.throws(() => client.measure(function explode() { throw new RangeError('no'); }), RangeError);
  await assert.rejects(client.measure(async function reject() { throw new TypeError('async no'); }), TypeError);
  await delivered(client);
  const rows = suite.server.rowsOf('api-measure');
  assert.deepEqual(rows.map((row) => [row.level, row.message, row.function_name, row.error_type]), [
    ['INFO', 'addUp completed', 'addUp', null],
    ['INFO', 'fetched', 'fetchThing', null],
    ['ERROR', 'explode failed', 'explode', 'RangeError'],
    ['ERROR', 'reject failed', 'reject', 'TypeError'],
  ]);
  for (const row of rows) {
    assert.equal(typeof row.duration_ms, 'number');
    assert.equal(row.file_path, THIS_FILE);
  }
  assert.match(rows[2].stack_trace, /RangeError: no/);
  assert.match(rows[3].stack_trace, /TypeError: async no/);
  await client.close();
});

test('errorWithTrace stores the stack trace and error type', async () => {
  const client = makeClient('api-trace');
  function handler() {
    try {
      JSON.parse('{');
    } catch (error) {
      client.errorWithTrace('parse failed', error, { input: '{' });
    }
    client.errorWithTrace('no error given');
  }
  handler();
  await delivered(client);
  const [withError, without] = suite.server.rowsOf('api-trace');
  assert.equal(withError.level, 'ERROR');
  assert.equal(withError.error_type, 'SyntaxError');
  assert.match(withError.stack_trace, /SyntaxError/);
  assert.equal(withError.function_name, 'handler');
  assert.equal(withError.metadata.input, '{');
  assert.match(without.stack_trace, /handler/);
  assert.doesNotMatch(without.stack_trace, /node-client\.js/);
  await client.close();
});

test('request and user contexts fill the record; setUserContext is visible at once', async () => {
  const client = makeClient('api-context');
  const warnings = [];
  const onWarning = (warning) => warnings.push(warning);
  process.on('warning', onWarning);
  const originalWarn = console.warn;
  console.warn = (...args) => warnings.push(args);
  try {
    await WorkerThreadsLogClient.runWithContext({ path: '/pay', method: 'POST', trace_id: 't-1' }, async () => {
      await WorkerThreadsLogClient.runWithUserContext({ user_id: 'outer', tenant: 'acme' }, async () => {
        WorkerThreadsLogClient.runWithUserContext({ user_id: 'inner' }, () => {
          assert.deepEqual(WorkerThreadsLogClient.getUserContext(), { user_id: 'inner', tenant: 'acme' });
          client.info('inner');
        });
        await new Promise((resolve) => setTimeout(resolve, 5));
        client.info('outer after await');
        client.info('explicit wins', { user_id: 'explicit' });
      });
    });
    WorkerThreadsLogClient.setUserContext({ user_id: 'set', session_id: 's-9' });
    assert.deepEqual(WorkerThreadsLogClient.getUserContext(), { user_id: 'set', session_id: 's-9' });
    client.info('after set');
    WorkerThreadsLogClient.clearUserContext();
    assert.equal(WorkerThreadsLogClient.getUserContext(), undefined);
    client.info('after clear');
  } finally {
    process.off('warning', onWarning);
    console.warn = originalWarn;
  }
  assert.deepEqual(warnings, []);
  await delivered(client);
  const rows = suite.server.rowsOf('api-context');
  const pick = (row) => [row.message, row.path, row.method, row.trace_id, row.user_id, row.session_id, row.metadata?.tenant ?? null];
  assert.deepEqual(rows.map(pick), [
    ['inner', '/pay', 'POST', 't-1', 'inner', null, 'acme'],
    ['outer after await', '/pay', 'POST', 't-1', 'outer', null, 'acme'],
    ['explicit wins', '/pay', 'POST', 't-1', 'explicit', null, 'acme'],
    ['after set', null, null, null, 'set', 's-9', null],
    ['after clear', null, null, null, null, null, null],
  ]);
  await client.close();
});

test('a batch of 100 or more records is sent gzip\'d', async () => {
  const proxy = await new FaultProxy(suite.server.url).start();
  try {
    const client = makeClient('api-gzip', { batchSize: 150, flushInterval: 60_000 }, proxy.url);
    for (let i = 0; i < 150; i += 1) client.info('many', { i });
    client.info('alone later');
    await delivered(client);
    const big = proxy.requests.find((request) => request.count >= 100);
    assert.ok(big, 'a request of at least 100 records');
    assert.equal(big.headers['content-encoding'], 'gzip');
    const small = proxy.requests.find((request) => request.count === 1);
    assert.equal(small.headers['content-encoding'], undefined);
    assert.equal(suite.server.rowsOf('api-gzip').length, 151);
    await client.close();
  } finally {
    await proxy.stop();
  }
});

test('the spool file is private (0600) and removed when the client closes empty', async () => {
  const client = makeClient('api-spool');
  client.info('one');
  const file = client.spoolPath;
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.dirname(file)).mode & 0o077, 0);
  await delivered(client);
  assert.equal(await client.close(), true);
  assert.equal(fs.existsSync(file), false);
  assert.equal(fs.existsSync(`${file}-wal`), false);
});

test('stats count what was appended and acknowledged', async () => {
  const client = makeClient('api-stats');
  for (let i = 0; i < 5; i += 1) client.info('s', { i });
  await delivered(client);
  const stats = client.stats();
  assert.equal(stats.appended, 5);
  assert.equal(stats.acknowledged, 5);
  assert.equal(stats.pending, 0);
  assert.deepEqual(stats.dropped, {});
  await client.close();
});

test('a log call after close is dropped and counted, never thrown', async () => {
  const client = makeClient('api-closed');
  await client.close();
  assert.doesNotThrow(() => client.info('late'));
  assert.equal(client.stats().dropped.closed, 1);
});
