"""Errors the server reports to clients as data about their input.

``InputError`` is the one expected failure: the client sent a value the server cannot use.
Its message is a full sentence that shows the offending value and what was expected, and it
reaches the client verbatim, with its ``code`` as ``extensions.code`` (``BAD_INPUT`` unless
the raiser says otherwise). Any other exception is a server fault; the API masks its text.
"""

from __future__ import annotations

# The codes of ``extensions.code`` for a client's mistakes; clients branch on them, never on
# the wording. (Outages, limits and access have theirs in ``backend.api``.)
BAD_INPUT = "BAD_INPUT"


class InputError(ValueError):
    """A client-supplied value is malformed or refers to something that does not exist."""

    code = BAD_INPUT

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut after ``limit`` characters for a huge value (a message quoting
    a 10 MB string would be 10 MB). The repr escapes NUL characters and lone surrogates, so
    a message holding one can be sent as UTF-8 JSON."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value):,} characters" if isinstance(value, str) else f"{len(text):,} as text"
    return f"{text[:limit]}... ({size})"
