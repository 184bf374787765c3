/**
 * The Node client's records as JSON text: `encodeRecord` writes the text
 * `JSON.stringify(buildRecord(args))` would give (record.js), field by field, without the
 * record object and its second walk by JSON.stringify. It runs inside every log call, so
 * what repeats from call to call is encoded once: each key, the common fields, the level's
 * opening text, created_at within a millisecond, and the caller of each call site
 * (`frozenCaller`). record.js keeps the rules; test/unit/record-text.test.js holds the
 * two to the same text.
 */

import {
  COMMON_KEYS, FIELD_COLUMNS, LEVELS, REDACTED, isOptionKey, isSensitive, normalizeLevel,
  readProperty, redact, sourceKeys, toText, uuidv7,
} from './record.js';

// Each column a field may fill has a bit in the set an encoded record keeps (fewer than 31).
const COLUMN_INDEX = new Map(FIELD_COLUMNS.map((key, index) => [key, index]));
const CREATED_AT_BIT = 1 << COLUMN_INDEX.get('created_at');
const COMMON_COLUMNS = COMMON_KEYS.map((key) => ({ key, bit: 1 << COLUMN_INDEX.get(key), json: `,"${key}":` }));
const COMMON_BITS = COMMON_COLUMNS.reduce((bits, column) => bits | column.bit, 0);

// `{"level":"INFO","message":` and the like, made once per level.
const LEVEL_HEADS = new Map(LEVELS.map((name) => [name, `{"level":"${name}","message":`]));

// Characters JSON.stringify escapes in a string (lone surrogates included).
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

// Metadata keys that are array indexes, which JSON.stringify writes first.
const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;

// created_at's text for the last `now`: the records of one millisecond share it.
const createdCache = { now: NaN, text: '' };

// The common fields' text for the values last seen, when the fields set none of them: a
// client passes the same ones on every call.
const commonCache = { values: [], text: null };

// What a call site keeps when its calls cannot use a layout (a field fills a column or is
// redacted, a value is an object): its calls go field by field without looking again.
const NO_LAYOUT = Object.freeze({ level: NaN, message: '', common: null, commonValues: [], keys: [] });
// Calls that fit a site's layout but for a value, before it is dropped (if fewer fit).
const MISSES_BEFORE_GIVING_UP = 4;

// Callers made by `frozenCaller`, with their fields as `RecordText` reads them: each entry,
// and for the usual case, the columns' text in one piece and the metadata entries.
const encodedCallers = new WeakMap();

// Keys seen, each with what the record does with it: most calls use the same few keys.
// Emptied when full, so odd keys cannot grow it.
const keyFacts = new Map();
const MAX_KEY_FACTS = 1000;

/**
 * @typedef {object} KeyFacts
 * @property {boolean} sensitive its value is stored as "[REDACTED]"
 * @property {number} column the column's index in FIELD_COLUMNS; -1 for a metadata key
 * @property {string} json the key as a JSON object key with its colon: `"key":`
 */

/** @returns {KeyFacts} */
function factsOf(key) {
  let facts = keyFacts.get(key);
  if (facts === undefined) {
    facts = { sensitive: isSensitive(key), column: COLUMN_INDEX.get(key) ?? -1, json: `${JSON.stringify(key)}:` };
    if (keyFacts.size >= MAX_KEY_FACTS) keyFacts.clear();
    keyFacts.set(key, facts);
  }
  return facts;
}

/**
 * The record of `buildRecord(args)` as JSON text, written as the fields are read, without
 * the record object: the text `JSON.stringify(buildRecord(args))` gives (but for the
 * event_id, a new one), with `createdAt`, the record's `created_at` in Unix seconds
 * (`args.now` when a field gives none or gives a text). What the Node client stores.
 *
 * @param {Parameters<typeof import('./record.js').buildRecord>[0]} args
 * @returns {{body: string, createdAt: number}}
 */
