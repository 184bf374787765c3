/**
 * The Node client's settings, resolved and checked once at construction.
 *
 * Precedence: an explicit option, then the environment (`LOG_SERVER_URL`, `SERVICE_NAME`,
 * `ENVIRONMENT` or `NODE_ENV`, `SERVICE_VERSION`, `LOG_TYPE`, `ENABLE_GLOBAL_ERROR_HANDLER`,
 * `LOG_COLLECTOR_SPOOL_DIR`, `LOG_COLLECTOR_API_KEY`, `LOG_COLLECTOR_SPOOL_FULL_POLICY`), then a `.env` file in the working
 * directory (read, never written into `process.env`), then the working directory's
 * `package.json` (name and version, as the original client did), then the defaults.
 * An invalid value throws a `TypeError` naming the option.
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Every option's default, once. Durations are milliseconds, as in the original client. */
export const DEFAULTS = Object.freeze({
  serverUrl: 'http://localhost:8000',
  service: null,
  environment: 'development',
  serviceVersion: 'v0.0.0-dev',
  logType: 'BACKEND',
  batchSize: 1000,
  flushInterval: 1000,
  enableCompression: true,
  enableGlobalErrorHandler: false,
  spoolDir: null,
  apiKey: null,
  timeout: 5000,
  maxSpoolBytes: 256 * MiB,
  spoolFullPolicy: 'drop_oldest',
  maxRecordAge: null,
  exitTimeout: 2000,
  maxBackoff: 30_000,
  gzipMinRecords: 100,
  gzipMinBytes: 16 * KiB,
});

/** The smallest spool cap: below it one large record could not fit. */
export const MIN_SPOOL_BYTES = 64 * KiB;
/** What a full spool drops: its oldest records, or the record being logged. */
export const SPOOL_FULL_POLICIES = Object.freeze(['drop_oldest', 'drop_newest']);
/** The shortest `maxRecordAge` (ms): a briefer outage must not cost records. */
export const MIN_RECORD_AGE = 60_000;
/** The largest batch the server takes in one request (its default max_records). */
export const MAX_BATCH_SIZE = 10_000;

const ENV = {
  serverUrl: ['LOG_SERVER_URL'],
  service: ['SERVICE_NAME'],
  environment: ['ENVIRONMENT', 'NODE_ENV'],
  serviceVersion: ['SERVICE_VERSION'],
  logType: ['LOG_TYPE'],
  enableGlobalErrorHandler: ['ENABLE_GLOBAL_ERROR_HANDLER'],
  spoolDir: ['LOG_COLLECTOR_SPOOL_DIR'],
  apiKey: ['LOG_COLLECTOR_API_KEY'],
  spoolFullPolicy: ['LOG_COLLECTOR_SPOOL_FULL_POLICY'],
};

/**
 * @typedef {object} Settings
 * @property {string} serverUrl without a trailing slash
 * @property {string|null} service
 * @property {string} environment
 * @property {string} serviceVersion
 * @property {string} logType
 * @property {number} batchSize
 * @property {number} flushInterval ms
 * @property {boolean} enableCompression
 * @property {boolean} enableGlobalErrorHandler
 * @property {string} spoolDir absolute
 * @property {string|null} apiKey
 * @property {number} timeout ms, per request
 * @property {number} maxSpoolBytes
 * @property {'drop_oldest'|'drop_newest'} spoolFullPolicy
 * @property {number|null} maxRecordAge ms; older records are dropped before a read
 * @property {number} exitTimeout ms the flush at `beforeExit` may take
 * @property {number} maxBackoff ms
 * @property {number} gzipMinRecords
 * @property {number} gzipMinBytes
 */

/**
 * Resolve the settings of one client.
 *
 * @param {string|null|undefined} serverUrl
 * @param {object} [options]
 * @param {{env?: Record<string, string|undefined>, cwd?: string, homedir?: string}} [where]
 *   the environment and directories to read (tests pass their own)
 * @returns {Settings}
 */
