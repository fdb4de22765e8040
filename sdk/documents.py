"""Every GraphQL document the SDK sends, in one place.

A test validates each against ``schema.graphql`` offline, so the SDK and the server cannot
drift apart unnoticed. ``retry`` says whether a document may be sent again when its answer
was lost (a dropped connection, a 502/503/504): reads always; writes only when repeating
them cannot do the work twice (upserts, get-or-create, versioned state proposals, which a
repeat finds stale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gql import gql


@dataclass(frozen=True)
class Document:
    name: str
    text: str
    retry: bool
    request: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "request", gql(self.text))


TASK_RUN_FIELDS = """
fragment task_run_fields on task_run {
  id task_id flow_run_id map_index name state state_type state_message serialized_state
  version run_count start_time end_time
  task { slug mapped }
}
"""

FLOW_RUN_FIELDS = """
fragment flow_run_fields on flow_run {
  id name flow_id parameters context labels state state_type state_message serialized_state
  version scheduled_start_time start_time end_time parent_task_run_id
  flow { name }
  states(order_by: {version: asc}) { state type message timestamp version serialized_state }
}
"""

# Reads

FLOW_RUN = Document(
    "flow_run",
    "query flow_run($id: uuid!) { flow_run_by_pk(id: $id) { ...flow_run_fields } }"
    + FLOW_RUN_FIELDS,
    retry=True,
)

TASK_RUN = Document(
    "task_run",
    "query task_run($id: uuid!) { task_run_by_pk(id: $id) { ...task_run_fields } }"
    + TASK_RUN_FIELDS,
    retry=True,
)

TASK_RUN_BY_SLUG = Document(
    "task_run_by_slug",
    """query task_run_by_slug($flow_run_id: uuid!, $task_slug: String!, $map_index: Int!) {
      flow_run_by_pk(id: $flow_run_id) { id }
      task_run(where: {flow_run_id: {_eq: $flow_run_id}, task: {slug: {_eq: $task_slug}},
                       map_index: {_eq: $map_index}}) { ...task_run_fields }
    }"""
    + TASK_RUN_FIELDS,
    retry=True,
)

TASK_RUNS = Document(
    "task_runs",
    """query task_runs($flow_run_id: uuid!, $known: [uuid!]!) {
      task_run(where: {flow_run_id: {_eq: $flow_run_id}, id: {_nin: $known}},
               order_by: [{task: {slug: asc}}, {map_index: asc}]) { ...task_run_fields }
    }"""
    + TASK_RUN_FIELDS,
    retry=True,
)

TASK_RUN_IDS = Document(
    "task_run_ids",
    """query task_run_ids($flow_run_id: uuid!) {
      task_run(where: {flow_run_id: {_eq: $flow_run_id}}, order_by: {id: asc}) { id }
    }""",
    retry=True,
)

MAPPED_CHILDREN = Document(
    "mapped_children",
    """query mapped_children($flow_run_id: uuid!, $task_id: uuid!, $first: Int!, $last: Int!) {
      task_run(where: {flow_run_id: {_eq: $flow_run_id}, task_id: {_eq: $task_id},
                       map_index: {_gte: $first, _lte: $last}},
               order_by: {map_index: asc}) { ...task_run_fields }
    }"""
    + TASK_RUN_FIELDS,
    retry=True,
)

MAPPED_RESULTS = Document(
    "mapped_results",
    """query mapped_results($flow_run_id: uuid!, $task_id: uuid!) {
      task_run(where: {flow_run_id: {_eq: $flow_run_id}, task_id: {_eq: $task_id},
                       map_index: {_gte: 0}}, order_by: {map_index: asc}) {
        map_index state state_type result: serialized_state(path: "result")
      }
    }""",
    retry=True,
)

LOGS = Document(
    "logs",
    """query logs($flow_run_id: uuid!) {
      log(where: {flow_run_id: {_eq: $flow_run_id}}, order_by: [{timestamp: asc}, {id: asc}]) {
        id flow_run_id task_run_id timestamp level name message
      }
    }""",
    retry=True,
)

# What the command line shows

FLOWS = Document(
    "flows",
    """query flows($where: flow_bool_exp!) {
      flow(where: $where, order_by: {name: asc}) {
        id name version entrypoint labels description created updated
        tasks(order_by: {slug: asc}) { slug mapped }
      }
    }""",
    retry=True,
)

FLOW_RUNS_IN_RANGE = Document(
    "flow_runs_in_range",
    """query flow_runs_in_range($first: uuid!, $last: uuid!, $limit: Int!) {
      flow_run(where: {id: {_gte: $first, _lte: $last}}, order_by: {id: asc}, limit: $limit) {
        id name state created flow { name }
      }
    }""",
    retry=True,
)

FLOW_RUN_ROWS = Document(
    "flow_run_rows",
    """query flow_run_rows($where: flow_run_bool_exp!, $limit: Int) {
      flow_run(where: $where, order_by: [{created: desc}, {id: desc}], limit: $limit) {
        id name state state_type state_message labels created scheduled_start_time
        start_time end_time parent_task_run_id flow { name }
      }
    }""",
    retry=True,
)

TASK_RUN_ROWS = Document(
    "task_run_rows",
    """query task_run_rows($where: task_run_bool_exp!) {
      task_run(where: $where, order_by: [{task: {slug: asc}}, {map_index: asc}]) {
        id map_index state state_type state_message run_count start_time end_time
        task { slug mapped }
      }
    }""",
    retry=True,
)

TASK_RUN_HISTORY = Document(
    "task_run_history",
    """query task_run_history($id: uuid!) {
      task_run_by_pk(id: $id) {
        id cache_key
        states(order_by: {version: asc}) { state type message timestamp version result }
      }
    }""",
    retry=True,
)

LOGS_SINCE = Document(
    "logs_since",
    """query logs_since($flow_run_id: uuid!, $level: Int!, $since: timestamptz!) {
      flow_run_by_pk(id: $flow_run_id) { state_type }
      log(where: {flow_run_id: {_eq: $flow_run_id}, level: {_gte: $level},
                  timestamp: {_gte: $since}},
          order_by: [{timestamp: asc}, {id: asc}]) {
        id task_run_id timestamp level name message
      }
    }""",
    retry=True,
)

RUN_PROGRESS = Document(
    "run_progress",
    """query run_progress($id: uuid!) {
      flow_run_by_pk(id: $id) {
        id name state state_type state_message version flow { name }
        states(order_by: {version: asc}) { state type message timestamp version }
      }
      task_run(where: {flow_run_id: {_eq: $id}, map_index: {_eq: -1}},
               order_by: {created: asc}) {
        id state state_type state_message version task { slug mapped }
      }
      children: task_run_aggregate(where: {flow_run_id: {_eq: $id}, map_index: {_gte: 0}}) {
        aggregate { count }
      }
      finished: task_run_aggregate(where: {flow_run_id: {_eq: $id}, map_index: {_gte: 0},
          state_type: {_in: ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"]}}) {
        aggregate { count }
      }
    }""",
    retry=True,
)

# Writes

CREATE_FLOW = Document(
    "create_flow",
    """mutation create_flow($input: create_flow_input!) {
      create_flow(input: $input) { id version }
    }""",
    retry=True,  # an upsert by name
)

CREATE_FLOW_RUN = Document(
    "create_flow_run",
    """mutation create_flow_run($input: create_flow_run_input!) {
      create_flow_run(input: $input) { id version }
    }""",
    retry=True,  # the client always sends an idempotency key
)

GET_OR_CREATE_TASK_RUN = Document(
    "get_or_create_task_run",
    """mutation get_or_create_task_run($input: get_or_create_task_run_input!) {
      get_or_create_task_run(input: $input) { id version state serialized_state }
    }""",
    retry=True,
)

GET_OR_CREATE_MAPPED_CHILDREN = Document(
    "get_or_create_mapped_task_run_children",
    """mutation get_or_create_mapped_task_run_children(
        $input: get_or_create_mapped_task_run_children_input!) {
      get_or_create_mapped_task_run_children(input: $input) { ids }
    }""",
    retry=True,
)

SET_FLOW_RUN_STATES = Document(
    "set_flow_run_states",
    """mutation set_flow_run_states($input: set_flow_run_states_input!) {
      set_flow_run_states(input: $input) { states { id status message state } }
    }""",
    retry=True,  # a repeated proposal carries a stale version and changes nothing
)

SET_TASK_RUN_STATES = Document(
    "set_task_run_states",
    """mutation set_task_run_states($input: set_task_run_states_input!) {
      set_task_run_states(input: $input) { states { id status message state } }
    }""",
    retry=True,
)

FLOW_RUN_EVENTS = Document(
    "flow_run_events",
    """subscription flow_run_events($flow_run_id: uuid!) {
      flow_run_events(flow_run_id: $flow_run_id) {
        flow_run_id task_run_id task_slug map_index state state_type message timestamp version
      }
    }""",
    retry=False,
)

WRITE_RUN_LOGS = Document(
    "write_run_logs",
    """mutation write_run_logs($input: write_run_logs_input!) {
      write_run_logs(input: $input) { count rejected { index message } }
    }""",
    retry=True,  # records carry client-made ids: a repeat stores nothing twice
)

UPDATE_FLOW_RUN_HEARTBEAT = Document(
    "update_flow_run_heartbeat",
    """mutation update_flow_run_heartbeat($input: update_flow_run_heartbeat_input!) {
      update_flow_run_heartbeat(input: $input) { id heartbeat state state_type }
    }""",
    retry=True,
)

UPDATE_TASK_RUN_HEARTBEAT = Document(
    "update_task_run_heartbeat",
    """mutation update_task_run_heartbeat($input: update_task_run_heartbeat_input!) {
      update_task_run_heartbeat(input: $input) { id heartbeat state state_type }
    }""",
    retry=True,
)

CANCEL_FLOW_RUN = Document(
    "cancel_flow_run",
    """mutation cancel_flow_run($input: cancel_flow_run_input!) {
      cancel_flow_run(input: $input) { id status message state }
    }""",
    retry=True,
)

CLAIM_FLOW_RUNS = Document(
    "claim_flow_runs",
    """mutation claim_flow_runs($input: claim_flow_runs_input!) {
      claim_flow_runs(input: $input) {
        flow_runs { id name version parameters flow { name entrypoint } }
      }
    }""",
    retry=False,  # runs claimed by a lost answer would stay Pending with nobody to run them
)

DELETE_FLOW_RUN = Document(
    "delete_flow_run",
    """mutation delete_flow_run($input: delete_flow_run_input!) {
      delete_flow_run(input: $input) { id }
    }""",
    retry=False,
)

ALL: tuple[Document, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Document))

# Composing flows (sdk.flow_runs): whether an agent can ever claim a run of a flow. Added
# after ALL, so added to it here.

FLOW_ENTRYPOINT = Document(
    "flow_entrypoint",
    "query flow_entrypoint($id: uuid!) { flow_by_pk(id: $id) { id entrypoint } }",
    retry=True,
)

ALL = (*ALL, FLOW_ENTRYPOINT)
