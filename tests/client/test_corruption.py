"""A damaged spool never stops the app: it is moved aside, reported, and what
SQLite can still read from it is salvaged and delivered (issue 5, item 3)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from log_collector.client.spool import Spool, salvage

DEADLINE = 20.0


# A process that writes a spool and is SIGKILLed: its WAL stays un-checkpointed.
KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from log_collector.client.spool import Spool
spool = Spool.create(Path(sys.argv[1]), target_url=sys.argv[2], service="svc")
tag, n = sys.argv[3], int(sys.argv[4])
for i in range(n):
    spool.append(1.0, '{"level":"INFO","message":"%s %d","seq":%d,"tag":"%s"}' % (tag, i, i, tag))
print(spool.path, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def orphan(spool_dir: Path, url: str, n: int, *, tag: str = "orphan", keep_wal: bool = False):
    """A spool file left by a dead process holding ``n`` records."""
    if keep_wal:
        done = subprocess.run(
            [sys.executable, "-c", KILLED_WRITER, str(spool_dir), url, tag, str(n)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return Path(done.stdout.strip())
    spool = Spool.create(spool_dir, target_url=url, service="svc")
    for i in range(n):
        spool.append(1.0, f'{{"level":"INFO","message":"{tag} {i}","seq":{i},"tag":"{tag}"}}')
    spool.close(remove_if_empty=False)
    return spool.path


def corrupt_files(spool_dir: Path) -> list[Path]:
    return sorted(p for p in spool_dir.iterdir() if p.name.endswith(".corrupt"))


def delivered(receiver, tag: str) -> set[int]:
    return {r["seq"] for r in receiver.records if r.get("tag") == tag}


@pytest.fixture
def client_on(make_client):
    """client_on(spool_dir): a client shipping to the receiver from that spool directory."""
    return lambda spool_dir: make_client(spool_dir=spool_dir, service="svc")


def test_a_truncated_spool_is_moved_aside_and_its_readable_records_are_delivered(
    receiver, tmp_path, client_on
):
    spool_dir = tmp_path / "spool"
    path = orphan(spool_dir, receiver.url, 2000)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)

    client = client_on(spool_dir)
    client.info("still running", tag="app", seq=0)

    assert True is client.flush(timeout=DEADLINE)
    salvaged = delivered(receiver, "orphan")
    assert 0 < len(salvaged) < 2000
    assert salvaged == set(range(len(salvaged)))  # the readable prefix, in order
    assert {0} == delivered(receiver, "app")
    assert 1 == len(corrupt_files(spool_dir))
    assert not path.exists()


@pytest.mark.parametrize("damage", ["zeroed", "garbage"])
def test_a_spool_that_is_no_database_is_moved_aside_and_the_app_keeps_logging(
    receiver, tmp_path, client_on, damage
):
    spool_dir = tmp_path / "spool"
    path = orphan(spool_dir, receiver.url, 100)
    size = path.stat().st_size
    path.write_bytes(b"\0" * size if damage == "zeroed" else os.urandom(size))

    client = client_on(spool_dir)
    client.info("still running", tag="app", seq=0)

    assert True is client.flush(timeout=DEADLINE)
    assert set() == delivered(receiver, "orphan")
    assert {0} == delivered(receiver, "app")
    assert 1 == len(corrupt_files(spool_dir))


def test_a_spool_from_a_newer_schema_is_moved_aside_and_its_records_salvaged(
    receiver, tmp_path, client_on
):
    spool_dir = tmp_path / "spool"
    path = orphan(spool_dir, receiver.url, 50)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations(migration_set, name, applied_at) "
            "VALUES ('log-collector-spool', '9999_from_the_future', 'later')"
        )
    conn.close()

    client = client_on(spool_dir)

    assert True is client.flush(timeout=DEADLINE)
    assert set(range(50)) == delivered(receiver, "orphan")
    assert 1 == len(corrupt_files(spool_dir))


def test_a_wal_from_another_spool_never_stops_the_app(receiver, tmp_path, client_on):
    spool_dir = tmp_path / "spool"
    other_dir = tmp_path / "other"
    path = orphan(spool_dir, receiver.url, 300, tag="a", keep_wal=True)
    other = orphan(other_dir, receiver.url, 300, tag="b", keep_wal=True)
    shutil.copy(f"{other}-wal", f"{path}-wal")

    client = client_on(spool_dir)
    client.info("still running", tag="app", seq=0)

    assert True is client.flush(timeout=DEADLINE)
    assert {0} == delivered(receiver, "app")
    # Whatever came out is real records of one of the two spools, each once.
    for tag in ("a", "b"):
        assert delivered(receiver, tag) <= set(range(300))
    assert len(receiver.records) == len({r["message"] for r in receiver.records})


def test_salvage_reads_nothing_from_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "x.spool"
    path.write_bytes(b"not a database at all" * 100)

    assert [] == salvage(path)


def test_salvage_returns_every_row_of_a_healthy_spool_in_order(tmp_path):
    path = orphan(tmp_path, "http://x", 10)

    rows = salvage(path)

    assert [f"orphan {i}" for i in range(10)] == [json.loads(body)["message"] for _, body in rows]


def test_the_clients_own_spool_damaged_while_running_is_replaced_and_logging_goes_on(
    receiver, tmp_path, client_on
):
    """What the scribble destroyed is gone (SQLite cannot read it back); the app
    never sees an error, the file is set aside, and logging goes on in a new spool."""
    spool_dir = tmp_path / "spool"
    receiver.stop()
    client = client_on(spool_dir)
    for i in range(500):
        client.info("before", tag="before", seq=i)
    damaged = client.spool_path
    # Everything into the main file first: garbage over pages the WAL still
    # holds newer copies of would go unnoticed.
    with client._spool.hold() as conn:  # its only connection: the file is held exclusively
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(damaged, "r+b") as f:  # someone scribbles over the file's pages
        f.seek(4096)
        f.write(os.urandom(64 * 1024))
    # The owner holds the file in exclusive locking mode, so SQLite trusts its page
    # cache and reads the damage only once the cache lets those pages go, as under
    # memory pressure; until then it serves the records it had. Let them go now.
    with client._spool.hold() as conn:
        conn.execute("PRAGMA shrink_memory")
    for i in range(100):
        client.info("during", tag="during", seq=i)  # must not raise
    receiver.start()
    client.flush(timeout=DEADLINE)  # finds the damage; must not raise

    for i in range(100):
        client.info("after", tag="after", seq=i)

    assert True is client.flush(timeout=DEADLINE)
    assert set(range(100)) == delivered(receiver, "after")
    assert damaged != client.spool_path
    assert 1 == len(corrupt_files(spool_dir))
