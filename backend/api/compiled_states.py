"""The compiled path for state proposals: ``set_task_run_states`` and ``set_flow_run_states``
without Strawberry's per-field execution.

A running flow sends these two mutations more than anything else: two per task run, in
batches (bench B3). Executing one through Strawberry costs more in argument conversion and
field completion than judging its proposals (bench B2). So a mutation of exactly one of these
fields, selecting only ``state_change`` fields (aliases and ``__typename`` allowed) with no
fragments or directives, is answered here:

- the document is parsed and validated against the schema as usual (cached);
- the ``input`` argument is coerced by graphql-core, as the executor coerces it;
- the proposals go through ``api.states.judge``, as the resolvers' do;
- the answer is built in the selection's order and shape, with the executor's formatting.

Everything else, and every input the executor would answer with an error, goes to the
executor (``None``), which stays the reference; ``tests/backend/api/test_compiled_states.py``
holds the two to the same answers. A fault inside the transaction falls back too: it was
rolled back, so the executor's attempt is the only one that counts. Once committed, an answer
is never recomputed.

The limits (``backend.api.limits``, ``measure``) are checked as the executor checks them:
the document before validating it, the batch before coercing it. A batch over its limit goes to the
executor like any input it refuses: it refuses it in the same words, before coercing it too.
A transaction the statement timeout stopped raises ``LimitExceeded``: tried again, it would
run into the timeout again.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson
from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from graphql.execution.values import get_argument_values, get_variable_values

from backend.api.compiled import valid_operation
from backend.api.limits import LimitExceeded, Limits, statement_timeout
from backend.api.measure import check_request
from backend.api.states import judge
from backend.errors import InputError
from backend.models import Database, Proposed

logger = logging.getLogger("runview.server")

# Mutation field -> (the kind of run, the proposal's id field).
FIELDS = {
    "set_task_run_states": ("task_run", "task_run_id"),
    "set_flow_run_states": ("flow_run", "flow_run_id"),
}
STATE_CHANGE_FIELDS = frozenset({"id", "status", "message", "state", "__typename"})


@dataclass(frozen=True)
class _Mutation:
    """A valid mutation of one state field, and what its answer selects."""

    operation: OperationDefinitionNode
    field: FieldNode
    # The payload's response keys: (key, "__typename") or (key, [(key, state_change field)]).
    selection: list[tuple[str, Any]]


class CompiledStates:
    """Answers state-proposal mutations directly, or says ``None``: use the executor."""

    # The scope a key needs for this path to answer (backend.api.auth).
    scope = "write"

    def __init__(
        self, schema: GraphQLSchema, cache_size: int = 64, limits: Limits | None = None
    ) -> None:
        self.schema = schema
        self.limits = limits
        self._prepare = functools.lru_cache(maxsize=cache_size)(self._prepare_uncached)

    async def execute(
        self,
        db: Database,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> str | None:
        """The JSON text of the answer's ``data``, or ``None`` if the executor must answer."""
        mutation = self._prepare(query, operation_name)
        if mutation is None:
            return None
        if self.limits is not None:  # 100,000 proposals: not coerced here
            try:
                check_request(self.schema, mutation.operation, {}, variables, self.limits)
            except LimitExceeded:
                return None  # the executor refuses them in its words, uncoerced too
        proposals = self._proposals(mutation, variables or {})
        if proposals is None:
            return None
        kind, _ = FIELDS[mutation.field.name.value]
        try:
            changes = await judge(db, kind, proposals)
        except InputError:
            return None  # raised before any write; the executor words it
        except ConnectionError:  # the database is down: 503 (backend.app), not a second try
            raise
        except TimeoutError as error:  # rolled back; the executor would time out as well
            raise statement_timeout(self.limits, error) from None
        except Exception:  # rolled back: the executor answers (and reports) it its own way
            logger.exception("the compiled state path failed; answering with the executor")
            return None
        return _answer(mutation, changes)

    def _prepare_uncached(self, query: str, operation_name: str | None) -> _Mutation | None:
        chosen = valid_operation(self.schema, query, operation_name, self.limits)
        if chosen is None:
            return None
        document, operation = chosen
        if len(document.definitions) != 1:
            return None  # other operations or fragments: the executor's business
        if operation.operation is not OperationType.MUTATION or operation.directives:
            return None
        roots = operation.selection_set.selections
        if len(roots) != 1 or not _plain(roots[0]) or roots[0].name.value not in FIELDS:
            return None
        selection = _payload(roots[0].selection_set)
        return None if selection is None else _Mutation(operation, roots[0], selection)

    def _proposals(self, mutation: _Mutation, inputs: Mapping[str, Any]) -> list[Proposed] | None:
        """The proposals, coerced as the executor coerces them;
        ``None`` if it would answer with an error."""
        coerced = get_variable_values(
            self.schema, mutation.operation.variable_definitions or [], dict(inputs)
        )
        if isinstance(coerced, list):
            return None
        definition = self.schema.mutation_type.fields[mutation.field.name.value]  # type: ignore[union-attr]
        try:
            arguments = get_argument_values(definition, mutation.field, coerced)
        except GraphQLError:
            return None
        _, id_field = FIELDS[mutation.field.name.value]
        return [
            Proposed(p[id_field], p["version"], p["state"], p.get("proposal_id"))
            for p in arguments["input"]["states"]
        ]


def _plain(node: object) -> TypeGuard[FieldNode]:
    """A field with no directives (aliases allowed)."""
    return isinstance(node, FieldNode) and not node.directives


def _payload(selection_set: SelectionSetNode | None) -> list[tuple[str, Any]] | None:
    """What ``{ states { ... } __typename }`` selects, or ``None`` if it is anything else or
    names a response key twice (the executor merges those)."""
    if selection_set is None:
        return None
    keys: list[tuple[str, Any]] = []
    for node in selection_set.selections:
        if not _plain(node) or node.arguments:
            return None
        key = node.alias.value if node.alias else node.name.value
        if node.name.value == "__typename":
            keys.append((key, "__typename"))
            continue
        if node.name.value != "states" or node.selection_set is None:
            return None
        inner: list[tuple[str, str]] = []
        for child in node.selection_set.selections:
            if not _plain(child) or child.arguments or child.name.value not in STATE_CHANGE_FIELDS:
                return None
            inner.append((child.alias.value if child.alias else child.name.value, child.name.value))
        if len({k for k, _ in inner}) != len(inner):
            return None
        keys.append((key, inner))
    if len({k for k, _ in keys}) != len(keys):
        return None
    return keys


def _answer(mutation: _Mutation, changes: list[Any]) -> str:
    """The answer's ``data``, keyed and ordered as the selection, formatted as the executor
    formats it (dashed uuids, enum names, the state as stored JSON)."""
    payload: dict[str, Any] = {}
    for key, what in mutation.selection:
        if what == "__typename":
            payload[key] = "set_states_payload"
            continue
        payload[key] = [
            {alias: _state_change_field(change, name) for alias, name in what} for change in changes
        ]
    field = mutation.field
    data = {field.alias.value if field.alias else field.name.value: payload}
    try:
        return orjson.dumps(data).decode()
    except TypeError:  # orjson refuses integers beyond 64 bits, which JSON states may hold
        return json.dumps(data)


def _state_change_field(change: Any, name: str) -> Any:
    if name == "id":
        return str(change.id)
    if name == "status":
        return change.status.value
    if name == "message":
        return change.message
    if name == "state":
        return change.state
    return "state_change"  # __typename
