"""The public field logs of ``../shared/field-logs`` (skipped when absent): every file decodes without
errors, every session is diagnosed with the outcome its README describes, and the good CHAdeMO
sessions replay through our charger with the same stage walk."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from charger_sim.cli.main import main
from charger_sim.diagnose import diagnose_log, load_capture
from charger_sim.diagnose.decode import rows
from charger_sim.diagnose.replay import replay
from charger_sim.errors import ExitCode

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LOGS = SHARED / "field-logs"

pytestmark = [
    pytest.mark.fieldlogs,
    pytest.mark.skipif(not LOGS.is_dir(), reason="../shared/field-logs is not present"),
]

# file -> (protocol, outcome, failed step, stop reason, words the cause must contain), from the README
EXPECTED: dict[str, tuple[str, str, int | None, str, tuple[str, ...]]] = {
    "chademo/osexpert_logs.candump.txt": ("chademo", "completed", None, "operator_stop", ()),
    "chademo/rand12345_nissan-leaf-chademo-start-stop.csv": (
        "chademo",
        "completed",
        None,
        "operator_stop",
        (),
    ),
    "chademo/dalathegreat_ZE1-chademo-starting-and-charging.csv": (
        "chademo",
        "partial",
        None,
        "",
        ("mid-session",),
    ),
    "chademo/dalathegreat_QC_30kWh_canlog_init_only_no_charging.txt": (
        "chademo",
        "failed",
        4,
        "no_permission",
        ("stopped transmitting",),
    ),
    "chademo/damienmaguire_aero3.txt": (
        "chademo",
        "failed",
        7,
        "vehicle_current_deviation",
        ("current-deviation", "charger stopped in 62 ms"),
    ),
    "chademo/damienmaguire_efaec.txt": ("chademo", "failed", 5, "no_current_request", ("4.4 s",)),
    "chademo/damienmaguire_log.txt": ("chademo", "failed", 4, "no_permission", ("charge permission",)),
    "chademo/osexpert_GeniePointFail.csv": ("chademo", "failed", 7, "charger_malfunction", ("398 V",)),
    "chademo/osexpert_InstavoltBYDFail.csv": ("chademo", "failed", 5, "no_current_request", ("17.6 s",)),
    "chademo/osexpert_evgo_kildare.csv": ("chademo", "failed", 5, "no_current_request", ()),
    "gbt27930/sut4nd0_candump-2023-12-25_220841.log": ("gbt", "completed", None, "operator_stop", ()),
    "gbt27930/ru5t_candump3.log": ("gbt", "partial", None, "operator_stop", ("end phase",)),
    "gbt27930/ru5t_candump2.log": ("gbt", "failed", 4, "bem_received", ("BRM", "RTS without CTS", "BEM")),
}
# deviations the README describes, as words the deviation list must contain
DEVIATIONS = {
    "chademo/dalathegreat_QC_30kWh_canlog_init_only_no_charging.txt": (
        "big-endian at 0.01 V/bit",
        "before any",
    ),
    "chademo/osexpert_GeniePointFail.csv": ("period 225 ms",),
    "chademo/osexpert_InstavoltBYDFail.csv": ("period 225 ms",),
    "chademo/rand12345_nissan-leaf-chademo-start-stop.csv": ("0.52 s after the first current request",),
    "gbt27930/sut4nd0_candump-2023-12-25_220841.log": ("CCS (0x1812F456) sent with DLC 7", "period 69 ms"),
    "gbt27930/ru5t_candump3.log": ("CTS 00 00 08 09 07 15 14",),
    "gbt27930/ru5t_candump2.log": ("not packed BCD", "minimum above maximum", "never answered with a CTS"),
}
GOOD_CHADEMO = ("chademo/osexpert_logs.candump.txt", "chademo/rand12345_nissan-leaf-chademo-start-stop.csv")


def test_every_field_log_is_listed() -> None:
    files = {str(p.relative_to(LOGS)) for p in LOGS.rglob("*") if p.is_file() and p.suffix != ".md"}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_field_log_decodes_without_errors(name: str) -> None:
    capture = load_capture(LOGS / name)
    assert capture.protocol == EXPECTED[name][0]
    assert capture.read.malformed_lines == 0 and not capture.read.problems
    decoded = list(rows(capture))
    assert decoded and all(r.name for r in decoded)
    assert sum(1 for r in capture.records if r.message is not None) > 100


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_field_log_is_diagnosed_as_its_readme_describes(name: str) -> None:
    protocol, outcome, step, reason, words = EXPECTED[name]
    d = diagnose_log(LOGS / name)
    assert d.protocol == protocol
    assert (d.outcome, d.failed_step) == (outcome, step), d.cause
    assert d.main is not None and d.main.reason == reason
    for word in words:
        assert word in d.cause
    text = "\n".join(str(x) for x in d.deviations)
    for word in DEVIATIONS.get(name, ()):
        assert word in text


def test_multi_attempt_capture_keeps_every_session() -> None:
    d = diagnose_log(LOGS / "chademo/damienmaguire_aero3.txt")
    assert [s.outcome for s in d.sessions] == ["failed", "failed", "failed"]
    assert d.primary == 0 and d.sessions[0].charger_walk[-1][1] == "0x30"


@pytest.mark.parametrize("name", GOOD_CHADEMO)
def test_good_chademo_session_replays_with_the_same_stage_walk(name: str) -> None:
    r = replay(load_capture(LOGS / name))
    assert r["matched"], r["divergence"]
    assert r["charger_stages"] == r["recorded_stages"]
    assert r["recorded_walk"] == ["0x20", "0x24", "0x05", "0x25", "0x24", "0x20"]
    assert r["reason"] == {"recorded": "operator_stop", "ours": "operator_stop"}


def test_good_gbt_session_replays_with_the_same_stage_walk() -> None:
    r = replay(load_capture(LOGS / "gbt27930/sut4nd0_candump-2023-12-25_220841.log"))
    assert r["matched"] and r["status_matched"], r["divergence"]
    assert r["charger_stages"][-3:] == ["statistics", "shutdown", "done"]


def test_mid_session_capture_cannot_be_replayed() -> None:
    r = replay(load_capture(LOGS / "chademo/dalathegreat_ZE1-chademo-starting-and-charging.csv"))
    assert not r["matched"] and "mid-session" in r["divergence"]


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    code = main(list(argv), console=Console(file=buf, width=200, color_system=None))
    return code, buf.getvalue()


def test_cli_diagnose_json_for_ci() -> None:
    code, out = cli("diagnose", str(LOGS / "gbt27930/ru5t_candump2.log"), "--json")
    assert code == ExitCode.OK
    d = json.loads(out)
    assert d["protocol"] == "gbt" and d["outcome"] == "failed" and d["failed_step"] == 4
    assert "RTS without CTS" in d["cause"]
    assert all({"stage", "start", "end"} <= set(s) for s in d["stages"])
    assert all(isinstance(x, str) for x in d["deviations"])


def test_cli_decode_reassembles_gbt_transport_and_filters() -> None:
    code, out = cli("decode", str(LOGS / "gbt27930/sut4nd0_candump-2023-12-25_220841.log"), "-m", "BRM")
    assert code == ExitCode.OK
    assert "(reassembled)" in out and "RTS BRM: 49 bytes in 7 packets" in out and "VIN" in out
    assert "CCS" not in out.split("frames read")[0]
    assert "skipped lines: 0 non-frame, 0 malformed" in out


def test_cli_decode_reports_skipped_logger_lines() -> None:
    code, out = cli("decode", str(LOGS / "chademo/damienmaguire_efaec.txt"), "--json")
    assert code == ExitCode.OK
    d = json.loads(out)
    assert d["format"] == "candue" and d["skipped_lines"] == 4733 and d["malformed_lines"] == 0
    assert {r["name"] for r in d["rows"]} >= {"ChargerStatus", "VehicleChargeControl"}
