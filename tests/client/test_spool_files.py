"""What the spool trusts on disk (log_collector/spool/_trust.py and the opens in _base, _files,
_spool): spool files are opened without following symbolic links, an orphan that is a link, not
a regular file or another user's is left untouched (never opened as a database), and a spool
directory other users can write is refused for a private one. Real files in tmp_path, a real
receiver on 127.0.0.1, and a real process running as another user."""

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from log_collector.client.replay import replay
from log_collector.client.settings import default_spool_dir
from log_collector.client.spool import (
    NotAdoptable,
    Spool,
    SpoolError,
    UnsafeSpoolDir,
    UnsafeSpoolFile,
    candidates,
    inspect,
    read_meta,
    spool_files,
)

URL = "http://logs.example:8000"
NOBODY = 65534
T0 = 1_700_000_000.0

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def fingerprint(path: Path) -> tuple[bytes, int, int]:
    """A file's bytes, permission bits and owner, read without following a link."""
    st = os.stat(path)
    return path.read_bytes(), stat.S_IMODE(st.st_mode), st.st_uid


def make_victim_db(path: Path) -> Path:
    """A SQLite database (rollback journal) that no log-collector client may ever touch."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT)")
    conn.execute("INSERT INTO accounts(owner) VALUES ('alice'), ('bob')")
    conn.commit()
    conn.close()
    os.chmod(path, 0o640)
    return path


def make_orphan(directory: Path, messages: list[str], target_url: str = URL) -> Path:
    """A spool file holding ``messages`` whose owner has gone (closed, rows left)."""
    spool = Spool.create(directory, target_url=target_url)
    for i, message in enumerate(messages):
        spool.append(T0 + i, json.dumps({"message": message, "level": "INFO"}))
    path = spool.path
    spool.close()
    return path


def warnings_from(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "log_collector" and r.levelno >= logging.WARNING
    ]


def test_a_status_snapshot_is_never_written_through_links_planted_at_its_names(tmp_path):
    """Links at ``<spool>.status.tmp`` and ``<spool>.status`` are not followed: the snapshot is
    written to a fresh name and renamed over the link, the link targets keep every byte."""
    spool = Spool.create(tmp_path / "spool", target_url=URL)
    victim_a = tmp_path / "victim-a"
    victim_a.write_text("keep me\n")
    victim_b = tmp_path / "victim-b"
    victim_b.write_text("keep me too\n")
    os.chmod(victim_b, 0o644)
    before = fingerprint(victim_a), fingerprint(victim_b)
    os.symlink(victim_a, f"{spool.path}.status.tmp")
    os.unlink(f"{spool.path}.status")
    os.symlink(victim_b, f"{spool.path}.status")
    try:
        spool.append(T0, '{"message": "one"}')
        spool.write_snapshot(force=True)

        assert before == (fingerprint(victim_a), fingerprint(victim_b))
        snapshot = Path(f"{spool.path}.status")
        assert not snapshot.is_symlink()
        assert 1 == json.loads(snapshot.read_text())["rows"]
        assert 0o600 == stat.S_IMODE(snapshot.stat().st_mode)
    finally:
        spool.close()


def test_a_client_never_adopts_a_symlinked_orphan_and_leaves_its_target_untouched(
    make_client, receiver, tmp_path, caplog
):
    """An orphan ``*.spool`` that links to another SQLite database, and one that links to a
    plain file, are not opened: after a client starts, logs, flushes and closes in that
    directory the targets keep their bytes and mode, the links are still there, and only the
    client's own records reach the server."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir(mode=0o700)
    victim_db = make_victim_db(tmp_path / "accounts.db")
    victim_txt = tmp_path / "notes.txt"
    victim_txt.write_text("not a spool\n")
    before = fingerprint(victim_db), fingerprint(victim_txt)
    os.symlink(victim_db, spool_dir / "999-deadbeef.spool")
    os.symlink(victim_txt, spool_dir / "998-cafecafe.spool")
    caplog.set_level(logging.WARNING, logger="log_collector")

    client = make_client()
    for i in range(3):
        client.info("mine", seq=i)
    assert client.flush(timeout=10)
    client.close()

    assert before == (fingerprint(victim_db), fingerprint(victim_txt))
    assert not Path(f"{victim_db}-wal").exists()
    assert victim_db == Path(os.readlink(spool_dir / "999-deadbeef.spool"))
    assert victim_txt == Path(os.readlink(spool_dir / "998-cafecafe.spool"))
    assert [0, 1, 2] == sorted(r["seq"] for r in receiver.records)
    assert 1 == sum("999-deadbeef.spool is a symbolic link" in m for m in warnings_from(caplog))


