-- The local spool: one file per client per process (see DESIGN.md section 3).
--
-- AUTOINCREMENT, not a plain rowid: ids are never reused, even after the
-- sender has deleted every row, so flush() can wait for "no row with
-- id <= the high-water mark at the call" and `status` can report monotonic ids.
-- https://www.sqlite.org/autoinc.html
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    body TEXT NOT NULL
);

-- Rows the server refused for good (a poisoned record, a record too large
-- for any request). Kept, never sent again unless requeued by hand.
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    failed_at REAL NOT NULL
);

-- schema_version, target_url, service, pid, and the loss counters
-- (dropped:<reason>) that must survive the process.
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
