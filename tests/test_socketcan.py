"""SocketCAN tier: real processes on a real kernel vcan0 (``python -m pytest -m socketcan``).

On a machine whose kernel has no vcan0, ``python -m pytest`` runs these tests inside User-Mode Linux
through ``.ci/vcan_uml.sh`` when its kernel is installed, and skips them otherwise (``conftest.py``).
Real-time tests: they assert outcomes, not timings; the cadence measured on the receiving side is
reported in the terminal summary ("measured").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import can
import pytest

from charger_sim.codec import load_dbc
from charger_sim.drivers.canbus import open_bus, protocol_filters
from charger_sim.protocols import registry
from tests.buses import (
    CYCLIC,
    FAST,
    LOGGED,
    LONG_CHADEMO,
    REPORT,
    BusRecorder,
    assert_stop_sequence,
    assert_stop_sequence_of,
    cli_process,
    finish,
    interrupt,
    read_log,
    received_cadence,
    wait_for_line,
    write,
)

CHANNEL = os.environ.get("CHARGER_SIM_VCAN", "vcan0")
# where the tier runs (here, in User-Mode Linux through .ci/vcan_uml.sh, or skipped): tests/conftest.py
pytestmark = [pytest.mark.socketcan]
BUS = ["-i", "socketcan", "-c", CHANNEL]


def error_frame(error_class: int) -> can.Message:
    """A SocketCAN error frame (linux/can/error.h class bits in the ID), as a controller reports it."""
    return can.Message(arbitration_id=error_class, is_error_frame=True, is_extended_id=False, data=bytes(8))


def bms_on_the_bus(bms: subprocess.Popen[str], protocol: str = "chademo", timeout: float = 60.0) -> None:
    """Wait until the simulated BMS sends (CHAdeMO, CCS: it talks first), so that the charger started
    next does not give up on a BMS still starting up (Python starts slowly in User-Mode Linux; the
    CHAdeMO charger waits only T1 = 8 s).  A GB/T BMS sleeps until it hears the charger: no wait."""
    if protocol == "gbt":
        return
    vehicle_id = CYCLIC[protocol][0]
    with can.Bus(interface="socketcan", channel=CHANNEL) as bus:
        end = time.monotonic() + timeout
        while time.monotonic() < end and bms.poll() is None:
            msg = bus.recv(0.2)
            if msg is not None and msg.arbitration_id == vehicle_id:
                return
    if bms.poll() is None:
        bms.kill()
    out, err = bms.communicate(timeout=5)
    raise AssertionError(f"the BMS sent nothing within {timeout:g} s:\n{err}\n{out[-2000:]}")


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("ip") is not None


def _report_cadence(
    label: str, messages: list[can.Message], ids: tuple[int, ...], nominal_ms: float = 100.0
) -> None:
    for fid in ids:
        c = received_cadence(messages, fid, nominal_ms / 1000.0)
        REPORT.append(
            f"{label}: 0x{fid:03X} received on {CHANNEL}: {c['count']:.0f} frames, mean period "
            f"{c['mean_ms']:.2f} ms ({nominal_ms:g} ms nominal), median {c['median_ms']:.2f} ms, "
            f"p99 |error| {c['p99_ms']:.2f} ms, max {c['max_ms']:.2f} ms, "
            f"late (>{1.1 * nominal_ms:g} ms) {c['late']:.0f}"
        )
        # loose, the figures are reported, not judged: the median catches a wrong period, and one
        # stall of the guest's single CPU cannot move it (it can move the mean of 30 GB/T frames)
        assert 0.9 * nominal_ms < c["median_ms"] < 1.1 * nominal_ms, c


# ---- two processes ------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", registry.names())
def test_two_processes_complete_a_session(protocol: str, tmp_path: Path) -> None:
    scenario = write(tmp_path, FAST[protocol])
    recorder = BusRecorder("socketcan", CHANNEL)
    try:
        # the BMS takes its bus from python-can's configuration (environment), the charger from flags
        env = {"CAN_INTERFACE": "socketcan", "CAN_CHANNEL": CHANNEL}
        bms = cli_process(
            "bms", "--vehicle", str(scenario), "--log", str(tmp_path / "bms.asc"),
            "--json", str(tmp_path / "bms.json"), env=env,
        )  # fmt: skip
        bms_on_the_bus(bms, protocol)
        charger = cli_process(
            "charger", *BUS, "--protocol", protocol, "--config", str(scenario),
            "--log", str(tmp_path / "charger.log"), "--json", str(tmp_path / "charger.json"),
        )  # fmt: skip
        c_code, c_out, c_err = finish(charger)
        b_code, b_out, b_err = finish(bms)
    finally:
        on_bus = recorder.stop()
    assert c_code == 0, c_err + c_out[-3000:]
    assert b_code == 0, b_err + b_out[-3000:]
    for name in ("charger", "bms"):
        result = json.loads((tmp_path / f"{name}.json").read_text())["results"][0]
        assert result["outcome"] == "completed" and result["passed"], result
    assert "Cadence of the cyclic frames" in c_out and "received" in c_out and "sent" in b_out
    charger_log, bms_log = read_log(tmp_path / "charger.log"), read_log(tmp_path / "bms.asc")
    for msgs in (charger_log, bms_log):
        assert LOGGED[protocol] <= {m.arbitration_id for m in msgs}
    assert_stop_sequence_of(protocol, charger_log)
    assert_stop_sequence_of(protocol, on_bus)  # as a third node saw it on the wire
    vehicle_id, vehicle_ms, charger_id, charger_ms = CYCLIC[protocol]
    label = f"two processes, {protocol}"
    _report_cadence(label, on_bus, (vehicle_id,), vehicle_ms)
    _report_cadence(label, on_bus, (charger_id,), charger_ms)


# ---- kernel filters --------------------------------------------------------------------------------
def test_kernel_filters_pass_only_the_peer_ids_and_error_frames() -> None:
    chademo = load_dbc("chademo")
    vehicle_ids = [(m.frame_id, m.is_extended) for m in chademo.messages if "CHARGER" not in m.senders]
    gbt = load_dbc("gbt27930")
    bms_ids = [(m.frame_id, m.is_extended) for m in gbt.messages if "CHARGER" not in m.senders]
    sender = can.Bus(interface="socketcan", channel=CHANNEL)
    charger_side = open_bus("socketcan", CHANNEL, 500_000, kernel_filters=protocol_filters(vehicle_ids))
    gbt_charger = open_bus("socketcan", CHANNEL, 250_000, kernel_filters=protocol_filters(bms_ids))
    try:
        chademo_frames = [(0x108, False), (0x102, False), (0x7FF, False), (0x100, False)]
        gbt_frames = [(0x1CEC56F4, True), (0x1826F456, True), (0x181056F4, True), (0x100, True)]
        for arb, ext in chademo_frames + gbt_frames:  # charger, vehicle/BMS and noise IDs of both
            sender.send(can.Message(arbitration_id=arb, is_extended_id=ext, data=b"\x01"))
        sender.send(error_frame(0x004))  # controller problem

        def drain(bus: can.BusABC) -> list[tuple[int, bool, bool]]:
            out = []
            while (msg := bus.recv(0.2)) is not None:
                out.append((msg.arbitration_id, bool(msg.is_extended_id), bool(msg.is_error_frame)))
            return out

        error = (0x004, False, True)
        assert drain(charger_side) == [(0x102, False, False), (0x100, False, False), error]
        assert drain(gbt_charger) == [(0x1CEC56F4, True, False), (0x181056F4, True, False), error]
    finally:
        for bus in (sender, charger_side, gbt_charger):
            bus.shutdown()


# ---- Ctrl-C ----------------------------------------------------------------------------------------
def test_ctrl_c_on_the_charger_role_mid_charge(tmp_path: Path) -> None:
    scenario = write(tmp_path, LONG_CHADEMO)
    bms = cli_process("bms", *BUS, "--vehicle", str(scenario), "--log", str(tmp_path / "bms.asc"))
    bms_on_the_bus(bms)
    charger = cli_process("-vv", "charger", *BUS, "--config", str(scenario), "--log", str(tmp_path / "c.asc"))
    try:
        wait_for_line(charger, "-> charging", timeout=60)
        time.sleep(1.0)
        code, out, err = interrupt(charger)
        b_code, b_out, b_err = finish(bms, timeout=60)
    finally:
        for proc in (charger, bms):
            if proc.poll() is None:
                proc.kill()
    assert code == 130, err + out[-2000:]
    assert_stop_sequence(read_log(tmp_path / "c.asc"), charged=True)
    # the simulated BMS followed the stop and ended when the charger went quiet
    assert b_code == 1 and "stopped" in b_out, b_err
    assert read_log(tmp_path / "bms.asc")


def test_ctrl_c_on_run_realtime_over_vcan0(tmp_path: Path) -> None:
    recorder = BusRecorder("socketcan", CHANNEL)
    log = tmp_path / "session.blf"
    try:
        proc = cli_process("-vv", "run", str(write(tmp_path, LONG_CHADEMO)), *BUS, "--log", str(log))
        wait_for_line(proc, "-> charging", timeout=60)
        time.sleep(1.0)
        code, out, err = interrupt(proc)
    finally:
        on_bus = recorder.stop()
    assert code == 130, err + out[-2000:]
    assert_stop_sequence(read_log(log), charged=True)
    assert_stop_sequence(on_bus, charged=True)
    _report_cadence("run --realtime (one process, two handles)", on_bus, (0x109,))


# ---- the bus failing ----------------------------------------------------------------------------------
@pytest.fixture
def restore_vcan() -> object:
    yield None
    subprocess.run(["ip", "link", "set", CHANNEL, "up"], check=False)


@pytest.mark.skipif(not _root(), reason="needs root and iproute2 to take the interface down")
def test_interface_down_mid_session_is_a_safe_stop(tmp_path: Path, restore_vcan: object) -> None:
    scenario = write(tmp_path, LONG_CHADEMO)
    bms = cli_process("bms", *BUS, "--vehicle", str(scenario), "--log", str(tmp_path / "bms.asc"))
    bms_on_the_bus(bms)
    charger = cli_process("-vv", "charger", *BUS, "--config", str(scenario), "--log", str(tmp_path / "c.log"))
    try:
        wait_for_line(charger, "-> charging", timeout=60)
        time.sleep(0.5)
        subprocess.run(["ip", "link", "set", CHANNEL, "down"], check=True)
        code, out, err = finish(charger, timeout=30)
        b_code, _, b_err = finish(bms, timeout=30)
    finally:
        for proc in (charger, bms):
            if proc.poll() is None:
                proc.kill()
    assert code == 5 and b_code == 5, err + b_err
    for stderr, who in ((err, "charger stopped safely"), (b_err, "BMS stopped charging")):
        errors = [line for line in stderr.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and "Network is down" in errors[0] and who in errors[0], stderr
    assert "[bus_error, link]" in out  # the charger's report: stopped by the bus
    charger_log = read_log(tmp_path / "c.log")  # complete and readable
    assert any(m.arbitration_id == 0x109 and m.data[5] & 0x01 for m in charger_log)
    assert read_log(tmp_path / "bms.asc")


def test_bus_off_error_frame_is_a_safe_stop(tmp_path: Path) -> None:
    scenario = write(tmp_path, LONG_CHADEMO)
    bms = cli_process("bms", *BUS, "--vehicle", str(scenario))
    bms_on_the_bus(bms)
    charger = cli_process("-vv", "charger", *BUS, "--config", str(scenario), "--log", str(tmp_path / "c.asc"))
    try:
        wait_for_line(charger, "-> charging", timeout=60)
        with can.Bus(interface="socketcan", channel=CHANNEL) as bus:  # a controller reporting bus-off
            bus.send(error_frame(0x040))
        code, out, err = finish(charger, timeout=30)
        b_code, _, b_err = finish(bms, timeout=30)
    finally:
        for proc in (charger, bms):
            if proc.poll() is None:
                proc.kill()
    assert code == 5 and b_code == 5, err + b_err
    assert "bus-off" in next(line for line in err.splitlines() if line.startswith("error"))
    assert "bus-off x1" in out  # the error frame is counted in the report
    assert read_log(tmp_path / "c.asc")


# ---- the scenario suite on vcan0 --------------------------------------------------------------------
def test_run_on_vcan0_gives_the_simulated_verdict(tmp_path: Path) -> None:
    sim, real = tmp_path / "sim.json", tmp_path / "real.json"
    code, _, err = finish(cli_process("run", "chademo_no_permission", "--json", str(sim)))
    assert code == 0, err
    proc = cli_process("run", "chademo_no_permission", *BUS, "--json", str(real))
    r_code, out, err = finish(proc, timeout=60)
    assert r_code == 0, err + out[-2000:]
    a = json.loads(sim.read_text())["results"][0]
    b = json.loads(real.read_text())["results"][0]
    keys = ("outcome", "stage", "failed_step", "stop_reason", "passed")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
