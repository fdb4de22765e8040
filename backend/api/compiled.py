"""The compiled read path: a read-only query answered by ONE SQL statement.

A query whose operation selects only the generated read fields (``T``, ``T_by_pk``,
``T_aggregate``, their columns and relationships, ``__typename``) is answered here. The
document is parsed and validated against the Strawberry schema as usual. Its selection, with
fragments, aliases, variables and ``@include``/``@skip`` resolved, becomes a
``models.read_tree`` tree, which ``models.json_reads`` compiles into one statement. The
database builds the whole ``data`` JSON, and that text is sent as it comes, with no Python
work per row or field.

Everything else goes to Strawberry's executor, which stays the reference implementation:
mutations, subscriptions, introspection, invalid documents, and every input the executor
answers with an error (a malformed uuid, a null in a filter, a negative limit). Errors are
thus worded and placed in one place only. A differential test holds the two paths to the
same answers on both databases.

Not so a request over a limit (``backend.api.limits``): it is refused here, before any SQL,
and a statement the database stopped at the statement timeout is refused too. Both raise
``LimitExceeded``: the executor would refuse the first in the same words, and redoing the
second its own way would only take longer.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    parse,
    validate,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from backend.api.limits import LimitExceeded, Limits, statement_timeout
from backend.api.measure import check_document, check_request
from backend.api.tables import plain
from backend.errors import InputError
from backend.models import TABLES, Database, Kind, json_reads
from backend.models.read_tree import (
    Count,
    Fields,
    Obj,
    Row,
    Rows,
    Text,
    Unsupported,
    Value,
    json_path,
)

logger = logging.getLogger("runview.server")


@dataclass(frozen=True)
class _Operation:
    """A valid query operation and the fragments its document defines."""

    node: OperationDefinitionNode
    fragments: dict[str, FragmentDefinitionNode]


class CompiledReads:
    """Answers read-only queries in one statement, or says ``None``: use the executor."""

    # The scope a key needs for this path to answer (backend.api.auth).
    scope = "read"

    def __init__(
        self, schema: GraphQLSchema, cache_size: int = 512, limits: Limits | None = None
    ) -> None:
        self.schema = schema
        self.limits = limits  # None: none checked (a caller of ``tree`` that is not a server)
        # Parsing and validating cost more than building the SQL; clients resend few documents.
        self._prepare = functools.lru_cache(maxsize=cache_size)(self._prepare_uncached)

    async def execute(
        self,
        db: Database,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> str | None:
        """The JSON text of the answer's ``data``, or ``None`` if the executor must answer."""
        try:
            tree = self.tree(query, variables, operation_name)
            if tree is None or all(isinstance(node, Text) for _, node in tree.fields):
                return None  # not a plain read; or only __typename, which needs no database
            async with db.connect_single() as conn:
                return await json_reads.read_json(conn, tree)
        except LimitExceeded:
            raise
        except TimeoutError as error:  # the statement timeout: answered, not tried again
            raise statement_timeout(self.limits, error) from None
        except (InputError, Unsupported):
            return None  # the executor words the error, or builds what one statement cannot
        except ConnectionError:  # the database is down: 503 (backend.app), not a second try
            raise
        except Exception:  # a fault: the executor answers (and reports) it its own way
            logger.exception("the compiled read path failed; answering with the executor")
            return None

    def tree(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> Obj | None:
        """The ``read_tree`` tree of the query, or ``None`` if it is not a valid plain read.

        Raises:
            InputError, Unsupported: an argument the executor must judge, or a shape one
                statement cannot build.
            LimitExceeded: the query asks for more than the limits allow.
        """
        operation = self._prepare(query, operation_name)
        if operation is None:
            return None
        if self.limits is not None:  # on the raw variables, before coercing them
            check_request(self.schema, operation.node, operation.fragments, variables, self.limits)
        values = get_variable_values(
            self.schema, operation.node.variable_definitions or [], dict(variables or {})
        )
        if isinstance(values, list):
            raise Unsupported("invalid variables")  # the executor words the errors
        default_rows = None if self.limits is None else self.limits.default_rows
        walker = _Walker(self.schema, operation.fragments, values, default_rows)
        return Obj(walker.root(operation.node.selection_set))

    def _prepare_uncached(self, query: str, operation_name: str | None) -> _Operation | None:
        chosen = valid_operation(self.schema, query, operation_name, self.limits)
        if chosen is None or chosen[1].operation is not OperationType.QUERY:
            return None
        document, operation = chosen
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        return _Operation(operation, fragments)


def valid_operation(
    schema: GraphQLSchema, query: str, operation_name: str | None, limits: Limits | None = None
) -> tuple[DocumentNode, OperationDefinitionNode] | None:
    """The document, if it parses and validates, and its one operation to run (by name, or
    the only one); ``None`` otherwise: the executor says what is wrong.

    Raises:
        LimitExceeded: the document is too deep or too wide for ``limits`` (checked before
            validating it, which costs more the wider it is).
    """
    try:
        document = parse(query)
    except GraphQLError:
        return None
    if limits is not None:
        check_document(document, limits)
    if validate(schema, document):
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    return (document, operations[0]) if len(operations) == 1 else None


class _Walker:
    """Turns a validated selection into a ``read_tree`` tree, the way the executor reads it."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        values: VariableValues,
        default_rows: int | None = None,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.values = values  # what graphql-core's argument coercion takes
        self.variables = values.coerced
        self.default_rows = default_rows  # what a list without a limit answers at most

    def root(self, selection_set: SelectionSetNode) -> Fields:
        query_type = self.schema.query_type
        assert query_type is not None
        fields: list[tuple[str, Any]] = []
        for key, nodes in self._collect([selection_set]).items():
            name = nodes[0].name.value
            if name == "__typename":
                fields.append((key, Text(query_type.name)))
                continue
            definition = query_type.fields.get(name)
            if definition is None:  # __schema, __type: introspection is the executor's
                raise Unsupported(f"the root field {name!r}")
            arguments = self._arguments(definition, nodes[0])
            if name in TABLES:
                rows = Rows(
                    name, self._row_fields(name, nodes), cap=self._cap(arguments), **arguments
                )
                fields.append((key, rows))
            elif name.endswith("_by_pk") and name.removesuffix("_by_pk") in TABLES:
                table = name.removesuffix("_by_pk")
                fields.append((key, Row(table, self._row_fields(table, nodes), **arguments)))
            elif name.endswith("_aggregate") and name.removesuffix("_aggregate") in TABLES:
                table = name.removesuffix("_aggregate")
                fields.append((key, self._aggregate(table, nodes, arguments.get("where"))))
            else:
                raise Unsupported(f"the root field {name!r}")
        return tuple(fields)

    def _row_fields(self, table: str, parents: list[FieldNode]) -> Fields:
        info = TABLES[table]
        object_type = self.schema.get_type(table)
        fields: list[tuple[str, Any]] = []
        for key, nodes in self._collect(_selections(parents)).items():
            name = nodes[0].name.value
            if name == "__typename":
                fields.append((key, Text(table)))
            elif name in info.columns:
                path = None
                if info.columns[name].kind is Kind.JSONB:
                    definition = object_type.fields[name]  # type: ignore[union-attr]
                    text = self._arguments(definition, nodes[0]).get("path")
                    path = None if text is None else json_path(text)
                fields.append((key, Value(name, path)))
            elif name in info.relationships:
                relationship = info.relationships[name]
                sub_fields = self._row_fields(relationship.target, nodes)
                if relationship.many:
                    definition = object_type.fields[name]  # type: ignore[union-attr]
                    arguments = self._arguments(definition, nodes[0])
                    cap = self._cap(arguments)
                    node: Any = Rows(
                        relationship.target, sub_fields, via=relationship, cap=cap, **arguments
                    )
                else:
                    node = Row(relationship.target, sub_fields, via=relationship)
                fields.append((key, node))
            else:
                raise Unsupported(f"the field {table}.{name}")
        return tuple(fields)

    def _aggregate(self, table: str, parents: list[FieldNode], where: Any) -> Obj:
        fields: list[tuple[str, Any]] = []
        for key, nodes in self._collect(_selections(parents)).items():
            if nodes[0].name.value == "__typename":
                fields.append((key, Text(f"{table}_aggregate")))
                continue
            inner: list[tuple[str, Any]] = []
            for inner_key, inner_nodes in self._collect(_selections(nodes)).items():
                if inner_nodes[0].name.value == "__typename":
                    inner.append((inner_key, Text(f"{table}_aggregate_fields")))
                else:
                    inner.append((inner_key, Count(table, where)))
            fields.append((key, Obj(tuple(inner))))
        return Obj(tuple(fields))

    def _cap(self, arguments: dict[str, Any]) -> int | None:
        return self.default_rows if arguments.get("limit") is None else None

    def _arguments(self, definition: GraphQLField, node: FieldNode) -> dict[str, Any]:
        """The field's arguments as plain data, coerced as the executor coerces them."""
        try:
            arguments = get_argument_values(definition, node, self.values)
        except GraphQLError as error:
            raise Unsupported(f"the arguments of {node.name.value}: {error.message}") from None
        return {name: plain(value) for name, value in arguments.items()}

    def _collect(self, selection_sets: Iterable[SelectionSetNode]) -> dict[str, list[FieldNode]]:
        """Fields by response key, in order, through fragments and @include/@skip (the
        spec's CollectFields; every type here is an object type, so every fragment that
        validated applies)."""
        fields: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()

        def visit(selection_set: SelectionSetNode) -> None:
            for selection in selection_set.selections:
                if not self._included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    visit(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    if name not in visited:
                        visited.add(name)
                        visit(self.fragments[name].selection_set)

        for selection_set in selection_sets:
            visit(selection_set)
        return fields

    def _included(self, selection: Any) -> bool:
        for directive in selection.directives or ():
            name = directive.name.value
            if name not in ("include", "skip") or len(directive.arguments) != 1:
                raise Unsupported(f"the directive @{name}")
            value = directive.arguments[0].value
            if isinstance(value, VariableNode):
                condition = self.variables.get(value.name.value)
            else:
                condition = isinstance(value, BooleanValueNode) and value.value
            if not isinstance(condition, bool):
                raise Unsupported(f"@{name} without a boolean")
            if condition == (name == "skip"):
                return False
        return True


def _selections(nodes: list[FieldNode]) -> list[SelectionSetNode]:
    return [node.selection_set for node in nodes if node.selection_set is not None]
