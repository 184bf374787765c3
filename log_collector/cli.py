"""``log-collector``: thin click commands over library functions.

Every command takes spool files or directories of them. An expected failure
(a missing path, an unusable spool, an unreachable store, an invalid setting)
is one line on stderr, ``log-collector: error: ...``, and exit status 1; a
usage mistake is click's usage message and status 2. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import IO, Any

import click

from ._version import __version__
from .client.settings import ConfigError, default_spool_dir
from .client.spool import NotAdoptable, SpoolError, inspect, spool_files
from .client.wires import WIRES
from .server.command import migrate, retention, serve
from .server.store import StoreUnavailable

EXIT_FAILURE = 1


class CliError(click.ClickException):
    """One line, ``log-collector: error: ...``, and exit status 1."""

    exit_code = EXIT_FAILURE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"log-collector: error: {self.format_message()}", file=file or sys.stderr)


def _expected_errors() -> tuple[type[BaseException], ...]:
    """What a command may fail with that is the environment's fault, not a bug."""
    expected: tuple[type[BaseException], ...] = (
        OSError,
        sqlite3.Error,
        ConfigError,
        SpoolError,
        NotAdoptable,
        StoreUnavailable,
    )
    return expected


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.UsageError, click.exceptions.Exit, click.Abort, CliError):
            raise
        except click.ClickException as exc:
            raise CliError(exc.format_message()) from None
        except _expected_errors() as exc:
            raise CliError(_describe(exc)) from None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    return text or type(exc).__name__


def _default_paths() -> list[Path]:
    configured = os.environ.get("LOG_COLLECTOR_SPOOL_DIR")
    if configured:
        return [Path(configured)]
    return [default_spool_dir(None, os.environ).parent]


def _paths_or_default(paths: tuple[Path, ...]) -> list[Path]:
    """The paths named, each of which must exist, else the default spool directory."""
    for path in paths:
        if not path.exists():
            raise CliError(f"no such file or directory: {path}")
    if paths:
        return list(paths)
    defaults = _default_paths()
    for path in defaults:
        if not path.is_dir():
            raise CliError(
                f"no spool directory at {path}: nothing was spooled there yet "
                "(name a path, or set LOG_COLLECTOR_SPOOL_DIR)"
            )
    return defaults


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="log-collector")
def main() -> None:
    """Durable log shipping: inspect and drain spools, run the ingest server.

    Exit status: 0 on success, 1 on a failure (one line on stderr), 2 on a usage error.
    """


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per spool file.")
def status(paths: tuple[Path, ...], as_json: bool) -> None:
    """What spool files hold: rows, bytes, oldest age, dead letters, owner, target.

    PATHS are spool files or directories (default: the spool directory). Exits 1
    when a path does not exist or a spool file cannot be read.

    \b
    Example:
      log-collector status ~/.cache/log-collector/payments
    """
    files = spool_files(_paths_or_default(paths))
    if not files:
        click.echo("no spool files found")
        return
    unreadable = 0
    for path in files:
        info = inspect(path)
        unreadable += "error" in info
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
    if unreadable:
        raise CliError(f"{unreadable} of {len(files)} spool file(s) unreadable")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--server", "server_url", help="Send here instead of each spool's own target.")
@click.option(
    "--wire",
    type=click.Choice(WIRES),
    help="Send on this wire instead of each spool's own (its client's; log-collector if unset).",
)
@click.option("--api-key", envvar="LOG_COLLECTOR_API_KEY", help="Bearer key for the server.")
@click.option("--timeout", default=60.0, show_default=True, help="Give up after this many seconds.")
def replay(
    paths: tuple[Path, ...],
    server_url: str | None,
    wire: str | None,
    api_key: str | None,
    timeout: float,
) -> None:
    """Drain spool files (or directories of them) to a server; exit 0 only when empty.

    Exits 1 when rows are left (server unreachable until --timeout), when the
    server refused records (they stay as dead letters: see dead-letters), or
    when a spool file was skipped.

    Each spool goes on the wire its client used (kept in the file): this project's
    JSON to SERVER/logs, or OTLP protobuf to SERVER/v1/logs.

    \b
    Example:
      log-collector replay /var/cache/log-collector/payments --server http://logs:8000
    """
    from .client import replay as replaying
    from .client.settings import _url

    _paths_or_default(paths)
    if server_url is not None:
        server_url = _url(server_url)
    found = replaying.open_spools(list(paths), server_url=server_url, wire=wire)
    if not _report_skipped(found.skipped, usable=len(found.spools)):
        return
    with click.progressbar(
        length=max(found.pending(), 1), label="replaying", file=sys.stderr
    ) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        report = replaying.send(found, api_key=api_key, timeout=timeout, on_progress=progress)
    click.echo(
        f"sent {report.sent}, dead-lettered {report.dead_lettered}, left {report.left}"
        + (f" (last error: {report.last_error})" if report.left and report.last_error else "")
    )
    if report.dead_lettered:
        click.echo(
            f"{report.dead_lettered} record(s) refused by the server are kept as dead letters; "
            f"see: log-collector dead-letters {' '.join(str(p) for p in paths)}",
            err=True,
        )
    if not report.complete:
        sys.exit(EXIT_FAILURE)


@main.command("dead-letters")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--requeue", is_flag=True, help="Move them back to be sent again.")
@click.option("--limit", default=20, show_default=True, help="How many to list per spool file.")
def dead_letters(paths: tuple[Path, ...], requeue: bool, limit: int) -> None:
    """List the records a server refused for good, or requeue them.

    PATHS are spool files or directories. Exits 1 when a spool file was skipped
    (in use by a live process, or unusable).

    \b
    Example:
      log-collector dead-letters ./spool/1234-ab12cd34.spool --requeue
    """
    from .client.replay import open_spools

    _paths_or_default(paths)
    found = open_spools(list(paths))
    spools = found.spools
    if not _report_skipped(found.skipped, usable=len(spools)):
        return
    try:
        if requeue:
            if spools:
                requeued = sum(spool.requeue_dead_letters() for spool in spools)
                click.echo(f"requeued {requeued} record(s)")
        else:
            for spool in spools:
                rows = spool.dead_letter_rows(limit)
                prefix = f"{spool.path}: " if len(spools) > 1 else ""
                if len(spools) > 1 and rows:
                    click.echo(f"{spool.path}:")
                for row_id, failed_at, reason, body in rows:
                    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(failed_at))
                    click.echo(f"#{row_id} {when} {reason}\n    {body[:200]}")
                if not rows:
                    click.echo(f"{prefix}no dead letters")
    finally:
        found.close(remove_if_empty=False)
    if found.skipped:
        sys.exit(EXIT_FAILURE)


def _report_skipped(skipped: list[tuple[str, str]], *, usable: int) -> bool:
    """Say which spool files were passed over; False when there is nothing to work on.

    With no usable file left the command fails with one line; otherwise each
    skipped file gets a line on stderr and the command goes on (and exits 1).
    """
    if not usable:
        if not skipped:
            click.echo("no spool files found")
            return False
        raise CliError("; ".join(f"{path}: {why}" for path, why in skipped))
    for path, why in skipped:
        click.echo(f"skipped {path}: {why}", err=True)
    return True


# The server's commands live with it, so ``python -m log_collector.server`` runs
# the same ``serve`` without importing the client; loading them costs no extra.
main.add_command(serve)
main.add_command(migrate)
main.add_command(retention)


if __name__ == "__main__":
    main()
