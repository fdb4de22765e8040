"""The only code that writes SQL: create, read and list functions over the tables.

Each function takes an open ``AsyncConnection`` as its first argument; the caller decides the
transaction (``async with db.begin() as conn``).
"""

from backend.database.engine import Database
from backend.models.catalog import TABLES, Column, Kind, Relationship, TableInfo
from backend.models.reads import count_rows, list_rows, load_related, read_row
from backend.models.writes import (
    create_flow,
    create_flow_run,
    create_flow_run_state,
    create_log,
    create_task,
    create_task_run,
    create_task_run_state,
)

__all__ = [
    "TABLES",
    "Column",
    "Database",
    "Kind",
    "Relationship",
    "TableInfo",
    "count_rows",
    "create_flow",
    "create_flow_run",
    "create_flow_run_state",
    "create_log",
    "create_task",
    "create_task_run",
    "create_task_run_state",
    "list_rows",
    "load_related",
    "read_row",
]
