"""Support for the real-time, role and SocketCAN tests: a short scenario, a simulated-time loop for two
single-role sessions, fake python-can buses registered through python-can's own interface registry,
subprocess helpers and log readers."""

from __future__ import annotations

import heapq
import itertools
import os
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import can
import pytest
from can.interfaces.virtual import VirtualBus

from charger_sim.frames import Frame
from charger_sim.protocols.base import Role
from charger_sim.scenario.schema import Scenario
from charger_sim.session.lone import LoneSession
from charger_sim.session.result import SessionResult

ROOT = Path(__file__).resolve().parents[1]

# A short CHAdeMO session: ~3 s to charging, ~3 s of charging to the target SOC, ~2 s of stop.
FAST_CHADEMO = """\
name: short CHAdeMO session
protocol: chademo
seed: 3
time_limit: 120
charger:
  max_current: 125
  insulation_test_voltage: 100
vehicle:
  soc: 79.99
  target_soc: 80
  permission_delay: 0.5
  contactor_delay: 0.3
  first_request_delay: 0.3
  welding_check_time: 0.5
expect:
  outcome: completed
"""

# Same, but charging goes on for minutes (to be interrupted)
LONG_CHADEMO = FAST_CHADEMO.replace("soc: 79.99", "soc: 30").replace("name: short", "name: long")


# A short GB/T session: insulation test ~5.6 s (the IMD settles 5 s), ~1.5 s of charging, ~2 s of stop
# (the bms role ends 2 s after the charger's CSD).
FAST_GBT = """\
name: short GB/T session
protocol: gbt
seed: 3
time_limit: 120
charger:
  insulation_test_voltage: 100
vehicle:
  pack: {chemistry: lfp, series: 60, parallel: 1, cell_capacity_ah: 100, max_charge_current_a: 200}
  soc: 79.995
  target_soc: 80
  bro_delay: 0.3
expect:
  outcome: completed
"""

# A short CCS session: cable check ~2.5 s, pre-charge ~1.5 s, ~2 s of current demand, ~1.5 s of stop.
FAST_CCS = """\
name: short CCS session
protocol: ccs
seed: 3
time_limit: 120
charger:
  authorization_delay: 0.2
  cable_check_voltage: 200
vehicle:
  pack: {chemistry: nmc, series: 48, parallel: 2, cell_capacity_ah: 56.3, max_charge_current_a: 125}
  soc: 79.995
  target_soc: 80
  link_delay: 0.5
expect:
  outcome: completed
"""

FAST = {"chademo": FAST_CHADEMO, "gbt": FAST_GBT, "ccs": FAST_CCS}
# Same, charging for minutes (to be interrupted)
LONG = {
    p: re.sub(r"soc: 79\.99\d*", "soc: 30", t).replace("name: short", "name: long") for p, t in FAST.items()
}


CYCLIC = {  # protocol -> (a vehicle frame, its period in ms, a charger frame, its period in ms)
    "chademo": (0x102, 100.0, 0x109, 100.0),
    "gbt": (0x181056F4, 50.0, 0x1812F456, 50.0),  # BCL, CCS
    "ccs": (0x510, 100.0, 0x500, 100.0),  # EvStatus, EvseStatus
}
LOGGED = {  # protocol -> frames both logs must hold (GB/T: BCL, CCS, BST, CST, BSD, CSD)
    "chademo": {0x100, 0x101, 0x102, 0x108, 0x109},
    "gbt": {
        0x181056F4,
        0x1812F456,
        0x101956F4,
        0x101AF456,
        0x181C56F4,
        0x181DF456,
    },  # BCL CCS BST CST BSD CSD
    "ccs": {0x500, 0x501, 0x502, 0x503, 0x510, 0x511, 0x512, 0x513},
}


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---- two single-role sessions wired together in simulated time -------------------------------------
def run_pair(
    charger_sc: Scenario,
    vehicle_sc: Scenario,
    until: float = 300.0,
    interrupt: tuple[Role, float] | None = None,
) -> tuple[SessionResult, SessionResult, LoneSession, LoneSession]:
    """The ``charger`` and ``bms`` roles against each other on an in-memory wire, each with its own
    harness (so every line the other side drives is inferred by its peer plant, as on a real bus).
    ``interrupt=(role, t)``: that side gets a Ctrl-C (``request_stop(t, "interrupted")``) at ``t``."""
    a = LoneSession(charger_sc, Role.CHARGER)
    b = LoneSession(vehicle_sc, Role.VEHICLE)
    sessions = (a, b)
    pending: list[tuple[float, int, int, Frame]] = []
    seq = 0

    def send(src: int, frames: list[Frame], now: float) -> None:
        nonlocal seq
        for f in frames:
            for at, g in sessions[src].link(f, sessions[src].role, now):
                heapq.heappush(pending, (at, seq, 1 - src, g))
                seq += 1

    send(1, [f for _, f in b.start(0.0)], 0.0)
    send(0, [f for _, f in a.start(0.0)], 0.0)
    now = 0.0
    while not (a.done and b.done):
        cands = [
            d
            for s in sessions
            for d in (s.core.next_deadline(), s.plant.next_deadline(), s.next_deadline())
            if d is not None
        ]
        if pending:
            cands.append(pending[0][0])
        if interrupt is not None:
            cands.append(interrupt[1])
        now = max(now, min(cands))
        if now > until:
            break
        if interrupt is not None and now >= interrupt[1]:
            sessions[0 if interrupt[0] is Role.CHARGER else 1].request_stop(now, "interrupted")
            interrupt = None
        while pending and pending[0][0] <= now:
            _, _, dest, frame = heapq.heappop(pending)
            s = sessions[dest]
            s.plant.receive(frame, now)
            s.heard(frame, now)
            send(dest, s.core.receive(frame, now), now)
        for i, s in enumerate(sessions):
            pd = s.plant.next_deadline()
            if pd is not None and pd <= now + 1e-9:
                s.plant.on_timer(now)
            cd = s.core.next_deadline()
            if cd is not None and cd <= now + 1e-9:
                send(i, s.core.on_timer(now), now)
            s.end_time = now
            s.observe(now)
    return a.result(now), b.result(now), a, b


