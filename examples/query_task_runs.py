"""List the task runs of a flow run with one GraphQL query (id, state, start time, slug).

    RUNVIEW_API_URL=http://127.0.0.1:4200/graphql python examples/query_task_runs.py [FLOW_RUN_ID]

Without an id it takes the most recently created flow run.
"""

from __future__ import annotations

import os
import sys

from gql import Client, gql
from gql.transport.httpx import HTTPXTransport

LATEST = gql("{ flow_run(order_by: {created: desc}, limit: 1) { id name } }")
TASK_RUNS = gql(
    """
    query ($id: uuid!) {
      task_run(where: {flow_run_id: {_eq: $id}}, order_by: {start_time: asc}) {
        id state start_time map_index task { slug }
      }
    }
    """
)


def main() -> int:
    url = os.environ.get("RUNVIEW_API_URL", "http://127.0.0.1:4200/graphql")
    with Client(transport=HTTPXTransport(url=url)) as session:
        if len(sys.argv) > 1:
            flow_run_id = sys.argv[1]
        else:
            latest = session.execute(LATEST)["flow_run"]
            if not latest:
                print("no flow runs yet")
                return 0
            flow_run_id = latest[0]["id"]
        task_runs = session.execute(TASK_RUNS, variable_values={"id": flow_run_id})["task_run"]
    print(f"flow run {flow_run_id}: {len(task_runs)} task runs")
    for run in task_runs:
        slug = run["task"]["slug"]
        if run["map_index"] >= 0:
            slug += f"[{run['map_index']}]"
        print(f"  {slug:<20} {run['state']:<10} {run['start_time'] or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
