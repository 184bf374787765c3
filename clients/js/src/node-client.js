/**
 * The Node client: every log call is appended to a SQLite spool (spool.js) before it
 * returns; the sender (sender.js) delivers the rows on the event loop and deletes them once
 * acknowledged. The API is the original in-memory client's, so its users' code runs
 * unchanged; the class keeps its name, though no worker thread is involved.
 */

import fs from 'node:fs';
import { errorFields } from './record.js';
import { encodeRecord } from './record-text.js';
import { resolveSettings } from './settings.js';
import { Spool, MemorySpool, SpoolError, prepareDirectory, spoolFiles, moveAside } from './spool.js';
import { Sender } from './sender.js';
import { HttpTransport } from './transport.js';
import { callerOfFrame, currentStack, findCaller } from './caller.js';
import { warnOnce } from './warnings.js';
import * as context from './context.js';
import { addContextHelpers } from './context-helpers.js';
import { live, track, untrack, watchCrashes } from './lifecycle.js';

/** How long `flush()` waits by default, in ms. */
export const DEFAULT_FLUSH_TIMEOUT = 30_000;
/** How long `close()` waits for delivery by default, in ms. */
export const DEFAULT_CLOSE_TIMEOUT = 5_000;
// Seconds between scans of the spool directory for orphans of dead processes.
const ADOPT_INTERVAL_MS = 30_000;
// Records kept in memory when the spool cannot be written.
const FALLBACK_CAPACITY = 10_000;

/** Whether the call's fields let the caller in (`autoCaller: false` leaves it out). */
function wantsCaller(metadata) {
  try {
    return metadata === null || typeof metadata !== 'object' || metadata.autoCaller !== false;
  } catch {
    return false; // a Proxy whose get trap throws: no caller, the record still goes
  }
}

function now() {
  return performance.timeOrigin + performance.now();
}

function roundMs(ms) {
  return Math.round(ms * 1000) / 1000;
}

/**
 * A timer promise that keeps the process alive until it fires or is cancelled.
 *
 * @param {number} ms Infinity for none
 */
