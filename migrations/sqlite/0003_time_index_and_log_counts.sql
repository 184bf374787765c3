-- What the read API (log_collector/server/query/) needs beyond the original indexes; the
-- same as migrations/postgres/0003_time_index_and_log_counts.sql.
--
-- idx_logs_time: a window of time newest first (/api/logs with since but no service, q over
-- the last day, facets over the last hour) walks this index backwards and stops after a page.
-- Rows arrive in time order, so inserts append at the index's right edge.
CREATE INDEX idx_logs_time ON logs (created_at, id) WHERE deleted = FALSE;

-- log_counts: how many rows not deleted each (service, level) has in each granule of time
-- (1 minute and 30 minutes), as on PostgreSQL, so /api/histogram reads counts instead of rows
-- (log_collector/server/query/aggregates.py). bucket_us is the granule's start in
-- microseconds since the epoch (the floor, also before 1970).
-- Inserts are counted by SQLiteStore.insert in the same transaction, from the rows it stored
-- (log_collector/server/store/sqlite.py): SQLite has only row triggers, and an insert trigger
-- upserting two counts per row cost a fifth of the ingest rate. A row written into logs by
-- other means is not counted. Updates (SET deleted = TRUE) and deletes are rare and counted
-- by the row triggers below, whoever makes them.
-- https://www.sqlite.org/lang_upsert.html (the WHERE TRUE avoids the parsing ambiguity)
CREATE TABLE log_counts (
    granule_s INTEGER NOT NULL,
    bucket_us INTEGER NOT NULL,
    service TEXT NOT NULL,
    level TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (granule_s, bucket_us, service, level)
) WITHOUT ROWID;

CREATE TRIGGER logs_counts_update_old
    AFTER UPDATE OF created_at, service, level, deleted ON logs WHEN OLD.deleted = FALSE
BEGIN
    INSERT INTO log_counts (granule_s, bucket_us, service, level, n)
    SELECT g.s,
        OLD.created_at - (OLD.created_at % (g.s * 1000000) + g.s * 1000000) % (g.s * 1000000),
        OLD.service, OLD.level, -1
    FROM (SELECT 60 AS s UNION ALL SELECT 1800) AS g WHERE TRUE
    ON CONFLICT (granule_s, bucket_us, service, level) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER logs_counts_update_new
    AFTER UPDATE OF created_at, service, level, deleted ON logs WHEN NEW.deleted = FALSE
BEGIN
    INSERT INTO log_counts (granule_s, bucket_us, service, level, n)
    SELECT g.s,
        NEW.created_at - (NEW.created_at % (g.s * 1000000) + g.s * 1000000) % (g.s * 1000000),
        NEW.service, NEW.level, 1
    FROM (SELECT 60 AS s UNION ALL SELECT 1800) AS g WHERE TRUE
    ON CONFLICT (granule_s, bucket_us, service, level) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER logs_counts_delete AFTER DELETE ON logs WHEN OLD.deleted = FALSE
BEGIN
    INSERT INTO log_counts (granule_s, bucket_us, service, level, n)
    SELECT g.s,
        OLD.created_at - (OLD.created_at % (g.s * 1000000) + g.s * 1000000) % (g.s * 1000000),
        OLD.service, OLD.level, -1
    FROM (SELECT 60 AS s UNION ALL SELECT 1800) AS g WHERE TRUE
    ON CONFLICT (granule_s, bucket_us, service, level) DO UPDATE SET n = n + excluded.n;
END;

-- The rows already stored.
INSERT INTO log_counts (granule_s, bucket_us, service, level, n)
SELECT g.s, logs.created_at - (logs.created_at % (g.s * 1000000) + g.s * 1000000)
        % (g.s * 1000000) AS bucket,
    logs.service, logs.level, count(*)
FROM logs CROSS JOIN (SELECT 60 AS s UNION ALL SELECT 1800) AS g
WHERE logs.deleted = FALSE
GROUP BY 1, 2, 3, 4;
