-- Saved views of the dashboard (/ui/): a name, the page and the URL query string that rebuild
-- what someone was looking at, shared by everyone who reads this server
-- (log_collector/server/query/views.py; the same as migrations/postgres/0004_saved_views.sql).
-- Not readable through POST /api/sql: the guard's allowlist names logs and logs_iso only.
-- The limits are checked by the API, which answers 400 naming them; the CHECKs keep a row
-- written by other means within the same bounds. created_at: microseconds since the epoch,
-- like logs.created_at (migrations/sqlite/0002_times_as_integer_microseconds.sql).
CREATE TABLE saved_views (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    page TEXT NOT NULL
        CHECK (page = 'explore' OR page = 'tail' OR page = 'trace' OR page = 'overview'),
    query TEXT NOT NULL DEFAULT '' CHECK (length(query) <= 4096),
    created_at INTEGER NOT NULL
);
