"""The SQLite spool (log_collector/spool/), on real files in tmp_path: creation, locking and
adoption, append / read / ack / dead-letter, limits, inspection, and a stateful model."""

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from freezegun import freeze_time
from helpers import crash_spool
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from log_collector.client.spool import (
    CHECKPOINT_EVERY,
    CHECKPOINT_ROWS,
    MIRROR_BYTES,
    NotAdoptable,
    Spool,
    SpoolError,
    candidates,
    inspect,
    move_aside,
    owner_alive,
    read_meta,
    spool_files,
)

URL = "http://logs.example:8000"
T0 = 1_700_000_000.0


@pytest.fixture
def spools(tmp_path):
    """Makes spools in tmp_path/spool; closes (keeping the files) whatever the test left open."""
    made = []

    def create(**options):
        options.setdefault("target_url", URL)
        spool = Spool.create(tmp_path / "spool", **options)
        made.append(spool)
        return spool

    def adopt(path, **options):
        spool = Spool.adopt(path, **options)
        made.append(spool)
        return spool

    create.adopt = adopt
    yield create
    for spool in made:
        if not spool.closed:
            spool.close(remove_if_empty=False)


@contextlib.contextmanager
def raw(spool):
    """The spool's own connection. It holds the file in exclusive locking mode,
    so no other connection can open it while it lives."""
    with spool.hold() as conn:
        yield conn


def meta_of(spool):
    with raw(spool) as conn:
        return dict(conn.execute("SELECT key, value FROM meta"))


def bodies_of(rows):
    return [body for _, body in rows]


def body(n, size=0):
    text = json.dumps({"n": n})
    return text + " " * max(0, size - len(text))


def fill(spool, n, size=0, created_at=T0):
    appended = [body(i, size) for i in range(n)]
    for text in appended:
        spool.append(created_at, text)
    return appended


def pragma(conn, name):
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


# Creating.


def test_a_new_spool_is_private_to_its_user(spools, tmp_path):
    spool = spools()
    spool.append(T0, "{}")

    assert 0o700 == (tmp_path / "spool").stat().st_mode & 0o777
    for suffix in ("", "-wal", ".status"):
        assert 0o600 == os.stat(f"{spool.path}{suffix}").st_mode & 0o777, suffix
    # Exclusive locking mode keeps the WAL index in memory: no shared-memory file.
    assert not os.path.exists(f"{spool.path}-shm")


def test_a_new_spool_is_named_after_its_process(spools):
    spool = spools()

    assert spool.path.name.startswith(f"{os.getpid()}-")
    assert spool.path.name.endswith(".spool")


def test_a_new_spool_is_in_wal_mode(spools):
    spool = spools()

    with raw(spool) as other:
        assert "wal" == pragma(other, "journal_mode")


@pytest.mark.parametrize(("durability", "expected"), [("normal", 1), ("full", 2)])
def test_durability_sets_synchronous_on_the_write_connection(spools, durability, expected):
    spool = spools(durability=durability)

    with raw(spool) as conn:
        assert expected == pragma(conn, "synchronous")


def test_the_producer_connection_never_checkpoints(spools, tmp_path):
    spool = spools()
    fill(spool, 50)

    shutil.copy(spool.path, tmp_path / "main-file-only.db")  # the WAL not copied

    with raw(spool) as conn:
        assert 0 == pragma(conn, "wal_autocheckpoint")
    with sqlite3.connect(tmp_path / "main-file-only.db") as copy:
        assert 0 == copy.execute("SELECT count(*) FROM records").fetchone()[0]


def test_checkpoint_moves_committed_rows_into_the_main_file(spools, tmp_path):
    spool = spools()
    fill(spool, 50)

    spool.checkpoint()
    shutil.copy(spool.path, tmp_path / "main-file-only.db")

    with sqlite3.connect(tmp_path / "main-file-only.db") as copy:
        assert 50 == copy.execute("SELECT count(*) FROM records").fetchone()[0]


def rows_in_the_main_file(spool, tmp_path):
    """What a checkpoint has moved out of the WAL: a copy of the main file alone."""
    copy = tmp_path / f"main-file-only-{time.monotonic_ns()}.db"
    shutil.copy(spool.path, copy)
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        return conn.execute("SELECT count(*) FROM records").fetchone()[0]


