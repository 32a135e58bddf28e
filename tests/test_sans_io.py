"""Cores (protocol state machines, battery model, plant, session) never import I/O or clock modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "charger_sim"
CORE_DIRS = ("protocols", "bms", "plant", "session")
FORBIDDEN = {"can", "time", "threading", "asyncio", "socket", "select", "subprocess"}

CORE_FILES = sorted(p for d in CORE_DIRS for p in (PKG / d).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_files_found() -> None:
    assert len(CORE_FILES) >= 10


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(PKG)))
def test_core_module_imports_no_io(path: Path) -> None:
    bad = imported_modules(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}"


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("import os\nfrom time import monotonic\nimport can.interfaces\n")
    assert imported_modules(f) & FORBIDDEN == {"time", "can"}
