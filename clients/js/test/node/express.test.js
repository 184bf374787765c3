/**
 * The Express middleware and the demo backend through real HTTP, logging to a real
 * `log-collector serve`; Ctrl+C (SIGINT) still ends an Express server that uses the client.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createLogClient } from '../../src/index.js';
import { logCollectorMiddleware, logCollectorErrorHandler, traceIdFromTraceparent } from '../../src/express.js';
import { useServer, withServerAt, tempDir, freePort, waitFor, sleep, within, REPO, PACKAGE } from './helpers/server.js';

const express = createRequire(path.join(PACKAGE, 'package.json'))('express');
const DEMO = path.join(REPO, 'tests', 'demo-app', 'backend', 'server.js');
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const suite = useServer();
const dirs = suite.dirs;

function makeClient(service, url = suite.server.url) {
  const spoolDir = tempDir('lc-spool-');
  dirs.push(spoolDir);
  return createLogClient(url, { service, spoolDir, flushInterval: 50 });
}

async function listen(app) {
  const httpServer = await new Promise((resolve) => {
    const started = app.listen(0, '127.0.0.1', () => resolve(started));
  });
  return { url: `http://127.0.0.1:${httpServer.address().port}`, close: () => new Promise((resolve) => httpServer.close(resolve)) };
}

test('traceparent gives the trace id only when it is valid W3C trace context', () => {
  assert.equal(traceIdFromTraceparent(TRACEPARENT), '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(traceIdFromTraceparent('00-00000000000000000000000000000000-00f067aa0ba902b7-01'), null);
  assert.equal(traceIdFromTraceparent('ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), null);
  assert.equal(traceIdFromTraceparent('garbage'), null);
});

test('the middleware frames each request, sets its context and echoes the trace id', async () => {
  const client = makeClient('mw-express');
  const app = express();
  app.use(logCollectorMiddleware(client, { excludePaths: ['/health'] }));
  app.get('/health', (req, res) => res.json({ ok: true }));
  app.get('/hello', function hello(req, res) {
    client.info('handled', { answer: 42 });
    res.json({ hi: true });
  });
  app.get('/boom', function boom() {
    throw new Error('route exploded');
  });
  app.get('/async-boom', async function asyncBoom() {
    await sleep(1);
    throw new TypeError('async route exploded');
  });
  app.use(logCollectorErrorHandler(client));
  const web = await listen(app);
  try {
    const byTraceparent = await fetch(`${web.url}/hello?x=1`, { headers: { traceparent: TRACEPARENT, 'x-user-id': 'u-7' } });
    assert.equal(byTraceparent.headers.get('x-trace-id'), '4bf92f3577b34da6a3ce929d0e0e4736');
    const byHeader = await fetch(`${web.url}/hello`, { headers: { 'x-trace-id': 'my-trace' } });
    assert.equal(byHeader.headers.get('x-trace-id'), 'my-trace');
    const fresh = await fetch(`${web.url}/hello`);
    assert.match(fresh.headers.get('x-trace-id'), /^[0-9a-f]{32}$/);
    const failed = await fetch(`${web.url}/boom`, { headers: { 'x-trace-id': 'boom-trace' } });
    assert.equal(failed.status, 500);
    assert.equal(failed.headers.get('x-trace-id'), 'boom-trace');
    const asyncFailed = await fetch(`${web.url}/async-boom`, { headers: { 'x-trace-id': 'async-trace' } });
    assert.equal(asyncFailed.status, 500);
    const health = await fetch(`${web.url}/health`);
    assert.equal(health.headers.get('x-trace-id'), null);
  } finally {
    await web.close();
  }
  assert.equal(await client.flush(60_000), true);
  await client.close();

  const traced = suite.server.rows('service = ? AND trace_id = ?', ['mw-express', '4bf92f3577b34da6a3ce929d0e0e4736']);
  assert.deepEqual(traced.map((row) => row.message), ['Request received', 'handled', 'Request completed']);
  for (const row of traced) {
    assert.equal(row.path, '/hello');
    assert.equal(row.method, 'GET');
    assert.equal(row.user_id, 'u-7');
    assert.ok(row.metadata.ip);
  }
  assert.equal(traced[1].function_name, 'hello');
  assert.equal(traced[1].metadata.answer, 42);
  assert.equal(traced[2].metadata.status_code, 200);
  assert.equal(typeof traced[2].duration_ms, 'number');

  const boom = suite.server.rows('service = ? AND trace_id = ?', ['mw-express', 'boom-trace']);
  assert.deepEqual(boom.map((row) => [row.level, row.message]), [
    ['INFO', 'Request received'], ['ERROR', 'Unhandled exception'], ['ERROR', 'Request completed'],
  ]);
  assert.equal(boom[1].error_type, 'Error');
  assert.match(boom[1].stack_trace, /route exploded[\s\S]*boom/);
  assert.equal(boom[2].metadata.status_code, 500);
  const asyncBoom = suite.server.rows('service = ? AND trace_id = ?', ['mw-express', 'async-trace']);
  assert.equal(asyncBoom[1].error_type, 'TypeError');
  assert.equal(asyncBoom[1].path, '/async-boom');
  assert.equal(suite.server.rows("service = 'mw-express' AND path = '/health'").length, 0);
});

test('the demo backend logs logins, todo CRUD, its error and its slow endpoint', async () => {
  const { createApp } = await import(DEMO);
  const client = makeClient('demo-backend-test');
  const web = await listen(createApp(client));
  const json = { 'content-type': 'application/json' };
  try {
    const bad = await fetch(`${web.url}/api/login`, { method: 'POST', headers: json, body: JSON.stringify({ username: 'demo', password: 'wrong' }) });
    assert.equal(bad.status, 401);
    const good = await fetch(`${web.url}/api/login`, { method: 'POST', headers: json, body: JSON.stringify({ username: 'demo', password: 'demo123' }) });
    const { token } = await good.json();
    const auth = { ...json, authorization: `Bearer ${token}`, 'x-user-id': 'user-demo' };
    const created = await (await fetch(`${web.url}/api/todos`, { method: 'POST', headers: auth, body: JSON.stringify({ title: 'write docs' }) })).json();
    assert.equal(created.title, 'write docs');
    const updated = await (await fetch(`${web.url}/api/todos/${created.id}`, { method: 'PUT', headers: auth, body: JSON.stringify({ done: true }) })).json();
    assert.equal(updated.done, true);
    assert.deepEqual((await (await fetch(`${web.url}/api/todos`, { headers: auth })).json()).map((t) => t.id), [created.id]);
    assert.equal((await fetch(`${web.url}/api/todos/${created.id}`, { method: 'DELETE', headers: auth })).status, 204);
    assert.equal((await fetch(`${web.url}/api/todos`)).status, 401);
    const failed = await fetch(`${web.url}/api/error`, { headers: { traceparent: TRACEPARENT } });
    assert.equal(failed.status, 500);
    assert.equal(failed.headers.get('x-trace-id'), '4bf92f3577b34da6a3ce929d0e0e4736');
    const slow = await (await fetch(`${web.url}/api/slow?ms=50`)).json();
    assert.equal(slow.delay_ms, 50);
  } finally {
    await web.close();
  }
  assert.equal(await client.flush(60_000), true);
  await client.close();

  const rows = suite.server.rowsOf('demo-backend-test');
  const messages = rows.map((row) => row.message);
  for (const expected of ['Login failed', 'Login succeeded', 'Todo created', 'Todo updated', 'Todos listed', 'Todo deleted', 'Unauthenticated request', 'Unhandled exception', 'Report computed', 'Slow operation finished']) {
    assert.ok(messages.includes(expected), `${expected} in ${messages.join(', ')}`);
  }
  const failedLogin = rows.find((row) => row.message === 'Login failed');
  assert.equal(failedLogin.metadata.username, 'demo');
  assert.equal(JSON.stringify(failedLogin).includes('wrong'), false, 'the password is never logged');
  const createdRow = rows.find((row) => row.message === 'Todo created');
  assert.equal(createdRow.user_id, 'user-demo');
  assert.equal(createdRow.action_type, 'todo_create');
  assert.equal(createdRow.function_name, 'createTodo');
  const error = rows.find((row) => row.message === 'Unhandled exception');
  assert.equal(error.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.match(error.stack_trace, /Simulated failure/);
  const slowRow = rows.find((row) => row.message === 'Slow operation finished');
  assert.ok(slowRow.duration_ms >= 45, `duration_ms ${slowRow.duration_ms}`);
  assert.equal(rows.find((row) => row.message === 'Report computed').function_name, 'computeReportTimed');
});

test('SIGINT ends an Express server using the client; its records reach the store on the next start', async () => {
  const port = await freePort();
  const target = `http://127.0.0.1:${port}`;
  const spoolDir = tempDir('lc-spool-');
  dirs.push(spoolDir);
  const webPort = await freePort();
  const child = spawn(process.execPath, [DEMO, '--port', String(webPort)], {
    env: { ...process.env, LOG_SERVER_URL: target, LOG_COLLECTOR_SPOOL_DIR: spoolDir, },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  try {
    await waitFor(() => output.includes('listening'), { what: 'the demo backend to listen' });
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await fetch(`http://127.0.0.1:${webPort}/api/slow?ms=1`)).status, 200);
    }
    child.kill('SIGINT');
    const outcome = await within(exited, 60_000, 'still running');
    assert.deepEqual(outcome, { code: null, signal: 'SIGINT' }, output);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  await withServerAt(port, async (later) => {
    const next = createLogClient(target, { service: 'demo-sigint-next', spoolDir, flushInterval: 50 });
    assert.equal(await next.flush(60_000), true);
    await next.close();
    const messages = later.rowsOf('demo-backend-node').map((row) => row.message);
    assert.equal(messages.filter((message) => message === 'Slow operation finished').length, 3);
    assert.ok(messages.includes('Demo backend started'));
  });
});
