"""Scripted-vehicle bench for the CCS bridge charger core (explicit clock, no simulated vehicle core).

The vehicle is a script: the four EV frames (EvStatus, EvTargets, EvMaxLimits, EvBatteryInfo) built
through ``dbc/ccs.dbc`` from a dict of signal values, sent every 100 ms while the script is "alive",
with an alive counter that advances per EvStatus frame unless frozen.  Its pilot and plug are harness
lines: R2 (state B) or R2 || R3 (state C) on CP, the diode, the PP contact; its contactors and battery
voltage are the DC link values the test sets.  :meth:`Bench.step_to` visits every charger deadline
and every vehicle transmission up to a time and records what the charger sent, its events and a
sample after each instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from charger_sim.codec import Value, load_dbc
from charger_sim.frames import Frame
from charger_sim.plant.harness import Harness
from charger_sim.protocols.base import Event, SessionEnded, StageChanged
from charger_sim.protocols.ccs import timing
from charger_sim.protocols.ccs.bridge import ALIVE_MODULO, VEHICLE_FRAMES, Request, sna
from charger_sim.protocols.ccs.charger import CcsCharger
from charger_sim.protocols.ccs.electrical import ev_load_ohm
from charger_sim.protocols.ccs.evse import CcsChargerConfig
from charger_sim.protocols.ccs.states import NUMBER, Stage
from tests.clocked import EPS, Clocked

CODEC = load_dbc("ccs")
CYCLE = timing.limit("cycle")
TIME_TOL = 1e-6
BATTERY_V = 360.0


def _sna(message: str, signal: str) -> Value:
    return sna(CODEC.message(message), signal)


class ScriptedEv:
    """The vehicle's frames from per-signal values (defaults: a 409 V / 125 A CCS2 car at 50 %)."""

    def __init__(self, **fields: Value) -> None:
        self.values: dict[str, dict[str, Value]] = {
            "EvStatus": {
                "EvRequest": int(Request.NONE),
                "EvReady": 0,
                "EvChargingComplete": 0,
                "EvBulkChargingComplete": 0,
                "EvStopRequest": 0,
                "EvErrorCode": 0,
                "EvCpState": 1,
                "EvSoc": 50,
                "EvContactorState": 0,
                "EvAliveCounter": 0,
            },
            "EvTargets": {
                "EvTargetVoltage": _sna("EvTargets", "EvTargetVoltage"),
                "EvTargetCurrent": _sna("EvTargets", "EvTargetCurrent"),
                "EvRemainingTimeToFullSoc": _sna("EvTargets", "EvRemainingTimeToFullSoc"),
                "EvRemainingTimeToBulkSoc": _sna("EvTargets", "EvRemainingTimeToBulkSoc"),
            },
            "EvMaxLimits": {
                "EvMaxVoltage": 409.0,
                "EvMaxCurrent": 125.0,
                "EvMaxPower": _sna("EvMaxLimits", "EvMaxPower"),
            },
            "EvBatteryInfo": {
                "EvEnergyCapacity": 40.5,
                "EvEnergyRequest": 12.1,
                "EvFullSoc": 100,
                "EvBulkSoc": 80,
            },
        }
        self.send: set[str] = set(VEHICLE_FRAMES)
        self.freeze_counter = False
        self.set(**fields)

    def set(self, **fields: Value) -> None:
        for name, value in fields.items():
            for values in self.values.values():
                if name in values:
                    values[name] = value
                    break
            else:
                raise KeyError(f"no vehicle signal {name!r}")

    def get(self, name: str) -> Value:
        for values in self.values.values():
            if name in values:
                return values[name]
        raise KeyError(name)

    def request(self, r: Request) -> None:
        self.set(EvRequest=int(r))

    def frame(self, message: str, now: float) -> Frame:
        return CODEC.message(message).frame(self.values[message], now)

    def frames(self, now: float) -> list[Frame]:
        out = [self.frame(m, now) for m in VEHICLE_FRAMES if m in self.send]
        if "EvStatus" in self.send and not self.freeze_counter:
            status = self.values["EvStatus"]
            status["EvAliveCounter"] = (int(status["EvAliveCounter"]) + 1) % ALIVE_MODULO
        return out


@dataclass(frozen=True, slots=True)
class Sample:
    """The charger after one instant of the bench clock."""

    time: float
    stage: str
    number: int
    current: float
    voltage: float
    cp: str
    duty: float
    pp_ohm: float
    status: str
    relays: bool
    locked: bool


