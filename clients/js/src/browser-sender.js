/**
 * The browser client's sender: it reads the oldest records from the queues, POSTs them
 * to `{serverUrl}/logs`, and deletes them only after the server acknowledged them.
 *
 * Outcomes come from `outcome.js` `classify`, as for the Node sender: an ack deletes the
 * rows (the `rejected` ones go to the dead letters); 413 splits the batch and 400/422
 * bisect it until the refused record stands alone, which is dead-lettered; 429/503 wait
 * for Retry-After; 5xx, a network error or a timeout back off with full jitter and retry
 * forever, but a batch answered 500 three times in a row is split, and a record that alone
 * keeps getting 500 while the server stores others is dead-lettered (server-errors.js);
 * 401/403 and an answer that is not the acknowledgement back off long and warn. No retry
 * limit drops a record.
 *
 * Tabs: every tab of the origin shares the queue. A tab sends one batch while it holds the
 * Web Lock `lockName` (navigator.locks), so two tabs never send the same rows at once;
 * a tab that closes releases its lock. Where Web Locks are missing, tabs may send the same
 * rows at the same time, and the server keeps one copy of each (it deduplicates on
 * event_id).
 *
 * Page close: `sendUrgent` posts with `fetch(..., {keepalive: true})`, the request that
 * outlives the page, within the 64 KiB a page may have in flight that way. Its records
 * stay queued until a later ack (the answer may never reach a closing page), so the next
 * page of the origin sends them again and the server's deduplication keeps one copy.
 */

import { backoffMs, classify, senderStats } from './outcome.js';
import { ServerErrors } from './server-errors.js';

/** A POST's JSON text is kept under this (the server takes 10 MiB gzip'd, 64 MiB plain). */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** Batches of at least this many records, or GZIP_MIN_BYTES of text, are gzip'd. */
export const GZIP_MIN_RECORDS = 100;
export const GZIP_MIN_BYTES = 16 * 1024;
/**
 * Bytes of one keepalive POST: under the 64 KiB every keepalive request of a page may
 * hold in flight together (https://fetch.spec.whatwg.org/#http-network-or-cache-fetch,
 * "inflightKeepaliveBytes"), with room for another library's.
 */
export const KEEPALIVE_BYTES = 48 * 1024;
const BACKOFF_BASE_MS = 500;

/**
 * @typedef {import('./browser-queue.js').Row} Row
 * @typedef {import('./browser-queue.js').IdbQueue | import('./browser-queue.js').MemoryQueue} Queue
 */

/**
 * @typedef {object} SenderOptions
 * @property {string} url the `/logs` URL
 * @property {string|null} apiKey
 * @property {number} batchSize
 * @property {number} flushIntervalMs
 * @property {number} timeoutMs
 * @property {number} maxBackoffMs
 * @property {boolean} compress
 * @property {string} lockName
 * @property {() => Queue[]} queues the queues to drain, in order
 * @property {(queue: Queue, rows: Row[]) => void} onRemoved rows acknowledged or dead-lettered
 * @property {(key: string, message: string) => void} warn once per key
 */

export class BrowserSender {
  /** @param {SenderOptions} options */
  constructor(options) {
    this._o = options;
    this._stopped = true;
    this._attempt = 0;
    this._wakeUp = null;
    this._wakePending = false;
    this._batchTimer = null;
    this._appendedSinceSend = 0;
    this._500s = new ServerErrors();
    this._listeners = new Set();
    this._compress = options.compress && typeof CompressionStream === 'function';
    this.stats = senderStats();
  }

  /** Start the loop; it first sends what is already queued (a previous page's records). */
  start() {
    if (!this._stopped) return;
    this._stopped = false;
    this._running = this._loop();
  }

  /**
   * Stop after the batch in flight, if any.
   *
   * @returns {Promise<void>}
   */
  async stop() {
    this._stopped = true;
    clearTimeout(this._batchTimer);
    this._batchTimer = null;
    this._wake(true);
    await this._running;
  }

  /**
   * Note `count` records queued: a full batch wakes the sender now, else within the
   * flush interval.
   *
   * @param {number} count
   */
  appended(count) {
    this._appendedSinceSend += count;
    if (this._appendedSinceSend >= this._o.batchSize) {
      this._wake();
    } else if (!this._batchTimer) {
      this._batchTimer = setTimeout(() => {
        this._batchTimer = null;
        this._wake();
      }, this._o.flushIntervalMs);
    }
  }

  /** Send now, unless waiting out a backoff (a flush does not hammer a server that is down). */
  wake() {
    this._wake();
  }

  /** Cut a backoff short: the network is back. */
  retryNow() {
    this._attempt = 0;
    this._wake(true);
  }

