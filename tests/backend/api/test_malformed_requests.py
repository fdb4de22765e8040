"""Every malformed request gets a clear refusal and changes nothing.

Each case of the corpus goes over real HTTP to a server over a seeded database, on both
databases. The answer must be a 4xx or a GraphQL error, never a 5xx; its message must show
the offending value (or field) and what was expected, never "Unexpected error."; the error
must carry its code and the request's id. And every table must be as it was: row counts and
a hash of every row, read straight from the database before and after.
"""

from __future__ import annotations

import json
import logging
import random
import string
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from backend.api.errors import bounded_formatter, log_config
from tests.conftest import Server, run, seed_database
from tests.snapshot import Snapshot, sync_url

# Placeholders a case's body may hold, replaced by ids of the seeded dataset.
IDS = {"<busy>": lambda data: str(data.flow_runs["busy"].id)}
CREATE_FLOW = "mutation ($n: String!) { create_flow(input: {name: $n}) { id } }"
FLOW_BY_NAME = "query ($n: String!) { flow(where: {name: {_eq: $n}}) { id } }"
CREATE_RUN = "mutation ($i: create_flow_run_input!) { create_flow_run(input: $i) { id } }"
TASK_RUN = (
    "mutation ($i: get_or_create_task_run_input!) { get_or_create_task_run(input: $i) { id } }"
)
SET_STATES = (
    "mutation ($s: [flow_run_state_proposal!]!) { set_flow_run_states(input: {states: $s})"
    " { states { status message } } }"
)


def _random_text(length: int, seed: int = 7) -> str:
    """Text PostgreSQL cannot compress into an index entry (a repeated letter it could)."""
    chooser = random.Random(seed)
    return "".join(chooser.choice(string.ascii_letters + string.digits) for _ in range(length))


LONG = _random_text(3_000)  # over PostgreSQL's 2,704-byte btree entry
EMOJI = "\U0001f600" * 300  # 300 characters, 1,200 bytes of UTF-8


@dataclass(frozen=True)
class Case:
    """A request and what its refusal must say."""

    id: str
    # A dict is sent as JSON; str or bytes as they are (NaN, bad UTF-8, deep nesting).
    body: Any
    fragments: tuple[str, ...]  # each in the error's message
    status: int = 200  # GraphQL over HTTP: 400 for a malformed request, 200 for a bad value
    code: str = "BAD_INPUT"
    method: str = "POST"
    params: dict[str, str] = field(default_factory=dict)  # GET's query string
    content_type: str = "application/json"


def q(query: str, variables: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"query": query, "variables": variables or {}, **extra}


def raw_vars(query: str, variables: str) -> str:
    """A body whose variables are written as JSON text (what json.dumps will not write)."""
    return f'{{"query": {json.dumps(query)}, "variables": {variables}}}'


