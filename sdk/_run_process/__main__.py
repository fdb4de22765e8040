"""What the process the agent starts for a claimed flow run does (``python -m
sdk._run_process``): read the run from stdin, load its flow, run it as that run."""

from __future__ import annotations

import json
import sys
import uuid

from sdk.client import default_client
from sdk.entrypoints import load_flow
from sdk.exceptions import InvalidInput
from sdk.runtime.engine import propose
from sdk.runtime.flow_engine import run_flow


def main() -> int:
    """Run the flow run described on stdin (in the process the agent started)."""
    run = json.loads(sys.stdin.buffer.read())
    flow_run_id, version = uuid.UUID(run["flow_run_id"]), int(run["version"])
    client = default_client()
    try:
        try:
            flow = load_flow(run["entrypoint"], run["flow_name"])
        except InvalidInput as error:  # the agent says why, from the run's Failed state
            failed = {"type": "FAILED", "message": str(error)}
            propose(client, "flow", flow_run_id, version, failed)
            return 0
        run_flow(
            flow,
            (),
            dict(run["parameters"]),
            return_state=True,
            claimed=(flow_run_id, version),
            client=client,
        )
        return 0
    except KeyboardInterrupt:  # the runtime recorded it Crashed; no traceback
        return 130
    except Exception as error:  # the agent reads this line in the run's Crashed message
        print(f"runview: flow run {flow_run_id}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()


sys.exit(main())
