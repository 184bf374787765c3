-- The role POST /api/sql runs user statements as (log_collector/server/query/sqlexec.py):
-- it can log in to nothing and read only the logs table. The migrating user becomes a member
-- so the server can SET LOCAL ROLE to it inside each read-only transaction.
-- Roles belong to the whole cluster while this file runs once per database, so creating the
-- role is idempotent, and tolerates another database's migration creating it at the same
-- moment (the loser sees unique_violation on pg_authid, or duplicate_object).
-- https://www.postgresql.org/docs/15/sql-createrole.html
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'log_collector_reader') THEN
        CREATE ROLE log_collector_reader NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
            NOINHERIT NOREPLICATION NOBYPASSRLS;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- Granting an existing membership again only raises a notice.
GRANT log_collector_reader TO CURRENT_USER;

-- Per database: the schema holding logs, and SELECT on logs alone (not on the migrations
-- bookkeeping table, and no sequence or function rights beyond PUBLIC's).
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO log_collector_reader', current_schema());
END
$$;
GRANT SELECT ON logs TO log_collector_reader;