# ---- fake buses through python-can's interface registry ----------------------------------------------
class RecordingBus(can.BusABC):
    """Stands in for a hardware adapter: records how it was opened, then reports the adapter gone."""

    opened: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, channel: Any = None, **kwargs: Any) -> None:
        RecordingBus.opened.append({"channel": channel, **kwargs})
        self.channel_info = f"recording bus {channel}"
        super().__init__(channel=channel, **kwargs)

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        pass

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        raise can.CanOperationError("adapter unplugged")


class FaultyVirtualBus(VirtualBus):  # type: ignore[misc]
    """python-can's virtual bus; the first handle opened injects a fault after ``after`` s."""

    fault = "bus_off"  # bus_off | error_frames | unplug
    after = 1.0
    _handles = 0

    def __init__(self, channel: Any = None, **kwargs: Any) -> None:
        kwargs.pop("bitrate", None)
        super().__init__(channel=channel, **kwargs)
        FaultyVirtualBus._handles += 1
        self._faulty = FaultyVirtualBus._handles == 1
        self._t0 = time.monotonic()
        self._errors_sent = 0

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        if self._faulty and time.monotonic() - self._t0 >= self.after:
            if self.fault == "unplug":
                raise can.CanOperationError("adapter unplugged")
            if self.fault == "bus_off":
                return can.Message(arbitration_id=0x040, is_error_frame=True, data=bytes(8)), False
            if self._errors_sent < 3:  # a few error-passive frames: counted, the session goes on
                self._errors_sent += 1
                return can.Message(arbitration_id=0x004, is_error_frame=True, data=bytes(8)), False
        return super()._recv_internal(timeout)  # type: ignore[no-any-return]


