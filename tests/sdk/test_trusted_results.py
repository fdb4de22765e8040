"""Results are trusted by where they are: a pickle or cloudpickle result loads only from
under a trusted root, json from anywhere, and a refused one is refused before a byte of it
is read. Root matching without a database; planted results through the real server (HTTP),
on PostgreSQL and SQLite, read back by every path: views (sync, async, a mapped parent's
batch), ``State.result()``, and a parent flow pulling a child flow run's result."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk import FlowRunView, ResultStorage, TaskRunView, documents, flow, get_task_run_result, task
from sdk.client import Client
from sdk.exceptions import InvalidInput, ResultNotTrusted
from sdk.results import ResultRef, read_result, read_results
from sdk.results.trust import TrustedRoots, template_root
from sdk.settings import SDKSettings
from tests.conftest import Server
from tests.sdk.conftest import Recorder

SETTING = "RUNVIEW_TRUSTED_RESULT_ROOTS"


class Planted:
    """Pickled, it says: call ``open(marker, "w")`` to unpickle me. Loading it makes the
    marker file, so a marker that does not exist proves nothing ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def plant(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Planted(marker)))
    return path


@pytest.fixture(autouse=True)
def _no_trusted_roots_from_outside(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The test's own results directory, not the machine's; the setting unset."""
    monkeypatch.setenv("RUNVIEW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(SETTING, raising=False)


# Matching roots, without a database


@pytest.mark.parametrize(
    ("location", "root", "covered"),
    [
        ("/a/results/r1", "/a/results", True),
        ("/a/results", "/a/results", True),
        ("/a/results/f/t", "/a/results/", True),
        ("/a/results-evil/r1", "/a/results", False),
        ("/a/resultsx", "/a/results", False),
        ("/a/results/../evil.pkl", "/a/results", False),
        ("/a/results/f/../../evil.pkl", "/a/results", False),
        ("/a/results/f/../t", "/a/results", True),
        ("/a/./results/r1", "/a/results", True),
        ("/a//results/r1", "/a/results", True),
        ("/b/results/r1", "/a/results", False),
        # Local paths and file:// (or local://) URLs are one thing, either way round.
        ("file:///a/results/r1", "/a/results", True),
        ("/a/results/r1", "file:///a/results/", True),
        ("local:///a/results/r1", "file:///a/results", True),
        ("file:///a/results-evil/r1", "file:///a/results", False),
        ("file:///a/results/../../etc/evil", "/a/results", False),
        ("/anywhere/r1", "/", True),
        # Other filesystems: protocol and path; dot segments are refused outright.
        ("s3://bucket/prefix/r1", "s3://bucket/prefix/", True),
        ("s3://bucket/prefix", "s3://bucket/prefix/", True),
        ("s3://bucket/prefix-evil/r1", "s3://bucket/prefix/", False),
        ("s3://bucket/prefix/../r1", "s3://bucket/prefix/", False),
        ("s3://bucket/prefix/%2e%2e/r1", "s3://bucket/prefix/", False),
        ("s3://bucket/prefix/./r1", "s3://bucket/prefix/", False),
        ("s3://bucket//prefix/r1", "s3://bucket/prefix/", False),
        ("s3://bucket/prefix//r1", "s3://bucket/prefix/", True),
        ("s3://other/prefix/r1", "s3://bucket/prefix/", False),
        ("gs://bucket/prefix/r1", "s3://bucket/prefix/", False),
        ("s3://bucket/prefix/r1", "/bucket/prefix", False),
        ("/bucket/prefix/r1", "s3://bucket/prefix", False),
        ("S3://bucket/prefix/r1", "s3://bucket/prefix", True),
        ("s3://bucket/anything", "s3://", True),
        ("memory://r/f/t", "memory://r", True),
        ("memory:///r/f/t", "memory://r/", True),
        ("http://host/results/r1", "https://host/results", False),
        ("https://host/evil?a=/../results/r1", "https://host/results", False),
        ("https://host/results/r1", "https://host/results", True),
        # A chain is trusted only as the chain it is.
        ("simplecache::s3://bucket/prefix/r1", "s3://bucket/prefix", False),
        ("simplecache::s3://bucket/prefix/r1", "simplecache::s3://bucket/prefix", True),
        ("s3://bucket/prefix/r1", "simplecache::s3://bucket/prefix", False),
    ],
)
def test_a_location_is_under_a_root_by_what_both_name(
    location: str, root: str, covered: bool
) -> None:
    assert TrustedRoots([root]).cover(location) is covered


def test_relative_and_home_paths_are_made_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/tmp")
    assert TrustedRoots(["results"]).cover("/tmp/results/r1")
    assert TrustedRoots(["/tmp/results"]).cover("results/r1")
    assert TrustedRoots(["/tmp/results"]).cover("file://results/r1")
    assert TrustedRoots([str(Path.home() / "r")]).cover("~/r/x")
    assert not TrustedRoots(["/tmp/results"]).cover("results/../r1")


@pytest.mark.parametrize(
    ("template", "root"),
    [
        ("/data/results/{flow_run_id}/{task_run_id}", "/data/results/"),
        ("/data/results/{flow_name}-{task_slug}", "/data/results/"),
        ("/data/run-{flow_run_id}/x", "/data/"),
        ("s3://bucket/{flow_name}/{flow_run_id}", "s3://bucket/"),
        ("s3://{flow_name}/x", "s3://"),
        ("memory://r/{{literal}}/{task_run_id}", "memory://r/{literal}/"),
        ("simplecache::s3://bucket/p/{task_run_id}", "simplecache::s3://bucket/p/"),
        ("/data/one-result.pkl", "/data/one-result.pkl"),
    ],
)
def test_a_storage_template_is_trusted_up_to_its_first_field(template: str, root: str) -> None:
    assert template_root(template) == root


@pytest.mark.parametrize(
    ("value", "roots"),
    [
        ("/data/results", ["/data/results"]),
        ("/data/results, s3://bucket/runs/ ,", ["/data/results", "s3://bucket/runs/"]),
        ('["/data/a,b", "memory://r"]', ["/data/a,b", "memory://r"]),
        ("[]", []),
    ],
)
def test_the_setting_is_comma_separated_or_a_json_list(
    monkeypatch: pytest.MonkeyPatch, value: str, roots: list[str]
) -> None:
    monkeypatch.setenv(SETTING, value)
    assert SDKSettings().result_roots == roots


def test_unset_the_setting_trusts_the_local_results_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert SDKSettings().result_roots == [str(tmp_path / "home" / "results")]
    monkeypatch.setenv(SETTING, "")
    assert SDKSettings().result_roots == [str(tmp_path / "home" / "results")]


def test_a_result_storage_made_in_this_process_is_trusted(tmp_path: Path) -> None:
    ref = ResultRef(str(tmp_path / "mine" / "f" / "t"), "pickle")
    assert not TrustedRoots.now().cover(ref.location)
    storage = ResultStorage(str(tmp_path / "mine" / "{flow_run_id}" / "{task_run_id}"))
    assert storage.write([1], flow_run_id="f", task_run_id="t") == ref
    assert TrustedRoots.now().cover(ref.location) and read_result(ref) == [1]
    assert not TrustedRoots.now().cover(str(tmp_path / "mine-too" / "x"))


def test_nothing_is_read_from_a_refused_batch(tmp_path: Path) -> None:
    """Every reference is checked before any is read: a trusted planted result first in the
    batch does not run either."""
    trusted_marker, untrusted_marker = tmp_path / "ran-trusted", tmp_path / "ran-untrusted"
    ResultStorage(str(tmp_path / "trusted" / "{task_run_id}"))
    first = plant(tmp_path / "trusted" / "r1", trusted_marker)
    second = plant(tmp_path / "elsewhere" / "r2", untrusted_marker)
    refs = [ResultRef(str(first), "pickle"), ResultRef(str(second), "cloudpickle")]
    with pytest.raises(ResultNotTrusted) as refused:
        read_results(refs)
    assert refused.value.location == str(second) and refused.value.serializer == "cloudpickle"
    assert repr(str(second)) in str(refused.value) and SETTING in str(refused.value)
    assert not trusted_marker.exists() and not untrusted_marker.exists()
    with pytest.raises(ResultNotTrusted):
        read_result(refs[1])
    assert not untrusted_marker.exists()


def test_an_unknown_serializer_is_named_before_trust_is_asked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="'toml' is not a serializer"):
        read_result(ResultRef(str(tmp_path / "elsewhere" / "r"), "toml"))


# Planted results, through the real server


@pytest.fixture
def sdk_client(server: Server) -> Iterator[Client]:
    client = Client(f"{server.url}/graphql")
    yield client
    client.close()


@pytest.fixture
def recorder(sdk_client: Client, tmp_path: Path) -> Recorder:
    """Writes this process's own results under ``tmp_path/results`` (a trusted root)."""
    return Recorder(sdk_client, ResultStorage(str(tmp_path / "results" / "{task_run_id}")))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


def plant_task_run(recorder: Recorder, flow_run_id: str, slug: str, ref: dict[str, str]) -> str:
    """A task run whose Completed state references ``ref``, proposed as any client may."""
    task_run_id = recorder.task_run(flow_run_id, slug)
    recorder.propose([(task_run_id, 1, {"type": "RUNNING"})])
    recorder.propose([(task_run_id, 2, {"type": "COMPLETED", "result": ref})])
    return task_run_id


def refused(location: str, serializer: str = "pickle") -> Any:
    """``pytest.raises`` for the refusal of ``location``, checking its message."""
    return pytest.raises(
        ResultNotTrusted,
        match=rf"^The result at {re.escape(repr(location))} is serialized with"
        rf" '{serializer}', which runs code .* add its root to {SETTING}\.$",
    )


def test_a_planted_pickle_is_refused_by_every_read_path_and_nothing_runs(
    sdk_client: Client, recorder: Recorder, marker: Path, tmp_path: Path
) -> None:
    evil = str(plant(tmp_path / "elsewhere" / "evil.pkl", marker))
    flow_run_id = recorder.flow_run()
    plant_task_run(recorder, flow_run_id, "evil-1", {"location": evil, "serializer": "pickle"})
    url = f"file://{evil}"
    plant_task_run(recorder, flow_run_id, "evil-2", {"location": url, "serializer": "cloudpickle"})
    # A mapped parent with an honest child and a planted one: the batched path.
    parent = recorder.task_run(flow_run_id, "inc-1")
    children = {"flow_run_id": flow_run_id, "task_slug": "inc-1", "max_map_index": 1}
    answer = sdk_client.execute(documents.GET_OR_CREATE_MAPPED_CHILDREN, {"input": children})
    honest, planted = answer["get_or_create_mapped_task_run_children"]["ids"]
    ok = recorder.storage.write(1, task_run_id=honest).to_dict()
    recorder.propose(
        [
            (honest, 1, {"type": "COMPLETED", "result": ok}),
            (
                planted,
                1,
                {"type": "COMPLETED", "result": {"location": evil, "serializer": "pickle"}},
            ),
            (parent, 1, {"type": "RUNNING"}),
        ]
    )
    recorder.propose([(parent, 2, {"type": "COMPLETED"})])

    view = TaskRunView.from_task_slug("evil-1", flow_run_id, client=sdk_client)
    with refused(evil):
        view.get_result()
    with refused(evil):
        view.state.result()
    with refused(url, "cloudpickle"):
        TaskRunView.from_task_slug("evil-2", flow_run_id, client=sdk_client).get_result()

    async def read_async() -> None:
        view = await TaskRunView.afrom_task_slug("evil-1", flow_run_id, client=sdk_client)
        await view.aget_result()

    with refused(evil):
        asyncio.run(read_async())
    inc = TaskRunView.from_task_slug("inc-1", flow_run_id, client=sdk_client)
    with refused(evil):
        inc.get_result()
    with refused(evil):
        asyncio.run(
            TaskRunView.from_task_slug("inc-1", flow_run_id, client=sdk_client).aget_result()
        )
    assert TaskRunView.from_task_slug("inc-1", flow_run_id, 0, client=sdk_client).get_result() == 1
    flow_run = FlowRunView.from_flow_run_id(flow_run_id, client=sdk_client)
    with refused(evil):
        flow_run.get_task_run("evil-1").get_result()

    # Composing flows: a parent flow pulls the planted result out of its "child" flow run.
    recorder.propose_flow(flow_run_id, 2, {"type": "COMPLETED"})

    @flow(client=sdk_client, result_storage=str(tmp_path / "results" / "{task_run_id}"))
    def pulls() -> Any:
        return get_task_run_result(flow_run_id, "evil-1", poll_interval=0.05)

    state = pulls(return_state=True)
    assert state.is_failed() and isinstance(state.exception, ResultNotTrusted), state
    assert repr(evil) in str(state.exception) and SETTING in str(state.exception)

    assert not marker.exists()


def test_the_prefix_trick_and_dot_dot_are_refused(
    sdk_client: Client, recorder: Recorder, marker: Path, tmp_path: Path
) -> None:
    # tmp_path/results is trusted (the recorder's storage); these are beside it.
    beside = str(plant(tmp_path / "results-evil" / "r.pkl", marker))
    escaping = str(tmp_path / "results" / ".." / "elsewhere" / "r.pkl")
    plant(tmp_path / "elsewhere" / "r.pkl", marker)
    as_url = f"file://{tmp_path}/results/../results-evil/r.pkl"
    flow_run_id = recorder.flow_run()
    for n, location in enumerate([beside, escaping, as_url], start=1):
        plant_task_run(
            recorder, flow_run_id, f"evil-{n}", {"location": location, "serializer": "pickle"}
        )
        with refused(location):
            TaskRunView.from_task_slug(f"evil-{n}", flow_run_id, client=sdk_client).get_result()
    assert not marker.exists()


def test_under_a_root_the_setting_names_the_same_result_loads(
    sdk_client: Client,
    recorder: Recorder,
    marker: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    evil = str(plant(tmp_path / "elsewhere" / "evil.pkl", marker))
    flow_run_id = recorder.flow_run()
    plant_task_run(recorder, flow_run_id, "planted-1", {"location": evil, "serializer": "pickle"})
    with refused(evil):
        TaskRunView.from_task_slug("planted-1", flow_run_id, client=sdk_client).get_result()
    assert not marker.exists()

    # Trusted (as a file:// URL, beside another root): it loads, and so its code runs.
    monkeypatch.setenv(SETTING, f"s3://bucket/runs/,file://{tmp_path}/elsewhere/")
    loaded = TaskRunView.from_task_slug("planted-1", flow_run_id, client=sdk_client).get_result()
    loaded.close()
    assert marker.exists()


def test_json_loads_from_anywhere(sdk_client: Client, recorder: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "r.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"rows": [1, 2]}))
    flow_run_id = recorder.flow_run()
    plant_task_run(recorder, flow_run_id, "data-1", {"location": str(path), "serializer": "json"})
    view = TaskRunView.from_task_slug("data-1", flow_run_id, client=sdk_client)
    assert view.get_result() == {"rows": [1, 2]}
    assert not TrustedRoots.now().cover(str(path))


@task
def add_one(x: int) -> int:
    return x + 1


def test_what_the_sdk_writes_by_default_reads_back_in_another_process_unconfigured(
    sdk_client: Client, server: Server, tmp_path: Path
) -> None:
    @flow(client=sdk_client)
    def default_storage() -> int:
        return add_one(1)

    state = default_storage(return_state=True)
    view = FlowRunView.from_flow_run_id(state.flow_run_id, client=sdk_client).get_task_run(
        "add_one-1"
    )
    assert view.state.result_ref is not None and view.state.result_ref.serializer == "pickle"
    location = view.state.result_ref.location
    assert Path(location).is_relative_to(tmp_path / "home" / "results")
    assert TrustedRoots(SDKSettings().result_roots).cover(location)

    script = (
        "import sys; from sdk import TaskRunView;"
        " print(TaskRunView.from_task_slug('add_one-1', sys.argv[1]).get_result())"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNVIEW_")}
    env |= {"RUNVIEW_API_URL": f"{server.url}/graphql", "RUNVIEW_HOME": str(tmp_path / "home")}
    read = subprocess.run(
        [sys.executable, "-c", script, str(state.flow_run_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "2"


def test_a_pickle_the_reader_does_not_trust_is_refused_in_another_process(
    sdk_client: Client, recorder: Recorder, server: Server, marker: Path, tmp_path: Path
) -> None:
    """The writer's process trusted its storage; a reader elsewhere trusts its own roots."""
    flow_run_id = recorder.flow_run()
    task_run_id = recorder.task_run(flow_run_id, "mine-1")
    recorder.finish(flow_run_id, task_run_id, "written here")
    evil = str(plant(tmp_path / "results" / str(uuid.uuid4()), marker))
    plant_task_run(recorder, flow_run_id, "evil-1", {"location": evil, "serializer": "pickle"})
    script = (
        "import sys; from sdk import TaskRunView;"
        " print(TaskRunView.from_task_slug(sys.argv[2], sys.argv[1]).get_result())"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNVIEW_")}
    env |= {"RUNVIEW_API_URL": f"{server.url}/graphql", "RUNVIEW_HOME": str(tmp_path / "home")}

    def read(slug: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, flow_run_id, slug],
            env=env | more,
            capture_output=True,
            text=True,
            timeout=60,
        )

    untrusted = read("evil-1")
    assert untrusted.returncode == 1 and "ResultNotTrusted" in untrusted.stderr
    assert SETTING in untrusted.stderr and not marker.exists()
    trusted = read("mine-1", **{SETTING: str(tmp_path / "results")})
    assert trusted.returncode == 0 and trusted.stdout.strip() == "written here", trusted.stderr
