"""``runview server start``, ``runview db upgrade`` and ``runview schema export``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from sdk.exceptions import InvalidInput

server_app = typer.Typer(help="Run the runview server.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database.", no_args_is_help=True)
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
console = Console(soft_wrap=True)  # a URL split over two lines cannot be copied

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="RUNVIEW_DATABASE_URL",
        help="SQLAlchemy URL; default: the embedded SQLite database in $RUNVIEW_HOME.",
    ),
]


@server_app.command("start")
def start(
    host: Annotated[str, typer.Option(envvar="RUNVIEW_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="RUNVIEW_PORT")] = 4200,
    database_url: DatabaseUrl = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Serve a non-loopback host without API keys: anyone who reaches it can do"
            " anything.",
        ),
    ] = False,
) -> None:
    """Serve the GraphQL API and its playground.

    On a loopback host auth is off unless RUNVIEW_AUTH=required. Any other host needs
    RUNVIEW_AUTH=required (and keys from `runview api-key create`), or --insecure.
    """
    import uvicorn

    from backend.app import create_app
    from backend.settings import Settings, is_loopback

    settings = Settings(host=host, port=port, database_url=database_url)
    if settings.auth != "required" and not is_loopback(host):
        if insecure:
            settings.auth = "off"
        else:
            raise InvalidInput(
                f"Refusing to serve {host!r} without API keys: anyone who reaches it could"
                " read, change and delete every run. Set RUNVIEW_AUTH=required and make keys"
                " with `runview api-key create NAME --scope read|write|admin`, or pass"
                " --insecure."
            )
    url = settings.resolved_database_url
    asyncio.run(_reachable(url, migrated=not settings.should_upgrade_on_start))
    console.print(f"runview server on {_redact(settings.resolved_database_url)}")
    console.print(f"GraphQL playground: [bold]http://{host}:{port}/graphql[/bold]")
    if settings.auth_required:
        console.print("API keys required (RUNVIEW_AUTH=required).")
    elif not is_loopback(host):
        console.print("[bold red]WARNING[/bold red]: no API keys on a non-loopback host.")
    from backend.api.errors import log_config

    uvicorn.run(create_app(settings), host=host, port=port, log_config=log_config())


@db_app.command("upgrade")
def upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply every migration the database has not had yet."""
    from backend.database import migrate
    from backend.settings import Settings

    url = Settings(database_url=database_url).resolved_database_url
    asyncio.run(_reachable(url))
    revision = asyncio.run(migrate.upgrade_url(url))
    console.print(f"{_redact(url)} is at revision {revision}.")


@schema_app.command("export")
def export(
    output: Annotated[Path, typer.Option("--output", "-o")] = Path("schema.graphql"),
) -> None:
    """Write the GraphQL schema (SDL) to a file."""
    from backend.api.schema import sdl

    output.write_text(sdl())
    console.print(f"wrote {output}")


async def _reachable(url: str, *, migrated: bool = False) -> None:
    """Raise ``InvalidInput`` naming ``url`` unless a database answers there (and, with
    ``migrated``, is at the revision this code needs: the server would refuse to start)."""
    from backend.database import migrate
    from backend.database.engine import Database

    try:
        db = Database(url)
    except Exception as error:  # not a URL SQLAlchemy can use
        raise InvalidInput(
            f"--database-url {_redact(url)!r} is not a database URL SQLAlchemy can use: {error};"
            " expected e.g. 'postgresql+psycopg://user@host/db' or 'sqlite+aiosqlite:///path.db'."
        ) from None
    try:
        await db.ping()
        revision = await migrate.current(db.engine) if migrated else migrate.head()
    except Exception as error:
        cause = getattr(error, "orig", None) or error  # the driver's words, without SQLAlchemy's
        raise InvalidInput(f"Cannot open the database {_redact(url)!r}: {cause}") from None
    finally:
        await db.dispose()
    if revision != migrate.head():
        raise InvalidInput(
            f"The database {_redact(url)!r} is at revision {revision!r}, but this server needs"
            f" {migrate.head()!r}: run `runview db upgrade --database-url ...` first."
        )


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show it as given
        return url
