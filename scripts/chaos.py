"""A bounded, seeded run of random faults against a real server and real client processes.

    python scripts/chaos.py [--minutes 5 | --seconds N] [--seed S] [--clients 3]
                            [--store postgres|sqlite] [--pg-url URL]

What runs, all on 127.0.0.1:
- the ingest server (``python -m log_collector.server``) on PostgreSQL (a database
  ``lc_chaos_<random>`` made for the run and dropped after it) or on SQLite;
- a fault-injecting HTTP proxy in front of it (scripts/chaos_proxy.py); the clients
  only know the proxy's address;
- K client processes (scripts/chaos_app.py), each logging from two threads and
  reporting on stdout every record whose log call returned.

Faults, drawn at random (every kind at least once, in a seeded order):
  client_kill   SIGKILL a client, restart it on the same spool directory; it
                resumes after the last record it reported (the one call that was
                in flight per thread is skipped, never logged twice)
  server_kill   SIGKILL the server, restart it a little later
  error         the proxy answers 500/502 for a while
  throttle      the proxy answers 429 with Retry-After
  slow          the proxy holds requests or answers past the client timeout (1 s)
  lose_ack      the proxy lets the server commit, then resets the client connection
  clock_jump    the clients' clocks (the ``clock=`` seam) jump +1 h or -1 h, then back;
                client 2 has max_record_age=30 min, so what it holds then expires (counted)
  spool_full    a server outage long enough to overflow client 1's small spool
                (max_spool_bytes, drop_oldest): counted drops ``spool_full``
  full_disk     client 0 restarted under RLIMIT_FSIZE (preexec_fn) with a small
                memory fallback, then an outage: its spool stops growing, records
                go to memory (overflow counted ``fallback_full``), all delivered
                once the server is back; then it exits cleanly and restarts normally

At the end the faults stop, every client stops logging, flushes and exits,
leftover spools are inspected (``log-collector status``) and replayed, and the
store is read. Exit status 0 only if no record whose log call returned is
missing beyond the counted drops, no record is stored twice, nothing stored is
unexplained, and nothing is left undelivered. The last line of output is
``CHAOS_SUMMARY {json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from chaos_proxy import ChaosProxy  # noqa: E402

from log_collector.client.spool import inspect as inspect_spool  # noqa: E402

PY = sys.executable
THREADS = 2
CLIENT_TIMEOUT = 1.0  # the apps' HTTP timeout; "slow" holds answers past it
SMALL_SPOOL = 128 * 1024  # client 1's max_spool_bytes
RECORD_AGE = 1800.0  # client 2's max_record_age: a +1 h clock jump expires what it holds
FSIZE_LIMIT = 384 * 1024  # RLIMIT_FSIZE of client 0's full-disk run
FSIZE_FALLBACK = 100  # its memory fallback capacity: a long outage overflows it
READY_TIMEOUT = 30.0
EXIT_TIMEOUT = 120.0  # a client asked to stop: flush (60 s) + close, at most
AUTO_PORTS = range(20000, 32768)  # below the ephemeral range: no self-connect while down
FAULTS = (
    "client_kill",
    "server_kill",
    "error",
    "throttle",
    "slow",
    "lose_ack",
    "clock_jump",
    "spool_full",
    "full_disk",
)

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: if the driver dies (even by
    # SIGKILL), the kernel kills the child too, so a chaos run leaves no orphans.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _full_disk(limit: int) -> Callable[[], None]:
    def preexec() -> None:
        _die_with_parent()
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def pick_port() -> int:
    rng = random.SystemRandom()
    for _ in range(100):
        port = rng.choice(AUTO_PORTS)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise SystemExit("chaos: no free port")


class Server:
    def __init__(self, db_url: str, port: int, logfile: Path) -> None:
        self.db_url, self.port, self.logfile = db_url, port, logfile
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = self.kills = 0

    def start(self) -> None:
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(
                [PY, "-m", "log_collector.server", "--db", self.db_url, "--port", str(self.port),
                 "--no-access-log", "--log-level", "warning"],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        self.starts += 1
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            try:
                url = f"http://127.0.0.1:{self.port}/readyz"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not become ready")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def up(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Incarnation:
    """One process of one client, from start to exit."""

    proc: subprocess.Popen[bytes]
    run: int
    starts: list[int]
    full_disk: bool
    last: dict[int, int] = field(default_factory=dict)  # thread -> last seq reported
    returned: list[tuple[int, int]] = field(default_factory=list)
    spool_path: str | None = None
    stats: dict[str, Any] | None = None
    flushed: bool | None = None
    reader: threading.Thread | None = None
    killed: bool = False
    finished: bool = False  # its records and in-flight seqs are accounted for

    def read(self, stderr_log: TextIO) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("R ") and len(parts := line.split()) == 3:
                t, i = int(parts[1]), int(parts[2])
                self.returned.append((t, i))
                self.last[t] = i
            elif line.startswith("spool "):
                self.spool_path = line[6:]
            elif line.startswith("stats "):
                self.stats = json.loads(line[6:])
            elif line.startswith("flushed "):
                self.flushed = line.endswith("True")
            else:
                stderr_log.write(f"[run {self.run} stdout] {line}\n")


class Client:
    def __init__(self, index: int, workdir: Path, url: str, rate: float) -> None:
        self.index, self.url, self.rate = index, url, rate
        self.spool_dir = workdir / f"client-{index}" / "spool"
        self.clock_file = workdir / f"client-{index}" / "clock"
        self.spool_dir.parent.mkdir(parents=True)
        self.stderr_log = open(workdir / f"client-{index}" / "stderr.log", "a")  # noqa: SIM115
        self.set_clock(0)
        self.next_starts = [0] * THREADS
        self.incarnations: list[Incarnation] = []
        self.returned: set[tuple[int, int]] = set()
        self.in_flight_at_kill: set[tuple[int, int]] = set()
        self.options: list[str] = []
        if index == 1:
            self.options = ["--max-spool-bytes", str(SMALL_SPOOL)]
        elif index == 2:
            self.options = ["--max-record-age", str(RECORD_AGE)]
        self.kills = 0
        self.crashes = 0
        # (spool file, its drop counters) read after each SIGKILL: the counters
        # of a killed run live only in its file's meta table.
        self.killed_spools: list[tuple[str, dict[str, int]]] = []

    @property
    def current(self) -> Incarnation | None:
        return self.incarnations[-1] if self.incarnations else None

    @property
    def alive(self) -> bool:
        return self.current is not None and self.current.proc.poll() is None

    def set_clock(self, offset: float) -> None:
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self.clock_file)

    def start(self, *, full_disk: bool = False) -> None:
        run = len(self.incarnations)
        options = list(self.options)
        if full_disk:
            options += ["--fallback-capacity", str(FSIZE_FALLBACK)]
        proc = subprocess.Popen(
            [PY, str(ROOT / "scripts" / "chaos_app.py"), "--url", self.url,
             "--spool-dir", str(self.spool_dir), "--client", str(self.index), "--run", str(run),
             "--starts", ",".join(map(str, self.next_starts)), "--rate", str(self.rate),
             "--clock-file", str(self.clock_file), "--timeout", str(CLIENT_TIMEOUT), *options],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr_log, cwd=ROOT,
            preexec_fn=_full_disk(FSIZE_LIMIT) if full_disk else _die_with_parent,
        )  # fmt: skip
        inc = Incarnation(proc, run, list(self.next_starts), full_disk)
        inc.reader = threading.Thread(target=inc.read, args=(self.stderr_log,), daemon=True)
        inc.reader.start()
        self.incarnations.append(inc)

    def _finished(self, inc: Incarnation) -> None:
        if inc.finished:
            return
        inc.finished = True
        assert inc.reader is not None
        inc.reader.join(10)
        self.returned.update(inc.returned)
        for t in range(THREADS):
            last = inc.last.get(t)
            if inc.killed or inc.proc.returncode != 0:
                # One call per thread may have been in flight: skip its seq, so
                # it is never logged twice (it may be stored anyway).
                in_flight = inc.starts[t] if last is None else last + 1
                self.in_flight_at_kill.add((t, in_flight))
                self.next_starts[t] = in_flight + 1
            else:
                self.next_starts[t] = inc.starts[t] if last is None else last + 1

    def kill(self) -> None:
        inc = self.current
        if inc is None or inc.proc.poll() is not None:
            return
        inc.killed = True
        inc.proc.send_signal(signal.SIGKILL)
        inc.proc.wait(10)
        self.kills += 1
        self._finished(inc)
        for path in sorted(self.spool_dir.glob("*.spool")):
            info = inspect_spool(path)
            self.killed_spools.append((str(path), info.get("dropped", {})))

    def stop(self, timeout: float = EXIT_TIMEOUT) -> bool:
        """Ask the app to stop logging, flush and exit; True if it exited cleanly."""
        inc = self.current
        if inc is None:
            return False
        if inc.killed:
            return False
        with contextlib.suppress(OSError):
            assert inc.proc.stdin is not None
            inc.proc.stdin.close()
        try:
            inc.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"client {self.index}: did not exit within {timeout:.0f} s; SIGKILL")
            self.kill()
            return False
        self._finished(inc)
        return inc.proc.returncode == 0

    def check(self) -> None:
        """Restart the app if it died without being told to (and count it)."""
        inc = self.current
        if inc is not None and not inc.killed and inc.proc.poll() is not None:
            self.crashes += 1
            log(f"client {self.index}: run {inc.run} exited by itself ({inc.proc.returncode})")
            self._finished(inc)
            self.start()


def admin_connect(pg_url: str) -> Any:
    import psycopg

    return psycopg.connect(pg_url, autocommit=True, connect_timeout=5)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def read_store(db_url: str) -> tuple[list[tuple[int, int, int, int, str]], int, int, int]:
    """(client, run, thread, seq, event_id) of every chaos record, drop notices,
    rows sharing an event_id, rows without one."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        field_sql = "json_extract(metadata, '$.{}')"
    else:
        conn = admin_connect(db_url)
        field_sql = "(metadata->>'{}')::int"
    try:
        cols = ", ".join(field_sql.format(k) for k in ("client", "run", "thread", "seq"))
        rows = conn.execute(
            f"SELECT {cols}, event_id FROM logs WHERE service = 'chaos-app' "
            "AND message LIKE 'chaos record %'"
        ).fetchall()
        notices = conn.execute(
            "SELECT count(*) FROM logs WHERE message LIKE 'log-collector dropped %'"
        ).fetchone()[0]
        shared = conn.execute(
            "SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM logs "
            "WHERE event_id IS NOT NULL GROUP BY event_id HAVING count(*) > 1) AS d"
        ).fetchone()[0]
        no_id = conn.execute("SELECT count(*) FROM logs WHERE event_id IS NULL").fetchone()[0]
    finally:
        conn.close()
    return [(c, r, t, s, str(e)) for c, r, t, s, e in rows], notices, int(shared), no_id


