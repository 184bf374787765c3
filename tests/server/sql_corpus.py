"""Statements for the guarded SQL tests: what the guard must refuse and what it must accept.

Each hostile entry is ``(sql, dialects)``: the stores it is written for ("both" when the
statement means the same on each). Each legitimate entry is ``(sql, dialect)``.
"""

from __future__ import annotations

BOTH = ("postgres", "sqlite")
PG = ("postgres",)
LITE = ("sqlite",)

HOSTILE: list[tuple[str, tuple[str, ...]]] = [
    ("SELECT pg_sleep(600) -- deleted", PG),
    ("SELECT PG_SLEEP(600)", PG),
    ('SELECT "pg_catalog"."pg_sleep"(600)', PG),
    ("SELECT pg_catalog.pg_sleep(600)", PG),
    ('SELECT "pg_sleep"(600)', PG),
    ('SELECT U&"pg_sleep"(600)', PG),
    ("SELECT count(*) FROM logs WHERE pg_sleep(600) IS NULL", PG),
    ("SELECT (SELECT pg_sleep(600))", PG),
    ("SELECT pg_read_file('/etc/passwd')", PG),
    ("SELECT pg_read_binary_file('/etc/passwd')", PG),
    ("SELECT pg_ls_dir('.')", PG),
    ("SELECT * FROM pg_stat_file('/etc/passwd')", PG),
    ("SELECT * INTO stolen FROM logs", BOTH),
    ("SELECT * INTO TEMP stolen FROM logs", PG),
    ("SELECT usename, passwd FROM pg_shadow", PG),
    ("SELECT * FROM pg_catalog.pg_authid", PG),
    ("SELECT * FROM pg_roles", PG),
    ('SELECT * FROM "pg_catalog"."pg_class"', PG),
    ("SELECT * FROM information_schema.tables", BOTH),
    ("SELECT table_name FROM information_schema.columns", PG),
    ("WITH pg_shadow AS (SELECT * FROM pg_shadow) SELECT * FROM pg_shadow", PG),
    ("SELECT * FROM logs WHERE EXISTS (SELECT 1 FROM pg_user)", PG),
    ("SELECT 1; DROP TABLE logs", BOTH),
    ("SELECT 1; DELETE FROM logs", BOTH),
    ("SELECT 1;/* x */DROP TABLE logs", BOTH),
    ("SELECT 1 /* ; */; UPDATE logs SET message = 'x'", BOTH),
    ("SELECT 1 -- \n; DELETE FROM logs", BOTH),
    ("/* SELECT */ DELETE FROM logs", BOTH),
    ("-- SELECT 1\nDROP TABLE logs", BOTH),
    ("DeLeTe FROM logs", BOTH),
    ("WITH x AS (DELETE FROM logs RETURNING *) SELECT * FROM x", BOTH),
    ("WITH x AS (UPDATE logs SET message = 'x' RETURNING id) SELECT * FROM x", BOTH),
    ("WITH x AS (INSERT INTO logs (message) VALUES ('x') RETURNING id) SELECT * FROM x", PG),
    ("SELECT * FROM logs FOR UPDATE", PG),
    ("SELECT * FROM logs FOR SHARE", PG),
    ("SELECT * FROM logs FOR NO KEY UPDATE SKIP LOCKED", PG),
    ("SELECT lo_import('/etc/passwd')", PG),
    ("SELECT lo_export(1, '/tmp/x')", PG),
    ("SELECT * FROM dblink('host=127.0.0.1', 'SELECT 1') AS t(x int)", PG),
    ("SELECT dblink_exec('host=127.0.0.1', 'DROP TABLE logs')", PG),
    ("SELECT set_config('role', 'postgres', false)", PG),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", PG),
    ("SELECT current_setting('data_directory')", PG),
    ("SELECT current_user", PG),
    ("SELECT version()", BOTH),
    ("SELECT txid_current()", PG),
    ("SELECT nextval('logs_id_seq')", PG),
    ("SELECT 'pg_shadow'::regclass", PG),
    ("SELECT 'pg_sleep'::regproc", PG),
    ("SELECT query_to_xml('DELETE FROM logs RETURNING 1', true, true, '')", PG),
    ("SELECT pg_terminate_backend(1)", PG),
    ("SELECT pg_cancel_backend(1)", PG),
    ("COPY logs TO '/tmp/stolen.csv'", PG),
    ("COPY (SELECT * FROM logs) TO PROGRAM 'sh'", PG),
    ("CREATE TABLE stolen AS SELECT * FROM logs", BOTH),
    ("CREATE TABLE x (y int)", BOTH),
    ("CREATE VIEW v AS SELECT * FROM logs", BOTH),
    ("CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql", PG),
    ("INSERT INTO logs (service, message) VALUES ('x', 'y')", BOTH),
    ("UPDATE logs SET message = 'gone'", BOTH),
    ("DELETE FROM logs", BOTH),
    ("DROP TABLE logs", BOTH),
    ("TRUNCATE logs", PG),
    ("ALTER TABLE logs ADD COLUMN x int", BOTH),
    ("GRANT ALL ON logs TO PUBLIC", PG),
    ("VACUUM", BOTH),
    ("VACUUM INTO '/tmp/copy.db'", LITE),
    ("ANALYZE logs", BOTH),
    ("EXPLAIN ANALYZE DELETE FROM logs", PG),
    ("EXPLAIN SELECT * FROM logs", BOTH),
    ("CALL do_something()", PG),
    ("DO $$BEGIN DELETE FROM logs; END$$", PG),
    ("LISTEN channel", PG),
    ("NOTIFY channel, 'x'", PG),
    ("SET ROLE postgres", PG),
    ("SET statement_timeout = 0", PG),
    ("RESET ROLE", PG),
    ("RESET ALL", PG),
    ("LOCK TABLE logs IN ACCESS EXCLUSIVE MODE", PG),
    ("BEGIN", BOTH),
    ("COMMIT", BOTH),
    ("PREPARE p AS DELETE FROM logs", PG),
    ("DECLARE c CURSOR FOR SELECT * FROM logs", PG),
    ("SHOW ALL", PG),
    ("ATTACH DATABASE '/tmp/evil.db' AS evil", LITE),
    ("DETACH DATABASE main", LITE),
    ("SELECT load_extension('/tmp/evil.so')", LITE),
    ("SELECT readfile('/etc/passwd')", LITE),
    ("SELECT writefile('/tmp/x', 'y')", LITE),
    ("SELECT fts3_tokenizer('simple')", LITE),
    ("SELECT * FROM sqlite_master", LITE),
    ("SELECT sql FROM sqlite_schema", LITE),
    ("SELECT * FROM SQLITE_MASTER", LITE),
    ('SELECT * FROM "sqlite_master"', LITE),
    ("SELECT * FROM main.sqlite_master", LITE),
    ("SELECT * FROM sqlite_temp_master", LITE),
    ("SELECT * FROM pragma_table_info('logs')", LITE),
    ("SELECT * FROM pragma_database_list", LITE),
    ("PRAGMA writable_schema = 1", LITE),
    ("PRAGMA query_only = 0", LITE),
    ("REPLACE INTO logs (id, message) VALUES (1, 'x')", LITE),
    ("REINDEX logs", LITE),
    ("SELECT * FROM main.logs", LITE),
    ("SELECT * FROM public.logs, pg_shadow", PG),
    ("SELECT * FROM log_collector_migrations", PG),
    ("SELECT sqlite_version()", LITE),
    ("SELECT randomblob(1000000000)", LITE),
    ("SELECT zeroblob(1000000000)", LITE),
    ("SELECT * FROM json_each('[1]')", LITE),
    ("WITH logs AS (SELECT 1 AS id) SELECT * FROM logs", BOTH),
    ("SELECT 1 UNION SELECT passwd FROM pg_shadow", PG),
    ("SELECT * FROM (SELECT * FROM sqlite_master) AS x", LITE),
    ("SELECT ?", BOTH),
    ("SELECT $1", PG),
    ("", BOTH),
    ("   ;  ", BOTH),
    ("SELEC 1", BOTH),
    ("SELECT * FROM logs WHERE", BOTH),
    ("\x00SELECT 1", BOTH),
]

