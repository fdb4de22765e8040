"""Text the server can store, whatever a task's exception or log record holds.

PostgreSQL's text has no NUL character and every string must be UTF-8, so a message with a
NUL byte or a lone surrogate (``os.fsdecode`` of a bad file name makes them) would be
refused. ``storable`` shows such characters as escapes instead, and cuts text too long for
one state or log record, saying so.
"""

from __future__ import annotations

from typing import Any

# Characters kept of one message: escaped, that stays well under the server's limit for a
# whole state (1 MB of JSON).
MAX_CHARACTERS = 100_000


def storable(text: str, limit: int = MAX_CHARACTERS) -> str:
    """``text`` with NUL characters and lone surrogates escaped, cut to ``limit``."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit:,} more characters cut)"
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def storable_state(state: dict[str, Any]) -> dict[str, Any]:
    """A proposed state with its message made ``storable``."""
    message = state.get("message")
    if isinstance(message, str) and message != (kept := storable(message)):
        return {**state, "message": kept}
    return state