export function encodeRecord({
  level, message, fields = null, common = null, requestContext = null, userContext = null,
  caller = null, now = Date.now(),
}) {
  if (requestContext == null && userContext == null && caller !== null && typeof message === 'string'
    && fields !== null && typeof fields === 'object' && Number.isFinite(now)) {
    const known = encodedCallers.get(caller);
    if (known !== undefined) {
      const body = fromLayout(known, level, message, fields, common, now);
      if (body !== null) return { body, createdAt: now / 1000 };
    }
  }
  const text = new RecordText();
  text.add(fields);
  text.addCaller(caller);
  text.add(requestContext);
  text.add(userContext);
  let body = `${levelHead(level)}${quote(toText(message))},"event_id":"${uuidv7(now)}"${text.columns}`;
  let createdAt = text.createdAt;
  if ((text.set & CREATED_AT_BIT) === 0) {
    createdAt = now / 1000;
    body += createdText(now);
  } else if (typeof createdAt !== 'number') {
    createdAt = now / 1000;
  }
  if (common) body += commonText(common, text.set);
  if (text.explicit !== null) {
    for (const extra of text.explicit) {
      for (const [key, value] of Object.entries(extra)) text.addMetadata(key, factsOf(key).json, value, null);
    }
  }
  const metadata = text.metadata();
  return { body: metadata === '' ? `${body}}` : `${body},"metadata":{${metadata}}}`, createdAt };
}

function levelHead(level) {
  const name = normalizeLevel(level);
  return LEVEL_HEADS.get(name) ?? `{"level":${quote(name)},"message":`;
}