@pytest.fixture
def fake_interfaces(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Register fake backends under ``names`` in python-can's registry (BACKENDS/VALID_INTERFACES)."""
    import can.interface
    import can.interfaces
    import can.util

    def register(names: dict[str, str]) -> None:
        for name, cls in names.items():
            monkeypatch.setitem(can.interfaces.BACKENDS, name, ("tests.buses", cls))
        valid = frozenset(can.util.VALID_INTERFACES | set(names))
        monkeypatch.setattr(can.util, "VALID_INTERFACES", valid)

    RecordingBus.opened = []
    FaultyVirtualBus._handles = 0
    return register


# ---- subprocesses ------------------------------------------------------------------------------------
def cli_process(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """``charger-sim ARGS`` as a child process (stdout to a pipe, stderr to a pipe)."""
    full_env = {**os.environ, "COLUMNS": "120", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "charger_sim", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
    )


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float) -> list[str]:
    """Read ``proc``'s stderr until a line contains ``needle``; returns the lines read."""
    assert proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    lines: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not sel.select(timeout=0.2):
            if proc.poll() is not None:
                break
            continue
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
    raise AssertionError(f"{needle!r} never appeared on stderr:\n{''.join(lines)}{err}\n{out[-2000:]}")


def interrupt(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def finish(proc: subprocess.Popen[str], timeout: float = 90.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"still running after {timeout} s:\n{err}\n{out[-3000:]}") from None
    return proc.returncode, out, err


# ---- logs --------------------------------------------------------------------------------------------
def read_log(path: Path) -> list[can.Message]:
    return [m for m in can.LogReader(str(path)) if not m.is_error_frame]


def status_109(messages: list[can.Message]) -> list[tuple[int, int]]:
    """(status byte 109.5, present current 109.3) of every 0x109 frame, in order."""
    return [(m.data[5], m.data[3]) for m in messages if m.arbitration_id == 0x109 and not m.is_extended_id]


def assert_stop_sequence(messages: list[can.Message], *, charged: bool) -> None:
    """0x109 shows the stop: stop flag (109.5.5) set, charging flag cleared, current 0, unlocked last."""
    rows = status_109(messages)
    assert rows, "no 0x109 frames in the log"
    if charged:
        first_charging = next(i for i, (st, _) in enumerate(rows) if st & 0x01 and not st & 0x20)
        after = rows[first_charging:]
        stop_at = next(i for i, (st, _) in enumerate(after) if st & 0x20)
        assert after[stop_at:], "no 0x109 with the stop flag after charging"
    last_status, last_current = rows[-1]
    assert last_status & 0x20, f"last 0x109 status 0x{last_status:02X} has no stop flag"
    assert not last_status & 0x01 and last_current == 0
    assert not last_status & 0x04, "connector still locked at the end"


def _names(messages: list[can.Message], dbc: str) -> list[tuple[str, dict[str, Any]]]:
    """(message name, decoded values) of every single-frame DBC message in ``messages``, in order."""
    from charger_sim.codec import load_dbc

    codec = load_dbc(dbc)
    out = []
    for m in messages:
        mc = codec.by_id(m.arbitration_id, bool(m.is_extended_id))
        if mc is not None and not m.is_error_frame:
            out.append((mc.name, mc.decode(bytes(m.data), allow_truncated=True)))
    return out


def assert_gbt_stop_sequence(messages: list[can.Message]) -> None:
    """GB/T end phase (§6 steps 9-10): CCS with current, then BST and CST (no CCS after them), BSD,
    then CSD last; the last CCS before the stop carries the charger's output."""
    seq = _names(messages, "gbt27930")
    names = [n for n, _ in seq]
    assert "CCS" in names and any(-float(v["OutputCurrent"]) > 0 for n, v in seq if n == "CCS"), names[:40]
    first_stop = min(names.index("CST"), names.index("BST"))
    assert "CCS" not in names[first_stop:], "CCS after the stop began"
    assert names.index("BSD") > first_stop and "CSD" in names[names.index("BSD") :]
    assert names[-1] in ("CSD", "BSD"), names[-10:]


def assert_ccs_stop_sequence(messages: list[can.Message]) -> None:
    """CCS (DIN 70121) end: current demand with current, then PowerDelivery(stop) 12, welding
    detection 13, session stop 14, unlock 15 and done 16 in EvseStage; the EV's contactors close and
    open again; the output current ends at 0."""
    seq = _names(messages, "ccs")
    stages = [int(v["EvseStage"]) for n, v in seq if n == "EvseStatus"]
    walk = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s]
    assert walk[-6:] == [11, 12, 13, 14, 15, 16], walk
    currents = [float(v["EvsePresentCurrent"]) for n, v in seq if n == "EvsePresentValues"]
    assert max(currents) > 0 and currents[-1] == 0, currents[-5:]
    contactors = [int(v["EvContactorState"]) for n, v in seq if n == "EvStatus"]
    assert 1 in contactors and contactors[-1] == 0, contactors[-5:]


def assert_stop_sequence_of(protocol: str, messages: list[can.Message]) -> None:
    if protocol == "chademo":
        assert_stop_sequence(messages, charged=True)
    elif protocol == "gbt":
        assert_gbt_stop_sequence(messages)
    else:
        assert_ccs_stop_sequence(messages)


# ---- a third listener on a real bus, and the report lines it produces ----------------------------------
REPORT: list[str] = []  # printed in pytest's terminal summary (tests/conftest.py)


class BusRecorder:
    """Records every frame on ``channel`` in a thread (kernel receive timestamps on SocketCAN)."""

    def __init__(self, interface: str, channel: str) -> None:
        import threading

        self.bus = can.Bus(interface=interface, channel=channel)
        self.messages: list[can.Message] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.bus.recv(0.1)
            except can.CanError:
                continue  # the interface may be taken down by the test
            if msg is not None:
                self.messages.append(msg)

    def stop(self) -> list[can.Message]:
        self._stop.set()
        self._thread.join(timeout=2)
        self.bus.shutdown()
        return self.messages


def received_cadence(messages: list[can.Message], frame_id: int, nominal: float = 0.1) -> dict[str, float]:
    """Period statistics of ``frame_id`` as a third node on the bus received it."""
    stamps = [m.timestamp for m in messages if m.arbitration_id == frame_id and not m.is_error_frame]
    periods = [b - a for a, b in itertools.pairwise(stamps)]
    errors = sorted(abs(p - nominal) * 1000 for p in periods)
    return {
        "count": float(len(stamps)),
        "mean_ms": 1000 * sum(periods) / len(periods),
        "median_ms": 1000 * statistics.median(periods),
        "p99_ms": errors[min(len(errors) - 1, int(0.99 * len(errors)))],
        "max_ms": errors[-1],
        "late": float(sum(1 for p in periods if p > nominal * 1.1)),
    }
