/**
 * The Node sender: wake, read a batch, send it, act on the outcome, repeat.
 *
 * It runs on the event loop, off the calling path: a log call only appends to the spool and
 * at most arms a timer. Not in a worker thread: the spool's one connection holds the file's
 * exclusive lock (spool.js), so a worker would need a second connection competing with the
 * log call for the WAL's write lock, while here the sender's SQLite work (one SELECT and one
 * DELETE per batch, a checkpoint now and then) is short and the slow parts, gzip and the
 * network, already run off the loop (libuv's thread pool, the socket).
 *
 * Rows leave the spool only when the server acknowledged them or they were dead-lettered;
 * no retry count ever drops a row but one: a record the server keeps answering 500 for, alone,
 * while it stores others (server-errors.js). Mirrors log_collector/client/sender.py.
 */

import { backoffMs, senderStats } from './outcome.js';
import { ServerErrors } from './server-errors.js';
import { encodeBatch } from './transport.js';
import { warnOnce } from './warnings.js';

// A POST carries at most this much JSON text (at least one record), however many rows
// batchSize allows: within the server's body limits (10 MiB compressed, 64 MiB decompressed).
export const MAX_POST_BYTES = 8 * 1024 * 1024;
const INITIAL_BACKOFF_MS = 500;
const UNAUTHORIZED_BACKOFF_MS = 60_000;

/**
 * The first rows whose bodies add up to at most `limit` characters (always the first row).
 *
 * @param {{id: number, body: string}[]} rows
 * @param {number} limit
 */
export function withinPostBytes(rows, limit = MAX_POST_BYTES) {
  let total = 0;
  for (let i = 0; i < rows.length; i += 1) {
    total += rows[i].body.length;
    if (total > limit) return rows.slice(0, Math.max(1, i));
  }
  return rows;
}

/**
 * @typedef {object} Source what the sender drains (spool.js Spool or MemorySpool)
 * @property {string|null} path
 * @property {boolean} closed
 * @property {number} rows
 * @property {(limit: number) => {id: number, body: string}[]} read
 * @property {(ids: number[]) => void} ack
 * @property {(rows: {id: number}[], reason: string) => void} deadLetter
 * @property {(mark: number) => boolean} hasAtOrBelow
 * @property {() => number} highWater
 * @property {(when?: {force?: boolean}) => void} checkpoint
 */

export class Sender {
  /**
   * @param {object} parts
   * @param {() => Source[]} parts.sources the client's own first, then adopted orphans
   * @param {{url: string, send: Function, close: Function}} parts.transport
   * @param {{batchSize: number, flushInterval: number, enableCompression: boolean,
   *   gzipMinRecords: number, gzipMinBytes: number, maxBackoff: number}} parts.settings
   * @param {() => void} [parts.onIdle] before each drain (the client scans for orphans)
   * @param {(source: Source) => void} [parts.onDrained] a source came up empty
   * @param {() => number} [parts.random]
   */
  constructor({ sources, transport, settings, onIdle = () => {}, onDrained = () => {}, random = Math.random }) {
    this._sources = sources;
    this._transport = transport;
    this._settings = settings;
    this._onIdle = onIdle;
    this._onDrained = onDrained;
    this._random = random;
    this._timer = null;
    this._timerKind = null; // 'interval' | 'backoff' | 'now'
    this._running = false;
    this._again = false;
    this._flushing = 0;
    this._halted = false;
    this._attempt = 0;
    this._waiters = new Set();
    this._500s = new ServerErrors();
    // The wait between a batch's consecutive 500s: {timer, resolve}, ended by halt().
    this._pause = null;
    this.failing = false;
    this.stats = senderStats();
  }

  /**
   * A record was appended; `pending` rows wait in the client's own spool. Arms the flush
   * interval, or wakes now when a full batch waits. Cheap: runs inside the log call.
   *
   * @param {number} pending
   */
  appended(pending) {
    if (this._halted || this._timerKind === 'backoff' || this._timerKind === 'now') return;
    if (pending >= this._settings.batchSize) {
      if (this._running) {
        this._again = true;
        return;
      }
      this._arm('now', 0);
    } else if (this._timer === null && !this._running) {
      this._arm('interval', this._settings.flushInterval);
    }
  }

  /**
   * Look for work now; `retryNow` also cuts a backoff wait short (flush()).
   *
   * @param {{retryNow?: boolean}} [how]
   */
  wake({ retryNow = false } = {}) {
    if (this._halted) return;
    if (this._timerKind === 'backoff' && !retryNow) return;
    if (this._running) {
      this._again = true;
      return;
    }
    this._arm('now', 0);
  }

