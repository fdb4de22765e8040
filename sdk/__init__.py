"""runview's Python SDK: client, views, flow/task runtime, results, agent and CLI."""

__all__: list[str] = []
