/**
 * The spool across processes: SIGKILL at random moments loses nothing whose log call
 * returned and stores nothing twice; a finished script exits by itself; the size cap drops
 * the oldest records and counts them.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createLogClient } from '../../src/index.js';
import { SERVER_BIN, useServer, withServerAt, tempDir, freePort, waitFor, sleep, within } from './helpers/server.js';

const HELPERS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers');
const TRIALS = process.env.LOG_COLLECTOR_SLOW === '1' ? 20 : 3;
const suite = useServer();
const dirs = suite.dirs;

function spoolDir() {
  const dir = tempDir('lc-spool-');
  dirs.push(dir);
  return dir;
}

function runNode(script, args) {
  const child = spawn(process.execPath, [path.join(HELPERS, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const result = { child, stdout: '', stderr: '' };
  child.stdout.on('data', (chunk) => { result.stdout += chunk; });
  child.stderr.on('data', (chunk) => { result.stderr += chunk; });
  result.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return result;
}

/** Sequence numbers on complete lines: each printed after its log call returned. */
function returned(stdout) {
  const lines = stdout.split('\n');
  lines.pop(); // a line cut by the kill, or the empty tail
  return lines.map(Number);
}

for (let trial = 1; trial <= TRIALS; trial += 1) {
  test(`SIGKILL at a random moment loses no returned log call and stores none twice (trial ${trial})`, async () => {
    const dir = spoolDir();
    const service = `crash-${trial}`;
    const run = runNode('logging-child.js', [suite.server.url, dir, service]);
    const atLeast = 20 + Math.floor(Math.random() * 400);
    await waitFor(() => returned(run.stdout).length >= atLeast || run.child.exitCode !== null, { what: 'the child to log' });
    await sleep(Math.random() * 200);
    run.child.kill('SIGKILL');
    const { signal } = await run.exited;
    assert.equal(signal, 'SIGKILL', run.stderr);
    const printed = returned(run.stdout);
    assert.ok(printed.length >= atLeast);

    const next = createLogClient(suite.server.url, { service: `${service}-next`, spoolDir: dir, flushInterval: 50 });
    assert.equal(await next.flush(60_000), true);
    assert.ok(next.stats().adopted >= 0);
    await next.close();

    const seqs = suite.server.rowsOf(service).map((row) => row.metadata.seq);
    const stored = new Set(seqs);
    assert.equal(stored.size, seqs.length, 'no record stored twice');
    const missing = printed.filter((seq) => !stored.has(seq));
    assert.deepEqual(missing, [], 'every record whose call returned is stored');
    assert.deepEqual(fs.readdirSync(dir), [], 'the adopted spool is removed once drained');
  });
}

