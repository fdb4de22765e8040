"""The ``runview`` command line: one Typer sub-app per command group.

Inspecting commands talk to the server at ``RUNVIEW_API_URL``, or, with it unset, to the
embedded database (``RUNVIEW_HOME``, ``RUNVIEW_DATABASE_URL``), as the SDK does. Server-side
commands (``server``, ``db``, ``schema``, ``api-key``) import ``backend`` inside the command,
so the rest of the command line never loads the server.

Errors are one line on stderr and exit code 1 (2 for a usage error), never a traceback:
``RUNVIEW_DEBUG=1`` shows the traceback of an unexpected one.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from sdk.cli import agent, api_keys, flow_runs, flows, register, server, task_runs
from sdk.exceptions import RunviewError

app = typer.Typer(
    help="runview: record and inspect workflow runs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("register")(register.register)
app.add_typer(flows.flow_app, name="flow")
app.add_typer(flow_runs.flow_run_app, name="flow-run", no_args_is_help=True)
app.add_typer(task_runs.task_run_app, name="task-run", no_args_is_help=True)
app.add_typer(agent.agent_app, name="agent")
app.add_typer(server.server_app, name="server")
app.add_typer(server.db_app, name="db")
app.add_typer(server.schema_app, name="schema")
app.add_typer(api_keys.api_key_app, name="api-key")


def _fail(message: str, code: int) -> None:
    print(f"runview: {' '.join(message.split())}", file=sys.stderr, flush=True)
    sys.exit(code)


def main() -> None:
    # The client's "retrying" warnings would be a second line before a command's one-line
    # error, which says it all; `agent start` prints them (a long-running process).
    logging.getLogger("runview.client").addHandler(logging.NullHandler())
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as error:  # a usage error, as click reports them
        message, ctx = error.format_message(), getattr(error, "ctx", None)
        if ctx is not None and message == ctx.get_help():  # a group given no command
            print(message, file=sys.stderr)
            sys.exit(2)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        _fail(f"{message}{hint}", getattr(error, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted.", 130)
    except RunviewError as error:
        _fail(str(error), 1)
    except Exception as error:
        if os.environ.get("RUNVIEW_DEBUG"):
            raise
        _fail(f"unexpected {type(error).__name__}: {error} (RUNVIEW_DEBUG=1 shows where).", 1)
    sys.exit(code if isinstance(code, int) else 0)