CASES = [
    # The body itself.
    Case("body-string", '"hello"', ("JSON string", "'hello'", "expected an object"), 400),
    Case("body-number", "42", ("JSON number", "42", "expected an object"), 400),
    Case("body-null", "null", ("JSON null", "expected an object"), 400),
    Case("body-true", "true", ("JSON boolean", "true", "expected an object"), 400),
    Case("body-array", "[]", ("JSON array", "batching is off", "expected an object"), 400),
    Case("body-not-json", "{nope", ("not JSON", "expected an object"), 400),
    Case("body-empty", "", ("not JSON", "expected an object"), 400),
    Case("body-not-utf8", b'{"query": "\xff"}', ("not JSON", "utf-8"), 400),
    Case(
        "content-type-text",
        q("{ flow { id } }"),
        ("content-type 'text/plain'", "expected 'application/json'"),
        415,
        content_type="text/plain",
    ),
    Case("no-query", {}, ("query is missing", "expected a string"), 400),
    Case("query-number", {"query": 5}, ("query is 5", "expected a string"), 400),
    Case("query-null", {"query": None}, ("query is null", "expected a string"), 400),
    Case("query-empty", {"query": ""}, ("query is empty", "GraphQL document"), 400),
    Case("variables-list", q("{ flow { id } }", variables=[1]), ("variables is [1]",), 400),  # type: ignore[arg-type]
    Case("variables-string", {"query": "{ flow { id } }", "variables": "x"}, ("'x'",), 400),
    Case(
        "operation-name-number",
        q("{ flow { id } }", operationName=5),
        ("operationName is 5", "expected a string or null"),
        400,
    ),
    Case("extensions-list", q("{ flow { id } }", extensions=[1]), ("extensions is [1]",), 400),
    Case("nan", raw_vars(SET_STATES, '{"s": NaN}'), ("NaN", "not a JSON number"), 400),
    Case(
        "nan-in-details",
        raw_vars(
            SET_STATES,
            '{"s": [{"flow_run_id": "<busy>", "version": 1,'
            ' "state": {"type": "RUNNING", "details": {"x": NaN}}}]}',
        ),
        ("NaN", "finite numbers only"),
        400,
    ),
    Case("infinity", raw_vars(CREATE_RUN, '{"i": Infinity}'), ("Infinity",), 400),
    Case("minus-infinity", raw_vars(CREATE_RUN, '{"i": -Infinity}'), ("-Infinity",), 400),
    Case(
        "float-overflow-filter",
        raw_vars(
            "query ($f: Float!) { task(where: {retry_delay_seconds: {_eq: $f}}) { id } }",
            '{"f": 1e400}',
        ),
        ("'1e400'", "64-bit float"),
        400,
    ),
    Case(
        "variables-3000-deep",
        raw_vars("query ($p: jsonb) { flow { id } }", '{"p": ' + "[" * 3000 + "]" * 3000 + "}"),
        ("nested too deeply", "at most 32"),
        400,
    ),
    Case(
        "variables-40-deep",
        raw_vars("query ($p: jsonb) { flow { id } }", '{"p": ' + "[" * 40 + "]" * 40 + "}"),
        ("$p", "nested more than 32 levels", "at most 32"),
        400,
    ),
    # Which operation to run.
    Case(
        "two-queries-no-name",
        q("query A { flow { name } } query B { task { slug } }"),
        ("2 operations", "names none", "operationName", "['A', 'B']"),
        400,
    ),
    Case(
        "query-and-mutation-no-name",
        q('query A { flow { name } } mutation B { create_flow(input: {name: "zz"}) { id } }'),
        ("2 operations", "operationName"),
        400,
    ),
    Case(
        "unknown-operation-name",
        q("query A { flow { name } } query B { task { slug } }", operationName="C"),
        ("'C'", "not the name of an operation", "['A', 'B']"),
        400,
    ),
    Case(
        "two-operations-one-anonymous",
        q("{ flow { name } } query B { task { slug } }"),
        ("anonymous operation must be the only defined operation",),
    ),
    Case("only-a-fragment", q("fragment F on flow { id }"), ("no operation",), 400),
    Case(
        "mutation-over-get",
        None,
        ("mutation", "GET", "POST"),
        405,
        method="GET",
        params={"query": 'mutation { create_flow(input: {name: "zz"}) { id } }'},
    ),
    Case(
        "get-variables-not-json",
        None,
        ("variables parameter", "not JSON"),
        400,
        method="GET",
        params={"query": "query ($n: String!) { flow(where: {name: {_eq: $n}}) { id } }"}
        | {"variables": "{nope"},
    ),
    Case(
        "get-nul-in-variable",
        None,
        ("$n", "'a\\x00b'", "NUL character"),
        method="GET",
        params={"query": FLOW_BY_NAME, "variables": json.dumps({"n": "a\x00b"})},
    ),
    Case("syntax-error", q("{ flow("), ("Syntax Error", "Expected Name")),
    Case(
        "surrogate-escape-in-literal",
        q('{ flow(where: {name: {_eq: "a\\ud800b"}}) { id } }'),
        ("Invalid Unicode escape sequence", "'\\ud800'"),
    ),
    # Text no database stores: NUL characters and lone surrogates, anywhere.
    Case("nul-in-name", q(CREATE_FLOW, {"n": "a\x00b"}), ("$n", "'a\\x00b'", "NUL character")),
    Case(
        "surrogate-in-name",
        raw_vars(CREATE_FLOW, '{"n": "a\\ud800b"}'),
        ("$n", "'a\\ud800b'", "lone surrogate", "not UTF-8"),
    ),
    Case(
        "nul-in-name-literal",
        q('mutation { create_flow(input: {name: "a\\u0000b"}) { id } }'),
        ("input.name", "'a\\x00b'", "NUL character"),
    ),
    Case("nul-in-filter", q(FLOW_BY_NAME, {"n": "a\x00b"}), ("$n", "NUL character")),
    Case(
        "nul-in-variable-default",
        q('query ($n: String = "a\\u0000") { flow(where: {name: {_eq: $n}}) { id } }'),
        ("the default of $n", "'a\\x00'", "NUL character"),
    ),
    Case(
        "surrogate-in-filter",
        raw_vars(FLOW_BY_NAME, '{"n": "\\udc80"}'),
        ("$n", "'\\udc80'", "lone surrogate"),
    ),
    Case(
        "nul-in-filter-literal",
        q('{ flow(where: {name: {_eq: "a\\u0000b"}}) { id } }'),
        ("where.name._eq", "'a\\x00b'", "NUL character"),
    ),
    Case(
        "nul-in-like-pattern",
        q("query ($p: String!) { task(where: {slug: {_like: $p}}) { id } }", {"p": "%\x00%"}),
        ("$p", "'%\\x00%'", "NUL character"),
    ),
    Case(
        "nul-in-in-list",
        q("query ($s: [String!]) { task(where: {slug: {_in: $s}}) { id } }", {"s": ["a", "\x00"]}),
        ("$s[1]", "'\\x00'", "NUL character"),
    ),
    Case(
        "nul-in-relationship-filter",
        q(
            "query ($n: String!) { task_run(where: {task: {slug: {_eq: $n}}}) { id } }",
            {"n": "x\x00"},
        ),
        ("$n", "NUL character"),
    ),
    Case(
        "nul-in-labels",
        q(
            'mutation ($l: [String!]) { create_flow(input: {name: "zz", labels: $l}) { id } }',
            {"l": ["ok", "b\x00d"]},
        ),
        ("$l[1]", "'b\\x00d'", "NUL character"),
    ),
    Case(
        "nul-in-task-slug",
        q(
            'mutation ($t: [task_input!]) { create_flow(input: {name: "zz", tasks: $t}) { id } }',
            {"t": [{"slug": "a-1"}, {"slug": "b\x00-1"}]},
        ),
        ("$t[1].slug", "NUL character"),
    ),
    Case(
        "nul-in-task-run-slug",
        q(TASK_RUN, {"i": {"flow_run_id": "<busy>", "task_slug": "load\x00-1"}}),
        ("$i.task_slug", "NUL character"),
    ),
    Case(
        "surrogate-in-cache-key",
        raw_vars(
            TASK_RUN, '{"i": {"flow_run_id": "<busy>", "task_slug": "x-1", "cache_key": "\\ud83d"}}'
        ),
        ("$i.cache_key", "lone surrogate"),
    ),
    Case(
        "nul-in-idempotency-key",
        q(CREATE_RUN, {"i": {"flow_name": "hello", "idempotency_key": "k\x00"}}),
        ("$i.idempotency_key", "NUL character"),
    ),
    Case(
        "nul-in-flow-run-name",
        q(CREATE_RUN, {"i": {"flow_name": "hello", "flow_run_name": "\x00"}}),
        ("$i.flow_run_name", "NUL character"),
    ),
    Case(
        "nul-in-parameters",
        q(CREATE_RUN, {"i": {"flow_name": "hello", "parameters": {"a": ["x\x00"]}}}),
        ("$i.parameters.a[0]", "NUL character"),
    ),
    Case(
        "nul-in-parameter-key",
        q(CREATE_RUN, {"i": {"flow_name": "hello", "parameters": {"k\x00": 1}}}),
        ("a key of variable $i.parameters", "'k\\x00'", "NUL character"),
    ),
    Case(
        "surrogate-in-context",
        raw_vars(CREATE_RUN, '{"i": {"flow_name": "hello", "context": {"c": "\\udfff"}}}'),
        ("$i.context.c", "lone surrogate"),
    ),
    Case(
        "nul-in-parameters-literal",
        q(
            'mutation { create_flow_run(input: {flow_name: "hello",'
            ' parameters: {a: "\\u0000"}}) { id } }'
        ),
        ("input.parameters.a", "NUL character"),
    ),
    Case(
        "nul-in-jsonb-filter",
        q(
            "query ($p: jsonb) { flow_run(where: {parameters: {_eq: $p}}) { id } }",
            {"p": {"n": "\x00"}},
        ),
        ("$p.n", "NUL character"),
    ),
    Case(
        "nul-in-unknown-field-name",
        q(CREATE_RUN, {"i": {"flow_name": "hello", "a\x00": 1}}),
        ("a field name of variable $i", "'a\\x00'", "NUL character"),
    ),
    Case(
        "nul-in-claim-labels",
        q(
            "mutation ($l: [String!]) {"
            " claim_flow_runs(input: {labels: $l}) { flow_runs { id } } }",
            {"l": ["\x00"]},
        ),
        ("$l[0]", "NUL character"),
    ),
    Case(
        "nul-in-jsonb-path",
        q('{ flow_run { serialized_state(path: "a\\u0000") } }'),
        ("path", "NUL character"),
    ),
    # Names, slugs, labels and keys longer than runview stores.
    Case(
        "long-name", q(CREATE_FLOW, {"n": LONG}), ("create_flow_input.name", "3,000 bytes", "1,000")
    ),
    Case("name-one-over", q(CREATE_FLOW, {"n": "x" * 1_001}), ("1,001 bytes", "limit of 1,000")),
    Case("name-in-emoji", q(CREATE_FLOW, {"n": EMOJI}), ("1,200 bytes", "limit of 1,000")),
    Case(
        "long-task-slug",
        q(
            'mutation ($t: [task_input!]) { create_flow(input: {name: "zz", tasks: $t}) { id } }',
            {"t": [{"slug": LONG}]},
        ),
        ("create_flow_input.tasks[0].slug", "3,000 bytes"),
    ),
    Case(
        "long-label",
        q(
            'mutation ($l: [String!]) { create_flow(input: {name: "zz", labels: $l}) { id } }',
            {"l": ["ok", LONG]},
        ),
        ("create_flow_input.labels[1]", "3,000 bytes"),
    ),
    Case(
        "long-idempotency-key",
        q(CREATE_RUN, {"i": {"flow_name": "hello", "idempotency_key": LONG}}),
        ("create_flow_run_input.idempotency_key", "3,000 bytes"),
    ),
    Case(
        "long-flow-name-lookup",
        q(CREATE_RUN, {"i": {"flow_name": LONG}}),
        ("create_flow_run_input.flow_name", "3,000 bytes"),
    ),
    Case(
        "long-cache-key",
        q(TASK_RUN, {"i": {"flow_run_id": "<busy>", "task_slug": "load-1", "cache_key": LONG}}),
        ("get_or_create_task_run_input.cache_key", "3,000 bytes"),
    ),
    Case(
        "long-mapped-slug",
        q(
            "mutation ($i: get_or_create_mapped_task_run_children_input!) {"
            " get_or_create_mapped_task_run_children(input: $i) { ids } }",
            {"i": {"flow_run_id": "<busy>", "task_slug": LONG, "max_map_index": 1}},
        ),
        ("get_or_create_mapped_task_run_children_input.task_slug", "3,000 bytes"),
    ),
    # Timestamps outside what both databases store once the offset is applied.
    Case(
        "year-9999-with-offset",
        q(
            CREATE_RUN,
            {"i": {"flow_name": "hello", "scheduled_start_time": "9999-12-31T23:59:00-05:00"}},
        ),
        (
            "'9999-12-31T23:59:00-05:00'",
            "outside the timestamps",
            "'9999-12-31T23:59:59.999999+00:00'",
        ),
    ),
    Case(
        "year-1-with-offset-literal",
        q('{ flow_run(where: {created: {_gt: "0001-01-01T00:00:00+01:00"}}) { id } }'),
        ("'0001-01-01T00:00:00+01:00'", "outside the timestamps", "'0001-01-01T00:00:00+00:00'"),
    ),
    Case(
        "year-1-with-offset-variable",
        q(
            "query ($t: timestamptz!) { log(where: {timestamp: {_lt: $t}}) { id } }",
            {"t": "0001-01-01T05:00:00+14:00"},
        ),
        ("'0001-01-01T05:00:00+14:00'", "outside the timestamps"),
    ),
    Case(
        "log-timestamp-year-9999",
        q(
            "mutation ($l: [run_log_input!]!) { write_run_logs(input: {logs: $l}) { count } }",
            {
                "l": [
                    {
                        "flow_run_id": "<busy>",
                        "level": 20,
                        "name": "n",
                        "message": "m",
                        "timestamp": "9999-12-31T23:00:00-01:00",
                    }
                ]
            },
        ),
        ("'9999-12-31T23:00:00-01:00'", "outside the timestamps"),
    ),
    Case(
        "not-a-timestamp",
        q('{ task_run(where: {start_time: {_gt: "yesterday"}}) { id } }'),
        ("'yesterday'", "not a timestamptz", "ISO 8601"),
    ),
    Case(
        "timestamp-as-number",
        q("query ($t: timestamptz!) { log(where: {timestamp: {_lt: $t}}) { id } }", {"t": 5}),
        ("5 is not a timestamptz",),
    ),
    # Numbers.
    Case(
        "float-overflow-literal",
        q("{ task(where: {retry_delay_seconds: {_eq: 1e400}}) { id } }"),
        ("'1e400'", "64-bit float", "finite number"),
    ),
    Case(
        "float-overflow-in-jsonb-literal",
        q(
            'mutation { create_flow_run(input: {flow_name: "hello",'
            " parameters: {x: -2e999}}) { id } }"
        ),
        ("'-2e999'", "finite number"),
    ),
    Case(
        "huge-limit",
        q("{ flow(limit: 99999999999999999999) { id } }"),
        ("limit 99999999999999999999", "RUNVIEW_MAX_ROWS"),
        code="LIMIT_EXCEEDED",
    ),
    Case(
        "huge-int-filter",
        q("{ task_run(where: {map_index: {_eq: 99999999999}}) { id } }"),
        ("99999999999", "32-bit"),
    ),
    Case("negative-limit", q("{ task_run(limit: -1) { id } }"), ("limit", "-1")),
    Case("negative-offset", q("{ flow_run { task_runs(offset: -5) { id } } }"), ("offset", "-5")),
    Case("float-for-int", q("{ flow(limit: 1.5) { id } }"), ("1.5", "Int")),
    Case(
        "negative-map-index",
        q(
            "mutation ($i: get_or_create_mapped_task_run_children_input!) {"
            " get_or_create_mapped_task_run_children(input: $i) { ids } }",
            {"i": {"flow_run_id": "<busy>", "task_slug": "transform-1", "max_map_index": -5}},
        ),
        ("max_map_index", "-5"),
    ),
    # Unknown fields, wrong types, wrong enum values, bad uuids, nulls.
    Case("unknown-selection", q("{ flow { id nope } }"), ("nope", "flow")),
    Case("unknown-argument", q("{ flow(nope: 1) { id } }"), ("nope", "flow")),
    Case(
        "unknown-filter-field",
        q("{ task_run(where: {nope: {_eq: 1}}) { id } }"),
        ("nope", "task_run_bool_exp"),
    ),
    Case(
        "unknown-input-field",
        q(CREATE_RUN, {"i": {"flow_name": "hello", "nope": 1}}),
        ("'nope'", "create_flow_run_input"),
    ),
    Case(
        "wrong-enum",
        q("{ task_run(order_by: {state: sideways}) { id } }"),
        ("sideways", "order_by"),
    ),
    Case(
        "wrong-enum-variable",
        q("query ($o: [flow_order_by!]) { flow(order_by: $o) { id } }", {"o": [{"name": "up"}]}),
        ("'up'", "order_by"),
    ),
    Case(
        "bad-uuid-literal",
        q('{ task_run_by_pk(id: "not-a-uuid") { id } }'),
        ("'not-a-uuid'", "uuid"),
    ),
    Case(
        "bad-uuid-variable",
        q("query ($id: uuid!) { flow_run_by_pk(id: $id) { id } }", {"id": "1234"}),
        ("'1234'", "not a uuid", "36 characters"),
    ),
    Case(
        "nul-in-uuid",
        q("query ($id: uuid!) { flow_run_by_pk(id: $id) { id } }", {"id": "\x00" * 36}),
        ("not a uuid",),
    ),
    Case(
        "huge-bad-uuid",
        q("query ($id: uuid!) { flow_run_by_pk(id: $id) { id } }", {"id": "z" * 100_000}),
        ("not a uuid", "100,000 characters"),
    ),
    Case(
        "bad-uuid-in-large-in",
        q(
            "query ($ids: [uuid!]) { task_run(where: {flow_run_id: {_in: $ids}}) { id } }",
            {"ids": [str(uuid.UUID(int=i)) for i in range(70_000)] + ["x"]},
        ),
        ("'x'", "not a uuid"),
    ),
    Case(
        "string-for-int", q('{ task_run(where: {map_index: {_eq: "x"}}) { id } }'), ('"x"', "Int")
    ),
    Case("int-for-string", q("{ task_run(where: {state: {_eq: 3}}) { id } }"), ("3", "String")),
    Case(
        "missing-argument",
        q("{ flow_run_by_pk { id } }"),
        ("flow_run_by_pk(id:)", "uuid!", "required"),
    ),
    Case(
        "null-for-non-null",
        q("query ($id: uuid!) { flow_run_by_pk(id: $id) { id } }", {"id": None}),
        ("$id", "non-null"),
    ),
    Case(
        "null-comparison",
        q("{ task_run(where: {state: {_eq: null}}) { id } }"),
        ("_eq: null", "_is_null"),
    ),
    Case(
        "flow-id-and-name",
        q(CREATE_RUN, {"i": {"flow_name": "hello", "flow_id": "<busy>"}}),
        ("exactly one of flow_id and flow_name",),
    ),
    Case("unknown-flow", q(CREATE_RUN, {"i": {"flow_name": "nope"}}), ("'nope'", "does not exist")),
    Case("mutation-field-on-query", q("mutation { flow { id } }"), ("flow", "Mutation")),
    Case(
        "literal-40-deep",
        q("{ flow(where: " + "{_not: " * 40 + '{name: {_eq: "x"}}' + "}" * 40 + ") { id } }"),
        ("nested more than 32 levels", "at most 32"),
    ),
    Case(
        "query-50-deep",
        q("{ flow_run { " + "task_runs { flow_run { " * 25 + "id" + " } }" * 25 + " } }"),
        ("nested", "RUNVIEW_MAX_DEPTH"),
        code="LIMIT_EXCEEDED",
    ),
]


