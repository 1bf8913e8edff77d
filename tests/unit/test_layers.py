"""The layers hold (docs/architecture.md): api -> services -> ports <- adapters, with
runtime and domain below. Checked from the source, so CI fails on a wrong arrow.

What each package may import from ``aegra``:

    domain      domain only (pure: no I/O, no trio)
    runtime     domain, runtime
    services    domain, runtime, services, logs, config
    api         domain, runtime, services, api, logs, config, project, imports
    adapters    anything below the api (never api, services or supervisor)

and no module of ``api`` holds SQL.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "aegra"
ALLOWED = {
    "domain": {"domain"},
    "runtime": {"domain", "runtime", "logs"},
    "services": {"domain", "runtime", "services", "logs", "config", "project"},
    "api": {"domain", "runtime", "services", "api", "logs", "config", "project", "imports"},
    "adapters": {"domain", "runtime", "adapters", "logs", "config", "project", "imports"},
}
SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_inward(package: str) -> None:
    wrong = []
    for path in _modules(package):
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] != "aegra" or len(parts) < 2:
                continue
            if parts[1] not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_api_sends_no_sql() -> None:
    found = []
    for path in _modules("api"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SQL.search(node.value):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, "SQL in the api layer: " + ", ".join(found)
