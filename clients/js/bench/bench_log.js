/**
 * The Node log call beside a bare better-sqlite3 INSERT, measured in the same run.
 *
 *   node bench/bench_log.js [--calls N]
 *
 * Prints p50/p99 (microseconds) of: an INSERT of a record-sized JSON text into a spool-shaped
 * table with the spool's pragmas (WAL, synchronous=NORMAL, EXCLUSIVE locking, no automatic
 * checkpoint); the same INSERT after V8 captured and read one stack frame, as the log
 * methods do to find the caller (nothing else: no record, no JSON); and `client.info()` with
 * a few fields (record, caller, JSON, the same INSERT); and `client.info()` with
 * `autoCaller: false`. First each on its own (three alternating rounds, the median one),
 * then the four interleaved call by call, which a shared machine's slow spells hit alike
 * (three rounds, the median one): the budget, p50(log) <= 2 x p50(INSERT), is judged on those. Then the time a script that logs and ends takes
 * to exit after its last call, with a real server up when one can be started (.venv).
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { WorkerThreadsLogClient } from '../src/index.js';
import { buildRecord } from '../src/record.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..', '..');

function argument(name, fallback) {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
}

const CALLS = argument('--calls', 20_000);
const WARMUP = Math.min(2_000, CALLS);

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

function measure(fn, calls) {
  for (let i = 0; i < WARMUP; i += 1) fn(i);
  const samples = new Float64Array(calls);
  for (let i = 0; i < calls; i += 1) {
    const start = process.hrtime.bigint();
    fn(i);
    samples[i] = Number(process.hrtime.bigint() - start) / 1000;
  }
  samples.sort();
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

function sampleRecordText(client) {
  // One record as the client writes it: the bare INSERT stores text of the same size.
  return JSON.stringify(buildRecord({
    level: 'INFO',
    message: 'Order paid',
    fields: { order_id: 12345, amount: 19.99, currency: 'EUR' },
    common: client._common,
    caller: { function_name: 'logCall', file_path: fileURLToPath(import.meta.url), line_no: 80 },
  }));
}

function floorDb(dir) {
  const db = new Database(path.join(dir, 'bare.db'));
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE records (id INTEGER PRIMARY KEY, created_at REAL NOT NULL, body TEXT NOT NULL)');
  return db;
}

// Each thing measured, as a subject: `call(i)` is one timed call, `close()` ends it.

function bareInsert(dir, body) {
  const db = floorDb(dir);
  const insert = db.prepare('INSERT INTO records(id, created_at, body) VALUES (?, ?, ?)');
  let id = 0;
  return {
    call() {
      id += 1;
      insert.run(id, Date.now() / 1000, body);
    },
    close: () => db.close(),
  };
}

function asCallSites(_error, callSites) {
  return callSites;
}

function insertWithCaller(dir, body) {
  // The same INSERT, after V8 captured and read the frame below a method, as the client's
  // log methods do: what any log call that finds its caller costs at least.
  const db = floorDb(dir);
  const insert = db.prepare('INSERT INTO records(id, created_at, body) VALUES (?, ?, ?)');
  let id = 0;
  let where = null;
  const probe = {
    info() {
      const prepare = Error.prepareStackTrace;
      const limit = Error.stackTraceLimit;
      const holder = {};
      try {
        Error.prepareStackTrace = asCallSites;
        Error.stackTraceLimit = 1;
        Error.captureStackTrace(holder, this.info);
        const [site] = holder.stack;
        where = [site.getFileName(), site.getLineNumber(), site.getFunctionName()];
      } finally {
        Error.prepareStackTrace = prepare;
        Error.stackTraceLimit = limit;
      }
      id += 1;
      insert.run(id, Date.now() / 1000, body);
    },
  };
  return {
    call: () => probe.info(),
    close() {
      db.close();
      if (!where || !where[0]) throw new Error('the probe found no caller');
    },
  };
}

function makeClient(dir, name) {
  // A server that is never reached: delivery stays out of the measurement (the log call
  // only arms a timer); the rows stay in the spool.
  return new WorkerThreadsLogClient('http://127.0.0.1:9', {
    service: 'bench', spoolDir: path.join(dir, name), flushInterval: 3_600_000, batchSize: 10_000,
    maxSpoolBytes: 1024 * 1024 * 1024,
  });
}

function logCall(dir, name, fields) {
  const client = makeClient(dir, name);
  return {
    call: (i) => client.info('Order paid', { order_id: 10_000 + i, amount: 19.99, currency: 'EUR', ...fields }),
    close: () => client._shutdown(),
  };
}

// The four subjects, in the tables' order.
const SUBJECTS = [
  ['bare', 'bare better-sqlite3 INSERT (same pragmas)', (dir, body) => bareInsert(fs.mkdtempSync(path.join(dir, 'bare-')), body)],
  ['withCaller', 'the same INSERT after a caller capture', (dir, body) => insertWithCaller(fs.mkdtempSync(path.join(dir, 'caller-')), body)],
  ['info', 'client.info() (caller from the stack)', (dir, _body, round) => logCall(dir, `info-${round}`, {})],
  ['noCaller', 'client.info() with autoCaller: false', (dir, _body, round) => logCall(dir, `plain-${round}`, { autoCaller: false })],
];

function sequentialRound(dir, body, round) {
  const results = {};
  for (const [key, , make] of SUBJECTS) {
    const subject = make(dir, body, round);
    results[key] = measure(subject.call, CALLS);
    subject.close();
  }
  return results;
}

let mixedRounds = 0;

function interleavedRound(dir, body) {
  // One call of each subject in turn, so a slow spell of a shared machine hits all four.
  mixedRounds += 1;
  const subjects = SUBJECTS.map(([, , make]) => make(dir, body, `mixed-${mixedRounds}`));
  for (let i = 0; i < WARMUP; i += 1) for (const subject of subjects) subject.call(i);
  const samples = subjects.map(() => new Float64Array(CALLS));
  for (let i = 0; i < CALLS; i += 1) {
    for (let k = 0; k < subjects.length; k += 1) {
      const start = process.hrtime.bigint();
      subjects[k].call(i);
      samples[k][i] = Number(process.hrtime.bigint() - start) / 1000;
    }
  }
  for (const subject of subjects) subject.close();
  const results = {};
  SUBJECTS.forEach(([key], k) => {
    samples[k].sort();
    results[key] = { p50: percentile(samples[k], 50), p99: percentile(samples[k], 99) };
  });
  return results;
}

function printTable(results, { verdict }) {
  const bare = results.bare;
  console.log(`| ${'what'.padEnd(42)} | p50 (us) | p99 (us) | p50 / INSERT |`);
  console.log(`|${'-'.repeat(44)}|---------:|---------:|-------:|`);
  for (const [key, what] of SUBJECTS) {
    const r = results[key];
    console.log(`| ${what.padEnd(42)} | ${r.p50.toFixed(1).padStart(8)} | ${r.p99.toFixed(1).padStart(8)} | ${(r.p50 / bare.p50).toFixed(2).padStart(5)}x |`);
  }
  if (!verdict) return;
  console.log('');
  const ratio = results.info.p50 / bare.p50;
  console.log(`budget: p50(log call) <= 2.00x p50(INSERT): ${ratio <= 2 ? 'met' : `not met (${ratio.toFixed(2)}x)`}`);
}

function findServer() {
  const bin = path.join(REPO, '.venv', 'bin', 'log-collector');
  return fs.existsSync(bin) ? bin : null;
}

async function exitTime(dir) {
  const bin = findServer();
  if (!bin) return null;
  const port = 20000 + Math.floor(Math.random() * 10000);
  const server = spawn(bin, ['serve', '--db', `sqlite:///${path.join(dir, 'logs.db')}`, '--host', '127.0.0.1', '--port', String(port), '--no-access-log', '--log-level', 'warning'], { stdio: 'ignore' });
  try {
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 300; i += 1) {
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const script = `
      import { createLogClient } from ${JSON.stringify(path.join(HERE, '..', 'src', 'index.js'))};
      const client = createLogClient(${JSON.stringify(url)}, { service: 'bench-exit', spoolDir: ${JSON.stringify(path.join(dir, 'exit-spool'))} });
      for (let i = 0; i < 100; i += 1) client.info('last words', { i });
      process.stdout.write(String(performance.timeOrigin + performance.now()));
    `;
    const times = [];
    for (let run = 0; run < 5; run += 1) {
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
      const ended = performance.timeOrigin + performance.now();
      times.push(ended - Number(child.stdout));
    }
    return times.sort((a, b) => a - b);
  } finally {
    server.kill('SIGTERM');
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lc-bench-'));
try {
  const body = sampleRecordText(makeClient(dir, 'sample'));
  console.log(`calls: ${CALLS} per round (after ${WARMUP} warm-up); record ${body.length} chars; node ${process.version}`);
  console.log('');
  // Each subject on its own, three rounds alternating, each on a fresh file; the median
  // round of each. A slow spell of a shared machine can still fall on one subject alone.
  const rounds = [0, 1, 2].map((round) => sequentialRound(dir, body, round));
  const median = {};
  for (const [key] of SUBJECTS) median[key] = [...rounds.map((r) => r[key])].sort((a, b) => a.p50 - b.p50)[1];
  console.log('Each subject on its own (3 rounds, the median of each):');
  console.log('');
  printTable(median, { verdict: false });
  console.log('');
  // The verdict: the four interleaved call by call, so a slow spell hits them alike;
  // three rounds, the round whose log call / INSERT ratio is the median.
  const mixed = [0, 1, 2].map(() => interleavedRound(dir, body));
  mixed.sort((a, b) => a.info.p50 / a.bare.p50 - b.info.p50 / b.bare.p50);
  console.log(`The four interleaved call by call (3 rounds, the median round; log call / INSERT: ${mixed.map((r) => `${(r.info.p50 / r.bare.p50).toFixed(2)}x`).join(', ')}):`);
  console.log('');
  printTable(mixed[1], { verdict: true });
  const exits = await exitTime(dir);
  if (exits) {
    console.log(`script exit after its last log call (100 records, server up), 5 runs: ${exits.map((ms) => `${ms.toFixed(0)} ms`).join(', ')}`);
  } else {
    console.log('script exit time: skipped (no .venv/bin/log-collector to serve)');
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