@pytest.fixture(scope="module")
def corpus_server(seeded: Any) -> Iterator[tuple[Server, Any, Snapshot]]:
    server, data = seeded
    snapshot = Snapshot(server.database_url)
    yield server, data, snapshot
    snapshot.engine.dispose()


def send(server: Server, data: Any, case: Case) -> httpx.Response:
    if case.method == "GET":
        return httpx.get(f"{server.url}/graphql", params=case.params, timeout=60)
    body = case.body
    content = body if isinstance(body, str | bytes) else json.dumps(body)
    if isinstance(content, str):
        for placeholder, value in IDS.items():
            content = content.replace(placeholder, value(data))
    return httpx.post(
        f"{server.url}/graphql",
        content=content,
        headers={"content-type": case.content_type},
        timeout=60,
    )


def assert_refused(server: Server, data: Any, snapshot: Snapshot, case: Case) -> None:
    """The corpus's one assertion: a clear refusal, and the database as it was."""
    before = snapshot()
    response = send(server, data, case)
    assert response.status_code == case.status, response.text[:2000]
    answer = response.json()
    assert answer.get("data") in (None, {}) or all(v is None for v in answer["data"].values())
    errors = answer["errors"]
    assert errors, answer
    message = " ".join(error["message"] for error in errors)
    assert "Unexpected error." not in message
    for fragment in case.fragments:
        assert fragment in message, (fragment, message[:2000])
    request_id = response.headers["x-request-id"]
    for error in errors:
        assert error["extensions"]["code"] == case.code, error
        assert error["extensions"]["request_id"] == request_id, error
    assert len(response.content) < 20_000, "a refusal quotes a huge value whole"
    assert "Traceback" not in response.text and "sqlalchemy" not in response.text.lower()
    assert snapshot() == before


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_malformed_request_is_refused_clearly_and_changes_nothing(
    corpus_server: tuple[Server, Any, Snapshot], case: Case
) -> None:
    server, data, snapshot = corpus_server
    assert_refused(server, data, snapshot, case)


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


