/**
 * The Node client's spool: one SQLite file per client per process, in WAL mode, that every
 * log call appends to before it returns, and that the sender reads by id and deletes from
 * once the server acknowledged.
 *
 * The schema is the Python client's (migrations/spool/0001_initial.sql), bookkeeping row
 * included, so `log-collector status` and `log-collector replay` read these files too, and
 * a Python client adopts an orphaned Node spool (and the other way round).
 *
 * Ownership: the write connection runs in SQLite's EXCLUSIVE locking mode, set before the
 * file enters WAL mode, so it holds a lock on the file for as long as it is open and no
 * other process (or other connection in this one) can read it. Node has no flock; this lock
 * plays its part: the operating system drops it when the owner dies, however it dies, so a
 * file that can be opened and read by another process is an orphan. The owner's pid is kept
 * in `meta` for reports only, since a pid can be reused.
 * https://www.sqlite.org/pragma.html#pragma_locking_mode, https://www.sqlite.org/wal.html#noshm
 *
 * Never open a spool file with `fs.open` while SQLite has it open in this process: closing
 * that descriptor would drop every POSIX lock this process holds on it (fcntl(2)).
 */

import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { warnOnce } from './warnings.js';
import { SUFFIX, removeSnapshot, removeSpoolFiles, writeSnapshot } from './spool-files.js';
import { ADD_TO_COUNTER, SpoolError, applySchema, enterWal, isBusy, isCorruption, openConnection } from './spool-sqlite.js';

export { SUFFIX, prepareDirectory, spoolFiles, removeSpoolFiles, moveAside } from './spool-files.js';
export { MemorySpool } from './memory-spool.js';
export { SpoolError, isCorruption } from './spool-sqlite.js';

// A file of 0 bytes is one its creator has not initialised yet (it takes the lock as it
// does); one this old is left from a process that died in between, and is removed.
const UNINITIALISED_GRACE_MS = 60_000;
// After the size cap is hit, the oldest rows are dropped until this fraction of the cap is
// free again, so a full spool does not pay for a DELETE on every log call.
const DROP_HEADROOM = 0.05;
// Rows appended or deleted between the sender's WAL checkpoints (the log call never
// checkpoints: wal_autocheckpoint=0 on the one connection).
const CHECKPOINT_ROWS = 1000;
// The status snapshot is written at most this often (ms), from the sender's passes.
const SNAPSHOT_EVERY_MS = 1000;

/**
 * One spool file this process owns: its own, or an orphan it adopted.
 */
export class Spool {
  /**
   * @param {string} file
   * @param {import('better-sqlite3').Database} db
   * @param {{maxBytes?: number|null}} [limits]
   */
  constructor(file, db, { maxBytes = null, fullPolicy = 'drop_oldest', maxRecordAge = null } = {}) {
    this.path = file;
    this.closed = false;
    this._db = db;
    this._maxBytes = maxBytes;
    this._dropNewest = fullPolicy === 'drop_newest';
    this._maxRecordAge = maxRecordAge;
    // No row is older than this (Unix seconds); -Infinity until a read has looked.
    this._oldestBound = -Infinity;
    this._insert = db.prepare('INSERT INTO records(id, created_at, body) VALUES (?, ?, ?)');
    this._read = db.prepare('SELECT id, body FROM records ORDER BY id LIMIT ?');
    this._deleteOne = db.prepare('DELETE FROM records WHERE id = ?');
    this._deleteRange = db.prepare('DELETE FROM records WHERE id BETWEEN ? AND ?');
    this._minId = db.prepare('SELECT min(id) AS id FROM records').pluck();
    this._deadLetter = db.prepare(
      'INSERT INTO dead_letters(created_at, body, reason, failed_at) ' +
      'SELECT created_at, body, ?, ? FROM records WHERE id = ?',
    );
    this._addCounter = db.prepare(ADD_TO_COUNTER);
    this._oldest = db.prepare(
      'SELECT id, length(CAST(body AS BLOB)) AS bytes FROM records WHERE id > ? ORDER BY id LIMIT 500',
    );
    this._deleteUpTo = db.prepare('DELETE FROM records WHERE id <= ?');
    this._rangeSize = db.prepare(
      'SELECT coalesce(sum(length(CAST(body AS BLOB))), 0) AS bytes, count(*) AS n FROM records WHERE id BETWEEN ? AND ?',
    );
    this._rowSize = db.prepare('SELECT length(CAST(body AS BLOB)) FROM records WHERE id = ?').pluck();
    this._countDead = db.prepare('SELECT count(*) FROM dead_letters').pluck();
    this._countRows = db.prepare('SELECT count(*) FROM records').pluck();
    this._expiring = db.prepare(
      'SELECT count(*) FILTER (WHERE created_at < @cutoff) AS n, '
      + 'coalesce(sum(length(CAST(body AS BLOB))) FILTER (WHERE created_at < @cutoff), 0) AS bytes, '
      + 'min(created_at) FILTER (WHERE created_at >= @cutoff) AS oldest FROM records',
    );
    this._deleteOlder = db.prepare('DELETE FROM records WHERE created_at < ?');
    this._oldestCreated = db.prepare('SELECT created_at FROM records ORDER BY id LIMIT 1').pluck();
    this._meta = db.prepare('SELECT key, value FROM meta').raw();
    const totals = db.prepare(
      'SELECT count(*) AS n, coalesce(sum(length(CAST(body AS BLOB))), 0) AS bytes, coalesce(max(id), 0) AS last FROM records',
    ).get();
    this._rows = totals.n;
    this._bytes = totals.bytes;
    this._nextId = totals.last + 1;
    this._sinceCheckpoint = 0;
    /** Drops by reason since this process opened the file. */
    this.dropped = {};
    this.deadLettered = 0;
    this._snapshotAt = -Infinity;
    this.writeSnapshot({ force: true });
  }

