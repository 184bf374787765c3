"""The background sender: wake, read a batch, send, act on the outcome, repeat.

One thread per client per process. It reads rows by id from its sources (the
client's own spool, the in-memory fallback, then any orphaned spools it
adopted), posts them, and removes rows only once the server acknowledged them
or they were dead-lettered. A failed send is retried forever under the
tenacity policy below; no retry count ever drops a row. The one bounded count
is for a record the server keeps answering 500 for while it acknowledges
other records: that record is dead-lettered (``server_errors``).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

import tenacity

from .server_errors import Held, ServerErrors, retry_until_split
from .transport import Kind, Outcome, Transport, encode_batch

logger = logging.getLogger("log_collector")

Row = tuple[int, str]
INITIAL_BACKOFF = 0.5
UNAUTHORIZED_BACKOFF = 60.0
THREAD_NAME = "log-collector-sender"  # the logging handler drops records made on it
HALT_GRACE = 0.1  # seconds stop() gives a halted thread to exit
# A batch is gzipped once its records pass this many bytes (or gzip_min_records records): a
# single large record must shrink as much as a batch of small ones, or whether it fits the
# server's body limit (10 MiB compressed) would depend on its neighbours. Below this, gzip
# saves less time on a LAN than it costs in CPU.
GZIP_MIN_BYTES = 16 * 1024
# A POST carries at most this much JSON text (at least one record), however many rows
# batch_size allows: under 1 MiB once log text is gzipped, within the body limits of common
# proxies and the server's own (10 MiB compressed, 64 MiB decompressed).
MAX_POST_BYTES = 8 * 2**20


def within_post_bytes(rows: list[Row], limit: int) -> list[Row]:
    """The first rows of ``rows`` whose bodies add up to at most ``limit`` characters
    (always the first row, whatever its size)."""
    sizes = list(itertools.accumulate(map(len, map(itemgetter(1), rows))))
    if sizes[-1] <= limit:
        return rows
    return rows[: max(1, bisect.bisect_right(sizes, limit))]


class Source(Protocol):
    path: Any

    def read_batch(self, limit: int) -> list[Row]: ...
    def ack(self, rows: list[Row]) -> None: ...
    def dead_letter(self, rows: list[tuple[Row, str]]) -> None: ...
    def pending(self) -> int: ...
    def checkpoint(self, *, when_due: bool = False) -> None: ...


@dataclass
class SenderStats:
    sent: int = 0  # records in requests that got an answer (retries included)
    acknowledged: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    requests: int = 0
    last_error: str | None = None
    warned: set[Kind] = field(default_factory=set)
    dead_letter_warnings: int = 0  # one per episode of dead letters
    rejected_unnamed: int = 0  # refused by an OTLP endpoint that did not say which


class _Backoff(tenacity.wait.wait_base):
    """Retry-After when the server gave one; a long fixed wait on 401/403;
    otherwise exponential backoff with full jitter, capped.
    https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
    """

    def __init__(self, maximum: float) -> None:
        self._jitter = tenacity.wait_random_exponential(multiplier=INITIAL_BACKOFF, max=maximum)
        self._maximum = maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome: Outcome = retry_state.outcome.result()  # type: ignore[union-attr]
        if outcome.retry_after is not None:
            return outcome.retry_after
        if outcome.kind is Kind.UNAUTHORIZED:
            return max(UNAUTHORIZED_BACKOFF, self._maximum)
        return self._jitter(retry_state)


class Sender:
    def __init__(
        self,
        *,
        sources: Callable[[], list[Source]],
        transport: Transport,
        batch_size: int,
        flush_interval: float,
        compress: bool,
        gzip_min_records: int,
        max_backoff: float,
        gzip_min_bytes: int = GZIP_MIN_BYTES,
        on_drained: Callable[[Source], None] = lambda source: None,
        on_idle: Callable[[], None] = lambda: None,
        on_error: Callable[[Source, BaseException], None] = lambda source, exc: None,
        sleep: Callable[[float], None] | None = None,
        encode: Callable[..., bytes] = encode_batch,
    ) -> None:
        """``encode(bodies, compress=...)`` makes a request body of the rows' texts: this
        project's JSON by default, OTLP protobuf for ``wire="otlp"``."""
        self._encode = encode
        self._sources = sources
        self._transport = transport
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._compress = compress
        self._gzip_min = gzip_min_records
        self._gzip_min_bytes = gzip_min_bytes
        self._max_backoff = max_backoff
        self._on_drained = on_drained
        self._on_idle = on_idle
        self._on_error = on_error
        self._sleep = sleep or self._interruptible_sleep
        self._policy = _Backoff(max_backoff)
        self.stats = SenderStats()

        self._wake = threading.Event()
        self._interrupt = threading.Event()
        self._stopping = threading.Event()  # finish what is there, then exit
        self._halt = threading.Event()  # exit now, leave the rest in the spool
        self.progress = threading.Condition()
        self.failing = False  # the last send attempt did not get an ack
        self._troubles: set[str] = set()
        self._thread: threading.Thread | None = None
        self._idle_first = False
        self._ready: threading.Event | None = None
        self._500s = ServerErrors()
        self._batch_dead = 0  # rows dead-lettered while delivering the current batch
        self._dead_letter_episode = False

    def start(self, *, idle_first: bool = False, ready: threading.Event | None = None) -> None:
        """Start the thread; ``idle_first``: wait for the first wake before looking for work
        (a new client's sender, with nothing to send yet, stays out of its first log calls);
        ``ready``: never look for work before it is set."""
        self._idle_first = idle_first
        self._ready = ready
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self, *, retry_now: bool = False) -> None:
        """Look for work now; ``retry_now`` also cuts a backoff wait short (flush())."""
        self._wake.set()
        if retry_now:
            self._interrupt.set()

    def finish(self) -> None:
        """Send everything there is (not one partial batch per wake), then exit."""
        self._stopping.set()
        self.wake()

    def stop(self, deadline: float) -> bool:
        """Send what is there until ``deadline`` (monotonic), then stop. True if it exited."""
        self.finish()
        if self._thread is None:
            return True
        self._thread.join(max(0.0, deadline - time.monotonic() - HALT_GRACE))
        if self._thread.is_alive():
            # Past the deadline: the thread stops at its next step. A request in
            # flight is not waited for; whatever it carried is still in the spool.
            self._halt.set()
            self._interrupt.set()
            self._thread.join(HALT_GRACE)
        return not self._thread.is_alive()

    def _interruptible_sleep(self, seconds: float) -> None:
        # The producer never checkpoints; while the server is down this is the
        # only place the WAL gets folded back, which keeps appends fast.
        for source in self._sources():
            source.checkpoint(when_due=True)
        self._interrupt.wait(seconds)
        if not self._halt.is_set():
            self._interrupt.clear()

    def _run(self) -> None:
        try:
            look = not self._idle_first
            while not self._halt.is_set():
                if look:
                    if self._ready is not None:
                        self._ready.wait()
                        self._ready = None
                    self._on_idle()
                    self._drain()
                    if self._stopping.is_set() or self._halt.is_set():
                        break
                look = True
                self._wake.wait(self._flush_interval)
                self._wake.clear()
        except Exception:  # never let the thread die silently; the rows stay on disk
            if not self._halt.is_set():  # after a halt, close() may have shut the spool
                logger.exception("log-collector: sender stopped by an unexpected error")
        finally:
            self._transport.reset()
            with self.progress:
                self.progress.notify_all()

    def _drain(self) -> None:
        """Send full batches while there are any, then at most one partial batch
        per source; the next partial waits for the next wake (flush_interval,
        batch_size rows pending, flush() or close()). Sending every few new rows
        at once would keep this thread busy and take the GIL from the app.

        A source that fails (a full disk, a corrupt adopted file) is reported
        and skipped until the next wake; the others still drain, and the
        thread lives on: its rows stay where they are.
        """
        for source in self._sources():
            try:
                if not self._drain_source(source):
                    return
            except Exception as exc:
                if self._halt.is_set():
                    return
                self._trouble(f"{type(exc).__name__}: {exc}", source)
                self._on_error(source, exc)

    def _drain_source(self, source: Source) -> bool:
        while not self._halt.is_set():
            read = source.read_batch(self._batch_size)
            if not read:
                self._on_drained(source)
                return True
            rows = within_post_bytes(read, MAX_POST_BYTES)
            self._batch_dead = 0
            self._500s.held = []
            if not self._deliver(source, rows):
                return False
            if self._500s.held:
                unresolved = self._500s.retry_held(self._deliverer(source))
                if unresolved is None:
                    return False
                if unresolved:
                    # Every part of the batch was answered 500: the server fails whatever
                    # it gets. Nothing is dead-lettered; wait (growing, like any outage)
                    # and read the batch again, with any records logged since.
                    self._pause_for_outage(unresolved)
                    continue
            self._500s.outages = 0
            if self._batch_dead == 0:
                self._dead_letter_episode = False
            source.checkpoint(when_due=True)
            with self.progress:
                self.progress.notify_all()
            # A partial batch waits for the next wake; one cut to MAX_POST_BYTES does not.
            partial = len(read) < self._batch_size and len(rows) == len(read)
            if partial and not self._stopping.is_set():
                return True
        return False

    def _trouble(self, what: str, source: Source) -> None:
        self.stats.last_error = what
        if what.split(":", 1)[0] not in self._troubles:
            self._troubles.add(what.split(":", 1)[0])
            logger.warning(
                "log-collector: cannot use the spool %s (%s); its records stay there, "
                "retrying at the next wake",
                getattr(source, "path", None) or "in memory",
                what,
            )

    def _deliver(self, source: Source, rows: list[Row], mark: int | None = None) -> bool:
        """Send ``rows`` until each is acknowledged, dead-lettered or held (500s, below);
        False if halted. ``mark``: the ack count when a 500 for an enclosing batch began."""
        before = self._500s.acks
        outcome = self._send(rows)
        if outcome is None:
            return False
        if outcome.kind is Kind.ACKED:
            refused = dict(outcome.rejected)
            if refused:
                self._dead_letter(
                    source,
                    [(rows[i], f"rejected by the server: {why}") for i, why in refused.items()],
                )
            source.ack([row for i, row in enumerate(rows) if i not in refused] if refused else rows)
            if len(refused) < len(rows):
                self._500s.acknowledged()
            self.stats.acknowledged += len(rows) - len(refused)
            self.stats.duplicates += outcome.duplicates
            if outcome.unnamed:
                self._refused_unnamed(outcome)
            return True
        if outcome.kind is Kind.SERVER_ERROR:
            return self._500s.after_500(
                rows,
                outcome,
                before if mark is None else mark,
                self._deliverer(source),
                lambda dead: self._dead_letter(source, dead),
            )
        # TOO_LARGE or REJECTED: a single row is the culprit; a batch is split
        # in two until the culprits stand alone (bisection), so one poisoned
        # record costs about 2*log2(batch) requests and its neighbours arrive.
        if len(rows) == 1:
            self._dead_letter(source, [(rows[0], outcome.describe())])
            return True
        middle = len(rows) // 2
        return self._deliver(source, rows[:middle]) and self._deliver(source, rows[middle:])

    def _refused_unnamed(self, outcome: Outcome) -> None:
        """An OTLP endpoint took the batch but refused some records without naming them:
        nothing to dead-letter, nothing to resend (the rest would be stored twice)."""
        self.stats.rejected_unnamed += outcome.unnamed
        self.stats.last_error = (
            f"{outcome.unnamed} record(s) refused by the endpoint: {outcome.detail}"
        )
        if Kind.ACKED not in self.stats.warned:
            self.stats.warned.add(Kind.ACKED)
            logger.warning(
                "log-collector: %s refused %d record(s) of a batch without saying which (%s); "
                "the batch is acknowledged, the refusals counted in stats()['rejected_unnamed']",
                self._transport.url,
                outcome.unnamed,
                outcome.detail or "no reason given",
            )

    def _deliverer(self, source: Source) -> Callable[[list[Row], int], bool]:
        return lambda rows, mark: self._deliver(source, rows, mark)

    def _pause_for_outage(self, held: list[Held]) -> None:
        """Back off before the batch is read and tried again."""
        wait = self._500s.outage_wait(INITIAL_BACKOFF, self._max_backoff)
        self._report_failure(held[0].outcome, wait)
        if not self._halt.is_set():
            self._sleep(wait)

    def _dead_letter(self, source: Source, rows: list[tuple[Row, str]]) -> None:
        """Move ``rows`` to the dead letters; the first of an episode is reported once on
        the ``log_collector`` logger and on stderr (a dead letter must never be silent).
        An episode ends with a batch delivered with nothing dead-lettered."""
        source.dead_letter(rows)
        self.stats.dead_lettered += len(rows)
        self._batch_dead += len(rows)
        reason = rows[0][1]
        self.stats.last_error = f"dead-lettered {len(rows)} record(s): {reason}"
        if self._dead_letter_episode:
            return
        self._dead_letter_episode = True
        self.stats.dead_letter_warnings += 1
        path = getattr(source, "path", None)
        where = (
            f"they are kept in the spool; see them with: log-collector dead-letters {path}"
            if path is not None
            else "they were held in memory (the spool was unwritable) and are not kept"
        )
        message = (
            f"log-collector: the server refused {len(rows)} record(s) for good ({reason}); "
            f"{where} (further dead letters are counted in stats()['dead_lettered'])"
        )
        logger.warning(message)
        if logger.hasHandlers():
            # With no handler configured, logging's last resort already writes the warning
            # to stderr; with one, it may go to a file, so stderr gets it here too.
            print(message, file=sys.stderr)

    def _send(self, rows: list[Row]) -> Outcome | None:
        bodies = [row[1] for row in rows]
        compress = self._compress and (
            len(rows) >= self._gzip_min or sum(map(len, bodies)) >= self._gzip_min_bytes
        )
        body = self._encode(bodies, compress=compress)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(retry_until_split()),
            wait=self._policy,
            stop=lambda state: self._halt.is_set(),
            sleep=self._sleep,
            before_sleep=self._note_failure,
            retry_error_callback=lambda state: None,
        )
        outcome = retrying(self._post, body, compress, len(rows))
        if outcome is not None:
            self.failing = False
        return outcome

    def _post(self, body: bytes, compress: bool, count: int) -> Outcome:
        if self._halt.is_set():
            # tenacity makes one more attempt after an interrupted sleep; a halted
            # sender must not start a request that could outlive close().
            return Outcome(Kind.RETRY, detail="sender halted")
        outcome = self._transport.send(body, gzipped=compress, count=count)
        self.stats.requests += 1
        if outcome.status is not None:
            self.stats.sent += count
        return outcome

    def _note_failure(self, state: tenacity.RetryCallState) -> None:
        outcome: Outcome = state.outcome.result()  # type: ignore[union-attr]
        self._report_failure(outcome, state.upcoming_sleep)

    def _report_failure(self, outcome: Outcome, wait: float) -> None:
        self.failing = True
        self.stats.retries += 1
        self.stats.last_error = outcome.describe()
        if outcome.kind not in self.stats.warned:
            # Once per kind of trouble, not once per retry: a long outage must
            # not flood the application's own log. One line: the reason, not
            # the nested exception requests builds.
            self.stats.warned.add(outcome.kind)
            logger.warning(
                "log-collector: cannot deliver to %s: %s; keeping %d records, retrying in %.1f s",
                self._transport.url,
                outcome.describe(),
                self._pending(),
                wait,
            )
        with self.progress:
            self.progress.notify_all()

    def _pending(self) -> int:
        total = 0
        for source in self._sources():
            try:
                total += source.pending()
            except Exception:  # a broken source is reported where it is read
                continue
        return total
