"""The ``runview`` command line.

Server-side commands (``server``, ``db``, ``schema``) import ``backend`` inside the command, so
the rest of the SDK never loads the server.
"""

from __future__ import annotations

import typer

from sdk.cli import agent, server

app = typer.Typer(help="runview: record and inspect workflow runs.", no_args_is_help=True)
app.add_typer(server.server_app, name="server")
app.add_typer(server.db_app, name="db")
app.add_typer(server.schema_app, name="schema")
app.add_typer(agent.agent_app, name="agent")


def main() -> None:
    app()
