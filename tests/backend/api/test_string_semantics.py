"""Strings order, compare and match the same on every database, whatever its collation.

The shared test template uses the C collation, which happens to agree with SQLite; these tests
also run over PostgreSQL databases whose own rules differ: an ICU en-US database (where "a"
sorts before "B" and ILIKE folds "É" to "é") and a libc UTF-8 one (whose ILIKE folds "É" too).
Each answer must be what ``tests.filter_model`` says: code point order, case-sensitive
``_like``, ``_ilike`` folding ASCII letters only, ``\\`` as LIKE's escape. Both read paths
answer: the compiled one and the executor.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from backend import models
from backend.database import migrate
from backend.database.engine import Database
from tests.conftest import ADMIN_URL, DatabaseFactory, Server, run
from tests.filter_model import like

NAMES = [
    *("a", "A", "b", "B", "ab", "aB", "Ab", "aXb", "a_b", "a%b", "a\\b", "a\\\\b"),
    *("%", "_", "\\", " a", "a ", "0", "10", "9", "x'y", 'x"y'),
    *("e", "E", "é", "É", "école", "École", "ÉCOLE", "z", "Z", "Ω", "ω"),
    *("ß", "SS", "ss", "straße", "STRASSE", "ı", "I", "i", "İ", "ǅ", "日本", "😀"),
]

PATTERNS = [
    # (operator, pattern, what it shows)
    ("_like", "a%", "case-sensitive prefix"),
    ("_like", "A%", "case-sensitive prefix, upper case"),
    ("_like", "a_b", "_ is any one character"),
    ("_like", "a\\_b", "an escaped _ is literal"),
    ("_like", "a\\%b", "an escaped % is literal"),
    ("_like", "a\\\\b", "an escaped backslash is one backslash"),
    ("_like", "a\\b", "an escaped ordinary character is itself"),
    ("_like", "%\\\\%", "contains a backslash"),
    ("_like", "_", "one character, any"),
    ("_like", "\\_", "only the underscore"),
    ("_like", "É%", "non-ASCII, case-sensitive"),
    ("_like", "%ß%", "ß is itself"),
    ("_like", "__", "two characters (an emoji or 日本 counts per character)"),
    ("_ilike", "a%", "ASCII folding"),
    ("_ilike", "A_B", "folding with a wildcard"),
    ("_ilike", "A\\%B", "folding with an escape"),
    ("_ilike", "é%", "é does not fold to É"),
    ("_ilike", "école", "nor É to é"),
    ("_ilike", "ÉCOLE", "ÉCOLE matches itself only"),
    ("_ilike", "ω", "Greek does not fold"),
    ("_ilike", "ss", "ASCII s folds; ß stays ß"),
    ("_ilike", "i", "i folds to I only; not İ or ı"),
    ("_ilike", "%STRA%", "folding inside"),
]


def _admin() -> psycopg.Connection[Any]:
    conninfo = make_url(ADMIN_URL).set(drivername="postgresql")
    return psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True)


def _locale_clause(kind: str) -> str | None:
    """The CREATE DATABASE locale options for ``kind``, or None where the server lacks it."""
    with _admin() as admin:
        if kind == "icu":
            version = int(admin.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
            found = admin.execute(
                "SELECT 1 FROM pg_collation WHERE collprovider = 'i' AND collname = 'en-US-x-icu'"
            ).fetchone()
            if version < 150000 or not found:
                return None
            return "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LC_COLLATE 'C' LC_CTYPE 'C'"
        row = admin.execute(
            "SELECT collcollate FROM pg_collation WHERE collprovider = 'c'"
            " AND collname IN ('en_US.utf8', 'C.utf8') ORDER BY collname = 'en_US.utf8' DESC"
        ).fetchone()
        return None if row is None else f"LC_COLLATE '{row[0]}' LC_CTYPE '{row[0]}'"


@pytest.fixture(
    scope="module", params=["sqlite", "postgresql", "postgresql-icu", "postgresql-libc"]
)
def collated(request: pytest.FixtureRequest, databases: DatabaseFactory) -> Iterator[Any]:
    """(compiled server, executor server, database kind) over flows named NAMES, each with a
    task of its name; flow "a" also has a run of each name."""
    kind: str = request.param
    created = None
    if kind in ("sqlite", "postgresql"):
        url = databases.new(kind)
    else:
        clause = _locale_clause(kind.removeprefix("postgresql-"))
        if clause is None:
            pytest.skip(f"this PostgreSQL server has no locale for {kind}")
        created = f"runview_collation_{uuid.uuid4().hex[:8]}"
        with _admin() as admin:
            admin.execute(f"CREATE DATABASE {created} TEMPLATE template0 ENCODING 'UTF8' {clause}")
        url = make_url(ADMIN_URL).set(database=created).render_as_string(hide_password=False)
        run(migrate.upgrade_url(url))
    run(_seed(url))
    compiled = Server(url).start()
    executor = Server(url).start(compiled_reads=False)
    try:
        yield compiled, executor, kind
    finally:
        compiled.stop()
        executor.stop()
        if created is not None:
            with _admin() as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {created} WITH (FORCE)")


async def _seed(url: str) -> None:
    db = Database(url)
    try:
        async with db.begin() as conn:
            for name in NAMES:
                flow = await models.insert_flow(conn, name=name)
                await models.insert_task(conn, flow_id=flow.id, slug="t-1", name=name)
                if name == "a":
                    first = flow.id
            for name in NAMES:  # a list relationship to order: the runs of flow "a"
                await models.insert_flow_run(conn, flow_id=first, name=name)
    finally:
        await db.dispose()


def _both(collated: Any, query: str, variables: dict[str, Any] | None = None) -> Any:
    compiled, executor, _ = collated
    answer = compiled.data(query, variables)
    assert executor.data(query, variables) == answer
    return answer


def _filtered(operator: str) -> str:
    """A query for the flows whose name passes ``operator`` with ``$v``, by name."""
    where = f"{{name: {{{operator}: $v}}}}"
    return f"query ($v: String) {{ flow(where: {where}, order_by: {{name: asc}}) {{ name }} }}"


def _names(collated: Any, operator: str, value: str) -> list[str]:
    return [f["name"] for f in _both(collated, _filtered(operator), {"v": value})["flow"]]


def test_the_databases_own_rules_differ(collated: Any) -> None:
    """The premise: without the fixes these databases would answer differently."""
    compiled, _, kind = collated
    if not kind.startswith("postgresql-"):
        pytest.skip("the database's own rules are code point order and ASCII folding")
    url = make_url(compiled.database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        a_before_b, folds_accent = conn.execute("SELECT 'a' < 'B', 'É' ILIKE 'é'").fetchone()  # type: ignore[misc]
    if kind == "postgresql-icu":
        assert a_before_b, "an ICU en-US database sorts 'a' before 'B'"
    assert folds_accent, "this database's ILIKE folds non-ASCII letters"


@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_order_by_is_code_point_order(collated: Any, direction: str) -> None:
    expected = sorted(NAMES, reverse=direction == "desc")
    flows = _both(collated, f"{{ flow(order_by: {{name: {direction}}}) {{ name }} }}")["flow"]
    assert [f["name"] for f in flows] == expected
    tasks = _both(collated, f"{{ task(order_by: {{flow: {{name: {direction}}}}}) {{ name }} }}")
    assert [t["name"] for t in tasks["task"]] == expected
    nested = f"flow_runs(order_by: {{name: {direction}}}) {{ name }}"
    query = f'{{ flow(where: {{name: {{_eq: "a"}}}}) {{ {nested} }} }}'
    (flow,) = _both(collated, query)["flow"]
    assert [r["name"] for r in flow["flow_runs"]] == expected


@pytest.mark.parametrize("operator", ["_gt", "_gte", "_lt", "_lte"])
@pytest.mark.parametrize("value", ["a", "B", "É", "ß", "a_b"])
def test_string_ranges_are_code_point_order(collated: Any, operator: str, value: str) -> None:
    compare = {
        "_gt": str.__gt__,
        "_gte": str.__ge__,
        "_lt": str.__lt__,
        "_lte": str.__le__,
    }[operator]
    assert _names(collated, operator, value) == sorted(n for n in NAMES if compare(n, value))


@pytest.mark.parametrize(("operator", "pattern", "shows"), PATTERNS)
def test_like_and_ilike(collated: Any, operator: str, pattern: str, shows: str) -> None:
    expected = sorted(n for n in NAMES if like(pattern, n, fold=operator == "_ilike"))
    assert _names(collated, operator, pattern) == expected, shows


def test_what_the_patterns_match(collated: Any) -> None:
    """The model's rules spelled out, so a wrong model cannot pass the test above."""

    def names(operator: str, pattern: str) -> set[str]:
        return set(_names(collated, operator, pattern))

    assert names("_like", "a_b") == {"aXb", "a_b", "a%b", "a\\b"}
    assert names("_like", "a\\_b") == {"a_b"}
    assert names("_like", "a\\\\b") == {"a\\b"}
    assert names("_like", "a\\b") == {"ab"}
    assert names("_like", "a%") == {"a", "ab", "aB", "aXb", "a_b", "a%b", "a\\b", "a\\\\b", "a "}
    assert names("_ilike", "ab") == {"ab", "aB", "Ab"}
    assert names("_ilike", "école") == {"école"}
    assert names("_ilike", "É%") == {"É", "École", "ÉCOLE"}
    assert names("_ilike", "strasse") == {"STRASSE"}
    assert names("_ilike", "i") == {"i", "I"}


@pytest.mark.parametrize("operator", ["_like", "_ilike"])
@pytest.mark.parametrize("pattern", ["a\\", "%\\\\\\"])
def test_a_pattern_ending_in_an_unpaired_escape_is_refused(
    collated: Any, operator: str, pattern: str
) -> None:
    for server in collated[:2]:
        body = server.graphql(_filtered(operator), {"v": pattern})
        assert body["data"] is None
        (error,) = body["errors"]
        assert repr(pattern) in error["message"] and "backslash" in error["message"]