/** A string as JSON.stringify writes it; most need no escape, and skip its call. */
function quote(text) {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`;
}

/** What `encodeRecord` has written so far from the sources, by the rules of record.js `addSource`. */
class RecordText {
  constructor() {
    /** `,"column":value` for each column filled so far, in that order. */
    this.columns = '';
    /** A bit (1 << COLUMN_INDEX) for each column filled. */
    this.set = 0;
    /** created_at as a field gave it. */
    this.createdAt = undefined;
    /** The `metadata` objects of the sources, merged last. */
    this.explicit = null;
    this._metadata = '';
    this._keys = [];
    // Metadata keys that are array indexes: JSON.stringify puts them first, in order.
    this._indexed = null;
  }

  add(source) {
    const keys = sourceKeys(source);
    for (let i = 0; i < keys.length; i += 1) {
      const key = keys[i];
      if (isOptionKey(key)) continue;
      const raw = readProperty(source, key);
      if (raw === undefined) continue;
      const facts = factsOf(key);
      const value = facts.sensitive ? REDACTED : redact(raw);
      if (value !== undefined) this._put(key, facts, value, null);
    }
  }

  /** Add the caller: one made by `frozenCaller` is copied as it was encoded. */
  addCaller(caller) {
    const known = caller !== null && typeof caller === 'object' ? encodedCallers.get(caller) : undefined;
    if (known === undefined) {
      this.add(caller);
      return;
    }
    if ((this.set & known.bits) === 0) {
      // The usual case: no field named function_name or file_path. One piece of text.
      this.set |= known.bits;
      this.columns += known.columns;
      for (const entry of known.metadata) this.addMetadata(entry.key, entry.facts.json, entry.value, entry.json);
      return;
    }
    for (const entry of known.entries) this._put(entry.key, entry.facts, entry.value, entry.json);
  }

  /** `json` is the value's JSON text, or null to make it when it is used. */
  _put(key, facts, value, json) {
    if (key === 'metadata' && value !== null && typeof value === 'object' && !Array.isArray(value)) {
      (this.explicit ??= []).push(value);
    } else if (facts.column !== -1) {
      const bit = 1 << facts.column;
      if ((this.set & bit) !== 0) return;
      this.set |= bit;
      this.columns += `,${facts.json}${json ?? jsonOf(value)}`;
      if (bit === CREATED_AT_BIT) this.createdAt = value;
    } else {
      this.addMetadata(key, facts.json, value, json);
    }
  }

  /** Add `key` unless it is there already. */
  addMetadata(key, keyJson, value, json) {
    if (this._keys.includes(key)) return;
    this._keys.push(key);
    const member = `${keyJson}${json ?? jsonOf(value)}`;
    const code = key.charCodeAt(0);
    if (code >= 48 && code <= 57 && ARRAY_INDEX.test(key) && Number(key) < 4294967295) {
      (this._indexed ??= []).push([Number(key), member]);
    } else {
      this._metadata += this._metadata === '' ? member : `,${member}`;
    }
  }

  /** The metadata object's members, in the order JSON.stringify gives them. */
  metadata() {
    if (this._indexed === null) return this._metadata;
    const members = this._indexed.sort((a, b) => a[0] - b[0]).map((entry) => entry[1]);
    if (this._metadata !== '') members.push(this._metadata);
    return members.join(',');
  }
}

/**
 * A caller (function_name, file_path, line_no) that cannot change, its fields read and
 * JSON-encoded once: the Node client makes one per call site and gives it to every record
 * logged from there, so `encodeRecord` copies its text.
 *
 * @param {string} functionName
 * @param {string|null} filePath
 * @param {number|null} lineNo
 * @returns {Readonly<import('./record.js').Caller>}
 */
export function frozenCaller(functionName, filePath, lineNo) {
  const caller = Object.freeze({ function_name: functionName, file_path: filePath, line_no: lineNo });
  const entries = [];
  for (const key of Object.keys(caller)) {
    const value = redact(caller[key]);
    if (value !== undefined) entries.push({ key, facts: factsOf(key), value, json: jsonOf(value) });
  }
  const columns = entries.filter((entry) => entry.facts.column !== -1);
  encodedCallers.set(caller, {
    layout: null,
    candidate: null,
    entries,
    bits: columns.reduce((bits, entry) => bits | (1 << entry.facts.column), 0),
    columns: columns.map((entry) => `,${entry.facts.json}${entry.json}`).join(''),
    metadata: entries.filter((entry) => entry.facts.column === -1),
  });
  return caller;
}

/**
 * @typedef {object} Layout
 * A call site's record as fixed text around the parts that change from call to call: the
 * event_id, created_at and the values of the fields. It holds for calls from that site
 * with the same level, message, common fields and field names (in the same order), no
 * contexts, and fields whose names fill no column and need no rule of their own.
 * @property {unknown} level
 * @property {string} message
 * @property {object|null} common
 * @property {unknown[]} commonValues
 * @property {string[]} keys the field names, as Object.keys gives them
 * @property {string} head up to the event_id's opening quote
 * @property {string} afterId from the event_id's closing quote to created_at's text
 * @property {string} beforeFields the common fields and the metadata's opening brace
 * @property {string[]} members each field's `"key":`, from the second on with its comma
 * @property {string} tail the caller's metadata members and the closing braces
 * @property {number} hits calls written from it
 * @property {number} misses calls that fit it but for a value (see `missed`)
 */

/**
 * The record's text from the call site's layout, or null when the call does not fit it
 * (then `encodeRecord` writes it field by field). A call that would fit a layout made from
 * it is noted; the next such call from the site, with the same level, message and field
 * names, makes the layout, so a site whose message changes on every call makes none.
 *
 * @returns {string|null}
 */
function fromLayout(known, level, message, fields, common, now) {
  const layout = known.layout;
  if (layout === NO_LAYOUT) return null;
  let keys;
  try {
    keys = Object.keys(fields);
  } catch {
    return null;
  }
  if (layout === null || !fits(layout, level, message, common, keys)) {
    const candidate = known.candidate;
    if (candidate !== null && fits(candidate, level, message, common, keys)) {
      known.layout = makeLayout(known, level, message, common, keys);
      known.candidate = null;
    } else {
      known.candidate = { level, message, common, commonValues: commonValuesOf(common), keys };
    }
    return null;
  }
  let values = '';
  for (let i = 0; i < keys.length; i += 1) {
    let value;
    try {
      value = fields[keys[i]];
    } catch {
      return null;
    }
    let json;
    switch (typeof value) {
      case 'string':
        json = NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
        break;
      case 'number':
        json = Number.isFinite(value) ? `${value}` : 'null';
        break;
      case 'boolean':
        json = value ? 'true' : 'false';
        break;
      default:
        if (value !== null) return missed(known, layout); // an object, undefined, a bigint
        json = 'null';
    }
    values += `${layout.members[i]}${json}`;
  }
  layout.hits += 1;
  return `${layout.head}${uuidv7(now)}${layout.afterId}${createdText(now)}${layout.beforeFields}${values}${layout.tail}`;
}

/**
 * A call that fit `layout` but for a value only the field-by-field encoder writes: after a
 * few such calls, more than fit, the site keeps no layout, so its calls skip the look.
 *
 * @returns {null}
 */
function missed(known, layout) {
  layout.misses += 1;
  if (layout.misses >= MISSES_BEFORE_GIVING_UP && layout.misses > layout.hits) known.layout = NO_LAYOUT;
  return null;
}

function fits(layout, level, message, common, keys) {
  if (layout.level !== level || layout.message !== message || layout.common !== common) return false;
  const known = layout.keys;
  if (known.length !== keys.length) return false;
  for (let i = 0; i < keys.length; i += 1) if (known[i] !== keys[i]) return false;
  if (common === null) return true;
  const values = layout.commonValues;
  for (let i = 0; i < COMMON_COLUMNS.length; i += 1) {
    if (common[COMMON_COLUMNS[i].key] !== values[i]) return false;
  }
  return true;
}

function commonValuesOf(common) {
  return common === null ? [] : COMMON_COLUMNS.map((column) => common[column.key]);
}

/** The layout of `known`'s call site for these calls, or NO_LAYOUT when they cannot have one. */
function makeLayout(known, level, message, common, keys) {
  const callerKeys = known.metadata.map((entry) => entry.key);
  for (const key of keys) {
    const facts = factsOf(key);
    if (isOptionKey(key) || key === 'metadata' || facts.column !== -1 || facts.sensitive
      || ARRAY_INDEX.test(key) || callerKeys.includes(key)) {
      return NO_LAYOUT;
    }
  }
  const commonValues = commonValuesOf(common);
  if (commonValues.some((value) => value !== null && typeof value === 'object')) return NO_LAYOUT;
  const members = keys.map((key, i) => `${i === 0 ? '' : ','}${factsOf(key).json}`);
  const callerMembers = known.metadata.map((entry) => `${entry.facts.json}${entry.json}`).join(',');
  const hasMetadata = keys.length > 0 || callerMembers !== '';
  let tail = '}';
  if (callerMembers !== '') tail = `${keys.length > 0 ? ',' : ''}${callerMembers}}}`;
  else if (hasMetadata) tail = '}}';
  return {
    level,
    message,
    common,
    commonValues,
    keys,
    head: flat(`${levelHead(level)}${quote(message)},"event_id":"`),
    afterId: flat(`"${known.columns}`),
    beforeFields: flat(`${common ? commonText(common, known.bits) : ''}${hasMetadata ? ',"metadata":{' : ''}`),
    members: members.map(flat),
    tail: flat(tail),
    hits: 0,
    misses: 0,
  };
}

