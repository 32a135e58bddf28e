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


def _block(name: str) -> list[str]:
    text = README
    body = text.split(f"<!-- {name}:start -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]
    return [line for line in body.strip().splitlines() if line.startswith("| `")]


def test_readme_fault_catalogue_is_the_catalogue() -> None:
    from charger_sim.faults import FAULTS

    rows = _block("fault-catalogue")
    assert [r.split("|")[1].strip(" `") for r in rows] == list(FAULTS)
    for row, kind in zip(rows, FAULTS.values(), strict=True):
        assert kind.summary in row and kind.layer in row
        for name in kind.required:
            assert f"`{name}`*" in row


def test_readme_lists_every_shipped_profile() -> None:
    from charger_sim.scenario.profiles import charger_profiles, vehicle_profiles

    text = README
    body = text.split("<!-- profiles:start -->", 1)[1].split("<!-- profiles:end -->", 1)[0]
    for p in [*vehicle_profiles().values(), *charger_profiles().values()]:
        assert f"| {p.kind} | `{p.name}` | {p.protocol} | {p.title} |" in body