def spool_status(dirs: list[Path]) -> list[dict[str, Any]]:
    existing = [str(d) for d in dirs if d.exists()]
    if not existing:
        return []
    out = subprocess.run(
        [PY, "-m", "log_collector", "status", "--json", *existing],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


class Chaos:
    def __init__(self, args: argparse.Namespace, workdir: Path, db_url: str) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = workdir
        self.duration = args.seconds if args.seconds is not None else args.minutes * 60
        # Durations of fault episodes shrink for short runs (the make-test version).
        self.scale = max(0.35, min(1.0, self.duration / 120))
        self.server = Server(db_url, pick_port(), workdir / "server.log")
        self.proxy = ChaosProxy(
            self.server.port, slow_delay=CLIENT_TIMEOUT + 0.5, port=pick_port(), seed=args.seed
        )
        self.clients = [Client(i, workdir, self.proxy.url, args.rate) for i in range(args.clients)]
        self.faults: Counter[str] = Counter()
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def pause(self, seconds: float) -> None:
        """Sleep, restarting any client that died by itself meanwhile."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))
            for client in self.clients:
                client.check()

    def span(self, low: float, high: float) -> float:
        return self.rng.uniform(low, high) * self.scale

    def fill_time(self) -> float:
        """Seconds of outage that overflow client 1's spool, with a margin."""
        per_record = 460
        return SMALL_SPOOL / (self.args.rate * THREADS * 0.7 * per_record) * 1.5 + 1

    def outage(self, seconds: float) -> None:
        self.server.kill()
        self.pause(seconds)
        self.server.start()

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1
        rng = self.rng
        if kind == "client_kill":
            victims = [c for c in self.clients if not (c.current and c.current.full_disk)]
            client = rng.choice(victims)
            log(f"fault: SIGKILL client {client.index} (run {client.current.run})")  # type: ignore[union-attr]
            client.kill()
            self.pause(rng.uniform(0, 1))
            client.start()
            self.pause(self.span(0.5, 2))
        elif kind == "server_kill":
            down = self.span(0.5, 4)
            log(f"fault: SIGKILL server, down {down:.1f} s")
            self.outage(down)
        elif kind in ("error", "throttle", "slow", "lose_ack"):
            seconds = self.span(1.5, 5)
            retry_after = rng.randint(1, 2)
            log(f"fault: proxy {kind} for {seconds:.1f} s")
            self.proxy.set_mode(kind, retry_after=retry_after)
            # Half the time a client is killed in the middle of it.
            if rng.random() < 0.5:
                self.pause(seconds / 2)
                self.fault("client_kill")
                self.pause(seconds / 2)
            else:
                self.pause(seconds)
            self.proxy.set_mode("pass")
        elif kind == "clock_jump":
            offsets = {c.index: rng.choice((3600.0, -3600.0)) for c in self.clients}
            seconds = self.span(2, 5)
            log(f"fault: clock jump {offsets} for {seconds:.1f} s")
            for client in self.clients:
                client.set_clock(offsets[client.index])
            self.pause(seconds)
            for client in self.clients:
                client.set_clock(0)
        elif kind == "spool_full":
            down = self.fill_time()
            log(f"fault: outage {down:.1f} s, enough to overflow client 1's spool")
            self.outage(down)
        elif kind == "full_disk":
            client = self.clients[0]
            log(f"fault: client 0 restarted under RLIMIT_FSIZE={FSIZE_LIMIT}, then an outage")
            if not client.stop():
                log("client 0 did not stop cleanly before its full-disk run")
            client.start(full_disk=True)
            self.pause(1)
            # Long enough to fill the limited spool and to overflow client 1's too.
            self.faults["spool_full"] += 1
            self.outage(max(self.fill_time(), 8.0))
            self.pause(3)
            if not client.stop():
                log("client 0 did not stop cleanly after its full-disk run")
            client.start()

    def run(self) -> int:
        self.server.start()
        log(f"server on 127.0.0.1:{self.server.port} ({self.server.db_url}), "
            f"proxy on {self.proxy.url}, work dir {self.workdir}")  # fmt: skip
        for client in self.clients:
            client.start()
        # Every kind once, in a seeded order, even if that runs past the end (each
        # episode is bounded); then random kinds until the time is up. In a short
        # run the full-disk episode's outage stands in for spool_full (it is long
        # enough to overflow client 1's spool too).
        must = [k for k in FAULTS if not (k == "spool_full" and self.duration < 60)]
        self.rng.shuffle(must)
        while must or self.elapsed() < self.duration:
            self.fault(must.pop() if must else self.rng.choice(FAULTS))
            self.pause(min(self.span(0.5, 2.0), max(0.0, self.duration - self.elapsed())))
        return self.finish()

    def finish(self) -> int:
        log(f"faults done after {self.elapsed():.0f} s: {dict(self.faults)}; stopping clients")
        self.proxy.set_mode("pass")
        for client in self.clients:
            client.set_clock(0)
        if not self.server.up:
            self.server.start()
        # Ask all at once: they flush in parallel.
        for client in self.clients:
            inc = client.current
            if inc is not None and inc.proc.poll() is None and inc.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    inc.proc.stdin.close()
        unclean = [c.index for c in self.clients if not c.stop()]
        dirs = [c.spool_dir for c in self.clients]
        leftover = spool_status(dirs)
        pending_before_replay = sum(info.get("rows", 0) for info in leftover)
        if pending_before_replay:
            log(f"{pending_before_replay} row(s) left in spools; log-collector replay")
            subprocess.run(
                [PY, "-m", "log_collector", "replay", *map(str, dirs), "--timeout", "60"],
                cwd=ROOT, timeout=90, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            leftover = spool_status(dirs)
        return self.report(unclean, leftover, pending_before_replay)

    def report(self, unclean: list[int], leftover: list[dict[str, Any]], replayed: int) -> int:
        rows, notices, shared_event_ids, no_event_id = read_store(self.server.db_url)
        stored: Counter[tuple[int, int, int]] = Counter()
        runs_of: dict[tuple[int, int, int], set[int]] = {}
        for c, r, t, s, _ in rows:
            stored[(c, t, s)] += 1
            runs_of.setdefault((c, t, s), set()).add(r)

        # Counted drops: a spool file's counters are in its meta table (read
        # after a SIGKILL, or by status at the end) and in stats() at a clean exit;
        # keyed by file, as an adopted file keeps the counters of the run that wrote it.
        file_drops: dict[str, Counter[str]] = {}
        memory_drops: Counter[str] = Counter()
        dead_lettered = 0
        stats_totals: Counter[str] = Counter()

        def note_file(client: int, path: str | None, dropped: dict[str, int]) -> None:
            if path is None:
                return
            key = f"{client}:{Path(path).name}"
            counts = file_drops.setdefault(key, Counter())
            for reason, n in dropped.items():
                counts[reason] = max(counts[reason], n)

        per_client = []
        for client in self.clients:
            for inc in client.incarnations:
                if inc.stats is None:
                    continue
                spool_reasons = {"spool_full", "max_record_age"}
                dropped = inc.stats["dropped"]
                note_file(
                    client.index,
                    inc.stats["spool_path"],
                    {k: v for k, v in dropped.items() if k in spool_reasons},
                )
                for reason, n in dropped.items():
                    if reason not in spool_reasons:
                        memory_drops[f"{client.index}:{reason}"] += n
                dead_lettered += inc.stats["dead_lettered"]
                for key in ("acknowledged", "duplicates", "retries", "requests", "fallback"):
                    stats_totals[key] += inc.stats[key]
            for path, meta in client.killed_spools:
                note_file(client.index, path, meta)
        for info in leftover:
            client_index = int(Path(info["path"]).parent.parent.name.split("-")[1])
            note_file(client_index, info["path"], info.get("dropped", {}))
            dead_lettered += info.get("dead_letters", 0)

        summary: dict[str, Any] = {"logged": 0, "stored": 0, "lost": 0, "duplicated": 0}
        totals: Counter[str] = Counter()
        for client in self.clients:
            i = client.index
            mine = {(t, s): n for (c, t, s), n in stored.items() if c == i}
            drops = sum(
                n
                for key, counts in file_drops.items()
                if key.startswith(f"{i}:")
                for n in counts.values()
            ) + sum(n for key, n in memory_drops.items() if key.startswith(f"{i}:"))
            missing = client.returned - mine.keys()
            unaccounted = max(0, len(missing) - drops)
            duplicated = sum(n - 1 for n in mine.values() if n > 1)
            in_flight = client.in_flight_at_kill & mine.keys()
            phantom = mine.keys() - client.returned - client.in_flight_at_kill
            row = {
                "client": i,
                "runs": len(client.incarnations),
                "kills": client.kills,
                "crashes": client.crashes,
                "logged": len(client.returned),
                "stored": sum(mine.values()),
                "missing": len(missing),
                "counted_drops": drops,
                "lost": unaccounted,
                "duplicated": duplicated,
                "in_flight_at_kill_stored": len(in_flight),
                "unexplained_stored": len(phantom),
            }
            per_client.append(row)
            for key, value in row.items():
                if key != "client":
                    totals[key] += value

        dropped_by_reason: Counter[str] = Counter()
        for counts in file_drops.values():
            dropped_by_reason.update(counts)
        for key, n in memory_drops.items():
            dropped_by_reason[key.split(":", 1)[1]] += n
        pending = sum(info.get("rows", 0) for info in leftover)
        summary = {
            "seed": self.args.seed,
            "store": self.args.store,
            "database": self.server.db_url.rsplit("/", 1)[-1],
            "seconds": round(self.elapsed()),
            "clients": len(self.clients),
            "logged": totals["logged"],
            "stored": totals["stored"],
            "lost": totals["lost"],
            "missing_covered_by_counted_drops": totals["missing"] - totals["lost"],
            "duplicated": totals["duplicated"],
            "rows_sharing_an_event_id": shared_event_ids,
            "rows_without_event_id": no_event_id,
            "in_flight_at_kill_stored": totals["in_flight_at_kill_stored"],
            "unexplained_stored": totals["unexplained_stored"],
            "dead_lettered": dead_lettered,
            "dropped_by_reason": dict(dropped_by_reason),
            "drop_notices_stored": notices,
            "pending_in_spools": pending,
            "replayed_at_end": replayed,
            "unclean_exits": unclean,
            "client_kills": totals["kills"],
            "client_crashes": totals["crashes"],
            "server_kills": self.server.kills,
            "faults": dict(self.faults),
            "proxy": dict(sorted(self.proxy.counts.items())),
            "fallback_records": stats_totals["fallback"],
            "duplicates_ignored_by_server": stats_totals["duplicates"],
            "client_stats_at_clean_exits": dict(stats_totals),
            "per_client": per_client,
        }
        failures = []
        if summary["lost"]:
            failures.append(f"{summary['lost']} record(s) lost")
        for key in ("duplicated", "rows_sharing_an_event_id", "unexplained_stored"):
            if summary[key]:
                failures.append(f"{key.replace('_', ' ')}: {summary[key]}")
        if pending:
            failures.append(f"{pending} record(s) still undelivered in spools")
        if totals["crashes"]:
            failures.append(f"{totals['crashes']} client crash(es)")
        summary["ok"] = not failures
        print_summary(summary, failures)
        return 0 if not failures else 1


def print_summary(s: dict[str, Any], failures: list[str]) -> None:
    lines = [
        ("records logged (log call returned)", s["logged"]),
        ("records stored", s["stored"]),
        ("lost (neither stored nor counted)", s["lost"]),
        ("missing, covered by counted drops", s["missing_covered_by_counted_drops"]),
        ("duplicated (same client/thread/seq twice)", s["duplicated"]),
        ("rows sharing an event_id", s["rows_sharing_an_event_id"]),
        ("in flight at a SIGKILL, stored anyway", s["in_flight_at_kill_stored"]),
        ("stored but never logged (unexplained)", s["unexplained_stored"]),
        ("dead-lettered", s["dead_lettered"]),
        ("through the memory fallback (full disk)", s["fallback_records"]),
        ("resends the server ignored (event_id)", s["duplicates_ignored_by_server"]),
        ("drop notices (WARN records) stored", s["drop_notices_stored"]),
        ("left undelivered in spools", s["pending_in_spools"]),
    ]
    print()
    for label, value in lines:
        print(f"{label + ':':<44}{value:>8}")
    print(f"{'dropped by reason:':<44}{json.dumps(s['dropped_by_reason'])}")
    print(f"{'faults:':<44}{json.dumps(s['faults'])}")
    print(f"{'client SIGKILLs / server SIGKILLs:':<44}{s['client_kills']} / {s['server_kills']}")
    print(f"{'proxy:':<44}{json.dumps(s['proxy'])}")
    for row in s["per_client"]:
        print(f"  client {row['client']}: " + ", ".join(
            f"{k} {v}" for k, v in row.items() if k != "client"))  # fmt: skip
    print(
        "OK: nothing lost, nothing duplicated" if not failures else "FAILED: " + "; ".join(failures)
    )
    print("CHAOS_SUMMARY " + json.dumps(s), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Random faults against a real server and client processes; "
        "exits non-zero on any unaccounted loss or duplicate.",
        epilog="example: python scripts/chaos.py --minutes 5 --seed 7",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=5.0)
    length.add_argument("--seconds", type=float, help="a short run (the make-test version)")
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--rate", type=float, default=40.0, help="records a second per thread")
    parser.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--workdir", type=Path, help="default: a temporary directory")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and database")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = secrets.randbelow(1_000_000)
    if args.clients < 3:
        parser.error("--clients must be at least 3 (clients 0-2 each carry a fault of their own)")
    log(f"chaos: seed {args.seed}, store {args.store}, {args.clients} clients")

    workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{args.seed}-", dir=args.workdir))
    admin = None
    database = None
    if args.store == "postgres":
        admin = admin_connect(args.pg_url)
        database = f"lc_chaos_{secrets.token_hex(6)}"
        admin.execute(f'CREATE DATABASE "{database}"')
        db_url = with_database(args.pg_url, database)
    else:
        db_url = f"sqlite:///{workdir / 'logs.db'}"

    # SIGTERM (a CI timeout, a test harness) ends the run through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chaos: Chaos | None = None
    status = 2
    try:
        chaos = Chaos(args, workdir, db_url)
        status = chaos.run()
    finally:
        if chaos is not None:
            for client in chaos.clients:
                if client.alive:
                    client.current.proc.kill()  # type: ignore[union-attr]
                    client.current.proc.wait(10)  # type: ignore[union-attr]
                client.stderr_log.close()
            chaos.server.stop()
            chaos.proxy.close()
        if admin is not None:
            if not args.keep:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.close()
        if status == 0 and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work dir kept: {workdir}" + (f", database {database}" if args.keep else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
