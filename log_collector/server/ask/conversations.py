"""Conversations kept by the server, and the cache of answers.

A conversation holds the last interpretation (what a follow-up starts from) and the last
question, or the interpretation a clarification waits to complete. Each lives ``ttl`` seconds
after its last use; beyond ``cap`` the least recently used is dropped. The answer cache is keyed
by the engine, the normalised question, the previous interpretation's focus and the resolved
time range, so "the last hour" asked a minute later is a different key, and the same words in
two conversations with different focus never share an answer.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .interpretation import Interpretation

CONVERSATION_TTL_S = 30 * 60
MAX_CONVERSATIONS = 1000
ANSWER_TTL_S = 30.0
MAX_ANSWERS = 500

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class Conversation:
    id: str
    last: Interpretation | None = None
    last_question: str | None = None
    # The interpretation a clarification waits to complete with the chosen value.
    pending: Interpretation | None = None
    pending_question: str | None = None
    used_at: float = 0.0


class _Bounded(Generic[K, V]):
    """What both stores share: items in least recently used order behind one lock, each living
    ``ttl`` seconds by ``clock``, at most ``cap`` of them."""

    def __init__(self, ttl: float, cap: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._cap = cap
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[K, V] = OrderedDict()

    def _drop_beyond_cap(self) -> None:
        while len(self._items) > self._cap:
            self._items.popitem(last=False)


class Conversations(_Bounded[str, Conversation]):
    """Thread-safe: the routes run in worker threads."""

    def __init__(
        self,
        ttl: float = CONVERSATION_TTL_S,
        cap: int = MAX_CONVERSATIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl, cap, clock)

    def get(self, conversation_id: str | None) -> Conversation:
        """The live conversation ``conversation_id`` names, else a new one (with a new id)."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            found = self._items.get(conversation_id) if conversation_id else None
            if found is None:
                found = Conversation(secrets.token_urlsafe(12), used_at=now)
                self._items[found.id] = found
                self._drop_beyond_cap()
            else:
                found.used_at = now
                self._items.move_to_end(found.id)
            return found

    def save(
        self,
        conversation: Conversation,
        *,
        last: Interpretation | None = None,
        question: str | None = None,
        pending: Interpretation | None = None,
    ) -> None:
        with self._lock:
            if last is not None:
                conversation.last = last
                conversation.last_question = question
            conversation.pending = pending
            conversation.pending_question = question if pending is not None else None
            conversation.used_at = self._clock()
            if conversation.id in self._items:
                self._items.move_to_end(conversation.id)

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._items)

    def __contains__(self, conversation_id: object) -> bool:
        with self._lock:
            self._expire(self._clock())
            return conversation_id in self._items

    def _expire(self, now: float) -> None:
        while self._items:
            oldest = next(iter(self._items.values()))
            if now - oldest.used_at < self._ttl:
                return
            self._items.popitem(last=False)


def normalise(question: str) -> str:
    return re.sub(r"\s+", " ", question.strip().lower()).rstrip("?？.!")


def cache_key(
    engine: str, question: str, previous: Interpretation | None, interp: Interpretation
) -> tuple[Hashable, ...]:
    """The answer cache's key: see the module's docstring."""
    focus = previous.focus() if previous is not None else None
    return (engine, normalise(question), focus, interp.focus(), interp.since_us, interp.until_us)


class AnswerCache(_Bounded[Hashable, tuple[float, Any]]):
    def __init__(
        self,
        ttl: float = ANSWER_TTL_S,
        cap: int = MAX_ANSWERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl, cap, clock)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            stored_at, value = entry
            if self._clock() - stored_at >= self._ttl:
                del self._items[key]
                return None
            return value

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = (self._clock(), value)
            self._items.move_to_end(key)
            self._drop_beyond_cap()
