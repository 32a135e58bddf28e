"""The README's CHAdeMO diagram is the one generated from the transition table (docs cannot drift)."""

from __future__ import annotations

from pathlib import Path

from charger_sim.protocols.chademo.states import TRANSITIONS, Stage
from charger_sim.protocols.chademo.timing import LIMITS
from charger_sim.protocols.machine import mermaid

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_diagram_is_generated_from_the_table() -> None:
    start = README.index("```mermaid\n") + len("```mermaid\n")
    end = README.index("```", start)
    assert README[start:end] == mermaid(TRANSITIONS, Stage.IDLE, Stage.DONE)


def test_every_timing_row_cites_a_source_and_is_documented() -> None:
    for row in LIMITS.values():
        assert row.source.startswith("§") and row.seconds > 0
        if not row.name.startswith("vehicle_"):
            assert f"| {row.name} |" in README, row.name
