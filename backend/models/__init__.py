"""The only code that writes SQL: insert, read and list functions over the tables, and the
domain operations (creating runs, changing their states) built on them.

Each function takes an open ``AsyncConnection`` as its first argument; the caller decides the
transaction (``async with db.begin() as conn``).
"""

from backend.database.engine import Database
from backend.models.catalog import TABLES, Column, Kind, Relationship, TableInfo
from backend.models.reads import count_rows, list_rows, load_related, read_row
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
    "count_rows",
    "insert_flow",
    "insert_flow_run",
    "insert_flow_run_state",
    "insert_log",
    "insert_task",
    "insert_task_run",
    "insert_task_run_state",
    "list_rows",
    "load_related",
    "read_row",
]
