/**
 * The browser client: the API of the Node client (`log`, `trace` ... `fatal`, timers,
 * `measure`, `errorWithTrace`, `flush`, `close`, the static context helpers), with
 * records kept in IndexedDB until the server acknowledges them.
 *
 * A log call cannot be durable before it returns in a browser: IndexedDB only writes
 * asynchronously. The call builds the record and puts it in an in-memory buffer; every
 * record logged in one task is written in one IndexedDB transaction, started in the next
 * microtask. `await client.persisted()` resolves once everything logged before it is in
 * IndexedDB: from then on the record survives a reload, a closed tab or a crashed
 * renderer. A record logged just before the page closes is sent on `pagehide` (and on
 * `visibilitychange` to hidden) with a keepalive fetch from memory, and is written to
 * IndexedDB too if the browser lets the transaction finish.
 */

import { currentStack, findCaller } from './browser-caller.js';
import * as context from './browser-context.js';
import { addContextHelpers } from './context-helpers.js';
import { MAX_MEMORY_BYTES, resolveSettings } from './browser-options.js';
import { entriesToSendBeforeLeaving, listenToErrors, listenToPage } from './browser-page.js';
import { MemoryQueue, openIdbQueue, utf8Length } from './browser-queue.js';
import { BrowserSender } from './browser-sender.js';
import { LEVELS, buildRecord, errorFields, normalizeLevel } from './record.js';

/** How long `flush` waits by default, ms. */
export const DEFAULT_FLUSH_TIMEOUT = 30_000;
/** How long `close` flushes by default, ms. */
export const DEFAULT_CLOSE_TIMEOUT = 5_000;

// Entries the page remembers for its pagehide request: more than one such request carries.
const RECENT_MAX = 1000;
// Frames between findCaller and the app's: findCaller, _emit, the public method.
const CALLER_DEPTH = 3;
// How often flush looks at the queue when no batch finished meanwhile (another tab's).
const POLL_MS = 250;

/**
 * @typedef {object} BrowserClientOptions
 * @property {string} [service]
 * @property {string} [environment] default `development`
 * @property {string} [serviceVersion] default `v0.0.0-dev`
 * @property {string} [logType] default `FRONTEND`
 * @property {number} [batchSize] records per POST at most, default 1000
 * @property {number} [flushInterval] ms a record waits for a batch to fill, default 1000
 * @property {boolean} [enableCompression] gzip batches (CompressionStream), default true
 * @property {boolean} [enableGlobalErrorHandler] log `error` and `unhandledrejection`
 * @property {string} [apiKey] sent as `Authorization: Bearer <apiKey>`
 * @property {number} [timeout] ms a POST may take, default 5000
 * @property {number} [maxBackoff] ms between retries at most, default 30000
 * @property {number} [maxSpoolBytes] bytes of queued records at most (the oldest are
 *   dropped and counted), default 32 MiB
 * @property {string} [minLevel] records below this level are not kept, default TRACE
 * @property {string} [queueName] the IndexedDB database, default one per server URL
 */

