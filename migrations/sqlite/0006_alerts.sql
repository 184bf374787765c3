-- Alerts the background checker raises from the logs (log_collector/server/alerts/; the same as
-- migrations/postgres/0006_alerts.sql), kept here so they outlive a restart. One row per
-- episode: a rule's condition holding for one key (`rule` 'error_spike', 'slow_endpoint' or
-- 'silent_service'; `key` the service, or the method and path the rule watches) from
-- `opened_at` until the check that found it cleared (`resolved_at`). While it is open each
-- check rewrites `updated_at`, `severity`, `summary` and `details` (JSON text: the figures
-- that raised it, as the webhook and GET /api/alerts show them) and opens no second row:
-- idx_alerts_open allows one open alert per (rule, key), so two checkers on one database
-- (two server processes) cannot both open it, and the one whose INSERT is skipped does not
-- notify. `notified_at`: when the webhook last delivered a change of this alert.
-- Times are microseconds since the epoch, like logs.created_at
-- (migrations/sqlite/0002_times_as_integer_microseconds.sql).
-- Not readable through POST /api/sql: the guard's allowlist names logs and logs_iso only.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL CHECK (length(rule) BETWEEN 1 AND 100),
    key TEXT NOT NULL CHECK (length(key) <= 1000),
    status TEXT NOT NULL CHECK (status = 'open' OR status = 'resolved'),
    severity TEXT NOT NULL
        CHECK (severity = 'info' OR severity = 'warning' OR severity = 'critical'),
    summary TEXT NOT NULL CHECK (length(summary) <= 2000),
    details TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    opened_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    resolved_at INTEGER,
    notified_at INTEGER,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);

-- At most one open alert per rule and key; resolved ones accumulate (the checker deletes
-- those resolved longer ago than its retention).
CREATE UNIQUE INDEX idx_alerts_open ON alerts (rule, key) WHERE status = 'open';
-- GET /api/alerts lists newest first.
CREATE INDEX idx_alerts_opened ON alerts (opened_at DESC, id DESC);
