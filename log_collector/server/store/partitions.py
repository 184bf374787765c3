"""The partitions of PostgreSQL's ``logs`` (one a day, UTC, made by pg_partman; see
migrations/postgres/0007_partitioned_logs.sql): their maintenance and retention.

``maintain`` does, in one transaction, what keeps the table healthy:

1. with a retention, deletes the rows older than the first day it keeps from the default
   partition, and drops every partition whose whole day is older
   (``partman.drop_partition_time``): a drop is a catalog change, not a scan, and leaves no
   dead rows to vacuum. The counts of the dropped days leave ``log_counts`` with them (a drop
   fires no DELETE trigger).
2. makes the partitions of the days ahead (``partman.run_maintenance``: 7 ahead of now);
3. moves the rows of the default partition (times outside the partitions that existed when
   they arrived: an old spool replayed, a clock off) into partitions of their days
   (``partman.partition_data_time``), up to the last day made ahead, so that day's partition
   can always be made (it cannot while the default holds rows of its range). Rows further
   ahead stay in the default partition, stored and found like any other.

While a run moves rows out of the default partition, a query running at the moment it commits
may miss those rows (it plans with the partitions as they were); the next query finds them.

The server runs it when it starts and every hour (roles that write; ``server/maintenance.py``),
``log-collector retention --keep 30d`` once. Two processes running it at once
(several workers or replicas) do not both work: the one that does not get the advisory lock
returns at once. https://github.com/pgpartman/pg_partman/blob/v4.7.2/doc/pg_partman.md
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from .base import Maintenance, retention_cutoff

# Any constant shared by every maintainer; "lcpart" in ASCII.
_LOCK_KEY = 0x6C6370617274
# Days of rows moved out of the default partition per call, per maintenance run.
_DEFAULT_DAYS_PER_RUN = 100


def maintain(conn: psycopg.Connection, keep: timedelta | None = None) -> Maintenance:
    """One maintenance run on ``conn`` (autocommit), in one transaction; with ``keep``, drop
    what is older (see the module's docstring)."""
    with conn.transaction():
        locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK_KEY,)).fetchone()
        if not (locked and locked[0]):
            return Maintenance(ran=False)
        conn.execute("SET LOCAL TIME ZONE 'UTC'")
        kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('logs')")
        if kind.fetchone() != ("p",):
            # Not partitioned (a database whose 0007 was skipped): nothing of this applies.
            return Maintenance()
        partman = _partman_schema(conn)
        parent = _parent(conn)
        before = _partitions(conn, partman, parent)
        done = Maintenance()
        if keep is not None:
            now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            done.cutoff = retention_cutoff(keep, now)
            done.deleted = _delete_old_default_rows(conn, done.cutoff)
            _drop_days_before(conn, partman, parent, done.cutoff)
            conn.execute(
                "DELETE FROM log_counts WHERE bucket_us < %s",
                (_epoch_us(done.cutoff),),
            )
        conn.execute(
            sql.SQL("SELECT {}.run_maintenance(p_parent_table => %s, p_jobmon => false)").format(
                sql.Identifier(partman)
            ),
            (parent,),
        )
        done.moved = _move_default_rows(conn, partman, parent)
        after = _partitions(conn, partman, parent)
        done.dropped = [name for name in before if name not in after]
        done.created = [name for name in after if name not in before]
        return done


def _partman_schema(conn: psycopg.Connection) -> str:
    row = conn.execute(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_partman'"
    ).fetchone()
    if row is None:
        raise RuntimeError(
            "pg_partman is not installed in this database: run log-collector migrate"
        )
    return str(row[0]).strip('"')


def _parent(conn: psycopg.Connection) -> str:
    schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
    return f"{schema}.logs"


def _partitions(conn: psycopg.Connection, partman: str, parent: str) -> list[str]:
    query = sql.SQL("SELECT partition_tablename FROM {}.show_partitions(%s, 'ASC')").format(
        sql.Identifier(partman)
    )
    return [name for (name,) in conn.execute(query, (parent,))]


def _delete_old_default_rows(conn: psycopg.Connection, cutoff: datetime) -> int:
    # A DELETE, not a drop: the counting trigger takes these rows off log_counts.
    cursor = conn.execute("DELETE FROM logs_default WHERE created_at < %s", (cutoff,))
    return cursor.rowcount


def _drop_days_before(
    conn: psycopg.Connection, partman: str, parent: str, cutoff: datetime
) -> None:
    # drop_partition_time drops each partition whose upper bound is before
    # p_reference_timestamp - p_retention: here, every day that ends at or before the cutoff.
    conn.execute(
        sql.SQL(
            "SELECT {}.drop_partition_time(p_parent_table => %s, p_retention => interval '0', "
            "p_keep_table => false, p_reference_timestamp => %s)"
        ).format(sql.Identifier(partman)),
        (parent, cutoff + timedelta(microseconds=1)),
    )


def _move_default_rows(conn: psycopg.Connection, partman: str, parent: str) -> int:
    """Moves the default partition's rows of the days up to the last one made ahead, oldest
    first, each day into a partition made for it. Rows further ahead stay there until their
    day comes near: a partition made far ahead would stop pg_partman making the days between
    (it makes days after its newest partition)."""
    days = conn.execute(
        sql.SQL(
            "SELECT count(DISTINCT date_trunc('day', created_at)) FROM logs_default "
            "WHERE created_at < now() + make_interval(days => 1 + "
            "(SELECT premake FROM {}.part_config WHERE parent_table = %s))"
        ).format(sql.Identifier(partman)),
        (parent,),
    ).fetchone()
    if not days or not days[0]:
        return 0
    # Each batch is one day, the oldest left first: exactly the days counted above.
    row = conn.execute(
        sql.SQL(
            "SELECT {}.partition_data_time(p_parent_table => %s, p_batch_count => %s, "
            "p_analyze => false)"
        ).format(sql.Identifier(partman)),
        (parent, min(days[0], _DEFAULT_DAYS_PER_RUN)),
    ).fetchone()
    return int(row[0]) if row and row[0] else 0


def _epoch_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
