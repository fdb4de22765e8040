"""The graph style: ``with Flow("name") as f:`` records task calls instead of running them.

Each call (or ``.map``) inside the block becomes a ``Node``, which later calls may take as an
argument; ``f.run()`` replays the nodes in order through the eager engine: every node is
submitted to the flow's task runner, nodes passed as arguments become futures (so they are
dependencies), and the flow's final state follows its task runs. ``Parameter("x")`` is a
node whose value comes from ``f.run(parameters={"x": ...})``.
"""

from __future__ import annotations

from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from sdk.exceptions import InvalidInput

_REQUIRED: Any = object()


@dataclass(eq=False)
class Node:
    """A recorded task call; its value, once run, is the task run's future(s)."""

    task: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    mapped: bool
    slug: str

    def __repr__(self) -> str:
        return f"Node({self.slug}{'.map' if self.mapped else ''})"


@dataclass(eq=False)
class Parameter:
    """A value given when the flow runs: ``f.run(parameters={name: value})``."""

    name: str
    default: Any = _REQUIRED

    def __post_init__(self) -> None:
        graph = GRAPH.get()
        if graph is not None:
            graph.parameters.append(self)


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    parameters: list[Parameter] = field(default_factory=list)
    _calls: Counter[str] = field(default_factory=Counter)

    def record(
        self, task: Any, args: tuple[Any, ...], kwargs: dict[str, Any], mapped: bool
    ) -> Node:
        self._calls[task.name] += 1
        node = Node(task, args, kwargs, mapped, f"{task.name}-{self._calls[task.name]}")
        self.nodes.append(node)
        return node

    def run(self, **parameters: Any) -> None:
        """Replay the nodes inside the running flow; the flow's result is its task runs'."""
        unknown = sorted(set(parameters) - {p.name for p in self.parameters})
        if unknown:
            raise InvalidInput(
                f"parameters {unknown!r} are not Parameters of this flow; expected some of"
                f" {sorted(p.name for p in self.parameters)}."
            )
        values: dict[Any, Any] = {}

        def resolve(value: Any) -> Any:
            if isinstance(value, Node):
                return values[value]
            if isinstance(value, Parameter):
                if value.name in parameters:
                    return parameters[value.name]
                if value.default is _REQUIRED:
                    raise InvalidInput(f"parameter {value.name!r} has no value and no default.")
                return value.default
            if isinstance(value, list | tuple):
                return type(value)(resolve(item) for item in value)
            if isinstance(value, dict):
                return {key: resolve(item) for key, item in value.items()}
            return value

        for node in self.nodes:
            args, kwargs = resolve(node.args), resolve(node.kwargs)
            runner = node.task.map if node.mapped else node.task.submit
            values[node] = runner(*args, **kwargs)


GRAPH: ContextVar[Graph | None] = ContextVar("runview_graph", default=None)
