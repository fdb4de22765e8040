"""Results on a location you choose: a folder per flow, one JSON file per task run.

Any fsspec URL works as the template (s3://bucket/..., gs://..., memory://...) when the
matching package is installed; the backend stores only the location and the serializer.

    python examples/custom_result_location.py [FOLDER]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from sdk import TaskRunView, flow, task

FOLDER = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="runview-"))


@task(result_serializer="json")
def extract() -> list[dict[str, int]]:
    return [{"id": 1, "amount": 30}, {"id": 2, "amount": 12}]


@task(result_serializer="json")
def total(rows: list[dict[str, int]]) -> int:
    return sum(row["amount"] for row in rows)


@flow(result_storage=str(FOLDER / "{flow_name}" / "{flow_run_id}" / "{task_slug}.json"))
def report() -> int:
    return total(extract())


if __name__ == "__main__":
    state = report(return_state=True)
    print("total:", state.result())
    view = TaskRunView.from_task_slug("total-1", flow_run_id=state.flow_run_id)
    assert view.state.result_ref is not None
    print("stored at:", view.state.result_ref.location, "as", view.state.result_ref.serializer)
    print("file holds:", Path(view.state.result_ref.location).read_text())
    print("read back:", view.get_result())
