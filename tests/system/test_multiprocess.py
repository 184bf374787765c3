"""Fork and multi-process (issue 5, item 4): real gunicorn, multiprocessing with fork and spawn,
worker restarts, no SQLite connection shared across fork, one sender per spool file.

Every process here is real: gunicorn runs as a subprocess in a process group of its own
(cleanup kills the group), serving tests/helpers/gunicorn_app.py, whose one module-level
client ships to the in-process receiver; multiprocessing children are forked or spawned from
this process and joined with a deadline. Which process wrote which spool file is read from
the files themselves (sqlite3, read-only) while the server is down, and from the ``pid`` field
each test record carries. Waits are on conditions with deadlines, never on durations.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import DEADLINE, HELPERS, PYTHON, drain, eventually, mp_tasks, script, spool_files

from log_collector.client.delivery import ADOPT_INTERVAL
from log_collector.client.spool import owner_alive

pytestmark = [
    pytest.mark.usefixtures("no_sender_thread_left"),
    # Python 3.12+ warns about fork() in a process with threads (the receiver's, a client's
    # sender): that is the situation of every pre-fork server, and what this file tests.
    pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning"),
]

WORKERS = 3


def spooled(path: Path) -> list[dict]:
    """The records a spool file holds, read from a copy of the file and its WAL, without
    locking or changing it. Not from the file itself: once its owner has exited, a living
    client may adopt it at its next scan for orphans, and then holds it in exclusive locking
    mode, where any other connection's read fails with "database is locked"."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / path.name
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):  # no WAL: all of it is in the file
                shutil.copyfile(f"{path}{suffix}", f"{copy}{suffix}")
        conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            return [json.loads(body) for (body,) in conn.execute("SELECT body FROM records")]
        finally:
            conn.close()


def pid_of(spool: Path | str) -> int:
    """Spool files are named <pid>-<token>.spool after the process that created them."""
    return int(Path(spool).name.split("-", 1)[0])


def redelivered(receiver) -> list[str]:
    """Event ids the receiver was sent more than once (by anyone)."""
    return sorted(event_id for event_id, n in receiver.event_ids.items() if n > 1)


def with_message(receiver, message: str) -> list[dict]:
    return [record for record in receiver.records if record.get("message") == message]


# -- gunicorn -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    """``gunicorn -w 3`` serving helpers/gunicorn_app.py, shipping to ``server_url``, spooling
    in tmp_path/spool; in a new session, so that its process group is the master and workers."""

    def __init__(self, tmp_path: Path, server_url: str, *options: str) -> None:
        self.spool_dir = tmp_path / "spool"
        self.port = free_port()
        self.log_path = tmp_path / "gunicorn.log"
        env = dict(
            os.environ,
            LOG_SERVER_URL=server_url,
            LOG_COLLECTOR_SPOOL_DIR=str(self.spool_dir),
            PYTHONUNBUFFERED="1",
        )
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [
                    PYTHON, "-m", "gunicorn",
                    "--workers", str(WORKERS),
                    "--bind", f"127.0.0.1:{self.port}",
                    "--no-control-socket",
                    "--pythonpath", str(HELPERS),
                    "--graceful-timeout", "20",
                    *options,
                    "gunicorn_app:app",
                ],
                cwd=tmp_path,  # no stray .env from the repository
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_listening(self) -> None:
        def listening() -> bool:
            assert self.proc.poll() is None, self.log()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return True

        assert eventually(listening), self.log()

    def get(self, seq: int, hold: float = 0.0) -> dict:
        url = f"http://127.0.0.1:{self.port}/?seq={seq}&hold={hold}"
        with urllib.request.urlopen(url, timeout=DEADLINE) as answer:
            return json.loads(answer.read())

    def serve(self, seqs: range, hold: float = 0.05) -> list[dict]:
        """One request per seq, WORKERS at a time; a sync worker serves one request at a
        time, so while it holds one the others accept the next ones."""
        with ThreadPoolExecutor(WORKERS) as pool:
            return list(pool.map(lambda seq: self.get(seq, hold), seqs))

    def stop(self) -> int:
        """Graceful stop (SIGTERM to the master); its exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def gunicorn(tmp_path, receiver):
    """Starts gunicorn (options as arguments) once it listens; killed after the test."""
    started: list[Gunicorn] = []

    def start(*options: str) -> Gunicorn:
        server = Gunicorn(tmp_path, receiver.url, *options)
        started.append(server)
        server.wait_listening()
        return server

    yield start
    for server in started:
        server.kill()


