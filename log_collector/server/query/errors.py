"""The two ways a read request fails for what it asked, in a leaf module so every query module
(and the routes) import them without a cycle."""

from __future__ import annotations


class BadQuery(Exception):
    """A parameter of the request is not acceptable: an unknown name, a malformed value, a number
    out of range, a cursor this server did not issue. The route answers 400 naming
    ``parameter``."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


class NotFound(Exception):
    """The log or trace the request names does not exist (or is deleted); the route answers
    404."""
