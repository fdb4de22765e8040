"""``runview api-key``, and a server that requires keys, as users meet them: real
subprocesses for the CLI and the agent, a real server over HTTP, real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk import Client
from sdk.exceptions import AccessDenied
from tests.conftest import DatabaseFactory, Server, unused_port
from tests.sdk.cli.conftest import FLOWS, Cli


@pytest.fixture
def keyed(databases: DatabaseFactory, tmp_path: Path) -> Iterator[Cli]:
    """A server requiring keys over a fresh PostgreSQL database; the CLI points at it but
    holds no key (tests add RUNVIEW_API_KEY where they mean to)."""
    url = databases.new("postgresql")
    server = Server(url).start(auth="required", auth_cache_seconds=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNVIEW_")}
    env.update(
        RUNVIEW_HOME=str(tmp_path / "home"),
        RUNVIEW_API_URL=f"{server.url}/graphql",
        RUNVIEW_DATABASE_URL=url,  # what the server-side `api-key` commands open
    )
    (tmp_path / "flows.py").write_text(FLOWS)
    client = Client(f"{server.url}/graphql")
    try:
        yield Cli(env=env, cwd=tmp_path, server=server, client=client)
    finally:
        client.close()
        server.stop()


def _create(cli: Cli, name: str, scope: str) -> str:
    result = cli("api-key", "create", name, "--scope", scope)
    *said, token = result.stdout.strip().splitlines()
    assert token.startswith("rv_") and len(token) == 46, result.stdout
    assert name in said[0] and scope in said[0]
    return token


def test_keys_are_made_listed_and_revoked_and_only_hashes_are_kept(keyed: Cli) -> None:
    read = _create(keyed, "reader", "read")
    _create(keyed, "ci", "write")
    listed = keyed.json("api-key", "ls")
    assert [(k["name"], k["scope"], k["revoked"]) for k in listed] == [
        ("reader", "read", None),
        ("ci", "write", None),
    ]
    table = keyed("api-key", "ls").stdout
    assert "reader" in table and read not in table
    assert read not in json.dumps(listed)

    assert "revoked" in keyed("api-key", "revoke", "reader").stdout.lower()
    assert keyed.json("api-key", "ls")[0]["revoked"] is not None
    # The name is free again; an id revokes too.
    again = _create(keyed, "reader", "read")
    assert again != read
    new_id = keyed.json("api-key", "ls")[-1]["id"]
    keyed("api-key", "revoke", new_id)

    assert "exists already" in keyed.error("api-key", "create", "ci", "--scope", "write")
    assert "'nope'" in keyed.error("api-key", "create", "x", "--scope", "nope", code=2)
    assert "No key is named 'ghost'" in keyed.error("api-key", "revoke", "ghost")
    assert "not usable" in keyed.error("api-key", "create", " ")


def test_the_cli_sdk_and_agent_send_the_key(keyed: Cli) -> None:
    write = _create(keyed, "agent", "write")
    read = _create(keyed, "viewer", "read")

    # No key: one line that says what to do; a read key cannot register or create runs.
    assert "requires an API key" in keyed.error("flow-run", "ls")
    refused = keyed.error("register", "flows.py", RUNVIEW_API_KEY=read)
    assert "scope 'read'" in refused and "needs 'write'" in refused

    keyed("register", "flows.py", RUNVIEW_API_KEY=write)
    scheduled = json.loads(
        keyed("flow-run", "create", "hello", "--output", "json", RUNVIEW_API_KEY=write).stdout
    )["id"]
    agent_env = {**keyed.env, "RUNVIEW_API_KEY": write}
    agent = subprocess.Popen(
        [sys.executable, "-m", "sdk.cli", "agent", "start", "--poll-interval", "0.1"],
        env=agent_env,
        cwd=keyed.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        watched = keyed("flow-run", "watch", scheduled, timeout=120, RUNVIEW_API_KEY=read)
    finally:
        agent.terminate()
        output = agent.communicate(timeout=30)[0]
    assert "Completed" in watched.stdout, (watched.stdout, output)
    assert "Traceback" not in output, output
    runs = json.loads(keyed("flow-run", "ls", "--output", "json", RUNVIEW_API_KEY=read).stdout)
    assert [(r["flow"], r["state"]) for r in runs] == [("hello", "Completed")]

    # The SDK: no key is refused as such, a read key reads.
    with pytest.raises(AccessDenied, match="requires an API key"):
        _flow_names(Client(keyed.env["RUNVIEW_API_URL"]))
    assert _flow_names(Client(keyed.env["RUNVIEW_API_URL"], api_key=read)) == [
        "checks",
        "graph",
        "hello",
    ]


def _flow_names(client: Client) -> list[str]:
    from sdk import documents

    try:
        return sorted(f["name"] for f in client.execute(documents.FLOWS, {"where": {}})["flow"])
    finally:
        client.close()


@pytest.mark.parametrize("auth", [None, "off"])
def test_the_server_refuses_a_non_loopback_host_without_keys(keyed: Cli, auth: str | None) -> None:
    line = keyed.error(
        "server", "start", "--host", "0.0.0.0", "--port", str(unused_port()), RUNVIEW_AUTH=auth
    )
    assert "Refusing to serve '0.0.0.0' without API keys" in line
    assert "RUNVIEW_AUTH=required" in line and "--insecure" in line
