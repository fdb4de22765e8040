"""A PostgreSQL cluster of a test's own, to stop and start at will.

Fault tests take a database away from a running server. They must never do that to the
shared server the rest of the suite uses, so ``ThrowawayPostgres`` makes a cluster with
``initdb`` (from the installed PostgreSQL packages) in a temporary directory, serves it with
``pg_ctl`` on a free loopback port (its unix socket in that directory too), and removes it
all when the block ends, however it ends::

    with ThrowawayPostgres() as pg:
        url = pg.url            # postgresql+psycopg://postgres@127.0.0.1:<port>/runview
        pg.stop()               # the database goes away...
        pg.start()              # ...and comes back on the same port, with the same data

initdb refuses to run as root; as root (containers, CI) the cluster belongs to the
``postgres`` OS user, its commands run through ``runuser``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import psycopg

from tests.conftest import unused_port

DATABASE = "runview"
# Seconds any one pg_ctl or initdb call may take before the test gives up on it.
COMMAND_TIMEOUT = 60
# Durability buys nothing in a cluster that is deleted at the end of the test.
_FAST = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian's layout, or $PATH)."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if installed:
        return installed[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError(
            "initdb was not found under /usr/lib/postgresql/*/bin nor on $PATH;"
            " the fault tests need the PostgreSQL server packages installed."
        )
    return Path(initdb).parent


class ThrowawayPostgres:
    """A cluster in a temporary directory on a free loopback port, with one database.

    Args:
        port: The port to listen on; default a free one, kept across ``stop``/``start``.
    """

    def __init__(self, port: int | None = None) -> None:
        self.bin = postgres_bin()
        self.port = port or unused_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self.root: Path | None = None
        self._as_root = os.geteuid() == 0

    @property
    def data(self) -> Path:
        assert self.root is not None, "the cluster is not set up"
        return self.root / "data"

    @property
    def log(self) -> Path:
        assert self.root is not None, "the cluster is not set up"
        return self.root / "postgres.log"

    def __enter__(self) -> ThrowawayPostgres:
        try:
            self.create()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

    def create(self) -> None:
        """initdb, start, and create the database."""
        self.root = Path(tempfile.mkdtemp(prefix="runview-pg-"))
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb",
            ["-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"]
            + ["--encoding=UTF8", "--locale=C"],
        )
        self.start()
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(f"CREATE DATABASE {DATABASE}")

    def start(self) -> None:
        """Start the cluster (again) and wait until it accepts connections."""
        options = " ".join(
            [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1"]
            + [f"-c {setting}" for setting in _FAST]
        )
        self._run(
            "pg_ctl",
            ["start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "-o", options],
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: ``fast`` ends sessions cleanly, ``immediate`` as a crash would."""
        self._run("pg_ctl", ["stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30"])

    @property
    def running(self) -> bool:
        return self.root is not None and (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        """Stop the cluster if it runs and delete its directory; never raises."""
        if self.root is None:
            return
        if self.running:
            try:
                self.stop("immediate")
            except (subprocess.SubprocessError, RuntimeError):
                self._kill_postmaster()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def _kill_postmaster(self) -> None:
        # pg_ctl failed to stop it: end the one process this cluster started, by its pid.
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)

    def _run(self, program: str, args: Sequence[str]) -> None:
        command = [str(self.bin / program), *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, cwd=self.root
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args[:1])} failed ({result.returncode}):"
                f" {result.stderr.strip() or result.stdout.strip()}\n{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
