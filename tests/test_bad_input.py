"""Bad input everywhere: each gives one clear line naming the file (and where in it), a distinct exit
code per kind of error, and no traceback unless --debug."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import can
import pytest
from rich.console import Console

from charger_sim import codec as codec_module
from charger_sim.cli.main import main
from charger_sim.errors import DbcError, ExitCode
from charger_sim.resources import dbc_dir, scenarios_dir

SHORT = str(scenarios_dir() / "chademo_no_permission.yaml")  # ends after ~8 s of session time


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    code = main(list(argv), console=Console(file=buf, width=300, color_system=None))
    return code, buf.getvalue()


def one_error_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.strip()]
    assert "Traceback" not in out
    assert len(lines) == 1, lines
    assert lines[0].startswith("error (")
    return lines[0]


@pytest.fixture(autouse=True)
def _shipped_dbc_dir() -> None:
    codec_module.set_dbc_dir(None)


# --- scenario files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"protocol: chademo\ncharger: {max_current: [1\n", "line 3: not valid YAML"),
        (b"", "expected a mapping"),
        (b"- a\n- b\n", "expected a mapping"),
        (b"\xff\xfe\x00garbage\x81", "not UTF-8"),
        (b"protocol: tesla\n", "protocol: unknown protocol 'tesla'"),
        (b"protocol: chademo\nvehicle: {soc: high}\n", "vehicle.soc: expected a number"),
        (b"protocol: chademo\ncharger: {max_curent: 100}\n", "charger.max_curent: unknown key"),
        (b"protocol: chademo\nfaults: [{type: meteor, at: {time: 1}}]\n", "faults[0].type"),
        (b"protocol: chademo\nexpect: {outcome: exploded}\n", "expect: outcome must be"),
    ],
    ids=["syntax", "empty", "list", "binary", "protocol", "type", "key", "fault", "expect"],
)
def test_malformed_scenario(tmp_path: Path, content: bytes, where: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    code, out = cli("run", str(path))
    assert code == ExitCode.SCENARIO
    line = one_error_line(out)
    assert "(scenario)" in line and "bad.yaml" in line and where in line


def test_missing_scenario_and_empty_folder(tmp_path: Path) -> None:
    assert cli("run", str(tmp_path / "nope.yaml"))[0] == ExitCode.SCENARIO
    code, out = cli("run", str(tmp_path))
    assert code == ExitCode.SCENARIO and "no *.yaml" in one_error_line(out)


# --- DBC files and --dbc-dir ------------------------------------------------------------------------


def _dbc_copy(tmp_path: Path, edit: tuple[str, str] | None = None) -> Path:
    folder = tmp_path / "dbc"
    folder.mkdir()
    for f in dbc_dir().glob("*.dbc"):
        shutil.copy(f, folder / f.name)
    if edit is not None:
        path = folder / "chademo.dbc"
        text = path.read_text(encoding="utf-8")
        assert edit[0] in text
        path.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    return folder


def test_dbc_dir_is_used_for_every_frame(tmp_path: Path) -> None:
    """A DBC change is a wire change: unused bits of 0x109 set to 1 by the custom DBC."""
    folder = _dbc_copy(tmp_path, ('BA_DEF_DEF_ "CsimUnusedBits" 0;', 'BA_DEF_DEF_ "CsimUnusedBits" 255;'))
    log = tmp_path / "s.asc"
    code, _ = cli("--dbc-dir", str(folder), "run", SHORT, "--log", str(log), "--no-timeline")
    assert code == ExitCode.OK
    status = [m for m in can.LogReader(str(log)) if m.arbitration_id == 0x109 and not m.is_error_frame]
    assert status and all(m.data[4] & 0xFE == 0xFE for m in status)  # bits 33-39 unused: now 1s


@pytest.mark.parametrize(
    ("edit", "say"),
    [
        (
            ("BO_ 265 ChargerStatus: 8 CHARGER", "BO_ 265 ChargerStatusX: 8 CHARGER"),
            "no message 'ChargerStatus'",
        ),
        (("SG_ PresentOutputCurrent :", "SG_ PresentCurrent :"), "PresentOutputCurrent"),
        (("SG_ ThresholdVoltage : 32|16@1+", "SG_ ThresholdVoltage : 39|16@0+"), "little-endian"),
        (("BO_ 258 VehicleChargeControl: 8 VEHICLE", "BO_ 258 VehicleChargeControl 8 VEHICLE"), "line "),
    ],
    ids=["missing-message", "renamed-signal", "big-endian", "syntax"],
)
def test_custom_dbc_that_does_not_fit(tmp_path: Path, edit: tuple[str, str], say: str) -> None:
    folder = _dbc_copy(tmp_path, edit)
    code, out = cli("--dbc-dir", str(folder), "run", SHORT)
    assert code == ExitCode.DBC
    line = one_error_line(out)
    assert "(dbc)" in line and say in line


def test_dbc_dir_must_be_a_folder_of_dbc_files(tmp_path: Path) -> None:
    code, out = cli("--dbc-dir", str(tmp_path / "none"), "run", SHORT)
    assert code == ExitCode.DBC and "no such folder" in one_error_line(out)
    code, out = cli("--dbc-dir", str(tmp_path), "run", SHORT)
    assert code == ExitCode.DBC and "no *.dbc" in one_error_line(out)
    (tmp_path / "other.dbc").write_text('VERSION ""\n', encoding="utf-8")
    code, out = cli("--dbc-dir", str(tmp_path), "run", SHORT)
    assert code == ExitCode.DBC and "chademo.dbc" in one_error_line(out) and "not found" in out


def test_set_dbc_dir_validates_and_resets(tmp_path: Path) -> None:
    with pytest.raises(DbcError, match="no such folder"):
        codec_module.set_dbc_dir(tmp_path / "missing")
    folder = _dbc_copy(tmp_path)
    codec_module.set_dbc_dir(folder)
    assert codec_module.load_dbc("chademo").path == (folder / "chademo.dbc").resolve()
    codec_module.set_dbc_dir(None)
    assert codec_module.load_dbc("chademo").path == (dbc_dir() / "chademo.dbc").resolve()


# --- buses ------------------------------------------------------------------------------------------


def test_unknown_interface_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", SHORT, "-i", "nosuchbus"], console=Console(file=io.StringIO()))
    assert info.value.code == ExitCode.USAGE


def test_missing_channel_is_a_bus_error() -> None:
    code, out = cli("run", SHORT, "-i", "socketcan", "-c", "nosuchcan9")
    assert code == ExitCode.BUS
    line = one_error_line(out)
    assert "(bus)" in line and "nosuchcan9" in line


# --- CAN log files ----------------------------------------------------------------------------------


def test_missing_log_file() -> None:
    code, out = cli("decode", "/nonexistent/capture.log")
    assert code == ExitCode.LOG_FORMAT and "capture.log" in one_error_line(out)


@pytest.mark.parametrize("content", [b"(1.0) can0 123#GG\n", b"\xff\xfe\x00\x81garbage", b"not a log\n"])
def test_malformed_log_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "capture.log"
    path.write_bytes(content)
    code, out = cli("decode", str(path))
    assert code not in (ExitCode.OK, ExitCode.INTERNAL)
    assert "Traceback" not in out and "capture.log" in out
    assert sum(1 for line in out.splitlines() if line.startswith("error (")) == 1


# --- --debug ----------------------------------------------------------------------------------------


def test_debug_adds_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("protocol: tesla\n", encoding="utf-8")
    code, out = cli("--debug", "run", str(path))
    assert code == ExitCode.SCENARIO and "Traceback" in out