LEGITIMATE: list[tuple[str, str]] = [
    ("SELECT count(*) AS n FROM logs", "postgres"),
    ("SELECT count(*) AS n FROM logs", "sqlite"),
    ("SELECT id, message FROM logs WHERE path = '/api/users/delete' ORDER BY id", "postgres"),
    ("SELECT id, message FROM logs WHERE path = '/api/users/delete' ORDER BY id", "sqlite"),
    ("SELECT id FROM logs WHERE message = 'DROP TABLE logs; --' ORDER BY id", "postgres"),
    ("SELECT id FROM logs WHERE message = 'DROP TABLE logs; --' ORDER BY id", "sqlite"),
    (
        "SELECT service, level, count(*) AS n FROM logs GROUP BY service, level "
        "HAVING count(*) >= 1 ORDER BY service, level",
        "postgres",
    ),
    (
        "SELECT service, level, count(*) AS n FROM logs GROUP BY service, level "
        "HAVING count(*) >= 1 ORDER BY service, level",
        "sqlite",
    ),
    (
        "SELECT metadata->>'order_id' AS order_id, count(*) AS n FROM logs "
        "WHERE metadata->>'order_id' IS NOT NULL GROUP BY 1 ORDER BY 1",
        "postgres",
    ),
    (
        "SELECT json_extract(metadata, '$.order_id') AS order_id, count(*) AS n FROM logs "
        "WHERE json_extract(metadata, '$.order_id') IS NOT NULL GROUP BY 1 ORDER BY 1",
        "sqlite",
    ),
    (
        "WITH errors AS (SELECT service, created_at FROM logs WHERE level = 'ERROR') "
        "SELECT service, count(*) AS n FROM errors GROUP BY service ORDER BY n DESC, service",
        "postgres",
    ),
    (
        "WITH errors AS (SELECT service, created_at FROM logs WHERE level = 'ERROR') "
        "SELECT service, count(*) AS n FROM errors GROUP BY service ORDER BY n DESC, service",
        "sqlite",
    ),
    (
        "SELECT id, service, row_number() OVER (PARTITION BY service ORDER BY id) AS rn, "
        "lag(id) OVER (ORDER BY id) AS prev FROM logs ORDER BY id",
        "postgres",
    ),
    (
        "SELECT id, service, row_number() OVER (PARTITION BY service ORDER BY id) AS rn, "
        "lag(id) OVER (ORDER BY id) AS prev FROM logs ORDER BY id",
        "sqlite",
    ),
    (
        "SELECT date_trunc('hour', created_at) AS hour, count(*) AS n FROM logs "
        "GROUP BY 1 ORDER BY 1",
        "postgres",
    ),
    (
        "SELECT strftime('%Y-%m-%d %H:00', created_at / 1000000, 'unixepoch') AS hour, "
        "count(*) AS n FROM logs GROUP BY 1 ORDER BY 1",
        "sqlite",
    ),
    (
        "SELECT service FROM logs WHERE level = 'ERROR' UNION "
        "SELECT service FROM logs WHERE level = 'WARN' ORDER BY 1",
        "postgres",
    ),
    (
        "SELECT service FROM logs WHERE level = 'ERROR' UNION "
        "SELECT service FROM logs WHERE level = 'WARN' ORDER BY 1",
        "sqlite",
    ),
    (
        "SELECT id FROM logs WHERE duration_ms > (SELECT avg(duration_ms) FROM logs) ORDER BY id",
        "postgres",
    ),
    (
        "SELECT id FROM logs WHERE duration_ms > (SELECT avg(duration_ms) FROM logs) ORDER BY id",
        "sqlite",
    ),
    (
        "SELECT id, created_at, message FROM logs_iso WHERE level = 'INFO' ORDER BY id",
        "sqlite",
    ),
    (
        "SELECT lower(service) AS s, upper(CAST(level AS text)) AS l, length(message) AS len, "
        "coalesce(user_id, '-') AS u, round(CAST(duration_ms AS numeric), 1) AS d "
        "FROM logs ORDER BY id",
        "postgres",
    ),
    (
        "SELECT lower(service) AS s, upper(level) AS l, length(message) AS len, "
        "ifnull(user_id, '-') AS u, round(duration_ms, 1) AS d FROM logs ORDER BY id",
        "sqlite",
    ),
    (
        "SELECT service, count(*) FILTER (WHERE level = 'ERROR') AS errors, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50 "
        "FROM logs GROUP BY service ORDER BY service",
        "postgres",
    ),
    (
        "SELECT id FROM logs WHERE created_at >= now() - interval '1 day' "
        "AND message ILIKE '%paid%' ORDER BY id",
        "postgres",
    ),
    (
        "SELECT id FROM logs WHERE created_at >= (unixepoch() - 86400) * 1000000 "
        "AND message LIKE '%paid%' ORDER BY id",
        "sqlite",
    ),
    (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5) "
        "SELECT x FROM n",
        "sqlite",
    ),
    ("SELECT n FROM generate_series(1, 5) AS g(n) ORDER BY n", "postgres"),
    (
        "SELECT CASE WHEN duration_ms > 100 THEN 'slow' ELSE 'fast' END AS speed, "
        "count(*) AS n FROM logs GROUP BY 1 ORDER BY 1",
        "postgres",
    ),
    (
        "SELECT CASE WHEN duration_ms > 100 THEN 'slow' ELSE 'fast' END AS speed, "
        "count(*) AS n FROM logs GROUP BY 1 ORDER BY 1",
        "sqlite",
    ),
    ("SELECT l.id FROM logs AS l JOIN logs AS m ON m.id = l.id ORDER BY l.id", "postgres"),
    ("SELECT l.id FROM logs AS l JOIN logs AS m ON m.id = l.id ORDER BY l.id", "sqlite"),
]
