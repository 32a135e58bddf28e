from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture
def scenarios_dir() -> Path:
    return ROOT / "scenarios"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Figures some tests report without asserting them tightly (e.g. cadence measured on vcan0)."""
    from tests.buses import REPORT

    if REPORT:
        terminalreporter.section("measured")
        for line in REPORT:
            terminalreporter.write_line(line)