def test_the_database_has_rows_to_compare(corpus_server: tuple[Server, Any, Snapshot]) -> None:
    _, _, snapshot = corpus_server
    counts = {name: count for name, (count, _) in snapshot().items()}
    for table in (
        "flow",
        "task",
        "flow_run",
        "task_run",
        "flow_run_state",
        "task_run_state",
        "log",
    ):
        assert counts[table] > 0, counts


def _server_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("runview", "strawberry", "uvicorn"))]


def _text(record: logging.LogRecord) -> str:
    """All a handler would write for the record: the message and any traceback."""
    return logging.Formatter().format(record)


@pytest.mark.parametrize(
    "body",
    [
        q(CREATE_FLOW, {"n": "a\x00b"}),  # refused at the checkpoint
        q('{ task_run_by_pk(id: "not-a-uuid") { id } }'),  # refused by the executor
        q(  # a 70,000-item _in: no parameter of it reaches the log
            "query ($ids: [uuid!]) { task_run(where: {flow_run_id: {_in: $ids}}) { id } }",
            {"ids": [str(uuid.UUID(int=i)) for i in range(70_000)] + ["x"]},
        ),
        q("query A { flow { id } } query B { flow { id } }"),  # 400 at the checkpoint
    ],
    ids=["checkpoint", "executor", "large-in", "two-operations"],
)
def test_a_refused_request_logs_one_line_with_its_request_id(
    corpus_server: tuple[Server, Any, Snapshot], caplog: pytest.LogCaptureFixture, body: Any
) -> None:
    server, _, _ = corpus_server
    caplog.set_level(logging.INFO, logger="runview")
    caplog.set_level(logging.INFO, logger="strawberry")
    caplog.clear()
    response = httpx.post(f"{server.url}/graphql", json=body, timeout=60)
    request_id = response.headers["x-request-id"]
    assert response.json()["errors"][0]["extensions"]["request_id"] == request_id
    records = _server_records(caplog)
    assert len(records) == 1, [_text(r)[:300] for r in records]
    (record,) = records
    assert record.levelno == logging.INFO and record.exc_info is None
    line = _text(record)
    assert f"request {request_id}: " in line and "BAD_INPUT" in line
    assert "\n" not in line and len(line) < 1_000
    assert "00000000-0000-0000-0000-00000001" not in line  # no _in item, no SQL parameter


