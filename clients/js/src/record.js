/**
 * Building one record: level, message, event_id, the caller's fields, contexts, common
 * fields, redaction. The Node and the browser clients both build their records by these
 * rules, so a record means the same whichever runtime made it (the Node client writes its
 * records straight to JSON text with record-text.js, which takes its rules from here).
 *
 * It mirrors the Python client's `log_collector/client/record.py`: the same keys, the same
 * precedence (the call's own fields, then the caller, the request context, the user context,
 * the client's common fields) and the same redaction list. One difference in shape, not in
 * what is stored: a field that names no column travels under `metadata` here, where the
 * Python client sends it at the top level; the server puts both in the `metadata` column.
 *
 * Environment-neutral: no Node or DOM APIs, only `globalThis.crypto.getRandomValues`.
 */

/** The levels, lowest first (the store's `log_level` enum). */
export const LEVELS = Object.freeze(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL']);

const LEVEL_ALIASES = { warning: 'WARN', critical: 'FATAL' };

// Keys that name a column of the store (log_collector/server/ingest/fields.py FIELDS);
// every other key of a record is kept in its metadata. line_no names no column.
const COLUMNS = new Set([
  'created_at', 'level', 'log_type', 'environment', 'method', 'service', 'service_version',
  'trace_id', 'user_id', 'session_id', 'error_type', 'message', 'stack_trace', 'path',
  'action_type', 'function_name', 'file_path', 'duration_ms', 'event_id',
]);

// Columns the log call itself sets: a field of the same name is kept in metadata instead,
// so it is neither lost nor able to replace the call's level, message or identity.
const CALL_KEYS = new Set(['level', 'message', 'event_id']);

/** The columns a field of the call fills (the others are kept in its metadata). */
export const FIELD_COLUMNS = Object.freeze([...COLUMNS].filter((key) => !CALL_KEYS.has(key)));

// An option of the log call in the original client's API, never data.
const OPTION_KEYS = new Set(['autoCaller']);

/**
 * Whether `key` names an option of the log call (`autoCaller`), which no record keeps.
 *
 * @param {string} key
 * @returns {boolean}
 */
export function isOptionKey(key) {
  return OPTION_KEYS.has(key);
}

/** The client's common fields, filled when the call and its contexts leave them unset. */
export const COMMON_KEYS = Object.freeze(['service', 'environment', 'service_version', 'log_type']);

// The Python client's DEFAULT_REDACT_KEYS (log_collector/client/settings.py). A key matches
// when, lower-cased with '-' read as '_', it equals one of these: exact names rather than
// substrings, so "token_count" or "secretary" stay.
const REDACT_KEYS = new Set([
  'password', 'passwd', 'pwd', 'pass', 'secret', 'client_secret', 'token',
  'access_token', 'refresh_token', 'id_token', 'auth_token', 'session_token',
  'api_key', 'apikey', 'x_api_key', 'authorization', 'proxy_authorization',
  'cookie', 'set_cookie', 'private_key', 'credit_card', 'card_number', 'cvv',
  'ssn',
]);

/** What a sensitive key's value becomes. */
export const REDACTED = '[REDACTED]';
const MAX_DEPTH = 64; // deeper values are stored as "<too deep>"
const MAX_CAUSES = 5; // error causes followed into a stack trace

/**
 * The canonical name of a level: exact, any case, or an alias (`warning` -> `WARN`,
 * `critical` -> `FATAL`). An unknown name comes back upper-cased as given; the server
 * stores such a record as INFO and keeps the name in its metadata. No level gives `INFO`.
 *
 * @param {unknown} level
 * @returns {string}
 */
export function normalizeLevel(level) {
  if (level === null || level === undefined) return 'INFO';
  const text = typeof level === 'string' ? level : String(level);
  if (LEVELS.includes(text)) return text;
  const key = text.trim().toLowerCase();
  const upper = key.toUpperCase();
  if (LEVELS.includes(upper)) return upper;
  return LEVEL_ALIASES[key] ?? text.trim().toUpperCase();
}

// An id's text is made by String.fromCharCode from the hex digits' codes, one flat string
// with no joining of pieces. Its random bytes come from a pool refilled when used up, so
// most ids make no call into the random source.
const HEX_CODES = Array.from('0123456789abcdef', (digit) => digit.charCodeAt(0));
const DASH = 45;
const POOL_SIZE = 4096;
const pool = new Uint8Array(POOL_SIZE);
let poolOffset = POOL_SIZE;
let lastMs = -1;
let counter = 0;
// "tttttttt-tttt-" for lastMs (-1 before the first id): the ids of one millisecond share it.
let timeText = 'ffffffff-ffff-';

function randomBytes(n) {
  if (poolOffset + n > POOL_SIZE) {
    globalThis.crypto.getRandomValues(pool);
    poolOffset = 0;
  }
  const start = poolOffset;
  poolOffset += n;
  return start;
}

function hex(value, shift) {
  return HEX_CODES[(value >>> shift) & 0xf];
}

/**
 * A time-ordered UUID (RFC 9562 version 7): a 48-bit millisecond timestamp, a 12-bit
 * counter in `rand_a` (RFC 9562 section 6.2, method 1) and 62 random bits. Ids made in one
 * millisecond by one module instance sort in the order they were made; a clock that steps
 * back reuses the last timestamp, so the order holds across it too.
 *
 * @param {number} [unixMs] the timestamp to use, ms since the epoch (default: now)
 * @returns {string}
 */
export function uuidv7(unixMs = Date.now()) {
  const ms = Math.floor(Number.isFinite(unixMs) ? unixMs : Date.now());
  const at = randomBytes(10);
  if (ms > lastMs) {
    // A fresh millisecond: the counter starts at a random value below 2^11, which leaves
    // at least 2048 ids of headroom before it would carry into the timestamp.
    counter = ((pool[at] << 8) | pool[at + 1]) & 0x7ff;
    setTime(ms);
  } else {
    counter += 1;
    if (counter > 0xfff) {
      counter = 0;
      setTime(lastMs + 1);
    }
  }
  // rand_a is the counter (its start came from the first two bytes drawn); then the
  // variant (0b10) and rand_b, 62 random bits.
  const b2 = pool[at + 2];
  const b3 = pool[at + 3];
  const b4 = pool[at + 4];
  const b5 = pool[at + 5];
  const b6 = pool[at + 6];
  const b7 = pool[at + 7];
  const b8 = pool[at + 8];
  const b9 = pool[at + 9];
  return timeText + String.fromCharCode(
    0x37, hex(counter, 8), hex(counter, 4), hex(counter, 0), DASH,
    hex(0x80 | (b2 & 0x3f), 4), hex(b2, 0), hex(b3, 4), hex(b3, 0), DASH,
    hex(b4, 4), hex(b4, 0), hex(b5, 4), hex(b5, 0), hex(b6, 4), hex(b6, 0),
    hex(b7, 4), hex(b7, 0), hex(b8, 4), hex(b8, 0), hex(b9, 4), hex(b9, 0),
  );
}

function setTime(ms) {
  lastMs = ms;
  const high = Math.floor(ms / 0x100000000) & 0xffff;
  const low = ms >>> 0;
  timeText = String.fromCharCode(
    hex(high, 12), hex(high, 8), hex(high, 4), hex(high, 0),
    hex(low, 28), hex(low, 24), hex(low, 20), hex(low, 16), DASH,
    hex(low, 12), hex(low, 8), hex(low, 4), hex(low, 0), DASH,
  );
}

// Whether a key is sensitive, for the keys seen: most records use the same few keys, so
// each is lower-cased once. Emptied when full, so odd keys cannot grow it.
const sensitiveKeys = new Map();
const MAX_SENSITIVE_KEYS = 1000;

/**
 * Whether the value of `key` is stored as "[REDACTED]": `key`, lower-cased with '-' read
 * as '_', is one of the redacted names.
 *
 * @param {string} key
 * @returns {boolean}
 */
export function isSensitive(key) {
  let sensitive = sensitiveKeys.get(key);
  if (sensitive === undefined) {
    sensitive = REDACT_KEYS.has(key.toLowerCase().replaceAll('-', '_'));
    if (sensitiveKeys.size >= MAX_SENSITIVE_KEYS) sensitiveKeys.clear();
    sensitiveKeys.set(key, sensitive);
  }
  return sensitive;
}

/**
 * A JSON-safe copy of `value` with the values of sensitive keys (`password`, `token`,
 * `authorization`, `cookie`, ... any case, `-` or `_`, at any depth) replaced by
 * `"[REDACTED]"`. The argument is never changed.
 *
 * The copy holds only what JSON and IndexedDB can both hold: `undefined` and functions
 * are left out of objects (null in arrays), NaN and the infinities become null, a BigInt
 * becomes its decimal text, a Date its ISO text, an Error `"Name: message"`, a Map an
 * object, a Set or a typed array an array, a cycle `"<circular>"`.
 *
 * @param {unknown} value
 * @returns {unknown}
 */
export function redact(value) {
  return safeCopy(value, 0, []);
}

function safeCopy(value, depth, parents) {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return value.toString();
    case 'undefined':
    case 'function':
      return undefined;
    case 'symbol':
      return value.toString();
    default:
      break;
  }
  if (value === null) return null;
  if (depth >= MAX_DEPTH) return '<too deep>';
  if (parents.includes(value)) return '<circular>';
  parents.push(value);
  try {
    return copyObject(value, depth, parents);
  } catch (error) {
    // A getter or toJSON that throws, a revoked Proxy: the record keeps a placeholder.
    return `<unserializable: ${describe(error)}>`;
  } finally {
    parents.pop();
  }
}

