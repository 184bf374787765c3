-- log_counts with one row per (granule, bucket, service) and a count per level in columns,
-- instead of a row per level: an ingest statement of 1,000 rows upserts about 40 rows (20
-- services, two granules) instead of about 240, and the upserts were most of what the counts
-- cost ingest (scripts/bench_query.py; docs/performance.md). The readers see the former shape
-- through the view log_counts_by_level, which SQLite's 0005 defines over its unchanged table.
-- The table is emptied and counted again from the live rows, in this transaction.
DROP TRIGGER logs_counts_insert ON logs;
DROP TRIGGER logs_counts_update ON logs;
DROP TRIGGER logs_counts_delete ON logs;
DROP FUNCTION log_counts_inserted();
DROP FUNCTION log_counts_updated();
DROP FUNCTION log_counts_deleted();
DROP TABLE log_counts;

CREATE TABLE log_counts (
    granule_s INTEGER NOT NULL,
    bucket_us BIGINT NOT NULL,
    service VARCHAR(100) NOT NULL,
    n_trace BIGINT NOT NULL,
    n_debug BIGINT NOT NULL,
    n_info BIGINT NOT NULL,
    n_warn BIGINT NOT NULL,
    n_error BIGINT NOT NULL,
    n_fatal BIGINT NOT NULL,
    PRIMARY KEY (granule_s, bucket_us, service)
) WITH (fillfactor = 50);

-- (granule_s, bucket_us, service, level, n), the shape the readers count from.
CREATE VIEW log_counts_by_level AS
SELECT c.granule_s, c.bucket_us, c.service, l.level,
    CASE l.level
        WHEN 'TRACE' THEN c.n_trace
        WHEN 'DEBUG' THEN c.n_debug
        WHEN 'INFO' THEN c.n_info
        WHEN 'WARN' THEN c.n_warn
        WHEN 'ERROR' THEN c.n_error
        WHEN 'FATAL' THEN c.n_fatal
    END AS n
FROM log_counts AS c
CROSS JOIN (VALUES
    ('TRACE'::log_level),
    ('DEBUG'::log_level),
    ('INFO'::log_level),
    ('WARN'::log_level),
    ('ERROR'::log_level),
    ('FATAL'::log_level)
) AS l (level);

-- As in 0003: each statement's rows counted per minute, each minute added to its 1- and
-- 30-minute granules, the keys upserted in one order (no deadlock between two ingest
-- statements); each trigger holds its own copy because a transition table is visible only in
-- its trigger's function.
CREATE FUNCTION log_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_counts (granule_s, bucket_us, service,
        n_trace, n_debug, n_info, n_warn, n_error, n_fatal)
    SELECT g.s, m.us - (m.us % (g.s * 1000000::bigint) + g.s * 1000000::bigint)
            % (g.s * 1000000::bigint),
        m.service,
        coalesce(sum(m.n_trace), 0),
        coalesce(sum(m.n_debug), 0),
        coalesce(sum(m.n_info), 0),
        coalesce(sum(m.n_warn), 0),
        coalesce(sum(m.n_error), 0),
        coalesce(sum(m.n_fatal), 0)
    FROM (
        SELECT (extract(epoch FROM minute) * 1000000)::bigint AS us, minutes.*
        FROM (
            SELECT date_bin('1 minute', created_at, timestamptz '1970-01-01 00:00:00+00') AS minute,
                service,
                sum(sign) FILTER (WHERE level = 'TRACE') AS n_trace,
                sum(sign) FILTER (WHERE level = 'DEBUG') AS n_debug,
                sum(sign) FILTER (WHERE level = 'INFO') AS n_info,
                sum(sign) FILTER (WHERE level = 'WARN') AS n_warn,
                sum(sign) FILTER (WHERE level = 'ERROR') AS n_error,
                sum(sign) FILTER (WHERE level = 'FATAL') AS n_fatal
            FROM (
                SELECT created_at, service, level, 1 AS sign FROM new_rows WHERE deleted = FALSE
            ) AS changes
            GROUP BY 1, 2
        ) AS minutes
    ) AS m
    CROSS JOIN (VALUES (60), (1800)) AS g (s)
    GROUP BY 1, 2, 3
    HAVING sum(m.n_trace) <> 0
        OR sum(m.n_debug) <> 0
        OR sum(m.n_info) <> 0
        OR sum(m.n_warn) <> 0
        OR sum(m.n_error) <> 0
        OR sum(m.n_fatal) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (granule_s, bucket_us, service) DO UPDATE SET
        n_trace = log_counts.n_trace + EXCLUDED.n_trace,
        n_debug = log_counts.n_debug + EXCLUDED.n_debug,
        n_info = log_counts.n_info + EXCLUDED.n_info,
        n_warn = log_counts.n_warn + EXCLUDED.n_warn,
        n_error = log_counts.n_error + EXCLUDED.n_error,
        n_fatal = log_counts.n_fatal + EXCLUDED.n_fatal;
    RETURN NULL;
