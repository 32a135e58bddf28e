"""The CLI: output, exit codes, logs, errors (rich Console captured, simulated time only)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import can
import pytest
from rich.console import Console

from charger_sim.cli.main import main
from charger_sim.errors import ExitCode
from charger_sim.resources import scenarios_dir

SC = scenarios_dir()


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    code = main(list(argv), console=Console(file=buf, width=200, color_system=None))
    return code, buf.getvalue()


def test_basic_run_prints_timeline_summary_verdict() -> None:
    code, out = cli("run", str(SC / "chademo_basic.yaml"))
    assert code == ExitCode.OK
    assert "Stage timeline" in out and "insulation_test" in out and "welding_check" in out
    assert "Energy delivered" in out and "Peak current" in out and "20.0 % -> 80.0 %" in out
    assert "PASS completed" in out


def test_fault_scenario_names_step_and_reason() -> None:
    code, out = cli("run", str(SC / "chademo_no_permission.yaml"))
    assert code == ExitCode.OK
    assert "step 4: parameter negotiation" in out and "vehicle never granted charge permission" in out


def test_mismatch_exits_1(tmp_path: Path) -> None:
    p = tmp_path / "wrong.yaml"
    p.write_text("protocol: chademo\nvehicle: {grant_permission: false}\nexpect: {outcome: completed}\n")
    code, out = cli("run", str(p), "--no-timeline")
    assert code == ExitCode.VERDICT_FAILED
    assert "FAIL" in out and "expected completed" in out


def test_bad_scenario_exits_3_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("protocol: chademo\ncharger: {max_current: 900}\n")
    code, out = cli("run", str(p))
    assert code == ExitCode.SCENARIO
    assert "charger" in out and "max_current" in out and "Traceback" not in out
    assert len([line for line in out.splitlines() if line.strip()]) == 1


def test_contradicting_bitrate_is_refused() -> None:
    code, out = cli("run", str(SC / "chademo_no_permission.yaml"), "-b", "250000")
    assert code == ExitCode.USAGE and "500 kbit/s" in out


@pytest.mark.parametrize("suffix", [".asc", ".blf", ".log", ".csv"])
def test_log_records_every_frame(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"session{suffix}"
    code, _ = cli(
        "run", str(SC / "chademo_no_permission.yaml"), "--log", str(path), "--json", str(tmp_path / "r.json")
    )
    assert code == ExitCode.OK and path.exists()
    frames = [m for m in can.LogReader(str(path)) if not m.is_error_frame]
    report = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert (
        report["outcome"] == "stopped"
        and report["failed_step"] == 4
        and report["stop_reason"] == "no_permission"
    )
    ids = {m.arbitration_id for m in frames}
    assert {0x100, 0x101, 0x102, 0x108, 0x109} <= ids
    # charger + vehicle frames, none lost: vehicle sends 3 per cycle, charger 2
    assert len(frames) == report["frames_sent"] + report["frames_received"]


def test_folder_runs_a_suite() -> None:
    code, out = cli("run", str(SC), "--no-timeline")
    assert code == ExitCode.OK
    assert "Scenario results" in out and out.count("PASS") >= 5


def test_python_can_virtual_bus_in_simulated_time() -> None:
    code, out = cli("run", str(SC / "chademo_insulation_fault.yaml"), "-i", "virtual", "--no-timeline")
    assert code == ExitCode.OK and "insulation_fault" in out


def test_missing_file_exit_code() -> None:
    code, out = cli("run", "does/not/exist.yaml")
    assert code == ExitCode.SCENARIO and "no such file" in out


def test_shipped_scenarios_are_found_by_name_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = cli("run", "chademo_insulation_fault", "--no-timeline")
    assert code == ExitCode.OK and "insulation_fault" in out
    code, out = cli("run", "scenarios/chademo_no_permission.yaml", "--no-timeline")
    assert code == ExitCode.OK and "no_permission" in out
