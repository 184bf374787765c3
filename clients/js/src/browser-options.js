/**
 * The browser client's options: defaults, checked once at construction. Durations are
 * milliseconds, as in the original client and the Node client (src/settings.js). A browser
 * has no environment variables or `.env` file: options come from the code.
 */

const MiB = 1024 * 1024;

/** Every option's default, once. */
export const DEFAULTS = Object.freeze({
  serverUrl: 'http://localhost:8000',
  service: null,
  environment: 'development',
  serviceVersion: 'v0.0.0-dev',
  logType: 'FRONTEND',
  batchSize: 1000,
  flushInterval: 1000,
  enableCompression: true,
  enableGlobalErrorHandler: false,
  apiKey: null,
  timeout: 5000,
  maxBackoff: 30_000,
  maxSpoolBytes: 32 * MiB,
  minLevel: 'TRACE',
  queueName: null,
});

/** The in-memory queue, used when IndexedDB cannot be, holds at most this. */
export const MAX_MEMORY_BYTES = 8 * MiB;
/** The smallest size cap: below it one record with a stack trace could not fit. */
export const MIN_SPOOL_BYTES = 64 * 1024;
/** The largest batch the server takes in one request (its default max_records). */
export const MAX_BATCH_SIZE = 10_000;

const POSITIVE = ['batchSize', 'flushInterval', 'timeout', 'maxBackoff', 'maxSpoolBytes'];

/**
 * @typedef {object} BrowserSettings
 * @property {string} serverUrl without a trailing slash
 * @property {string|null} service
 * @property {string} environment
 * @property {string} serviceVersion
 * @property {string} logType
 * @property {number} batchSize
 * @property {number} flushInterval
 * @property {boolean} enableCompression
 * @property {boolean} enableGlobalErrorHandler
 * @property {string|null} apiKey
 * @property {number} timeout
 * @property {number} maxBackoff
 * @property {number} maxSpoolBytes
 * @property {string} minLevel
 * @property {string} queueName the IndexedDB database
 */

/**
 * The settings of one client; a `TypeError` naming the option for an invalid value.
 *
 * @param {string|null|undefined} serverUrl
 * @param {object} [options]
 * @returns {Readonly<BrowserSettings>}
 */
export function resolveSettings(serverUrl, options = {}) {
  const given = Object.fromEntries(
    Object.entries(options ?? {}).filter(([, value]) => value !== undefined && value !== null),
  );
  const s = { ...DEFAULTS, ...given };
  s.serverUrl = checkUrl(serverUrl || DEFAULTS.serverUrl);
  for (const name of POSITIVE) {
    if (typeof s[name] !== 'number' || !(s[name] > 0)) fail(name, s[name], 'must be a positive number');
  }
  s.batchSize = Math.floor(s.batchSize);
  if (s.batchSize > MAX_BATCH_SIZE) fail('batchSize', s.batchSize, `must be at most ${MAX_BATCH_SIZE}`);
  if (s.maxSpoolBytes < MIN_SPOOL_BYTES) fail('maxSpoolBytes', s.maxSpoolBytes, `must be at least ${MIN_SPOOL_BYTES}`);
  s.enableCompression = s.enableCompression !== false;
  s.enableGlobalErrorHandler = Boolean(s.enableGlobalErrorHandler);
  s.queueName = s.queueName ?? `log-collector-durable:${s.serverUrl}`;
  return Object.freeze(s);
}

function checkUrl(value) {
  let url;
  try {
    url = new URL(String(value), globalThis.location?.href);
  } catch {
    fail('serverUrl', value, "must be a URL such as 'https://logs.example.com'");
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    fail('serverUrl', value, 'must be an http:// or https:// URL');
  }
  return url.href.replace(/\/+$/, '');
}

function fail(name, value, why) {
  throw new TypeError(`log-collector: invalid option ${name}=${JSON.stringify(value) ?? String(value)}: ${why}`);
}