def test_a_client_request_id_is_kept_and_a_wild_one_replaced(
    corpus_server: tuple[Server, Any, Snapshot],
) -> None:
    server, _, _ = corpus_server
    url = f"{server.url}/graphql"
    body = q("{ flow { name } }")
    kept = httpx.post(url, json=body, headers={"x-request-id": "lb-7f3a.1"})
    assert kept.status_code == 200 and kept.headers["x-request-id"] == "lb-7f3a.1"
    wild = httpx.post(url, json=body, headers={"x-request-id": "a b\tc" + "x" * 100})
    assert wild.headers["x-request-id"] != "a b\tc" + "x" * 100
    assert len(wild.headers["x-request-id"]) == 16
    first = httpx.post(url, json=body).headers["x-request-id"]
    assert first != httpx.post(url, json=body).headers["x-request-id"]


def test_a_server_fault_logs_its_traceback_once_without_sql_parameters(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """A column gone from under the server: the client gets "Unexpected error." with the
    request id; the log has the traceback once, marked with that id, and not the value the
    client sent (SQL parameters are hidden)."""
    engine = sa.create_engine(sync_url(server.database_url), poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE flow RENAME COLUMN description TO gone"))
    engine.dispose()
    caplog.set_level(logging.INFO, logger="runview")
    caplog.clear()
    secret = "a-flow-name-only-the-client-knows"
    response = httpx.post(f"{server.url}/graphql", json=q(CREATE_FLOW, {"n": secret}), timeout=60)
    assert response.status_code == 200
    (error,) = response.json()["errors"]
    request_id = response.headers["x-request-id"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {"code": "INTERNAL", "request_id": request_id}
    records = _server_records(caplog)
    with_traceback = [r for r in records if r.exc_info]
    assert len(with_traceback) == 1, [_text(r)[:300] for r in records]
    assert f"request {request_id}: " in _text(with_traceback[0])
    for record in records:
        assert secret not in _text(record)


EXECUTOR_ONLY = [
    case
    for case in CASES
    if case.id
    in {
        "two-queries-no-name",
        "query-and-mutation-no-name",
        "nul-in-filter-literal",
        "surrogate-in-filter",
        "nul-in-in-list",
        "year-1-with-offset-literal",
        "float-overflow-literal",
        "literal-40-deep",
        "nan-in-details",
        "body-string",
    }
]


def test_the_executor_alone_refuses_the_same(database_url: str) -> None:
    """With both compiled paths off, Strawberry's executor answers everything: the checkpoint
    refuses the same requests in the same words (two operations and no name among them)."""
    data = run(seed_database(database_url))
    server = Server(database_url).start(compiled_reads=False, compiled_states=False)
    snapshot = Snapshot(database_url)
    try:
        for case in EXECUTOR_ONLY:
            assert_refused(server, data, snapshot, case)
    finally:
        server.stop()
        snapshot.engine.dispose()


def test_the_server_log_config_keeps_info_lines_and_cuts_long_tracebacks() -> None:
    config = log_config()
    for name in ("runview", "strawberry"):
        assert config["loggers"][name]["level"] == "INFO"
        assert config["loggers"][name]["handlers"] == ["runview"]
    assert "uvicorn.access" in config["loggers"]  # uvicorn's own, kept

    # Two functions in turn, as graphql-core's recursion is: Python cannot fold the frames.
    def one(n: int) -> None:
        if n == 0:
            raise RecursionError("deep")
        other(n - 1)

    def other(n: int) -> None:
        one(n - 1)

    try:
        one(400)
    except RecursionError:
        record = logging.LogRecord("runview.server", logging.ERROR, "", 0, "fault", None, None)
        record.exc_info = sys.exc_info()
    text = bounded_formatter("%(message)s").format(record)
    assert len(text.splitlines()) < 70 and "lines of the traceback left out" in text
    assert text.splitlines()[-1] == "RecursionError: deep"
