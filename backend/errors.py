"""Errors the server reports to clients as data about their input.

``InputError`` is the one expected failure: the client sent a value the server cannot use.
Its message is a full sentence that shows the offending value and what was expected, and it
reaches the client verbatim. Any other exception is a server fault; the API masks its text.
"""

from __future__ import annotations


class InputError(ValueError):
    """A client-supplied value is malformed or refers to something that does not exist."""