PRELOAD = pytest.mark.parametrize(
    "options", [("--preload",), ()], ids=["preload", "import-in-each-worker"]
)


def served(receiver) -> list[dict]:
    return with_message(receiver, "request served")


def assert_every_request_logged_once(receiver, seqs: range) -> None:
    records = served(receiver)
    assert sorted(seqs) == sorted(record["seq"] for record in records)
    assert [] == redelivered(receiver)


@PRELOAD
def test_gunicorn_workers_each_spool_their_own_records_and_all_arrive(gunicorn, receiver, options):
    server = gunicorn(*options)
    master = server.proc.pid
    answers = server.serve(range(60))

    assert receiver.wait_until(lambda r: len(served(r)) >= 60, timeout=DEADLINE)
    assert_every_request_logged_once(receiver, range(60))
    workers = {answer["pid"] for answer in answers}
    assert 1 < len(workers) <= WORKERS
    assert master not in workers
    assert workers == {record["pid"] for record in served(receiver)}
    spool_by_worker = {answer["pid"]: answer["spool"] for answer in answers}
    # One spool file per worker, always the same one, named after that worker.
    assert {(answer["pid"], answer["spool"]) for answer in answers} == set(spool_by_worker.items())
    assert len(workers) == len(set(spool_by_worker.values()))
    assert {pid: pid for pid in workers} == {pid: pid_of(s) for pid, s in spool_by_worker.items()}
    imported = {json.dumps(answer["imported"]) for answer in answers}
    if "--preload" in options:
        # The client was made once, in the master; its spool is none of the workers'.
        assert 1 == len(imported)
        assert master == answers[0]["imported"]["pid"]
        assert master == pid_of(answers[0]["imported"]["spool"])
        assert answers[0]["imported"]["spool"] not in spool_by_worker.values()
    else:
        assert all(answer["imported"]["pid"] == answer["pid"] for answer in answers)
        assert all(answer["imported"]["spool"] == answer["spool"] for answer in answers)

    assert 0 == server.stop()
    # Graceful stop with the server up: everything was delivered, every spool file removed.
    assert [] == spool_files(server.spool_dir), server.log()
    assert 60 == len(served(receiver))
    assert "Traceback" not in server.log()


@PRELOAD
def test_gunicorn_workers_recycled_by_max_requests_lose_nothing(gunicorn, receiver, options):
    server = gunicorn("--max-requests", "4", *options)
    answers = server.serve(range(40), hold=0.02)

    assert WORKERS < len({answer["pid"] for answer in answers})  # workers were replaced
    assert receiver.wait_until(lambda r: len(served(r)) >= 40, timeout=DEADLINE)
    assert_every_request_logged_once(receiver, range(40))
    assert 0 == server.stop()
    assert [] == spool_files(server.spool_dir), server.log()
    assert "Traceback" not in server.log()


def kill_a_worker_while_the_server_is_down(server, receiver) -> tuple[int, Path]:
    """Serve requests 0..29 with the log server down, SIGKILL the worker that served the first
    one, and wait until gunicorn's master has reaped it (its spool's lock is free). Returns the
    victim's pid and spool, which holds every record it logged."""
    receiver.stop()
    answers = server.serve(range(30))
    victim, victim_spool = answers[0]["pid"], Path(answers[0]["spool"])
    logged_by_victim = sorted(answer["seq"] for answer in answers if answer["pid"] == victim)
    os.kill(victim, signal.SIGKILL)
    assert eventually(lambda: not owner_alive(victim_spool))
    assert logged_by_victim == sorted(record["seq"] for record in spooled(victim_spool))
    receiver.start()
    return victim, victim_spool


