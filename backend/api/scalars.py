"""The Hasura scalars (``uuid``, ``timestamptz``, ``jsonb``) and what any text may hold.

Parse errors raise ``InputError`` with the offending value, so a client that sends
``"not-a-uuid"`` is told exactly that, and the message survives error masking.

Text rules, the same on both databases (``check_text``, ``check_name``):

- no NUL character: PostgreSQL's text and jsonb cannot hold one (SQLite could, and would
  then disagree with PostgreSQL), and no lone surrogate, which is not UTF-8. They are
  refused, never stripped or replaced, as a proposed state's are (``check_storable``);
- a name, slug, label, tag or key is at most ``MAX_NAME_BYTES`` in UTF-8: some are indexed,
  and PostgreSQL refuses an index entry over 2,704 bytes.

A ``timestamptz`` is one both databases store once its offset is applied: from
``0001-01-01T00:00:00Z`` to ``9999-12-31T23:59:59.999999Z``.

The endpoint applies the text rules to a whole request before any path runs it: every String
and jsonb value of its variables, by their declared types (``variable_problem``), and of its
literals (``literals_problem``), but for the records a mutation judges one by one
(``JUDGED_ALONE``); and it refuses values nested deeper than ``MAX_NESTING``. The resolvers
check the lengths of the names they store (``check_name``).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import uuid
from collections.abc import Mapping
from typing import Any, NewType

import strawberry
from graphql import (
    ArgumentNode,
    DocumentNode,
    FloatValueNode,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    ListValueNode,
    ObjectFieldNode,
    ObjectValueNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableDefinitionNode,
    Visitor,
    get_named_type,
    visit,
)
from graphql.language.visitor import BREAK
from strawberry.types.scalar import ScalarDefinition

from backend.errors import InputError, shown

Jsonb = NewType("Jsonb", object)

# Bytes of UTF-8 in a name, slug, label, tag or key: 1,000 ASCII characters, and safely under
# PostgreSQL's btree entry limit (2,704 bytes) whatever the characters.
MAX_NAME_BYTES = 1_000

# Objects and lists within each other, in variables and in literals. Far deeper than any
# filter or parameters people write; shallow enough that nothing on the way (graphql-core's
# coercion, the filter compiler, SQLAlchemy's) runs out of stack.
MAX_NESTING = 32
# Input fields whose records the mutation judges one by one, each refused alone with its
# reason (backend.models.logs, backend.models.states): their text is left to it.
JUDGED_ALONE = frozenset(
    {
        ("run_log_input", "name"),
        ("run_log_input", "message"),
        ("flow_run_state_proposal", "state"),
        ("task_run_state_proposal", "state"),
    }
)
_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)
_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)


def text_problem(text: str) -> str | None:
    """What makes ``text`` unstorable (to follow the text in a message), or ``None``."""
    if "\x00" in text:
        return "holds a NUL character (\\x00), which cannot be stored; remove or replace it."
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            return (
                f"holds a lone surrogate ({text[error.start]!r} at {error.start}), which is"
                " not UTF-8; remove or replace it."
            )
    return None


def check_text(value: str, where: str) -> None:
    """Refuse text a database cannot store (``where`` names it in the message)."""
    problem = text_problem(value)
    if problem is not None:
        raise InputError(f"{where} {shown(value)} {problem}")


def check_name(value: str | None, where: str) -> None:
    """Refuse a name, slug, label, tag or key that is unstorable or too long (``None``:
    not given, nothing to check)."""
    if value is None:
        return
    check_text(value, where)
    size = len(value) if value.isascii() else len(value.encode())
    if size > MAX_NAME_BYTES:
        raise InputError(
            f"{where} {shown(value)} is {size:,} bytes as UTF-8, over the limit of"
            f" {MAX_NAME_BYTES:,}; expected at most {MAX_NAME_BYTES:,} (ASCII characters are"
            " a byte each)."
        )


def check_names(values: list[str] | None, where: str) -> None:
    """``check_name`` for each item of a list (labels, tags)."""
    for i, value in enumerate(values or ()):
        check_name(value, f"{where}[{i}]")


def _parse_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, str) and len(value) == 36:
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InputError(
        f"{shown(value)} is not a uuid; expected 36 characters such as "
        "'8e445d74-9ca6-425b-98e5-72754b7ea174'."
    )


def _parse_timestamptz(value: Any) -> dt.datetime:
    parsed = None
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    if parsed is None:
        raise InputError(
            f"{shown(value)} is not a timestamptz; expected ISO 8601 such as"
            " '2021-05-12T18:00:01+00:00'."
        )
    # Hasura reads a timestamp without an offset as UTC; so does runview.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)
    try:
        parsed.astimezone(dt.UTC)  # what both databases store; Python's own range ends there
    except OverflowError:
        raise InputError(
            f"{shown(value)} is outside the timestamps runview stores once its offset is"
            f" applied; expected from {_EARLIEST.isoformat()!r} to {_LATEST.isoformat()!r}"
            " (UTC)."
        ) from None
    return parsed


def holds_text(kind: Any) -> bool:
    """Whether a value of input type ``kind`` can hold text to check (outside the records
    judged alone)."""
    return _named_holds_text(get_named_type(kind))


@functools.cache  # on the schema's named types only: wrappers are made anew per request
def _named_holds_text(kind: Any) -> bool:
    pending, seen = [kind], set()
    while pending:
        current = get_named_type(pending.pop())
        if isinstance(current, GraphQLScalarType) and current.name in ("String", "jsonb"):
            return True
        if isinstance(current, GraphQLInputObjectType) and current.name not in seen:
            seen.add(current.name)
            pending += [
                spec.type
                for name, spec in current.fields.items()
                if (current.name, name) not in JUDGED_ALONE
            ]
    return False


def variable_problem(value: Any, kind: GraphQLInputType, path: str) -> str | None:
    """What is wrong with the text in a variable's raw value, read as ``kind``."""
    pending: list[tuple[Any, Any, str]] = [(value, kind, path)]
    while pending:
        value, kind, path = pending.pop()
        if isinstance(kind, GraphQLNonNull):
            kind = kind.of_type
        if isinstance(kind, GraphQLList):
            items = value if isinstance(value, list) else [value]
            pending += [(item, kind.of_type, f"{path}[{i}]") for i, item in enumerate(items)]
        elif isinstance(kind, GraphQLInputObjectType) and isinstance(value, dict):
            for key, item in value.items():
                spec = kind.fields.get(key)
                if spec is None:  # unknown: coercion names it, so its name must be text
                    problem = text_problem(key) if isinstance(key, str) else None
                    if problem is not None:
                        return f"a field name of variable {path} {shown(key)} {problem}"
                elif (kind.name, key) not in JUDGED_ALONE and holds_text(spec.type):
                    pending.append((item, spec.type, f"{path}.{key}"))
        elif isinstance(kind, GraphQLScalarType) and kind.name == "jsonb":
            problem = _json_problem(value, path)
            if problem is not None:
                return problem
        elif isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                return f"variable {path} {shown(value)} {problem}"
    return None


