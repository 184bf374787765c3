-- The embedded store: the same columns as migrations/postgres/0001_logs.sql.
-- SQLite has no enum types, so CHECK constraints hold the same value sets,
-- written as OR chains: a CHECK with an IN list builds a temporary index each
-- time its INSERT runs, which made every row cost 3.5 us more per column;
-- times are ISO 8601 UTC text of fixed width ("2024-05-01T12:00:00.000000+00:00"),
-- which sorts and compares correctly as text; metadata is JSON text
-- (query it with json_extract(metadata, '$.order_id')). No json_valid() CHECK:
-- the server writes only JSON it encoded itself, and the check would double
-- the cost of an insert.
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    level TEXT NOT NULL DEFAULT 'INFO'
        CHECK (level = 'TRACE' OR level = 'DEBUG' OR level = 'INFO' OR level = 'WARN' OR
            level = 'ERROR' OR level = 'FATAL'),
    log_type TEXT NOT NULL DEFAULT 'BACKEND'
        CHECK (log_type = 'BACKEND' OR log_type = 'FRONTEND' OR log_type = 'MOBILE' OR
            log_type = 'IOT' OR log_type = 'WORKER'),
    service TEXT NOT NULL,
    environment TEXT NOT NULL DEFAULT 'development'
        CHECK (environment = 'production' OR environment = 'staging' OR
            environment = 'development' OR environment = 'test' OR
            environment = 'local'),
    service_version TEXT NOT NULL DEFAULT 'v0.0.0-dev',
    trace_id TEXT,
    user_id TEXT,
    session_id TEXT,
    error_type TEXT,
    message TEXT NOT NULL,
    stack_trace TEXT,
    path TEXT,
    method TEXT
        CHECK (method = 'GET' OR method = 'POST' OR method = 'PUT' OR method = 'DELETE' OR
            method = 'PATCH' OR method = 'HEAD' OR method = 'OPTIONS'),
    action_type TEXT,
    function_name TEXT,
    file_path TEXT,
    duration_ms REAL,
    deleted INTEGER NOT NULL DEFAULT FALSE CHECK (deleted = FALSE OR deleted = TRUE),
    metadata TEXT,
    -- NULL for records from clients that send no event_id: those cannot be
    -- deduplicated (SQLite's unique index treats every NULL as distinct).
    event_id TEXT,
    received_at TEXT NOT NULL
);

-- The original four partial indexes, with its names and predicates: rows
-- without an error type, user or trace are not indexed for it.
CREATE INDEX idx_service_level_time ON logs (service, level, created_at DESC)
    WHERE deleted = FALSE;
CREATE INDEX idx_error_time ON logs (error_type, created_at DESC)
    WHERE error_type IS NOT NULL AND deleted = FALSE;
CREATE INDEX idx_user_time ON logs (user_id, created_at DESC)
    WHERE user_id IS NOT NULL AND deleted = FALSE;
CREATE INDEX idx_trace ON logs (trace_id)
    WHERE trace_id IS NOT NULL AND deleted = FALSE;

-- Not partial: INSERT ... ON CONFLICT (event_id) needs a full unique index.
CREATE UNIQUE INDEX idx_logs_event_id ON logs (event_id);