export function resolveSettings(serverUrl, options = {}, where = {}) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('log-collector: options must be an object');
  }
  const env = where.env ?? process.env;
  const cwd = where.cwd ?? process.cwd();
  const dotenv = readDotenv(cwd);
  const pkg = readPackageJson(cwd);
  const pick = (name, fallback) => {
    const given = name === 'serverUrl' ? serverUrl : options[name];
    if (given !== undefined && given !== null && given !== '') return given;
    for (const source of [env, dotenv]) {
      for (const variable of ENV[name] ?? []) {
        const value = source[variable];
        if (value !== undefined && value !== '') return value;
      }
    }
    return fallback ?? DEFAULTS[name];
  };
  const service = optionalText('service', pick('service', pkg.name));
  const settings = {
    serverUrl: url(pick('serverUrl')),
    service,
    environment: text('environment', pick('environment')),
    serviceVersion: text('serviceVersion', pick('serviceVersion', pkg.version)),
    logType: text('logType', pick('logType')),
    batchSize: integer('batchSize', pick('batchSize'), 1, MAX_BATCH_SIZE),
    flushInterval: number('flushInterval', pick('flushInterval'), 10),
    enableCompression: bool('enableCompression', pick('enableCompression')),
    enableGlobalErrorHandler: bool('enableGlobalErrorHandler', pick('enableGlobalErrorHandler')),
    spoolDir: null,
    apiKey: optionalText('apiKey', pick('apiKey')),
    timeout: number('timeout', pick('timeout'), 50),
    maxSpoolBytes: integer('maxSpoolBytes', pick('maxSpoolBytes'), MIN_SPOOL_BYTES, Number.MAX_SAFE_INTEGER),
    spoolFullPolicy: choice('spoolFullPolicy', pick('spoolFullPolicy'), SPOOL_FULL_POLICIES),
    maxRecordAge: optionalNumber('maxRecordAge', pick('maxRecordAge'), MIN_RECORD_AGE),
    exitTimeout: number('exitTimeout', pick('exitTimeout'), 0),
    maxBackoff: number('maxBackoff', pick('maxBackoff'), 50),
    gzipMinRecords: integer('gzipMinRecords', pick('gzipMinRecords'), 1, Number.MAX_SAFE_INTEGER),
    gzipMinBytes: integer('gzipMinBytes', pick('gzipMinBytes'), 1, Number.MAX_SAFE_INTEGER),
  };
  const dir = pick('spoolDir');
  settings.spoolDir = dir
    ? path.resolve(cwd, expandHome(String(dir), where.homedir))
    : defaultSpoolDir(service, env, where.homedir);
  return Object.freeze(settings);
}

/**
 * `$XDG_CACHE_HOME` (else `~/.cache`) `/log-collector/<service>/`.
 *
 * @param {string|null} service
 * @param {Record<string, string|undefined>} env
 * @param {string} [homedir]
 * @returns {string}
 */
export function defaultSpoolDir(service, env = process.env, homedir = undefined) {
  const home = homedir ?? os.homedir();
  const cache = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME)
    ? env.XDG_CACHE_HOME
    : path.join(home, '.cache');
  return path.join(cache, 'log-collector', safeName(service || 'default'));
}

function safeName(name) {
  const cleaned = String(name).replace(/[^A-Za-z0-9._@-]+/g, '_').replace(/^\.+/, '_');
  return cleaned.slice(0, 100) || 'default';
}

function expandHome(dir, homedir) {
  if (dir === '~' || dir.startsWith('~/')) return path.join(homedir ?? os.homedir(), dir.slice(1));
  return dir;
}

/**
 * `KEY=VALUE` lines of `.env` in `cwd`; `#` comments, optional `export ` and quotes.
 *
 * @param {string} cwd
 * @returns {Record<string, string>}
 */
export function readDotenv(cwd) {
  let content;
  try {
    content = fs.readFileSync(path.join(cwd, '.env'), 'utf8');
  } catch {
    return {};
  }
  const values = {};
  for (const raw of content.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(raw);
    if (!match) continue;
    let value = match[2];
    const quoted = /^(['"])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2];
    else value = value.replace(/\s+#.*$/, '');
    values[match[1]] = value;
  }
  return values;
}

function readPackageJson(cwd) {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(cwd, 'package.json'), 'utf8'));
    return {
      name: typeof pkg.name === 'string' ? pkg.name : undefined,
      version: typeof pkg.version === 'string' ? pkg.version : undefined,
    };
  } catch {
    return {};
  }
}

function fail(name, value, why) {
  let shown;
  try {
    shown = JSON.stringify(value);
  } catch {
    shown = String(value);
  }
  return new TypeError(`log-collector: option ${name}=${shown} ${why}`);
}

function url(value) {
  const textValue = String(value).trim();
  let parsed;
  try {
    parsed = new URL(textValue);
  } catch {
    throw fail('serverUrl', value, 'must be an http(s) URL such as http://localhost:8000');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw fail('serverUrl', value, 'must use http or https');
  }
  return textValue.replace(/\/+$/, '');
}

function text(name, value) {
  if (typeof value !== 'string' || !value.trim()) throw fail(name, value, 'must be a non-empty string');
  return value;
}

function optionalText(name, value) {
  if (value === undefined || value === null) return null;
  return text(name, value);
}

function number(name, value, minimum) {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < minimum) {
    throw fail(name, value, `must be a number of at least ${minimum}`);
  }
  return n;
}

function optionalNumber(name, value, minimum) {
  return value === undefined || value === null ? null : number(name, value, minimum);
}

function choice(name, value, choices) {
  if (!choices.includes(value)) throw fail(name, value, `must be one of ${choices.join(', ')}`);
  return value;
}

function integer(name, value, minimum, maximum) {
  const n = typeof value === 'string' ? Number(value) : value;
  if (!Number.isInteger(n) || n < minimum || n > maximum) {
    throw fail(name, value, `must be an integer from ${minimum} to ${maximum}`);
  }
  return n;
}

function bool(name, value) {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const lowered = value.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(lowered)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(lowered)) return false;
  }
  throw fail(name, value, 'must be a boolean (true/false)');
}