function deadlineAfter(ms) {
  if (!Number.isFinite(ms)) return { promise: new Promise(() => {}), cancel() {} };
  let timer;
  const promise = new Promise((resolve) => {
    timer = setTimeout(resolve, Math.max(0, ms));
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

export class WorkerThreadsLogClient {
  /**
   * @param {string} [serverUrl] else LOG_SERVER_URL, else http://localhost:8000
   * @param {import('../index.js').LogClientOptions} [options]
   */
  constructor(serverUrl = null, options = {}) {
    const settings = resolveSettings(serverUrl, options ?? {});
    this._settings = settings;
    this.serverUrl = settings.serverUrl;
    this.service = settings.service;
    this.environment = settings.environment;
    this.serviceVersion = settings.serviceVersion;
    this.logType = settings.logType;
    this.options = {
      batchSize: settings.batchSize,
      flushInterval: settings.flushInterval,
      enableCompression: settings.enableCompression,
      enableGlobalErrorHandler: settings.enableGlobalErrorHandler,
    };
    this._common = {
      service: settings.service,
      environment: settings.environment,
      service_version: settings.serviceVersion,
      log_type: settings.logType,
    };
    this._closed = false;
    this._appended = 0;
    this._droppedClosed = 0;
    this._memory = null;
    this._orphans = [];
    this._nextScan = 0;
    this._exitMark = null;
    this._exitFlushing = false;
    this._announced = {};
    this._spool = this._openSpool();
    this._sender = new Sender({
      sources: () => this._sources(),
      transport: new HttpTransport(settings),
      settings,
      onIdle: () => this._idle(),
      onDrained: (source) => this._drained(source),
    });
    this._stopWatching = null;
    if (settings.enableGlobalErrorHandler) this._setupGlobalErrorHandler();
    track(this);
    // Orphans of earlier processes are adopted and sent even if this one never logs.
    this._sender.start();
  }

  _openSpool() {
    const { spoolDir, service, serverUrl, maxSpoolBytes, spoolFullPolicy, maxRecordAge } = this._settings;
    try {
      const problem = prepareDirectory(spoolDir);
      if (problem) throw new SpoolError(`unsafe spool directory: ${problem}`);
      return Spool.create(spoolDir, {
        service, serverUrl, maxBytes: maxSpoolBytes, fullPolicy: spoolFullPolicy, maxRecordAge,
      });
    } catch (error) {
      warnOnce(
        `spool-open:${spoolDir}`,
        `log-collector: cannot open a spool in ${spoolDir} (${error.message}); records are kept in memory (at most ${FALLBACK_CAPACITY}) until delivered`,
      );
      return null;
    }
  }

  _fallback() {
    if (this._memory === null) this._memory = new MemorySpool(FALLBACK_CAPACITY);
    return this._memory;
  }

  _sources() {
    const found = [];
    if (this._spool && !this._spool.closed) found.push(this._spool);
    if (this._memory) found.push(this._memory);
    for (const orphan of this._orphans) if (!orphan.closed) found.push(orphan);
    return found;
  }

  /** The spool file this client writes, or null when it keeps records in memory. */
  get spoolPath() {
    return this._spool ? this._spool.path : null;
  }

  // Logging: log() and the level methods (trace, debug, info, warn, error, fatal) are made
  // by logMethod() below the class.

  /** A public log method's record, with the frame it captured (or null). */
  _logCall(level, message, metadata, frame, above) {
    this._log(level, message, metadata === undefined ? {} : metadata, null, callerOfFrame(frame, above));
  }

  /**
   * @param {unknown} level
   * @param {unknown} message
   * @param {unknown} metadata the caller's fields
   * @param {object|null} extra fields the library adds (they win over the caller's)
   * @param {import('./caller.js').Caller|null} caller the app's frame, or null for none
   */
  _log(level, message, metadata, extra, caller) {
    try {
      if (this._closed) {
        this._droppedClosed += 1;
        warnOnce('log-after-close', 'log-collector: a record was logged after close(); it is dropped (counted in stats().dropped.closed)');
        return;
      }
      const given = metadata !== null && typeof metadata === 'object' ? metadata : {};
      const fields = extra ? { ...given, ...extra } : given;
      const { body, createdAt } = encodeRecord({
        level,
        message,
        fields,
        common: this._common,
        requestContext: context.requestStorage.getStore(),
        userContext: context.userStorage.getStore(),
        caller,
        now: Date.now(),
      });
      this._append(createdAt, body);
    } catch (error) {
      warnOnce(`log-call:${error?.name}`, `log-collector: a log call failed (${error?.message ?? error}); the app goes on`);
    }
  }

  _append(createdAt, body) {
    const spool = this._spool;
    if (spool !== null) {
      try {
        spool.append(createdAt, body);
        this._appended += 1;
        this._sender.appended(spool.rows);
        return;
      } catch (error) {
        warnOnce(
          `spool-write:${error?.code}`,
          `log-collector: cannot write to the spool ${spool.path} (${error?.message ?? error}); records are kept in memory until it works again`,
        );
      }
    }
    const memory = this._fallback();
    memory.append(createdAt, body);
    this._appended += 1;
    this._sender.appended(memory.rows);
  }

  // Timing.

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
  endTimer(startTime, level = 'INFO', message = 'Timer finished', metadata = {}) {
    const durationMs = roundMs(now() - startTime);
    const caller = wantsCaller(metadata) ? findCaller(this.endTimer) : null;
    this._log(level, message, metadata, { duration_ms: durationMs }, caller);
  }

  /**
   * Run `fn` and log how long it took (`duration_ms`, `function_name`); a returned promise
   * is timed until it settles. A failure is logged with its stack trace and rethrown.
   *
   * @template T
   * @param {() => T} fn
   * @param {string|null} [message] default "<name> completed" / "<name> failed"
   * @param {string} [level]
   * @returns {T}
   */
  measure(fn, message = null, level = 'INFO') {
    const started = now();
    const name = fn?.name || 'anonymous';
    // Found now: once a promise settles, the app's frame is no longer on the stack.
    const caller = findCaller(this.measure);
    const succeeded = () => {
      this._log(level, message || `${name} completed`, {}, {
        duration_ms: roundMs(now() - started),
        function_name: name,
      }, caller);
    };
    const failed = (error) => {
      this._log('ERROR', message || `${name} failed`, {}, {
        ...errorFields(error),
        duration_ms: roundMs(now() - started),
        function_name: name,
      }, caller);
    };
    let result;
    try {
      result = fn();
    } catch (error) {
      failed(error);
      throw error;
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      return result.then(
        (value) => {
          succeeded();
          return value;
        },
        (error) => {
          failed(error);
          throw error;
        },
      );
    }
    succeeded();
    return result;
  }

  /**
   * Log an ERROR with the error's `stack_trace` and `error_type` (without an error, the
   * stack where this was called).
   *
   * @param {string} message
   * @param {unknown} [error]
   * @param {object} [metadata]
   */
  errorWithTrace(message, error = null, metadata = {}) {
    let fields = errorFields(error);
    if (fields.stack_trace === null) {
      fields = { stack_trace: currentStack(this.errorWithTrace), error_type: null };
    }
    if (fields.error_type === null) delete fields.error_type;
    const caller = wantsCaller(metadata) ? findCaller(this.errorWithTrace) : null;
    this._log('ERROR', message, metadata, fields, caller);
  }

  // Delivery.

  /**
   * Resolve true once every record logged before the call (and those of the orphaned
   * spools this client adopted) is acknowledged or dead-lettered; false after `timeoutMs`.
   * The records stay in the spool either way.
   *
   * @param {number} [timeoutMs]
   * @returns {Promise<boolean>}
   */
  async flush(timeoutMs = DEFAULT_FLUSH_TIMEOUT) {
    if (this._closed) return this._sources().every((source) => source.rows === 0);
    this._scanOrphans({ force: true });
    const marks = new Map(this._sources().map((source) => [source, source.highWater()]));
    const deadline = deadlineAfter(timeoutMs);
    try {
      return await this._sender.until(marks, deadline.promise);
    } finally {
      deadline.cancel();
    }
  }

  /**
   * Flush for at most `timeoutMs`, then stop sending and close the spool (removed when
   * empty). What is left stays in the spool for the next start, and one line on stderr
   * says so. Later log calls are dropped and counted.
   *
   * @param {number} [timeoutMs]
   * @returns {Promise<boolean>} whether everything was delivered
   */
  async close(timeoutMs = DEFAULT_CLOSE_TIMEOUT) {
    if (this._closed) return true;
    const delivered = await this.flush(timeoutMs);
    this._shutdown();
    return delivered;
  }

  /**
   * Counters: appended, acknowledged, duplicates, deadLettered, dropped by reason, retries,
   * requests, pending rows and bytes, adopted spools, the last error.
   */
  stats() {
    const dropped = {};
    const add = (counts) => {
      for (const [reason, n] of Object.entries(counts ?? {})) dropped[reason] = (dropped[reason] ?? 0) + n;
    };
    let pending = 0;
    let pendingBytes = 0;
    for (const source of this._sources()) {
      add(source.dropped);
      pending += source.rows;
      pendingBytes += source.bytes;
    }
    if (this._droppedClosed) dropped.closed = this._droppedClosed;
    return {
      appended: this._appended,
      ...this._sender.stats,
      dropped,
      pending,
      pendingBytes,
      adopted: this._orphans.length,
      spoolPath: this.spoolPath,
    };
  }

  // What the sender calls back.

  _idle() {
    this._scanOrphans();
    this._announceDrops();
  }

  _drained(source) {
    if (source === this._spool) {
      this._announceDrops();
      return;
    }
    const index = this._orphans.indexOf(source);
    if (index === -1) return;
    this._orphans.splice(index, 1);
    source.close();
  }

  _scanOrphans({ force = false } = {}) {
    const time = Date.now();
    if (this._closed || (!force && time < this._nextScan)) return;
    this._nextScan = time + ADOPT_INTERVAL_MS;
    const known = new Set(this._orphans.map((orphan) => orphan.path));
    if (this._spool) known.add(this._spool.path);
    for (const other of live) {
      if (other._spool) known.add(other._spool.path);
      for (const orphan of other._orphans) known.add(orphan.path);
    }
    for (const file of spoolFiles(this._settings.spoolDir, known)) {
      try {
        const adopted = Spool.adopt(file, { serverUrl: this._settings.serverUrl, maxRecordAge: this._settings.maxRecordAge });
        if (adopted) this._orphans.push(adopted);
      } catch (error) {
        if (error instanceof SpoolError) moveAside(file, error.message);
      }
    }
  }

  /** Once the spool has room again, one WARN record says how many records were dropped. */
  _announceDrops() {
    const spool = this._spool;
    if (!spool || spool.closed || spool.bytes > this._settings.maxSpoolBytes / 2) return;
    const untold = {};
    for (const [reason, n] of Object.entries(spool.dropped)) {
      const told = this._announced[reason] ?? 0;
      if (n > told) untold[reason] = n - told;
    }
    if (Object.keys(untold).length === 0) return;
    Object.assign(this._announced, spool.dropped);
    const total = Object.values(untold).reduce((a, b) => a + b, 0);
    this._log('WARN', `log-collector dropped ${total} record(s) from its spool`, { dropped: untold }, { autoCaller: false }, null);
  }

  // Process lifecycle.

  /** At `beforeExit`: one bounded flush per batch of new records. */
  _flushAtExit() {
    if (this._closed || this._exitFlushing) return;
    const mark = this._spool ? this._spool.highWater() : this._appended;
    if (this._exitMark === mark) return;
    if (!this._sources().some((source) => source.rows > 0)) return;
    this._exitMark = mark;
    this._exitFlushing = true;
    this.flush(this._settings.exitTimeout).finally(() => {
      this._exitFlushing = false;
    });
  }

  _shutdown() {
    if (this._closed) return;
    this._closed = true;
    untrack(this);
    this._sender.halt();
    this._teardownGlobalErrorHandler();
    let left = 0;
    const where = [];
    for (const source of [this._spool, this._memory, ...this._orphans]) {
      if (!source) continue;
      const rows = source.close();
      if (rows > 0) {
        left += rows;
        where.push(source.path ?? 'memory (lost at exit)');
      }
    }
    this._orphans = [];
    if (left > 0) {
      const line = `log-collector: ${left} record(s) not delivered to ${this.serverUrl} yet; kept in ${where.join(', ')} for the next start\n`;
      try {
        fs.writeSync(2, line);
      } catch {
        // no stderr
      }
    }
  }

  // Global error handler.

  _setupGlobalErrorHandler() {
    this._stopWatching = watchCrashes((error, origin) => {
      const rejected = origin === 'unhandledRejection';
      this._log('FATAL', rejected ? 'Unhandled promise rejection' : 'Uncaught exception', {}, {
        ...errorFields(error),
        origin,
        autoCaller: false,
      }, null);
    });
  }

  _teardownGlobalErrorHandler() {
    this._stopWatching?.();
    this._stopWatching = null;
  }
}

// runWithContext and the other context helpers, static as in the original client.
addContextHelpers(WorkerThreadsLogClient, context);

/**
 * A public log method: `log(level, message, metadata = {})` when `fixedLevel` is null, else
 * a level method such as `info(message, metadata = {})`. It logs one record, durable before
 * it returns (committed to the spool), and never throws. The metadata are the record's
 * fields; `autoCaller: false` leaves the caller out.
 *
 * Finding the caller is most of what a log call costs: V8 describes each frame it walks to
 * find the method, with every value the frame holds, and each function inlined into it.
 * So the method captures the frame first thing, while it holds little, in its own body
 * rather than a helper's, and reads it after (docs/performance.md). Hence two bodies.
 *
 * @param {string} name
 * @param {string|null} fixedLevel
 * @returns {Function}
 */
function logMethod(name, fixedLevel) {
  // `this[name]`, not the function itself: a subclass's override that calls it is skipped too.
  if (fixedLevel === null) {
    return {
      [name](level, message, metadata) {
        // The caller's frame, captured first thing and read in _logCall (caller.js callerOfFrame).
        let frame = null;
        if (metadata === undefined || wantsCaller(metadata)) {
          const limit = Error.stackTraceLimit;
          frame = {};
          try {
            Error.stackTraceLimit = 1;
            Error.captureStackTrace(frame, this[name]);
          } catch {
            frame = null; // a frozen Error constructor, a stack overflow: no caller
          } finally {
            Error.stackTraceLimit = limit;
          }
        }
        this._logCall(level, message, metadata, frame, this[name]);
      },
    }[name];
  }
  return {
    [name](message, metadata) {
      // The caller's frame, captured first thing and read in _logCall (caller.js callerOfFrame).
      let frame = null;
      if (metadata === undefined || wantsCaller(metadata)) {
        const limit = Error.stackTraceLimit;
        frame = {};
        try {
          Error.stackTraceLimit = 1;
          Error.captureStackTrace(frame, this[name]);
        } catch {
          frame = null; // a frozen Error constructor, a stack overflow: no caller
        } finally {
          Error.stackTraceLimit = limit;
        }
      }
      this._logCall(fixedLevel, message, metadata, frame, this[name]);
    },
  }[name];
}

for (const [name, level] of [
  ['log', null], ['trace', 'TRACE'], ['debug', 'DEBUG'], ['info', 'INFO'], ['warn', 'WARN'],
  ['error', 'ERROR'], ['fatal', 'FATAL'],
]) {
  // As a class body defines a method: not enumerable.
  Object.defineProperty(WorkerThreadsLogClient.prototype, name, {
    value: logMethod(name, level), writable: true, configurable: true,
  });
}
