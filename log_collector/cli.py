"""``log-collector``: thin click commands over library functions.

Errors are one clear line on stderr and a non-zero exit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from . import __version__
from .config import ConfigError, default_spool_dir
from .spool import NotAdoptable, Spool, SpoolError, inspect, spool_files


def _default_paths() -> list[Path]:
    import os

    configured = os.environ.get("LOG_COLLECTOR_SPOOL_DIR")
    if configured:
        return [Path(configured)]
    return [default_spool_dir(None, os.environ).parent]


def _must_exist(paths: tuple[Path, ...]) -> None:
    """One clear line (click's own check prints a usage block) for a path that is not there."""
    for path in paths:
        if not path.exists():
            raise click.ClickException(f"no such file or directory: {path}")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="log-collector")
def main() -> None:
    """Durable log shipping: inspect and drain spools, run the ingest server."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per spool file.")
def status(paths: tuple[Path, ...], as_json: bool) -> None:
    """What spool files hold: rows, bytes, oldest age, dead letters, owner, target.

    \b
    Example:
      log-collector status ~/.cache/log-collector/payments
    """
    _must_exist(paths)
    files = spool_files(list(paths) or _default_paths())
    if not files:
        click.echo("no spool files found")
        return
    for path in files:
        info = inspect(path)
        if as_json:
            click.echo(json.dumps(info))
        elif "error" in info:
            click.echo(f"{path}: unreadable: {info['error']}")
        else:
            dropped = ", ".join(f"{k}={v}" for k, v in info["dropped"].items()) or "none"
            owner = f"alive (pid {info['pid']})" if info["owner_alive"] else "gone"
            if "snapshot_age" in info:  # a live spool: its owner's last snapshot
                owner += f", figures as of {_age(info['snapshot_age'])} ago"
            click.echo(
                f"{path}: {info['rows']} rows, {info['bytes']} B, "
                f"oldest {_age(info['oldest_age'])}, {info['dead_letters']} dead letters, "
                f"dropped {dropped}, owner {owner}, target {info['target_url']}"
            )


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--server", "server_url", help="Send here instead of each spool's own target.")
@click.option("--api-key", envvar="LOG_COLLECTOR_API_KEY", help="Bearer key for the server.")
@click.option("--timeout", default=60.0, show_default=True, help="Give up after this many seconds.")
def replay(
    paths: tuple[Path, ...], server_url: str | None, api_key: str | None, timeout: float
) -> None:
    """Drain spool files (or directories of them) to a server; exit 0 only when empty.

    \b
    Example:
      log-collector replay /var/cache/log-collector/payments --server http://logs:8000
    """
    from .replay import replay as run_replay

    _must_exist(paths)
    if server_url is not None:
        from .config import _url

        try:
            server_url = _url(server_url)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    with click.progressbar(length=1, label="replaying", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        report = run_replay(
            list(paths),
            server_url=server_url,
            api_key=api_key,
            timeout=timeout,
            on_progress=progress,
        )
    for path, why in report.skipped:
        click.echo(f"skipped {path}: {why}", err=True)
    click.echo(
        f"sent {report.sent}, dead-lettered {report.dead_lettered}, left {report.left}"
        + (f" (last error: {report.last_error})" if report.left and report.last_error else "")
    )
    if not report.complete:
        sys.exit(1)


@main.command("dead-letters")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--requeue", is_flag=True, help="Move them back to be sent again.")
@click.option("--limit", default=20, show_default=True, help="How many to list.")
def dead_letters(path: Path, requeue: bool, limit: int) -> None:
    """List the records a server refused for good, or requeue them.

    \b
    Example:
      log-collector dead-letters ./spool/1234-ab12cd34.spool --requeue
    """
    _must_exist((path,))
    try:
        spool = Spool.adopt(path)
    except (NotAdoptable, SpoolError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        if requeue:
            click.echo(f"requeued {spool.requeue_dead_letters()} record(s)")
            return
        rows = spool.dead_letter_rows(limit)
        for row_id, failed_at, reason, body in rows:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(failed_at))
            click.echo(f"#{row_id} {when} {reason}\n    {body[:200]}")
        if not rows:
            click.echo("no dead letters")
    finally:
        spool.close(remove_if_empty=False)


@main.command()
@click.option("--db", "db_url", default="sqlite:///./logs.db", show_default=True, help="Store URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--body-timeout",
    default=30.0,
    show_default=True,
    help="Seconds a client has to send a request body (then 408).",
)
def serve(db_url: str, host: str, port: int, body_timeout: float) -> None:
    """Run the ingest server (POST /logs) on SQLite or PostgreSQL.

    \b
    Example:
      log-collector serve --db postgresql://logs@db/logs --host 0.0.0.0 --port 8000
    """
    server = _server_module()
    try:
        server.serve(db_url, host=host, port=port, limits=server.Limits(body_timeout=body_timeout))
    except (server.StoreUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option(
    "--db", "db_url", required=True, help="Store URL (sqlite:///path or postgresql://...)."
)
def migrate(db_url: str) -> None:
    """Apply pending schema migrations to a store; a no-op when up to date.

    \b
    Example:
      log-collector migrate --db postgresql://postgres@127.0.0.1/logs
    """
    applied = _server_module().migrate(db_url)
    click.echo("applied: " + ", ".join(applied) if applied else "up to date")


def _server_module() -> Any:
    try:
        from . import server
    except ImportError as exc:
        raise click.ClickException(
            f"the server needs its extra: pip install 'log-collector-durable[server]' ({exc})"
        ) from None
    return server


if __name__ == "__main__":
    main()
