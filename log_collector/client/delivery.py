"""Where a client's records go, and how they leave.

``Delivery`` owns a client's spool (or, while no spool can be written, the
bounded in-memory fallback), the orphaned spools it adopted (``orphans``), and
the sender thread that ships them all. ``AsyncLogClient`` builds records and hands them
here; ``flush``, ``close`` and ``stats`` are answered here too.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .memory import MemoryQueue
from .orphans import ADOPT_INTERVAL, Orphans
from .sender import Sender, Source
from .settings import Settings
from .spool import Spool, SpoolError, is_corruption, move_aside, private_spool_dir, salvage
from .transport import HttpTransport
from .wires import wire_transport

logger = logging.getLogger("log_collector")

# SQLite handles inherited through fork(): kept referenced forever so that the
# child never finalises (closes) the parent's connections. See Spool.abandon.
_INHERITED: list[Any] = []
# Appends a new client rehearses (rolled back) before its first log call: enough for the
# interpreter to specialise the path and the caches to hold it (docs/performance.md).
REHEARSALS = 16


class Delivery:
    """A client's spool, fallback, adopted spools and sender.

    ``announce(spool, earlier)`` logs the WARN record that says how many
    records a limit dropped (the client builds it: it owns the record format).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None] | None,
        announce: Callable[[Spool, bool], None],
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._sleep = sleep
        self._announce = announce
        self._lock = threading.RLock()
        self._closed = False
        self.spool: Spool | None = None
        self._orphans = self._new_orphans(next_scan=0.0)
        self.sender: Sender | None = None
        self._since_wake = 0
        self._dropped: dict[str, int] = {}
        self._fallback_count = 0
        self._warned_fallback = False
        self._new_memory()

    def start(self, rehearse: Callable[[], None] | None = None) -> None:
        """Open the spool and start the sender, so that no log call waits for either.

        ``rehearse`` makes one log call; it is made REHEARSALS times into the new spool
        and rolled back (``SpoolConnection.rehearsal``) while the sender waits.
        With orphans waiting the sender drains them at once; otherwise it first
        waits for its first wake (batch_size rows, flush_interval, flush(), close()).
        A forked child starts its own sender on its first log call (reset_after_fork).
        """
        spool = self.open_spool()
        orphans = self._orphans.waiting(self.settings.spool_dir, spool)
        if spool is None or rehearse is None:
            self._ensure_sender(idle_first=not orphans)
            return
        # The rehearsal comes last, so that nothing cools the caches before the first log
        # call; the sender, started first, looks at no spool until it is over.
        ready = threading.Event()
        self._ensure_sender(idle_first=not orphans, ready=ready)
        try:
            self._rehearse(spool, rehearse)
        finally:
            ready.set()

    def append(self, created_at: float, body: str) -> None:
        # No getpid() here: the after-fork hook has already reset a forked child.
        spool = self.spool
        if spool is None:
            spool = self.open_spool()
        if spool is not None:
            spool.append(created_at, body)
        else:
            self._to_memory([(created_at, body)], None)
        if self._closed:
            return
        sender = self.sender
        if sender is None:
            self._ensure_sender()
            return
        self._since_wake += 1
        if self._since_wake >= self.settings.batch_size:
            self._since_wake = 0
            sender.wake()

    def _rehearse(self, spool: Spool, log_call: Callable[[], None]) -> None:
        since_wake, dropped = self._since_wake, dict(self._dropped)
        try:
            with spool.rehearsal() as rehearsing:
                for _ in range(REHEARSALS if rehearsing else 0):
                    log_call()
        except SpoolError as exc:  # the transaction could not be rolled back: unusable
            with self._lock:
                self.spool = None
            try:
                spool.close()  # closing the connection rolls the transaction back
            except (OSError, sqlite3.Error):
                _INHERITED.extend(spool.abandon())
            self.warn_once(
                f"log-collector: cannot use the spool {spool.path} ({exc}); the next log call "
                "opens a new one"
            )
        except Exception as exc:  # the rehearsal only warms the code up; appends will tell
            logger.debug("log-collector: the append rehearsal stopped: %r", exc)
        finally:
            # What the rehearsed calls counted is not the application's.
            self._since_wake, self._dropped = since_wake, dropped

    def open_spool(self) -> Spool | None:
        with self._lock:
            if self.spool is not None:
                return self.spool
            s = self.settings
            try:
                directory = private_spool_dir(s.spool_dir, s.service)
                if directory != s.spool_dir:  # refused: this private one from now on
                    self.settings = s = dataclasses.replace(s, spool_dir=directory)
                self.spool = Spool.create(
                    s.spool_dir,
                    target_url=s.server_url,
                    service=s.service,
                    wire=s.wire,
                    durability=s.durability,
                    max_bytes=s.max_spool_bytes,
                    full_policy=s.spool_full_policy,
                    max_record_age=s.max_record_age,
                    fallback=self._to_memory,
                    clock=self._clock,
                )
            except (OSError, sqlite3.Error, SpoolError) as exc:
                self.warn_once(
                    f"log-collector: cannot open a spool in {s.spool_dir} ({exc}); "
                    "records are kept in memory until it can"
                )
                return None
            return self.spool

    def count_drop(self, reason: str, n: int) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + n

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything handed over so far is acknowledged (or
        dead-lettered), adopted orphans included. False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return self.pending_total() == 0
            self._adopt_orphans(force=True)
            sender = self._ensure_sender()
            # Per spool, the last id handed out at the call. A spool that
            # replaces a corrupt one (salvaged rows inside) is marked when first
            # seen, so the records moved into it are waited for too.
            marks: dict[int, int] = {}
            if self.spool is not None:
                marks[id(self.spool)] = self.spool.high_water()
            memory, memory_mark = self._memory, self._memory.high_water()
            adopted = list(self._orphans)

        def spool_delivered() -> bool:
            spool = self.spool
            if spool is None or spool.closed:
                return True
            mark = marks.setdefault(id(spool), spool.high_water())
            try:
                oldest = spool.oldest_id()
            except sqlite3.Error as exc:
                self._source_failed(spool, exc)  # corrupt: set aside and salvaged
                return False
            return oldest is None or oldest > mark

        def delivered() -> bool:
            if not spool_delivered():
                return False
            oldest = memory.oldest_id()
            if oldest is not None and oldest <= memory_mark:
                return False
            try:
                return all(a.closed or a.pending() == 0 for a in adopted)
            except sqlite3.Error:
                return False  # the sender sets a broken adopted spool aside

        sender.wake(retry_now=True)
        with sender.progress:
            while not delivered():
                if not sender.alive:
                    return delivered()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                # Re-check at least every 0.5 s: progress is notified per batch,
                # but a row can also leave by another path (dead-letter, expiry).
                sender.progress.wait(0.5 if remaining is None else min(remaining, 0.5))
        return True

    def close(self, timeout: float, *, wait_while_failing: bool = True) -> bool:
        """Flush until ``timeout``, stop the sender, close the spools; say on
        stderr what is left and where. False if it was closed already.

        ``wait_while_failing=False`` stops waiting as soon as a delivery attempt
        fails (server unreachable): the records are on disk already, and the next
        process using the spool directory sends them, so an exit need not wait
        out the deadline for a server that is down.
        """
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            if self.sender is not None and self.sender.alive:
                self._stop_sender(self.sender, time.monotonic() + timeout, wait_while_failing)
            self.sender = None
            spool, self.spool = self.spool, None
            left = spool.close() if spool is not None else 0
            left += self._orphans.close()
            in_memory = self._memory.pending()
        if left:
            where = spool.path.parent if spool is not None else self.settings.spool_dir
            print(
                f"log-collector: {left} record(s) for {self.settings.server_url} kept in {where}; "
                f"they are sent by the next start or by: log-collector replay {where}",
                file=sys.stderr,
            )
        if in_memory:
            print(
                f"log-collector: {in_memory} record(s) held in memory because the spool was "
                "unwritable could not be delivered and are lost",
                file=sys.stderr,
            )
        return True

    @staticmethod
    def _stop_sender(sender: Sender, deadline: float, wait_while_failing: bool) -> None:
        """Let the sender send what is there until ``deadline`` (monotonic), then stop it."""
        sender.finish()
        if wait_while_failing:
            sender.wake(retry_now=True)  # a backoff wait would only eat into the deadline
        else:
            with sender.progress:
                # The sender notifies after each batch, each failed attempt and on exit.
                while sender.alive and not sender.failing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    sender.progress.wait(min(remaining, 0.1))
            if sender.failing:
                deadline = time.monotonic()
        sender.stop(deadline)

    def stats(self) -> dict[str, Any]:
        """Counters and the state of the spool, for dashboards and tests."""
        spool = self.spool
        sender = self.sender
        dropped = dict(self._dropped)
        appended = self._memory.appended
        spool_rows = spool_bytes = 0
        oldest = None
        dead_lettered = 0
        if spool is not None and not spool.closed:
            for reason, n in spool.counters.dropped.items():
                dropped[reason] = dropped.get(reason, 0) + n
            appended += spool.counters.appended
            spool_rows, spool_bytes = spool.pending(), spool.nbytes()
            oldest = spool.oldest_created_at()
        sender_stats = sender.stats if sender is not None else None
        if sender_stats is not None:
            dead_lettered = sender_stats.dead_lettered
        return {
            "appended": appended,
            "sent": sender_stats.sent if sender_stats else 0,
            "acknowledged": sender_stats.acknowledged if sender_stats else 0,
            "duplicates": sender_stats.duplicates if sender_stats else 0,
            "dead_lettered": dead_lettered,
            "dropped": dropped,
            "retries": sender_stats.retries if sender_stats else 0,
            "requests": sender_stats.requests if sender_stats else 0,
            "fallback": self._fallback_count,
            "fallback_pending": self._memory.pending(),
            "spool_path": str(spool.path) if spool is not None else None,
            "spool_rows": spool_rows,
            "spool_bytes": spool_bytes,
            "oldest_pending_age": None if oldest is None else max(0.0, self._clock() - oldest),
            "adopted_spools": len(self._orphans),
            "last_error": sender_stats.last_error if sender_stats else None,
            "rejected_unnamed": sender_stats.rejected_unnamed if sender_stats else 0,
        }

    def pending_total(self) -> int:
        spool = self.spool
        return (
            spool.pending() if spool is not None and not spool.closed else 0
        ) + self._memory.pending()

    def own_sources(self) -> list[Source]:
        """The client's own records not yet acknowledged: its spool, then memory."""
        spool = self.spool
        return ([spool] if spool is not None and not spool.closed else []) + [self._memory]

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's spool, lock and thread.

        Threads do not survive fork() and locks may have been held by one of
        them; the parent still owns its spool and keeps sending it. The child
        opens a spool file of its own on its first log call.
        """
        self._lock = threading.RLock()
        if self.spool is not None:
            _INHERITED.extend(self.spool.abandon())
        _INHERITED.extend(self._orphans.abandon())
        self.spool = None
        self.sender = None
        self._orphans = self._new_orphans(next_scan=time.monotonic() + ADOPT_INTERVAL)
        self._new_memory()

    def _to_memory(self, rows: list[tuple[float, str]], exc: BaseException | None) -> None:
        """The spool could not take these rows: keep them in the bounded memory queue."""
        self._fallback_count += len(rows)
        self._memory.put([body for _, body in rows])
        if exc is not None:
            self.warn_once(
                f"log-collector: cannot write the spool ({exc!r}); "
                "records are kept in memory (bounded) until it can"
            )
            if is_corruption(exc):
                # The next append opens a fresh file; this one is set aside
                # and what can still be read from it is copied over.
                self._retire_spool(str(exc))

    def _retire_spool(self, why: str, spool: Spool | None = None) -> None:
        """Our own spool is corrupt: set it aside, salvage it into a fresh one."""
        spool = spool or self.spool
        if spool is None or spool is not self.spool or not self._lock.acquire(blocking=False):
            return
        try:
            self.spool = None
            # Abandoned, not closed: closing a corrupt file can fail half-way.
            _INHERITED.extend(spool.abandon())
        finally:
            self._lock.release()
        self._quarantine(spool.path, why)

    def _quarantine(self, path: Path, why: str) -> None:
        """Move a bad spool file aside and copy what SQLite can still read from
        it into our own spool; the event ids stay, so nothing is stored twice."""
        moved = move_aside(path, why)
        rows = salvage(moved)
        if not rows:
            return
        target = self.spool or self.open_spool()
        if target is not None:
            target.append_rows(rows)
        else:
            self._to_memory(rows, None)
        logger.error("log-collector: salvaged %d record(s) from %s", len(rows), moved)

    def _source_failed(self, source: Source, exc: BaseException) -> None:
        """The sender could not read or update a source; corruption retires it."""
        if not is_corruption(exc):
            return
        if source is self.spool:
            self._retire_spool(str(exc), source)  # type: ignore[arg-type]
        elif self._orphans.remove(source):
            _INHERITED.extend(source.abandon())  # type: ignore[attr-defined]
            self._quarantine(source.path, str(exc))

    def _new_memory(self) -> None:
        self._memory = MemoryQueue(self.settings.fallback_capacity, self.count_drop)

    def warn_once(self, message: str) -> None:
        if not self._warned_fallback:
            self._warned_fallback = True
            logger.warning(message)

    def _sources(self) -> list[Source]:
        return self.own_sources() + list(self._orphans)

    def _ensure_sender(
        self, *, idle_first: bool = False, ready: threading.Event | None = None
    ) -> Sender:
        with self._lock:
            if self.sender is not None and self.sender.alive:
                return self.sender
            s = self.settings
            transport, encode = self._wire()
            self.sender = Sender(
                sources=self._sources,
                transport=transport,
                encode=encode,
                batch_size=s.batch_size,
                flush_interval=s.flush_interval,
                compress=s.enable_compression,
                gzip_min_records=s.gzip_min_records,
                gzip_min_bytes=s.gzip_min_bytes,
                max_backoff=s.max_backoff,
                on_drained=self._drained,
                on_idle=self._adopt_orphans,
                on_error=self._source_failed,
                sleep=self._sleep,
            )
            if not self._closed:
                self.sender.start(idle_first=idle_first, ready=ready)
            return self.sender

    def _wire(self) -> tuple[HttpTransport, Callable[..., bytes]]:
        """The transport and body encoder of ``settings.wire``."""
        s = self.settings
        return wire_transport(s.server_url, s.wire, timeout=s.timeout, api_key=s.api_key)

    def _drained(self, source: Source) -> None:
        if self._orphans.remove(source):
            source.close()  # type: ignore[attr-defined]

    def _adopt_orphans(self, force: bool = False) -> None:
        self._orphans.scan(self.settings, self.spool, force=force)

    def _new_orphans(self, *, next_scan: float) -> Orphans:
        return Orphans(
            clock=self._clock,
            quarantine=self._quarantine,
            announce=self._announce,
            next_scan=next_scan,
        )
