"""One claimed flow run in a process of its own: the agent's handle on the process (here),
and what the process runs (``__main__``).

The agent (``sdk.agent``) starts ``python -m sdk._run_process`` for each run it claims and
writes the run to its stdin as one JSON object, ``{flow_run_id, version, flow_name,
entrypoint, parameters}`` (not in argv: parameters may be large, and anyone on the machine
can read argv). The process loads the flow from its entrypoint, runs it as that run, and
exits 0 once the run is over, whatever its final state; a flow it cannot load ends Failed
with the reason. It reaches the server the way the agent does: the agent passes its
client's settings as ``RUNVIEW_*`` variables.

The process writes to the agent's stdout; its stderr goes through the agent, which passes
each line on and keeps the last ones: when the process dies before its run ends (a signal,
an exit code, a failed import of runview itself), they go into the run's Crashed message.
Each process leads a session of its own, so Ctrl-C in the agent's terminal reaches the
agent alone, which decides how its runs end, and stopping a process stops what it started.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from sdk.client import Client

# The stderr kept for a Crashed message: the last lines, each and all of them bounded.
TAIL_LINES = 20
TAIL_LINE_CHARS = 500
TAIL_CHARS = 4_000


def environment(client: Client) -> dict[str, str]:
    """This process's environment, with ``client``'s settings for the run's process.

    ``RUNVIEW_HOME`` stays this process's own: results are written under it by default, as
    they would be if the flow ran here.
    """
    env = dict(os.environ)
    settings = client.settings.model_dump(exclude={"home"})
    settings.update(api_url=client.api_url, api_key=client.api_key)
    if client.embedded:  # the same database file or server, opened by the process itself
        settings["database_url"] = client.settings.embedded_database_url
    for name, value in settings.items():
        key = f"RUNVIEW_{name.upper()}"
        if value is None:  # unset here, so unset there (no RUNVIEW_API_URL: embedded)
            env.pop(key, None)
        elif isinstance(value, str | int | float | os.PathLike):
            env[key] = str(value)
        else:
            env[key] = json.dumps(value)
    return env


class RunProcess:
    """The process running one claimed flow run.

    Args:
        row: The claimed run, as ``claim_flow_runs`` answers it.
        client: Whose settings the process uses to reach the server.
        on_exit: Called (from another thread) when the process closes its stderr, which
            it does when it exits.
    """

    def __init__(self, row: dict[str, Any], client: Client, on_exit: Callable[[], None]) -> None:
        run = {
            "flow_run_id": row["id"],
            "version": row["version"],
            "flow_name": row["flow"]["name"],
            "entrypoint": row["flow"]["entrypoint"],
            "parameters": row["parameters"],
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sdk._run_process"],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(client),
            start_new_session=True,
        )
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        threading.Thread(target=self._send, args=(json.dumps(run).encode(),), daemon=True).start()
        self._reader = threading.Thread(target=self._pass_on, args=(on_exit,), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        """The exit code (negative: the signal that ended it), or None while it runs."""
        return self.process.poll()

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process and to everything it started (its session)."""
        if self.process.poll() is None:  # not yet reaped: the group id is still its own
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:  # exited meanwhile
                pass

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process and the last of its stderr; its exit code."""
        code = self.process.wait(timeout)
        # A process it started may hold the pipe open after it exited: do not wait for it.
        self._reader.join(timeout=1)
        return code

    def exit_reason(self) -> str:
        """How the process ended, for a message: "exited with code 3"."""
        code = self.process.returncode
        if code is None:
            return "is still running"
        if code >= 0:
            return f"exited with code {code}"
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        if name == "SIGKILL":  # `kill -9`, or the kernel's OOM killer
            return "was killed by signal SIGKILL (as the kernel does when memory runs out)"
        return f"was killed by signal {name}"

    def stderr_tail(self) -> str:
        """The last lines the process wrote on stderr (bounded), or ''."""
        lines = list(self._tail)
        while len(lines) > 1 and sum(len(line) + 1 for line in lines) > TAIL_CHARS:
            lines.pop(0)
        return "\n".join(lines)

    def _send(self, payload: bytes) -> None:
        stdin: IO[bytes] | None = self.process.stdin
        assert stdin is not None
        try:
            with stdin:
                stdin.write(payload)
        except OSError:  # it died before reading: its exit code will say why
            pass

    def _pass_on(self, on_exit: Callable[[], None]) -> None:
        """Copy the process's stderr to ours line by line, keeping the last lines."""
        stderr: IO[bytes] | None = self.process.stderr
        assert stderr is not None
        try:
            with stderr:
                for raw in stderr:
                    line = raw.decode(errors="replace")
                    try:
                        sys.stderr.write(line)
                        sys.stderr.flush()
                    except (OSError, ValueError):  # our stderr is gone; keep the tail anyway
                        pass
                    # No NUL: the server stores messages as text, and PostgreSQL refuses it.
                    kept = line.rstrip("\r\n").replace("\x00", "\ufffd")
                    if len(kept) > TAIL_LINE_CHARS:
                        kept = kept[: TAIL_LINE_CHARS - 1] + "…"
                    self._tail.append(kept)
        finally:
            on_exit()
