/**
 * The SQLite side of a spool file: its schema (the Python client's, migrations/spool/), the
 * pragmas of its one connection, and what an SQLite error means.
 */

import Database from 'better-sqlite3';

const MIGRATION_SET = 'log-collector-spool';
const SCHEMA_VERSION = '1';
// The WAL is cut back to this size after a checkpoint.
const JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024;

// migrations/spool/0001_initial.sql, and the row sqlite-utils' migrations runner keeps for it.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
`;

export const ADD_TO_COUNTER =
  'INSERT INTO meta(key, value) VALUES (?, ?) ' +
  'ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value';

/** A spool file that cannot be used (corrupt, not a spool, written by a newer schema). */
export class SpoolError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'SpoolError';
  }
}

/**
 * Open `file` with the pragmas every spool connection uses.
 *
 * @param {string} file
 * @param {{mustExist: boolean}} how
 * @returns {import('better-sqlite3').Database}
 */
export function openConnection(file, { mustExist }) {
  const db = new Database(file, { fileMustExist: mustExist, timeout: 0 });
  try {
    // Before the first access: the lock is then held from the first read on, and the WAL
    // needs no shared-memory file.
    db.pragma('locking_mode = EXCLUSIVE');
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

export function enterWal(db) {
  const [{ journal_mode: mode }] = db.pragma('journal_mode = WAL');
  if (mode !== 'wal') throw new SpoolError(`cannot use WAL mode (journal_mode is ${mode})`);
  // A committed row survives the process being killed; a power cut may lose the last ones.
  // https://www.sqlite.org/pragma.html#pragma_synchronous
  db.pragma('synchronous = NORMAL');
  db.pragma('wal_autocheckpoint = 0');
  db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
}

export function applySchema(db) {
  const known = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'").get();
  if (known) {
    const newer = db.prepare(
      "SELECT name FROM _sqlite_migrations WHERE migration_set = ? AND name != '0001_initial'",
    ).all(MIGRATION_SET);
    if (newer.length > 0) {
      throw new SpoolError(`written by a newer log-collector (schema steps ${newer.map((r) => r.name).join(', ')})`);
    }
  }
  db.transaction(() => {
    db.exec(SCHEMA);
    db.prepare(
      'INSERT OR IGNORE INTO _sqlite_migrations(migration_set, name, applied_at) VALUES (?, ?, ?)',
    ).run(MIGRATION_SET, '0001_initial', new Date().toISOString().replace('T', ' ').replace('Z', '+00:00'));
    db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)").run(SCHEMA_VERSION);
  })();
}

/**
 * Whether a SQLite error means the file is damaged or no database.
 *
 * @param {unknown} error
 * @returns {boolean}
 */
export function isCorruption(error) {
  const code = error && typeof error === 'object' ? error.code : undefined;
  return code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB' || (typeof code === 'string' && code.startsWith('SQLITE_CORRUPT'));
}

export function isBusy(error) {
  const code = error && typeof error === 'object' ? error.code : undefined;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}
