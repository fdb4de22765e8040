"""Entrypoints: where a flow is defined, as ``path/to/file.py:name`` or ``package.module:name``.

``runview register`` loads every flow a file or module defines and records each with its
entrypoint; an agent later loads a flow run's flow from that entrypoint. A file is run by
path (not imported as ``__main__``, so its ``if __name__ == "__main__":`` block does not
run), with its directory first on ``sys.path`` so it can import its neighbours, as
``python file.py`` would. A module is imported by name, with the working directory on
``sys.path``.

Example::

    for entrypoint, flow in load_flows("flows/etl.py"):
        print(entrypoint)  # /home/me/flows/etl.py:etl
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import runpy
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdk.exceptions import InvalidInput
from sdk.flows import Flow

__all__ = ["Target", "load_flow", "load_flows", "parse_target", "source_hash"]


@dataclass(frozen=True)
class Target:
    """What to load: a file (absolute path) or a module, and optionally one flow in it."""

    file: Path | None
    module: str | None
    flow: str | None

    @property
    def where(self) -> str:
        return str(self.file) if self.file is not None else str(self.module)

    def entrypoint(self, attribute: str) -> str:
        return f"{self.where}:{attribute}"


def parse_target(text: str) -> Target:
    """``file.py``, ``file.py:flow``, ``package.module`` or ``package.module:flow``.

    Raises:
        InvalidInput: Neither an existing file nor a module name.
    """
    where, colon, flow = text.rpartition(":") if ":" in text else (text, "", "")
    if colon and ("/" in flow or "\\" in flow):  # a colon inside a path, not a flow name
        where, flow = text, ""
    if colon and not flow:
        raise InvalidInput(f"{text!r} names no flow after ':'; expected FILE[:FLOW].")
    path = Path(where).expanduser()
    if path.suffix == ".py" or path.is_file():
        if not path.is_file():
            raise InvalidInput(f"There is no file {where!r}; expected a Python file of flows.")
        return Target(file=path.resolve(), module=None, flow=flow or None)
    if all(part.isidentifier() for part in where.split(".")):
        return Target(file=None, module=where, flow=flow or None)
    raise InvalidInput(
        f"{where!r} is neither a file nor a module name; expected 'path/to/file.py' or"
        " 'package.module', optionally followed by ':flow'."
    )


def load_flows(target: Target | str) -> list[tuple[str, Flow]]:
    """Every flow ``target`` defines (or the one it names), each with its entrypoint.

    A flow bound to several names is found once, under its first name.

    Raises:
        InvalidInput: The file or module cannot be loaded, defines no flow, or has no flow
            of the name asked for.
    """
    if isinstance(target, str):
        target = parse_target(target)
    namespace = _load(target)
    found: dict[int, tuple[str, Flow]] = {}
    for attribute, value in namespace.items():
        if isinstance(value, Flow) and not attribute.startswith("__"):
            found.setdefault(id(value), (attribute, value))
    flows = list(found.values())
    if not flows:
        raise InvalidInput(
            f"{target.where!r} defines no flows; expected objects made with @flow or Flow('name')."
        )
    if target.flow is not None:
        named = [(a, f) for a, f in flows if target.flow in (a, f.name)]
        if not named:
            have = ", ".join(sorted(a for a, _ in flows))
            raise InvalidInput(f"{target.where!r} has no flow {target.flow!r}; it has: {have}.")
        flows = named[:1]
    names: dict[str, str] = {}
    for attribute, flow in flows:
        if (other := names.setdefault(flow.name, attribute)) != attribute:
            raise InvalidInput(
                f"{target.where!r} has two flows named {flow.name!r} ({other} and {attribute});"
                " flow names must be unique."
            )
    return [(target.entrypoint(attribute), flow) for attribute, flow in flows]


def load_flow(entrypoint: str | None, flow_name: str) -> Flow:
    """The flow ``flow_name`` at ``entrypoint`` (``path/to/file.py:name`` or
    ``package.module:name``), for an agent to run.

    Raises:
        InvalidInput: The entrypoint is malformed, its file or module cannot be run, or what
            it names is not a flow.
    """
    if not entrypoint or ":" not in entrypoint:
        raise InvalidInput(
            f"flow {flow_name!r} has entrypoint {entrypoint!r}; expected 'path/to/file.py:name'"
            " or 'package.module:name' (register it with `runview register FILE`)."
        )
    where, _, attribute = entrypoint.rpartition(":")
    cannot = f"cannot load flow {flow_name!r} from {where!r}"
    if where.endswith(".py") or "/" in where or "\\" in where:
        target = Target(file=Path(where).expanduser().resolve(), module=None, flow=attribute)
    else:
        target = Target(file=None, module=where, flow=attribute)
    try:
        namespace = _run(target)
    except _Unloadable as error:
        raise InvalidInput(f"{cannot}: {error}.") from error
    found = namespace.get(attribute)
    if not isinstance(found, Flow):
        raise InvalidInput(f"{cannot}: {attribute!r} is {type(found).__name__}, not a flow.")
    return found


def source_hash(target: Target) -> str:
    """The sha256 of the file a target loads from: registering unchanged code changes
    nothing, and changed code bumps the flow's version."""
    path = target.file
    if path is None:
        spec = importlib.util.find_spec(str(target.module))
        origin = spec.origin if spec is not None else None
        if origin is None or not Path(origin).is_file():
            raise InvalidInput(f"module {target.module!r} has no source file to register.")
        path = Path(origin)
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Unloadable(Exception):
    """Why a file or module could not be run, in a few words."""


def _load(target: Target) -> dict[str, Any]:
    try:
        return _run(target)
    except _Unloadable as error:
        raise InvalidInput(f"Loading {target.where!r} failed: {error}") from error


def _run(target: Target) -> dict[str, Any]:
    """The namespace of the target's file or module, after running it."""
    try:
        if target.file is not None:
            _put_on_sys_path(target.file.parent)
            return runpy.run_path(str(target.file), run_name="__runview__")
        _put_on_sys_path(Path.cwd())
        return vars(importlib.import_module(str(target.module)))
    except ModuleNotFoundError as error:
        if target.module is not None and error.name and target.module.startswith(error.name):
            raise _Unloadable(
                f"There is no module {target.module!r} (looked on sys.path, from {Path.cwd()})"
            ) from None
        raise _Unloadable(_describe(error)) from error
    except OSError as error:  # its text would repeat the path, which the caller names
        raise _Unloadable(error.strerror or _describe(error)) from error
    except (Exception, SystemExit) as error:  # the user's code: one line, and where
        raise _Unloadable(_describe(error)) from error


def _describe(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    at = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {error}{at}"


def _put_on_sys_path(directory: Path) -> None:
    # Left there afterwards: a flow's code may import its neighbours only when it runs.
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
