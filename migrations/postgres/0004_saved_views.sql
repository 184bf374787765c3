-- Saved views of the dashboard (/ui/): a name, the page and the URL query string that rebuild
-- what someone was looking at, shared by everyone who reads this server
-- (log_collector/server/query/views.py; the same as migrations/sqlite/0004_saved_views.sql).
-- Not readable through POST /api/sql: the guard's allowlist names logs only, and the role
-- its statements run as (0002_reader_role.sql) has SELECT on logs alone.
-- The limits are checked by the API, which answers 400 naming them; the CHECKs keep a row
-- written by other means within the same bounds.
CREATE TABLE saved_views (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL UNIQUE CHECK (char_length(name) BETWEEN 1 AND 200),
    page TEXT NOT NULL CHECK (page IN ('explore', 'tail', 'trace', 'overview')),
    query TEXT NOT NULL DEFAULT '' CHECK (char_length(query) <= 4096),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