export class BrowserLogClient {
  /**
   * @param {string|null} [serverUrl] default `http://localhost:8000`
   * @param {BrowserClientOptions} [options]
   */
  constructor(serverUrl = null, options = {}) {
    const s = resolveSettings(serverUrl, options);
    this.settings = s;
    this.serverUrl = s.serverUrl;
    this.service = s.service;
    this.environment = s.environment;
    this.serviceVersion = s.serviceVersion;
    this.logType = s.logType;
    this._common = {
      service: s.service,
      environment: s.environment,
      service_version: s.serviceVersion,
      log_type: s.logType,
    };
    this._minRank = Math.max(0, LEVELS.indexOf(normalizeLevel(s.minLevel)));
    this._stats = { appended: 0, inMemory: 0, dropped: {} };
    this._buffer = [];
    this._writeScheduled = false;
    this._writes = new Set();
    this._recent = [];
    this._lastIds = new Map();
    this._warned = new Set();
    this._closed = false;
    this._unreportedDrops = 0;
    this._memory = new MemoryQueue(Math.min(s.maxSpoolBytes, MAX_MEMORY_BYTES));
    this._idb = null;
    this._ready = this._open(s.queueName);
    this._sender = new BrowserSender({
      url: `${s.serverUrl}/logs`,
      apiKey: s.apiKey,
      batchSize: s.batchSize,
      flushIntervalMs: s.flushInterval,
      timeoutMs: s.timeout,
      maxBackoffMs: s.maxBackoff,
      compress: s.enableCompression,
      lockName: `log-collector-durable:send:${s.serverUrl}`,
      queues: () => (this._idb ? [this._idb, this._memory] : [this._memory]),
      onRemoved: (queue, rows) => this._removed(queue, rows),
      warn: (key, message) => this._warnOnce(key, message),
    });
    const removers = [
      listenToPage({
        leaving: () => this._sendBeforeLeaving(),
        resume: () => this._sender.wake(),
        online: () => this._sender.retryNow(),
      }),
    ];
    if (s.enableGlobalErrorHandler) {
      removers.push(listenToErrors((message, error, fields, caller) => this._emitError(message, error, fields, caller)));
    }
    this._stopListening = () => removers.forEach((remove) => remove());
    this._ready.then(() => {
      if (!this._closed) this._sender.start();
    });
  }

  async _open(name) {
    try {
      this._idb = await openIdbQueue(name, { maxBytes: this.settings.maxSpoolBytes });
    } catch (error) {
      this._warnOnce('idb', `log-collector: IndexedDB cannot be used (${error}); records are kept in memory only`);
    }
  }

  /**
   * Log a record. Never throws; returns at once (see `persisted`).
   *
   * @param {string} level TRACE DEBUG INFO WARN ERROR FATAL (any case, WARNING, CRITICAL)
   * @param {string} message
   * @param {object} [metadata] fields: column names go to their columns, the rest to
   *   metadata; `autoCaller: false` leaves out the caller
   */
  log(level, message, metadata) {
    this._emit(level, message, metadata, null);
  }

  /** @param {string} message @param {object} [metadata] */
  trace(message, metadata) {
    this._emit('TRACE', message, metadata, null);
  }

  /** @param {string} message @param {object} [metadata] */
  debug(message, metadata) {
    this._emit('DEBUG', message, metadata, null);
  }

  /** @param {string} message @param {object} [metadata] */
  info(message, metadata) {
    this._emit('INFO', message, metadata, null);
  }

  /** @param {string} message @param {object} [metadata] */
  warn(message, metadata) {
    this._emit('WARN', message, metadata, null);
  }

  /** @param {string} message @param {object} [metadata] */
  error(message, metadata) {
    this._emit('ERROR', message, metadata, null);
  }

  /** @param {string} message @param {object} [metadata] */
  fatal(message, metadata) {
    this._emit('FATAL', message, metadata, null);
  }

  /** @returns {number} a start time for `endTimer` (ms since the epoch, fractional) */
  startTimer() {
    return now();
  }

  /**
   * Log `message` with `duration_ms` since `startTime`.
   *
   * @param {number} startTime from `startTimer()` (or `Date.now()`)
   * @param {string} [level]
   * @param {string} [message]
   * @param {object} [metadata]
   */
  endTimer(startTime, level = 'INFO', message = 'Timer finished', metadata = undefined) {
    this._emit(level, message, { ...metadata, duration_ms: now() - startTime }, null);
  }

  /**
   * Run `fn` and log its duration; a throw or a rejection is logged with its stack
   * and passed on. The record's function_name is `fn`'s name.
   *
   * @template T
   * @param {() => T} fn sync or async
   * @param {string|null} [message] default `<name> completed` / `<name> failed`
   * @param {string} [level] default INFO
   * @returns {T}
   */
  measure(fn, message = null, level = 'INFO') {
    const name = fn.name || 'anonymous';
    const caller = { function_name: name };
    const start = now();
    const done = (result) => {
      this._emit(level, message || `${name} completed`, { duration_ms: now() - start }, caller);
      return result;
    };
    const failed = (error) => {
      this._emitError(message || `${name} failed`, error, { duration_ms: now() - start }, caller);
      throw error;
    };
    let result;
    try {
      result = fn();
    } catch (error) {
      failed(error);
    }
    if (result && typeof result.then === 'function') return result.then(done, failed);
    return done(result);
  }