@PRELOAD
def test_gunicorn_worker_killed_with_sigkill_loses_nothing(gunicorn, receiver, options):
    server = gunicorn(*options)
    victim, victim_spool = kill_a_worker_while_the_server_is_down(server, receiver)
    answers = server.serve(range(30, 60))  # the master has forked a replacement meanwhile
    assert victim not in {answer["pid"] for answer in answers}

    if "--preload" not in options:
        # Its replacement imported the app, so made a client, which adopted the orphan at once.
        assert receiver.wait_until(lambda r: len(served(r)) >= 60, timeout=DEADLINE)
        assert eventually(lambda: not victim_spool.exists())  # drained, closed, removed
    assert 0 == server.stop()
    if "--preload" in options:
        # A worker forked from the master first scans for orphans ADOPT_INTERVAL after its
        # fork; stopped sooner, gunicorn leaves the victim's file for the next process.
        assert {victim_spool} >= set(spool_files(server.spool_dir))
        after = drain(receiver.url, server.spool_dir)
        assert True is after["flushed"], after
    assert_every_request_logged_once(receiver, range(60))
    assert [] == spool_files(server.spool_dir), server.log()


@pytest.mark.slow
def test_gunicorn_preloaded_workers_adopt_a_killed_siblings_spool_within_the_interval(
    gunicorn, receiver
):
    server = gunicorn("--preload")
    _, victim_spool = kill_a_worker_while_the_server_is_down(server, receiver)
    server.serve(range(30, 60))

    # No other process runs: a live worker must adopt the file and deliver what it holds.
    assert receiver.wait_until(lambda r: len(served(r)) >= 60, timeout=ADOPT_INTERVAL + DEADLINE)
    assert_every_request_logged_once(receiver, range(60))
    assert eventually(lambda: not victim_spool.exists())
    assert 0 == server.stop()
    assert [] == spool_files(server.spool_dir), server.log()


# -- multiprocessing --------------------------------------------------------

PARENT_RECORDS = 50
WORKER_RECORDS = 200


