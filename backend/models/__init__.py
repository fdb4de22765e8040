"""The only code that writes SQL: insert, read and list functions over the tables, and the
domain operations (creating runs, changing their states) built on them.

Each function takes an open ``AsyncConnection`` as its first argument; the caller decides the
transaction (``async with db.begin() as conn``).
"""

from backend.database.engine import Database
from backend.models.catalog import TABLES, Column, Kind, Relationship, TableInfo
from backend.models.events import matching_flow_runs, prune_outbox, read_current_event
from backend.models.flow_runs import (
    cancel_flow_run,
    claim_flow_runs,
    delete_flow_run,
    record_heartbeat,
)
from backend.models.logs import write_run_logs
from backend.models.playground import read_latest_flow_run_id
from backend.models.reads import count_rows, list_rows, load_related, read_row
from backend.models.runs import (
    create_flow,
    create_flow_run,
    get_or_create_mapped_task_run_children,
    get_or_create_task_run,
)
from backend.models.services import (
    mark_crashed_runs,
    mark_late_runs,
    release_expired_claims,
    try_services_lock,
)
from backend.models.states import (
    Proposed,
    StateChange,
    propose_as_server,
    set_flow_run_state,
    set_states,
    set_task_run_state,
)
from backend.models.writes import (
    insert_flow,
    insert_flow_run,
    insert_flow_run_state,
    insert_log,
    insert_task,
    insert_task_run,
    insert_task_run_state,
)

__all__ = [
    "TABLES",
    "Column",
    "Database",
    "Kind",
    "Relationship",
    "TableInfo",
    "StateChange",
    "cancel_flow_run",
    "claim_flow_runs",
    "count_rows",
    "create_flow",
    "create_flow_run",
    "propose_as_server",
    "delete_flow_run",
    "get_or_create_mapped_task_run_children",
    "get_or_create_task_run",
    "record_heartbeat",
    "write_run_logs",
    "Proposed",
    "set_flow_run_state",
    "set_states",
    "set_task_run_state",
    "try_services_lock",
    "insert_flow",
    "insert_flow_run",
    "insert_flow_run_state",
    "insert_log",
    "insert_task",
    "insert_task_run",
    "insert_task_run_state",
    "list_rows",
    "mark_crashed_runs",
    "mark_late_runs",
    "load_related",
    "matching_flow_runs",
    "prune_outbox",
    "read_current_event",
    "read_latest_flow_run_id",
    "read_row",
    "release_expired_claims",
]
