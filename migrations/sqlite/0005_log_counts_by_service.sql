-- The view the readers count from (log_collector/server/query/aggregates.py): on PostgreSQL,
-- whose log_counts holds a count per level in columns since its 0005, it turns those back
-- into (granule_s, bucket_us, service, level, n); SQLite's log_counts already has that shape.
CREATE VIEW log_counts_by_level AS
SELECT granule_s, bucket_us, service, level, n FROM log_counts;