def test_an_orphan_whose_wal_is_a_link_is_left_in_place_with_its_rows(
    make_client, receiver, tmp_path, caplog
):
    """A spool whose ``-wal`` name is a link elsewhere is not opened (SQLite would open the WAL
    by that name): the file, its rows and the link stay as they are, the target is untouched,
    and the file is not renamed aside as corrupt."""
    spool_dir = tmp_path / "spool"
    orphan = make_orphan(spool_dir, ["theirs"], target_url=receiver.url)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    os.symlink(victim, f"{orphan}-wal")
    before = fingerprint(victim), fingerprint(orphan)
    caplog.set_level(logging.WARNING, logger="log_collector")

    client = make_client()
    client.info("mine")
    assert client.flush(timeout=10)
    client.close()

    assert before == (fingerprint(victim), fingerprint(orphan))
    assert Path(f"{orphan}-wal").is_symlink()
    assert [] == list(spool_dir.glob("*.corrupt"))
    assert ["mine"] == [r["message"] for r in receiver.records]
    assert any(f"{orphan}-wal is a symbolic link" in m for m in warnings_from(caplog))


@needs_root
def test_an_orphan_owned_by_another_user_is_left_untouched(make_client, receiver, tmp_path, caplog):
    """An orphan that belongs to another uid is neither adopted nor moved: its bytes, owner
    and rows stay, its records are not sent, and the client says once which file and why."""
    spool_dir = tmp_path / "spool"
    orphan = make_orphan(spool_dir, ["theirs-1", "theirs-2"], target_url=receiver.url)
    os.chown(orphan, NOBODY, NOBODY)
    before = fingerprint(orphan)
    caplog.set_level(logging.WARNING, logger="log_collector")

    first = make_client()
    first.info("mine")
    assert first.flush(timeout=10)
    second = make_client()  # a second scan in the same process reports nothing new
    assert second.flush(timeout=10)
    first.close()
    second.close()

    assert before == fingerprint(orphan)
    assert ["mine"] == [r["message"] for r in receiver.records]
    assert (
        2
        == sqlite3.connect(f"file:{orphan}?mode=ro", uri=True)
        .execute("SELECT count(*) FROM records")
        .fetchone()[0]
    )
    told = [m for m in warnings_from(caplog) if str(orphan) in m]
    assert 1 == len(told)
    assert f"belongs to uid {NOBODY}" in told[0]


def test_candidates_leave_out_links_other_files_and_hard_links(tmp_path):
    """The orphan scan offers only regular, singly linked spool files: a FIFO, a link and a
    second hard link are left out (opening a FIFO would even block)."""
    spool_dir = tmp_path / "spool"
    good = make_orphan(spool_dir, ["ok"])
    os.mkfifo(spool_dir / "1-fifo.spool")
    os.symlink(good, spool_dir / "2-link.spool")
    other = make_orphan(spool_dir, ["linked twice"])
    os.link(other, spool_dir / "3-hardlink.spool")

    assert [good] == candidates(spool_dir)


