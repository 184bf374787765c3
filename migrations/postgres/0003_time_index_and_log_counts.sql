-- What the read API (log_collector/server/query/) needs beyond the original indexes.
--
-- idx_logs_time: a window of time newest first (/api/logs with since but no service, q over
-- the last day, facets over the last hour) walks this index backwards and stops after a page,
-- and the ORDER BY created_at DESC, id DESC needs no sort. Rows arrive in time order, so
-- inserts append at the index's right edge. Built inside the migration's transaction, which
-- holds ingest back while it scans an existing table once.
CREATE INDEX idx_logs_time ON logs (created_at, id) WHERE deleted = FALSE;

-- No trigram index for q: a substring over a day of rows is read through idx_logs_time
-- within its budget (scripts/bench_query.py), and a GIN index on message would be updated
-- for every word of every message at ingest.

-- log_counts: how many rows not deleted each (service, level) has in each granule of time
-- (1 minute and 30 minutes), so /api/histogram reads counts instead of rows
-- (log_collector/server/query/aggregates.py: a granule answers every bucket width it divides;
-- 30 minutes divides every nice width from 30 minutes up, 1 minute those from 1 to 15
-- minutes). bucket_us is the granule's start in microseconds since the epoch. The triggers
-- below keep it exact in the writing statement's own transaction: the insert trigger sees
-- only rows actually inserted (a row skipped by ON CONFLICT (event_id) DO NOTHING is not in
-- the transition table), and updates (SET deleted = TRUE), deletes and TRUNCATE of logs
-- adjust it. https://www.postgresql.org/docs/15/sql-createtrigger.html (transition relations)
-- Each ingest statement updates the counts of the current minute and half hour again:
-- fillfactor 50 leaves room on each page for the new row versions, so the updates are HOT
-- and add no index entry. https://www.postgresql.org/docs/15/storage-hot.html
CREATE TABLE log_counts (
    granule_s INTEGER NOT NULL,
    bucket_us BIGINT NOT NULL,
    service VARCHAR(100) NOT NULL,
    level log_level NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (granule_s, bucket_us, service, level)
) WITH (fillfactor = 50);

-- Each trigger adds the signed rows it is given to log_counts: counted per minute first
-- (date_bin from the epoch is the floor in UTC whatever the session's time zone), then each
-- minute added to its 1- and 30-minute granules. The keys are upserted in one order so
-- two ingest statements touching the same counts wait for each other instead of deadlocking.
-- Transition tables are visible only in the trigger's own function, so each trigger holds its
-- own copy of the statement.
CREATE FUNCTION log_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_counts (granule_s, bucket_us, service, level, n)
    SELECT g.s, m.us - (m.us % (g.s * 1000000::bigint) + g.s * 1000000::bigint)
            % (g.s * 1000000::bigint),
        m.service, m.level, sum(m.n)
    FROM (
        SELECT (extract(epoch FROM minute) * 1000000)::bigint AS us, service, level, n
        FROM (
            SELECT date_bin('1 minute', created_at, timestamptz '1970-01-01 00:00:00+00') AS minute,
                service, level, sum(sign) AS n
            FROM (
                SELECT created_at, service, level, 1 AS sign
                FROM new_rows WHERE deleted = FALSE
            ) AS changes
            GROUP BY 1, 2, 3
        ) AS minutes
    ) AS m
    CROSS JOIN (VALUES (60), (1800)) AS g (s)
    GROUP BY 1, 2, 3, 4
    HAVING sum(m.n) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (granule_s, bucket_us, service, level)
    DO UPDATE SET n = log_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION log_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_counts (granule_s, bucket_us, service, level, n)
    SELECT g.s, m.us - (m.us % (g.s * 1000000::bigint) + g.s * 1000000::bigint)
            % (g.s * 1000000::bigint),
        m.service, m.level, sum(m.n)
    FROM (
        SELECT (extract(epoch FROM minute) * 1000000)::bigint AS us, service, level, n
        FROM (
            SELECT date_bin('1 minute', created_at, timestamptz '1970-01-01 00:00:00+00') AS minute,
                service, level, sum(sign) AS n
            FROM (
                SELECT created_at, service, level, -1 AS sign
                FROM old_rows WHERE deleted = FALSE
                UNION ALL
                SELECT created_at, service, level, 1 AS sign
                FROM new_rows WHERE deleted = FALSE
            ) AS changes
            GROUP BY 1, 2, 3
        ) AS minutes
    ) AS m
    CROSS JOIN (VALUES (60), (1800)) AS g (s)
    GROUP BY 1, 2, 3, 4
    HAVING sum(m.n) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (granule_s, bucket_us, service, level)
    DO UPDATE SET n = log_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION log_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_counts (granule_s, bucket_us, service, level, n)
    SELECT g.s, m.us - (m.us % (g.s * 1000000::bigint) + g.s * 1000000::bigint)
            % (g.s * 1000000::bigint),
        m.service, m.level, sum(m.n)
    FROM (
        SELECT (extract(epoch FROM minute) * 1000000)::bigint AS us, service, level, n
        FROM (
            SELECT date_bin('1 minute', created_at, timestamptz '1970-01-01 00:00:00+00') AS minute,
                service, level, sum(sign) AS n
            FROM (
                SELECT created_at, service, level, -1 AS sign
                FROM old_rows WHERE deleted = FALSE
            ) AS changes
            GROUP BY 1, 2, 3
        ) AS minutes
    ) AS m
    CROSS JOIN (VALUES (60), (1800)) AS g (s)
    GROUP BY 1, 2, 3, 4
    HAVING sum(m.n) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (granule_s, bucket_us, service, level)
    DO UPDATE SET n = log_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION log_counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE log_counts;
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
CREATE TRIGGER logs_counts_truncate AFTER TRUNCATE ON logs
    FOR EACH STATEMENT EXECUTE FUNCTION log_counts_truncated();

-- The rows already stored.
INSERT INTO log_counts (granule_s, bucket_us, service, level, n)
SELECT g.s, m.us - (m.us % (g.s * 1000000::bigint) + g.s * 1000000::bigint)
        % (g.s * 1000000::bigint),
    m.service, m.level, sum(m.n)
FROM (
    SELECT (extract(epoch FROM minute) * 1000000)::bigint AS us, service, level, n
    FROM (
        SELECT date_bin('1 minute', created_at, timestamptz '1970-01-01 00:00:00+00') AS minute,
            service, level, sum(sign) AS n
        FROM (
            SELECT created_at, service, level, 1 AS sign
            FROM logs WHERE deleted = FALSE
        ) AS changes
        GROUP BY 1, 2, 3
    ) AS minutes
) AS m
CROSS JOIN (VALUES (60), (1800)) AS g (s)
GROUP BY 1, 2, 3, 4
HAVING sum(m.n) <> 0
ORDER BY 1, 2, 3, 4
ON CONFLICT (granule_s, bucket_us, service, level)
DO UPDATE SET n = log_counts.n + EXCLUDED.n;