/** `,"created_at":...` for `now` (ms), the same text for the records of one millisecond. */
function createdText(now) {
  if (now !== createdCache.now) {
    createdCache.now = now;
    createdCache.text = flat(`,"created_at":${jsonOf(redact(now / 1000))}`);
  }
  return createdCache.text;
}

/**
 * `text` as one flat string: the layout's pieces are copied into each record, and V8
 * copies a flat string in one piece where a joined one is walked part by part.
 */
function flat(text) {
  return JSON.parse(JSON.stringify(text));
}

/** The JSON text of a value `redact` made. */
function jsonOf(value) {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      return `${value}`;
    case 'boolean':
      return value ? 'true' : 'false';
    default:
      return value === null ? 'null' : JSON.stringify(value);
  }
}

/** `,"service":...` and the other common fields the sources left unset. */
function commonText(common, set) {
  const values = COMMON_COLUMNS.map((column) => common[column.key]);
  const cacheable = (set & COMMON_BITS) === 0 && values.every((value) => value === null || typeof value !== 'object');
  if (cacheable && commonCache.text !== null && values.every((value, i) => value === commonCache.values[i])) {
    return commonCache.text;
  }
  const parts = [];
  for (let i = 0; i < COMMON_COLUMNS.length; i += 1) {
    const value = values[i];
    if ((set & COMMON_COLUMNS[i].bit) !== 0 || value === undefined || value === null) continue;
    const copy = redact(value);
    if (copy !== undefined) parts.push(`${COMMON_COLUMNS[i].json}${jsonOf(copy)}`);
  }
  const text = parts.join('');
  if (cacheable) {
    commonCache.values = values;
    commonCache.text = text;
  }
  return text;
}