@pytest.mark.parametrize(
    "mode, owner",
    [(0o777, None), (0o1777, None), (0o770, None), (0o700, NOBODY)],
    ids=["world-writable", "sticky-world-writable", "group-writable", "other-owner"],
)
def test_a_spool_dir_others_can_write_is_refused_for_a_private_one(
    make_client, receiver, tmp_path, monkeypatch, caplog, mode, owner
):
    """A spool directory another user can write (or that belongs to one) is not used: the
    client spools in the user's private cache dir instead, says so once, and every record is
    delivered; nothing is written in the refused directory."""
    if owner is not None and os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    if owner is not None:
        os.chown(shared, owner, owner)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    caplog.set_level(logging.WARNING, logger="log_collector")

    first = make_client(spool_dir=shared)
    second = make_client(spool_dir=shared)
    for i in range(5):
        first.info("through the private dir", seq=i)
    assert first.flush(timeout=10)

    private = default_spool_dir("test-service", os.environ)
    assert private == Path(first.stats()["spool_path"]).parent
    assert private == Path(second.stats()["spool_path"]).parent
    assert 0o700 == stat.S_IMODE(private.stat().st_mode)
    assert [] == os.listdir(shared)
    assert list(range(5)) == sorted(r["seq"] for r in receiver.records)
    refusals = [m for m in warnings_from(caplog) if "refusing" in m]
    assert 1 == len(refusals)
    assert str(shared) in refusals[0] and str(private) in refusals[0]


def test_when_the_default_dir_is_the_refused_one_a_fresh_private_temp_dir_is_used(
    make_client, receiver, tmp_path, monkeypatch
):
    """If the refused directory is the default cache dir itself, the client spools in a new
    ``tempfile.mkdtemp`` directory (mode 0700) and still delivers."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    default = default_spool_dir("test-service", os.environ)
    default.mkdir(parents=True)
    os.chmod(default, 0o777)

    client = make_client(spool_dir=default)
    client.info("via a temp dir")
    assert client.flush(timeout=10)

    used = Path(client.stats()["spool_path"]).parent
    assert tmp_path / "tmp" == used.parent
    assert used.name.startswith("log-collector-")
    assert 0o700 == stat.S_IMODE(used.stat().st_mode)
    assert ["via a temp dir"] == [r["message"] for r in receiver.records]


def test_spool_create_refuses_a_directory_others_can_write(tmp_path):
    """``Spool.create`` in a world-writable directory raises ``UnsafeSpoolDir`` (a SpoolError)
    naming the directory and the fix, and creates nothing there."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)

    with pytest.raises(UnsafeSpoolDir, match="chmod go-w") as raised:
        Spool.create(shared, target_url=URL)

    assert isinstance(raised.value, SpoolError)
    assert str(shared) in str(raised.value)
    assert [] == os.listdir(shared)


def test_adopting_a_link_raises_without_opening_its_target(tmp_path):
    """``Spool.adopt`` of a link is refused (``UnsafeSpoolFile``, a NotAdoptable) before
    SQLite opens anything: the target database is not converted to WAL nor given tables."""
    victim = make_victim_db(tmp_path / "accounts.db")
    before = fingerprint(victim)
    link = tmp_path / "1-link.spool"
    os.symlink(victim, link)

    with pytest.raises(UnsafeSpoolFile, match="symbolic link") as raised:
        Spool.adopt(link, target_url=URL)

    assert isinstance(raised.value, NotAdoptable)
    assert before == fingerprint(victim)
    assert not Path(f"{victim}-wal").exists()


def test_a_link_swapped_in_for_an_opened_spool_is_caught_before_sqlite_reads_it(tmp_path):
    """SQLite opens by name and follows links; a spool opened by us as ``fd`` and then replaced
    by a link is refused right after SQLite's open, before any statement touches the target."""
    orphan = make_orphan(tmp_path / "spool", ["theirs"])
    fd = os.open(orphan, os.O_RDONLY)
    try:
        os.rename(orphan, tmp_path / "moved.spool")
        other = make_victim_db(tmp_path / "accounts.db")
        os.symlink(other, orphan)
        before = fingerprint(other)

        with pytest.raises(UnsafeSpoolFile, match="replaced"):
            read_meta(orphan, fd)

        assert before == fingerprint(other)
    finally:
        os.close(fd)