class Bench(Clocked):
    """One CCS charger core, one scripted vehicle, an explicit clock."""

    def __init__(self, config: CcsChargerConfig | None = None, ev: ScriptedEv | None = None) -> None:
        self.harness = Harness()
        self.config = config or CcsChargerConfig()
        self.charger = CcsCharger(self.config, self.harness, CODEC)
        self.ev = ev or ScriptedEv()
        self.now = 0.0
        self.alive = False
        self._tx_t0 = 0.0
        self._tx_k = 0
        self.sent: list[Frame] = []
        self.delivered: list[Frame] = []
        self.events: list[Event] = []
        self.samples: list[Sample] = []
        self.plug()

    # ---- the vehicle's hardware ---------------------------------------------------------------
    def plug(self, *, diode: bool = True, pp_contact_ohm: float = 0.0) -> None:
        """Plug in: R2 on CP (state B), the EV diode, the PP contact."""
        self.harness.set("cp_ev_ohm", ev_load_ohm(False))
        self.harness.set("cp_ev_diode", diode)
        self.harness.set("pp_contact_ohm", pp_contact_ohm)
        self.harness.battery_voltage = BATTERY_V

    def s2(self, closed: bool) -> None:
        """Close / open S2: state C / B."""
        self.harness.set("cp_ev_ohm", ev_load_ohm(closed))
        self.ev.set(EvCpState=2 if closed else 1)

    def unplug_cp(self) -> None:
        self.harness.set("cp_ev_ohm", math.inf)

    def contactors(self, closed: bool, battery_voltage: float = BATTERY_V) -> None:
        self.harness.battery_voltage = battery_voltage
        self.harness.contactors_closed = closed
        self.ev.set(EvContactorState=1 if closed else 0)

    # ---- clock -------------------------------------------------------------------------------
    def start(self, at: float = 0.0, *, ev_talks: bool = True) -> None:
        self.now = at
        self.sent.extend(self.charger.start(at))
        if ev_talks:
            self.talk(at)
        self._after_instant()
        self.step_to(at)  # the first frames go out at the start instant

    def talk(self, at: float | None = None) -> None:
        """The vehicle sends its frames from ``at`` (default now), every 100 ms."""
        self.alive = True
        self._tx_t0 = self.now if at is None else at
        self._tx_k = 0

    def silence(self) -> None:
        self.alive = False

    @property
    def next_tx(self) -> float | None:
        return self._tx_t0 + self._tx_k * CYCLE if self.alive else None

    def next_instant(self) -> float | None:
        times = [t for t in (self.next_tx, self.charger.next_deadline()) if t is not None]
        return min(times) if times else None

    def step(self) -> float | None:
        """Run the next instant: the charger's timer first, then the vehicle's frames."""
        t = self.next_instant()
        if t is None:
            return None
        t = max(t, self.now)
        self.now = t
        for _ in range(10):
            deadline = self.charger.next_deadline()
            if deadline is None or deadline > t + EPS:
                break
            self.sent.extend(self.charger.on_timer(t))
        else:  # pragma: no cover - a core that keeps asking for the same instant
            raise AssertionError(f"charger deadline stuck at {t}")
        tx = self.next_tx
        if tx is not None and tx <= t + EPS:
            self._tx_k += 1
            for frame in self.ev.frames(t):
                self.deliver(frame)
        self._after_instant()
        return t

    def deliver(self, frame: Frame) -> None:
        self.delivered.append(frame)
        self.sent.extend(self.charger.receive(frame, self.now))

    def request_stop(self, reason: str = "operator_stop") -> None:
        self.sent.extend(self.charger.request_stop(self.now, reason))
        self._after_instant()

    def _after_instant(self) -> None:
        self.events.extend(self.charger.drain_events())
        v = self.charger.snapshot().values
        self.samples.append(
            Sample(
                self.now,
                self.stage.value,
                int(v["evse_stage"]),
                float(v["present_current"]),
                float(v["present_voltage"]),
                str(v["cp_state"]),
                float(v["cp_duty"]),
                float(v["pp_ohm"]),
                str(v["status"]),
                bool(v["relays"]),
                bool(v["locked"]),
            )
        )

    # ---- views -------------------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        return self.charger.stage

    def decoded(self, message: str) -> list[tuple[float, dict[str, Value]]]:
        m = CODEC.message(message)
        return [(f.timestamp, m.decode(f.data)) for f in self.sent if f.arbitration_id == m.frame_id]

    def last(self, message: str) -> dict[str, Value]:
        frames = self.decoded(message)
        assert frames, f"no {message} sent"
        return frames[-1][1]

    def status_after(self, t: float) -> list[dict[str, Value]]:
        return [v for ts, v in self.decoded("EvseStatus") if ts >= t - TIME_TOL]

    def stage_changes(self) -> list[tuple[float, str]]:
        return [(e.time, e.stage) for e in self.events if isinstance(e, StageChanged)]

    def stage_time(self, stage: Stage) -> float:
        times = [t for t, s in self.stage_changes() if s == stage.value]
        assert times, f"charger never entered {stage.value}"
        return times[-1]

    def ended(self) -> SessionEnded:
        ends = [e for e in self.events if isinstance(e, SessionEnded)]
        assert len(ends) == 1, f"expected one SessionEnded, got {ends}"
        return ends[0]

    def answered(self, stage: Stage) -> bool:
        """The last EvseStatus shows ``stage`` with EVSEProcessing Finished."""
        frames = self.decoded("EvseStatus")
        if not frames:
            return False
        v = frames[-1][1]
        return v["EvseStage"] == NUMBER[stage] and v["EvseProcessing"] == 0