function copyObject(value, depth, parents) {
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? null : value.toISOString();
  }
  if (isErrorLike(value)) return errorText(value);
  if (Array.isArray(value)) return copyArray(value, depth, parents);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return copyArray(Array.from(value), depth, parents);
  }
  if (value instanceof Set) return copyArray(Array.from(value), depth, parents);
  if (value instanceof Map) {
    const out = {};
    for (const [key, item] of value) copyEntry(out, String(key), item, depth, parents);
    return out;
  }
  if (typeof value.toJSON === 'function') {
    return safeCopy(value.toJSON(), depth + 1, parents);
  }
  const out = {};
  for (const key of Object.keys(value)) copyEntry(out, key, readProperty(value, key), depth, parents);
  return out;
}

/**
 * `object[key]`, or a placeholder text when reading it throws.
 *
 * @param {object} object
 * @param {string} key
 * @returns {unknown}
 */
export function readProperty(object, key) {
  try {
    return object[key];
  } catch (error) {
    return `<unserializable: ${describe(error)}>`;
  }
}

function copyArray(items, depth, parents) {
  return items.map((item) => {
    const copy = safeCopy(item, depth + 1, parents);
    return copy === undefined ? null : copy;
  });
}

function copyEntry(out, key, item, depth, parents) {
  if (isSensitive(key)) {
    if (item !== undefined) setOwn(out, key, REDACTED);
    return;
  }
  const copy = safeCopy(item, depth + 1, parents);
  if (copy !== undefined) setOwn(out, key, copy);
}

