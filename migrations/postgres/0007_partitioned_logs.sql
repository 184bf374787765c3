-- logs becomes a table range-partitioned by day on created_at, its partitions made and dropped
-- by pg_partman (https://github.com/pgpartman/pg_partman, 4.x: Debian's postgresql-15-partman).
-- Every index is created once on the parent and exists on each partition; a partitioned
-- table's unique indexes must hold the partition key, so deduplication is on
-- (event_id, created_at) (a retried record carries its original created_at) and the primary
-- key is (id, created_at). Rows of the unpartitioned table move into the partitions of their
-- days, ids and counts unchanged, in this migration's transaction.
-- log_collector/server/store/partitions.py runs the maintenance (premade partitions, rows of
-- the default partition moved to their days, retention) and docs/deployment.md says how.
-- https://www.postgresql.org/docs/15/ddl-partitioning.html

-- Partition bounds are days in UTC, as log_counts' granules are (the 30-minute ones fit in a
-- day whatever its time zone; a day in UTC+05:45 would split them).
SET LOCAL TIME ZONE 'UTC';

-- pg_partman must be installed on the server; CREATE EXTENSION needs a superuser, once per
-- database (a DBA may run it beforehand: `CREATE SCHEMA partman; CREATE EXTENSION pg_partman
-- SCHEMA partman;`, and the migration uses that one).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_partman') THEN
        IF NOT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_partman') THEN
            RAISE EXCEPTION 'the PostgreSQL extension pg_partman is not installed on this server'
                USING HINT = 'install it (Debian: apt install postgresql-15-partman), then '
                    'run log-collector migrate again; see docs/deployment.md';
        END IF;
        CREATE SCHEMA IF NOT EXISTS partman;
        CREATE EXTENSION pg_partman SCHEMA partman;
    END IF;
END
$$;

-- The unpartitioned table steps aside: its counting triggers go (the counts already hold its
-- rows, and moving them must not count them again) and so do its indexes (the names return on
-- the new table). Its id sequence stays and goes on numbering the new table's rows.
DROP TRIGGER logs_counts_insert ON logs;
DROP TRIGGER logs_counts_update ON logs;
DROP TRIGGER logs_counts_delete ON logs;
DROP TRIGGER logs_counts_truncate ON logs;
DROP INDEX idx_service_level_time, idx_error_time, idx_user_time, idx_trace, idx_logs_event_id,
    idx_logs_time;
ALTER TABLE logs RENAME TO logs_unpartitioned;
ALTER TABLE logs_unpartitioned RENAME CONSTRAINT logs_pkey TO logs_unpartitioned_pkey;
ALTER TABLE logs_unpartitioned ALTER COLUMN id DROP DEFAULT;

-- The columns of 0001, in its order.
CREATE TABLE logs (
    id BIGINT NOT NULL DEFAULT nextval('logs_id_seq'),
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
    event_id UUID,
    received_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE logs_id_seq OWNED BY logs.id;

-- 0001's four partial indexes and 0003's time index, now on every partition.
CREATE INDEX idx_service_level_time ON logs (service, level, created_at DESC)
    WHERE deleted = FALSE;
CREATE INDEX idx_error_time ON logs (error_type, created_at DESC)
    WHERE error_type IS NOT NULL AND deleted = FALSE;
CREATE INDEX idx_user_time ON logs (user_id, created_at DESC)
    WHERE user_id IS NOT NULL AND deleted = FALSE;
CREATE INDEX idx_trace ON logs (trace_id)
    WHERE trace_id IS NOT NULL AND deleted = FALSE;
CREATE INDEX idx_logs_time ON logs (created_at, id) WHERE deleted = FALSE;
-- The arbiter of INSERT ... ON CONFLICT (event_id, created_at) DO NOTHING, and what makes a
-- repeated record fail the binary COPY (log_collector/server/store/postgres.py). NULL
-- event_ids (clients that send none) are distinct, as before.
CREATE UNIQUE INDEX idx_logs_event_id ON logs (event_id, created_at);

GRANT SELECT ON logs TO log_collector_reader;

-- Daily partitions from 7 days back to 7 ahead and a default partition for rows outside them;
-- infinite_time_partitions: the maintenance keeps 7 days ahead of now even on a day with no
-- rows; ignore_default_data: a row far in the future (a clock set wrong) stays in the default
-- partition instead of having every day up to it made. The partitions are named
-- logs_pYYYY_MM_DD.
DO $$
DECLARE
    partman name := (SELECT extnamespace::regnamespace::name FROM pg_extension
        WHERE extname = 'pg_partman');
    parent text := format('%I.logs', current_schema());
    moved bigint;
BEGIN
    EXECUTE format('SELECT %I.create_parent(p_parent_table => $1, p_control => $2, '
        'p_type => $3, p_interval => $4, p_premake => 7, p_jobmon => false)', partman)
        USING parent, 'created_at', 'native', 'daily';
    EXECUTE format('UPDATE %I.part_config SET infinite_time_partitions = true, '
        'ignore_default_data = true '
        'WHERE parent_table = $1', partman) USING parent;
    -- Rows past the days made ahead go to the default partition (a partition made far ahead
    -- would stop pg_partman making the days before it); the others a day at a time, each
    -- day's partition made as needed.
    INSERT INTO logs SELECT * FROM logs_unpartitioned
    WHERE created_at >= date_trunc('day', now()) + interval '8 days';
    DELETE FROM logs_unpartitioned WHERE created_at >= date_trunc('day', now()) + interval '8 days';
    LOOP
        EXECUTE format('SELECT %I.partition_data_time(p_parent_table => $1, '
            'p_batch_count => 100, p_source_table => $2, p_analyze => false)', partman)
            INTO moved USING parent, format('%I.logs_unpartitioned', current_schema());
        EXIT WHEN moved = 0;
    END LOOP;
END
$$;

DROP TABLE logs_unpartitioned;

-- 0005's counting triggers, on the partitioned table (statement triggers with transition
-- tables see the rows of every partition a statement writes), and 0003's TRUNCATE trigger.
CREATE TRIGGER logs_counts_insert AFTER INSERT ON logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_counts_inserted();
CREATE TRIGGER logs_counts_update AFTER UPDATE ON logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_counts_updated();
CREATE TRIGGER logs_counts_delete AFTER DELETE ON logs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_counts_deleted();
CREATE TRIGGER logs_counts_truncate AFTER TRUNCATE ON logs
    FOR EACH STATEMENT EXECUTE FUNCTION log_counts_truncated();

ANALYZE logs;
