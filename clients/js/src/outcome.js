/**
 * What one POST's answer means for the rows of its batch.
 *
 * `classify` is the one place that maps a response (or the lack of one) to what the
 * sender does next; the Node and the browser senders both act on its answer. It mirrors
 * the Python client's `log_collector/client/transport.py` `classify`.
 *
 * Environment-neutral: no Node or DOM APIs.
 */

/** A Retry-After beyond this is taken as this: a misconfigured proxy must not park the queue for a day. */
export const MAX_RETRY_AFTER_MS = 300_000;

/**
 * The kinds `classify` answers with.
 * - `ack`: 2xx with the acknowledgement JSON; delete the rows, less the `rejected` indexes.
 * - `retry`: 5xx other than 503, 408, 404..., a network error or a timeout; keep the rows, back off.
 * - `retry_after`: 429 or 503; keep the rows, wait `retryAfterMs` (or back off without one).
 * - `split`: 413; send the batch in halves, dead-letter a single record that is still too large.
 * - `bisect`: 400 or 422 for the whole batch; halve it until the poisoned record stands alone.
 * - `auth`: 401 or 403; keep the rows, back off long, warn once.
 * - `bad_ack`: a 2xx that is not the acknowledgement, or a 3xx; something other than a
 *   log-collector server answered (a login page, a redirect); keep the rows, back off, warn.
 */
export const KINDS = Object.freeze(['ack', 'retry', 'retry_after', 'split', 'bisect', 'auth', 'bad_ack']);

/**
 * @typedef {object} Outcome
 * @property {'ack'|'retry'|'retry_after'|'split'|'bisect'|'auth'|'bad_ack'} kind
 * @property {number|null} status the HTTP status, null when no answer came
 * @property {number} [retryAfterMs] for `retry_after`, when the server said how long
 * @property {Array<{index: number, reason: string}>} [rejected] for `ack`: records refused for good
 * @property {number} [duplicates] for `ack`: records the server already had
 * @property {string} detail a short reason, for warnings
 */

/**
 * Classify one answer to a POST of `count` records.
 *
 * @param {number|null} status HTTP status, or null/0 when the request got no answer
 *   (refused, reset, timed out): the server may have stored the batch, and the event_ids
 *   make resending it harmless.
 * @param {{get(name: string): (string|null|undefined)}|Record<string, string>|null} [headers]
 * @param {string} [bodyText]
 * @param {{count?: number, now?: () => number, error?: unknown}} [options]
 *   `count` bounds the rejected indexes; `now` (ms since the epoch) resolves an HTTP-date
 *   Retry-After; `error` describes a request that got no answer.
 * @returns {Outcome}
 */
export function classify(status, headers, bodyText = '', options = {}) {
  const { count = Infinity, now = Date.now, error } = options;
  if (!status) {
    return { kind: 'retry', status: null, detail: shortReason(error) };
  }
  const text = typeof bodyText === 'string' ? bodyText : '';
  const detail = `HTTP ${status}${text ? `: ${text.slice(0, 300)}` : ''}`;
  if (status >= 200 && status < 300) {
    return classifyAck(status, headers, text, count);
  }
  if (status >= 300 && status < 400) {
    const location = headerValue(headers, 'location') || 'nowhere';
    return {
      kind: 'bad_ack',
      status,
      detail: `HTTP ${status}: redirected to ${location}; redirects are not followed, set serverUrl to the log-collector server itself`,
    };
  }
  if (status === 429 || status === 503) {
    const retryAfterMs = parseRetryAfter(headerValue(headers, 'retry-after'), now);
    const outcome = { kind: 'retry_after', status, detail };
    if (retryAfterMs !== null) outcome.retryAfterMs = retryAfterMs;
    return outcome;
  }
  if (status === 413) return { kind: 'split', status, detail };
  if (status === 400 || status === 422) return { kind: 'bisect', status, detail };
  if (status === 401 || status === 403) return { kind: 'auth', status, detail };
  // 500, 502, 504, 404 from a wrong path, 408: nothing here points at the records
  // themselves, so the rows stay and the batch is sent again after a backoff.
  return { kind: 'retry', status, detail };
}

