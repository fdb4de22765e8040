"""A small, fixed history of runs that the read-API tests query.

Two flows (hello, etl), four flow runs in different states (happy: Completed, sad: Failed,
busy: Running with a mapped task, child: Scheduled, started by one of busy's task runs), twelve
task runs, state histories and logs. Times are fixed offsets from T0 so expected answers can be
written by hand; microseconds mirror the seed's timestamps.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from backend import models
from backend.database.engine import Database

T0 = dt.datetime(2021, 5, 12, 18, 0, 0, 696849, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


@dataclass
class Dataset:
    flows: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, Any] = field(default_factory=dict)
    flow_runs: dict[str, Any] = field(default_factory=dict)
    # keyed "<flow run>/<slug>/<map_index>"
    task_runs: dict[str, Any] = field(default_factory=dict)


_STATE_TYPES = {
    "Completed": "COMPLETED",
    "Failed": "FAILED",
    "Running": "RUNNING",
    "Pending": "PENDING",
    "Scheduled": "SCHEDULED",
}


async def seed(db: Database) -> Dataset:
    data = Dataset()
    async with db.begin() as conn:

        async def flow(name: str, **columns: Any) -> None:
            data.flows[name] = await models.insert_flow(conn, name=name, **columns)

        async def task(flow_name: str, name: str, **columns: Any) -> None:
            slug = f"{name}-1"
            flow_id = data.flows[flow_name].id
            row = await models.insert_task(conn, flow_id=flow_id, slug=slug, name=name, **columns)
            data.tasks[slug] = row

        async def flow_run(name: str, flow_name: str, state: str, **columns: Any) -> None:
            data.flow_runs[name] = await models.insert_flow_run(
                conn,
                flow_id=data.flows[flow_name].id,
                name=name,
                state=state,
                state_type=_STATE_TYPES[state],
                **columns,
            )

        async def task_run(run: str, slug: str, state: str, map_index: int = -1, **kw: Any) -> None:
            data.task_runs[f"{run}/{slug}/{map_index}"] = await models.insert_task_run(
                conn,
                flow_run_id=data.flow_runs[run].id,
                task_id=data.tasks[slug].id,
                name=data.tasks[slug].name,
                map_index=map_index,
                state=state,
                state_type=_STATE_TYPES[state],
                **kw,
            )

        await flow("hello", description="Says hello", entrypoint="flows/hello.py:hello")
        await flow("etl", entrypoint="etl.py:etl", version=3)
        await task("hello", "name")
        await task("hello", "capitalize")
        await task("hello", "say_hello", max_retries=2, retry_delay_seconds=1.5, tags=["greeting"])
        await task("etl", "extract")
        await task("etl", "transform", mapped=True, tags=["heavy", "pure"])
        await task("etl", "load")

        await flow_run(
            "happy",
            "hello",
            "Completed",
            parameters={"name": "marvin"},
            labels=["dev"],
            serialized_state={"type": "COMPLETED", "name": "Completed"},
            scheduled_start_time=at(-1),
            start_time=at(0),
            end_time=at(5),
            idempotency_key="k1",
            version=3,
        )
        await flow_run(
            "sad",
            "hello",
            "Failed",
            parameters={"name": "arthur"},
            state_message="say_hello failed",
            scheduled_start_time=at(59),
            start_time=at(60),
            end_time=at(70),
        )
        await flow_run(
            "busy",
            "etl",
            "Running",
            labels=["dev", "prod"],
            scheduled_start_time=at(119),
            start_time=at(120),
            heartbeat=at(125),
        )
        for slug, second in (("name-1", 1), ("capitalize-1", 2), ("say_hello-1", 3)):
            await task_run("happy", slug, "Completed", start_time=at(second), run_count=1)
        await task_run("sad", "name-1", "Completed", start_time=at(61), run_count=1)
        await task_run("sad", "capitalize-1", "Completed", start_time=at(62), run_count=1)
        await task_run(
            "sad", "say_hello-1", "Failed", start_time=at(63), run_count=3, state_message="boom"
        )
        await task_run("busy", "extract-1", "Completed", start_time=at(121))
        await task_run("busy", "transform-1", "Running", start_time=at(122))
        await task_run("busy", "transform-1", "Completed", map_index=0, start_time=at(123))
        await task_run("busy", "transform-1", "Failed", map_index=1, start_time=at(124))
        await task_run("busy", "transform-1", "Running", map_index=2, start_time=at(125))
        await task_run("busy", "load-1", "Pending")
        await flow_run(
            "child",
            "hello",
            "Scheduled",
            scheduled_start_time=at(200),
            parent_task_run_id=data.task_runs["busy/transform-1/-1"].id,
        )

        happy = data.flow_runs["happy"].id
        for version, (state, second) in enumerate(
            [("Scheduled", -1), ("Running", 0), ("Completed", 5)], start=1
        ):
            await models.insert_flow_run_state(
                conn,
                flow_run_id=happy,
                state=state,
                type=_STATE_TYPES[state],
                version=version,
                timestamp=at(second),
            )
        say_hello = data.task_runs["happy/say_hello-1/-1"].id
        for version, state in enumerate(["Pending", "Running", "Completed"], start=1):
            await models.insert_task_run_state(
                conn,
                task_run_id=say_hello,
                state=state,
                type=_STATE_TYPES[state],
                version=version,
                timestamp=at(2 + version / 4),
                result={"location": "/results/x", "serializer": "pickle"}
                if state == "Completed"
                else None,
            )
        await models.insert_log(
            conn,
            flow_run_id=happy,
            level=10,
            name="runview.flow",
            message="starting",
            timestamp=at(0),
        )
        await models.insert_log(
            conn,
            flow_run_id=happy,
            task_run_id=say_hello,
            level=20,
            name="runview.task",
            message="hello marvin",
            timestamp=at(3),
        )
        await models.insert_log(
            conn,
            flow_run_id=data.flow_runs["sad"].id,
            task_run_id=data.task_runs["sad/say_hello-1/-1"].id,
            level=40,
            name="runview.task",
            message="boom",
            timestamp=at(63.5),
        )
    return data
