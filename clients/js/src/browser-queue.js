/**
 * Where the browser client keeps its records until the server acknowledges them: an
 * IndexedDB database per target server, shared by every tab of the origin, so records
 * survive a reload, a closed tab or a crashed renderer, and the next page of the origin
 * sends what the last one left. When IndexedDB cannot be used (absent, refused, over its
 * quota) records go to a bounded in-memory queue instead, which lives as long as the page.
 *
 * The database holds three object stores:
 * - `records`: `{id, body, size}`, `id` auto-incremented (never reused, so a batch read
 *   by id cannot meet a newer row under an old id), `body` the record's JSON text,
 *   `size` its UTF-8 length.
 * - `meta`: one `counters` object: `bytes` pending, `dropped_spool_full`, `dead_lettered`.
 * - `dead_letters`: the last DEAD_LETTER_CAP records the server refused for good, with the
 *   reason, for a look in the browser's developer tools; older ones are only counted.
 *
 * Every change to `records` updates `counters.bytes` in the same transaction, so the size
 * cap holds across tabs: IndexedDB runs read-write transactions on one store one at a time.
 */

const DB_VERSION = 1;
const RECORDS = 'records';
const META = 'meta';
const DEAD_LETTERS = 'dead_letters';
const COUNTERS = 'counters';

/** Refused records kept in `dead_letters`; older ones are deleted (and stay counted). */
export const DEAD_LETTER_CAP = 100;
/** How long opening the database may take before the client falls back to memory. */
export const OPEN_TIMEOUT_MS = 10_000;

/**
 * @typedef {object} Row
 * @property {number} id
 * @property {string} body the record's JSON text
 * @property {number} size UTF-8 bytes of `body`
 */

/**
 * @typedef {object} Counters
 * @property {number} bytes
 * @property {number} dropped_spool_full
 * @property {number} dead_lettered
 */

/**
 * UTF-8 length of a string, without encoding it.
 *
 * @param {string} text
 * @returns {number}
 */
export function utf8Length(text) {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 2; // a surrogate pair: 4 bytes for 2 UTF-16 units
      i += 1;
    } else bytes += 2;
  }
  return bytes;
}

/**
 * The first rows of `rows` whose sizes add up to at most `maxBytes`; at least one row,
 * so a record larger than the limit is still sent (and the server says 413).
 *
 * @param {Row[]} rows
 * @param {number} maxBytes
 * @returns {Row[]}
 */
export function withinBytes(rows, maxBytes) {
  let total = 0;
  for (let i = 0; i < rows.length; i++) {
    total += rows[i].size + 1;
    if (total > maxBytes && i > 0) return rows.slice(0, i);
  }
  return rows;
}

function emptyCounters() {
  return { bytes: 0, dropped_spool_full: 0, dead_lettered: 0 };
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error ?? new DOMException('transaction aborted', 'AbortError'));
    tx.onerror = () => {}; // onabort follows and reports it
  });
}

/**
 * Open (create) the queue database `name`.
 *
 * @param {string} name
 * @param {{maxBytes: number, indexedDB?: IDBFactory, timeoutMs?: number}} options
 * @returns {Promise<IdbQueue>}
 */
export function openIdbQueue(name, { maxBytes, indexedDB = globalThis.indexedDB, timeoutMs = OPEN_TIMEOUT_MS }) {
  return new Promise((resolve, reject) => {
    if (!indexedDB) {
      reject(new Error('IndexedDB is not available'));
      return;
    }
    const timer = setTimeout(() => reject(new Error(`IndexedDB did not open within ${timeoutMs} ms`)), timeoutMs);
    const req = indexedDB.open(name, DB_VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      db.createObjectStore(RECORDS, { keyPath: 'id', autoIncrement: true });
      db.createObjectStore(META);
      db.createObjectStore(DEAD_LETTERS, { autoIncrement: true });
    };
    req.onsuccess = () => {
      clearTimeout(timer);
      const db = req.result;
      // A newer version of this code (another tab) needs the database: let it upgrade.
      db.onversionchange = () => db.close();
      resolve(new IdbQueue(db, maxBytes));
    };
    req.onerror = () => {
      clearTimeout(timer);
      reject(req.error);
    };
    req.onblocked = () => {}; // an older tab still holds it; the timeout decides
  });
}