def test_the_sender_checkpoints_once_enough_rows_were_appended(spools, tmp_path):
    spool = spools()
    fill(spool, CHECKPOINT_ROWS - 1)
    spool.checkpoint(when_due=True)
    not_yet = rows_in_the_main_file(spool, tmp_path)

    fill(spool, 1)
    spool.checkpoint(when_due=True)

    assert 0 == not_yet
    assert CHECKPOINT_ROWS == rows_in_the_main_file(spool, tmp_path)


def test_the_sender_checkpoints_a_second_after_any_change(spools, tmp_path):
    with freeze_time() as clock:
        spool = spools()
        fill(spool, 10)
        spool.checkpoint(when_due=True)
        not_yet = rows_in_the_main_file(spool, tmp_path)

        clock.tick(CHECKPOINT_EVERY)
        spool.checkpoint(when_due=True)

    assert 0 == not_yet
    assert 10 == rows_in_the_main_file(spool, tmp_path)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="lists descriptors in /proc")
def test_a_checkpointed_and_closed_spool_leaves_no_descriptor_open(tmp_path):
    before = set(os.listdir("/proc/self/fd"))
    spool = Spool.create(tmp_path, target_url=URL)
    fill(spool, 50)
    spool.checkpoint()  # syncs the WAL through a descriptor of its own first
    spool.ack(spool.read_batch(100))

    spool.close()

    assert before == set(os.listdir("/proc/self/fd"))
    assert [] == list(tmp_path.iterdir())


def test_the_schema_is_applied_with_its_bookkeeping_and_meta_rows(spools):
    spool = spools(service="billing")

    with raw(spool) as conn:
        migrations = conn.execute(
            "SELECT migration_set, name FROM _sqlite_migrations ORDER BY id"
        ).fetchall()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert [("log-collector-spool", "0001_initial")] == migrations
    assert {"records", "dead_letters", "meta"} <= tables
    assert {
        "target_url": URL,
        "service": "billing",
        "pid": str(os.getpid()),
        "schema_version": "1",
    } == meta_of(spool)


# Append, read, ack, dead-letter.


def test_rows_are_read_oldest_first_and_stay_until_acknowledged(spools):
    spool = spools()
    appended = fill(spool, 5)

    first = spool.read_batch(3)
    again = spool.read_batch(3)

    assert appended[:3] == bodies_of(first)
    assert first == again
    assert 5 == spool.pending()


def test_ack_deletes_exactly_the_rows_given(spools):
    spool = spools()
    appended = fill(spool, 5)
    rows = spool.read_batch(5)

    spool.ack([rows[1], rows[3]])

    assert [appended[0], appended[2], appended[4]] == bodies_of(spool.read_batch(10))
    assert 2 == spool.counters.acknowledged


def test_acked_rows_whose_delete_fails_never_come_back_and_are_deleted_later(spools):
    spool = spools()
    appended = fill(spool, 4)
    with raw(spool) as other:
        other.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON records "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )

    spool.ack(spool.read_batch(2))
    while_refused = (bodies_of(spool.read_batch(10)), spool.pending(), spool.oldest_id())
    with raw(spool) as other:
        other.execute("DROP TRIGGER refuse")
    after = bodies_of(spool.read_batch(10))

    assert (appended[2:], 2, 3) == while_refused
    assert appended[2:] == after
    with raw(spool) as other:
        assert 2 == other.execute("SELECT count(*) FROM records").fetchone()[0]


def test_dead_letter_moves_rows_with_their_reason(spools):
    spool = spools(clock=lambda: T0 + 5)
    appended = fill(spool, 3)
    rows = spool.read_batch(3)

    spool.dead_letter([(rows[1], "bad level")])

    assert [appended[0], appended[2]] == bodies_of(spool.read_batch(10))
    assert [(T0 + 5, "bad level", appended[1])] == [
        (failed_at, reason, text) for _, failed_at, reason, text in spool.dead_letter_rows()
    ]
    assert 1 == spool.counters.dead_lettered


def test_requeue_puts_dead_letters_back_after_the_pending_rows(spools):
    spool = spools()
    appended = fill(spool, 3)
    rows = spool.read_batch(3)
    spool.dead_letter([(rows[0], "x"), (rows[1], "y")])

    moved = spool.requeue_dead_letters()

    assert 2 == moved
    assert [appended[2], appended[0], appended[1]] == bodies_of(spool.read_batch(10))
    assert [] == spool.dead_letter_rows()
    assert sum(len(t) for t in appended) == spool.nbytes()


