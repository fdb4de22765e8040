"""Measuring a request against the limits (``backend.api.limits``), before any work.

``check_document`` measures the document as written: its depth (fragments expanded where
spread, introspection not counted), its aliases and its fields. ``check_request`` measures
one operation with its raw JSON variables, before graphql-core coerces them: the length of
every input list (proposals, log records, ``_in`` values), the mapped children asked for, each
list field's ``limit``, and the cost, the most rows one chain of nested lists may return.
``LimitsExtension`` runs both on the executor's path and turns what the database stopped
(the statement timeout) or the executor counted (the answer's rows) into ``LimitExceeded``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType as StrawberryOperation

from backend.api.limits import Limits, limits_of, over, statement_timeout

# (input type, field) -> the limit on the length of that list; other lists: max_list_items.
_BATCHES = {
    ("set_flow_run_states_input", "states"): ("max_states_per_request", "states"),
    ("set_task_run_states_input", "states"): ("max_states_per_request", "states"),
    ("write_run_logs_input", "logs"): ("max_logs_per_request", "log records"),
}
_MAPPED = ("get_or_create_mapped_task_run_children_input", "max_map_index")
# Introspection answers from the schema, not the database: its nesting is not counted.
_INTROSPECTION = frozenset({"__schema", "__type"})


def check_document(document: DocumentNode, limits: Limits) -> None:
    """Refuse a document too deep, or with too many aliases or fields, whatever its variables.

    Raises:
        LimitExceeded: the first limit the document is over.
    """
    shape = _Shape(fragments_of(document))
    depth = fields = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            levels, count = shape.measure(definition.selection_set)
            depth, fields = max(depth, levels), fields + count
    for name in shape.fragments:  # fragments no operation spreads still count their aliases
        shape.fragment(name)
    if depth > limits.max_depth:
        what = f"A query nested {depth} levels deep"
        raise over("max_depth", limits.max_depth, what, "ask for less nesting")
    if shape.aliases > limits.max_aliases:
        what = f"A document with {shape.aliases} aliases"
        raise over("max_aliases", limits.max_aliases, what, "send several requests")
    if fields > limits.max_fields:
        what = f"A document of {fields} fields (a fragment counted where it is spread)"
        raise over("max_fields", limits.max_fields, what, "send several requests")


def check_request(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any] | None,
    limits: Limits,
) -> None:
    """Refuse an operation whose inputs or answer would be too large, from its literals and
    its raw (uncoerced) variables: batches, list lengths, ``limit`` arguments and cost.

    Raises:
        LimitExceeded: the first limit the operation is over.
    """
    walk = _Request(schema, fragments, operation, variables or {}, limits)
    root = schema.get_root_type(operation.operation)
    if root is None:
        return  # the executor says the schema has no such operation
    walk.arguments(operation.selection_set, root)
    cost = walk.cost(operation.selection_set, root)
    if cost > limits.max_cost:
        what = f"A query whose nested lists may return {cost} rows"
        advice = "give the nested lists a smaller limit"
        raise over("max_cost", limits.max_cost, what, advice)


def check(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    limits: Limits,
) -> None:
    """Both checks, on the operation ``operation_name`` picks (each one, if unclear)."""
    check_document(document, limits)
    fragments = fragments_of(document)
    for operation in document.definitions:
        if isinstance(operation, OperationDefinitionNode) and (
            operation_name is None or (operation.name and operation.name.value == operation_name)
        ):
            check_request(schema, operation, fragments, variables, limits)


class LimitsExtension(SchemaExtension):
    """The limits on the executor's path: checked at validation (before graphql-core's own
    rules, and before variables are coerced); a statement stopped at the timeout becomes
    ``LimitExceeded`` in the answer, which then holds no data for a query."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        limits = limits_of(context.context)
        if limits is not None and context.graphql_document is not None:
            check(
                context.schema._schema,
                context.graphql_document,
                context.operation_name,
                context.variables,
                limits,
            )
        yield

    def on_execute(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None:
            return
        errors = list(result.errors or [])
        timeouts = [e for e in errors if isinstance(e.original_error, TimeoutError)]
        over_budget = getattr(self.execution_context.context, "over_budget", None)
        if over_budget is not None:
            first: GraphQLError = over_budget
        elif timeouts:
            limits = limits_of(self.execution_context.context)
            first = statement_timeout(limits, timeouts[0].original_error)
        else:
            return
        result.errors = [first, *(e for e in errors if e not in timeouts)]
        if self.execution_context.operation_type is not StrawberryOperation.MUTATION:
            result.data = None  # what was read is not the answer
        # A mutation keeps the answers of the fields that ran before: they are committed.


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


class _Shape:
    """Depth and fields of selections, fragments expanded where spread (each measured once),
    and the aliases of the document as written."""

    def __init__(self, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.aliases = 0
        self._measured: dict[str, tuple[int, int]] = {}
        self._visiting: set[str] = set()

    def fragment(self, name: str) -> tuple[int, int]:
        if name in self._measured:
            return self._measured[name]
        if name in self._visiting or name not in self.fragments:
            return 0, 0  # a cycle or an unknown fragment: validation says so
        self._visiting.add(name)
        self._measured[name] = self.measure(self.fragments[name].selection_set)
        self._visiting.discard(name)
        return self._measured[name]

    def measure(self, selection_set: SelectionSetNode) -> tuple[int, int]:
        """(levels of nesting below this selection, fields in it)."""
        depth = fields = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                fields += 1
                self.aliases += selection.alias is not None
                if selection.selection_set is not None:
                    levels, count = self.measure(selection.selection_set)
                    fields += count
                    if selection.name.value not in _INTROSPECTION:
                        depth = max(depth, levels + 1)
            elif isinstance(selection, InlineFragmentNode):
                levels, count = self.measure(selection.selection_set)
                depth, fields = max(depth, levels), fields + count
            elif isinstance(selection, FragmentSpreadNode):
                levels, count = self.fragment(selection.name.value)
                depth, fields = max(depth, levels), fields + count
        return depth, fields


class _Request:
    """One operation's arguments and list fields, read from its literals and raw variables."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        operation: OperationDefinitionNode,
        variables: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.defaults = {
            d.variable.name.value: d.default_value
            for d in operation.variable_definitions or ()
            if d.default_value is not None
        }
        self.limits = limits
        self._checked: set[str] = set()

    def _fields(
        self, selection_set: SelectionSetNode, parent: GraphQLObjectType, seen: set[str]
    ) -> Iterator[tuple[FieldNode, GraphQLObjectType, Any]]:
        """The fields of a selection with the type they are on and their definition, into
        inline fragments and into each fragment spread not in ``seen``."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                definition = parent.fields.get(selection.name.value)
                if definition is not None:  # __typename, or unknown: validation's business
                    yield selection, parent, definition
            elif isinstance(selection, InlineFragmentNode):
                yield from self._fields(selection.selection_set, self._on(selection, parent), seen)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None and selection.name.value not in seen:
                    seen.add(selection.name.value)
                    yield from self._fields(
                        fragment.selection_set, self._on(fragment, parent), seen
                    )

    def _on(self, fragment: Any, parent: GraphQLObjectType) -> GraphQLObjectType:
        condition = fragment.type_condition
        named = self.schema.get_type(condition.name.value) if condition else parent
        return named if isinstance(named, GraphQLObjectType) else parent

    def arguments(self, selection_set: SelectionSetNode, parent: GraphQLObjectType) -> None:
        """Check every argument value in the operation (each fragment once)."""
        for node, _, definition in self._fields(selection_set, parent, self._checked):
            for argument in node.arguments or ():
                spec = definition.args.get(argument.name.value)
                if spec is not None:
                    self._node(argument.value, spec.type, node.name.value, argument.name.value)
            child = get_named_type(definition.type)
            if node.selection_set is not None and isinstance(child, GraphQLObjectType):
                self.arguments(node.selection_set, child)

    def cost(self, selection_set: SelectionSetNode, parent: GraphQLObjectType) -> int:
        """The most rows one chain of nested lists under this selection may return (1: none)."""
        most = 1
        for node, on, definition in self._fields(selection_set, parent, set()):
            child = get_named_type(definition.type)
            if node.selection_set is None or not isinstance(child, GraphQLObjectType):
                continue
            below = self.cost(node.selection_set, child)
            if _is_list(definition.type):
                below *= self._rows(node, on)
            most = max(most, below)
        return most

    def _rows(self, node: FieldNode, parent: GraphQLObjectType) -> int:
        for argument in node.arguments or ():
            if argument.name.value == "limit":
                value = self._int(argument.value)
                if value is not None and value > self.limits.max_rows:
                    what = f"limit {value} on {parent.name}.{node.name.value}"
                    advice = "page through the rows with offset"
                    raise over("max_rows", self.limits.max_rows, what, advice)
                if value is not None:
                    return max(value, 0)  # a negative limit is refused as bad input
        return self.limits.default_rows

    def _int(self, value: ValueNode) -> int | None:
        if isinstance(value, VariableNode):
            name = value.name.value
            if name not in self.variables:
                default = self.defaults.get(name)
                return None if default is None else self._int(default)
            raw = self.variables[name]
            return raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        return int(value.value) if isinstance(value, IntValueNode) else None

    def _node(self, value: ValueNode, kind: GraphQLInputType, owner: str, field: str) -> None:
        """Check a literal (or the variable it names) against the limits of its position."""
        if isinstance(value, VariableNode):
            name = value.name.value
            if name in self.variables:
                self._raw(self.variables[name], kind, owner, field)
            elif name in self.defaults:
                self._node(self.defaults[name], kind, owner, field)
            return
        kind = _nullable(kind)
        if isinstance(kind, GraphQLList):
            items = value.values if isinstance(value, ListValueNode) else [value]
            self._length(len(items), owner, field)
            if _holds_limits(kind.of_type):
                for item in items:
                    self._node(item, kind.of_type, owner, field)
        elif isinstance(kind, GraphQLInputObjectType) and isinstance(value, ObjectValueNode):
            for child in value.fields:
                spec = kind.fields.get(child.name.value)
                if spec is not None:
                    self._node(child.value, spec.type, kind.name, child.name.value)
        elif isinstance(value, IntValueNode):
            self._number(int(value.value), owner, field)

    def _raw(self, value: Any, kind: GraphQLInputType, owner: str, field: str) -> None:
        """Check a variable's raw JSON value against the limits of its position."""
        kind = _nullable(kind)
        if isinstance(kind, GraphQLList):
            items = value if isinstance(value, list) else [value]
            self._length(len(items), owner, field)
            if _holds_limits(kind.of_type):
                for item in items:
                    self._raw(item, kind.of_type, owner, field)
        elif isinstance(kind, GraphQLInputObjectType) and isinstance(value, dict):
            for key, item in value.items():
                spec = kind.fields.get(key)
                if spec is not None:
                    self._raw(item, spec.type, kind.name, key)
        elif isinstance(value, int) and not isinstance(value, bool):
            self._number(value, owner, field)

    def _length(self, length: int, owner: str, field: str) -> None:
        limit, what = _BATCHES.get((owner, field), ("max_list_items", ""))
        maximum = getattr(self.limits, limit)
        if length <= maximum:
            return
        if what:
            message = f"{length} {what} in one request"
            raise over(limit, maximum, message, "send them in several requests")
        message = f"A list of {length} values for {owner}.{field}"
        raise over(limit, maximum, message, "send several requests")

    def _number(self, value: int, owner: str, field: str) -> None:
        maximum = self.limits.max_mapped_children
        if (owner, field) == _MAPPED and value + 1 > maximum:
            what = f"max_map_index {value} is out of range: a map of {value + 1} children"
            raise over("max_mapped_children", maximum, what, "map fewer items at once")


def _nullable(kind: Any) -> Any:
    return kind.of_type if isinstance(kind, GraphQLNonNull) else kind


def _is_list(kind: Any) -> bool:
    return isinstance(_nullable(kind), GraphQLList)


@functools.cache
def _holds_limits(kind: Any) -> bool:
    """Whether a value of input type ``kind`` can hold a list or a mapped-children count (if
    not, the items of a list of it need no look: 10,000 proposals are not walked)."""
    pending, seen = [_nullable(kind)], set()
    while pending:
        current = pending.pop()
        if isinstance(current, GraphQLList):
            return True
        if not isinstance(current, GraphQLInputObjectType) or current.name in seen:
            continue
        seen.add(current.name)
        for name, spec in current.fields.items():
            if (current.name, name) == _MAPPED or _is_list(spec.type):
                return True
            pending.append(get_named_type(spec.type))
    return False


__all__ = ["LimitsExtension", "check", "check_document", "check_request", "fragments_of"]