/**
 * `object[key] = value` as an own property whatever the key: `__proto__` too, which an
 * assignment would take as the object's prototype, and so leave out of its JSON.
 */
function setOwn(object, key, value) {
  if (key === '__proto__') {
    Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    object[key] = value;
  }
}

function isErrorLike(value) {
  if (value instanceof Error) return true;
  const tag = Object.prototype.toString.call(value);
  return tag === '[object Error]' || tag === '[object DOMException]';
}

function errorText(error) {
  const name = errorName(error);
  const message = error.message === undefined ? '' : String(error.message);
  return message ? `${name}: ${message}` : name;
}

function errorName(error) {
  if (typeof error.name === 'string' && error.name) return error.name;
  const ctor = error.constructor;
  return (ctor && typeof ctor.name === 'string' && ctor.name) || 'Error';
}

function describe(error) {
  try {
    return isErrorLike(error) ? errorText(error) : String(error);
  } catch {
    return 'unknown error';
  }
}

/**
 * The text of a message: a string as it is, an Error as "Name: message", another value
 * as JSON or its string form; `undefined` and `null` give ''.
 *
 * @param {unknown} message
 * @returns {string}
 */
export function toText(message) {
  if (typeof message === 'string') return message;
  if (message === undefined || message === null) return '';
  try {
    if (typeof message === 'object' && !isErrorLike(message)) {
      return JSON.stringify(safeCopy(message, 0, [])) ?? String(message);
    }
    return isErrorLike(message) ? errorText(message) : String(message);
  } catch (error) {
    return `<message could not be read: ${describe(error)}>`;
  }
}

/**
 * @typedef {object} Caller
 * @property {string} [function_name]
 * @property {string} [file_path]
 * @property {number} [line_no]
 */

/**
 * @typedef {object} CommonFields
 * @property {string|null} [service]
 * @property {string|null} [environment]
 * @property {string|null} [service_version]
 * @property {string|null} [log_type]
 */

/**
 * The wire record of one log call: `event_id`, `created_at` (Unix seconds, a float), the
 * columns, and `metadata` holding every other key.
 *
 * Precedence: the call's `fields`, then `caller`, then `requestContext`, then
 * `userContext`, then `common`; a key already set is never replaced by a later source.
 * A key counts as set when its value is anything but `undefined`, so `0`, `false`, `''`
 * and `null` are kept and are not filled from a context. A field named like a column
 * goes to the column (`created_at` too, in seconds or ISO 8601 text), except `level`,
 * `message` and `event_id`, which the call owns: a field of one of those names is kept
 * in metadata. A field `metadata` holding an object is merged into the metadata, the
 * top-level keys winning (as the server merges them). `autoCaller` is an option of the
 * log call and is left out. The inputs are never changed; sensitive keys are redacted.
 *
 * @param {object} args
 * @param {unknown} args.level
 * @param {unknown} args.message
 * @param {object|null} [args.fields] the caller's metadata object
 * @param {CommonFields|null} [args.common]
 * @param {object|null} [args.requestContext]
 * @param {object|null} [args.userContext]
 * @param {Caller|null} [args.caller]
 * @param {number} [args.now] ms since the epoch (default: `Date.now()`)
 * @returns {Record<string, unknown>}
 */
