"""schema.graphql is generated: it must equal the live schema."""

from __future__ import annotations

from pathlib import Path

from backend.api.schema import sdl

ROOT = Path(__file__).resolve().parents[1]


def test_committed_schema_matches_the_live_schema() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == sdl(), "schema.graphql is stale: run `runview schema export`"


def test_schema_uses_snake_case_and_the_hasura_scalars() -> None:
    text = sdl()
    for name in ("scalar uuid", "scalar timestamptz", "scalar jsonb", "enum order_by"):
        assert name in text
    assert "startTime" not in text and "start_time: timestamptz" in text