/** The records of one target server in IndexedDB. Every method is one transaction. */
export class IdbQueue {
  /**
   * @param {IDBDatabase} db
   * @param {number} maxBytes
   */
  constructor(db, maxBytes) {
    this._db = db;
    this._maxBytes = maxBytes;
    this.durable = true;
  }

  /**
   * Add records; when the pending bytes pass the cap, the oldest rows are deleted.
   *
   * @param {Array<{body: string, size: number}>} entries
   * @returns {Promise<{ids: number[], dropped: number}>} the new rows' ids, rows dropped
   */
  async append(entries) {
    const tx = this._db.transaction([RECORDS, META], 'readwrite');
    const done = finished(tx);
    const records = tx.objectStore(RECORDS);
    const meta = tx.objectStore(META);
    const ids = new Array(entries.length);
    let added = 0;
    entries.forEach((entry, i) => {
      records.add({ body: entry.body, size: entry.size }).onsuccess = (event) => {
        ids[i] = event.target.result;
      };
      added += entry.size;
    });
    let dropped = 0;
    meta.get(COUNTERS).onsuccess = (event) => {
      const counters = { ...emptyCounters(), ...event.target.result };
      counters.bytes += added;
      if (counters.bytes <= this._maxBytes) {
        meta.put(counters, COUNTERS);
        return;
      }
      records.openCursor().onsuccess = (cursorEvent) => {
        const cursor = cursorEvent.target.result;
        if (cursor && counters.bytes > this._maxBytes) {
          counters.bytes -= cursor.value.size;
          dropped += 1;
          cursor.delete();
          cursor.continue();
          return;
        }
        counters.dropped_spool_full += dropped;
        meta.put(counters, COUNTERS);
      };
    };
    await done;
    return { ids, dropped };
  }

  /**
   * The oldest rows: at most `limit`, their sizes within `maxBytes`.
   *
   * @param {number} limit
   * @param {number} maxBytes
   * @returns {Promise<Row[]>}
   */
  async read(limit, maxBytes) {
    const tx = this._db.transaction(RECORDS, 'readonly');
    const rows = await request(tx.objectStore(RECORDS).getAll(null, limit));
    return withinBytes(rows, maxBytes);
  }

  /**
   * Delete the rows `ids` (acknowledged); ids already gone are skipped.
   *
   * @param {number[]} ids
   * @returns {Promise<void>}
   */
  async remove(ids) {
    if (!ids.length) return;
    const tx = this._db.transaction([RECORDS, META], 'readwrite');
    const done = finished(tx);
    this._deleteRows(tx, ids, () => {});
    await done;
  }

  /**
   * Move refused rows to `dead_letters` with their reasons, counted; only the newest
   * DEAD_LETTER_CAP are kept there.
   *
   * @param {Array<{row: Row, reason: string}>} items
   * @returns {Promise<void>}
   */
  async deadLetter(items) {
    if (!items.length) return;
    const tx = this._db.transaction([RECORDS, META, DEAD_LETTERS], 'readwrite');
    const done = finished(tx);
    const dead = tx.objectStore(DEAD_LETTERS);
    const failedAt = Date.now() / 1000;
    for (const { row, reason } of items) {
      dead.add({ body: row.body, reason, failed_at: failedAt });
    }
    this._deleteRows(tx, items.map((item) => item.row.id), (counters) => {
      counters.dead_lettered += items.length;
    });
    dead.count().onsuccess = (event) => {
      let excess = event.target.result - DEAD_LETTER_CAP;
      if (excess <= 0) return;
      dead.openCursor().onsuccess = (cursorEvent) => {
        const cursor = cursorEvent.target.result;
        if (!cursor || excess <= 0) return;
        excess -= 1;
        cursor.delete();
        cursor.continue();
      };
    };
    await done;
  }

