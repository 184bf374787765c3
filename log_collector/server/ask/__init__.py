"""Ask in plain language: read a question (``builtin``), write its SQL (``sqlgen``, or a
language-model engine of ``engines``), run it through the guard of ``POST /api/sql``, answer
(``answer``); conversations and the answer cache in ``conversations``, the whole in ``service``.
"""

from .builtin import interpret
from .interpretation import Clarification, Interpretation
from .service import AskService, BadAsk
from .settings import AskSettings

__all__ = [
    "AskService",
    "AskSettings",
    "BadAsk",
    "Clarification",
    "Interpretation",
    "interpret",
]
