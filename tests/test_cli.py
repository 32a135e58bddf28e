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


# ---- suites and reports -------------------------------------------------------------------------

WRONG = (
    "name: wrong <expectation>\nprotocol: chademo\nvehicle: {grant_permission: false}\n"
    "expect: {outcome: completed}\n"
)


def test_folder_expansion_takes_the_scenarios_not_the_profiles() -> None:
    from charger_sim.cli.run import expand

    found = expand([str(SC)])
    assert found and all(p.parent == SC and p.suffix == ".yaml" for p in found)
    assert not any(p.parent.name in ("vehicles", "chargers") for p in found)


def test_quoted_globs_and_names_are_expanded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from charger_sim.cli.run import expand

    gbt = expand([str(SC / "gbt_*.yaml")])
    assert gbt and all(p.name.startswith("gbt_") for p in gbt) and gbt == sorted(gbt)
    assert expand([str(SC / "gbt_*.yaml"), str(SC / "gbt_basic.yaml")]) == gbt  # named twice, run once
    monkeypatch.chdir(tmp_path)  # shipped scenarios by pattern, from any folder
    assert [p.name for p in expand(["scenarios/gbt_*.yaml"])] == [p.name for p in gbt]
    assert [p.name for p in expand(["chademo_no_perm*"])] == ["chademo_no_permission.yaml"]
    code, out = cli("run", "nothing_like_this_*.yaml")
    assert code == ExitCode.SCENARIO and "no scenario file matches" in out


def test_suite_prints_one_table_and_fails_on_a_mismatch(tmp_path: Path) -> None:
    (tmp_path / "wrong.yaml").write_text(WRONG)
    code, out = cli(
        "run",
        str(SC / "chademo_no_permission.yaml"),
        str(SC / "gbt_incompatible.yaml"),
        str(tmp_path / "wrong.yaml"),
    )
    assert code == ExitCode.VERDICT_FAILED
    assert "Scenario results: 2 of 3 as expected" in out
    assert out.count("Stage timeline") == 0 and out.count("Summary") == 0  # compact: no per-scenario reports
    for stem in ("chademo_no_permission", "gbt_incompatible", "wrong"):
        assert stem in out
    assert "battery_incompatible" in out and "no_permission" in out
    assert "wrong: FAIL stopped at negotiation (step 4: parameter negotiation)" in out
    assert "1 of 3 scenarios failed" in out


def test_suite_reports_json_junit_html(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    (tmp_path / "wrong.yaml").write_text(WRONG)
    j, x, h = tmp_path / "r.json", tmp_path / "r.xml", tmp_path / "r.html"
    code, out = cli(
        "run", str(SC / "chademo_no_permission.yaml"), str(tmp_path / "wrong.yaml"), "--seed", "9",
        "--json", str(j), "--junit", str(x), "--html", str(h),
    )
    assert code == ExitCode.VERDICT_FAILED
    data = json.loads(j.read_text())
    assert data["seeds"] == [9, 9] and data["overrides"]["seed"] == 9
    assert {"charger-sim", "python", "cantools", "python-can", "transitions"} <= set(data["versions"])
    assert [r["passed"] for r in data["results"]] == [True, False]
    assert data["results"][1]["reproduce"].endswith("wrong.yaml --seed 9")
    root = ET.parse(x).getroot()
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    page = h.read_text()
    assert page.count('<details class="scenario"') == 2 and "wrong &lt;expectation&gt;" in page
    assert f"html report written to {h}" in out


def test_a_report_on_stdout_is_the_whole_of_stdout() -> None:
    code, out = cli("run", str(SC / "chademo_no_permission.yaml"), "--json", "-")
    assert code == ExitCode.OK
    assert json.loads(out)["results"][0]["stop_reason"] == "no_permission"
    code, out = cli("run", str(SC / "chademo_no_permission.yaml"), "--junit", "-")
    assert code == ExitCode.OK and out.startswith("<?xml") and "Stage timeline" not in out
    code, out = cli("run", str(SC / "chademo_no_permission.yaml"), "--junit", "-", "--html", "-")
    assert code == ExitCode.USAGE and "stdout" in out


def test_an_unwritable_report_is_a_usage_error(tmp_path: Path) -> None:
    code, out = cli("run", str(SC / "chademo_no_permission.yaml"), "--html", str(tmp_path / "no" / "r.html"))
    assert code == ExitCode.USAGE and "--html" in out and "cannot write" in out
