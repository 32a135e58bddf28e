"""Simulated CCS vehicle (sans-I/O): EVCC + BMS on the shared battery model, speaking the charger-sim
CCS-over-CAN bridge profile.

It drives the DIN SPEC 70121 DC sequence with ``EvRequest`` and moves on when the charger answers
(``EvseStage`` equal to the request, ``EVSEProcessing`` Finished, an OK ``ResponseCode``).  On the
pilot it loads CP with R2 (state B) and closes S2 for state C after ChargeParameterDiscovery; it
opens S2 again after PowerDelivery(stop).  Everything it reports comes from the pack model and the
charger's output on the DC link.  Field behaviours and faults are options of
:class:`CcsVehicleConfig`.  § numbers refer to the CCS fact sheet.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass

from ...bms.battery import Battery
from ...bms.monitor import PackMonitor
from ...codec import Codec, Value, load_dbc
from ...errors import DecodeError, Origin
from ...frames import Frame
from ...plant.harness import Harness
from ..base import Core, Cyclic, Deadlines, Outcome, Role, SessionEnded, Snapshot, StageChanged
from ..machine import StageMachine, Transition
from . import timing as T
from .bridge import (
    APP_PROTOCOL_LINE,
    CHARGER_FRAMES,
    VEHICLE_FRAMES,
    AliveCheck,
    Bool2,
    ContactorState,
    EvErrorCode,
    EvseStatusCode,
    IsolationStatus,
    Notification,
    Processing,
    Request,
    app_protocols,
    failed,
    next_alive,
    number,
    or_sna,
)
from .electrical import DIGITAL_BAND, ev_load_ohm, read_pilot
from .states import NUMBER, Stage

log = logging.getLogger(__name__)


class VStage(str, enum.Enum):
    PLUGGED = "plugged"
    LINK_SETUP = "link_setup"
    SESSION_SETUP = "session_setup"
    SERVICE_DISCOVERY = "service_discovery"
    AUTHORIZATION = "authorization"
    CHARGE_PARAMETER_DISCOVERY = "charge_parameter_discovery"
    CABLE_CHECK = "cable_check"
    PRECHARGE = "precharge"
    POWER_DELIVERY_START = "power_delivery_start"
    CURRENT_DEMAND = "current_demand"
    PAUSED = "paused"
    POWER_DELIVERY_STOP = "power_delivery_stop"
    WELDING_DETECTION = "welding_detection"
    SESSION_STOP = "session_stop"
    DONE = "done"
    HUNG = "hung"


REQUEST: dict[VStage, Request] = {
    VStage.PLUGGED: Request.NONE,
    VStage.LINK_SETUP: Request.NONE,
    VStage.SESSION_SETUP: Request.SESSION_SETUP,
    VStage.SERVICE_DISCOVERY: Request.SERVICE_DISCOVERY,
    VStage.AUTHORIZATION: Request.CONTRACT_AUTHENTICATION,
    VStage.CHARGE_PARAMETER_DISCOVERY: Request.CHARGE_PARAMETER_DISCOVERY,
    VStage.CABLE_CHECK: Request.CABLE_CHECK,
    VStage.PRECHARGE: Request.PRECHARGE,
    VStage.POWER_DELIVERY_START: Request.POWER_DELIVERY_START,
    VStage.CURRENT_DEMAND: Request.CURRENT_DEMAND,
    VStage.PAUSED: Request.CURRENT_DEMAND,
    VStage.POWER_DELIVERY_STOP: Request.POWER_DELIVERY_STOP,
    VStage.WELDING_DETECTION: Request.WELDING_DETECTION,
    VStage.SESSION_STOP: Request.SESSION_STOP,
    VStage.DONE: Request.SESSION_STOP,
    VStage.HUNG: Request.SNA,
}

V_STEP: dict[VStage, int] = {
    VStage.PLUGGED: 1,
    VStage.LINK_SETUP: 1,
    VStage.SESSION_SETUP: 3,
    VStage.SERVICE_DISCOVERY: 4,
    VStage.AUTHORIZATION: 4,
    VStage.CHARGE_PARAMETER_DISCOVERY: 4,
    VStage.CABLE_CHECK: 2,
    VStage.PRECHARGE: 5,
    VStage.POWER_DELIVERY_START: 6,
    VStage.CURRENT_DEMAND: 7,
    VStage.PAUSED: 7,
    VStage.POWER_DELIVERY_STOP: 7,
    VStage.WELDING_DETECTION: 7,
    VStage.SESSION_STOP: 7,
    VStage.DONE: 7,
    VStage.HUNG: 7,
}


VTransition = Transition  # the vehicle table uses the same row type


_SESSION = (
    VStage.SESSION_SETUP,
    VStage.SERVICE_DISCOVERY,
    VStage.AUTHORIZATION,
    VStage.CHARGE_PARAMETER_DISCOVERY,
    VStage.CABLE_CHECK,
    VStage.PRECHARGE,
)
_POWER = (VStage.POWER_DELIVERY_START, VStage.CURRENT_DEMAND, VStage.PAUSED)
_LIVE = (VStage.PLUGGED, VStage.LINK_SETUP, *_SESSION, *_POWER, VStage.POWER_DELIVERY_STOP)
_ALL_BUT_DONE = (*_LIVE, VStage.WELDING_DETECTION, VStage.SESSION_STOP)

V_TRANSITIONS: tuple[VTransition[VStage], ...] = (
    VTransition("pwm_seen", (VStage.PLUGGED,), VStage.LINK_SETUP, "§2: 5 % PWM: SLAC, SDP, TCP"),
    VTransition("link_up", (VStage.LINK_SETUP,), VStage.SESSION_SETUP, "§4 #1-2"),
    VTransition("service_discovery", (VStage.SESSION_SETUP,), VStage.SERVICE_DISCOVERY, "§4 #3-4"),
    VTransition("authorization", (VStage.SERVICE_DISCOVERY,), VStage.AUTHORIZATION, "§4 #5"),
    VTransition("charge_parameters", (VStage.AUTHORIZATION,), VStage.CHARGE_PARAMETER_DISCOVERY, "§4 #6"),
    VTransition(
        "cable_check", (VStage.CHARGE_PARAMETER_DISCOVERY,), VStage.CABLE_CHECK, "§2: S2 closed, §4 #7"
    ),
    VTransition("precharge", (VStage.CABLE_CHECK,), VStage.PRECHARGE, "§4 #8"),
    VTransition(
        "power_delivery", (VStage.PRECHARGE,), VStage.POWER_DELIVERY_START, "§7: contactors closed, §4 #9"
    ),
    VTransition("current_demand", (VStage.POWER_DELIVERY_START,), VStage.CURRENT_DEMAND, "§4 #10"),
    VTransition("pause", (VStage.CURRENT_DEMAND,), VStage.PAUSED, "§2: S2 opened (C -> B)"),
    VTransition("resume", (VStage.PAUSED,), VStage.CURRENT_DEMAND, "§2: S2 closed again (B -> C)"),
    VTransition("power_delivery_stop", _POWER, VStage.POWER_DELIVERY_STOP, "§4 #11"),
    VTransition(
        "welding_detection", (VStage.POWER_DELIVERY_STOP,), VStage.WELDING_DETECTION, "§7: contactors open"
    ),
    VTransition(
        "session_stop",
        (*_SESSION, VStage.POWER_DELIVERY_STOP, VStage.WELDING_DETECTION),
        VStage.SESSION_STOP,
        "§4 #13",
    ),
    VTransition("done", _ALL_BUT_DONE, VStage.DONE, "charger done or silent"),
    VTransition("hang", _LIVE, VStage.HUNG, "fault: controller hung, frames frozen"),
)

_PROTECTION_ERRORS = {
    "over_temperature": EvErrorCode.FAILED_RESS_TEMPERATURE_INHIBIT,
    "cell_over_voltage": EvErrorCode.FAILED_CHARGING_VOLTAGE_OUT_OF_RANGE,
    "cell_under_voltage": EvErrorCode.FAILED_EV_RESS_MALFUNCTION,
}
_CHARGER_STOPPING = (EvseStatusCode.SHUTDOWN, EvseStatusCode.MALFUNCTION, EvseStatusCode.EMERGENCY_SHUTDOWN)


@dataclass(frozen=True, slots=True)
class CcsVehicleConfig:
    revision: str = T.DEFAULT_REVISION  # timing table column for the vehicle's own timers
    target_soc: float = 80.0
    bulk_soc: float = 80.0
    max_voltage: float | None = None  # EVMaximumVoltageLimit; default: pack maximum + 10 V
    max_current: float | None = None  # EVMaximumCurrentLimit; default: the pack's limit
    max_power_kw: float | None = None  # EVMaximumPowerLimit; None = not sent (SNA)
    link_delay: float = 2.5  # s from 5 % PWM to SessionSetupReq (SLAC, SDP, TCP, appHandshake)
    link_fails: bool = False  # never brings the link up (SLAC fails)
    cp_c_delay: float = 0.2  # s from ChargeParameterDiscoveryRes to S2 closed (ISO: <= 250 ms)
    switches_to_c: bool = True  # False: asks for the cable check with CP still in B
    ventilation: bool = False  # True: state D instead of C
    diode_ok: bool = True  # False: the EV's CP diode is missing / shorted
    precharge_current: float = T.PRECHARGE_CURRENT_A
    inlet_voltage_offset_v: float = 0.0  # error of the EV's inlet voltage sensor
    insulation_resistance_ohm: float = 5.0e6  # vehicle + cable, seen by the isolation test
    pp_contact_ohm: float = 0.0  # extra resistance of a worn / corroded PP contact in the inlet
    stop_reaction: float = 0.2  # s to react to the charger's StopCharging / shutdown
    cp_b_at_soc: float | None = None  # open S2 (C -> B) in the current demand loop at this SOC
    resume_after_s: float | None = None  # after a C -> B pause: close S2 again after this (None: end)
    error_code_at_soc: float | None = None  # raise error_code at this SOC in the current demand loop
    error_code: int = int(EvErrorCode.FAILED_EV_RESS_MALFUNCTION)
    hang_at_soc: float | None = None  # the controller hangs at this SOC: frames frozen, no reactions
    frame_period: float = T.limit("cycle")
    # supportedAppProtocol offer, in the EV's priority order: din70121 | iso15118_2 | iso15118_20,
    # several joined with '+' (fault catalogue firmware_mismatch)
    app_protocols: str = "din70121"

    def __post_init__(self) -> None:
        if self.revision not in T.REVISIONS:
            raise ValueError(f"revision must be one of: {', '.join(T.REVISIONS)}")
        if not 0 < self.target_soc <= 100 or not 0 < self.bulk_soc <= 100:
            raise ValueError("target_soc and bulk_soc must be in (0, 100] %")
        if not 1 <= self.error_code <= 11:
            raise ValueError("error_code must be a DIN DC_EVErrorCode 1..11 (0 is NO_ERROR)")
        if self.frame_period <= 0 or self.link_delay < 0 or self.cp_c_delay < 0 or self.stop_reaction < 0:
            raise ValueError("frame_period must be positive; delays must not be negative")
        if self.pp_contact_ohm < 0 or self.insulation_resistance_ohm < 0:
            raise ValueError("resistances must not be negative")
        if self.resume_after_s is not None and self.resume_after_s < 0:
            raise ValueError("resume_after_s must not be negative")
        app_protocols(self.app_protocols)


class CcsVehicle(Core):
    """The vehicle side: EVCC sequence, pilot loads, contactors, battery on the DC link."""

    role = Role.VEHICLE

    def __init__(
        self, config: CcsVehicleConfig, battery: Battery, harness: Harness, codec: Codec | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.battery = battery
        self.harness = harness
        self.codec = codec or load_dbc("ccs")
        self.t = T.seconds(config.revision)
        self._tx = {name: self.codec.message(name) for name in VEHICLE_FRAMES}
        self._rx = {self.codec.message(n).frame_id: self.codec.message(n) for n in CHARGER_FRAMES}
        self._msg = {m.name: m for m in self._rx.values()}
        self.sm = StageMachine(VStage, V_TRANSITIONS, VStage.PLUGGED)
        self.stage: VStage = VStage.PLUGGED
        self.deadlines = Deadlines()
        self.cyclic: Cyclic | None = None
        self.charger: dict[str, dict[str, Value]] = {}
        self.pack = PackMonitor(battery)
        self.max_voltage = float(config.max_voltage or math.ceil(battery.spec.max_voltage + 10.0))
        self.s2 = False
        self.ready = False
        self.welded = False  # the welding check found the contactors welded (EvContactorState Error)
        self.charging_complete = False
        self.stop_request = False
        self.error = EvErrorCode.NO_ERROR
        self.target_voltage: float | None = None
        self.target_current: float | None = None
        self.counter = 0
        self.alive = AliveCheck()
        self.stop_cause = ""
        self.frames_sent = 0
        self.frames_received = 0
        self._matched_since: float | None = None
        self._frozen: list[Frame] = []
        self._ending = False
        self._paused_once = False
        maxima = self._tx["EvMaxLimits"]
        self._max_limits = maxima.encode(  # constant: encoded (and range-checked) once
            {
                "EvMaxVoltage": self.max_voltage,
                "EvMaxCurrent": self._max_current(),
                "EvMaxPower": or_sna(maxima, "EvMaxPower", config.max_power_kw),
            }
        )
        harness.insulation_resistance_ohm = config.insulation_resistance_ohm

    # ---- helpers ---------------------------------------------------------------------------
    def _go(self, trigger: str, now: float, detail: str = "") -> None:
        stage: VStage = self.sm.fire(trigger)
        self.stage = stage
        log.debug("%.3f vehicle %s -> %s", now, trigger, stage.value)
        self.emit(StageChanged(now, Role.VEHICLE, stage.value, V_STEP[stage], detail))

    def _c(self, message: str, signal: str) -> float | None:
        return number(self._msg[message], self.charger.get(message), signal)

    def _status(self, signal: str) -> int | None:
        values = self.charger.get("EvseStatus")
        return None if values is None else int(values[signal])

    def _answered(self, request: Request, *also: Stage) -> bool:
        """The charger answered ``request``: its stage shows it (or a later one), Finished, not FAILED."""
        stage = self._status("EvseStage")
        ok = stage == int(request) or stage in {NUMBER[s] for s in also}
        return (
            ok
            and self._status("EvseProcessing") == Processing.FINISHED
            and not failed(self._status("EvseResponseCode"))
        )

    def _set_s2(self, closed: bool) -> None:
        self.s2 = closed
        self.harness.set("cp_ev_ohm", ev_load_ohm(closed, ventilation=self.config.ventilation))

    def _current(self) -> float:
        return self.harness.output_current if self.harness.contactors_closed else 0.0

    def _inlet_voltage(self) -> float:
        return self.harness.output_voltage + self.config.inlet_voltage_offset_v

    # ---- inputs ----------------------------------------------------------------------------
    def start(self, now: float) -> list[Frame]:
        """Plugged in: R2 on CP (state B), the diode, the PP contact; bridge frames start."""
        h = self.harness
        h.set("cp_ev_diode", 1.0 if self.config.diode_ok else 0.0)
        h.set("pp_contact_ohm", self.config.pp_contact_ohm)
        self._set_s2(False)
        h.battery_voltage = self.battery.terminal_voltage(0.0)
        self.cyclic = Cyclic(self.config.frame_period, now)
        return []

    def receive(self, frame: Frame, now: float) -> list[Frame]:
        if frame.is_extended_id or self.stage in (VStage.DONE, VStage.HUNG):
            return []
        codec = self._rx.get(frame.arbitration_id)
        if codec is None:
            return []
        try:
            values = codec.decode(frame.data)
        except DecodeError:
            return []
        self.frames_received += 1
        self.charger[codec.name] = values
        if codec.name == "EvseStatus":
            self.deadlines.set("charger_silent", now + self.t["vehicle_rx_timeout"])
            if self.alive.update(int(values["EvseAliveCounter"])):
                self.deadlines.set("charger_frozen", now + self.t["alive_timeout"])
        elif codec.name == "EvsePresentValues" and self.stage is VStage.CURRENT_DEMAND:
            self.deadlines.set("present_values", now + self.t["current_demand_response"] + 1e-6)
        return []

    def on_timer(self, now: float) -> list[Frame]:
        for name in self.deadlines.due(now):
            self._on_deadline(name, now)
        if self.cyclic is None or now + 1e-9 < self.cyclic.next_at:
            return []
        if self.stage is not VStage.HUNG:
            self._tick(now)
        if self.stage is VStage.HUNG:  # the mailbox keeps repeating the last frames
            out = [Frame(f.arbitration_id, f.data, f.is_extended_id, now) for f in self._frozen]
        else:
            out = self._frames(now) if self.stage is not VStage.DONE else []
        if self.stage is VStage.DONE:
            self.cyclic = None
            self.finished = True
        else:
            self.cyclic.advance(now)
            self.frames_sent += len(out)
        return out

    def next_deadline(self) -> float | None:
        nxt = self.deadlines.next()
        if self.cyclic is not None:
            nxt = self.cyclic.next_at if nxt is None else min(nxt, self.cyclic.next_at)
        return nxt

    def request_stop(self, now: float, reason: str = "operator_stop") -> list[Frame]:
        """The driver (or Ctrl-C in the ``bms`` role) ends the session: PowerDelivery(stop) if the
        battery is on the link, else SessionStop (not once the session is already ending)."""
        if self.stage in (*_POWER, *_SESSION, VStage.PLUGGED, VStage.LINK_SETUP):
            self._end(now, "interrupted (Ctrl-C)" if reason == "interrupted" else reason.replace("_", " "))
        return []

    # ---- behaviour ---------------------------------------------------------------------------
    def _on_deadline(self, name: str, now: float) -> None:
        stage = self.stage
        if stage in (VStage.DONE, VStage.HUNG):
            return
        if name in ("charger_silent", "charger_frozen"):
            self.stop_cause = self.stop_cause or f"charger {name.split('_')[1]}"
            self._abandon(now)
        elif name == "link" and stage is VStage.LINK_SETUP:
            offer = app_protocols(self.config.app_protocols)
            self.harness.set(APP_PROTOCOL_LINE, int(offer))  # supportedAppProtocolReq, on the PLC link
            self._go("link_up", now, f"SLAC, SDP, TCP; supportedAppProtocol: {self.config.app_protocols}")
        elif name == "s2" and stage is VStage.CHARGE_PARAMETER_DISCOVERY:
            if self.config.switches_to_c:
                self._set_s2(True)
            self._go("cable_check", now, "S2 closed (state C)" if self.s2 else "CP left in B")
            self.deadlines.set("cable_check", now + self.t["vehicle_cable_check"])
        elif name == "cable_check" and stage is VStage.CABLE_CHECK:
            self._end(now, "cable check not finished in time")
        elif name == "precharge" and stage is VStage.PRECHARGE:
            self._end(now, "pre-charge not matched in time")
        elif name == "present_values" and stage is VStage.CURRENT_DEMAND:
            self.ready = False  # §8: an EV-side error (response timeout), not the end of charging
            self._end(now, "CurrentDemandRes (EvsePresentValues) late")
        elif name == "cp_b" and stage is VStage.POWER_DELIVERY_STOP:
            self._set_s2(False)
        elif name == "resume" and stage is VStage.PAUSED:
            self._set_s2(True)
            self._go("resume", now, "S2 closed again (B -> C)")
        elif name == "pause_end" and stage is VStage.PAUSED:
            self._end(now, "paused: ending the session")
        elif name == "welding" and stage is VStage.WELDING_DETECTION:
            inlet = self._inlet_voltage()
            if inlet >= T.SAFE_V:  # §7: the inlet stays live with the contactors open: welded
                self.welded = True
                self.stop_cause = f"contactors welded: inlet {inlet:.0f} V after opening them"
            self._go("session_stop", now, self.stop_cause if self.welded else "welding check inconclusive")
        elif name == "react" and self._ending:
            self._end(now, self.stop_cause or "charger stopped")

    def _tick(self, now: float) -> None:
        current = self._current()
        self.pack.update(current, now)
        self.harness.battery_voltage = self.battery.terminal_voltage(current)
        stage = self.stage
        charger_stage = self._status("EvseStage")
        if charger_stage == NUMBER[Stage.DONE]:
            self._finish(now, "charger ended the session")
            return
        self._watch_charger(now)
        self._protect(now)
        if stage is VStage.PLUGGED:
            pilot = read_pilot(self.harness, ev_side=True)
            if pilot.pwm and DIGITAL_BAND[0] <= pilot.duty <= DIGITAL_BAND[1]:
                self._go("pwm_seen", now, f"CP {pilot.label}, {pilot.duty:g} %")
                if not self.config.link_fails:
                    self.deadlines.set("link", now + self.config.link_delay)
        elif stage is VStage.SESSION_SETUP and self._answered(Request.SESSION_SETUP):
            self._go("service_discovery", now)
        elif stage is VStage.SERVICE_DISCOVERY and self._answered(Request.SERVICE_DISCOVERY):
            self._go("authorization", now)
        elif stage is VStage.AUTHORIZATION and self._answered(Request.CONTRACT_AUTHENTICATION):
            self.ready = True
            self._go("charge_parameters", now, f"max {self.max_voltage:g} V / {self._max_current():g} A")
        elif (
            stage is VStage.CHARGE_PARAMETER_DISCOVERY
            and "s2" not in self.deadlines
            and self._answered(Request.CHARGE_PARAMETER_DISCOVERY, Stage.CP_STATE_C)
        ):
            self.deadlines.set("s2", now + self.config.cp_c_delay)
        elif stage is VStage.CABLE_CHECK:
            self._cable_check(now)
        elif stage is VStage.PRECHARGE:
            self._precharge(now)
        elif stage is VStage.POWER_DELIVERY_START and self._answered(Request.POWER_DELIVERY_START):
            self._go("current_demand", now)
            self._current_demand(now)
        elif stage is VStage.CURRENT_DEMAND:
            self._current_demand(now)
        elif stage is VStage.PAUSED:
            self.target_current = 0.0
        elif stage is VStage.POWER_DELIVERY_STOP:
            self._power_delivery_stop(now)
        elif (
            stage is VStage.WELDING_DETECTION
            and self._answered(Request.WELDING_DETECTION)
            and self._inlet_voltage() < T.SAFE_V
        ):
            self._go("session_stop", now, f"inlet {self._inlet_voltage():.0f} V: contactors not welded")

    def _cable_check(self, now: float) -> None:
        isolation = self._status("EvseIsolationStatus")
        passed = isolation in (IsolationStatus.VALID, IsolationStatus.WARNING)
        if passed and self._answered(Request.CABLE_CHECK):
            self.deadlines.cancel("cable_check")
            self.target_voltage = self.battery.terminal_voltage(0.0)
            self.target_current = self.config.precharge_current
            self._go("precharge", now, f"target {self.target_voltage:.0f} V")
            self.deadlines.set("precharge", now + self.t["vehicle_precharge"])
        elif isolation == IsolationStatus.FAULT:
            self._end(now, "isolation fault reported")

    def _precharge(self, now: float) -> None:
        self.target_voltage = self.battery.terminal_voltage(0.0)
        if self._status("EvseStage") != NUMBER[Stage.PRECHARGE]:
            return
        if abs(self._inlet_voltage() - self.target_voltage) < T.PRECHARGE_MATCH_V:
            self._matched_since = self._matched_since if self._matched_since is not None else now
            if now - self._matched_since >= self.t["vehicle_precharge_stable"] - 1e-6:
                self.deadlines.cancel("precharge")
                self.harness.contactors_closed = True
                self.target_current = 0.0
                self._go("power_delivery", now, f"inlet {self._inlet_voltage():.0f} V: contactors closed")
        else:
            self._matched_since = None

    def _max_current(self) -> float:
        return self.config.max_current or self.battery.spec.max_charge_current_a

    def _current_demand(self, now: float) -> None:
        cfg = self.config
        soc = self.battery.soc
        self.target_voltage = self.max_voltage
        if "present_values" not in self.deadlines:
            self.deadlines.set("present_values", now + self.t["current_demand_response"] + 1e-6)
        if cfg.hang_at_soc is not None and soc >= cfg.hang_at_soc:
            self._frozen = self._frames(now)
            self._go("hang", now, f"controller hung at {soc:.1f} %")
            self.deadlines.clear()
            return
        if cfg.error_code_at_soc is not None and soc >= cfg.error_code_at_soc and not self.error:
            self.error = EvErrorCode(cfg.error_code)
            self.stop_cause = f"EVErrorCode {self.error.name}"
        if cfg.cp_b_at_soc is not None and soc >= cfg.cp_b_at_soc and not self._paused_once:
            self._paused_once = True
            self._set_s2(False)
            self.target_current = 0.0
            self._go("pause", now, f"S2 opened at {soc:.1f} % (C -> B)")
            self.deadlines.cancel("present_values")
            if cfg.resume_after_s is not None:
                self.deadlines.set("resume", now + cfg.resume_after_s)
            else:
                self._ending = True
                self.deadlines.set("pause_end", now + cfg.stop_reaction)
            return
        if soc >= cfg.target_soc:
            self.charging_complete = True
            self._end(now, f"target SOC {cfg.target_soc:g} % reached")
            return
        end_a = self.battery.spec.taper_end_current_a
        if not self.error and self.pack.limit < end_a and self.battery.cv_current_limit() < end_a:
            # the highest cell sits at its charge cutoff (imbalance, a weak cell): the CV phase has
            # ended below the pack's end-of-charge current, so the BMS calls the charge complete early
            self.charging_complete = True
            self._end(now, f"highest cell at its charge cutoff at {soc:.1f} %: charge complete")
            return
        available = self._c("EvseMaxLimits", "EvseMaxCurrent") or 0.0
        limit = min(self.pack.limit, self._max_current(), available or math.inf)
        self.target_current = max(0.0, math.floor(limit * 10.0) / 10.0)

    def _power_delivery_stop(self, now: float) -> None:
        self.target_current = 0.0
        # the charger no longer answers (emergency stop, or already releasing the connector)
        emergency = self._status("EvseStage") in (NUMBER[Stage.EMERGENCY_STOP], NUMBER[Stage.UNLOCK])
        answered = self._answered(Request.POWER_DELIVERY_STOP) or emergency
        if answered and self.s2 and "cp_b" not in self.deadlines:
            self.deadlines.set("cp_b", now + self.t["vehicle_cp_b_delay"])
        if not self.s2 and self._current() <= T.CURRENT_OFF_A and self.harness.contactors_closed:
            self.harness.contactors_closed = False
        if not self.s2 and not self.harness.contactors_closed:
            if emergency:
                self._go("session_stop", now, "charger in emergency stop: contactors open")
            else:
                self._go("welding_detection", now, "current < 1 A: contactors opened")
                self.deadlines.set("welding", now + self.t["vehicle_welding"])

    def _watch_charger(self, now: float) -> None:
        """§8: StopCharging, EVSE_Shutdown / Malfunction / EmergencyShutdown, FAILED: end the session."""
        if self._ending or self.stage in (VStage.PLUGGED, VStage.LINK_SETUP, VStage.DONE):
            return
        if self.stage in (VStage.POWER_DELIVERY_STOP, VStage.WELDING_DETECTION, VStage.SESSION_STOP):
            return
        code = self._status("EvseStatusCode")
        stopping = (
            (code is not None and code in _CHARGER_STOPPING)
            or self._status("EvseNotification") == Notification.STOP_CHARGING
            or failed(self._status("EvseResponseCode"))
            or self._status("EvseStage") in (NUMBER[Stage.ERROR], NUMBER[Stage.EMERGENCY_STOP])
        )
        if stopping:
            self._ending = True
            self.stop_cause = self.stop_cause or "charger stopped the session"
            self.deadlines.set("react", now + self.config.stop_reaction)

    def _protect(self, now: float) -> None:
        for name, code in _PROTECTION_ERRORS.items():
            if name in self.pack.tripped and not self.error and self.stage in _POWER:
                self.error = code
                self.stop_cause = f"battery protection: {name.replace('_', ' ')}"

    def _end(self, now: float, cause: str) -> None:
        """The EV ends the session: PowerDelivery(stop) if the battery is on the link, else SessionStop."""
        self.stop_cause = self.stop_cause or cause
        self._ending = True
        self.deadlines.cancel("present_values", "precharge", "cable_check", "react", "pause_end", "s2")
        if self.stage in _POWER:
            self.target_current = 0.0
            self.stop_request = True
            self._go("power_delivery_stop", now, cause)
        elif self.stage in _SESSION:
            self._set_s2(False)
            self.harness.contactors_closed = False
            self._go("session_stop", now, cause)
        elif self.stage in (VStage.PLUGGED, VStage.LINK_SETUP):
            self._finish(now, cause)

    def _abandon(self, now: float) -> None:
        """The charger is gone (silent or frozen): open up and end without it."""
        self.harness.contactors_closed = False
        self._set_s2(False)
        self._finish(now, self.stop_cause)

    def _finish(self, now: float, cause: str) -> None:
        self.deadlines.clear()
        if self.stage is not VStage.DONE:
            self._go("done", now, cause)
        self._set_s2(False)
        self.harness.contactors_closed = False
        soc_reached = self.battery.soc >= self.config.target_soc
        self.emit(
            SessionEnded(
                now,
                Role.VEHICLE,
                Outcome.COMPLETED if soc_reached else Outcome.STOPPED,
                "target_soc" if soc_reached else "stopped",
                self.stop_cause or cause,
                VStage.DONE.value,
                7,
                Origin.VEHICLE,
            )
        )

    # ---- frames out --------------------------------------------------------------------------
    def _remaining(self, soc_goal: float) -> float | None:
        current = self._current()
        if self.stage is not VStage.CURRENT_DEMAND or current < 1.0:
            return None
        ah = max(0.0, soc_goal - self.battery.soc) / 100.0 * self.battery.spec.capacity_ah
        return min(65534.0, round(ah * 3600.0 / current))

    def _frames(self, now: float) -> list[Frame]:
        cfg = self.config
        status, targets, maxima, info = (self._tx[n] for n in VEHICLE_FRAMES)
        soc = self.battery.soc
        pilot = read_pilot(self.harness, ev_side=True)
        capacity = self.battery.spec.capacity_kwh
        frames = [
            status.frame(
                {
                    "EvRequest": int(REQUEST[self.stage]),
                    "EvReady": int(Bool2.of(self.ready)),
                    "EvChargingComplete": int(Bool2.of(self.charging_complete)),
                    "EvBulkChargingComplete": int(Bool2.of(soc >= cfg.bulk_soc)),
                    "EvStopRequest": int(Bool2.of(self.stop_request)),
                    "EvErrorCode": int(self.error),
                    "EvCpState": int(pilot.state),
                    "EvSoc": max(0, min(100, round(soc))),
                    "EvContactorState": int(
                        ContactorState.ERROR
                        if self.welded
                        else ContactorState.CLOSED
                        if self.harness.contactors_closed
                        else ContactorState.OPEN
                    ),
                    "EvAliveCounter": self.counter,
                },
                now,
            ),
            targets.frame(
                {
                    "EvTargetVoltage": or_sna(targets, "EvTargetVoltage", self.target_voltage),
                    "EvTargetCurrent": or_sna(targets, "EvTargetCurrent", self.target_current),
                    "EvRemainingTimeToFullSoc": or_sna(
                        targets, "EvRemainingTimeToFullSoc", self._remaining(100.0)
                    ),
                    "EvRemainingTimeToBulkSoc": or_sna(
                        targets, "EvRemainingTimeToBulkSoc", self._remaining(cfg.bulk_soc)
                    ),
                },
                now,
            ),
            Frame(maxima.frame_id, self._max_limits, False, now),
            info.frame(
                {
                    "EvEnergyCapacity": round(capacity, 1),
                    "EvEnergyRequest": round(max(0.0, cfg.target_soc - soc) / 100.0 * capacity, 1),
                    "EvFullSoc": 100,
                    "EvBulkSoc": round(cfg.bulk_soc),
                },
                now,
            ),
        ]
        self.counter = next_alive(self.counter)
        return frames

    def snapshot(self) -> Snapshot:
        current = self._current()
        return Snapshot(
            stage=self.stage.value,
            step=V_STEP[self.stage],
            values={
                "soc": self.battery.soc,
                "battery_voltage": self.battery.terminal_voltage(current),
                "max_cell_voltage": self.battery.max_cell_voltage(current),
                "temperature": self.battery.temperature_c,
                "request": self.target_current or 0.0,
                "contactors_closed": self.harness.contactors_closed,
                "frames_sent": self.frames_sent,
                "ev_request": int(REQUEST[self.stage]),
                "s2_closed": self.s2,
                "error_code": self.error.name,
            },
        )
