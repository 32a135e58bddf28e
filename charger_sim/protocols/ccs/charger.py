"""CCS bridge charger core (sans-I/O): SECC + power stage of a DIN SPEC 70121 DC session, spoken over
the charger-sim CCS-over-CAN bridge profile (``dbc/ccs.dbc``).

The vehicle drives the DIN sequence with ``EvRequest``; the charger answers each request ``n`` with
``EvseStage = n``, a ``ResponseCode`` and ``EVSEProcessing``, drives the pilot (5 % PWM), locks the
connector, tests the insulation, pre-charges, follows the current demand and runs every stop path.
§ numbers refer to the CCS fact sheet (``shared/protocols/ccs-over-can.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ...codec import Codec, Value, load_dbc
from ...errors import DecodeError, Origin
from ...frames import Frame
from ...plant.harness import Harness
from ...plant.power import Mode
from ..base import Core, Cyclic, Deadlines, Outcome, Role, SessionEnded, Snapshot, StageChanged, StopReason
from ..machine import StageMachine
from . import timing as T
from .bridge import (
    VEHICLE_FRAMES,
    AliveCheck,
    EvErrorCode,
    EvseStatusCode,
    IsolationStatus,
    Notification,
    Processing,
    Protocol,
    Request,
    ResponseCode,
    next_alive,
    number,
    truth,
)
from .charger_frames import ChargerFrames
from .electrical import DIGITAL_DUTY, NO_PWM, CpState, PpCode, pp_ok
from .evse import CcsChargerConfig, Evse, ohm_text
from .states import ACTIVE, BEFORE_POWER, ENDING, NUMBER, POWER, STEP, TOLERATED, TRANSITIONS, Stage
from .stops import EMERGENCY, EV_ERRORS, REASONS, RESPONSE

log = logging.getLogger(__name__)

# Stages whose vehicle frames are supervised (receive timeout, alive counter, pilot).
_SUPERVISED = frozenset((*ACTIVE, *ENDING, Stage.ERROR))
_C_LIKE = (CpState.C, CpState.D)  # D (ventilation) is accepted as ready, like C


class CcsCharger(Core):
    """The charger side of one CCS (DIN 70121 bridge profile) session."""

    role = Role.CHARGER

    def __init__(self, config: CcsChargerConfig, harness: Harness, codec: Codec | None = None) -> None:
        super().__init__()
        self.config = config
        self.harness = harness
        self.codec = codec or load_dbc("ccs")
        self.t = T.seconds(config.revision)
        self._status_msg = self.codec.message("EvseStatus")
        self._rx = {self.codec.message(n).frame_id: self.codec.message(n) for n in VEHICLE_FRAMES}
        self._msg = {m.name: m for m in self._rx.values()}
        self._frames = ChargerFrames(self.codec, config)
        self.sm = StageMachine(Stage, TRANSITIONS, Stage.IDLE)
        self.stage: Stage = Stage.IDLE  # mirrors self.sm
        self.stage_since = 0.0
        self._sent_stage: Stage | None = None  # the stage the last EvseStatus carried
        self.evse = Evse(config, harness)
        self.power = self.evse.power  # the session reads ``charger.power``
        self.deadlines = Deadlines()
        self.cyclic: Cyclic | None = None
        self.ev: dict[str, dict[str, Value]] = {}
        self.request = int(Request.NONE)
        self.alive = AliveCheck()
        self._alive_armed = False
        self._advanced_at = 0.0  # last EvStatus whose counter advanced
        self._status_at = 0.0  # last EvStatus at all
        self.counter = 0
        self._b_since: float | None = None
        # what the answers say
        self.protocol = Protocol.NOT_NEGOTIATED
        self.response = ResponseCode.SNA
        self.processing = Processing.SNA
        self.status_code = EvseStatusCode.NOT_READY
        self.notification = Notification.NONE
        self.isolation = IsolationStatus.SNA
        self.cable_phase = ""
        self.test_voltage = 0.0
        self.isolation_ohm: float | None = None
        # bookkeeping
        self.stop_reason: StopReason | None = None
        self.stop_stage: Stage | None = None
        self.stop_detail = ""
        self.faults: list[str] = []
        self.charge_start: float | None = None
        self.frames_sent = 0
        self.frames_received = 0
        self.bad_frames = 0
        # the request that moves each message stage forward, and what the charger does then
        self._forward: dict[tuple[Stage, int], Callable[[float], None]] = {
            (Stage.CP_B_PWM, Request.SESSION_SETUP): self._enter_session_setup,
            (Stage.SESSION_SETUP, Request.SERVICE_DISCOVERY): self._enter_service_discovery,
            (Stage.SERVICE_DISCOVERY, Request.CONTRACT_AUTHENTICATION): self._enter_authorization,
            (Stage.AUTHORIZATION, Request.CHARGE_PARAMETER_DISCOVERY): self._enter_charge_parameters,
            (Stage.PRECHARGE, Request.POWER_DELIVERY_START): self._enter_power_delivery,
            (Stage.POWER_DELIVERY_START, Request.CURRENT_DEMAND): self._enter_current_demand,
        }

    # ---- helpers ---------------------------------------------------------------------------
    def _go(self, trigger: str, now: float, detail: str = "") -> None:
        stage: Stage = self.sm.fire(trigger)
        self.stage = stage
        self.stage_since = now
        self.deadlines.cancel("sequence")
        log.debug("%.3f charger %s -> %s", now, trigger, stage.value)
        self.emit(StageChanged(now, Role.CHARGER, stage.value, STEP[stage], detail))

    def _ev(self, message: str, signal: str) -> float | None:
        return number(self._msg[message], self.ev.get(message), signal)

    def _flag(self, signal: str) -> bool | None:
        values = self.ev.get("EvStatus")
        return None if values is None else truth(values.get(signal))

    def _answer(
        self,
        now: float,
        response: ResponseCode = ResponseCode.OK,
        *,
        ongoing: bool = False,
        wait: bool = True,
    ) -> None:
        """Set the answer to the current request.  A finished answer that leaves the next step to the
        vehicle (``wait``) starts the sequence timer (V2G_SECC_Sequence_Timeout)."""
        self.response = response
        self.processing = Processing.ONGOING if ongoing else Processing.FINISHED
        if wait and not ongoing:
            self.deadlines.set("sequence", now + self.t["sequence"])

    def _shown(self) -> bool:
        """The current stage (and its answer) has gone out in at least one EvseStatus frame."""
        return self._sent_stage is self.stage

    # ---- inputs ----------------------------------------------------------------------------
    def start(self, now: float) -> list[Frame]:
        """Operator start with the plug in: read PP and CP, start the bridge frames (§2, §3)."""
        self.power.reset_clock(now)
        self.evse.measure()
        self._go(
            "start",
            now,
            f"PP {self.evse.pp_text()}, CP {self.evse.pilot.label} ({self.evse.pilot.high_v:.1f} V)",
        )
        self.cyclic = Cyclic(self.t["cycle"], now)
        self.deadlines.set("cp_detection", now + self.t["cp_detection"])
        self.deadlines.set("ready_to_charge", now + self.t["ready_to_charge"])
        return []

    def receive(self, frame: Frame, now: float) -> list[Frame]:
        if frame.is_extended_id or self.finished or self.stage in (Stage.IDLE, Stage.DONE):
            return []
        codec = self._rx.get(frame.arbitration_id)
        if codec is None:
            return []
        try:
            values = codec.decode(frame.data)
        except DecodeError as err:
            self.bad_frames += 1
            log.info("ignored vehicle frame: %s", err)
            return []
        self.frames_received += 1
        self.ev[codec.name] = values
        if self.stage in _SUPERVISED:
            self.deadlines.set(f"rx:{codec.name}", now + self.t["rx_timeout"])
        if codec.name == "EvStatus":
            self._on_status(values, now)
        elif codec.name == "EvTargets" and self.stage is Stage.CURRENT_DEMAND:
            self._follow(now)  # answer with the latest values, never wait for a cycle (§6)
        return []

    def on_timer(self, now: float) -> list[Frame]:
        if self.stage is not Stage.IDLE:
            self.evse.advance(now)  # deadlines look at the output as it is now
        for name in self.deadlines.due(now):
            self._on_deadline(name, now)
        out: list[Frame] = []
        if self.cyclic is not None and now + 1e-9 >= self.cyclic.next_at:
            self._tick(now)
            out = self._cycle_frames(now)
            if self.stage is Stage.DONE:
                self.cyclic = None
                self.finished = True
            else:
                self.cyclic.advance(now)
        elif self.stage is not Stage.DONE:
            self._tick(now)
        return out

    def next_deadline(self) -> float | None:
        nxt = self.deadlines.next()
        if self.cyclic is not None:
            nxt = self.cyclic.next_at if nxt is None else min(nxt, self.cyclic.next_at)
        return nxt

    def request_stop(self, now: float, reason: str = "operator_stop") -> list[Frame]:
        if self.stage is Stage.IDLE:
            self.stop_reason, self.stop_stage = REASONS[reason], Stage.IDLE
            self._go("abandon", now, "stopped before start")
            self._finish(now)
        elif self.stage in ACTIVE:
            self._stop(reason, now)
        return []

    def inject_power_fault(self, now: float) -> None:
        """Charger power-stage fault (fault catalogue): output off, EVSE_Malfunction."""
        self.power.faulted = True
        if self.stage in ACTIVE:
            self._stop("charger_malfunction", now)

    # ---- the vehicle's status and requests ----------------------------------------------------
    def _on_status(self, values: dict[str, Value], now: float) -> None:
        self._status_at = now
        advanced = self.alive.update(int(values["EvAliveCounter"]))
        if self.stage in _SUPERVISED and (advanced or not self._alive_armed):
            self._alive_armed = True  # armed by the first frame even if its counter is SNA
            self._advanced_at = now
            self.deadlines.set("alive", now + self.t["alive_timeout"])
        request = int(values["EvRequest"])
        changed, self.request = request != self.request, request
        self._on_request(now, changed)
        if self.stage in ACTIVE:
            self._ev_refuses(now)  # act on DC_EVStatus at once, not at the next cycle

    def _on_request(self, now: float, changed: bool) -> None:
        st, r = self.stage, self.request
        if st not in _SUPERVISED or r == Request.SNA:
            return
        if r == Request.SESSION_STOP and self.sm.can("session_stop"):
            if self.stop_reason is None:
                self._record_stop("vehicle_stop_before_charging", now)
            self._enter_session_stop(now)
        elif r == Request.POWER_DELIVERY_STOP and self.sm.can("power_delivery_stop"):
            if self.stop_reason is None:
                code = {Stage.CURRENT_DEMAND: "vehicle_stop", Stage.PAUSED: "cp_state_b"}
                self._record_stop(code.get(st, "vehicle_stop_before_charging"), now)
            self._enter_power_delivery_stop(
                "power_delivery_stop", now, "PowerDelivery(ReadyToCharge = false)"
            )
        elif r == Request.WELDING_DETECTION and self.sm.can("welding_detection"):
            self._go("welding_detection", now, "WeldingDetectionReq")
            self.evse.advance(now)
            self.power.set_off()
            self._answer(now)
        elif (st, r) in self._forward and (
            st is not Stage.AUTHORIZATION or self.processing is Processing.FINISHED
        ):
            self._forward[(st, r)](now)
        elif st is Stage.CHARGE_PARAMETER_DISCOVERY and r == Request.CABLE_CHECK:
            if "cp_detection" not in self.deadlines:
                self.deadlines.set("cp_detection", now + self.t["cp_detection"])
            self.evse.measure()
            self._check_cp_c(now)
        elif st is Stage.CP_STATE_C and r == Request.CABLE_CHECK and self.evse.locked:
            self._enter_cable_check(now)
        elif st is Stage.CABLE_CHECK and r == Request.PRECHARGE and self.cable_phase == "done":
            self._enter_precharge(now)
        elif changed and st is not Stage.ERROR and r not in TOLERATED.get(st, frozenset()):
            self.stop_detail = f"request {self._request_name(r)} in stage {st.value}"
            self._stop("sequence_error", now)

    # ---- entering stages ---------------------------------------------------------------------
    def _enter_session_setup(self, now: float) -> None:
        self.deadlines.cancel("communication_setup")
        self.protocol = Protocol.DIN70121
        self.status_code = EvseStatusCode.READY
        self._go("session_setup", now, "DIN 70121 agreed, new session")
        self._answer(now, ResponseCode.OK_NEW_SESSION_ESTABLISHED)

    def _enter_service_discovery(self, now: float) -> None:
        self._go("service_discovery", now, "DC charging, ExternalPayment")
        self._answer(now)

    def _enter_authorization(self, now: float) -> None:
        self._go("authorization", now, "ContractAuthentication: Ongoing")
        self._answer(now, ongoing=True)
        self.deadlines.set("ongoing", now + self.t["ongoing"])
        if self.config.authorize:
            self.deadlines.set("authorized", now + self.config.authorization_delay)

    def _enter_charge_parameters(self, now: float) -> None:
        self._go("charge_parameters", now, "ChargeParameterDiscoveryReq")
        ev_max_v = self._ev("EvMaxLimits", "EvMaxVoltage")
        ev_max_i = self._ev("EvMaxLimits", "EvMaxCurrent")
        cfg = self.config
        if ev_max_v is None or ev_max_i is None:
            self.stop_detail = "EV maximum voltage / current not available (EvMaxLimits SNA)"
        elif ev_max_v < cfg.min_voltage:
            self.stop_detail = (
                f"EV maximum {ev_max_v:g} V is below the charger's minimum {cfg.min_voltage:g} V"
            )
        elif ev_max_i < cfg.min_current:
            self.stop_detail = (
                f"EV maximum {ev_max_i:g} A is below the charger's minimum {cfg.min_current:g} A"
            )
        else:
            self.test_voltage = cfg.cable_check_voltage or T.cable_check_voltage(ev_max_v, cfg.max_voltage)
            self.test_voltage = min(self.test_voltage, cfg.max_voltage)
            self._answer(now)
            return
        self._stop("incompatible", now)

    def _check_cp_c(self, now: float) -> None:
        """§2: the EV switches B -> C after ChargeParameterDiscovery: lock the connector."""
        answered = self.processing is Processing.FINISHED and self._shown()
        if answered and self.stop_reason is None and self.evse.pilot.state in _C_LIKE:
            self.deadlines.cancel("cp_detection")
            self._go("cp_c", now, f"CP {self.evse.pilot.label} ({self.evse.pilot.high_v:.1f} V), locking")
            self.deadlines.set("lock", now + self.config.lock_time)
            self.deadlines.set("sequence", now + self.t["sequence"])

    def _enter_cable_check(self, now: float) -> None:
        self._go("cable_check", now, f"isolation test at {self.test_voltage:g} V")
        self.evse.set_relays(True)
        self.isolation = IsolationStatus.INVALID
        self.status_code = EvseStatusCode.ISOLATION_MONITORING_ACTIVE
        self._answer(now, ongoing=True)
        self.cable_phase = "ramp"
        self.evse.advance(now)
        self.power.set_voltage(self.test_voltage)
        self.deadlines.set("cable_check", now + self.t["cable_check"])

    def _cable_check_step(self, now: float) -> None:
        if self.cable_phase == "ramp" and self.power.voltage >= self.test_voltage - 1.0:
            self.cable_phase = "measure"
            self.deadlines.set("isolation_measure", now + self.t["isolation_measure"])
        elif self.cable_phase == "bleed" and self.evse.inlet_voltage() < T.SAFE_V:
            self.cable_phase = "done"
            self.deadlines.cancel("cable_check")
            self.status_code = EvseStatusCode.READY
            self._answer(now)

    def _isolation_measured(self, now: float) -> None:
        r = self.harness.insulation_resistance_ohm
        self.isolation_ohm = r
        self.isolation = self._isolation_level()
        if self.isolation is IsolationStatus.FAULT:
            limit = self.config.insulation_threshold_ohm_per_v * self.test_voltage
            self.stop_detail = (
                f"insulation {ohm_text(r)} below {ohm_text(limit)} "
                f"({self.config.insulation_threshold_ohm_per_v:g} ohm/V at {self.test_voltage:g} V)"
            )
            self._stop("isolation_fault", now)
            return
        self.cable_phase = "bleed"
        self.power.set_off()

    def _isolation_level(self) -> IsolationStatus:
        return self.evse.isolation_level(self.test_voltage or self.config.max_voltage)

    def _enter_precharge(self, now: float) -> None:
        self._go("precharge", now, "PreChargeReq")
        self._answer(now, ongoing=True)
        self.deadlines.set("precharge", now + self.t["precharge"])
        self._precharge_step(now)

    def _precharge_step(self, now: float) -> None:
        target = self._ev("EvTargets", "EvTargetVoltage")
        if target is None:
            return
        self.evse.advance(now)
        if self.harness.contactors_closed:
            self.power.set_current(0.0)  # the battery holds the link: no current until asked
        else:
            self.power.set_voltage(min(target, self.config.max_voltage))
        matched = abs(self.evse.inlet_voltage() - target) <= T.PRECHARGE_READY_V
        self.processing = Processing.FINISHED if matched else Processing.ONGOING

    def _enter_power_delivery(self, now: float) -> None:
        self.deadlines.cancel("precharge", "ready_to_charge")
        self._go("power_delivery", now, "PowerDelivery(ReadyToCharge = true)")
        self.evse.advance(now)
        self.power.set_current(0.0)
        self._answer(now)

    def _enter_current_demand(self, now: float) -> None:
        self._go("current_demand", now, f"first target {self._ev('EvTargets', 'EvTargetCurrent') or 0:g} A")
        self.charge_start = self.charge_start if self.charge_start is not None else now
        self._answer(now, wait=False)
        self._follow(now)

    def _follow(self, now: float) -> None:
        target = self._ev("EvTargets", "EvTargetCurrent") or 0.0
        ev_max = self._ev("EvMaxLimits", "EvMaxCurrent")
        if ev_max is not None:
            target = min(target, ev_max)
        self.evse.advance(now)  # a new setpoint applies from now on
        self.power.set_current(min(target, self.config.max_current))

    def _enter_power_delivery_stop(self, trigger: str, now: float, detail: str) -> None:
        self._go(trigger, now, detail)
        self.evse.advance(now)
        self.power.set_current(0.0, stopping=True)
        self.deadlines.set("stop_current", now + self.t["stop_current"])
        self._answer(now)

    def _enter_session_stop(self, now: float) -> None:
        self._go("session_stop", now, "SessionStopReq")
        self._answer(now, wait=False)
        self._end_supervision()

    def _end_supervision(self) -> None:
        for name in list(VEHICLE_FRAMES):
            self.deadlines.cancel(f"rx:{name}")
        self.deadlines.cancel(
            "alive",
            "sequence",
            "ongoing",
            "authorized",
            "cp_detection",
            "communication_setup",
            "ready_to_charge",
            "cable_check",
            "isolation_measure",
            "precharge",
            "pause",
            "lock",
        )

    def _enter_unlock(self, trigger: str, now: float, detail: str) -> None:
        self.evse.set_duty(NO_PWM)
        self.evse.advance(now)
        self.power.set_off()
        self.evse.set_relays(False)
        self._go(trigger, now, detail)
        self.deadlines.set("unlock_wait", now + self.t["unlock_wait"])

    # ---- periodic work -----------------------------------------------------------------------
    def _tick(self, now: float) -> None:
        self.evse.advance(now)
        self.evse.publish()
        self.evse.measure()
        stage = self.stage
        if stage in _SUPERVISED and not self._pilot_ok(now):
            return
        if stage in ACTIVE and self.stage is not Stage.PLUGGED_IN and not self._plug_ok(now):
            return
        if stage in ACTIVE and self._ev_refuses(now):
            return
        if stage is Stage.PLUGGED_IN:
            self._plugged_in_step(now)
        elif stage is Stage.CHARGE_PARAMETER_DISCOVERY:
            self._check_cp_c(now)
        elif stage in (Stage.CP_STATE_C, Stage.CABLE_CHECK, Stage.PRECHARGE, Stage.POWER_DELIVERY_START):
            if self.evse.pilot.state is CpState.B:
                self._stop("cp_state_b", now)
            elif stage is Stage.CABLE_CHECK:
                self._cable_check_step(now)
            elif stage is Stage.PRECHARGE and not self._imd(now):
                self._precharge_step(now)
            elif stage is Stage.POWER_DELIVERY_START:
                self._imd(now)
        elif stage is Stage.CURRENT_DEMAND:
            self._current_demand_step(now)
        elif stage is Stage.PAUSED:
            if self.evse.pilot.state in _C_LIKE and self.request == Request.CURRENT_DEMAND:
                self.deadlines.cancel("pause")
                self._go("resume", now, f"CP {self.evse.pilot.label} again")
                self._follow(now)
        elif stage in (Stage.POWER_DELIVERY_STOP, Stage.ERROR, Stage.EMERGENCY_STOP):
            self._ramp_down_step(now)
        elif stage is Stage.SESSION_STOP and self._shown():
            self._enter_unlock("close", now, "SessionStopRes sent: PWM off, relays open")
        elif stage is Stage.UNLOCK and self._shown() and self.evse.inlet_voltage() < T.SAFE_V:
            self.deadlines.cancel("unlock_wait")
            self.evse.set_lock(False)
            self._go("unlocked", now, f"output {self.evse.inlet_voltage():.0f} V, connector unlocked")
            self._finish(now)

    def _plugged_in_step(self, now: float) -> None:
        if not pp_ok(self.evse.pp_code):
            self.stop_detail = f"PP reads {self.evse.pp_text()}"
            self._stop("pp_invalid", now)
        elif self.evse.pilot.state is CpState.B:
            if self._b_since is None:
                self._b_since = now
            elif now - self._b_since >= self.t["cycle"] - 1e-6:
                self.deadlines.cancel("cp_detection")
                self.evse.set_duty(DIGITAL_DUTY)
                self._go("pwm_on", now, f"5 % PWM, CP {self.evse.pilot.label}")
                self.deadlines.set("communication_setup", now + self.t["communication_setup"])
                self._pilot_ok(now)  # §2 diode check on the first PWM period

    def _pilot_ok(self, now: float) -> bool:
        """§8: CP to A / E / F or an invalid level, or a failed diode check: emergency stop."""
        state = self.evse.pilot.state
        code = ""
        if state is CpState.A and self.stage is not Stage.PLUGGED_IN:
            code = "cp_state_a"
        elif state is CpState.E:
            code = "cp_state_e"
        elif state in (CpState.F, CpState.INVALID):
            code = "cp_invalid"
        elif self.evse.pilot.diode_ok is False:
            code = "diode_fault"
        if not code:
            return True
        self.stop_detail = f"CP high {self.evse.pilot.high_v:.1f} V, low {self.evse.pilot.low_v:.1f} V"
        self._stop(code, now)
        return False

    def _plug_ok(self, now: float) -> bool:
        if pp_ok(self.evse.pp_code):
            return True
        self.stop_detail = f"PP reads {self.evse.pp_text()}"
        code = "pp_unlatched" if self.evse.pp_code is PpCode.TYPE1_BUTTON_PRESSED else "pp_invalid"
        self._stop(code, now)
        return False

    def _ev_refuses(self, now: float) -> bool:
        """§8: EVErrorCode other than NO_ERROR, or EVReady withdrawn in a DC stage: stop."""
        if self.stage in (Stage.PLUGGED_IN, Stage.CP_B_PWM):
            return False
        code = self._ev("EvStatus", "EvErrorCode")
        if code is not None and code != EvErrorCode.NO_ERROR:
            self._stop(EV_ERRORS.get(int(code), "ev_error_reserved"), now)
            return True
        dc = (Stage.CABLE_CHECK, Stage.PRECHARGE, *POWER)
        if self.stage in dc and self._flag("EvReady") is False:
            self._stop("ev_not_ready", now)
            return True
        if self.stage in POWER and self._flag("EvStopRequest"):
            self._stop("vehicle_stop", now)
            return True
        return False

    def _imd(self, now: float) -> bool:
        """The IMD keeps watching from pre-charge on (§7): a fault stops, a warning is reported."""
        level = self._isolation_level()
        if level is IsolationStatus.FAULT:
            self.isolation = level
            self.stop_detail = f"insulation fell to {ohm_text(self.harness.insulation_resistance_ohm)}"
            self._stop("isolation_fault", now)
            return True
        self.isolation = level
        return False

    def _current_demand_step(self, now: float) -> None:
        if self.evse.pilot.state is CpState.B:
            self.evse.advance(now)
            self.power.set_current(0.0, stopping=True)
            self._go("pause", now, "CP C -> B: current off")
            self.deadlines.set("pause", now + self.t["sequence"])
            self.deadlines.set("stop_current", now + self.t["stop_current"])
            return
        if not self._imd(now):
            self._follow(now)

    def _ramp_down_step(self, now: float) -> None:
        if self.power.current > T.CURRENT_OFF_A:
            return
        self.deadlines.cancel("stop_current")
        if self.power.mode is not Mode.OFF:
            self.power.set_off()
        if not self._shown():
            return
        if self.stage is Stage.EMERGENCY_STOP or (
            self.stage is Stage.ERROR and self.stop_stage in (Stage.PLUGGED_IN, Stage.CP_B_PWM)
        ):
            self._enter_unlock("release", now, f"output off after {self.stop_code()}")
        elif self.stage is Stage.ERROR:
            self.evse.set_relays(False)

    # ---- deadlines ---------------------------------------------------------------------------
    def _on_deadline(self, name: str, now: float) -> None:
        stage = self.stage
        if name.startswith("rx:") and stage in _SUPERVISED:
            frame = self.codec.message(name[3:])
            self.stop_detail = f"{frame.name} (0x{frame.frame_id:03X}) missing for {self.t['rx_timeout']:g} s"
            self._stop("can_timeout", now)
        elif name == "alive" and stage in _SUPERVISED and self._status_at > self._advanced_at:
            # frames kept coming with a stuck counter (if they stopped, the receive timeout says so)
            self.stop_detail = f"EvAliveCounter stuck at {self.alive.last} for {self.t['alive_timeout']:g} s"
            self._stop("alive_counter_frozen", now)
        elif name == "cp_detection" and stage is Stage.PLUGGED_IN:
            self.stop_detail = f"CP {self.evse.pilot.label} ({self.evse.pilot.high_v:.1f} V), expected B"
            self._stop("no_vehicle", now)
        elif name == "cp_detection" and stage is Stage.CHARGE_PARAMETER_DISCOVERY:
            self.stop_detail = (
                f"CP still {self.evse.pilot.label} {self.t['cp_detection']:g} s after CableCheckReq"
            )
            self._stop("cp_not_c", now)
        elif name == "communication_setup" and stage is Stage.CP_B_PWM:
            self._stop("link_setup_timeout", now)
        elif name == "sequence" and stage is Stage.ERROR:
            self.faults.append("session_not_closed")
            self._enter_unlock("release", now, "vehicle did not end the session")
        elif name == "sequence" and stage in _SUPERVISED:
            self.stop_detail = (
                f"no request after {self._request_name(self.request)} for {self.t['sequence']:g} s"
            )
            self._stop("sequence_timeout", now)
        elif name == "authorized" and stage is Stage.AUTHORIZATION:
            self.deadlines.cancel("ongoing")
            self._answer(now)
        elif name == "ongoing" and stage is Stage.AUTHORIZATION:
            self._stop("authorization_timeout", now)
        elif name == "lock" and stage is Stage.CP_STATE_C:
            self.evse.set_lock(True)
            if self.request == Request.CABLE_CHECK:
                self._enter_cable_check(now)
        elif name == "cable_check" and stage is Stage.CABLE_CHECK:
            self._stop("cable_check_timeout", now)
        elif name == "isolation_measure" and stage is Stage.CABLE_CHECK:
            self._isolation_measured(now)
        elif name == "precharge" and stage is Stage.PRECHARGE:
            target = self._ev("EvTargets", "EvTargetVoltage")
            inlet = self.evse.inlet_voltage()
            self.stop_detail = f"output {inlet:.0f} V, EV target {target or 0:g} V"
            matched = target is not None and abs(inlet - target) <= T.PRECHARGE_READY_V
            self._stop("precharge_timeout" if matched else "precharge_failed", now)
        elif name == "ready_to_charge" and stage in (Stage.PLUGGED_IN, Stage.CP_B_PWM, *BEFORE_POWER):
            self._stop("ready_to_charge_timeout", now)
        elif name == "pause" and stage is Stage.PAUSED:
            self._stop("cp_state_b", now)
        elif name == "stop_current" and self.power.current > T.CURRENT_OFF_A:
            self.faults.append("stop_current_slow")
            log.warning(
                "current still %.1f A %.2f s after the stop", self.power.current, self.t["stop_current"]
            )
        elif name == "unlock_wait" and stage is Stage.UNLOCK:
            self._note_shutdown_fault("output_not_discharged", now)

    # ---- stop paths --------------------------------------------------------------------------
    def stop_code(self) -> str:
        return self.stop_reason.code if self.stop_reason is not None else ""

    def _record_stop(self, code: str, now: float) -> None:
        if self.stop_reason is not None:
            if code not in self.faults and code != self.stop_reason.code:
                self.faults.append(code)
            return
        self.stop_reason = REASONS[code]
        # a C -> B drop is a stop begun in the current demand loop, even if the EV ends it from the pause
        paused_drop = code == "cp_state_b" and self.stage is Stage.PAUSED
        self.stop_stage = Stage.CURRENT_DEMAND if paused_drop else self.stage
        log.info("%.3f charger stop in %s: %s", now, self.stage.value, code)

    def _stop(self, code: str, now: float) -> None:
        """Begin the stop for ``code``: ramp down (normal, power flowing), error or emergency stop."""
        self._record_stop(code, now)
        reason = REASONS[code]
        stage = self.stage
        self.evse.advance(now)  # the ramp starts now, not at the last tick
        if code in EMERGENCY and self.sm.can("emergency"):
            self._end_supervision()
            self.status_code = EvseStatusCode.EMERGENCY_SHUTDOWN
            self.notification = Notification.STOP_CHARGING
            self.evse.set_duty(NO_PWM)
            self.power.set_off()
            self._go("emergency", now, self._cause(reason.cause))
            self.response, self.processing = ResponseCode.FAILED, Processing.FINISHED
            self.deadlines.set("stop_current", now + self.t["stop_current"])
            self._ramp_down_step(now)
            return
        if stage in ENDING or stage in (Stage.ERROR, Stage.EMERGENCY_STOP, Stage.SESSION_STOP):
            return  # already on the way out: noted only
        self.notification = Notification.STOP_CHARGING
        self.status_code = (
            EvseStatusCode.MALFUNCTION if reason.origin is Origin.CHARGER else EvseStatusCode.SHUTDOWN
        )
        if reason.normal and stage in POWER:
            self._enter_power_delivery_stop("ramp_down", now, self._cause(reason.cause))
            return
        if self.sm.can("error"):
            if self.power.mode is Mode.CURRENT:
                self.power.set_current(0.0, stopping=True)
            else:
                self.power.set_off()
            self._go("error", now, self._cause(reason.cause))
            self._answer(now, ResponseCode.OK if reason.normal else RESPONSE.get(code, ResponseCode.FAILED))
            if code == "isolation_fault":
                self.isolation = IsolationStatus.FAULT
            self.deadlines.set("stop_current", now + self.t["stop_current"])
            self._ramp_down_step(now)

    def _cause(self, cause: str) -> str:
        return cause + (f": {self.stop_detail}" if self.stop_detail else "")

    def _note_shutdown_fault(self, code: str, now: float) -> None:
        """The output stays live: never unlock a live connector; the session ends locked (§7)."""
        self.faults.append(code)
        if self.stop_reason is not None and self.stop_reason.normal:
            self.stop_reason = REASONS[code]
        self.status_code = EvseStatusCode.MALFUNCTION
        self._go("give_up", now, f"output stays at {self.evse.inlet_voltage():.0f} V: connector stays locked")
        self._finish(now)

    def _finish(self, now: float) -> None:
        reason = self.stop_reason or REASONS["operator_stop"]
        stage = self.stop_stage or Stage.IDLE
        completed = reason.normal and self.charge_start is not None and reason.origin is Origin.VEHICLE
        self.emit(
            SessionEnded(
                now,
                Role.CHARGER,
                Outcome.COMPLETED if completed else Outcome.STOPPED,
                reason.code,
                self._cause(reason.cause),
                stage.value,
                STEP[stage],
                reason.origin,
            )
        )
        self.deadlines.clear()
        self.finished = self.cyclic is None

    # ---- frames out --------------------------------------------------------------------------
    def target_current(self) -> float | None:
        return self._ev("EvTargets", "EvTargetCurrent")

    def _cycle_frames(self, now: float) -> list[Frame]:
        out = self._frames.build(self, now)
        self.counter = next_alive(self.counter)
        self._sent_stage = self.stage
        self.frames_sent += len(out)
        return out

    # ---- views -------------------------------------------------------------------------------
    @staticmethod
    def _request_name(r: int) -> str:
        try:
            return Request(r).name
        except ValueError:
            return str(r)

    def snapshot(self) -> Snapshot:
        stage = self.stage
        volts, amps = self.evse.inlet_voltage(), self.power.current
        status = self._status_msg
        return Snapshot(
            stage=stage.value,
            step=STEP[stage],
            values={
                "status": status.describe("EvseStatusCode", int(self.status_code)),
                "evse_stage": NUMBER[stage],
                "ev_request": self.request,
                "response": status.describe("EvseResponseCode", int(self.response)),
                "processing": self.processing.name.lower(),
                "cp_state": self.evse.pilot.label,
                "cp_voltage": round(self.evse.pilot.high_v, 2),
                "cp_duty": self.evse.duty,
                "pp_ohm": self.evse.pp_ohm,
                "pp_code": self.evse.pp_code.name,
                "isolation": self.isolation.name.lower(),
                "locked": self.evse.locked,
                "relays": self.evse.relays,
                "target_voltage": self._ev("EvTargets", "EvTargetVoltage") or 0.0,
                "current_request": self._ev("EvTargets", "EvTargetCurrent") or 0.0,
                "present_voltage": volts,
                "present_current": amps,
                "power_kw": volts * amps / 1000.0,
                "energy_kwh": self.power.energy_wh / 1000.0,
                "soc": self._ev("EvStatus", "EvSoc") or 0.0,
                "frames_sent": self.frames_sent,
                "frames_received": self.frames_received,
                "last_fault": self.faults[-1]
                if self.faults
                else (self.stop_reason.code if self.stop_reason and not self.stop_reason.normal else ""),
            },
        )
