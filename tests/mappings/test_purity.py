"""fhir_mappings stays pure: nothing of the server, no clock, randomness, network or files
beyond its own data directory."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fhir_mappings"
FORBIDDEN_MODULES = {"app", "payer_adapters", "random", "socket", "httpx", "requests", "sqlite3", "sqlmodel", "logging"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "time", "uuid4", "uuid1"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def test_no_forbidden_imports() -> None:
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"


def test_no_clock_or_random_ids() -> None:
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in FORBIDDEN_CALLS, f"{path.name} calls .{node.func.attr}()"