def join_all(procs, timeout: float = DEADLINE) -> list[int | None]:
    """Exit codes; a process still running at the deadline is killed (and reported as such)."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    codes = [proc.exitcode for proc in procs]
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    return codes


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_workers_never_write_the_parents_spool_and_every_record_arrives(
    make_client, receiver, tmp_path, method
):
    """fork: the children use the parent's client object, inherited; spawn: each child makes
    its own (a client cannot be pickled). The parent logs while they run. The server is down
    meanwhile, so the spool files still hold what each process wrote when the test reads them.

    The parent logs only once the children are started: its sender thread would otherwise be
    retrying (in SQLite now and then) at the forks, the hazard of the known bug that
    test_forking_while_threads_log_never_hangs_the_child shows."""
    spool_dir = tmp_path / "spool"
    receiver.stop()
    parent = make_client()  # its spool file is open (and locked) from here on
    ctx = multiprocessing.get_context(method)
    extra = {"client": parent} if method == "fork" else {
        "server_url": receiver.url, "spool_dir": str(spool_dir)
    }  # fmt: skip
    procs = [
        ctx.Process(
            target=mp_tasks.worker_main, args=(n, WORKER_RECORDS, str(tmp_path)), kwargs=extra
        )
        for n in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    for seq in range(PARENT_RECORDS):
        parent.info("parent record", seq=seq, pid=os.getpid())
    assert [0] * WORKERS == join_all(procs)

    reports = [json.loads((tmp_path / f"worker-{n}.json").read_text()) for n in range(WORKERS)]
    children = {report["pid"] for report in reports}
    assert {proc.pid for proc in procs} == children
    assert [os.getpid()] * PARENT_RECORDS == [r["pid"] for r in parent.queue]
    child_spools = set(spool_files(spool_dir)) - {parent.spool_path}
    assert {Path(report["spool"]) for report in reports} == child_spools
    for spool in child_spools:  # each child's own file, named after it, holding only its records
        assert pid_of(spool) in children
        assert [pid_of(spool)] * WORKER_RECORDS == [r["pid"] for r in spooled(spool)]

    receiver.start()
    assert parent.flush(timeout=DEADLINE)  # adopts the children's files (they have exited)

    assert list(range(PARENT_RECORDS)) == sorted(
        r["seq"] for r in with_message(receiver, "parent record")
    )
    assert sorted((n, seq) for n in range(WORKERS) for seq in range(WORKER_RECORDS)) == sorted(
        (r["worker"], r["seq"]) for r in with_message(receiver, "process worker record")
    )
    assert [] == redelivered(receiver)  # nothing had been sent before the server came up
    # flush() returns once the rows are acknowledged; the drained files go just after.
    assert eventually(lambda: [parent.spool_path] == spool_files(spool_dir))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_workers_terminated_by_the_pool_lose_nothing(make_client, receiver, tmp_path, method):
    """``with Pool() as pool:`` terminates its workers on exit (SIGTERM): whatever their
    senders had not sent stays in their spool files, which the parent's flush() adopts.
    (The parent logs after the pool has forked its workers, as in the test above.)"""
    spool_dir = tmp_path / "spool"
    parent = make_client()
    ctx = multiprocessing.get_context(method)
    if method == "fork":
        mp_tasks.CLIENT = parent
        pool_options = {}
    else:
        pool_options = {
            "initializer": mp_tasks.init_own_client,
            "initargs": (receiver.url, str(spool_dir)),
        }
    tasks = [(n, 100) for n in range(12)]
    try:
        with ctx.Pool(WORKERS, **pool_options) as pool:
            parent.info("parent record", seq=0, pid=os.getpid())
            reports = pool.map_async(mp_tasks.log_records, tasks, chunksize=1).get(DEADLINE)
    finally:
        mp_tasks.CLIENT = None
    assert os.getpid() not in {report["pid"] for report in reports}
    assert all(pid_of(report["spool"]) == report["pid"] for report in reports)
    assert str(parent.spool_path) not in {report["spool"] for report in reports}

    # The terminated workers' files are orphans once their locks are gone.
    assert eventually(lambda: not any(owner_alive(Path(report["spool"])) for report in reports))
    assert parent.flush(timeout=DEADLINE)
    assert sorted((n, seq) for n, count in tasks for seq in range(count)) == sorted(
        (r["task"], r["seq"]) for r in with_message(receiver, "pool task record")
    )
    assert 1 == len(with_message(receiver, "parent record"))
    # A worker terminated between a send and its delete has that batch sent again by the
    # parent: the same event ids, which the server stores once (checked above: each record
    # once). That is the lost-ack case, not two senders on one file.
    assert eventually(lambda: [parent.spool_path] == spool_files(spool_dir))


def test_a_client_handed_to_a_spawn_child_fails_to_pickle_in_the_parent(make_client, receiver):
    """A spawn child cannot share the parent's client: Process.start() raises TypeError in the
    parent, before any child runs, and the client keeps working."""
    client = make_client()
    child = multiprocessing.get_context("spawn").Process(target=mp_tasks.log_with, args=(client,))
    with pytest.raises(TypeError):
        child.start()
    assert child.pid is None  # no process was started

    client.info("still logging after the failed start")
    assert client.flush(timeout=DEADLINE)
    assert 1 == len(with_message(receiver, "still logging after the failed start"))


def test_pickling_a_client_says_to_make_one_in_each_process(make_client):
    with pytest.raises(TypeError, match="AsyncLogClient"):
        pickle.dumps(make_client())


# -- no shared connection across fork ---------------------------------------


def test_forked_children_never_use_the_parents_connections_while_it_keeps_logging(
    receiver, tmp_path
):
    """A parent logs from a thread before, while and after multiprocessing forks children
    that log with the inherited client; under ``-X dev`` (ResourceWarnings shown). The
    parent's SQLite connections carry a trace callback that records any statement a child
    runs on them: none may. See helpers/mp_fork_app.py."""
    spool_dir, out = tmp_path / "spool", tmp_path / "out"
    out.mkdir()
    children, records = WORKERS, 300
    done = subprocess.run(
        [PYTHON, "-X", "dev", script("mp_fork_app.py"), receiver.url, str(spool_dir), str(out),
         str(children), str(records)],
        capture_output=True,
        text=True,
        timeout=DEADLINE * 3,
    )  # fmt: skip
    assert 0 == done.returncode, done.stderr[-3000:]
    assert "ResourceWarning" not in done.stderr
    assert "Traceback" not in done.stderr
    parent = json.loads(done.stdout.splitlines()[-1])
    reports = [json.loads((out / f"child-{n}.json").read_text()) for n in range(children)]

    assert [] == sorted(p.name for p in out.glob("touched-*.txt"))  # no child used them
    assert [0] * children == parent["exitcodes"]
    assert True is parent["flushed"]
    assert [True] * children == [report["flushed"] for report in reports]
    assert [True] * children == [report["parent_spool_closed_here"] for report in reports]
    assert [0] * (children + 1) == [parent["fallback"]] + [r["fallback"] for r in reports]
    assert {} == parent["dropped"]
    spools = [report["spool"] for report in reports]
    assert children == len(set(spools))
    assert parent["spool"] not in spools
    assert [report["pid"] for report in reports] == [pid_of(spool) for spool in spools]
    # The parent's records, logged all along, arrived; so did every child's.
    assert list(range(parent["logged"])) == sorted(
        r["seq"] for r in with_message(receiver, "parent thread")
    )
    assert sorted((n, seq) for n in range(children) for seq in range(records)) == sorted(
        (r["child"], r["seq"]) for r in with_message(receiver, "forked child record")
    )
    assert {parent["pid"]} == {r["pid"] for r in with_message(receiver, "parent thread")}
    assert [] == redelivered(receiver)
    assert [] == spool_files(spool_dir)


@pytest.mark.slow
def test_forking_while_threads_log_never_hangs_the_child(receiver, tmp_path):
    """Up to 3000 forks (or 240 s) while three threads log flat out; each child makes one log
    call. One hung child fails the test (its C stack is saved next to the spool)."""
    done = subprocess.run(
        [PYTHON, script("mp_fork_storm.py"), receiver.url, str(tmp_path / "spool"), "3000", "240"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(done.stdout.splitlines()[-1])
    stacks = [p.read_text() for p in tmp_path.glob("hung-*.txt")]
    assert 0 == report["hung"], (report, stacks)


# -- one sender per spool file ----------------------------------------------

ORPHANS = 3
ORPHAN_RECORDS = 600
CONTENDERS = 4


def test_processes_starting_at_once_drain_each_orphan_exactly_once(make_client, receiver, tmp_path):
    """Orphaned spool files wait in a directory; several processes start on it at the same
    moment, each looking for orphans (at construction and in flush()). The flock lets one
    process take each file: every orphan record reaches the server, none is ever sent twice,
    and the orphans are gone."""
    spool_dir = tmp_path / "spool"
    receiver.stop()
    owners = [make_client(batch_size=50) for _ in range(ORPHANS)]
    for run, owner in enumerate(owners):
        for seq in range(ORPHAN_RECORDS):
            owner.info("orphan record", run=run, seq=seq)
    orphans = [owner.spool_path for owner in owners]
    for owner in owners:
        owner.close(timeout=0)  # the server is down: the rows stay, the lock goes
    assert [ORPHAN_RECORDS] * ORPHANS == [len(spooled(orphan)) for orphan in orphans]
    assert [False] * ORPHANS == [owner_alive(orphan) for orphan in orphans]
    receiver.start()

    procs = [
        subprocess.Popen(
            [PYTHON, script("mp_contender.py"), receiver.url, str(spool_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(CONTENDERS)
    ]
    try:
        for proc in procs:  # all imported and waiting...
            assert "ready\n" == proc.stdout.readline()
        for proc in procs:  # ...then released together
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=DEADLINE * 2) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [0] * CONTENDERS == [proc.returncode for proc in procs], [err for _, err in outputs]
    results = [json.loads(out.splitlines()[-1]) for out, _ in outputs]

    arrived = with_message(receiver, "orphan record")
    assert sorted((run, seq) for run in range(ORPHANS) for seq in range(ORPHAN_RECORDS)) == sorted(
        (r["run"], r["seq"]) for r in arrived
    )
    assert [] == redelivered(receiver)  # no event id was sent twice, by one sender or two
    assert 0 == receiver.duplicates
    # Each contender's sender acknowledged its own record plus the orphans it drained: in all,
    # each row exactly once.
    acknowledged = [result["stats"]["acknowledged"] for result in results]
    assert ORPHANS * ORPHAN_RECORDS + CONTENDERS == sum(acknowledged)
    assert CONTENDERS == len(with_message(receiver, "contender started"))
    assert [] == spool_files(spool_dir)
