"""Results on storage the user owns: local files, memory://, and S3 (a real S3-compatible
server, moto's, on loopback, reached through s3fs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from sdk import ResultStorage, TaskRunView
from sdk.exceptions import InvalidInput, ResultError, ResultNotFound, ResultUnreadable
from sdk.results import ResultRef, read_result, read_results
from tests.sdk.conftest import CountingClient, Recorder


@pytest.mark.parametrize(
    "value", [None, 0, "foobar!", [1, 2, 3], {"nested": {"list": [1.5, None]}}]
)
@pytest.mark.parametrize("serializer", ["pickle", "cloudpickle", "json"])
def test_serializers_round_trip(tmp_path: Path, serializer: str, value: Any) -> None:
    storage = ResultStorage(str(tmp_path / "{task_run_id}"), serializer=serializer)
    ref = storage.write(value, task_run_id="r1")
    assert ref == ResultRef(str(tmp_path / "r1"), serializer)
    assert read_result(ref) == value


def test_cloudpickle_stores_what_pickle_cannot(tmp_path: Path) -> None:
    storage = ResultStorage(str(tmp_path / "{task_run_id}"), serializer="cloudpickle")
    ref = storage.write(lambda x: x + 1, task_run_id="f")
    assert read_result(ref)(1) == 2


def test_the_default_location_is_under_runview_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNVIEW_HOME", str(tmp_path))
    flow_run_id, task_run_id = uuid.uuid4(), uuid.uuid4()
    ref = ResultStorage().write(3, flow_run_id=flow_run_id, task_run_id=task_run_id)
    assert Path(ref.location) == tmp_path / "results" / str(flow_run_id) / str(task_run_id)
    assert ref.serializer == "pickle" and read_result(ref) == 3


def test_templates_and_serializers_are_checked() -> None:
    with pytest.raises(InvalidInput, match=r"'/r/\{run_id\}' names \['run_id'\]; it may use"):
        ResultStorage("/r/{run_id}")
    with pytest.raises(InvalidInput, match="'yaml' is not a serializer"):
        ResultStorage("/r/{task_run_id}", serializer="yaml")
    template = "memory://r/{flow_name}/{flow_run_id}/{task_slug}-{map_index}"
    assert (
        ResultStorage(template).location(
            flow_name="etl", flow_run_id="f", task_slug="inc-1", map_index=3
        )
        == "memory://r/etl/f/inc-1-3"
    )


def test_local_results_make_their_directories_and_take_file_urls(tmp_path: Path) -> None:
    plain = ResultStorage(str(tmp_path / "a" / "{flow_run_id}" / "{task_run_id}"))
    url = ResultStorage(f"file://{tmp_path}/b/{{flow_run_id}}/{{task_run_id}}", "json")
    refs = [
        plain.write([1], flow_run_id="f", task_run_id="t"),
        url.write({"x": 2}, flow_run_id="f", task_run_id="u"),
    ]
    assert (tmp_path / "a" / "f" / "t").is_file() and (tmp_path / "b" / "f").is_dir()
    assert [read_result(ref) for ref in refs] == [[1], {"x": 2}] == read_results(refs)
    (tmp_path / "taken").write_text("a file where a directory should be")
    blocked = ResultStorage(str(tmp_path / "taken" / "{task_run_id}"))
    with pytest.raises(ResultError, match=r"Cannot write a result to '.*taken/r'"):
        blocked.write(1, task_run_id="r")


def test_missing_and_unreadable_results_name_their_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNVIEW_TRUSTED_RESULT_ROOTS", str(tmp_path))  # no storage wrote here
    missing = ResultRef(str(tmp_path / "nothing-here"), "pickle")
    with pytest.raises(ResultNotFound, match=f"No result is stored at {missing.location!r}"):
        read_result(missing)
    (tmp_path / "text").write_text("hello")
    with pytest.raises(ResultUnreadable, match="cannot be read with the 'json' serializer"):
        read_result(ResultRef(str(tmp_path / "text"), "json"))
    with pytest.raises(InvalidInput, match="'toml' is not a serializer"):
        read_result(ResultRef(str(tmp_path / "text"), "toml"))


def test_many_results_load_in_order(tmp_path: Path) -> None:
    storage = ResultStorage(str(tmp_path / "{map_index}"))
    refs = [storage.write(i * i, map_index=i) for i in range(200)]
    assert read_results(refs) == [i * i for i in range(200)]


def test_many_results_across_filesystems_keep_order_and_name_what_is_missing(
    tmp_path: Path,
) -> None:
    # One batch, two filesystems (local files read in a loop, memory:// through cat_ranges):
    # the values come back in the order asked, whatever the grouping.
    local = ResultStorage(str(tmp_path / "{map_index}"))
    memory = ResultStorage("memory://runview-batch/{map_index}", serializer="json")
    refs = [(local if i % 3 else memory).write(i, map_index=i) for i in range(30)]
    assert read_results(refs) == list(range(30))
    for gone in (ResultRef(str(tmp_path / "gone"), "pickle"), ResultRef("memory://x/gone", "json")):
        with pytest.raises(ResultNotFound, match=f"No result is stored at {gone.location!r}"):
            read_results([*refs[:4], gone])
    (tmp_path / "text").write_text("hello")
    with pytest.raises(ResultUnreadable, match="cannot be read with the 'json' serializer"):
        read_results([refs[1], ResultRef(str(tmp_path / "text"), "json")])


def test_results_in_memory(client: CountingClient, recorder: Recorder) -> None:
    recorder.storage = ResultStorage("memory://runview-tests/{flow_run_id}/{task_run_id}")
    flow_run_id = recorder.flow_run()
    recorder.finish(flow_run_id, recorder.task_run(flow_run_id, "foo-1"), "foobar!")
    recorder.mapped(flow_run_id, "inc-1", [1, 2, 3])
    view = TaskRunView.from_task_slug("foo-1", flow_run_id, client=client)
    assert view.state.result_ref is not None
    assert view.state.result_ref.location.startswith("memory://runview-tests/")
    assert view.get_result() == "foobar!"
    assert TaskRunView.from_task_slug("inc-1", flow_run_id, client=client).get_result() == [1, 2, 3]


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A real S3-compatible server (moto) on a loopback port; s3fs is pointed at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # What a user sets in fsspec's configuration (or FSSPEC_S3_* variables) for their S3.
    fsspec.config.conf["s3"] = {"endpoint_url": endpoint, "key": "test", "secret": "test"}
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("runview-results")
    yield endpoint
    fsspec.config.conf.pop("s3", None)
    server.stop()


def test_results_on_s3(client: CountingClient, recorder: Recorder, s3: str) -> None:
    recorder.storage = ResultStorage("s3://runview-results/{flow_run_id}/{task_run_id}")
    flow_run_id = recorder.flow_run()
    task_run_id = recorder.task_run(flow_run_id, "foo-1")
    recorder.finish(flow_run_id, task_run_id, "foobar!")
    recorder.mapped(flow_run_id, "inc-1", list(range(1, 21)))

    view = TaskRunView.from_task_slug("foo-1", flow_run_id, client=client)
    assert view.state.result_ref == ResultRef(
        f"s3://runview-results/{flow_run_id}/{task_run_id}", "pickle"
    )
    assert view.get_result() == "foobar!"
    parent = TaskRunView.from_task_slug("inc-1", flow_run_id, client=client)
    assert parent.get_result() == list(range(1, 21))
    # The bytes are really in the bucket, and a missing key is reported by its URL.
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    assert fs.exists(f"runview-results/{flow_run_id}/{task_run_id}")
    missing = ResultRef(f"s3://runview-results/{flow_run_id}/nope", "pickle")
    with pytest.raises(ResultNotFound, match=repr(missing.location)):
        read_result(missing)
