"""A batch the server keeps answering 500 for: split it, hold it, or dead-letter one record.

500 is the server's application failing on this request; repeated, it may be the
content of one record. After ``SPLIT_AFTER_500`` consecutive 500s a batch is split
in two. A record that alone gets that many is dead-lettered only when the server
acknowledged other records since the trouble began (so the server works, only this
record fails). While the server answers every part 500, nothing is dead-lettered:
the parts are held and the batch is retried with backoff, forever, like any outage.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .transport import RETRYABLE, Kind, Outcome

Row = tuple[int, str]
# Sends rows (with the ack count when the 500s for an enclosing batch began) until each
# is acknowledged, dead-lettered or held; False if the sender was halted.
Deliver = Callable[[list[Row], int], bool]
DeadLetter = Callable[[list[tuple[Row, str]]], None]

SPLIT_AFTER_500 = 3


def retry_until_split() -> Callable[[Outcome], bool]:
    """For one batch's attempts: whether to retry after ``outcome``. A retryable outcome
    is retried forever; a 500 up to ``SPLIT_AFTER_500`` times in a row."""
    server_errors = 0

    def again(outcome: Outcome) -> bool:
        nonlocal server_errors
        if outcome.kind is Kind.SERVER_ERROR:
            server_errors += 1
            return server_errors < SPLIT_AFTER_500
        server_errors = 0
        return outcome.kind in RETRYABLE

    return again


@dataclass
class Held:
    """Rows answered 500 before the server was seen acknowledging anything else.

    ``mark`` is the sender's ack count when the trouble began: once it has grown, the
    server has stored other records since, and these rows are tried again, split and, if
    one alone still gets 500s, dead-lettered.
    """

    rows: list[Row]
    mark: int
    outcome: Outcome


@dataclass
class ServerErrors:
    """The proof that the server stores records, and the rows held until there is some."""

    # Non-empty batches acknowledged (without every record refused): the proof that the
    # server stores records, which a 500 for one record alone is weighed against.
    acks: int = 0
    held: list[Held] = field(default_factory=list)
    outages: int = 0  # consecutive batches in which every part was answered 500

    def acknowledged(self) -> None:
        self.acks += 1
        self.outages = 0

    def after_500(
        self, rows: list[Row], outcome: Outcome, mark: int, deliver: Deliver, dead: DeadLetter
    ) -> bool:
        """``rows`` got SPLIT_AFTER_500 consecutive 500s: split them, dead-letter a lone
        record, or hold them until the server is seen storing other records."""
        proven = self.acks > mark  # the server stored other records since the 500s began
        if len(rows) == 1 and proven:
            dead(
                [
                    (
                        rows[0],
                        f"{outcome.describe()} (answered 500 {SPLIT_AFTER_500} times in a row "
                        "for this record alone while the server stored others)",
                    )
                ]
            )
            return True
        if len(rows) == 1 or not (proven or not self.held):
            # No proof yet: the first lone record found is held and, until some other part
            # is acknowledged, further parts are held whole rather than split, so a server
            # that answers everything 500 costs about 2*log2(batch) rounds, not 2*batch.
            self.held.append(Held(rows, mark, outcome))
            return True
        middle = len(rows) // 2
        return deliver(rows[:middle], mark) and deliver(rows[middle:], mark)

    def retry_held(self, deliver: Deliver) -> list[Held] | None:
        """Try the held rows again where the server has since stored other records; those
        it has not are returned (None if halted)."""
        held, self.held = self.held, []
        unresolved = []
        for item in held:
            if self.acks > item.mark:
                if not deliver(item.rows, item.mark):
                    return None
            else:
                unresolved.append(item)
        return unresolved + self.held

    def outage_wait(self, initial: float, maximum: float) -> float:
        """A wait before the batch is read again: full jitter, growing with each round
        in which every part was answered 500, capped at ``maximum``."""
        self.outages += 1
        cap = min(maximum, initial * 2 ** min(self.outages + 2, 30))
        return random.uniform(0, cap)