def _json_problem(value: Any, path: str) -> str | None:
    """What is wrong with the text of a JSON value (keys too), named by where it is."""
    pending = [(value, path)]
    while pending:
        value, path = pending.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                return f"variable {path} {shown(value)} {problem}"
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = text_problem(key)
                if problem is not None:
                    return f"a key of variable {path} {shown(key)} {problem}"
                pending.append((item, f"{path}.{key}"))
        elif isinstance(value, list):
            pending += [(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return None


def too_deep(variables: Mapping[str, Any]) -> str | None:
    """The name of a variable nested deeper than ``MAX_NESTING``, or ``None``."""
    for name, value in variables.items():
        if type(value) in _CONTAINERS and not _within(value, MAX_NESTING):
            return str(name)
    return None


_CONTAINERS = (dict, list)  # what json.loads makes


def _within(value: Any, levels: int) -> bool:
    """Whether a JSON object or array nests at most ``levels`` deep. Recursive, as the
    fastest walk is (10,000 proposals: 20 ms), and never deeper than ``levels``."""
    if levels == 0:
        return False
    for item in value.values() if type(value) is dict else value:
        if type(item) in _CONTAINERS and not _within(item, levels - 1):
            return False
    return True


def literals_problem(schema: GraphQLSchema, document: DocumentNode) -> str | None:
    """What is wrong with the document's literal values: text no database stores (outside
    the records judged alone), a number beyond a float, nesting beyond ``MAX_NESTING``."""
    type_info = TypeInfo(schema)
    walker = _Literals(type_info)
    visit(document, TypeInfoVisitor(type_info, walker))
    return walker.problem


class _Literals(Visitor):
    """Walks a document's literals with their input types; stops at the first problem."""

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.problem: str | None = None
        self.depth = 0
        # (input type, field) of the arguments and input fields around a value
        self.fields: list[tuple[str | None, str]] = []

    def _refuse(self, problem: str) -> Any:
        self.problem = problem
        return BREAK

    def enter_object_value(self, node: ObjectValueNode, *_: Any) -> Any:
        return self._nest()

    def enter_list_value(self, node: ListValueNode, *_: Any) -> Any:
        return self._nest()

    def _nest(self) -> Any:
        self.depth += 1
        if self.depth > MAX_NESTING:
            return self._refuse(
                f"A value in the document is nested more than {MAX_NESTING} levels deep"
                f" (objects and lists within each other); expected at most {MAX_NESTING}."
            )
        return None

    def leave_object_value(self, node: ObjectValueNode, *_: Any) -> None:
        self.depth -= 1

    def leave_list_value(self, node: ListValueNode, *_: Any) -> None:
        self.depth -= 1

    def enter_variable_definition(self, node: VariableDefinitionNode, *_: Any) -> None:
        self.fields.append((None, f"the default of ${node.variable.name.value}"))

    def leave_variable_definition(self, node: VariableDefinitionNode, *_: Any) -> None:
        self.fields.pop()

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.fields.append((None, node.name.value))

    def leave_argument(self, node: ArgumentNode, *_: Any) -> None:
        self.fields.pop()

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
        owner = get_named_type(self.type_info.get_parent_input_type())
        self.fields.append((owner.name if owner else None, node.name.value))

    def leave_object_field(self, node: ObjectFieldNode, *_: Any) -> None:
        self.fields.pop()

    def enter_string_value(self, node: StringValueNode, *_: Any) -> Any:
        if any(field in JUDGED_ALONE for field in self.fields):
            return None
        problem = text_problem(node.value)
        if problem is None:
            return None
        where = ".".join(f for _, f in self.fields)
        return self._refuse(f"{where} {shown(node.value)} {problem}")

    def enter_float_value(self, node: FloatValueNode, *_: Any) -> Any:
        if math.isfinite(float(node.value)):
            return None
        return self._refuse(
            f"The number {shown(node.value)} is beyond what a 64-bit float holds; expected"
            " a finite number (at most about 1.8e308)."
        )


SCALARS: dict[object, ScalarDefinition] = {
    uuid.UUID: strawberry.scalar(
        name="uuid", serialize=str, parse_value=_parse_uuid, description="A UUID, as text."
    ),
    dt.datetime: strawberry.scalar(
        name="timestamptz",
        serialize=dt.datetime.isoformat,
        parse_value=_parse_timestamptz,
        description="A point in time, ISO 8601 with a UTC offset.",
    ),
    Jsonb: strawberry.scalar(name="jsonb", description="Any JSON value."),
}