  _deleteRows(tx, ids, updateCounters) {
    const records = tx.objectStore(RECORDS);
    const meta = tx.objectStore(META);
    const wanted = new Set(ids);
    let freed = 0;
    const range = IDBKeyRange.bound(Math.min(...ids), Math.max(...ids));
    records.openCursor(range).onsuccess = (event) => {
      const cursor = event.target.result;
      if (cursor) {
        if (wanted.has(cursor.primaryKey)) {
          freed += cursor.value.size;
          cursor.delete();
        }
        cursor.continue();
        return;
      }
      meta.get(COUNTERS).onsuccess = (metaEvent) => {
        const counters = { ...emptyCounters(), ...metaEvent.target.result };
        counters.bytes = Math.max(0, counters.bytes - freed);
        updateCounters(counters);
        meta.put(counters, COUNTERS);
      };
    };
  }

  /**
   * How many rows with an id of at most `maxId` are pending (all rows without `maxId`).
   *
   * @param {number} [maxId]
   * @returns {Promise<number>}
   */
  async pending(maxId) {
    const tx = this._db.transaction(RECORDS, 'readonly');
    const range = maxId === undefined ? undefined : IDBKeyRange.upperBound(maxId);
    return request(tx.objectStore(RECORDS).count(range));
  }

  /** @returns {Promise<Counters>} */
  async counters() {
    const tx = this._db.transaction(META, 'readonly');
    return { ...emptyCounters(), ...(await request(tx.objectStore(META).get(COUNTERS))) };
  }

  /** @returns {Promise<Array<{body: string, reason: string, failed_at: number}>>} */
  async deadLetters() {
    const tx = this._db.transaction(DEAD_LETTERS, 'readonly');
    return request(tx.objectStore(DEAD_LETTERS).getAll());
  }

  close() {
    this._db.close();
  }
}

/**
 * The in-memory stand-in for IndexedDB, with the same interface: it keeps at most
 * `maxBytes` (the oldest dropped and counted) and lives as long as the page.
 */
export class MemoryQueue {
  /** @param {number} maxBytes */
  constructor(maxBytes) {
    this._maxBytes = maxBytes;
    this._rows = [];
    this._nextId = 1;
    this._counters = emptyCounters();
    this._dead = [];
    this.durable = false;
  }

  /**
   * @param {Array<{body: string, size: number}>} entries
   * @returns {Promise<{ids: number[], dropped: number}>}
   */
  async append(entries) {
    const ids = entries.map((entry) => {
      const id = this._nextId++;
      this._rows.push({ id, body: entry.body, size: entry.size });
      this._counters.bytes += entry.size;
      return id;
    });
    let dropped = 0;
    while (this._counters.bytes > this._maxBytes && this._rows.length) {
      this._counters.bytes -= this._rows.shift().size;
      dropped += 1;
    }
    this._counters.dropped_spool_full += dropped;
    return { ids, dropped };
  }

  /**
   * @param {number} limit
   * @param {number} maxBytes
   * @returns {Promise<Row[]>}
   */
  async read(limit, maxBytes) {
    return withinBytes(this._rows.slice(0, limit), maxBytes);
  }

  /** @param {number[]} ids */
  async remove(ids) {
    const wanted = new Set(ids);
    this._rows = this._rows.filter((row) => {
      if (!wanted.has(row.id)) return true;
      this._counters.bytes -= row.size;
      return false;
    });
  }

  /** @param {Array<{row: Row, reason: string}>} items */
  async deadLetter(items) {
    await this.remove(items.map((item) => item.row.id));
    const failedAt = Date.now() / 1000;
    for (const { row, reason } of items) this._dead.push({ body: row.body, reason, failed_at: failedAt });
    this._dead.splice(0, Math.max(0, this._dead.length - DEAD_LETTER_CAP));
    this._counters.dead_lettered += items.length;
  }

  /** @param {number} [maxId] */
  async pending(maxId) {
    if (maxId === undefined) return this._rows.length;
    return this._rows.filter((row) => row.id <= maxId).length;
  }

  async counters() {
    return { ...this._counters };
  }

  async deadLetters() {
    return [...this._dead];
  }

  close() {}
}
