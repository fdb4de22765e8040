"""Starting, cancelling and following flow runs from the terminal, and the errors every
command gives for a value it cannot use."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

from backend.database.engine import Database
from backend.models import writes
from sdk import documents
from tests.conftest import DatabaseFactory, run, unused_port
from tests.sdk.cli.conftest import Cli


def test_create_then_cancel_a_run(cli: Cli) -> None:
    cli("register", "flows.py")
    created = cli.json("flow-run", "create", "hello", "--param", "name=Zaphod", "--name", "z")
    report = cli.json("flow-run", "inspect", created["id"])
    assert report["flow_run"]["state"] == "Scheduled"
    assert report["flow_run"]["parameters"] == {"name": "Zaphod"}
    assert report["flow_run"]["name"] == "z"
    typed = cli.json("flow-run", "create", "hello", "--param", "name=42", "--param", "x=[1, 2]")
    assert typed["parameters"] == {"name": 42, "x": [1, 2]}

    cancelled = cli("flow-run", "cancel", created["id"][:8]).stdout
    assert "Cancelled" in cancelled
    assert cli.json("flow-run", "inspect", created["id"])["flow_run"]["state"] == "Cancelled"
    line = cli.error("flow-run", "cancel", created["id"])
    assert "cannot be cancelled" in line and "Cancelled" in line

    running = [cli.json("flow-run", "create", "hello")["id"] for _ in range(2)]
    proposals = [{"flow_run_id": i, "version": 1, "state": {"type": "RUNNING"}} for i in running]
    cli.client.execute(documents.SET_FLOW_RUN_STATES, {"input": {"states": proposals}})
    assert cli.json("flow-run", "cancel", running[0])["state"] == "Cancelling"
    shown = cli("flow-run", "cancel", running[1]).stdout
    assert "Cancelling" in shown and "stops at its next task call" in shown
    assert "already Cancelling" in cli.error("flow-run", "cancel", running[1])

    assert "No flow is named 'nope'; the flows are: 'checks', 'graph', 'hello'" in cli.error(
        "flow-run", "create", "nope"
    )
    assert "'name' is not NAME=VALUE" in cli.error(
        "flow-run", "create", "hello", "--param", "name", code=2
    )


def test_watch_and_follow_a_run_as_an_agent_runs_it(cli: Cli) -> None:
    cli("register", "flows.py")
    scheduled = cli.json("flow-run", "create", "checks")["id"]
    greeting = cli.json("flow-run", "create", "hello")["id"]
    # Both start while their run is Scheduled, and end by themselves once it is over.
    follower = subprocess.Popen(
        [sys.executable, "-m", "sdk.cli", "flow-run", "logs", greeting, "--follow"],
        env=cli.env,
        cwd=cli.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with cli.agent():
        watched = cli("flow-run", "watch", scheduled[:8], code=1, timeout=120)
        waited = cli("flow-run", "create", "hello", "--wait", timeout=120)
    followed, errors = follower.communicate(timeout=60)
    assert follower.returncode == 0 and "Traceback" not in errors, errors
    assert "Hello, Marvin!" in followed and "careful, Marvin" in followed, followed

    for expected in ("Scheduled", "Pending", "Running", "check-1", "Failed", "3/3"):
        assert expected in watched.stdout, watched.stdout
    assert f"flow run {scheduled} ended Failed" in watched.stderr
    assert "is Scheduled" in waited.stdout
    for expected in ("Pending", "Running", "say_hello-1", "Completed", "3/3"):
        assert expected in waited.stdout, waited.stdout
    completed = cli.json("flow-run", "ls", "--state", "Completed")
    assert [r["flow"] for r in completed] == ["hello", "hello"]


def test_malformed_unknown_and_ambiguous_ids(cli: Cli) -> None:
    line = cli.error("flow-run", "inspect", "not-an-id")
    assert "'not-an-id' is not a flow run id" in line and "8 or more characters" in line
    assert "is not a flow run id" in cli.error("task-run", "ls", "abc")
    unknown = str(uuid.uuid4())
    assert f"No flow run has the id '{unknown}'" in cli.error("flow-run", "inspect", unknown)
    assert "No flow run has the id starting with 'abcdef12'" in cli.error(
        "flow-run", "logs", "abcdef12"
    )

    async def two_runs_sharing_a_prefix() -> None:
        db = Database(cli.server.database_url)
        try:
            async with db.begin() as conn:
                flow = await writes.insert_flow(conn, name="twins")
                for suffix in ("1", "2"):
                    run_id = uuid.UUID(f"abcdef12-0000-0000-0000-00000000000{suffix}")
                    await writes.insert_flow_run(conn, flow_id=flow.id, id=run_id)
        finally:
            await db.dispose()

    run(two_runs_sharing_a_prefix())
    line = cli.error("flow-run", "inspect", "abcdef12")
    assert "'abcdef12' is ambiguous" in line
    assert "abcdef12-0000-0000-0000-000000000001" in line
    assert "abcdef12-0000-0000-0000-000000000002" in line
    # The id without its dashes, in capitals, is still that id.
    second = uuid.UUID("abcdef12-0000-0000-0000-000000000002")
    report = cli.json("flow-run", "inspect", second.hex.upper())
    assert report["flow_run"]["id"] == str(second) and report["flow_run"]["flow"] == "twins"


def test_bad_options_are_usage_errors(cli: Cli) -> None:
    assert "'--limit'" in cli.error("flow-run", "ls", "--limit", "0", code=2)
    assert "'bogus' is not a state" in cli.error("flow-run", "ls", "--state", "bogus", code=2)
    assert "'loud' is not a log level" in cli.error(
        "flow-run", "logs", str(uuid.uuid4()), "--level", "loud", code=2
    )
    assert "No such command 'nope'" in cli.error("nope", code=2)
    assert "No flow is named 'nope'" in cli.error("flow-run", "ls", "--flow", "nope")


def test_an_unreachable_server_is_reported_quickly(cli: Cli) -> None:
    url = f"http://127.0.0.1:{unused_port()}/graphql"
    began = time.monotonic()
    line = cli.error("flow-run", "ls", RUNVIEW_API_URL=url)
    assert time.monotonic() - began < 10
    assert f"Cannot reach the runview server at {url!r}" in line


def test_a_bad_database_url_is_one_line(cli: Cli, databases: DatabaseFactory) -> None:
    line = cli.error("flow", "ls", RUNVIEW_DATABASE_URL="nonsense://x", RUNVIEW_API_URL=None)
    assert "Cannot open the embedded database 'nonsense://x'" in line
    line = cli.error("db", "upgrade", "--database-url", "nonsense://x")
    assert "nonsense://x" in line
    url = f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/none"
    line = cli.error("db", "upgrade", "--database-url", url)
    assert f"Cannot open the database {url!r}" in line and "Connection refused" in line
    # The server refuses, in one line, what it could not serve: it starts no uvicorn.
    assert "nonsense://x" in cli.error("server", "start", "--database-url", "nonsense://x")
    empty = databases.new("postgresql", migrated=False)
    line = cli.error("server", "start", "--port", "1", "--database-url", empty)
    assert "is at revision None, but this server needs" in line and "runview db upgrade" in line
