"""Numbered SQL migrations shipped with the package.

The files live in the repository at ``migrations/<kind>/NNNN_name.sql`` and are
copied into the wheel as ``log_collector/migrations/<kind>/`` (see pyproject).
SQLite schemas (``spool``, ``sqlite``) are applied with sqlite-utils'
``Migrations`` runner, which wraps each step and its bookkeeping row in one
transaction. The PostgreSQL store applies the same files with its own
connection (``postgres`` kind) but uses :func:`sql_files` to find them.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from importlib import resources
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

_NUMBERED = re.compile(r"^(\d+)_[\w-]+\.sql$")


def migrations_dir(kind: str) -> Path:
    """The directory holding the ``kind`` migrations, in the wheel or the source tree."""
    packaged = resources.files("log_collector").joinpath("migrations", kind)
    if packaged.is_dir():
        return Path(str(packaged))
    source_tree = Path(__file__).resolve().parents[2] / "migrations" / kind
    if source_tree.is_dir():
        return source_tree
    raise FileNotFoundError(f"log-collector: no '{kind}' migrations found in the package")


@functools.cache
def sql_files(kind: str) -> tuple[tuple[str, str], ...]:
    """``(name, sql)`` of every numbered file of ``kind``, in numeric order. Read once per
    process: the files do not change under it, and a process that drops its privileges after
    its first spool or store (a server's workers, a daemon) needs no access to them again."""
    found = []
    for path in migrations_dir(kind).iterdir():
        match = _NUMBERED.match(path.name)
        if match:
            found.append((int(match.group(1)), path.stem, path.read_text(encoding="utf-8")))
    found.sort()
    return tuple((name, sql) for _, name, sql in found)


def split_statements(sql: str) -> list[str]:
    """Split a script into complete statements (triggers with inner ``;`` stay whole).

    ``executescript`` would COMMIT the surrounding transaction, so each step
    runs its statements one by one inside the runner's transaction.
    """
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not current.strip().startswith("--"):
        statements.append(current.strip())
    return statements


def sqlite_migrations(kind: str) -> Migrations:
    """A sqlite-utils migration set with one step per numbered SQL file."""
    migrations = Migrations(f"log-collector-{kind}")
    for name, sql in sql_files(kind):

        def step(db: sqlite_utils.Database, sql: str = sql) -> None:
            for statement in split_statements(sql):
                db.execute(statement)

        migrations(name=name)(step)
    return migrations


def apply_sqlite(conn: sqlite3.Connection, kind: str) -> list[str]:
    """Apply the pending ``kind`` migrations on ``conn``; return the names applied.

    ``conn`` must use Python's default transaction handling (sqlite-utils
    requires it); callers open a short-lived connection for this.
    """
    migrations = sqlite_migrations(kind)
    db = sqlite_utils.Database(conn, execute_plugins=False)
    pending = [m.name for m in migrations.pending(db)]
    migrations.apply(db)
    return pending


def applied_sqlite(conn: sqlite3.Connection, kind: str) -> list[str]:
    """Names of the ``kind`` migrations already applied on ``conn``."""
    db = sqlite_utils.Database(conn, execute_plugins=False)
    return [m.name for m in sqlite_migrations(kind).applied(db)]