  /**
   * Log at ERROR with the error's `stack_trace` and `error_type`; without an error, the
   * current stack.
   *
   * @param {string} message
   * @param {unknown} [error]
   * @param {object} [metadata]
   */
  errorWithTrace(message, error = null, metadata = undefined) {
    this._emitError(message, error, metadata, null);
  }

  _emitError(message, error, metadata, caller) {
    let fields;
    try {
      fields = errorFields(error);
      if (fields.stack_trace === null) fields.stack_trace = currentStack();
    } catch {
      fields = {};
    }
    this._emit('ERROR', message, { ...metadata, ...fields }, caller);
  }

  _emit(level, message, metadata, caller) {
    try {
      if (this._closed) {
        this._count('closed', 1);
        this._warnOnce('closed', 'log-collector: a record was logged after close(); it is dropped (counted in stats().dropped.closed)');
        return;
      }
      const name = normalizeLevel(level);
      const rank = LEVELS.indexOf(name);
      if (rank !== -1 && rank < this._minRank) return;
      const fields = metadata !== null && typeof metadata === 'object' ? metadata : undefined;
      let where = caller;
      if (!where && fields?.autoCaller !== false && !fields?.function_name) where = findCaller(CALLER_DEPTH);
      const record = buildRecord({
        level: name,
        message,
        fields,
        common: this._common,
        requestContext: context.getRequestContext(),
        userContext: context.getUserContext(),
        caller: where,
      });
      const body = JSON.stringify(record);
      this._enqueue({ body, size: utf8Length(body), id: undefined, queue: null, urgentSent: false });
    } catch (error) {
      this._warnOnce('log', `log-collector: a log call failed and its record is lost: ${error}`);
    }
  }

  _enqueue(entry) {
    this._stats.appended += 1;
    this._buffer.push(entry);
    this._recent.push(entry);
    // Trimmed in steps, not per call: a loop logging thousands of records stays linear.
    if (this._recent.length > 2 * RECENT_MAX) this._recent.splice(0, this._recent.length - RECENT_MAX);
    if (!this._writeScheduled) {
      this._writeScheduled = true;
      queueMicrotask(() => this._writeBuffer());
    }
  }

  /** Start writing the buffer in one transaction. */
  _writeBuffer() {
    this._writeScheduled = false;
    if (!this._buffer.length) return;
    const entries = this._buffer;
    this._buffer = [];
    const write = this._write(entries);
    this._writes.add(write);
    write.finally(() => this._writes.delete(write));
  }

  /** Write `entries` to IndexedDB, else to memory; whether they are in IndexedDB. */
  async _write(entries) {
    await this._ready;
    let queue = this._idb ?? this._memory;
    let result;
    try {
      result = await queue.append(entries);
    } catch (error) {
      this._warnOnce('idb_write', `log-collector: IndexedDB refused records (${error}); keeping them in memory`);
      queue = this._memory;
      result = await queue.append(entries);
    }
    if (!queue.durable) this._stats.inMemory += entries.length;
    entries.forEach((entry, i) => {
      entry.id = result.ids[i];
      entry.queue = queue;
    });
    this._lastIds.set(queue, Math.max(this._lastIds.get(queue) ?? 0, ...result.ids));
    if (result.dropped) {
      this._count('spool_full', result.dropped);
      this._unreportedDrops += result.dropped;
      this._warnOnce(
        'spool_full',
        `log-collector: the browser queue is over maxSpoolBytes (${this.settings.maxSpoolBytes}); dropping the oldest records`,
      );
    }
    this._sender.appended(entries.length);
    return queue.durable;
  }

  _count(reason, n) {
    this._stats.dropped[reason] = (this._stats.dropped[reason] ?? 0) + n;
  }

  /**
   * Resolves once every record logged before the call is in IndexedDB: `true`, or
   * `false` when some are only in memory (IndexedDB unusable or refusing them).
   *
   * @returns {Promise<boolean>}
   */
  async persisted() {
    this._writeBuffer();
    const results = await Promise.all([...this._writes]);
    await this._ready;
    return this._idb !== null && results.every(Boolean);
  }

