"""A plain-Python model of the read API's filters and orderings, for tests to compare with.

Rows are dicts of Python values (``uuid.UUID``, aware ``datetime``, ``str``, ``int``, ``bool``,
``None``); a filter is the ``where`` the API takes, with values of the same Python types.
The rules are those ``backend.models._filters`` documents:

- SQL's three-valued logic, as in Hasura: a comparison with a null column is unknown (None
  here), ``_not`` of unknown is unknown, and a row is returned only when its filter is true.
  ``_in: []`` is false and ``_nin: []`` true, nulls included; ``_is_null`` sees nulls.
- A relationship filter is "some related row matches" (true or false, never unknown).
- Strings compare and sort by code point (Python's own order).
- ``_like``: ``%`` any run, ``_`` one character, ``\\`` makes the next character literal;
  case-sensitive. ``_ilike`` folds ASCII letters only.
- ``order_by``: nulls last ascending and first descending unless the direction says, then
  the primary key ascending.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from backend.models import TABLES

Row = dict[str, Any]
Truth = bool | None

_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_FOLD)


def like(pattern: str, text: str, *, fold: bool = False) -> bool:
    """Whether ``text`` matches the LIKE ``pattern`` (``fold``: as ILIKE does)."""
    if fold:
        pattern, text = ascii_lower(pattern), ascii_lower(text)
    regex, escaped = [], False
    for char in pattern:
        if escaped:
            regex.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            regex.append(".*")
        elif char == "_":
            regex.append(".")
        else:
            regex.append(re.escape(char))
    if escaped:
        raise ValueError(f"{pattern!r} ends with an unpaired escape")
    return re.fullmatch("".join(regex), text, re.DOTALL) is not None


def _known(value: Any, test: Callable[[Any], bool]) -> Truth:
    return None if value is None else test(value)


_COMPARISONS: dict[str, Callable[[Any, Any], Truth]] = {
    "_eq": lambda v, q: _known(v, lambda v: v == q),
    "_neq": lambda v, q: _known(v, lambda v: v != q),
    "_gt": lambda v, q: _known(v, lambda v: v > q),
    "_gte": lambda v, q: _known(v, lambda v: v >= q),
    "_lt": lambda v, q: _known(v, lambda v: v < q),
    "_lte": lambda v, q: _known(v, lambda v: v <= q),
    "_in": lambda v, q: False if not q else _known(v, lambda v: v in q),
    "_nin": lambda v, q: True if not q else _known(v, lambda v: v not in q),
    "_is_null": lambda v, q: (v is None) == q,
    "_like": lambda v, q: _known(v, lambda v: like(q, v)),
    "_ilike": lambda v, q: _known(v, lambda v: like(q, v, fold=True)),
}


def all_of(truths: Sequence[Truth]) -> Truth:
    if any(t is False for t in truths):
        return False
    return None if any(t is None for t in truths) else True


def any_of(truths: Sequence[Truth]) -> Truth:
    if any(t is True for t in truths):
        return True
    return None if any(t is None for t in truths) else False


def negate(truth: Truth) -> Truth:
    return None if truth is None else not truth


class Model:
    """Rows of some tables of the catalog, in memory, keyed by table name."""

    def __init__(self, rows: Mapping[str, list[Row]]) -> None:
        self.rows = rows

    def truth(self, table: str, row: Row, where: Mapping[str, Any]) -> Truth:
        info = TABLES[table]
        truths: list[Truth] = []
        for key, value in where.items():
            if key == "_and":
                truths.append(all_of([self.truth(table, row, w) for w in value]))
            elif key == "_or":
                truths.append(any_of([self.truth(table, row, w) for w in value]))
            elif key == "_not":
                truths.append(negate(self.truth(table, row, value)))
            elif key in info.relationships:
                truths.append(
                    any(
                        self.truth(r.target, other, value)
                        for r, other in self._related(table, key, row)
                    )
                )
            else:
                truths += [_COMPARISONS[op](row[key], q) for op, q in value.items()]
        return all_of(truths)

    def _related(self, table: str, name: str, row: Row) -> list[tuple[Any, Row]]:
        relationship = TABLES[table].relationships[name]
        return [
            (relationship, other)
            for other in self.rows[relationship.target]
            if other[relationship.remote] == row[relationship.local]
            and row[relationship.local] is not None
        ]

    def select(
        self,
        table: str,
        where: Mapping[str, Any] | None = None,
        order_by: Sequence[Mapping[str, Any]] | None = None,
        among: list[Row] | None = None,
    ) -> list[Row]:
        """The rows ``where`` is true of, in ``order_by`` order (else stored order)."""
        rows = [
            row
            for row in (self.rows[table] if among is None else among)
            if self.truth(table, row, where or {}) is True
        ]
        if not order_by:
            return rows
        keys: list[tuple[Callable[[Row], Any], str]] = []
        for item in order_by:
            for key, direction in item.items():
                if isinstance(direction, Mapping):  # an object relationship's column
                    for column, inner in direction.items():
                        keys.append((self._related_value(table, key, column), inner))
                else:
                    keys.append((itemgetter(key), direction))
        ordered = sorted(rows, key=lambda row: row["id"])  # the tie-break, applied first
        for value, direction in reversed(keys):
            ordered = _sorted(ordered, value, direction)
        return ordered

    def _related_value(self, table: str, name: str, column: str) -> Callable[[Row], Any]:
        def value(row: Row) -> Any:
            related = self._related(table, name, row)
            return related[0][1][column] if related else None

        return value


def _sorted(rows: list[Row], value: Callable[[Row], Any], direction: str) -> list[Row]:
    descending = direction.startswith("desc")
    nulls_first = direction.endswith("nulls_first") or direction == "desc"
    # With reverse=True the larger key comes first; sorted() stays stable either way.
    null_high = nulls_first == descending

    def key(row: Row) -> tuple[bool, Any]:
        v = value(row)
        return ((v is None) == null_high, v)

    return sorted(rows, key=key, reverse=descending)
