"""Metadata as JSON text, and the rewrites that make a value storable.

``encode_metadata`` writes compact JSON (orjson where it gives the same text
as ``json``); ``finite`` keeps NaN and Infinity as their text, which JSON
cannot hold; ``clean`` replaces the text no store can hold (NUL, an unpaired
UTF-16 surrogate) with U+FFFD. Both rebuild only the containers they change.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import orjson


def _json_encoder() -> Callable[[dict[str, Any]], str]:
    # The C encoder called directly costs half of JSONEncoder.encode for the
    # small objects metadata holds (JSONEncoder builds it anew on every call).
    # Compact separators, non-ASCII kept, NaN refused.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
    encode = make(None, None, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


_json_encode = _json_encoder()
_orjson_dumps = orjson.dumps
_OrjsonEncodeError = orjson.JSONEncodeError


def encode_metadata(value: dict[str, Any]) -> str:
    """``value`` as compact JSON text; ValueError for NaN or Infinity, RecursionError
    when nested too deeply for Python."""
    # orjson is several times faster but writes NaN and Infinity as null and
    # refuses integers past 64 bits and nesting past 255 levels: json decides
    # those (a null in the output may have been a NaN).
    try:
        text = _orjson_dumps(value)
    except _OrjsonEncodeError:
        return _json_encode(value)
    if b"null" in text:
        return _json_encode(value)
    return text.decode()


def encode_finite_metadata(value: dict[str, Any]) -> str:
    """``encode_metadata`` for values known to hold no NaN, no Infinity and no
    integer past 64 bits, as orjson decodes them: no check for a null."""
    try:
        return _orjson_dumps(value).decode()
    except _OrjsonEncodeError:
        return _json_encode(value)


def finite(value: Any) -> Any:
    """``value`` with every NaN and infinity replaced by its text; ``value``
    itself when it holds none."""
    return _rebuild(value, _finite_number)


def _finite_number(value: Any) -> Any:
    if type(value) is not float or math.isfinite(value):
        return value
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


class _Frame:
    """One container being rebuilt by ``_rebuild``."""

    __slots__ = ("changed", "child", "is_dict", "items", "key", "out", "source")

    def __init__(self, source: dict[Any, Any] | list[Any]):
        self.source = source
        self.is_dict = type(source) is dict
        self.items: Any = iter(source.items()) if self.is_dict else iter(source)  # type: ignore[union-attr]
        self.out: list[Any] = []
        self.changed = False
        self.key: Any = None
        self.child: Any = None


def _rebuild(root: Any, fix: Callable[[Any], Any]) -> Any:
    """``root`` with ``fix`` applied to every key and every value that is not a
    container; ``root`` itself, and each container itself, when ``fix``
    changed nothing in it. A loop, not recursion: a value may be nested as
    deep as the decoder allows."""
    if type(root) is not dict and type(root) is not list:
        return fix(root)
    stack = [_Frame(root)]
    while True:
        frame = stack[-1]
        for item in frame.items:
            if frame.is_dict:
                key, value = item
                new_key = fix(key)
                if new_key is not key:
                    frame.changed = True
            else:
                new_key, value = None, item
            if type(value) is dict or type(value) is list:
                frame.key, frame.child = new_key, value
                stack.append(_Frame(value))
                break
            new_value = fix(value)
            if new_value is not value:
                frame.changed = True
            frame.out.append((new_key, new_value) if frame.is_dict else new_value)
        else:
            stack.pop()
            built: Any = frame.source
            if frame.changed:
                built = dict(frame.out) if frame.is_dict else frame.out
            if not stack:
                return built
            parent = stack[-1]
            if built is not parent.child:
                parent.changed = True
            parent.out.append((parent.key, built) if parent.is_dict else built)


def clean(value: Any) -> Any:
    return _rebuild(value, _clean_text)


def _clean_text(text: Any) -> Any:
    if type(text) is not str:
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A pair of surrogates becomes its character; a lone one, U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text
