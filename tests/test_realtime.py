"""Real-time runs without hardware: Ctrl-C on the virtual bus (a real child process and a real SIGINT),
bus failures and error frames through fake python-can backends, adapters through python-can's own
interface registry, bit rates, acceptance filters."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import cast

import can
import pytest
from rich.console import Console

from charger_sim.cli.main import main
from charger_sim.codec import load_dbc
from charger_sim.drivers.adapters import ADAPTERS
from charger_sim.drivers.canbus import protocol_filters
from charger_sim.drivers.realtime import DriverSession, Endpoint, RealtimeDriver
from charger_sim.errors import ExitCode
from charger_sim.protocols import registry
from charger_sim.protocols.base import Core, Role
from tests.buses import (
    FAST_CHADEMO,
    LONG_CHADEMO,
    FaultyVirtualBus,
    RecordingBus,
    assert_stop_sequence,
    cli_process,
    fake_interfaces,
    interrupt,
    read_log,
    status_109,
    wait_for_line,
    write,
)

__all__ = ["fake_interfaces"]

HARDWARE = [a for a in ADAPTERS if a.interface != "virtual"]


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    code = main(list(argv), console=Console(file=buf, width=200, color_system=None))
    return code, buf.getvalue()


# ---- Ctrl-C -------------------------------------------------------------------------------------------
def test_ctrl_c_mid_charge_runs_the_stop_sequence_and_exits_130(tmp_path: Path) -> None:
    scenario = write(tmp_path, LONG_CHADEMO)
    log = tmp_path / "session.log"
    proc = cli_process("-vv", "run", str(scenario), "--realtime", "--log", str(log), "--no-timeline")
    wait_for_line(proc, "-> charging", timeout=60)
    time.sleep(1.0)  # a little charging
    code, out, err = interrupt(proc)
    assert code == ExitCode.INTERRUPTED, err
    assert "interrupted" in out and "frames recorded to" in out
    msgs = read_log(log)  # complete and readable
    assert_stop_sequence(msgs, charged=True)
    # the vehicle answered the stop: it withdrew permission and the charger saw its contactors open
    assert any(m.arbitration_id == 0x102 and not m.data[5] & 0x01 for m in msgs[-40:])


def test_ctrl_c_before_the_vehicle_answers_still_ends_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "session.asc"
    proc = cli_process("-vv", "run", str(write(tmp_path, FAST_CHADEMO)), "--realtime", "--log", str(log))
    wait_for_line(proc, "-> negotiation", timeout=60)
    code, _, err = interrupt(proc)
    assert code == ExitCode.INTERRUPTED, err
    assert_stop_sequence(read_log(log), charged=False)


# ---- the bus failing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("fault", "words"), [("bus_off", "bus-off"), ("unplug", "adapter unplugged")])
def test_bus_failure_mid_session_is_a_safe_stop_with_one_error_line(
    fake_interfaces: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fault: str, words: str
) -> None:
    fake_interfaces({"pcan": "FaultyVirtualBus"})  # type: ignore[operator]
    monkeypatch.setattr(FaultyVirtualBus, "fault", fault)
    monkeypatch.setattr(FaultyVirtualBus, "after", 1.0)
    log = tmp_path / "session.asc"
    code, out = cli("run", str(write(tmp_path, FAST_CHADEMO)), "-i", "pcan", "-c", "x", "--log", str(log))
    assert code == ExitCode.BUS
    errors = [line for line in out.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and words in errors[0] and "stopped safely" in errors[0], out
    assert "Traceback" not in out
    assert "[bus_error, link]" in out  # the session report: stopped by the bus
    msgs = read_log(log)  # closed properly, readable
    assert 0x109 in {m.arbitration_id for m in msgs}


def test_error_frames_are_counted_and_the_session_goes_on(
    fake_interfaces: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_interfaces({"pcan": "FaultyVirtualBus"})  # type: ignore[operator]
    monkeypatch.setattr(FaultyVirtualBus, "fault", "error_frames")
    monkeypatch.setattr(FaultyVirtualBus, "after", 0.5)
    text = FAST_CHADEMO.replace("time_limit: 120", "time_limit: 1.5").replace("completed", "stopped")
    code, out = cli("run", str(write(tmp_path, text)), "-i", "pcan", "-c", "x", "--no-timeline")
    assert code == ExitCode.VERDICT_FAILED  # time limit reached: unfinished, not a bus error
    assert "charger bus: 3 error frames (controller problem x3)" in out


# ---- adapters, through python-can's interface registry -------------------------------------------------
@pytest.mark.parametrize("adapter", HARDWARE, ids=lambda a: a.interface)
def test_documented_adapters_are_python_can_interfaces(adapter: object) -> None:
    import can.interfaces

    name = adapter.interface  # type: ignore[attr-defined]
    assert name in can.interfaces.VALID_INTERFACES and name in can.interfaces.BACKENDS


@pytest.mark.parametrize("adapter", HARDWARE, ids=lambda a: a.interface)
@pytest.mark.parametrize("command", ["charger", "bms", "run"])
def test_adapter_opened_with_the_protocol_bitrate(
    fake_interfaces: object, adapter: object, command: str
) -> None:
    name, channel = adapter.interface, adapter.channel  # type: ignore[attr-defined]
    fake_interfaces({name: "RecordingBus"})  # type: ignore[operator]
    argv = [command, "chademo_no_permission"] if command == "run" else [command]
    code, out = cli(*argv, "-i", name, "-c", channel, "--no-timeline")
    assert code == ExitCode.BUS and "adapter unplugged" in out, out
    opened = RecordingBus.opened[0]
    assert opened["bitrate"] == 500_000 and str(opened["channel"]) == channel
    # kernel acceptance filters for the peer's IDs on SocketCAN only (software filters would drop
    # error frames too)
    assert bool(opened.get("can_filters")) == (name == "socketcan")


@pytest.mark.parametrize("protocol", registry.names())
def test_bitrate_defaults_per_protocol(protocol: str) -> None:
    expected = {"chademo": 500_000, "gbt": 250_000}
    info = registry.get(protocol)
    if protocol in expected:
        assert info.bitrate == expected[protocol]


@pytest.mark.parametrize("command", ["charger", "bms"])
def test_contradicting_bitrates_are_refused(command: str, tmp_path: Path) -> None:
    code, out = cli(command, "-i", "virtual", "-c", "x", "-b", "250000")
    assert code == ExitCode.USAGE and "500 kbit/s" in out and "-b 250000" in out
    code, out = cli(
        command,
        "-i",
        "virtual",
        "-c",
        "x",
        "--timing",
        "f_clock=8000000",
        "brp=1",
        "tseg1=5",
        "tseg2=2",
        "sjw=1",
        "nof_samples=1",
    )
    assert code == ExitCode.USAGE and "--timing 1000000" in out


def test_real_adapter_without_hardware_is_one_bus_error_line() -> None:
    code, out = cli("charger", "-i", "gs_usb", "-c", "0", "--no-timeline")
    assert code == ExitCode.BUS
    assert out.strip().startswith("error (bus): cannot open CAN bus gs_usb:0") and "pyusb" in out
    assert len(out.strip().splitlines()) == 1


# ---- acceptance filters --------------------------------------------------------------------------------
def test_filters_match_the_peer_ids() -> None:
    chademo = load_dbc("chademo")
    vehicle = [(m.frame_id, m.is_extended) for m in chademo.messages if "CHARGER" not in m.senders]
    assert protocol_filters(vehicle) == [
        {"can_id": i, "can_mask": 0x7FF, "extended": False} for i in (0x100, 0x101, 0x102, 0x110)
    ]
    gbt = load_dbc("gbt27930")
    bms = [(m.frame_id, m.is_extended) for m in gbt.messages if "CHARGER" not in m.senders]
    assert protocol_filters(bms) == [{"can_id": 0xF4, "can_mask": 0xFF, "extended": True}]
    # on python-can's virtual bus the same filters apply in software
    bus_a = can.Bus(interface="virtual", channel="filters-test")
    bus_b = can.Bus(interface="virtual", channel="filters-test", can_filters=protocol_filters(vehicle))
    try:
        for arb in (0x108, 0x102, 0x7FF):
            bus_a.send(can.Message(arbitration_id=arb, is_extended_id=False, data=b"\x00"))
        got = bus_b.recv(0.5)
        assert got is not None and got.arbitration_id == 0x102 and bus_b.recv(0.05) is None
    finally:
        bus_a.shutdown()
        bus_b.shutdown()


def test_stop_rows_helper_reads_status_and_current() -> None:
    msg = can.Message(arbitration_id=0x109, is_extended_id=False, data=bytes([2, 0, 0, 7, 0, 0x25, 0, 0]))
    assert status_109([msg]) == [(0x25, 7)]


# ---- wake early, then spin -------------------------------------------------------------------------------
class _SteppingClock:
    """A clock that moves on by ``step`` on every reading (the driver's clock is injectable)."""

    def __init__(self, step: float = 0.0002) -> None:
        self.t = 0.0
        self.step = step
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        self.t += self.step
        return self.t


def _spinning_driver(clock: _SteppingClock) -> tuple[RealtimeDriver, Endpoint, can.BusABC, can.BusABC]:
    channel = "spin-test"
    bus, peer = can.Bus(interface="virtual", channel=channel), can.Bus(interface="virtual", channel=channel)
    ep = Endpoint(Role.CHARGER, cast(Core, None), bus)  # _spin never asks the core
    driver = RealtimeDriver(cast(DriverSession, None), [ep], clock=clock)
    driver.t0 = 0.0
    return driver, ep, bus, peer


def test_spin_polls_the_bus_until_the_clock_reaches_the_deadline() -> None:
    clock = _SteppingClock()
    driver, ep, bus, peer = _spinning_driver(clock)
    try:
        assert driver._spin(ep, 0.01) is None
        assert clock.t >= 0.01  # returned at the deadline itself, not before
        assert clock.t < 0.01 + 2 * clock.step  # ... and without waiting past it
        assert driver._spin(ep, 0.0) is None  # a past deadline: at once
    finally:
        bus.shutdown()
        peer.shutdown()


def test_spin_hands_over_a_frame_that_arrives_before_the_deadline() -> None:
    clock = _SteppingClock()
    driver, ep, bus, peer = _spinning_driver(clock)
    try:
        peer.send(can.Message(arbitration_id=0x102, is_extended_id=False, data=bytes(8)))
        got = driver._spin(ep, 1.0)
        assert got is not None and got.arbitration_id == 0x102
        assert clock.t < 1.0  # the frame is delivered now; the loop comes back for the deadline
    finally:
        bus.shutdown()
        peer.shutdown()
