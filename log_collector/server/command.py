"""The ``serve`` and ``migrate`` commands: ``log-collector serve`` and
``python -m log_collector.server`` run this same click command.

Loads only click and the server's leaf modules (limits, store URLs): the
rest of the server, and its extra, load when a command runs.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .auth import ROLES
from .limits import ConnectionLimits, Limits
from .store import DEFAULT_DB_URL, StoreUnavailable

# As the log-collector group has them, for ``python -m log_collector.server`` too.
_HELP = {"help_option_names": ["-h", "--help"]}


@click.command(context_settings=_HELP)
@click.option("--db", "db_url", default=DEFAULT_DB_URL, show_default=True, help="Store URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--body-timeout",
    default=Limits.body_timeout,
    show_default=True,
    help="Seconds a client has to send a request body (then 408).",
)
@click.option(
    "--header-timeout",
    default=ConnectionLimits.header_timeout,
    show_default=True,
    help="Seconds a connection has to send a request's headers (then closed).",
)
@click.option(
    "--max-connections",
    default=ConnectionLimits.max_connections,
    show_default=True,
    help="Open connections at most, lowered to fit the open-files limit.",
)
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default="all",
    show_default=True,
    help="ingest: POST /logs; query: /api/* and /stats; all: both.",
)
@click.option(
    "--sql-timeout",
    default=5.0,
    show_default=True,
    help="Seconds a POST /api/sql statement may run (then 504).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="Worker processes sharing the store (PostgreSQL; SQLite keeps one).",
)
@click.option(
    "--read-db",
    "read_db_url",
    envvar="LOG_COLLECTOR_READ_DB_URL",
    help="A PostgreSQL replica of --db for the reads (/api/*, /stats); writes stay on --db.",
)
@click.option(
    "--cors-origins",
    envvar="LOG_COLLECTOR_CORS_ORIGINS",
    help="Origins browsers may post and read from, comma-separated; * for any.",
)
@click.option(
    "--retention",
    envvar="LOG_COLLECTOR_RETENTION",
    help="Keep rows this long (30d, 4w); older days are dropped hourly. Default: forever.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    help="uvicorn's log level: critical, error, warning, info, debug or trace.",
)
@click.option(
    "--access-log/--no-access-log", default=True, show_default=True, help="A line per request."
)
def serve(
    db_url: str,
    host: str,
    port: int,
    body_timeout: float,
    header_timeout: float,
    max_connections: int,
    role: str,
    sql_timeout: float,
    workers: int,
    read_db_url: str | None,
    cors_origins: str | None,
    retention: str | None,
    log_level: str,
    access_log: bool,
) -> None:
    """Run the server on SQLite or PostgreSQL: ingest (POST /logs), the query API
    (/api/*, /stats), or both.

    Keys come from the environment: LOG_COLLECTOR_API_KEYS (ingest) and
    LOG_COLLECTOR_READ_KEYS (read), comma-separated.

    \b
    Example:
      log-collector serve --db postgresql://logs@db/logs --host 0.0.0.0 --port 8000
      log-collector serve --db postgresql://logs@db/logs --workers 2
      log-collector serve --db postgresql://logs@db/logs --role query --port 8001 \\
          --read-db postgresql://logs@replica/logs
    """
    run = _run_module()
    try:
        run.serve(
            db_url,
            host=host,
            port=port,
            limits=Limits(body_timeout=body_timeout),
            connections=ConnectionLimits(header_timeout, max_connections),
            role=role,
            sql_timeout=sql_timeout,
            workers=workers,
            read_db_url=read_db_url,
            cors_origins=cors_origins,
            retention=retention,
            log_level=log_level,
            access_log=access_log,
        )
    except (StoreUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command(context_settings=_HELP)
@click.option(
    "--db", "db_url", required=True, help="Store URL (sqlite:///path or postgresql://...)."
)
def migrate(db_url: str) -> None:
    """Apply pending schema migrations to a store; a no-op when up to date.

    \b
    Example:
      log-collector migrate --db postgresql://postgres@127.0.0.1/logs
    """
    applied = _run_module().migrate(db_url)
    click.echo("applied: " + ", ".join(applied) if applied else "up to date")


@click.command(context_settings=_HELP)
@click.option(
    "--db", "db_url", required=True, help="Store URL (sqlite:///path or postgresql://...)."
)
@click.option("--keep", required=True, help="How long rows are kept: 30d, 4w, 36h (>= 1d).")
def retention(db_url: str, keep: str) -> None:
    """Remove the rows older than --keep, now: on PostgreSQL whole day partitions are
    dropped (days that end before the day holding now - keep), on SQLite the rows are
    deleted. A server started with --retention does the same every hour.

    \b
    Example:
      log-collector retention --db postgresql://postgres@127.0.0.1/logs --keep 30d
    """
    try:
        done = _run_module().retain(db_url, keep)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(done.summary())


def _run_module() -> Any:
    try:
        from . import run
    except ImportError as exc:
        raise click.ClickException(
            f"the server needs its extra: pip install 'log-collector-durable[server]' ({exc})"
        ) from None
    return run


def run_standalone(argv: list[str] | None = None) -> int:
    """``serve`` as ``python -m log_collector.server``: an expected failure is
    one line, ``log-collector server: ...``, and exit status 1."""
    try:
        serve.main(argv, prog_name="python -m log_collector.server", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"log-collector server: {exc.format_message()}", file=sys.stderr)
        return 1
    except click.Abort:
        return 1
    return 0
