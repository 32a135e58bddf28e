"""Every shipped scenario ends the way it says it will; bad scenario files give one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from charger_sim.errors import ScenarioError
from charger_sim.resources import scenarios_dir
from charger_sim.scenario.loader import load_scenario
from charger_sim.scenario.runner import run_simulated

SCENARIOS = sorted(scenarios_dir().glob("*.yaml"))


def test_at_least_the_required_chademo_scenarios() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {
        "chademo_basic",
        "chademo_no_permission",
        "chademo_insulation_fault",
        "chademo_over_temperature",
        "chademo_can_loss",
    } <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_outcome_matches_expectation(path: Path) -> None:
    sc = load_scenario(path)
    result = run_simulated(sc)
    assert result.passed, result.mismatches
    assert result.outcome == sc.expect.outcome
    if sc.expect.reason:
        assert result.reason == sc.expect.reason


def test_over_temperature_stops_on_the_vehicle_fault_flag() -> None:
    result = run_simulated(load_scenario(scenarios_dir() / "chademo_over_temperature.yaml"))
    assert result.reason == "vehicle_high_temperature" and result.origin == "vehicle"
    assert result.max_temperature >= 55.0
    stop = next(e for e in result.timeline if e.role == "charger" and e.stage == "stopping")
    low = next(s for s in result.samples if s.time >= stop.time + 0.5)
    assert low.present_current <= 5.0


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("protocol: chademo\nvehicle: {soc: 120}\n", "vehicle.soc", "0..100"),
        ("protocol: chademo\ncharger: {max_current: lots}\n", "charger.max_current", "expected a number"),
        ("protocol: chademo\ncharger: {max_curent: 100}\n", "charger.max_curent", "unknown key"),
        ("protocol: nope\n", "protocol", "unknown protocol"),
        ("vehicle: {soc: 20}\n", "protocol", "missing"),
        ("protocol: chademo\nexpect: {outcome: maybe}\n", "expect", "outcome must be"),
        (
            "protocol: chademo\nexpect: {outcome: stopped, reason: gremlins}\n",
            "expect.reason",
            "unknown stop reason",
        ),
        (
            "protocol: chademo\nfaults: [{type: drop_message, at: {time: 1}}]\n",
            "faults[0].message",
            "missing",
        ),
        ("protocol: chademo\nfaults: [{type: meteor, at: {time: 1}}]\n", "faults[0].type", "expected one of"),
        (
            "protocol: chademo\nfaults: [{type: operator_stop, at: {time: 1, stage: charging}}]\n",
            "faults[0].at",
            "exactly one",
        ),
        ("protocol: chademo\nvehicle: {pack: {series: -3}}\n", "vehicle.pack", "series"),
        ("protocol: [chademo\n", "line 2", "not valid YAML"),
        ("- just\n- a list\n", "", "mapping"),
    ],
)
def test_bad_scenario_gives_one_line_with_key_path(tmp_path: Path, text: str, key: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith(str(path))
    assert key in line and message in line


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "nope.yaml")
