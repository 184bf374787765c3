/**
 * Delivery outcomes against a real `log-collector serve`, through a fault proxy for the
 * answers the real server cannot give on demand: 500, 429 with Retry-After, 413, a poisoned
 * batch (400), an ack lost on the wire; 401 and per-record rejections from the real server.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { createLogClient } from '../../src/index.js';
import { LogServer, startServer, useServer, tempDir, freePort } from './helpers/server.js';
import { FaultProxy } from './helpers/proxy.js';

let proxy;
const suite = useServer();
const dirs = suite.dirs;

async function withProxy(fn) {
  proxy = await new FaultProxy(suite.server.url).start();
  try {
    await fn(proxy);
  } finally {
    await proxy.stop();
  }
}

function spoolDir() {
  const dir = tempDir('lc-spool-');
  dirs.push(dir);
  return dir;
}

function makeClient(url, service, options = {}) {
  return createLogClient(url, { service, flushInterval: 50, maxBackoff: 1000, spoolDir: spoolDir(), ...options });
}

function deadLetters(file) {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT body, reason FROM dead_letters ORDER BY id').all();
  } finally {
    db.close();
  }
}

test('500 answers are retried with backoff until the batch is stored', async () => {
  await withProxy(async () => {
    proxy.answerNext({ status: 500 }, { status: 502 }, { status: 500 });
    const client = makeClient(proxy.url, 'del-500');
    for (let i = 0; i < 3; i += 1) client.info('retried', { i });
    assert.equal(await client.flush(60_000), true);
    assert.deepEqual(suite.server.rowsOf('del-500').map((row) => row.metadata.i), [0, 1, 2]);
    assert.deepEqual(proxy.requests.map((request) => request.answered), [500, 502, 500, 200]);
    assert.equal(client.stats().retries, 3);
    await client.close();
  });
});

test('a record the server answers 500 for alone, while it stores the others, is dead-lettered; the others arrive', async () => {
  await withProxy(async () => {
    proxy.crashing = (record) => record.message === 'crashes the server';
    const client = makeClient(proxy.url, 'del-500-one', { maxBackoff: 200 });
    for (let i = 0; i < 10; i += 1) client.info(i === 4 ? 'crashes the server' : 'fine', { i });
    assert.equal(await client.flush(60_000), true);
    const stored = suite.server.rowsOf('del-500-one').map((row) => row.metadata.i);
    assert.deepEqual(stored.sort((a, b) => a - b), [0, 1, 2, 3, 5, 6, 7, 8, 9]);
    assert.equal(client.stats().deadLettered, 1);
    const file = client.spoolPath;
    await client.close();
    const [dead] = deadLetters(file);
    assert.equal(JSON.parse(dead.body).metadata.i, 4);
    assert.match(dead.reason, /^HTTP 500.*answered 500 3 times in a row for this record alone while the server stored others/);
    // Each part holding the record got 3 tries: the batch and four halves down to it alone.
    assert.equal(proxy.requests.filter((request) => request.answered === 500).length, 15);
  });
});

test('a server answering every batch 500 holds the records: none is dead-lettered, all arrive once it recovers', async () => {
  await withProxy(async () => {
    proxy.crashing = () => true;
    const client = makeClient(proxy.url, 'del-500-all', { maxBackoff: 200 });
    for (let i = 0; i < 8; i += 1) client.info('waiting out the 500s', { i });
    assert.equal(await client.flush(3_000), false);
    assert.equal(client.stats().deadLettered, 0);
    assert.equal(client.stats().pending, 8);
    assert.ok(proxy.requests.length >= 6, `${proxy.requests.length} requests`);
    proxy.crashing = null;
    assert.equal(await client.flush(60_000), true);
    const stored = suite.server.rowsOf('del-500-all').map((row) => row.metadata.i);
    assert.deepEqual(stored.sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.equal(client.stats().deadLettered, 0);
    await client.close();
  });
});

test('429 with Retry-After waits at least that long before sending again', async () => {
  await withProxy(async () => {
    proxy.answerNext({ status: 429, headers: { 'Retry-After': '1' } });
    const client = makeClient(proxy.url, 'del-429');
    client.info('throttled');
    assert.equal(await client.flush(60_000), true);
    const [first, second] = proxy.requests;
    assert.equal(first.answered, 429);
    assert.equal(second.answered, 200);
    assert.ok(second.at - first.at >= 950, `resent after ${second.at - first.at} ms`);
    assert.equal(suite.server.rowsOf('del-429').length, 1);
    await client.close();
  });
});

test('413 splits the batch until the parts fit', async () => {
  await withProxy(async () => {
    proxy.maxRecords = 10;
    const client = makeClient(proxy.url, 'del-413', { batchSize: 35, flushInterval: 60_000 });
    for (let i = 0; i < 35; i += 1) client.info('split', { i });
    assert.equal(await client.flush(60_000), true);
    assert.equal(proxy.requests[0].answered, 413);
    assert.ok(proxy.requests.filter((r) => r.answered === 200).every((r) => r.count <= 10));
    assert.deepEqual(suite.server.rowsOf('del-413').map((row) => row.metadata.i), [...Array(35).keys()]);
    assert.equal(client.stats().deadLettered, 0);
    await client.close();
  });
});

test('a poisoned record (400 for its batch) is bisected out and dead-lettered alone', async () => {
  await withProxy(async () => {
    proxy.poisoned = (record) => record.message === 'poison';
    const client = makeClient(proxy.url, 'del-poison', { batchSize: 20, flushInterval: 60_000 });
    for (let i = 0; i < 20; i += 1) client.info(i === 7 ? 'poison' : 'fine', { i });
    assert.equal(await client.flush(60_000), true);
    const stored = suite.server.rowsOf('del-poison').map((row) => row.metadata.i);
    assert.deepEqual(stored, [...Array(20).keys()].filter((i) => i !== 7));
    assert.equal(client.stats().deadLettered, 1);
    const file = client.spoolPath;
    await client.close();
    const dead = deadLetters(file);
    assert.equal(dead.length, 1);
    assert.equal(JSON.parse(dead[0].body).message, 'poison');
    assert.match(dead[0].reason, /400/);
  });
});

test('a record the real server rejects is dead-lettered and its neighbours stored', async () => {
  const client = makeClient(suite.server.url, 'del-rejected');
  client.info('before');
  client.info('too many values', { big: new Array(100_001).fill(0) });
  client.info('after');
  assert.equal(await client.flush(60_000), true);
  assert.deepEqual(suite.server.rowsOf('del-rejected').map((row) => row.message), ['before', 'after']);
  const file = client.spoolPath;
  await client.close();
  const [dead] = deadLetters(file);
  assert.equal(JSON.parse(dead.body).message, 'too many values');
  assert.match(dead.reason, /rejected by the server: metadata holds more than 100000/);
});

test('an ack lost on the wire resends the same event_ids and the store keeps one copy', async () => {
  await withProxy(async () => {
    proxy.answerNext('drop-after-store');
    const client = makeClient(proxy.url, 'del-lost-ack');
    for (let i = 0; i < 5; i += 1) client.info('once', { i });
    assert.equal(await client.flush(60_000), true);
    assert.equal(proxy.requests[0].answered, 'dropped');
    const sent = proxy.sentEventIds();
    assert.equal(sent.size, 5);
    assert.ok([...sent.values()].every((times) => times === 2), 'every event_id sent twice');
    const rows = suite.server.rowsOf('del-lost-ack');
    assert.equal(rows.length, 5);
    assert.deepEqual(new Set(rows.map((row) => row.event_id)), new Set(sent.keys()));
    assert.equal(client.stats().duplicates, 5);
    await client.close();
  });
});

test('401 keeps the rows; the next client with the right key adopts and sends them', async () => {
  const secured = await startServer({ env: { LOG_COLLECTOR_API_KEYS: 'right-key' } });
  try {
    const dir = spoolDir();
    const warnings = [];
    const onWarning = (warning) => warnings.push(String(warning.message));
    process.on('warning', onWarning);
    const wrong = createLogClient(secured.url, { service: 'del-auth', spoolDir: dir, apiKey: 'wrong-key', flushInterval: 50 });
    for (let i = 0; i < 3; i += 1) wrong.info('keyed', { i });
    assert.equal(await wrong.flush(1500), false);
    assert.equal(wrong.stats().pending, 3);
    assert.equal(await wrong.close(0), false);
    process.off('warning', onWarning);
    assert.ok(warnings.some((text) => /HTTP 401/.test(text)), warnings.join('\n'));
    const right = createLogClient(secured.url, { service: 'del-auth', spoolDir: dir, apiKey: 'right-key', flushInterval: 50 });
    assert.equal(await right.flush(60_000), true);
    assert.deepEqual(secured.rowsOf('del-auth').map((row) => row.metadata.i), [0, 1, 2]);
    assert.equal(await right.close(), true);
    assert.deepEqual(fs.readdirSync(dir), []);
  } finally {
    await secured.stop();
    secured.cleanup();
  }
});

test('records logged while the server is down arrive once it is up', async () => {
  const port = await freePort();
  const later = new LogServer({ port });
  try {
    const client = makeClient(`http://127.0.0.1:${port}`, 'del-down');
    for (let i = 0; i < 4; i += 1) client.info('waiting', { i });
    assert.equal(await client.flush(500), false);
    await later.start();
    assert.equal(await client.flush(60_000), true);
    assert.deepEqual(later.rowsOf('del-down').map((row) => row.metadata.i), [0, 1, 2, 3]);
    await client.close();
  } finally {
    await later.stop();
    later.cleanup();
  }
});