END
$$;

CREATE FUNCTION log_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_counts (granule_s, bucket_us, service,
        n_trace, n_debug, n_info, n_warn, n_error, n_fatal)
    SELECT g.s, m.us - (m.us % (g.s * 1000000::bigint) + g.s * 1000000::bigint)
            % (g.s * 1000000::bigint),
        m.service,
        coalesce(sum(m.n_trace), 0),
        coalesce(sum(m.n_debug), 0),
        coalesce(sum(m.n_info), 0),
        coalesce(sum(m.n_warn), 0),
        coalesce(sum(m.n_error), 0),
        coalesce(sum(m.n_fatal), 0)
    FROM (
        SELECT (extract(epoch FROM minute) * 1000000)::bigint AS us, minutes.*
        FROM (
            SELECT date_bin('1 minute', created_at, timestamptz '1970-01-01 00:00:00+00') AS minute,
                service,
                sum(sign) FILTER (WHERE level = 'TRACE') AS n_trace,
                sum(sign) FILTER (WHERE level = 'DEBUG') AS n_debug,
                sum(sign) FILTER (WHERE level = 'INFO') AS n_info,
                sum(sign) FILTER (WHERE level = 'WARN') AS n_warn,
                sum(sign) FILTER (WHERE level = 'ERROR') AS n_error,
                sum(sign) FILTER (WHERE level = 'FATAL') AS n_fatal
            FROM (
                SELECT created_at, service, level, -1 AS sign FROM old_rows WHERE deleted = FALSE
                UNION ALL
                SELECT created_at, service, level, 1 AS sign FROM new_rows WHERE deleted = FALSE
            ) AS changes
            GROUP BY 1, 2
        ) AS minutes
    ) AS m
    CROSS JOIN (VALUES (60), (1800)) AS g (s)
    GROUP BY 1, 2, 3
    HAVING sum(m.n_trace) <> 0
        OR sum(m.n_debug) <> 0
        OR sum(m.n_info) <> 0
        OR sum(m.n_warn) <> 0
        OR sum(m.n_error) <> 0
        OR sum(m.n_fatal) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (granule_s, bucket_us, service) DO UPDATE SET
        n_trace = log_counts.n_trace + EXCLUDED.n_trace,
        n_debug = log_counts.n_debug + EXCLUDED.n_debug,
        n_info = log_counts.n_info + EXCLUDED.n_info,
        n_warn = log_counts.n_warn + EXCLUDED.n_warn,
        n_error = log_counts.n_error + EXCLUDED.n_error,
        n_fatal = log_counts.n_fatal + EXCLUDED.n_fatal;
    RETURN NULL;
END
$$;

