-- The ingest server's table (DESIGN.md section 6): the original log save
-- server's 21 columns, enum types and four partial indexes, plus event_id
-- (deduplication of client retries) and received_at.

CREATE TYPE log_level AS ENUM ('TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL');
CREATE TYPE source_type AS ENUM ('BACKEND', 'FRONTEND', 'MOBILE', 'IOT', 'WORKER');
CREATE TYPE env_type AS ENUM ('production', 'staging', 'development', 'test', 'local');
CREATE TYPE http_method AS ENUM ('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS');

-- The string lengths are the original schema's, except trace_id: the original
-- VARCHAR(32) fits a W3C trace id but not a dashed UUID, which older clients
-- send, so it is 100 here. duration_ms is DOUBLE PRECISION rather than the
-- original DECIMAL(10, 3) so a job longer than 2.7 hours still fits.
-- The server validates every limit before inserting (log_collector/server/ingest.py),
-- so a value that would violate one is rejected alone instead of failing its batch.
CREATE TABLE logs (
    id BIGSERIAL PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    level log_level NOT NULL DEFAULT 'INFO',
    log_type source_type NOT NULL DEFAULT 'BACKEND',
    service VARCHAR(100) NOT NULL,
    environment env_type NOT NULL DEFAULT 'development',
    service_version VARCHAR(50) NOT NULL DEFAULT 'v0.0.0-dev',
    trace_id VARCHAR(100),
    user_id VARCHAR(255),
    session_id VARCHAR(100),
    error_type VARCHAR(200),
    message TEXT NOT NULL,
    stack_trace TEXT,
    path VARCHAR(500),
    method http_method,
    action_type VARCHAR(50),
    function_name VARCHAR(300),
    file_path VARCHAR(1000),
    duration_ms DOUBLE PRECISION,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    metadata JSONB,
    -- NULL for records from clients that send no event_id: those cannot be
    -- deduplicated (a unique index treats every NULL as distinct).
    event_id UUID,
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
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

-- Not partial: INSERT ... ON CONFLICT (event_id) needs a full unique index as
-- its arbiter. https://www.postgresql.org/docs/15/sql-insert.html#SQL-ON-CONFLICT
CREATE UNIQUE INDEX idx_logs_event_id ON logs (event_id);
