"""The keyset cursor of ``/api/logs``: the (created_at, id) of the last row a page showed.

Opaque to clients (base64url of ``["c1", created_at_us, id]``, the tag versioning the layout)
and validated on decode, so a cursor this server did not issue is a BadQuery rather than an SQL
error. It is not signed: it carries no secret and grants nothing, since a forged one only moves
the page's start within rows the same reader may already list.
Keyset rather than OFFSET: a page starts strictly after the last row seen, so rows arriving
between fetches neither shift pages nor repeat rows.
https://use-the-index-luke.com/no-offset
"""

from __future__ import annotations

import base64
import binascii
import json

from .errors import BadQuery

_TAG = "c1"
_MAX_CURSOR_CHARS = 200
_MAX_ID = 2**63 - 1
_MAX_US = 2**62


def encode_cursor(created_at_us: int, row_id: int) -> str:
    text = json.dumps([_TAG, created_at_us, row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """``(created_at_us, id)`` from a cursor ``encode_cursor`` made; BadQuery otherwise."""
    bad = BadQuery("cursor", "not a cursor this server issued")
    if not isinstance(cursor, str) or not 0 < len(cursor) <= _MAX_CURSOR_CHARS:
        raise bad
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeError):
        raise bad from None
    if not (isinstance(value, list) and len(value) == 3 and value[0] == _TAG):
        raise bad
    created_at_us, row_id = value[1], value[2]
    for number, high in ((created_at_us, _MAX_US), (row_id, _MAX_ID)):
        if type(number) is not int or not 0 <= number <= high:
            raise bad
    return created_at_us, row_id