  /**
   * Resolves `true` once every record logged before the call is acknowledged by the
   * server (or dead-lettered, or dropped by the size cap), `false` after `timeoutMs`; the
   * records stay queued either way.
   *
   * @param {number} [timeoutMs]
   * @returns {Promise<boolean>}
   */
  async flush(timeoutMs = DEFAULT_FLUSH_TIMEOUT) {
    const deadline = now() + timeoutMs;
    await this.persisted();
    const marks = [...this._lastIds];
    this._sender.wake();
    while (!(await this._sentUpTo(marks))) {
      const left = deadline - now();
      if (left <= 0 || this._closed) return false;
      await this._progressOrPoll(Math.min(left, POLL_MS));
      this._sender.wake();
    }
    return true;
  }

  async _sentUpTo(marks) {
    for (const [queue, lastId] of marks) {
      if ((await queue.pending(lastId)) > 0) return false;
    }
    return true;
  }

  _progressOrPoll(ms) {
    return new Promise((resolve) => {
      const stop = this._sender.onProgress(finish);
      const timer = setTimeout(finish, ms);
      function finish() {
        stop();
        clearTimeout(timer);
        resolve();
      }
    });
  }

  /**
   * Flush for at most `timeoutMs`, then stop sending and remove the page listeners. What
   * is left stays in IndexedDB for the next client of the origin for this server. Later
   * log calls are dropped and counted.
   *
   * @param {number} [timeoutMs]
   * @returns {Promise<boolean>} whether everything was acknowledged
   */
  async close(timeoutMs = DEFAULT_CLOSE_TIMEOUT) {
    if (this._closed) return true;
    const delivered = await this.flush(timeoutMs);
    this._closed = true;
    this._stopListening();
    await this._sender.stop();
    await Promise.all([...this._writes]);
    this._idb?.close();
    return delivered;
  }

  /**
   * This page's counters: appended, requests, acknowledged, duplicates, deadLettered,
   * retries, dropped by reason, inMemory (records IndexedDB did not take), lastError.
   *
   * @returns {object}
   */
  stats() {
    return { ...this._stats, ...this._sender.stats, dropped: { ...this._stats.dropped } };
  }

  /** The sender deleted `rows` from `queue` (acknowledged or dead-lettered). */
  _removed(queue, rows) {
    const gone = new Set(rows.map((row) => row.id));
    this._recent = this._recent.filter((entry) => !(entry.queue === queue && gone.has(entry.id)));
    if (this._unreportedDrops && !this._closed) {
      // Said once room is back, as a record of its own, so the loss shows in the store.
      const dropped = this._unreportedDrops;
      this._unreportedDrops = 0;
      this._emit('WARN', `log-collector: dropped ${dropped} records: the browser queue was over maxSpoolBytes`, {
        dropped, reason: 'spool_full', autoCaller: false,
      }, null);
    }
  }

  /** Send what this page logged and nobody acknowledged yet, with a keepalive request. */
  _sendBeforeLeaving() {
    try {
      this._writeBuffer();
      const batch = entriesToSendBeforeLeaving(this._recent);
      // One request per queue, so an ack can delete exactly its rows.
      for (const queue of new Set(batch.map((entry) => entry.queue))) {
        const rows = batch.filter((entry) => entry.queue === queue);
        if (this._sender.sendUrgent(queue, rows)) {
          for (const entry of rows) entry.urgentSent = true;
        }
      }
    } catch (error) {
      this._warnOnce('pagehide', `log-collector: could not send on pagehide: ${error}`);
    }
  }

  _warnOnce(key, message) {
    if (this._warned.has(key)) return;
    this._warned.add(key);
    this._sender.stats.lastError = message;
    try {
      console.warn(message);
    } catch {
      // no console: nothing else to tell
    }
  }
}

// runWithContext and the other context helpers, static as in the original client.
addContextHelpers(BrowserLogClient, context);

function now() {
  const perf = globalThis.performance;
  return perf ? perf.timeOrigin + perf.now() : Date.now();
}