  /** Arm the first look for work (orphans adopted at start), after one flush interval. */
  start() {
    if (this._timer === null && !this._running) this._arm('interval', this._settings.flushInterval);
  }

  _arm(kind, ms) {
    this._clearTimer();
    this._timerKind = kind;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._timerKind = null;
      this._drain();
    }, ms);
    this._timer.unref();
  }

  _clearTimer() {
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
    this._timerKind = null;
  }

  /**
   * Resolve true once no source in `marks` holds a row at or below its mark (each
   * acknowledged or dead-lettered), false when `deadline` (a Promise) settles first.
   * While waiting, partial batches are sent at once.
   *
   * @param {Map<Source, number>} marks
   * @param {Promise<void>} deadline
   * @returns {Promise<boolean>}
   */
  async until(marks, deadline) {
    if (this._done(marks)) return true;
    this._flushing += 1;
    let waiter;
    const reached = new Promise((resolve) => {
      waiter = { marks, resolve };
      this._waiters.add(waiter);
    });
    try {
      this.wake({ retryNow: true });
      return await Promise.race([reached, deadline.then(() => false)]);
    } finally {
      this._waiters.delete(waiter);
      this._flushing -= 1;
    }
  }

  _done(marks) {
    for (const [source, mark] of marks) {
      if (!source.closed && source.hasAtOrBelow(mark)) return false;
    }
    return true;
  }

  _notify() {
    for (const waiter of this._waiters) {
      if (this._done(waiter.marks)) waiter.resolve(true);
    }
  }

  /** Stop: no more requests; the one in flight is abandoned (its rows stay in the spool). */
  halt() {
    this._halted = true;
    this._clearTimer();
    if (this._pause !== null) {
      clearTimeout(this._pause.timer);
      this._pause.resolve();
      this._pause = null;
    }
    this._transport.close();
    for (const waiter of this._waiters) waiter.resolve(false);
  }

  async _drain() {
    if (this._halted) return;
    if (this._running) {
      this._again = true;
      return;
    }
    this._running = true;
    let failure = null;
    try {
      do {
        this._again = false;
        this._onIdle();
        failure = await this._drainSources();
      } while (this._again && failure === null && !this._halted);
    } catch (error) {
      // Never let the loop die silently; the rows stay on disk for the next wake.
      this.stats.lastError = `${error?.name ?? 'Error'}: ${error?.message ?? error}`;
      warnOnce('sender-error', `log-collector: the sender met an unexpected error (${this.stats.lastError}); its records stay in the spool`);
      failure = { kind: 'retry', status: null, detail: this.stats.lastError };
    } finally {
      this._running = false;
    }
    this._notify();
    if (this._halted) return;
    if (failure !== null) {
      this._retryLater(failure);
    } else if (this._pendingAnywhere()) {
      // Rows logged during the drain (their log calls found it running) or a partial batch
      // left for later: the next look comes at once for a flush, else after the interval.
      this._arm(this._flushing > 0 ? 'now' : 'interval', this._flushing > 0 ? 0 : this._settings.flushInterval);
    }
  }

  _pendingAnywhere() {
    return this._sources().some((source) => !source.closed && source.rows > 0);
  }

  /** @returns {Promise<object|null>} the outcome that stopped delivery, or null */
  async _drainSources() {
    for (const source of this._sources()) {
      if (this._halted) return null;
      const failure = await this._drainSource(source);
      if (failure !== null) return failure;
    }
    return null;
  }

  async _drainSource(source) {
    const { batchSize } = this._settings;
    while (!this._halted && !source.closed) {
      const read = source.read(batchSize);
      if (read.length === 0) {
        source.checkpoint({ force: true });
        this._onDrained(source);
        return null;
      }
      const rows = withinPostBytes(read);
      this._500s.held = [];
      let failure = await this._deliver(source, rows);
      if (failure === null && this._500s.held.length > 0) {
        failure = await this._500s.retryHeld((part, mark) => this._deliver(source, part, mark));
      }
      if (failure !== null) return failure;
      this._attempt = 0;
      this.failing = false;
      if (!source.closed) source.checkpoint();
      this._notify();
      // A partial batch waits for the next wake, unless a flush waits for it.
      const partial = read.length < batchSize && rows.length === read.length;
      if (partial && this._flushing === 0) {
        // That batch may have been the last rows: then the source is drained now.
        if (!source.closed && source.rows === 0) {
          source.checkpoint({ force: true });
          this._onDrained(source);
        }
        return null;
      }
    }
    return null;
  }

  /**
   * Send `rows` until each is acknowledged or dead-lettered.
   *
   * @returns {Promise<object|null>} null when done, else the outcome to retry after
   */
  async _deliver(source, rows, mark = null) {
    const before = this._500s.acks;
    const stopped = () => this._halted || source.closed;
    const outcome = await this._500s.post(() => this._send(rows), (attempt, answer) => {
      this.stats.retries += 1;
      this.stats.lastError = answer.detail;
      return this._wait(backoffMs(attempt - 1, { baseMs: INITIAL_BACKOFF_MS, capMs: this._settings.maxBackoff }, this._random));
    }, stopped);
    if (stopped()) return outcome.kind === 'ack' ? null : outcome;
    if (outcome.status === 500) {
      return this._500s.after500(rows, outcome, mark ?? before, (part, m) => this._deliver(source, part, m),
        (row, reason) => this._deadLetter(source, [row], reason));
    }
    switch (outcome.kind) {
      case 'ack':
        this._acknowledge(source, rows, outcome);
        return null;
      case 'split':
      case 'bisect': {
        // One culprit alone is dead-lettered; a batch is halved until the culprits stand
        // alone, so one poisoned record costs about 2*log2(batch) requests and its
        // neighbours arrive.
        if (rows.length === 1) {
          this._deadLetter(source, rows, outcome.detail);
          return null;
        }
        const middle = Math.floor(rows.length / 2);
        const first = await this._deliver(source, rows.slice(0, middle));
        if (first !== null) return first;
        return this._deliver(source, rows.slice(middle));
      }
      default:
        return outcome;
    }
  }

  /** Wait `ms` (unref'd: a finished script does not wait for it); halt() ends it. */
  _wait(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this._pause = null;
        resolve();
      }, ms);
      timer.unref?.();
      this._pause = { timer, resolve };
    });
  }

  _acknowledge(source, rows, outcome) {
    const refused = new Map(outcome.rejected.map((item) => [item.index, item.reason]));
    if (refused.size < rows.length) this._500s.acks += 1;
    if (refused.size > 0) {
      for (const [index, reason] of refused) {
        this._deadLetter(source, [rows[index]], `rejected by the server: ${reason}`);
      }
      source.ack(rows.filter((_, index) => !refused.has(index)).map((row) => row.id));
    } else {
      source.ack(rows.map((row) => row.id));
    }
    this.stats.acknowledged += rows.length - refused.size;
    this.stats.duplicates += outcome.duplicates ?? 0;
  }

  _deadLetter(source, rows, reason) {
    source.deadLetter(rows, reason);
    this.stats.deadLettered += rows.length;
    this.stats.lastError = `dead-lettered ${rows.length} record(s): ${reason}`;
    const where = source.path
      ? `they are kept in the spool; see them with: log-collector dead-letters ${source.path}`
      : 'they were held in memory (the spool was unusable) and are not kept';
    warnOnce(
      `dead-letter:${source.path}`,
      `log-collector: the server refused ${rows.length} record(s) for good (${reason}); ${where} (further dead letters are counted in stats().deadLettered)`,
    );
  }

  async _send(rows) {
    const { enableCompression, gzipMinRecords, gzipMinBytes } = this._settings;
    const bodies = rows.map((row) => row.body);
    let chars = 0;
    for (const body of bodies) chars += body.length;
    const compress = enableCompression && (rows.length >= gzipMinRecords || chars >= gzipMinBytes);
    const body = await encodeBatch(bodies, compress);
    this.stats.requests += 1;
    return this._transport.send(body, { gzipped: compress, count: rows.length });
  }

  _retryLater(outcome) {
    this.failing = true;
    this.stats.retries += 1;
    this.stats.lastError = outcome.detail;
    const wait = this._waitFor(outcome);
    this._attempt += 1;
    const pending = this._sources().reduce((sum, source) => sum + (source.closed ? 0 : source.rows), 0);
    warnOnce(
      `deliver:${outcome.kind}`,
      `log-collector: cannot deliver to ${this._transport.url}: ${outcome.detail}; keeping ${pending} records, retrying in ${(wait / 1000).toFixed(1)} s`,
    );
    for (const source of this._sources()) {
      if (!source.closed) source.checkpoint();
    }
    this._arm('backoff', wait);
  }

  _waitFor(outcome) {
    if (outcome.kind === 'retry_after' && outcome.retryAfterMs !== undefined) return outcome.retryAfterMs;
    if (outcome.kind === 'auth') return Math.max(UNAUTHORIZED_BACKOFF_MS, this._settings.maxBackoff);
    return backoffMs(this._attempt, { baseMs: INITIAL_BACKOFF_MS, capMs: this._settings.maxBackoff }, this._random);
  }
}