function classifyAck(status, headers, text, count) {
  // Only the server's own answer acknowledges: {"status": "ok", ...} (the original server's
  // {"status": "ok", "count": N} too). An empty 200 from a proxy or a captive portal's page
  // stored nothing, so the rows must stay.
  let payload = null;
  try {
    payload = JSON.parse(text);
  } catch {
    payload = null;
  }
  if (!payload || typeof payload !== 'object' || Array.isArray(payload) || payload.status !== 'ok') {
    const type = headerValue(headers, 'content-type') || 'no Content-Type';
    const preview = text.replace(/\s+/g, ' ').trim().slice(0, 80);
    return {
      kind: 'bad_ack',
      status,
      detail: `HTTP ${status}: not a log-collector server, the answer is not the acknowledgement JSON (${type}${preview ? `: ${JSON.stringify(preview)}` : ', empty body'})`,
    };
  }
  const duplicates = Number.isInteger(payload.duplicates) ? payload.duplicates : 0;
  return { kind: 'ack', status, rejected: rejectedIndexes(payload.rejected, count), duplicates, detail: `HTTP ${status}` };
}

function rejectedIndexes(items, count) {
  if (!Array.isArray(items)) return [];
  const seen = new Set();
  const found = [];
  for (const item of items) {
    if (!item || typeof item !== 'object') continue;
    const { index } = item;
    if (!Number.isInteger(index) || index < 0 || index >= count || seen.has(index)) continue;
    seen.add(index);
    found.push({ index, reason: String(item.reason ?? 'rejected by the server') });
  }
  return found;
}

function headerValue(headers, name) {
  if (!headers) return null;
  if (typeof headers.get === 'function') return headers.get(name) ?? null;
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted) return Array.isArray(value) ? value[0] : value;
  }
  return null;
}

/**
 * Milliseconds to wait from a Retry-After value: delta-seconds or an HTTP-date
 * (RFC 9110 section 10.2.3), clamped to [0, MAX_RETRY_AFTER_MS]; null when absent or unreadable.
 *
 * @param {string|null|undefined} value
 * @param {() => number} [now] ms since the epoch
 * @returns {number|null}
 */
export function parseRetryAfter(value, now = Date.now) {
  if (value === null || value === undefined) return null;
  const text = String(value).trim();
  if (!text) return null;
  let ms;
  if (/^\d+(\.\d+)?$/.test(text)) {
    ms = Number(text) * 1000;
  } else {
    const when = Date.parse(text);
    if (Number.isNaN(when)) return null;
    ms = when - now();
  }
  if (!Number.isFinite(ms)) return null;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/**
 * Exponential backoff with full jitter: a uniform wait in [0, min(cap, base * 2^attempt)).
 * https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
 *
 * @param {number} attempt 0 for the first retry
 * @param {{baseMs?: number, capMs?: number}} [limits]
 * @param {() => number} [random] a uniform number in [0, 1)
 * @returns {number}
 */
export function backoffMs(attempt, { baseMs = 500, capMs = 30_000 } = {}, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempt, 0), 30));
  return random() * ceiling;
}

/**
 * A few words for why a request got no answer: "connection refused", "timed out", ...
 *
 * @param {unknown} error
 * @returns {string}
 */
export function shortReason(error) {
  if (!error) return 'no answer';
  const chain = [];
  for (let current = error; current && chain.length < 10; current = current.cause) chain.push(current);
  for (const item of chain) {
    const code = typeof item === 'object' ? item.code : undefined;
    const name = typeof item === 'object' ? item.name : undefined;
    if (code === 'ECONNREFUSED') return 'connection refused';
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'name not resolved';
    if (code === 'ECONNRESET') return 'connection reset';
    if (code === 'EPIPE' || code === 'UND_ERR_SOCKET') return 'connection closed without an answer';
    if (code === 'ETIMEDOUT' || name === 'TimeoutError' || name === 'AbortError') return 'timed out';
  }
  const first = chain[0];
  if (typeof first === 'object' && first.message) return String(first.message).slice(0, 200);
  return String(first).slice(0, 200);
}

/**
 * A sender's counters (Node's sender.js and the browser's browser-sender.js), all zero:
 * requests made, records acknowledged, duplicates the server reported, records
 * dead-lettered, retries, and the last error.
 */
export function senderStats() {
  return { requests: 0, acknowledged: 0, duplicates: 0, deadLettered: 0, retries: 0, lastError: null };
}