export function buildRecord({
  level, message, fields = null, common = null, requestContext = null, userContext = null,
  caller = null, now = Date.now(),
}) {
  const record = {
    level: normalizeLevel(level),
    message: toText(message),
    event_id: uuidv7(now),
  };
  const metadata = {};
  const explicit = [];
  for (const source of [fields, caller, requestContext, userContext]) {
    addSource(record, metadata, explicit, source);
  }
  if (record.created_at === undefined) record.created_at = now / 1000;
  if (common) {
    for (const key of COMMON_KEYS) {
      const value = common[key];
      if (record[key] === undefined && value !== undefined && value !== null) {
        record[key] = safeCopy(value, 0, []);
      }
    }
  }
  for (const extra of explicit) {
    for (const [key, value] of Object.entries(extra)) {
      if (!Object.hasOwn(metadata, key)) setOwn(metadata, key, value);
    }
  }
  if (Object.keys(metadata).length > 0) record.metadata = metadata;
  return record;
}

/**
 * The own enumerable keys of a source of fields (the call's fields, a context, the caller);
 * none for what is not an object, or for a revoked Proxy, which has nothing readable.
 *
 * @param {unknown} source
 * @returns {string[]}
 */
export function sourceKeys(source) {
  if (!source || typeof source !== 'object') return [];
  try {
    return Object.keys(source);
  } catch {
    return [];
  }
}

function addSource(record, metadata, explicit, source) {
  for (const key of sourceKeys(source)) {
    if (OPTION_KEYS.has(key)) continue;
    const value = readField(source, key);
    if (value === undefined) continue;
    if (key === 'metadata' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      explicit.push(value);
    } else if (COLUMNS.has(key) && !CALL_KEYS.has(key)) {
      if (record[key] === undefined) record[key] = value;
    } else if (!Object.hasOwn(metadata, key)) {
      // Own keys only: a field named `constructor` or `toString` is the caller's data.
      setOwn(metadata, key, value);
    }
  }
}

function readField(source, key) {
  const value = readProperty(source, key);
  if (value === undefined) return undefined;
  if (isSensitive(key)) return REDACTED;
  return safeCopy(value, 0, []);
}

/**
 * The `stack_trace` and `error_type` of a thrown value. An Error gives its stack (with its
 * `Name: message` line, which some engines leave out of `stack`) and its causes; another
 * value gives its text and its type name (`string`, `Object`, ...); `null` and `undefined`
 * give nulls, and the client then records where it was called from.
 *
 * @param {unknown} error
 * @returns {{stack_trace: string|null, error_type: string|null}}
 */
export function errorFields(error) {
  if (error === null || error === undefined) return { stack_trace: null, error_type: null };
  try {
    if (typeof error === 'object' && isErrorLike(error)) {
      return { stack_trace: stackWithCauses(error), error_type: errorName(error) };
    }
    return { stack_trace: toText(error), error_type: typeName(error) };
  } catch (failure) {
    return { stack_trace: `<error could not be read: ${describe(failure)}>`, error_type: 'Error' };
  }
}

function typeName(value) {
  if (typeof value !== 'object') return typeof value;
  const ctor = Object.getPrototypeOf(value)?.constructor;
  return (ctor && typeof ctor.name === 'string' && ctor.name) || 'Object';
}

function stackOf(error) {
  const head = errorText(error);
  const stack = typeof error.stack === 'string' ? error.stack : '';
  if (!stack) return head;
  // V8 starts the stack with "Name: message"; Firefox and Safari list only the frames.
  return stack.startsWith(head) || stack.includes(`${head}\n`) ? stack : `${head}\n${stack}`;
}

function stackWithCauses(error) {
  let text = stackOf(error);
  const seen = [error];
  let cause = error.cause;
  while (cause !== undefined && cause !== null && seen.length <= MAX_CAUSES && !seen.includes(cause)) {
    seen.push(cause);
    const causeText = typeof cause === 'object' && isErrorLike(cause) ? stackOf(cause) : toText(cause);
    text += `\nCaused by: ${causeText}`;
    cause = typeof cause === 'object' ? cause.cause : undefined;
  }
  return text;
}
