"""Scripted-BMS bench for the GB/T charger core (h11 ``ConnectionPair`` style).

Only the charger core runs; the BMS is a script: single frames built through the DBC (every field
overridable) sent periodically, multi-packet messages sent through its own J1939-21
:class:`TransportEndpoint`, plus the DC-link values the test sets on the :class:`Harness` (or a
tiny battery: ``ocv + r * I``).  Default payloads are the real ones of field-log capture A (an LFP
car: BHM 426.1 V, BCP 378.2 V present).  The clock is explicit: :meth:`GbtBench.step_to` visits every
charger deadline, every transport timer and every BMS transmission up to a time.  No sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from charger_sim.codec import Value, load_dbc
from charger_sim.frames import Frame
from charger_sim.plant.harness import Harness
from charger_sim.protocols.base import Event, FaultRaised, Role, SessionEnded, StageChanged
from charger_sim.protocols.gbt import BMS_ADDRESS, CHARGER_ADDRESS
from charger_sim.protocols.gbt.charger import GbtCharger
from charger_sim.protocols.gbt.config import GbtChargerConfig
from charger_sim.protocols.gbt.messages import TP_PGN
from charger_sim.protocols.gbt.states import Stage
from charger_sim.protocols.gbt.timing import limit
from charger_sim.protocols.gbt.transport import PGN_TP_CM, TransportEndpoint, split_id
from tests.clocked import EPS, Clocked

CODEC = load_dbc("gbt27930")

# Capture A (sut4nd0): the 49-byte BRM, BCP and first BCS payloads.
_BRM_DT = (  # the seven TP.DT frames of capture A's BRM
    "0101010003F00540",
    "020E010000000100",
    "030000630B089500",
    "040001FF4C314E53",
    "0550474839384E41",
    "0631393632303200",
    "070104E707FFFF00",
)
BRM_49 = b"".join(bytes.fromhex(h)[1:] for h in _BRM_DT)
BCP_A = bytes.fromhex("7201DA052A02A510730803C60E")
BCS_A = bytes.fromhex("C50EA00F4C614D0000")

SINGLE_DEFAULTS: dict[str, dict[str, Value]] = {
    "BHM": {"MaxPermissibleChargeVoltage": 426.1},
    "BRO": {"BmsReady": 0x00},
    "BCL": {"VoltageDemand": 426.1, "CurrentDemand": -20.0, "ChargeMode": 2},
    "BSM": {
        "MaxCellVoltageNumber": 31,
        "MaxTemperature": 4,
        "MaxTempProbe": 7,
        "MinTemperature": 3,
        "MinTempProbe": 16,
        "CellVoltageState": 0,
        "SocState": 0,
        "OverCurrent": 0,
        "OverTemperature": 0,
        "Insulation": 0,
        "OutputConnector": 0,
        "ChargePermit": 1,
    },
    "BSD": {
        "StopSOC": 77,
        "MinCellVoltage": 3.33,
        "MaxCellVoltage": 3.34,
        "MinTemperature": 3,
        "MaxTemperature": 4,
    },
}


def two_bit(name: str, **on: int) -> dict[str, Value]:
    """All fields of a flag message (BST, BEM...) 00 except the given ones."""
    return {s.name: on.get(s.name, 0) for s in CODEC.message(name).signals}


@dataclass
class _Periodic:
    period: float
    next_at: float
    tp: bool = False


@dataclass
class ScriptedBms:
    """What the BMS sends: current values per message and which messages go out when."""

    values: dict[str, dict[str, Value]] = field(
        default_factory=lambda: {k: dict(v) for k, v in SINGLE_DEFAULTS.items()}
    )
    payloads: dict[str, bytes] = field(default_factory=lambda: {"BRM": BRM_49, "BCP": BCP_A, "BCS": BCS_A})
    schedule: dict[str, _Periodic] = field(default_factory=dict)

    def set(self, name: str, **fields: Value) -> None:
        values = self.values.setdefault(name, {})
        unknown = set(fields) - {s.name for s in CODEC.message(name).signals}
        assert not unknown, unknown
        values.update(fields)

    def frame(self, name: str, now: float) -> Frame:
        return CODEC.message(name).frame(self.values[name], now)


class GbtBench(Clocked):
    """One GB/T charger core and one scripted BMS on an explicit clock."""

    def __init__(self, config: GbtChargerConfig | None = None, bms: ScriptedBms | None = None) -> None:
        self.harness = Harness()
        self.config = config or GbtChargerConfig()
        self.charger = GbtCharger(self.config, self.harness, CODEC)
        self.bms = bms or ScriptedBms()
        self.tp = TransportEndpoint(BMS_ADDRESS)
        self.now = 0.0
        self.sent: list[Frame] = []  # charger -> BMS
        self.delivered: list[Frame] = []  # BMS -> charger
        self.events: list[Event] = []
        self.battery: tuple[float, float] | None = None  # (ocv, resistance): harness voltage follows I
        self.answer_rts = True  # the scripted BMS's TP endpoint exists and answers CTS

    # ---- clock -------------------------------------------------------------------------------
    def start(self, at: float = 0.0) -> None:
        self.now = at
        self.charger.start(at)
        self._after_instant()

    def every(
        self, name: str, period: float | None = None, *, at: float | None = None, **fields: Value
    ) -> None:
        """The BMS sends ``name`` every ``period`` (default: its DBC cycle time) from ``at``."""
        if fields:
            self.bms.set(name, **fields)
        tp = name in TP_PGN
        if period is None:
            cycle = CODEC.message(name).cycle_time
            assert cycle, name
            period = cycle / 1000.0
        self.bms.schedule[name] = _Periodic(period, self.now if at is None else at, tp)

    def quiet(self, *names: str) -> None:
        for name in names:
            self.bms.schedule.pop(name, None)

    def next_instant(self) -> float | None:
        times = [p.next_at for p in self.bms.schedule.values()]
        for t in (self.charger.next_deadline(), self.tp.next_deadline()):
            if t is not None:
                times.append(t)
        return min(times) if times else None

    def step(self) -> float | None:
        t = self.next_instant()
        if t is None:
            return None
        t = max(t, self.now)
        self.now = t
        for name, p in list(self.bms.schedule.items()):
            if p.next_at <= t + EPS and self.bms.schedule.get(name) is p:
                p.next_at += p.period
                self.send(name)
        tp_due = self.tp.next_deadline()
        if tp_due is not None and tp_due <= t + EPS:
            self._to_charger(self.tp.on_timer(t))
        for _ in range(20):
            deadline = self.charger.next_deadline()
            if deadline is None or deadline > t + EPS:
                break
            self._from_charger(self.charger.on_timer(t))
        else:  # pragma: no cover
            raise AssertionError(f"charger deadline stuck at {t}")
        self._after_instant()
        return t

    # ---- BMS -> charger ------------------------------------------------------------------------
    def send(self, name: str, **fields: Value) -> None:
        """The BMS sends one message now (multi-packet ones start a TP session)."""
        if fields:
            self.bms.set(name, **fields)
        if name in TP_PGN:
            if self.tp.sending_to(CHARGER_ADDRESS):
                return  # still busy with the previous one: skip this period (as a real BMS)
            self._to_charger(self.tp.send(TP_PGN[name], self.bms.payloads[name], CHARGER_ADDRESS, self.now))
        else:
            self._to_charger([self.bms.frame(name, self.now)])

    def deliver(self, frame: Frame) -> None:
        self._to_charger([frame])

    def _to_charger(self, frames: list[Frame]) -> None:
        for frame in frames:
            self.delivered.append(frame)
            self._from_charger(self.charger.receive(frame, self.now))

    def _from_charger(self, frames: list[Frame]) -> None:
        for frame in frames:
            self.sent.append(frame)
            if self.answer_rts and split_id(frame.arbitration_id)[1] in (PGN_TP_CM, 0xEB00):
                self._to_charger(self.tp.receive(frame, self.now))

    def request_stop(self, reason: str = "operator_stop") -> None:
        self._from_charger(self.charger.request_stop(self.now, reason))
        self._after_instant()

    def _after_instant(self) -> None:
        if self.battery is not None and self.harness.contactors_closed:
            ocv, r = self.battery
            self.harness.battery_voltage = ocv + r * self.harness.output_current
        self.events.extend(self.charger.drain_events())

    # ---- views -------------------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        return self.charger.stage

    def frames(self, name: str) -> list[Frame]:
        can_id = CODEC.message(name).frame_id
        return [f for f in self.sent if f.arbitration_id == can_id]

    def decoded(self, name: str) -> list[tuple[float, dict[str, Value]]]:
        codec = CODEC.message(name)
        return [(f.timestamp, codec.decode(f.data, allow_truncated=True)) for f in self.frames(name)]

    def data(self, name: str) -> list[str]:
        return [f.data.hex(" ").upper() for f in self.frames(name)]

    def tp_cm(self) -> list[str]:
        """Data of every TP.CM frame the charger sent."""
        return [f.data.hex(" ").upper() for f in self.sent if split_id(f.arbitration_id)[1] == PGN_TP_CM]

    def stage_changes(self) -> list[tuple[float, str]]:
        return [(e.time, e.stage) for e in self.events if isinstance(e, StageChanged)]

    def stages(self) -> list[str]:
        out: list[str] = []
        for _, stage in self.stage_changes():
            if not out or out[-1] != stage:
                out.append(stage)
        return out

    def stage_time(self, stage: Stage) -> float:
        times = [t for t, s in self.stage_changes() if s == stage.value]
        assert times, f"charger never entered {stage.value}"
        return times[-1]

    def faults(self) -> list[FaultRaised]:
        return [e for e in self.events if isinstance(e, FaultRaised)]

    def ended(self) -> SessionEnded:
        ends = [e for e in self.events if isinstance(e, SessionEnded)]
        assert len(ends) == 1, f"expected one SessionEnded, got {ends}"
        return ends[0]

    # ---- scripted BMS behaviour ----------------------------------------------------------------
    def close_contactors(self, battery_voltage: float = 378.2) -> None:
        self.harness.battery_voltage = battery_voltage
        self.harness.contactors_closed = True

    def open_contactors(self) -> None:
        self.harness.contactors_closed = False


# ---- reaching a stage ------------------------------------------------------------------------------


def handshaking(config: GbtChargerConfig | None = None, *, bhm: bool = True, **kw: Any) -> GbtBench:
    """Charger started at 0 s; the BMS answers CHM with BHM every 250 ms from 15 ms."""
    bench = GbtBench(config, **kw)
    bench.start(0.0)
    if bhm:
        bench.every("BHM", at=0.015)
    return bench


def recognising(config: GbtChargerConfig | None = None, **kw: Any) -> GbtBench:
    """Insulation test passed: CRM 0x00 every 250 ms, waiting for BRM."""
    bench = handshaking(config, **kw)
    bench.until_stage(Stage.RECOGNITION, within=limit("insulation"))
    bench.quiet("BHM")
    return bench


def configuring(config: GbtChargerConfig | None = None, **kw: Any) -> GbtBench:
    """BRM and BCP sent: CTS + CML, waiting for BRO."""
    bench = recognising(config, **kw)
    bench.send("BRM")
    assert bench.charger.crm == 0xAA
    bench.send("BCP")
    return bench


def precharging(
    config: GbtChargerConfig | None = None, battery_voltage: float = 378.2, **kw: Any
) -> GbtBench:
    """Contactors closed, BRO 0xAA: CRO 0x00 and the pre-charge."""
    bench = configuring(config, **kw)
    bench.close_contactors(battery_voltage)
    bench.every("BRO", BmsReady=0xAA)
    bench.step_to(bench.now)
    return bench


def charger_ready(config: GbtChargerConfig | None = None, **kw: Any) -> GbtBench:
    """CRO 0xAA sent, waiting for the first BCL."""
    bench = precharging(config, **kw)
    bench.until_stage(Stage.CHARGING, within=limit("precharge"))
    bench.quiet("BRO")
    return bench


def charging(
    config: GbtChargerConfig | None = None,
    *,
    current: float = 20.0,
    voltage: float = 426.1,
    mode: int = 2,
    settle: float = 0.0,
    **kw: Any,
) -> GbtBench:
    """BCL every 50 ms, BCS every 250 ms (TP), BSM every 250 ms; then ``settle`` s of charging."""
    bench = charger_ready(config, **kw)
    bench.every("BCL", VoltageDemand=voltage, CurrentDemand=-current, ChargeMode=mode)
    bench.every("BCS")
    bench.every("BSM")
    bench.step_to(bench.now + settle)
    return bench


# ---- whole sessions (charger core + simulated BMS) with scenario faults -------------------------------


@dataclass
class SessionRun:
    """A finished simulated session and every frame the link delivered, with its sender."""

    session: Any  # charger_sim.session.session.Session
    end: float
    frames: list[tuple[Role, Frame]]
    trace: list[tuple[float, float]]  # (time, output current into the vehicle) after every driver step

    def current_from(self, t: float) -> float:
        """Highest output current observed from ``t`` on (every driver step is observed)."""
        return max((i for at, i in self.trace if at >= t - 1e-9), default=0.0)

    def named(self, name: str, sender: Role | None = None) -> list[Frame]:
        can_id = CODEC.message(name).frame_id
        return [f for r, f in self.frames if f.arbitration_id == can_id and (sender is None or r is sender)]

    def data(self, name: str) -> list[str]:
        return [f.data.hex(" ").upper() for f in self.named(name)]

    def decoded(self, name: str) -> list[tuple[float, dict[str, Value]]]:
        codec = CODEC.message(name)
        return [(f.timestamp, codec.decode(f.data, allow_truncated=True)) for f in self.named(name)]

    def first(self, name: str, data: str | None = None) -> float:
        """Time of the first ``name`` frame (with this data, if given) on the wire."""
        times = [f.timestamp for f in self.named(name) if data is None or f.data.hex(" ").upper() == data]
        assert times, f"no {name} {data or ''} on the wire"
        return times[0]

    def stages(self, role: str = "charger") -> list[str]:
        out: list[str] = []
        for e in self.session.timeline:
            if e.role == role and (not out or out[-1] != e.stage):
                out.append(e.stage)
        return out

    def entered(self, stage: str, role: str = "charger") -> list[float]:
        return [e.time for e in self.session.timeline if e.role == role and e.stage == stage]

    @property
    def result(self) -> Any:  # charger_sim.session.result.SessionResult
        return self.session.result(self.end)

    @property
    def fault_at(self) -> float:
        at = self.session.faults.first_fired
        assert at is not None, "no fault fired"
        return float(at)


def run_session(spec: dict[str, Any], until: float | None = None) -> SessionRun:
    """Run a scenario given as a mapping (as a YAML file would hold it) in simulated time."""
    from charger_sim.drivers.simulated import SimulatedDriver
    from charger_sim.scenario.loader import parse_scenario
    from charger_sim.session.session import Session

    session = Session(parse_scenario(spec, "test.yaml"))
    frames: list[tuple[Role, Frame]] = []
    session.on_frame.append(lambda f, role: frames.append((role, f)))
    trace: list[tuple[float, float]] = []
    observe = session.observe

    def observed(now: float) -> None:
        observe(now)
        trace.append((now, session.harness.output_current))

    session.observe = observed  # the driver calls it after every step
    end = SimulatedDriver(session).run(session.scenario.time_limit if until is None else until)
    return SessionRun(session, end, frames, trace)