def test_ids_only_grow_while_the_spool_is_open_even_after_every_row_is_gone(spools):
    spool = spools()
    fill(spool, 3)
    spool.ack(spool.read_batch(3))

    spool.append(T0, "{}")

    assert [4] == [row_id for row_id, _ in spool.read_batch(1)]
    assert 4 == spool.high_water()


def test_a_reopened_spool_continues_after_the_largest_id_it_holds(spools):
    spool = spools()
    fill(spool, 5)
    spool.ack(spool.read_batch(5)[:3])  # ids 4 and 5 are left
    spool.close(remove_if_empty=False)
    spool = spools.adopt(spool.path)

    spool.append(T0, "{}")

    assert [4, 5, 6] == [row_id for row_id, _ in spool.read_batch(10)]
    assert 6 == spool.high_water()


def test_requeued_dead_letters_get_ids_after_every_pending_row(spools):
    spool = spools()
    fill(spool, 3)
    spool.dead_letter([(spool.read_batch(1)[0], "bad")])

    spool.requeue_dead_letters()
    spool.append(T0, "{}")

    assert [2, 3, 4, 5] == [row_id for row_id, _ in spool.read_batch(10)]
    assert 5 == spool.high_water()


def test_requeued_dead_letters_never_reuse_an_id_handed_out_before(spools):
    spool = spools()
    fill(spool, 3)
    rows = spool.read_batch(3)
    spool.dead_letter([(rows[0], "bad")])
    spool.ack(rows[1:])

    spool.requeue_dead_letters()

    assert [4] == [row_id for row_id, _ in spool.read_batch(10)]


def test_inspection_helpers(spools):
    spool = spools()
    spool.append(T0 + 1, body(0))
    spool.append(T0 + 2, body(1))

    assert (1, T0 + 1, 2) == (spool.oldest_id(), spool.oldest_created_at(), spool.high_water())
    assert (body(1), None) == (spool.body_at(1), spool.body_at(2))
    assert [body(0), body(1)] == list(spool.iter_bodies(chunk=1))
    assert URL == spool.target_url()
    assert len(body(0)) + len(body(1)) == spool.nbytes()


def test_concurrent_appends_from_many_threads_all_land_in_order_per_thread(spools):
    spool = spools()
    start = threading.Barrier(8)

    def produce(thread):
        start.wait()
        for n in range(250):
            spool.append(T0, json.dumps({"thread": thread, "n": n}))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    rows = [json.loads(text) for text in bodies_of(spool.read_batch(10_000))]
    assert 2000 == len(rows) == spool.pending() == spool.counters.appended
    for thread in range(8):
        assert list(range(250)) == [r["n"] for r in rows if r["thread"] == thread]


def test_a_consumer_acking_while_producers_append_loses_and_repeats_nothing(spools):
    spool = spools()
    acked = []

    def produce(thread):
        for n in range(300):
            spool.append(T0, json.dumps([thread, n]))

    producers = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for thread in producers:
        thread.start()
    while len(acked) < 1200:
        rows = spool.read_batch(50)
        spool.ack(rows)
        acked.extend(bodies_of(rows))
    for thread in producers:
        thread.join()

    assert sorted(json.dumps([t, n]) for t in range(4) for n in range(300)) == sorted(acked)
    assert (0, 0) == (spool.pending(), spool.nbytes())


# The fallback.


def test_an_append_to_a_closed_spool_goes_to_the_fallback(spools):
    received = []
    spool = spools(fallback=lambda rows, exc: received.append((rows, exc)))
    spool.close(remove_if_empty=False)

    spool.append(T0, "{}")

    [(rows, exc)] = received
    assert [(T0, "{}")] == rows
    assert isinstance(exc, SpoolError)


def test_a_failing_write_goes_to_the_fallback_with_the_sqlite_error(spools):
    received = []
    spool = spools(fallback=lambda rows, exc: received.append((rows, exc)))
    with raw(spool) as other:
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON records "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )

    spool.append(T0, "{}")

    [(rows, exc)] = received
    assert [(T0, "{}")] == rows
    assert isinstance(exc, sqlite3.Error)
    assert "disk says no" in str(exc)
    assert (0, 0) == (spool.counters.appended, spool.pending())


