"""``runview api-key create|ls|revoke``: the keys clients authenticate with.

Like ``db upgrade`` these are server-side commands: they open the database themselves
(``--database-url``, default the embedded one), so keys can be made before any server runs
and nobody needs a key to make the first one. ``create`` prints the key once, alone on the
last line of stdout, so a script can take it with ``tail -n 1``; only its hash is stored.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from sdk.cli import _render
from sdk.cli._common import Output, OutputOption, print_json
from sdk.cli.server import DatabaseUrl, _reachable
from sdk.exceptions import InvalidInput

api_key_app = typer.Typer(help="Manage API keys (on the server's database).", no_args_is_help=True)

T = TypeVar("T")


class Scope(enum.StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


@api_key_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A name to tell the key by, e.g. ci or agent-1.")],
    scope: Annotated[
        Scope,
        typer.Option(
            "--scope",
            help="read: query and subscribe; write: also record runs; admin: also delete runs.",
        ),
    ] = Scope.read,
    database_url: DatabaseUrl = None,
) -> None:
    """Make a key and print it, once: only its hash is kept."""
    from backend.models import api_keys

    row, token = _with_connection(
        database_url, lambda conn: api_keys.create_api_key(conn, name, scope.value)
    )
    typer.echo(f"Created the {row.scope} key {row.name!r} ({row.id}). It is shown only now:")
    typer.echo(token)


@api_key_app.command("ls")
def ls(database_url: DatabaseUrl = None, output: OutputOption = Output.table) -> None:
    """List every key, revoked ones too (never the keys themselves)."""
    from backend.models import api_keys

    rows = [_plain(row) for row in _with_connection(database_url, api_keys.list_api_keys)]
    if output is Output.json:
        print_json(rows)
        return
    _render.console.print(
        _render.table(
            None,
            ["id", "name", "scope", "created", "revoked"],
            [
                [
                    r["id"],
                    r["name"],
                    r["scope"],
                    _render.when(r["created"]),
                    _render.when(r["revoked"]),
                ]
                for r in rows
            ],
        )
    )


@api_key_app.command("revoke")
def revoke(
    key: Annotated[str, typer.Argument(help="The key's name (its live key) or its id.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a key: servers refuse it within RUNVIEW_AUTH_CACHE_SECONDS (5)."""
    from backend.models import api_keys

    row = _with_connection(database_url, lambda conn: api_keys.revoke_api_key(conn, key))
    typer.echo(f"Revoked the {row.scope} key {row.name!r} ({row.id}).")


def _plain(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "name": row.name,
        "scope": row.scope,
        "created": _render.iso(row.created),
        "revoked": _render.iso(row.revoked),
    }


def _with_connection(database_url: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(conn)`` in one transaction on the server's database."""
    from backend.database.engine import Database
    from backend.errors import InputError
    from backend.settings import Settings

    settings = Settings(database_url=database_url)
    url = settings.resolved_database_url
    # The embedded database is made and upgraded by whoever opens it first, as the server does.
    asyncio.run(_reachable(url, migrated=not settings.should_upgrade_on_start))
    if settings.should_upgrade_on_start:
        from backend.database import migrate

        asyncio.run(migrate.upgrade_url(url))

    async def run() -> T:
        db = Database(url)
        try:
            async with db.begin() as conn:
                return await work(conn)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except InputError as error:
        raise InvalidInput(str(error)) from None
