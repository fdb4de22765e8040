"""Every comparison operator on every column of every table, checked against an oracle.

For each column the test reads all rows, picks sample values from them, and asks the server
for each operator in one request (one alias per operator). The expected rows are computed in
Python with SQL's rules (a comparison with NULL is never true). Together with the
hand-written cases this pins down the whole filter grammar on both databases.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from backend.models import TABLES, Kind


def _value(kind: Kind, value: Any) -> Any:
    """A response value in a form Python compares the way SQL does."""
    if value is None:
        return None
    if kind is Kind.TIMESTAMPTZ:
        return dt.datetime.fromisoformat(value)
    if kind is Kind.UUID:
        return uuid.UUID(value)
    return value


def _like(pattern: str, flags: int = 0) -> Callable[[Any], bool]:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return lambda v: v is not None and re.fullmatch(regex, v, flags | re.DOTALL) is not None


def _cases(kind: Kind, values: list[Any]) -> list[tuple[str, Any, Callable[[Any], bool]]]:
    """(operator, argument as sent, predicate on a Python value) for sample arguments."""
    present = [v for v in values if v is not None]
    if not present:
        present = [None]
    key = (lambda v: json.dumps(v, sort_keys=True)) if kind is Kind.JSONB else _value_key(kind)
    ordered = sorted({json.dumps(v, sort_keys=True): v for v in present}.values(), key=key)
    middle, first, last = ordered[len(ordered) // 2], ordered[0], ordered[-1]
    py = lambda v: _value(kind, v)  # noqa: E731
    cases: list[tuple[str, Any, Callable[[Any], bool]]] = [
        ("_is_null", True, lambda v: v is None),
        ("_is_null", False, lambda v: v is not None),
    ]
    if middle is None:
        return cases
    m = py(middle)
    cases += [
        ("_eq", middle, lambda v: v is not None and v == m),
        ("_neq", middle, lambda v: v is not None and v != m),
        ("_in", [first, last], lambda v: v is not None and v in (py(first), py(last))),
        ("_nin", [first, last], lambda v: v is not None and v not in (py(first), py(last))),
    ]
    if kind.ordered:
        cases += [
            ("_gt", middle, lambda v: v is not None and v > m),
            ("_gte", middle, lambda v: v is not None and v >= m),
            ("_lt", middle, lambda v: v is not None and v < m),
            ("_lte", middle, lambda v: v is not None and v <= m),
        ]
    if kind is Kind.STRING:
        prefix = middle[:3] + "%"
        cases += [
            ("_like", prefix, _like(prefix)),
            ("_like", "%" + middle[-2:].upper(), _like("%" + middle[-2:].upper())),
            ("_ilike", prefix.upper(), _like(prefix.upper(), re.IGNORECASE)),
        ]
    return cases


def _value_key(kind: Kind) -> Callable[[Any], Any]:
    return lambda v: _value(kind, v)


@pytest.mark.parametrize("table", list(TABLES))
def test_every_operator_on_every_column(seeded: Any, table: str) -> None:
    server, _ = seeded
    meta = TABLES[table]
    rows = server.data(f"{{ {table} {{ {' '.join(meta.columns)} }} }}")[table]
    assert rows, f"the dataset has no {table} rows to test against"
    for name, column in meta.columns.items():
        cases = _cases(column.kind, [row[name] for row in rows])
        scalar = column.kind.value
        declarations, fields, variables = [], [], {}
        for i, (operator, argument, _) in enumerate(cases):
            graphql_type = f"[{scalar}!]" if operator in ("_in", "_nin") else scalar
            if operator == "_is_null":
                graphql_type = "Boolean"
            declarations.append(f"$v{i}: {graphql_type}")
            fields.append(f"q{i}: {table}(where: {{{name}: {{{operator}: $v{i}}}}}) {{ id }}")
            variables[f"v{i}"] = argument
        query = f"query ({', '.join(declarations)}) {{ {' '.join(fields)} }}"
        answer = server.data(query, variables)
        for i, (operator, argument, predicate) in enumerate(cases):
            expected = sorted(
                row["id"] for row in rows if predicate(_value(column.kind, row[name]))
            )
            got = sorted(row["id"] for row in answer[f"q{i}"])
            assert got == expected, f"{table}.{name} {operator} {argument!r}"