# ---- walking the sequence with the scripted vehicle --------------------------------------------------
ORDER = (
    Stage.PLUGGED_IN,
    Stage.CP_B_PWM,
    Stage.SESSION_SETUP,
    Stage.SERVICE_DISCOVERY,
    Stage.AUTHORIZATION,
    Stage.CHARGE_PARAMETER_DISCOVERY,
    Stage.CP_STATE_C,
    Stage.CABLE_CHECK,
    Stage.PRECHARGE,
    Stage.POWER_DELIVERY_START,
    Stage.CURRENT_DEMAND,
)


def _advance(bench: Bench, stage: Stage) -> None:
    """The scripted vehicle's move that takes the charger from the previous stage into ``stage``."""
    ev = bench.ev
    if stage is Stage.CP_B_PWM:
        bench.until_stage(stage, within=2 * CYCLE)
        return
    if stage is Stage.SESSION_SETUP:
        ev.request(Request.SESSION_SETUP)
    elif stage is Stage.SERVICE_DISCOVERY:
        bench.run_until(lambda: bench.answered(Stage.SESSION_SETUP), within=1.0)
        ev.request(Request.SERVICE_DISCOVERY)
    elif stage is Stage.AUTHORIZATION:
        bench.run_until(lambda: bench.answered(Stage.SERVICE_DISCOVERY), within=1.0)
        ev.request(Request.CONTRACT_AUTHENTICATION)
    elif stage is Stage.CHARGE_PARAMETER_DISCOVERY:
        bench.run_until(
            lambda: bench.answered(Stage.AUTHORIZATION), within=bench.config.authorization_delay + 1
        )
        ev.set(EvReady=1)
        ev.request(Request.CHARGE_PARAMETER_DISCOVERY)
    elif stage is Stage.CP_STATE_C:
        bench.run_until(lambda: bench.answered(Stage.CHARGE_PARAMETER_DISCOVERY), within=1.0)
        bench.s2(True)
        ev.request(Request.CABLE_CHECK)
    elif stage is Stage.CABLE_CHECK:
        pass  # the lock completes, then the pending CableCheckReq is answered
    elif stage is Stage.PRECHARGE:
        bench.run_until(lambda: bench.answered(Stage.CABLE_CHECK), within=timing.limit("cable_check"))
        ev.set(EvTargetVoltage=BATTERY_V, EvTargetCurrent=timing.PRECHARGE_CURRENT_A)
        ev.request(Request.PRECHARGE)
    elif stage is Stage.POWER_DELIVERY_START:
        bench.run_until(lambda: bench.answered(Stage.PRECHARGE), within=timing.limit("precharge"))
        bench.contactors(True)
        ev.request(Request.POWER_DELIVERY_START)
    elif stage is Stage.CURRENT_DEMAND:
        bench.run_until(lambda: bench.answered(Stage.POWER_DELIVERY_START), within=1.0)
        ev.set(EvTargetVoltage=409.0, EvTargetCurrent=0.0)
        ev.request(Request.CURRENT_DEMAND)
    bench.until_stage(stage, within=5.0)


def walk_to(stage: Stage, config: CcsChargerConfig | None = None, ev: ScriptedEv | None = None) -> Bench:
    """A bench whose charger has just entered ``stage`` (one of :data:`ORDER`)."""
    bench = Bench(config, ev)
    bench.start(0.0)
    for s in ORDER[1 : ORDER.index(stage) + 1]:
        _advance(bench, s)
    return bench


def charging(amps: float = 100.0, settle: float = 6.0, **kw: Any) -> Bench:
    """In the current demand loop with ``amps`` asked, ``settle`` seconds later."""
    bench = walk_to(Stage.CURRENT_DEMAND, **kw)
    bench.ev.set(EvTargetCurrent=amps)
    bench.step_to(bench.now + settle)
    return bench


def vehicle_ends(bench: Bench) -> SessionEnded:
    """The scripted vehicle's normal end: PowerDelivery(stop), C -> B, contactors open at < 1 A,
    WeldingDetection until the inlet is below 60 V, SessionStop."""
    ev = bench.ev
    ev.set(EvTargetCurrent=0.0, EvChargingComplete=1)
    if bench.stage is not Stage.POWER_DELIVERY_STOP:
        ev.request(Request.POWER_DELIVERY_STOP)
        bench.until_stage(Stage.POWER_DELIVERY_STOP, within=1.0)
    bench.run_until(lambda: bench.charger.power.current <= timing.CURRENT_OFF_A, within=2.0)
    bench.s2(False)
    bench.contactors(False)
    ev.request(Request.WELDING_DETECTION)
    bench.until_stage(Stage.WELDING_DETECTION, within=1.0)
    bench.run_until(lambda: bench.charger.harness.output_voltage < timing.SAFE_V, within=5.0)
    ev.request(Request.SESSION_STOP)
    bench.until_stage(Stage.SESSION_STOP, within=1.0)
    return bench.finish()