  /**
   * Call `listener` after every batch the sender finished with (sent, split, failed).
   *
   * @param {() => void} listener
   * @returns {() => void} unsubscribe
   */
  onProgress(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  _wake(evenInBackoff = false) {
    const wakeUp = this._wakeUp;
    if (!wakeUp) {
      // Mid-batch: the next idle wait returns at once, so the wake is not lost.
      this._wakePending = true;
    } else if (evenInBackoff || !wakeUp.backoff) {
      this._wakeUp = null;
      wakeUp.resolve();
    }
  }

  _sleep(ms, backoff) {
    const woken = this._wakePending;
    this._wakePending = false;
    if (woken && !backoff) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this._wakeUp?.resolve === done) this._wakeUp = null;
        resolve();
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this._wakeUp = { resolve: done, backoff };
      if (this._stopped) done();
    });
  }

  async _loop() {
    while (!this._stopped) {
      let next;
      try {
        next = await this._withLock(() => this._step());
      } catch (error) {
        this._o.warn('queue', `log-collector: cannot read the browser queue: ${error}; retrying`);
        next = { waitMs: this._backoff() };
      }
      this._progress();
      if (this._stopped) break;
      if (next.waitMs !== undefined) await this._sleep(next.waitMs, true);
      else if (next.idle) await this._sleep(Math.max(this._o.flushIntervalMs, 5_000), false);
    }
  }

  _withLock(fn) {
    const locks = globalThis.navigator?.locks;
    if (!locks || typeof locks.request !== 'function') return fn();
    return locks.request(this._o.lockName, fn);
  }

  _progress() {
    for (const listener of this._listeners) {
      try {
        listener();
      } catch {
        // a listener's trouble is not the sender's
      }
    }
  }

  /** One batch from the first queue that has rows: `{}` sent, `{idle}`, or `{waitMs}`. */
  async _step() {
    if (this._stopped) return { idle: true }; // stopped while waiting for the lock
    for (const queue of this._o.queues()) {
      const rows = await queue.read(this._o.batchSize, MAX_BATCH_BYTES);
      if (!rows.length) continue;
      this._appendedSinceSend = 0;
      this._500s.held = [];
      let failure = await this._deliver(queue, rows);
      if (!failure && this._500s.held.length > 0) {
        failure = await this._500s.retryHeld((part, mark) => this._deliver(queue, part, mark));
      }
      if (failure) return { waitMs: this._waitFor(failure) };
      this._attempt = 0;
      return {};
    }
    return { idle: true };
  }

  /**
   * Send `rows`, splitting on 413, bisecting on 400/422, and splitting on repeated 500s
   * (server-errors.js); the failure that stopped it, if any.
   */
  async _deliver(queue, rows, mark = null) {
    const before = this._500s.acks;
    const { stats } = this;
    const outcome = await this._500s.post(() => this._post(rows, false), (attempt, answer) => {
      stats.retries += 1;
      stats.lastError = answer.detail;
      return pause(backoffMs(attempt - 1, { baseMs: BACKOFF_BASE_MS, capMs: this._o.maxBackoffMs }));
    }, () => this._stopped);
    if (outcome.status === 500 && !this._stopped) {
      return this._500s.after500(rows, outcome, mark ?? before, (part, m) => this._deliver(queue, part, m),
        (row, reason) => this._deadLetter(queue, [{ row, reason }]));
    }
    if (outcome.kind === 'ack') {
      await this._acknowledge(queue, rows, outcome);
      return null;
    }
    if (outcome.kind === 'split' || outcome.kind === 'bisect') {
      if (rows.length === 1) {
        await this._deadLetter(queue, [{ row: rows[0], reason: outcome.detail }]);
        return null;
      }
      const half = Math.ceil(rows.length / 2);
      return (await this._deliver(queue, rows.slice(0, half))) ?? this._deliver(queue, rows.slice(half));
    }
    stats.retries += 1;
    stats.lastError = outcome.detail;
    return outcome;
  }

  async _acknowledge(queue, rows, outcome) {
    const { stats } = this;
    const refused = new Map(outcome.rejected.map((item) => [item.index, item.reason]));
    const kept = rows.filter((_, index) => !refused.has(index));
    if (kept.length > 0) this._500s.acks += 1;
    stats.acknowledged += kept.length;
    stats.duplicates += outcome.duplicates;
    if (refused.size) {
      await this._deadLetter(
        queue,
        [...refused].map(([index, reason]) => ({ row: rows[index], reason })),
      );
    }
    await queue.remove(kept.map((row) => row.id));
    this._o.onRemoved(queue, kept);
  }

  async _deadLetter(queue, items) {
    await queue.deadLetter(items);
    this.stats.deadLettered += items.length;
    this._o.warn(
      'dead_letter',
      `log-collector: the server refused ${items.length} record(s) for good (${items[0].reason}); ` +
        'kept in the IndexedDB store dead_letters (further ones are counted in stats().deadLettered)',
    );
    this._o.onRemoved(queue, items.map((item) => item.row));
  }

  _waitFor(outcome) {
    const { warn, url } = this._o;
    let waitMs = this._backoff();
    if (outcome.kind === 'retry_after' && outcome.retryAfterMs !== undefined) {
      waitMs = outcome.retryAfterMs;
    } else if (outcome.kind === 'auth') {
      waitMs = this._o.maxBackoffMs;
    }
    warn(
      outcome.kind,
      `log-collector: cannot deliver to ${url}: ${outcome.detail}; keeping the records, retrying in ${(waitMs / 1000).toFixed(1)} s`,
    );
    return waitMs;
  }

  _backoff() {
    const wait = backoffMs(this._attempt, { baseMs: BACKOFF_BASE_MS, capMs: this._o.maxBackoffMs });
    this._attempt += 1;
    return wait;
  }

  /**
   * POST rows; the classified answer.
   *
   * @param {Row[]} rows
   * @param {boolean} keepalive a request that outlives the page (no gzip: it must start now)
   */
  async _post(rows, keepalive) {
    const { stats } = this;
    const text = `{"logs":[${rows.map((row) => row.body).join(',')}]}`;
    const size = rows.reduce((sum, row) => sum + row.size + 1, 0);
    const gzip = !keepalive && this._compress && (rows.length >= GZIP_MIN_RECORDS || size >= GZIP_MIN_BYTES);
    const headers = { 'Content-Type': 'application/json' };
    if (this._o.apiKey) headers.Authorization = `Bearer ${this._o.apiKey}`;
    if (gzip) headers['Content-Encoding'] = 'gzip';
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException('timed out', 'TimeoutError')), this._o.timeoutMs);
    try {
      const body = gzip ? await gzipped(text) : text;
      stats.requests += 1;
      const response = await fetch(this._o.url, {
        method: 'POST',
        headers,
        body,
        keepalive,
        credentials: 'omit',
        mode: 'cors',
        cache: 'no-store',
        // A redirect is an answer from something other than the log server: not followed.
        redirect: 'manual',
        signal: controller.signal,
      });
      if (response.type === 'opaqueredirect') return classify(307, { location: 'a URL the browser hides' }, '');
      const answer = await response.text();
      return classify(response.status, response.headers, answer, { count: rows.length });
    } catch (error) {
      return classify(null, null, '', { error });
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Send `rows` now with a request that outlives the page (pagehide): keepalive fetch,
   * else `navigator.sendBeacon` where it can reach the server (same origin, no API key:
   * a beacon carries no Authorization header, and a cross-origin beacon of type
   * application/json needs a credentialed CORS preflight, which the server does not
   * allow). The rows stay queued; an ack that still reaches the page deletes them.
   *
   * @param {Queue|null} queue the queue holding the rows, when they are written
   * @param {Row[]} rows at most KEEPALIVE_BYTES of them
   * @returns {boolean} whether a request left
   */
  sendUrgent(queue, rows) {
    if (!rows.length) return false;
    if (typeof fetch === 'function' && 'keepalive' in Request.prototype) {
      this._post(rows, true).then(
        (outcome) => this._urgentAnswered(queue, rows, outcome),
        () => {},
      );
      return true;
    }
    return this._beacon(rows);
  }

  async _urgentAnswered(queue, rows, outcome) {
    if (outcome.kind !== 'ack' || !queue) return;
    const refused = new Set(outcome.rejected.map((item) => item.index));
    // Refused rows stay: the regular sender sends them again and dead-letters them.
    const kept = rows.filter((row, index) => !refused.has(index) && row.id !== undefined);
    this.stats.acknowledged += kept.length;
    this.stats.duplicates += outcome.duplicates;
    try {
      await queue.remove(kept.map((row) => row.id));
      this._o.onRemoved(queue, kept);
    } catch {
      // the page is going away; the next one sends them again
    }
  }

  _beacon(rows) {
    const beacon = globalThis.navigator?.sendBeacon;
    const sameOrigin = globalThis.location && new URL(this._o.url, globalThis.location.href).origin === globalThis.location.origin;
    if (typeof beacon !== 'function' || !sameOrigin || this._o.apiKey) return false;
    const text = `{"logs":[${rows.map((row) => row.body).join(',')}]}`;
    return navigator.sendBeacon(this._o.url, new Blob([text], { type: 'application/json' }));
  }
}

/** Wait `ms`: between a batch's 500s, while the sender holds the tabs' lock. */
function pause(ms) {
  return new Promise((resolve) => {
    setTimeout(resolve, ms);
  });
}

async function gzipped(text) {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Response(stream).arrayBuffer();
}