test('a script that logs and ends exits by itself, its records delivered', async () => {
  const dir = spoolDir();
  const run = runNode('short-script.js', [suite.server.url, dir, 'exit-up', '100']);
  const outcome = await within(run.exited, 60_000, 'still running');
  if (outcome === 'still running') run.child.kill('SIGKILL');
  assert.deepEqual(outcome, { code: 0, signal: null }, run.stderr);
  const lastCall = Number(run.stdout.trim());
  const elapsed = performance.timeOrigin + performance.now() - lastCall;
  // Reported, not asserted: timing on a shared machine is no test (bench/bench_log.js measures it).
  console.log(`# the script exited ${elapsed.toFixed(0)} ms after its last log call`);
  assert.equal(suite.server.rowsOf('exit-up').length, 100);
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('with the server down, a finished script still exits and keeps its records for the next start', async () => {
  const dir = spoolDir();
  const port = await freePort();
  const run = runNode('short-script.js', [`http://127.0.0.1:${port}`, dir, 'exit-down', '10']);
  const outcome = await within(run.exited, 60_000, 'still running');
  if (outcome === 'still running') run.child.kill('SIGKILL');
  assert.deepEqual(outcome, { code: 0, signal: null }, run.stderr);
  assert.match(run.stderr, /10 record\(s\) not delivered .* for the next start/);
  await withServerAt(port, async (later) => {
    const next = createLogClient(later.url, { service: 'exit-down-next', spoolDir: dir, flushInterval: 50 });
    assert.equal(await next.flush(60_000), true);
    await next.close();
    assert.equal(later.rowsOf('exit-down').length, 10);
  });
});

/**
 * Flush `client` to `server` until its one WARN record about dropped records has arrived:
 * the notice is logged once the spool has room again, at the sender's next wake.
 */
async function deliveredWithNotice(client, server) {
  assert.equal(await client.flush(60_000), true);
  await waitFor(async () => {
    await client.flush(60_000);
    return server.rows("message LIKE 'log-collector dropped%'").length === 1;
  }, { what: 'the drop notice' });
}

test('a full spool drops the oldest records, counts them, and says so once there is room', async () => {
  const port = await freePort();
  const dir = spoolDir();
  const client = createLogClient(`http://127.0.0.1:${port}`, {
    service: 'spool-full', spoolDir: dir, maxSpoolBytes: 64 * 1024, flushInterval: 50,
  });
  for (let i = 0; i < 1000; i += 1) client.info('filler', { i, pad: 'x'.repeat(200) });
  const { dropped, pendingBytes } = client.stats();
  assert.ok(dropped.spool_full > 0, JSON.stringify(dropped));
  assert.ok(pendingBytes <= 64 * 1024);
  await withServerAt(port, async (later) => {
    await deliveredWithNotice(client, later);
    const rows = later.rowsOf('spool-full');
    const kept = rows.filter((row) => row.message === 'filler').map((row) => row.metadata.i);
    assert.equal(kept.at(-1), 999, 'the newest record is kept');
    assert.equal(kept.length + dropped.spool_full, 1000);
    const notice = rows.find((row) => row.message.startsWith('log-collector dropped'));
    assert.equal(notice.level, 'WARN');
    assert.deepEqual(notice.metadata.dropped, { spool_full: dropped.spool_full });
    await client.close();
  });
});

test('with spoolFullPolicy drop_newest a full spool keeps what it holds and drops the new records', async () => {
  const port = await freePort();
  const dir = spoolDir();
  const client = createLogClient(`http://127.0.0.1:${port}`, {
    service: 'spool-full-newest', spoolDir: dir, maxSpoolBytes: 64 * 1024, flushInterval: 50,
    spoolFullPolicy: 'drop_newest',
  });
  for (let i = 0; i < 1000; i += 1) client.info('filler', { i, pad: 'x'.repeat(200) });
  const { dropped } = client.stats();
  assert.ok(dropped.spool_full > 0, JSON.stringify(dropped));
  await withServerAt(port, async (later) => {
    assert.equal(await client.flush(60_000), true);
    await client.close();
    const kept = later.rowsOf('spool-full-newest').filter((row) => row.message === 'filler').map((row) => row.metadata.i);
    assert.deepEqual(kept, Array.from({ length: kept.length }, (_, i) => i), 'the first records are kept, in order');
    assert.equal(kept.length + dropped.spool_full, 1000);
  });
});

test('records older than maxRecordAge are dropped before the sender reads them, counted and announced', async () => {
  const port = await freePort();
  const dir = spoolDir();
  const client = createLogClient(`http://127.0.0.1:${port}`, {
    service: 'record-age', spoolDir: dir, flushInterval: 50, maxRecordAge: 60_000,
  });
  const hourAgo = Date.now() / 1000 - 3600;
  for (let i = 0; i < 3; i += 1) client.info('stale', { i, created_at: hourAgo + i });
  for (let i = 0; i < 2; i += 1) client.info('fresh', { i });
  await withServerAt(port, async (later) => {
    await deliveredWithNotice(client, later);
    const { dropped } = client.stats();
    await client.close();
    const rows = later.rowsOf('record-age');
    assert.deepEqual(rows.filter((row) => row.message !== 'stale' && row.level === 'INFO').map((row) => row.metadata.i), [0, 1]);
    assert.equal(rows.filter((row) => row.message === 'stale').length, 0);
    assert.deepEqual(dropped, { max_record_age: 3 });
    const notice = rows.find((row) => row.message.startsWith('log-collector dropped'));
    assert.deepEqual(notice.metadata.dropped, { max_record_age: 3 });
  });
});

/** Run the Python CLI (`log-collector ...`) without blocking the event loop. */
function cli(...args) {
  return new Promise((resolve) => {
    execFile(SERVER_BIN, args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code : 0, stdout, stderr });
    });
  });
}