def test_closing_a_broken_spool_never_raises_and_releases_the_lock(tmp_path):
    spool = Spool.create(tmp_path, target_url=URL)
    with raw(spool) as other:
        other.execute("DROP TABLE records")

    try:
        spool.close()
    finally:
        lock_released = not owner_alive(spool.path)
        if not lock_released:
            os.close(spool.lock_fd)

    assert lock_released


def test_without_a_fallback_a_failing_append_raises(spools):
    spool = spools()
    spool.close(remove_if_empty=False)

    with pytest.raises(SpoolError):
        spool.append(T0, "{}")


# Locking and adoption.


def test_a_live_spool_cannot_be_adopted(spools):
    spool = spools()

    with pytest.raises(NotAdoptable, match="in use"):
        Spool.adopt(spool.path)
    assert owner_alive(spool.path)


def test_a_spool_closed_with_rows_left_is_adopted_with_its_rows(spools):
    spool = spools()
    appended = fill(spool, 3)
    spool.close(remove_if_empty=False)

    adopted = spools.adopt(spool.path, target_url=URL)

    assert appended == bodies_of(adopted.read_batch(10))
    assert owner_alive(spool.path)  # the adopter holds the lock now


HOLD_WITH_SQLITE_LOCK_ONLY = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA locking_mode=EXCLUSIVE")
conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('adopted_by', 'no-flock')")
print("holding", flush=True)
sys.stdin.readline()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="F_GETLK's struct is Linux's")
def test_a_spool_held_by_sqlites_lock_alone_is_in_use(spools):
    """The JavaScript client owns its spool through SQLite's exclusive lock, with no
    flock: such a file is not adopted, and shows as in use, until its holder ends."""
    spool = spools()
    appended = fill(spool, 3)
    spool.close(remove_if_empty=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WITH_SQLITE_LOCK_ONLY, str(spool.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        held = owner_alive(spool.path)
        with pytest.raises(NotAdoptable, match="in use"):
            Spool.adopt(spool.path)
    finally:
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()

    assert held
    assert not owner_alive(spool.path)
    adopted = spools.adopt(spool.path, target_url=URL)
    assert appended == bodies_of(adopted.read_batch(10))


ADOPT_AND_READ = """
import json, sys
from pathlib import Path
from log_collector.client.spool import Spool
spool = Spool.adopt(Path(sys.argv[1]))
print(json.dumps([body for _, body in spool.read_batch(100)]))
spool.close(remove_if_empty=False)
"""


def test_an_abandoned_spool_is_left_to_a_new_process(spools):
    """A forked child abandons the parent's spool. SQLite in the child still counts
    the inherited connection's exclusive lock, so the child refuses the file at once
    (rather than waiting on a lock that never goes); any new process adopts it."""
    spool = spools()
    appended = fill(spool, 3)
    handles = spool.abandon()

    with pytest.raises(NotAdoptable, match="inherited"):
        Spool.adopt(spool.path, target_url=URL)
    adopted = subprocess.run(
        [sys.executable, "-c", ADOPT_AND_READ, str(spool.path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert appended == json.loads(adopted)
    del handles


def test_a_vanished_spool_is_not_adoptable(tmp_path):
    with pytest.raises(NotAdoptable, match="vanished"):
        Spool.adopt(tmp_path / "gone.spool")


def test_a_spool_for_another_server_is_not_adoptable(spools):
    spool = spools()
    spool.append(T0, "{}")
    spool.close(remove_if_empty=False)

    with pytest.raises(NotAdoptable, match="ships to"):
        Spool.adopt(spool.path, target_url="http://other:1")
    assert 1 == spools.adopt(spool.path, target_url=URL).pending()


def test_an_empty_file_left_by_a_creator_that_died_is_removed(tmp_path):
    path = tmp_path / "123-deadbeef.spool"
    path.touch()

    with pytest.raises(NotAdoptable, match="never initialised"):
        Spool.adopt(path)
    assert not path.exists()


def test_a_spool_written_by_a_newer_version_is_refused_untouched(spools):
    spool = spools()
    spool.append(T0, "{}")
    spool.close(remove_if_empty=False)
    with sqlite3.connect(spool.path) as conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations(migration_set, name, applied_at) "
            "VALUES ('log-collector-spool', '0002_from_the_future', '2030-01-01')"
        )

    with pytest.raises(SpoolError, match="newer"):
        Spool.adopt(spool.path)
    with sqlite3.connect(spool.path) as conn:
        assert 1 == conn.execute("SELECT count(*) FROM records").fetchone()[0]
    assert not owner_alive(spool.path)


def test_a_corrupt_file_is_a_spool_error(tmp_path):
    path = tmp_path / "1-corrupt.spool"
    path.write_bytes(b"this is not a database" * 500)

    with pytest.raises(SpoolError):
        Spool.adopt(path)
    assert not owner_alive(path)


def test_a_corrupt_file_is_a_spool_error_when_a_target_is_checked_too(tmp_path):
    path = tmp_path / "1-corrupt.spool"
    path.write_bytes(b"this is not a database" * 500)

    with pytest.raises(SpoolError):
        Spool.adopt(path, target_url=URL)


def test_adopting_a_spool_keeps_its_recorded_service(spools):
    spool = spools(service="billing")
    spool.append(T0, "{}")
    spool.close(remove_if_empty=False)

    spools.adopt(spool.path).close(remove_if_empty=False)

    assert "billing" == read_meta(spool.path)["service"]


def test_the_lock_is_held_across_processes_until_the_owner_is_killed(tmp_path):
    """A real crash: a child process appends, is SIGKILLed, and its rows are all adopted."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from log_collector.client.spool import Spool\n"
        f"spool = Spool.create(Path(sys.argv[1]), target_url={URL!r})\n"
        "for n in range(200):\n"
        "    spool.append(float(n), json.dumps({'n': n}))\n"
        "print(spool.path, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "spool")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        path = Path(child.stdout.readline().strip())

        with pytest.raises(NotAdoptable, match="in use"):
            Spool.adopt(path)
        assert inspect(path)["owner_alive"]
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        child.stdin.close()
        child.stdout.close()

    adopted = Spool.adopt(path, target_url=URL)
    try:
        rows = adopted.read_batch(500)
        assert [json.dumps({"n": n}) for n in range(200)] == bodies_of(rows)
        adopted.ack(rows)
    finally:
        adopted.close()
    assert not path.exists()


# Closing.


def test_closing_an_empty_spool_removes_its_files(spools):
    spool = spools()
    spool.append(T0, "{}")
    spool.ack(spool.read_batch(1))

    assert 0 == spool.close()
    for suffix in ("", "-wal", "-shm"):
        assert not os.path.exists(f"{spool.path}{suffix}")


def test_closing_a_spool_with_rows_keeps_it_and_says_how_many(spools):
    spool = spools()
    fill(spool, 2)

    assert 2 == spool.close()
    assert spool.path.exists()
    assert not owner_alive(spool.path)


def test_closing_a_spool_that_only_holds_dead_letters_keeps_it(spools):
    spool = spools()
    spool.append(T0, "{}")
    spool.dead_letter([(spool.read_batch(1)[0], "bad")])

    assert 0 == spool.close()
    assert spool.path.exists()


def test_close_twice_is_harmless(spools):
    spool = spools()
    fill(spool, 1)

    assert (1, 0) == (spool.close(remove_if_empty=False), spool.close())


# Limits.


def test_drop_newest_refuses_new_rows_when_full_and_counts_them(spools):
    spool = spools(max_bytes=1000, full_policy="drop_newest")

    appended = fill(spool, 15, size=100)

    assert appended[:10] == bodies_of(spool.read_batch(100))
    assert {"spool_full": 5} == spool.counters.dropped
    assert "5" == meta_of(spool)["dropped:spool_full"]


def test_drop_oldest_makes_room_by_deleting_the_oldest_rows(spools):
    spool = spools(max_bytes=1000, full_policy="drop_oldest")

    appended = fill(spool, 25, size=100)

    kept = bodies_of(spool.read_batch(100))
    dropped = spool.counters.dropped["spool_full"]
    assert appended[dropped:] == kept
    assert 25 == dropped + len(kept)
    assert spool.nbytes() <= 1000
    assert str(dropped) == meta_of(spool)["dropped:spool_full"]


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_a_record_bigger_than_the_whole_spool_is_dropped_and_counted(spools, policy):
    spool = spools(max_bytes=1000, full_policy=policy)
    spool.append(T0, body(0))

    spool.append(T0, body(1, size=5000))

    assert [body(0)] == bodies_of(spool.read_batch(10))
    assert {"spool_full": 1} == spool.counters.dropped


def test_drop_counts_survive_adoption(spools):
    spool = spools(max_bytes=500, full_policy="drop_newest")
    fill(spool, 8, size=100)
    spool.close(remove_if_empty=False)

    adopted = spools.adopt(spool.path)

    assert {"spool_full": 3} == adopted.counters.dropped
    assert {"spool_full": 3} == inspect(spool.path)["dropped"]


def test_a_drop_episode_is_announced_once_when_the_spool_has_room_again(spools):
    spool = spools(max_bytes=1000, full_policy="drop_newest")
    fill(spool, 12, size=100)
    notice_while_full = spool.drop_notice

    spool.ack(spool.read_batch(100))
    spool.append(T0, body(99))

    assert None is notice_while_full
    assert {"spool_full": 2} == spool.drop_notice


def test_max_record_age_drops_old_rows_by_the_injected_clock(spools):
    now = [T0]
    spool = spools(max_record_age=60, clock=lambda: now[0])
    spool.append(T0 - 120, "old")
    spool.append(T0 - 30, "older than 60 s soon")
    spool.append(T0, "fresh")

    first = bodies_of(spool.read_batch(10))
    now[0] = T0 + 45
    second = bodies_of(spool.read_batch(10))

    assert ["older than 60 s soon", "fresh"] == first
    assert ["fresh"] == second
    assert {"max_record_age": 2} == spool.counters.dropped
    assert "2" == meta_of(spool)["dropped:max_record_age"]
    assert len("fresh") == spool.nbytes()


def test_max_record_age_scans_the_table_only_once_a_row_can_be_that_old(spools):
    now = [T0]
    spool = spools(max_record_age=60, clock=lambda: now[0])
    spool.append(T0 - 30, "30 s old")
    spool.read_batch(10)  # the first read scans: nothing known yet
    statements = []
    with raw(spool) as conn:
        conn.set_trace_callback(statements.append)

    now[0] = T0 + 20  # the oldest row is 50 s old: no scan
    quiet = bodies_of(spool.read_batch(10))
    scanned_while_quiet = [sql for sql in statements if "created_at <" in sql]
    now[0] = T0 + 31  # 61 s old
    late = bodies_of(spool.read_batch(10))

    assert ["30 s old"] == quiet
    assert [] == scanned_while_quiet
    assert [] == late
    assert {"max_record_age": 1} == spool.counters.dropped


def test_max_record_age_applies_to_dead_letters_requeued_with_their_old_times(spools):
    now = [T0]
    spool = spools(max_record_age=60, clock=lambda: now[0])
    spool.append(T0 - 50, "refused once")
    spool.dead_letter([(spool.read_batch(1)[0], "bad")])
    spool.append(T0, "fresh")
    now[0] = T0 + 15
    spool.read_batch(10)  # scans: the oldest row in records is now "fresh"
    now[0] = T0 + 20  # "refused once" is now 70 s old, and back in records

    spool.requeue_dead_letters()

    assert ["fresh"] == bodies_of(spool.read_batch(10))


def test_byte_count_stays_exact_when_rows_in_flight_are_dropped_for_room(spools):
    spool = spools(max_bytes=1000, full_policy="drop_oldest")
    fill(spool, 5, size=100)
    in_flight = spool.read_batch(3)  # the sender is posting these...
    fill(spool, 10, size=100)  # ...while drop_oldest deletes them to make room

    spool.ack(in_flight)
    fill(spool, 30, size=100)

    with raw(spool) as conn:
        stored, rows = conn.execute(
            "SELECT coalesce(sum(length(body)), 0), count(*) FROM records"
        ).fetchone()
    assert stored == spool.nbytes()
    assert rows == spool.pending()
    assert stored <= 1000


def test_reads_after_acks_of_the_oldest_rows_return_exactly_the_rest(spools):
    spool = spools()
    appended = fill(spool, 5)

    spool.ack(spool.read_batch(3))
    assert appended[3:] == bodies_of(spool.read_batch(10))

    spool.ack(spool.read_batch(10))
    later = [body(9)]
    spool.append(T0, later[0])
    assert later == bodies_of(spool.read_batch(10))


def test_reads_after_an_ack_of_rows_in_the_middle_return_exactly_the_rest(spools):
    spool = spools()
    appended = fill(spool, 5)
    batch = spool.read_batch(5)

    spool.ack(batch[1:3])  # one run of ids, but not the oldest
    assert [appended[0], *appended[3:]] == bodies_of(spool.read_batch(10))

    spool.ack(spool.read_batch(10))
    spool.append(T0, body(7))
    assert [body(7)] == bodies_of(spool.read_batch(10))


def test_reads_are_the_same_past_the_in_memory_copy_limit(spools):
    spool = spools(mirror_bytes=100)  # the copy stops at the third row
    appended = fill(spool, 6, size=40)

    assert appended == bodies_of(spool.read_batch(10))
    spool.ack(spool.read_batch(2))
    assert appended[2:] == bodies_of(spool.read_batch(10))


def test_an_ack_deletes_exactly_the_acknowledged_rows_around_a_dead_letter(spools):
    spool = spools()
    fill(spool, 6, size=50)
    batch = spool.read_batch(6)

    spool.dead_letter([(batch[2], "bad")])
    spool.ack(batch[:2] + batch[3:5])  # two runs of ids, the last row still in flight

    assert [batch[5]] == spool.read_batch(10)
    assert 1 == spool.pending()
    assert 50 == spool.nbytes()


def test_max_bytes_caps_utf8_bytes_not_characters(spools):
    spool = spools(max_bytes=10_000, full_policy="drop_oldest")

    for _ in range(100):
        spool.append(T0, json.dumps({"m": "日本語" * 30}, ensure_ascii=False))

    stored = sum(len(text.encode()) for text in bodies_of(spool.read_batch(1000)))
    assert stored <= 10_000


# Inspection without the lock.


def test_inspect_reports_what_a_live_spool_holds(spools):
    spool = spools(service="billing")
    spool.append(time.time() - 100, body(0))
    spool.append(time.time(), body(1))
    spool.append(time.time(), body(2))
    spool.dead_letter([(spool.read_batch(1)[0], "bad")])
    spool.write_snapshot(force=True)  # the sender does, at each checkpoint

    info = inspect(spool.path)

    assert {
        "path": str(spool.path),
        "owner_alive": True,
        "rows": 2,
        "bytes": len(body(1)) + len(body(2)),
        "dead_letters": 1,
        "target_url": URL,
        "service": "billing",
        "pid": str(os.getpid()),
        "dropped": {},
    } == {k: v for k, v in info.items() if k not in ("oldest_age", "file_bytes", "snapshot_age")}
    assert 0 <= info["snapshot_age"] < 60
    assert 0 <= info["oldest_age"] < 100  # the oldest pending row, not the dead letter
    assert info["file_bytes"] > 0


def test_inspect_of_a_file_that_is_no_spool_reports_an_error(tmp_path):
    path = tmp_path / "x.spool"
    path.write_bytes(b"junk" * 2000)

    info = inspect(path)

    assert (str(path), False) == (info["path"], info["owner_alive"])
    assert "error" in info


def test_spool_files_expands_directories_recursively_in_a_stable_order(tmp_path):
    for name in ("b/2.spool", "a/1.spool", "a/z.txt", "top.spool"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()

    found = spool_files([tmp_path, tmp_path / "named.spool"])

    assert [
        tmp_path / "a/1.spool",
        tmp_path / "b/2.spool",
        tmp_path / "top.spool",
        tmp_path / "named.spool",
    ] == found


def test_candidates_are_the_other_spools_in_a_directory_oldest_first(tmp_path):
    for n, name in enumerate(["new.spool", "old.spool", "mine.spool", "other.txt"]):
        (tmp_path / name).touch()
        os.utime(tmp_path / name, (T0 - n, T0 - n))

    found = candidates(tmp_path, exclude={tmp_path / "mine.spool"})

    assert [tmp_path / "old.spool", tmp_path / "new.spool"] == found
    assert [] == candidates(tmp_path / "missing")


def test_move_aside_renames_the_file_and_its_wal(spools):
    spool = spools()
    spool.append(T0, "{}")
    path = spool.path
    handles = spool.abandon()

    target = move_aside(path, "testing")

    assert not path.exists()
    assert target.exists() and target.name.endswith(".corrupt")
    assert target.name.startswith(path.name)
    assert os.path.exists(f"{target}-wal")
    del handles


def test_owner_alive_of_a_missing_file_is_false(tmp_path):
    assert not owner_alive(tmp_path / "missing.spool")


# The stateful model: whatever the sequence of appends, reads, acks, dead letters, crashes and
# reopens, nothing acknowledged comes back, nothing unacknowledged is lost, and order holds.
#
# A crash is approximated in-process: abandon() drops the Spool object without closing its
# SQLite connections (kept referenced, as after fork) and releases the flock; adopt() then
# takes the file over. A commit is atomic, so a real SIGKILL can only land between calls;
# test_the_lock_is_held_across_processes_until_the_owner_is_killed does that with a real
# process, and test_crash.py does it at random moments.


class SpoolModel(RuleBasedStateMachine):
    # A mirror of a few rows: the model crosses its limit both ways.
    mirror_bytes = 600

    def __init__(self):
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.spool = Spool.create(self.directory, target_url=URL, mirror_bytes=self.mirror_bytes)
        self.path = self.spool.path
        self.pending: list[str] = []  # appended, neither acked nor dead-lettered, in order
        self.in_flight: list[tuple[int, str]] = []  # read and not yet settled
        self.acked: set[str] = set()
        self.dead: list[tuple[str, str]] = []
        self.counter = 0

    @rule(text=st.text(max_size=30), copies=st.integers(1, 4))
    def append(self, text, copies):
        for _ in range(copies):
            record = json.dumps({"n": self.counter, "text": text})
            self.counter += 1
            self.spool.append(T0, record)
            self.pending.append(record)

    @rule(limit=st.integers(1, 12))
    def read_batch(self, limit):
        rows = self.spool.read_batch(limit)
        ids = [row_id for row_id, _ in rows]
        assert self.pending[:limit] == bodies_of(rows)
        assert sorted(set(ids)) == ids
        self.in_flight = rows

    def _settle(self, data):
        chosen = data.draw(
            st.lists(st.sampled_from(self.in_flight), min_size=1, unique=True), label="rows"
        )
        for row in chosen:
            self.in_flight.remove(row)
            self.pending.remove(row[1])
        return chosen

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def ack(self, data):
        chosen = self._settle(data)
        self.spool.ack(chosen)
        self.acked.update(bodies_of(chosen))

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), reason=st.sampled_from(["bad level", "too large"]))
    def dead_letter(self, data, reason):
        chosen = self._settle(data)
        self.spool.dead_letter([(row, reason) for row in chosen])
        self.dead.extend((text, reason) for _, text in chosen)

    @rule()
    def crash_and_reopen(self):
        crash_spool(self.spool)  # real kills: test_crash.py
        self.spool = Spool.adopt(self.path, target_url=URL, mirror_bytes=self.mirror_bytes)

    @rule()
    def close_and_reopen(self):
        self.spool.close(remove_if_empty=False)
        self.spool = Spool.adopt(self.path, target_url=URL, mirror_bytes=self.mirror_bytes)

    @invariant()
    def the_spool_holds_exactly_the_unsettled_rows_in_order(self):
        stored = bodies_of(self.spool.read_batch(1_000_000))  # from the mirror, when it holds
        assert self.pending == stored
        with raw(self.spool) as conn:  # and from the file itself
            table = [text for (text,) in conn.execute("SELECT body FROM records ORDER BY id")]
        assert self.pending == table
        assert self.acked.isdisjoint(stored)
        assert len(self.pending) == self.spool.pending()
        assert sum(len(text) for text in self.pending) == self.spool.nbytes()

    @invariant()
    def dead_letters_hold_exactly_the_refused_rows(self):
        assert self.dead == [
            (text, reason) for _, _, reason, text in self.spool.dead_letter_rows(1_000_000)
        ]

    def teardown(self):
        self.spool.close(remove_if_empty=False)
        shutil.rmtree(self.directory, ignore_errors=True)


_MODEL_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow],
}


def test_spool_model():
    run_state_machine_as_test(
        SpoolModel,
        settings=settings(max_examples=50, stateful_step_count=25, **_MODEL_SETTINGS),
    )


@pytest.mark.slow
@pytest.mark.parametrize("mirror_bytes", [600, MIRROR_BYTES])
def test_spool_model_long(mirror_bytes):
    run_state_machine_as_test(
        type("SpoolModelLong", (SpoolModel,), {"mirror_bytes": mirror_bytes}),
        settings=settings(max_examples=500, stateful_step_count=60, **_MODEL_SETTINGS),
    )
