/**
 * A real `log-collector serve` on 127.0.0.1 with a SQLite store in a temporary directory,
 * for the Node tests; its rows are read straight from the store's file.
 */

import fs from 'node:fs';
import { before, after } from 'node:test';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The repository root (clients/js/test/node/helpers -> ../../../../..). */
export const REPO = path.resolve(HERE, '..', '..', '..', '..', '..');
/** The package root, clients/js. */
export const PACKAGE = path.resolve(HERE, '..', '..', '..');
export const SERVER_BIN = path.join(REPO, '.venv', 'bin', 'log-collector');
// Generous: a cold Python start on a busy 2-core machine.
const START_TIMEOUT_MS = 60_000;

/** A fresh temporary directory, removed by `cleanup()`. */
export function tempDir(prefix = 'lc-js-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A TCP port nothing listens on right now. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Poll `predicate` until it returns a truthy value; throw with `what` after `timeoutMs`.
 *
 * @template T
 * @param {() => T | Promise<T>} predicate
 * @param {{timeoutMs?: number, what?: string, everyMs?: number}} [options]
 * @returns {Promise<T>}
 */
export async function waitFor(predicate, { timeoutMs = 60_000, what = 'condition', everyMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * A running `log-collector serve`.
 */
export class LogServer {
  /**
   * @param {{dir?: string, port?: number, env?: Record<string, string>}} [options]
   */
  constructor({ dir = tempDir('lc-server-'), port = null, env = {} } = {}) {
    this.dir = dir;
    this.dbPath = path.join(dir, 'logs.db');
    this.port = port;
    this.env = env;
    this.process = null;
    this.output = '';
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Start the server and wait for GET /healthz. */
  async start() {
    if (!fs.existsSync(SERVER_BIN)) {
      throw new Error(`${SERVER_BIN} is missing: run \`make install\` at the repository root first`);
    }
    this.port ??= await freePort();
    const child = spawn(SERVER_BIN, [
      'serve', '--db', `sqlite:///${this.dbPath}`, '--host', '127.0.0.1', '--port', String(this.port),
      '--no-access-log', '--log-level', 'warning',
    ], { env: { ...process.env, ...this.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    child.stdout.on('data', (chunk) => { this.output += chunk; });
    child.stderr.on('data', (chunk) => { this.output += chunk; });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    this._exited = exited;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`log-collector serve exited: ${this.output}`);
      try {
        const answer = await fetch(`${this.url}/healthz`);
        if (answer.ok) return this;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`log-collector serve did not start: ${this.output}`);
      await sleep(100);
    }
  }

  /** Stop it (SIGTERM, then SIGKILL if it lingers). */
  async stop() {
    const child = this.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await this._exited;
    clearTimeout(timer);
    this.process = null;
  }

  /**
   * Stored rows (metadata parsed), oldest first.
   *
   * @param {string} [where] an SQL condition
   * @param {unknown[]} [params]
   * @returns {object[]}
   */
  rows(where = '1', params = []) {
    if (!fs.existsSync(this.dbPath)) return [];
    const db = new Database(this.dbPath, { readonly: true, fileMustExist: true, timeout: 5000 });
    try {
      return db.prepare(`SELECT * FROM logs WHERE ${where} ORDER BY id`).all(...params).map((row) => ({
        ...row,
        metadata: row.metadata ? JSON.parse(row.metadata) : null,
      }));
    } catch (error) {
      if (/no such table/.test(error.message)) return [];
      throw error;
    } finally {
      db.close();
    }
  }

  /** Rows of one service. */
  rowsOf(service) {
    return this.rows('service = ?', [service]);
  }

  cleanup() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Start a server; the caller stops it. */
export async function startServer(options) {
  return new LogServer(options).start();
}

/**
 * `promise`'s value, or `fallback` once `ms` passed (the timer is cleared either way, so
 * it never keeps the test process alive).
 */
export async function within(promise, ms, fallback = 'timed out') {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One real server for the test file that calls this: started before its tests, stopped after
 * them, when the temporary directories its tests put in `dirs` are removed too.
 *
 * @returns {{server: LogServer|undefined, dirs: string[]}}
 */
export function useServer() {
  const suite = { server: undefined, dirs: [] };
  before(async () => {
    suite.server = await startServer();
  });
  after(async () => {
    await suite.server?.stop();
    suite.server?.cleanup();
    for (const dir of suite.dirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  return suite;
}

/**
 * Start a server on `port` (where a client has been failing to reach one), run `body` with
 * it, then stop it and remove its files.
 *
 * @template T
 * @param {number} port
 * @param {(server: LogServer) => Promise<T>} body
 * @returns {Promise<T>}
 */
export async function withServerAt(port, body) {
  const server = new LogServer({ port });
  try {
    await server.start();
    return await body(server);
  } finally {
    await server.stop();
    server.cleanup();
  }
}