test('log-collector status shows a live Node spool from its snapshot, and replay leaves it alone', async () => {
  const dir = spoolDir();
  const url = `http://127.0.0.1:${await freePort()}`;
  const client = createLogClient(url, { service: 'status-live', spoolDir: dir, flushInterval: 50 });
  for (let i = 0; i < 7; i += 1) client.info('waiting for a server', { i });
  const file = path.join(dir, fs.readdirSync(dir).find((name) => name.endsWith('.spool')));
  // The sender writes the snapshot on its passes, here each failed attempt, at most once a second.
  const info = await waitFor(async () => {
    const shown = await cli('status', '--json', file);
    const doc = JSON.parse(shown.stdout);
    return doc.rows === 7 ? doc : null;
  }, { what: 'a snapshot with 7 rows', everyMs: 200 });
  const text = await cli('status', file);
  const replayed = await cli('replay', file, '--timeout', '1');
  const rowsWhileLive = client.stats().pending;
  await client.close(0);
  const after = JSON.parse((await cli('status', '--json', file)).stdout);

  assert.equal(info.owner_alive, true);
  assert.equal(info.pid, String(process.pid));
  assert.equal(info.target_url, url);
  assert.equal(info.service, 'status-live');
  assert.ok(info.bytes > 0 && info.oldest_age >= 0 && info.snapshot_age >= 0, JSON.stringify(info));
  assert.match(text.stdout.replace(/\s+/g, ' '), new RegExp(`owner alive \\(pid ${process.pid}\\), figures as of`));
  assert.notEqual(replayed.code, 0);
  assert.match(replayed.stdout + replayed.stderr, /in use by a live process/);
  assert.equal(rowsWhileLive, 7, 'replay took nothing from the live spool');
  assert.equal(fs.existsSync(`${file}.status`), false, 'close removes the snapshot');
  assert.equal(after.owner_alive, false);
  assert.equal(after.rows, 7);
});

test('two clients in one process keep separate spools and never adopt each other\'s', async () => {
  const dir = spoolDir();
  const first = createLogClient(suite.server.url, { service: 'pair-a', spoolDir: dir, flushInterval: 50 });
  const second = createLogClient(suite.server.url, { service: 'pair-b', spoolDir: dir, flushInterval: 50 });
  assert.notEqual(first.spoolPath, second.spoolPath);
  first.info('from a');
  second.info('from b');
  assert.equal(await second.flush(60_000), true);
  assert.equal(second.stats().adopted, 0);
  assert.equal(await first.flush(60_000), true);
  assert.equal(suite.server.rowsOf('pair-a').length, 1);
  assert.equal(suite.server.rowsOf('pair-b').length, 1);
  await first.close();
  await second.close();
});

for (const [how, message, errorType] of [
  ['exception', 'Uncaught exception', 'TypeError'],
  ['rejection', 'Unhandled promise rejection', 'RangeError'],
]) {
  test(`the global error handler records an uncaught ${how} and Node still exits with code 1`, async () => {
    const dir = spoolDir();
    const port = await freePort();
    const target = `http://127.0.0.1:${port}`;
    const service = `crash-handler-${how}`;
    const run = runNode('crashing-script.js', [target, dir, service, how]);
    const outcome = await within(run.exited, 60_000, 'still running');
    if (outcome === 'still running') run.child.kill('SIGKILL');
    assert.deepEqual(outcome, { code: 1, signal: null }, run.stderr);
    assert.match(run.stderr, /on purpose/);
    await withServerAt(port, async (later) => {
      const next = createLogClient(target, { service: `${service}-next`, spoolDir: dir, flushInterval: 50 });
      assert.equal(await next.flush(60_000), true);
      await next.close();
      const rows = later.rowsOf(service);
      assert.deepEqual(rows.map((row) => [row.level, row.message]), [['INFO', 'about to fail'], ['FATAL', message]]);
      assert.equal(rows[1].error_type, errorType);
      assert.match(rows[1].stack_trace, /on purpose/);
    });
  });
}

test('a damaged orphan is moved aside as *.corrupt and the client goes on', async () => {
  const dir = spoolDir();
  fs.writeFileSync(path.join(dir, '1-deadbeef.spool'), 'this is no SQLite database, just text', { mode: 0o600 });
  fs.writeFileSync(path.join(dir, '2-00000000.spool'), '', { mode: 0o600 }); // being created: left alone
  const client = createLogClient(suite.server.url, { service: 'corrupt-orphan', spoolDir: dir, flushInterval: 50 });
  client.info('still logging');
  assert.equal(await client.flush(60_000), true);
  await client.close();
  const names = fs.readdirSync(dir).sort();
  assert.equal(names.length, 2, names.join(', '));
  assert.equal(names[0], '1-deadbeef.spool.' + names[0].split('.')[2] + '.corrupt');
  assert.equal(names[1], '2-00000000.spool');
  assert.equal(suite.server.rowsOf('corrupt-orphan').length, 1);
});