def test_status_and_replay_follow_a_link_named_on_the_command_line_only(receiver, tmp_path):
    """A link the user names is followed (they asked for it); the same link met while
    expanding a directory is reported and not opened."""
    real = make_orphan(tmp_path / "real", ["named by the user"], target_url=receiver.url)
    listed = tmp_path / "listed"
    listed.mkdir()
    link = listed / "1-link.spool"
    os.symlink(real, link)

    assert [real] == spool_files([link])
    found = spool_files([listed])
    assert [link] == found
    assert "not opened" in inspect(link)["error"]
    assert 1 == inspect(real)["rows"]

    from_dir = replay([listed], timeout=5)
    assert [str(link)] == [path for path, _ in from_dir.skipped]
    assert [] == receiver.records

    named = replay([link], timeout=10)
    assert named.complete
    assert ["named by the user"] == [r["message"] for r in receiver.records]


# Runs as root until the library is imported and the spool's schema read (the checkout may lie
# in a directory only root can read, as a CI clone under `mktemp -d` does), then as NOBODY
# (effective ids), so the checks compare against a non-root uid: the spool dir belongs to
# NOBODY, one orphan to root.
_AS_NOBODY = """
import json, os, sys
from log_collector import AsyncLogClient
import log_collector.client.spool, log_collector.client.transport, http.client, gzip, tempfile
from log_collector.common.migrations import sql_files
sql_files("spool")
os.setegid({uid}); os.seteuid({uid})
client = AsyncLogClient({url!r}, service="nobody", spool_dir={spool_dir!r}, max_backoff=0.2)
client.info("from nobody")
ok = client.flush(timeout=10)
print(json.dumps({{"flushed": ok, "spool_path": client.stats()["spool_path"],
                  "euid": os.geteuid()}}))
client.close()
"""


@needs_root
def test_a_non_root_client_leaves_roots_orphan_and_refuses_a_shared_dir(receiver):
    """In a real process whose effective uid is not root: an orphan owned by root in its
    private spool dir is left untouched and unsent, and a world-writable configured dir makes
    it fall back to its own cache dir; its records arrive."""
    base = Path(tempfile.mkdtemp(prefix="lc-nobody-"))  # under /tmp: NOBODY can reach it
    try:
        os.chown(base, NOBODY, NOBODY)
        own = base / "own"
        own.mkdir(mode=0o700)
        orphan = make_orphan(own, ["root's"], target_url=receiver.url)
        os.chown(own, NOBODY, NOBODY)
        before = fingerprint(orphan)
        shared = base / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        cache = base / "cache"
        cache.mkdir()
        os.chown(cache, NOBODY, NOBODY)
        env = {**os.environ, "XDG_CACHE_HOME": str(cache)}

        runs = []
        for spool_dir in (own, shared):
            script = _AS_NOBODY.format(uid=NOBODY, url=receiver.url, spool_dir=str(spool_dir))
            done = subprocess.run(
                [sys.executable, "-c", script],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert 0 == done.returncode, done.stderr
            runs.append((json.loads(done.stdout.splitlines()[-1]), done.stderr))

        (in_own, own_err), (in_shared, shared_err) = runs
        assert NOBODY == in_own["euid"] and in_own["flushed"] and in_shared["flushed"]
        assert own == Path(in_own["spool_path"]).parent
        assert f"belongs to uid 0, not to this user (uid {NOBODY})" in own_err
        assert before == fingerprint(orphan)
        assert cache / "log-collector" / "nobody" == Path(in_shared["spool_path"]).parent
        assert "refusing spool directory" in shared_err
        assert [] == os.listdir(shared)
        assert ["from nobody"] * 2 == [r["message"] for r in receiver.records]
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(base)
