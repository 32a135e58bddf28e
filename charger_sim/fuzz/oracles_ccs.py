"""CCS (DIN SPEC 70121 bridge profile) safety invariants, checked on every step (§ = CCS fact sheet).

* The output current never rises above min(EvTargetCurrent, EvMaxCurrent, charger maximum) (one
  100 ms cycle to react, 0.1 A = one bit of the current fields), and above it only falls, at the
  charger's ramp at least.  A target or maximum sent as SNA keeps the last value in force (§9: SNA is
  "no value", never a number); so does an EvTargets frame without a target voltage (§4).
* No current (> 1 A) unless the cable check passed, the vehicle asked for PowerDelivery(ReadyToCharge
  = true) and has not withdrawn EVReady, the output relays are closed and the charger is in the
  current demand loop (or ramping down within the stop limit).
* A clearly valid EvStatus with an EVErrorCode, EVReady = false (DC stages) or a stop request (power
  stages), an operator stop and a power fault put the charger on the stop path at once; CP in A / E /
  F / between the windows, no diode, an invalid PP, CP C -> B and an insulation fault (while the output
  is live) within one cycle; a vehicle frame missing 1 s, an alive counter stuck 1 s and every stage
  past its limit (timing.py) too.  On the stop path (and paused) the current is <= 1 A within 300 ms.
* After the vehicle falls silent (66 s: the sequence timeout, then the unlock): done, no current,
  relays open, no PWM.

The oracle reads frames and lines as the charger does (same IDs, DBC, pilot and PP readers) and keeps
its own view; only the charger's stage and its cable-check voltage are read from it.  A frame only
obliges the charger when it is clearly valid, so stricter chargers never fail these checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import DecodeError
from ..protocols.ccs import timing as CT
from ..protocols.ccs.bridge import VEHICLE_FRAMES, AliveCheck, number
from ..protocols.ccs.electrical import (
    CP_PIN_LINE,
    NO_PWM,
    PP_PIN_LINE,
    Connector,
    CpState,
    measure_pp,
    pp_decode,
    pp_ok,
    read_pilot,
)
from ..protocols.ccs.states import ACTIVE, BEFORE_POWER, ENDING, POWER
from ..protocols.ccs.states import Stage as CS
from .oracles import EPS, CurrentLimit, Oracle
from .script import Step

if TYPE_CHECKING:
    from .target import Target

TOLERANCE_A = 0.1  # one bit of the 0.1 A current fields
STOP_PATH = frozenset({*ENDING, CS.SESSION_STOP, CS.UNLOCK, CS.DONE, CS.ERROR, CS.EMERGENCY_STOP})
SUPERVISED = frozenset({*ACTIVE, *ENDING, CS.ERROR})
_DC = frozenset({CS.CABLE_CHECK, CS.PRECHARGE, *POWER})
_EV_CHECKED = frozenset({*BEFORE_POWER, *POWER})  # where the charger acts on DC_EVStatus
_B_STOPS = frozenset({CS.CP_STATE_C, CS.CABLE_CHECK, CS.PRECHARGE, CS.POWER_DELIVERY_START})
_IMD = frozenset({CS.PRECHARGE, CS.POWER_DELIVERY_START, CS.CURRENT_DEMAND})
_FLAGS = ("EvReady", "EvChargingComplete", "EvBulkChargingComplete", "EvStopRequest")
_BAD_CP = frozenset({CpState.E, CpState.F, CpState.INVALID})
# Harness lines the pilot and plug readings depend on (electrical.py).
_PILOT_LINES = (
    "cp_mode",
    "cp_duty",
    "cp_ev_ohm",
    "cp_ev_diode",
    "cp_short",
    CP_PIN_LINE,
    PP_PIN_LINE,
    "pp_contact_ohm",
)


class CcsOracle(Oracle):
    """CCS bridge: target/maximum ceiling, permission, pilot, plug, IMD, stop paths, timeouts."""

    name = "ccs"
    # The longest the charger may wait on a silent vehicle: V2G_SECC_Sequence_Timeout (60 s, in error
    # and the message stages), then the unlock (5 s) (§6, §8).
    silence = CT.limit("sequence") + CT.limit("unlock_wait") + 1.0

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        cfg = target.config
        self.cfg = cfg
        self.connector = Connector(cfg.connector)
        self.timers = CT.seconds(cfg.revision)
        self.cycle = self.timers["cycle"]
        self.stop_limit = self.timers["stop_current"]
        self.msg = {name: target.codec.message(name) for name in VEHICLE_FRAMES}
        self.by_id = {m.frame_id: m for m in self.msg.values()}
        self.charger_max = float(cfg.max_current)
        self.limit = CurrentLimit(self.cycle, float(cfg.current_slew_a_per_s), TOLERANCE_A)
        self.target_i = 0.0
        self.ev_max: float | None = None
        self.stage: Any = getattr(self.core, "stage", CS.IDLE)
        self.entered = 0.0
        self.started: float | None = None
        self.cable_checked = False
        self.ready = True  # EVReady not withdrawn (False only after a valid FALSE)
        self.ready_lost: float | None = None
        self.obligations: list[tuple[float, str]] = []
        self.last_rx: dict[str, float] = {}
        self.alive = AliveCheck()
        self.alive_armed = False
        self.advanced_at = 0.0
        self.status_after: float | None = None  # first EvStatus after the last advance
        self.conditions: dict[str, float] = {}  # pilot / plug / IMD condition -> since
        self._found: dict[tuple[Any, ...], tuple[str, ...]] = {}  # readings are pure: cached
        self.stop_from: float | None = None

    # ---- inputs ----------------------------------------------------------------------------------
    def before(self, step: Step, now: float) -> None:
        core: Any = self.core
        stage = core.stage
        if step.kind == "operator":
            if stage in ACTIVE:
                self.obligations.append((now, f"operator {step.name}"))
            return
        if step.kind != "frame" or step.extended or core.finished or stage in (CS.IDLE, CS.DONE):
            return
        m = self.by_id.get(step.frame_id)
        if m is None:
            return
        try:
            values = m.decode(step.data)
        except DecodeError:
            return
        if stage in SUPERVISED:
            self.last_rx[m.name] = now
        if m.name == "EvTargets":
            # §4: a CurrentDemandReq carries both targets; without one (SNA) the frame is no request
            target = number(m, values, "EvTargetCurrent")
            if target is not None and number(m, values, "EvTargetVoltage") is not None:
                self.target_i = target
        elif m.name == "EvMaxLimits":
            ev_max = number(m, values, "EvMaxCurrent")
            if ev_max is not None:
                self.ev_max = ev_max
        elif m.name == "EvStatus":
            self._on_status(values, stage, now)

    def _on_status(self, values: dict[str, Any], stage: Any, now: float) -> None:
        advanced = self.alive.update(int(values["EvAliveCounter"]))
        if stage in SUPERVISED and (advanced or not self.alive_armed):
            self.alive_armed, self.advanced_at, self.status_after = True, now, None
        elif self.status_after is None:
            self.status_after = now
        valid = (
            int(values["EvRequest"]) != 255
            and all(int(values[f]) in (0, 1) for f in _FLAGS)
            and int(values["EvErrorCode"]) != 15
            and int(values["EvSoc"]) <= 100
        )
        if not valid:
            return
        if int(values["EvReady"]) == 1:
            self.ready, self.ready_lost = True, None
        elif stage in _DC:
            if self.ready:
                self.ready_lost = now
            self.ready = False
        if stage not in _EV_CHECKED:
            return
        code = int(values["EvErrorCode"])
        if code:
            self.obligations.append((now, f"EVErrorCode {code}"))
        elif stage in _DC and int(values["EvReady"]) == 0:
            self.obligations.append((now, "EVReady false"))
        elif stage in POWER and int(values["EvStopRequest"]) == 1:
            self.obligations.append((now, "EV stop request"))

    # ---- after every step and timer call ---------------------------------------------------------------
    def check(self, now: float) -> None:
        t = self.t
        core: Any = self.core
        stage = core.stage
        if stage is not self.stage:
            self._entered(self.stage, stage, now)
        current = t.output_current()
        relays = t.harness.is_on("relays")
        # -- the ceiling: EV target, EV maximum, charger maximum -------------------------------------
        ceiling = min(self.target_i, self.charger_max)
        if self.ev_max is not None:
            ceiling = min(ceiling, self.ev_max)
        self.limit.set(ceiling, now)
        broken = self.limit.check(current, now)
        if broken:
            what = "rose above" if broken == "rose" else "stayed above"
            t.violate(
                "above_request",
                f"output {what} {current:.1f} A: target {self.target_i:g} A, EV max {self.ev_max} A, "
                f"charger {self.charger_max:g} A",
            )
        if current > self.charger_max + TOLERANCE_A:
            t.violate("above_charger_max", f"output {current:.1f} A > charger maximum {self.charger_max:g} A")
        # -- no current without cable check, PowerDelivery, EVReady, relays ---------------------------
        if current > CT.CURRENT_OFF_A:
            if not self.cable_checked:
                t.violate("current_without_insulation_test", f"{current:.1f} A, cable check not passed")
            if not relays:
                t.violate("current_with_relays_open", f"{current:.1f} A with the output relays open")
            lost = self.ready_lost
            if not self.ready and (lost is None or now > lost + self.stop_limit + self.cycle + EPS):
                t.violate("current_without_ready", f"{current:.1f} A with EVReady false")
            if stage is not CS.CURRENT_DEMAND and stage not in STOP_PATH and stage is not CS.PAUSED:
                t.violate("current_outside_charging", f"{current:.1f} A in {stage.value}")
        since = self.stop_from
        stopping = since is not None and (stage in STOP_PATH or stage is CS.PAUSED)
        if (
            stopping
            and since is not None
            and current > CT.CURRENT_OFF_A
            and now > since + self.stop_limit + EPS
        ):
            t.violate("stop_current_slow", f"{current:.1f} A {now - since:.3f} s into the stop")
            self.stop_from = None
        # -- conditions the charger samples every cycle -------------------------------------------------
        self._conditions(stage, now)
        # -- every stop obligation met in time ----------------------------------------------------------
        if self.obligations:
            if stage in STOP_PATH:
                self.obligations.clear()
            else:
                due, why = min(self.obligations)
                if now > due + EPS:
                    t.violate("no_stop", f"{why} at {due:.3f} s, still {stage.value}")
                    self.obligations.clear()
        if stage in SUPERVISED and stage not in STOP_PATH:
            self._timeouts(stage, now)
        limit = self._dwell(stage)
        if limit is not None and now > self.entered + limit + EPS:
            t.violate("stage_timeout_missed", f"{stage.value} for {now - self.entered:.3f} s > {limit:g} s")
            self.entered = now
        start = self.started
        before = stage in (CS.PLUGGED_IN, CS.CP_B_PWM, *BEFORE_POWER)
        if start is not None and before and now > start + self.timers["ready_to_charge"] + EPS:
            t.violate("stage_timeout_missed", f"not ready to charge {now - start:.3f} s after start")
            self.started = None

    def _conditions(self, stage: Any, now: float) -> None:
        """Pilot, plug and IMD: a condition lasting a whole cycle must have been seen and acted on."""
        h = self.t.harness
        lines = h.lines
        key = (
            stage,
            h.connected,
            h.insulation_resistance_ohm,
            getattr(self.core, "test_voltage", 0.0),
            *(lines.get(name) for name in _PILOT_LINES),
            *sorted(h.overrides.items()),
        )
        found = self._found.get(key)
        if found is None:
            found = self._find(stage)
            if len(self._found) > 256:
                self._found.clear()
            self._found[key] = found
        for name in [n for n in self.conditions if n not in found]:
            del self.conditions[name]
        for name in found:
            since = self.conditions.setdefault(name, now)
            if now > since + self.cycle + EPS:
                self.t.violate("no_stop", f"{name} since {since:.3f} s, still {stage.value}")
                self.conditions[name] = now

    def _find(self, stage: Any) -> tuple[str, ...]:
        found: list[str] = []
        if stage in SUPERVISED and stage not in STOP_PATH:
            h, cfg = self.t.harness, self.cfg
            pilot = read_pilot(h)
            if (pilot.state is CpState.A and stage is not CS.PLUGGED_IN) or pilot.state in _BAD_CP:
                found.append(f"CP {pilot.state.name}")
            if pilot.diode_ok is False:
                found.append("CP diode missing")
            if pilot.state is CpState.B and (stage in _B_STOPS or stage is CS.CURRENT_DEMAND):
                found.append("CP C -> B")
            if stage in ACTIVE and not pp_ok(pp_decode(measure_pp(h, cfg.plug_ohm), self.connector)):
                found.append("PP invalid")
            if stage in _IMD:
                volts = float(getattr(self.core, "test_voltage", 0.0) or cfg.max_voltage)
                if h.insulation_resistance_ohm < cfg.insulation_threshold_ohm_per_v * volts:
                    found.append("insulation fault")
        return tuple(found)

    def _timeouts(self, stage: Any, now: float) -> None:
        t = self.t
        rx = self.timers["rx_timeout"]
        for name, last in self.last_rx.items():
            if now > last + rx + EPS:
                t.violate("can_timeout_missed", f"no {name} since {last:.3f} s, still {stage.value}")
                self.last_rx[name] = now
        alive = self.timers["alive_timeout"]
        after = self.status_after
        stuck = self.alive_armed and after is not None and after <= self.advanced_at + alive + EPS
        if stuck and now > self.advanced_at + alive + EPS:
            t.violate("alive_counter_missed", f"EvAliveCounter stuck since {self.advanced_at:.3f} s")
            self.status_after = None

    def _dwell(self, stage: Any) -> float | None:
        """Longest ``stage`` may last before the charger must have moved on (timing.py)."""
        t = self.timers
        if stage is CS.PLUGGED_IN:
            return t["cp_detection"]
        if stage is CS.CP_B_PWM:
            return t["communication_setup"]
        if stage is CS.AUTHORIZATION:
            return max(t["ongoing"], float(self.cfg.authorization_delay) + t["sequence"])
        if stage is CS.CABLE_CHECK:
            return t["cable_check"]
        if stage is CS.PRECHARGE:
            return t["precharge"]
        if stage is CS.UNLOCK:
            return t["unlock_wait"]
        if stage is CS.SESSION_STOP:
            return 2 * self.cycle
        if stage is CS.EMERGENCY_STOP:
            return self.stop_limit + 2 * self.cycle
        if stage is CS.CURRENT_DEMAND or stage is CS.DONE or stage is CS.IDLE:
            return None
        return t["sequence"]  # message stages, the pause, the ending stages, error

    def _entered(self, old: Any, stage: Any, now: float) -> None:
        if old is CS.DONE:
            self.t.violate("left_done", f"left done for {stage.value}")
        if old is CS.IDLE:
            self.started = now
        if old is CS.CABLE_CHECK and stage is CS.PRECHARGE:
            self.cable_checked = True
        if stage is CS.CURRENT_DEMAND:
            self.stop_from = None
        elif (stage in STOP_PATH or stage is CS.PAUSED) and old in POWER and self.stop_from is None:
            self.stop_from = now  # the current must come down from here
        self.stage, self.entered = stage, now

    def final(self, now: float) -> None:
        core: Any = self.core
        h = self.t.harness
        pwm = h.line("cp_duty", NO_PWM) < NO_PWM
        if self.t.output_current() > EPS or h.is_on("relays") or pwm:
            self.t.violate("not_safe_at_end", f"{core.stage.value}: current, relays or PWM on after silence")
        if core.stage is not CS.DONE or not core.finished:
            self.t.violate("not_terminal", f"{core.stage.value} after {self.silence:g} s of silence")
