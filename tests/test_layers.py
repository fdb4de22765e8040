"""The import rules of ARCHITECTURE.md and STYLE.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> module prefixes it must not import
FORBIDDEN = {
    "backend/api": ("sqlalchemy", "backend.database"),
    "backend/orchestration": ("sqlalchemy", "strawberry", "backend.models", "backend.api"),
    "backend/models": ("strawberry", "backend.api"),
    "backend/database": ("strawberry", "backend.api", "backend.models"),
    "sdk": ("backend",),
}
# The embedded transport runs the backend in-process; the CLI's server-side commands start
# it or open its database.
ALLOWED_FILES = {"sdk/transports.py", "sdk/cli/server.py", "sdk/cli/api_keys.py"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_layers_import_only_downwards(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if str(path.relative_to(ROOT)) in ALLOWED_FILES:
            continue
        for name in _imports(path):
            if name.startswith(FORBIDDEN[package]):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []
