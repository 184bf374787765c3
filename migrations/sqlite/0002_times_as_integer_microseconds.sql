-- created_at and received_at become INTEGER microseconds since the Unix epoch
-- (UTC), instead of 32-character ISO 8601 text. created_at ends three of the
-- four indexes' keys. In scripts/bench_server.py's store-alone figure, runs
-- alternating on one machine, the store wrote 37,000-43,000 rows/s with text
-- times and 46,000-51,000 with integer ones. Integers sort and compare as the
-- times they hold, and SQLite's date functions read them:
--   datetime(created_at / 1000000, 'unixepoch')
--   WHERE created_at >= (unixepoch() - 3600) * 1000000        -- the last hour
-- The view logs_iso shows every row with both times as ISO 8601 text.
--
-- SQLite cannot change a column's type in place, so the table is rebuilt
-- (https://www.sqlite.org/lang_altertable.html#otheralter), ids kept.
CREATE TABLE logs_new (
    id INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
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
    event_id TEXT,
    received_at INTEGER NOT NULL
);

-- The text times were always "YYYY-MM-DDTHH:MM:SS.ffffff+00:00".
INSERT INTO logs_new
SELECT id,
    CAST(strftime('%s', substr(created_at, 1, 19)) AS INTEGER) * 1000000
        + CAST(substr(created_at, 21, 6) AS INTEGER),
    level, log_type, service, environment, service_version, trace_id, user_id, session_id,
    error_type, message, stack_trace, path, method, action_type, function_name, file_path,
    duration_ms, deleted, metadata, event_id,
    CAST(strftime('%s', substr(received_at, 1, 19)) AS INTEGER) * 1000000
        + CAST(substr(received_at, 21, 6) AS INTEGER)
FROM logs;

DROP TABLE logs;

ALTER TABLE logs_new RENAME TO logs;

CREATE INDEX idx_service_level_time ON logs (service, level, created_at DESC)
    WHERE deleted = FALSE;
CREATE INDEX idx_error_time ON logs (error_type, created_at DESC)
    WHERE error_type IS NOT NULL AND deleted = FALSE;
CREATE INDEX idx_user_time ON logs (user_id, created_at DESC)
    WHERE user_id IS NOT NULL AND deleted = FALSE;
CREATE INDEX idx_trace ON logs (trace_id)
    WHERE trace_id IS NOT NULL AND deleted = FALSE;
CREATE UNIQUE INDEX idx_logs_event_id ON logs (event_id);

-- Every column of logs, the two times as ISO 8601 UTC text with microseconds.
CREATE VIEW logs_iso AS
SELECT id,
    strftime('%Y-%m-%dT%H:%M:%S', created_at / 1000000, 'unixepoch')
        || printf('.%06d+00:00', created_at % 1000000) AS created_at,
    level, log_type, service, environment, service_version, trace_id, user_id, session_id,
    error_type, message, stack_trace, path, method, action_type, function_name, file_path,
    duration_ms, deleted, metadata, event_id,
    strftime('%Y-%m-%dT%H:%M:%S', received_at / 1000000, 'unixepoch')
        || printf('.%06d+00:00', received_at % 1000000) AS received_at
FROM logs;