CREATE FUNCTION log_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_counts (granule_s, bucket_us, service,
        n_trace, n_debug, n_info, n_warn, n_error, n_fatal)
    SELECT g.s, m.us - (m.us % (g.s * 1000000::bigint) + g.s * 1000000::bigint)
            % (g.s * 1000000::bigint),
        m.service,
        coalesce(sum(m.n_trace), 0),
        coalesce(sum(m.n_debug), 0),
        coalesce(sum(m.n_info), 0),
        coalesce(sum(m.n_warn), 0),
        coalesce(sum(m.n_error), 0),
        coalesce(sum(m.n_fatal), 0)
    FROM (
        SELECT (extract(epoch FROM minute) * 1000000)::bigint AS us, minutes.*
        FROM (
            SELECT date_bin('1 minute', created_at, timestamptz '1970-01-01 00:00:00+00') AS minute,
                service,
                sum(sign) FILTER (WHERE level = 'TRACE') AS n_trace,
                sum(sign) FILTER (WHERE level = 'DEBUG') AS n_debug,
                sum(sign) FILTER (WHERE level = 'INFO') AS n_info,
                sum(sign) FILTER (WHERE level = 'WARN') AS n_warn,
                sum(sign) FILTER (WHERE level = 'ERROR') AS n_error,
                sum(sign) FILTER (WHERE level = 'FATAL') AS n_fatal
            FROM (
                SELECT created_at, service, level, -1 AS sign FROM old_rows WHERE deleted = FALSE
            ) AS changes
            GROUP BY 1, 2
        ) AS minutes
    ) AS m
    CROSS JOIN (VALUES (60), (1800)) AS g (s)
    GROUP BY 1, 2, 3
    HAVING sum(m.n_trace) <> 0
        OR sum(m.n_debug) <> 0
        OR sum(m.n_info) <> 0
        OR sum(m.n_warn) <> 0
        OR sum(m.n_error) <> 0
        OR sum(m.n_fatal) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (granule_s, bucket_us, service) DO UPDATE SET
        n_trace = log_counts.n_trace + EXCLUDED.n_trace,
        n_debug = log_counts.n_debug + EXCLUDED.n_debug,
        n_info = log_counts.n_info + EXCLUDED.n_info,
        n_warn = log_counts.n_warn + EXCLUDED.n_warn,
        n_error = log_counts.n_error + EXCLUDED.n_error,
        n_fatal = log_counts.n_fatal + EXCLUDED.n_fatal;
    RETURN NULL;
END
$$;

CREATE TRIGGER logs_counts_insert AFTER INSERT ON logs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_counts_inserted();
CREATE TRIGGER logs_counts_update AFTER UPDATE ON logs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_counts_updated();
CREATE TRIGGER logs_counts_delete AFTER DELETE ON logs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION log_counts_deleted();

-- The rows already stored (logs_counts_truncate of 0003 still empties the table on TRUNCATE).
    INSERT INTO log_counts (granule_s, bucket_us, service,
        n_trace, n_debug, n_info, n_warn, n_error, n_fatal)
    SELECT g.s, m.us - (m.us % (g.s * 1000000::bigint) + g.s * 1000000::bigint)
            % (g.s * 1000000::bigint),
        m.service,
        coalesce(sum(m.n_trace), 0),
        coalesce(sum(m.n_debug), 0),
        coalesce(sum(m.n_info), 0),
        coalesce(sum(m.n_warn), 0),
        coalesce(sum(m.n_error), 0),
        coalesce(sum(m.n_fatal), 0)
    FROM (
        SELECT (extract(epoch FROM minute) * 1000000)::bigint AS us, minutes.*
        FROM (
            SELECT date_bin('1 minute', created_at, timestamptz '1970-01-01 00:00:00+00') AS minute,
                service,
                sum(sign) FILTER (WHERE level = 'TRACE') AS n_trace,
                sum(sign) FILTER (WHERE level = 'DEBUG') AS n_debug,
                sum(sign) FILTER (WHERE level = 'INFO') AS n_info,
                sum(sign) FILTER (WHERE level = 'WARN') AS n_warn,
                sum(sign) FILTER (WHERE level = 'ERROR') AS n_error,
                sum(sign) FILTER (WHERE level = 'FATAL') AS n_fatal
            FROM (
                SELECT created_at, service, level, 1 AS sign FROM logs WHERE deleted = FALSE
            ) AS changes
            GROUP BY 1, 2
        ) AS minutes
    ) AS m
    CROSS JOIN (VALUES (60), (1800)) AS g (s)
    GROUP BY 1, 2, 3
    HAVING sum(m.n_trace) <> 0
        OR sum(m.n_debug) <> 0
        OR sum(m.n_info) <> 0
        OR sum(m.n_warn) <> 0
        OR sum(m.n_error) <> 0
        OR sum(m.n_fatal) <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (granule_s, bucket_us, service) DO UPDATE SET
        n_trace = log_counts.n_trace + EXCLUDED.n_trace,
        n_debug = log_counts.n_debug + EXCLUDED.n_debug,
        n_info = log_counts.n_info + EXCLUDED.n_info,
        n_warn = log_counts.n_warn + EXCLUDED.n_warn,
        n_error = log_counts.n_error + EXCLUDED.n_error,
        n_fatal = log_counts.n_fatal + EXCLUDED.n_fatal;