  /**
   * A new spool file in `dir`, locked and ready.
   *
   * @param {string} dir
   * @param {{service?: string|null, serverUrl: string, maxBytes?: number|null,
   *   fullPolicy?: string, maxRecordAge?: number|null}} facts
   * @returns {Spool}
   */
  static create(dir, { service = null, serverUrl, maxBytes = null, fullPolicy = 'drop_oldest', maxRecordAge = null }) {
    const file = path.join(dir, `${process.pid}-${crypto.randomBytes(4).toString('hex')}${SUFFIX}`);
    // O_EXCL never opens an existing name (a planted link included); the mode is the one
    // SQLite gives the WAL too. Closed before SQLite opens it (see the module comment).
    fs.closeSync(fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600));
    let db;
    try {
      db = openConnection(file, { mustExist: true });
      enterWal(db);
      applySchema(db);
      const facts = db.prepare('INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)');
      db.transaction(() => {
        facts.run('target_url', serverUrl);
        if (service) facts.run('service', service);
        facts.run('pid', String(process.pid));
        facts.run('client', 'node');
        facts.run('opened_at', String(Date.now() / 1000));
      })();
    } catch (error) {
      db?.close();
      removeSpoolFiles(file);
      throw error;
    }
    return new Spool(file, db, { maxBytes, fullPolicy, maxRecordAge });
  }

  /**
   * Adopt the orphan `file` when no live process owns it and it ships to `serverUrl`.
   *
   * @param {string} file
   * @param {{serverUrl: string, maxRecordAge?: number|null}} target
   * @returns {Spool|null} null when it is in use, ships elsewhere, or is not ready
   * @throws {SpoolError} when it is damaged (the caller moves it aside)
   */
  static adopt(file, { serverUrl, maxRecordAge = null }) {
    let st;
    try {
      st = fs.lstatSync(file);
    } catch {
      return null;
    }
    const uid = typeof process.getuid === 'function' ? process.getuid() : null;
    if (!st.isFile() || (uid !== null && st.uid !== uid)) return null;
    if (st.size === 0) {
      if (Date.now() - st.mtimeMs > UNINITIALISED_GRACE_MS) removeSpoolFiles(file);
      return null;
    }
    let db;
    try {
      db = openConnection(file, { mustExist: true });
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all();
      if (tables.length === 0) {
        // Its creator died before writing the schema: nothing in it to send.
        db.close();
        db = null;
        if (Date.now() - st.mtimeMs > UNINITIALISED_GRACE_MS) removeSpoolFiles(file);
        return null;
      }
      if (!tables.includes('records')) throw new SpoolError('no records table: not a spool');
      const meta = Object.fromEntries(db.prepare('SELECT key, value FROM meta').raw().all());
      if (meta.target_url && meta.target_url !== serverUrl) {
        db.close();
        return null;
      }
      enterWal(db);
      applySchema(db);
      // The first write takes the exclusive lock, held until this process closes the file.
      db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('adopted_by', ?)").run(String(process.pid));
      return new Spool(file, db, { maxRecordAge });
    } catch (error) {
      db?.close();
      if (isBusy(error)) return null;
      if (error instanceof SpoolError || isCorruption(error)) {
        throw new SpoolError(`${file} is not a usable spool: ${error.message}`, { cause: error });
      }
      throw error;
    }
  }

  /** Rows waiting. */
  get rows() {
    return this._rows;
  }

  /** Bytes of the waiting rows' bodies. */
  get bytes() {
    return this._bytes;
  }

  /** The largest id handed out so far. */
  highWater() {
    return this._nextId - 1;
  }

  /**
   * Store one record durably (committed to the WAL) before returning.
   *
   * @param {number} createdAt Unix seconds
   * @param {string} body the record's JSON text
   * @returns {number} the row id
   */
  append(createdAt, body) {
    const size = Buffer.byteLength(body, 'utf8');
    if (this._maxBytes !== null && this._bytes + size > this._maxBytes) {
      return this._appendWhenFull(createdAt, body, size);
    }
    const id = this._nextId;
    this._insert.run(id, createdAt, body);
    this._nextId = id + 1;
    this._rows += 1;
    this._bytes += size;
    this._sinceCheckpoint += 1;
    if (createdAt < this._oldestBound) this._oldestBound = createdAt;
    return id;
  }

  _appendWhenFull(createdAt, body, size) {
    if (size > this._maxBytes) {
      this._countDrop('record_too_large', 1);
      return 0;
    }
    if (this._dropNewest) {
      this._countDrop('spool_full', 1);
      return 0;
    }
    const target = this._maxBytes * (1 - DROP_HEADROOM) - size;
    const id = this._nextId;
    let freedRows = 0;
    let freedBytes = 0;
    this._db.transaction(() => {
      let lastId = 0;
      while (this._bytes - freedBytes > target) {
        const rows = this._oldest.all(lastId);
        if (rows.length === 0) break;
        for (const row of rows) {
          if (this._bytes - freedBytes <= target) break;
          freedRows += 1;
          freedBytes += row.bytes;
          lastId = row.id;
        }
      }
      if (freedRows > 0) {
        this._deleteUpTo.run(lastId);
        this._addCounter.run('dropped:spool_full', freedRows);
      }
      this._insert.run(id, createdAt, body);
    })();
    this._rows += 1 - freedRows;
    this._bytes += size - freedBytes;
    this._nextId = id + 1;
    this._sinceCheckpoint += 1 + freedRows;
    if (createdAt < this._oldestBound) this._oldestBound = createdAt;
    this._noteDrop('spool_full', freedRows);
    return id;
  }

  _countDrop(reason, n) {
    this._addCounter.run(`dropped:${reason}`, n);
    this._noteDrop(reason, n);
  }

  _noteDrop(reason, n) {
    if (n <= 0) return;
    this.dropped[reason] = (this.dropped[reason] ?? 0) + n;
    warnOnce(`drop:${this.path}:${reason}`, `log-collector: dropping records from ${this.path} (${reason}); counted in stats().dropped`);
  }

  /**
   * The oldest `limit` rows.
   *
   * @param {number} limit
   * @returns {{id: number, body: string}[]}
   */
  read(limit) {
    if (this._maxRecordAge !== null) this._expire();
    return this._read.all(limit);
  }

  /**
   * Drop the rows older than `maxRecordAge` by this process's clock, counted. Scans the
   * table only when the oldest row may be that old: about once per `maxRecordAge` while
   * delivery keeps up.
   */
  _expire() {
    const cutoff = (Date.now() - this._maxRecordAge) / 1000;
    if (cutoff <= this._oldestBound) return;
    const found = this._expiring.get({ cutoff });
    if (found.n > 0) {
      this._db.transaction(() => {
        this._deleteOlder.run(cutoff);
        this._addCounter.run('dropped:max_record_age', found.n);
      })();
      this._rows -= found.n;
      this._bytes -= found.bytes;
      this._sinceCheckpoint += found.n;
      this._noteDrop('max_record_age', found.n);
    }
    this._oldestBound = found.oldest ?? Infinity;
  }

  /**
   * Delete the rows `ids` (acknowledged); ids already gone are ignored.
   *
   * @param {number[]} ids ascending
   */
  ack(ids) {
    if (ids.length === 0) return;
    let bytes = 0;
    let removed = 0;
    this._db.transaction(() => {
      for (const [lo, hi] of runs(ids)) {
        const { bytes: b, n } = this._rangeSize.get(lo, hi);
        bytes += b;
        removed += n;
        this._deleteRange.run(lo, hi);
      }
    })();
    this._rows -= removed;
    this._bytes -= bytes;
    this._sinceCheckpoint += removed;
  }

  /**
   * Move rows the server refused for good to `dead_letters`, with the reason.
   *
   * @param {{id: number}[]} rows
   * @param {string} reason
   */
  deadLetter(rows, reason) {
    if (rows.length === 0) return;
    const failedAt = Date.now() / 1000;
    let bytes = 0;
    let moved = 0;
    this._db.transaction(() => {
      for (const row of rows) {
        const size = this._rowSize.get(row.id);
        if (size === undefined) continue;
        this._deadLetter.run(reason, failedAt, row.id);
        this._deleteOne.run(row.id);
        bytes += size;
        moved += 1;
      }
    })();
    this._rows -= moved;
    this._bytes -= bytes;
    this.deadLettered += moved;
  }

  /**
   * Whether a row with an id at or below `mark` is still waiting.
   *
   * @param {number} mark
   * @returns {boolean}
   */
  hasAtOrBelow(mark) {
    if (this._rows === 0) return false;
    const min = this._minId.get();
    return min !== null && min !== undefined && min <= mark;
  }

  /** Rows in the dead-letter table. */
  deadLetterCount() {
    return this._countDead.get();
  }

  /**
   * Fold the WAL back into the database when enough has changed (or `force`).
   *
   * @param {{force?: boolean}} [when]
   */
  checkpoint({ force = false } = {}) {
    if (this.closed) return;
    if (force || this._sinceCheckpoint >= CHECKPOINT_ROWS) {
      this._db.pragma('wal_checkpoint(TRUNCATE)');
      this._sinceCheckpoint = 0;
    }
    this.writeSnapshot();
  }

  /**
   * Write what `log-collector status` shows for this file while this process holds it:
   * the in-memory totals, the oldest row's time (one lookup by id) and the counters kept
   * in `meta`. At most once a second unless `force`; a failure only leaves it stale.
   *
   * @param {{force?: boolean}} [when]
   */
  writeSnapshot({ force = false } = {}) {
    const now = Date.now();
    if (this.closed || (!force && now - this._snapshotAt < SNAPSHOT_EVERY_MS)) return;
    this._snapshotAt = now;
    let doc;
    try {
      const meta = Object.fromEntries(this._meta.all());
      const dropped = {};
      for (const [key, value] of Object.entries(meta)) {
        if (key.startsWith('dropped:')) dropped[key.slice('dropped:'.length)] = Number(value);
      }
      doc = {
        rows: this._rows,
        bytes: this._bytes,
        oldest_created_at: this._rows === 0 ? null : (this._oldestCreated.get() ?? null),
        dead_letters: this.deadLetterCount(),
        target_url: meta.target_url ?? null,
        service: meta.service ?? null,
        pid: String(process.pid),
        dropped,
        written_at: now / 1000,
      };
    } catch {
      return; // the file cannot be read now: the last snapshot stays
    }
    writeSnapshot(this.path, doc);
  }

  /**
   * Close the file; remove it when it holds no record and no dead letter.
   *
   * @returns {number} the rows left in it
   */
  close() {
    if (this.closed) return 0;
    this.closed = true;
    let left = this._rows;
    let removable = false;
    try {
      left = this._countRows.get();
      removable = left === 0 && this.deadLetterCount() === 0;
    } catch {
      removable = false;
    }
    // A closed file is read directly: its snapshot goes before its lock does.
    removeSnapshot(this.path);
    try {
      this._db.close();
    } catch {
      // closed already, or the file is gone
    }
    if (removable) removeSpoolFiles(this.path);
    return left;
  }
}

/** Consecutive runs [lo, hi] of ascending integer ids. */
function runs(ids) {
  const found = [];
  let lo = ids[0];
  let hi = ids[0];
  for (let i = 1; i < ids.length; i += 1) {
    if (ids[i] === hi + 1) {
      hi = ids[i];
    } else {
      found.push([lo, hi]);
      lo = ids[i];
      hi = ids[i];
    }
  }
  found.push([lo, hi]);
  return found;
}
