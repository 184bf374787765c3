"""The SQL of the ``alerts`` table (migrations/*/0006_alerts.sql): reading the open alerts and
listing them for ``GET /api/alerts`` on read connections, and the checker's changes of one run
in one ``store.writing()`` transaction.

Opening inserts with ``ON CONFLICT DO NOTHING`` against the partial unique index of open
alerts, and resolving updates only a row still open, each with ``RETURNING``: when two checkers
share a database, only the one whose statement changed the row gets it back, and only it
notifies the webhook.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..query.dialect import Dialect, dialect_of, snapshot
from ..query.errors import BadQuery
from ..query.filters import checked_int, iso
from .rules import Finding

STATUSES = ("open", "resolved", "all")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_COLUMNS = (
    "id, rule, key, status, severity, summary, details, opened_at, updated_at, resolved_at, "
    "notified_at"
)


@dataclass(frozen=True)
class OpenAlert:
    id: int
    rule: str
    key: str


@dataclass(frozen=True)
class Changes:
    """What one run of the checker writes: findings to open, open alerts whose finding holds
    again (by id), open alerts to resolve (by id)."""

    opened: list[Finding]
    kept: list[tuple[int, Finding]]
    resolved: list[int]


def open_alerts(store: Any) -> list[OpenAlert]:
    with snapshot(store) as (conn, _):
        rows = conn.execute("SELECT id, rule, key FROM alerts WHERE status = 'open'").fetchall()
    return [OpenAlert(int(alert_id), rule, key) for alert_id, rule, key in rows]


def apply(
    store: Any, changes: Changes, now_us: int, prune_before_us: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Write ``changes`` as of ``now_us`` in one transaction, and delete the alerts resolved
    before ``prune_before_us``; return the alerts this call opened and those it resolved, as
    ``list_alerts`` lists them."""
    opened: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    if not (changes.opened or changes.kept or changes.resolved) and not _prunable(
        store, prune_before_us
    ):
        # Nothing to write: a quiet run takes no write lock (on SQLite the one the ingest
        # writer thread commits under).
        return opened, resolved
    with store.writing() as conn:
        d = dialect_of(conn)
        p = d.p
        now = d.time(now_us)
        details = f"{p}::jsonb" if d.postgres else p
        for finding in changes.opened:
            rows = conn.execute(
                "INSERT INTO alerts (rule, key, status, severity, summary, details, opened_at, "
                f"updated_at) VALUES ({p}, {p}, 'open', {p}, {p}, {details}, {p}, {p}) "
                f"ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
                [
                    finding.rule,
                    finding.key,
                    finding.severity,
                    finding.summary,
                    json.dumps(finding.details),
                    now,
                    now,
                ],
            ).fetchall()
            opened.extend(_alert(d, row) for row in rows)
        for alert_id, finding in changes.kept:
            conn.execute(
                f"UPDATE alerts SET updated_at = {p}, severity = {p}, summary = {p}, "
                f"details = {details} WHERE id = {p} AND status = 'open'",
                [now, finding.severity, finding.summary, json.dumps(finding.details), alert_id],
            )
        for alert_id in changes.resolved:
            rows = conn.execute(
                f"UPDATE alerts SET status = 'resolved', resolved_at = {p}, updated_at = {p} "
                f"WHERE id = {p} AND status = 'open' RETURNING {_COLUMNS}",
                [now, now, alert_id],
            ).fetchall()
            resolved.extend(_alert(d, row) for row in rows)
        conn.execute(
            f"DELETE FROM alerts WHERE status = 'resolved' AND resolved_at < {p}",
            [d.time(prune_before_us)],
        )
    return opened, resolved


def _prunable(store: Any, before_us: int) -> bool:
    with snapshot(store) as (conn, d):
        return (
            conn.execute(
                f"SELECT 1 FROM alerts WHERE status = 'resolved' AND resolved_at < {d.p} LIMIT 1",
                [d.time(before_us)],
            ).fetchone()
            is not None
        )


def mark_notified(store: Any, alert_id: int, now_us: int) -> None:
    """Record that the webhook delivered the latest change of ``alert_id`` at ``now_us``."""
    with store.writing() as conn:
        d = dialect_of(conn)
        conn.execute(
            f"UPDATE alerts SET notified_at = {d.p} WHERE id = {d.p}", [d.time(now_us), alert_id]
        )


def unnotified(store: Any, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """``(event, alert)`` for each alert whose latest change the webhook has not delivered
    (``notified_at`` unset or older than the change), oldest change first, at most ``limit``:
    an open one as ``opened``, a resolved one as ``resolved`` (its opening too, when that
    never went out)."""
    with snapshot(store) as (conn, d):
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM alerts WHERE "
            "(status = 'open' AND (notified_at IS NULL OR notified_at < opened_at)) "
            "OR (status = 'resolved' AND (notified_at IS NULL OR notified_at < resolved_at)) "
            f"ORDER BY coalesce(resolved_at, opened_at), id LIMIT {d.p}",
            [limit],
        ).fetchall()
        alerts = [_alert(d, row) for row in rows]
    return [("opened" if a["status"] == "open" else "resolved", a) for a in alerts]


def list_alerts(
    store: Any, status: str = "all", limit: int | str = DEFAULT_LIMIT
) -> dict[str, list[dict[str, Any]]]:
    """``{"alerts": [...]}``: the ``limit`` newest alerts (by opened_at, then id) of ``status``
    (``open``, ``resolved`` or ``all``)."""
    if status not in STATUSES:
        raise BadQuery("status", f"must be one of {', '.join(STATUSES)}")
    limit = checked_int("limit", limit, 1, MAX_LIMIT)
    with snapshot(store) as (conn, d):
        where = "" if status == "all" else f"WHERE status = {d.p} "
        params: list[Any] = [] if status == "all" else [status]
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM alerts {where}ORDER BY opened_at DESC, id DESC LIMIT {d.p}",
            [*params, limit],
        ).fetchall()
        return {"alerts": [_alert(d, row) for row in rows]}


def _alert(d: Dialect, row: tuple[Any, ...]) -> dict[str, Any]:
    (
        alert_id,
        rule,
        key,
        status,
        severity,
        summary,
        details,
        opened,
        updated,
        resolved,
        notified,
    ) = row
    return {
        "id": int(alert_id),
        "rule": rule,
        "key": key,
        "status": status,
        "severity": severity,
        "summary": summary,
        # jsonb comes back decoded from PostgreSQL, text from SQLite.
        "details": json.loads(details) if isinstance(details, str) else details,
        "opened_at": iso(d.us(opened)),
        "updated_at": iso(d.us(updated)),
        "resolved_at": None if resolved is None else iso(d.us(resolved)),
        "notified_at": None if notified is None else iso(d.us(notified)),
    }
