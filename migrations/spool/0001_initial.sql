-- The local spool: one file per client per process (see DESIGN.md section 3).
--
-- The owning process (it holds the file's flock, so it is the only writer)
-- assigns ids from its own counter, starting after max(id): ids only grow for
-- the life of the process even when the sender has deleted every row, so
-- flush() can wait for "no row with id <= the mark at the call". Not
-- AUTOINCREMENT: that writes sqlite_sequence on every commit, a second page
-- per log call (measured ~20-35% slower here). https://www.sqlite.org/autoinc.html
-- The sender reads ORDER BY id and deletes exactly the ids it sent.
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
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
