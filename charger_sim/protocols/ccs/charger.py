"""CCS bridge charger core (sans-I/O): SECC + power stage of a DIN SPEC 70121 DC session, spoken over
the charger-sim CCS-over-CAN bridge profile (``dbc/ccs.dbc``).

The vehicle drives the DIN sequence with ``EvRequest``; the charger answers each request ``n`` with
``EvseStage = n``, a ``ResponseCode`` and ``EVSEProcessing``, drives the pilot (5 % PWM), locks the
connector, tests the insulation, pre-charges, follows the current demand and runs every stop path
(:mod:`.charger_base`) under the supervision of :mod:`.charger_checks`.  § numbers refer to the CCS
fact sheet (``shared/protocols/ccs-over-can.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ...codec import Codec, Value
from ...errors import DecodeError
from ...frames import Frame
from ...plant.harness import Harness
from ..base import Cyclic
from . import timing as T
from .bridge import (
    APP_PROTOCOL_LINE,
    AppProtocol,
    ContactorState,
    EvseStatusCode,
    IsolationStatus,
    Processing,
    Protocol,
    Request,
    ResponseCode,
    app_protocol_text,
)
from .charger_base import C_LIKE, SUPERVISED
from .charger_checks import AFTER_POWER, ChargerChecks
from .electrical import DIGITAL_DUTY, CpState, pp_ok
from .evse import CcsChargerConfig, ohm_text
from .states import ACTIVE, BEFORE_POWER, TOLERATED, Stage
from .stops import REASONS

log = logging.getLogger(__name__)


class CcsCharger(ChargerChecks):
    """The charger side of one CCS (DIN 70121 bridge profile) session."""

    def __init__(self, config: CcsChargerConfig, harness: Harness, codec: Codec | None = None) -> None:
        super().__init__(config, harness, codec)
        # the request that moves each message stage forward, and what the charger does then
        self._forward: dict[tuple[Stage, int], Callable[[float], None]] = {
            (Stage.CP_B_PWM, Request.SESSION_SETUP): self._enter_session_setup,
            (Stage.SESSION_SETUP, Request.SERVICE_DISCOVERY): self._enter_service_discovery,
            (Stage.SERVICE_DISCOVERY, Request.CONTRACT_AUTHENTICATION): self._enter_authorization,
            (Stage.AUTHORIZATION, Request.CHARGE_PARAMETER_DISCOVERY): self._enter_charge_parameters,
            (Stage.PRECHARGE, Request.POWER_DELIVERY_START): self._enter_power_delivery,
            (Stage.POWER_DELIVERY_START, Request.CURRENT_DEMAND): self._enter_current_demand,
        }

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
        except DecodeError:
            self._unusable(codec.name, f"DLC {len(frame.data)}, the DBC says {codec.length}")
            return []
        missing = self._missing(codec.name, values)
        if missing:  # §9: SNA / Invalid where the stage needs a value: as if not received
            self._unusable(codec.name, missing)
            return []
        self.frames_received += 1
        self.ev[codec.name] = values
        if self.stage in SUPERVISED:
            self._arm_rx(codec.name, now)
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

    def _on_status(self, values: dict[str, Value], now: float) -> None:
        self._status_at = now
        jumps = self.alive.jumps
        advanced = self.alive.update(int(values["EvAliveCounter"]))
        if self.stage in SUPERVISED and (advanced or not self._alive_armed):
            self._alive_armed = True  # armed by the first frame even if its counter is SNA
            self._advanced_at = now
            self.deadlines.set("alive", now + self.t["alive_timeout"])
            if self.alive.jumps > jumps:
                self._alive_jumped(now)
        if self.stage in AFTER_POWER and values["EvContactorState"] == ContactorState.ERROR:
            self._welded(now, f"EvContactorState Error, inlet {self.evse.inlet_voltage():.0f} V")
        request = int(values["EvRequest"])
        changed, self.request = request != self.request, request
        self._on_request(now, changed)
        if self.stage in ACTIVE:
            self._ev_refuses(now)  # act on DC_EVStatus at once, not at the next cycle

    def _on_request(self, now: float, changed: bool) -> None:
        st, r = self.stage, self.request
        if st not in SUPERVISED or r == Request.SNA:
            return
        if r == Request.SESSION_STOP and self.sm.can("session_stop"):
            if self.stop_reason is None:
                self._record_stop("vehicle_stop_before_charging", now)
            if st is Stage.WELDING_DETECTION:
                self._welding_checked(now)
            self._enter_session_stop(now)
        elif r == Request.POWER_DELIVERY_STOP and self.sm.can("power_delivery_stop"):
            if self.stop_reason is None:
                code = {Stage.CURRENT_DEMAND: "vehicle_stop", Stage.PAUSED: "cp_state_b"}.get(
                    st, "vehicle_stop_before_charging"
                )
                if code == "vehicle_stop":
                    code = self._why_ev_stops()
                self._record_stop(code, now)
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

    def _enter_session_setup(self, now: float) -> None:
        self.deadlines.cancel("communication_setup")
        offer = AppProtocol(int(self.harness.line(APP_PROTOCOL_LINE, AppProtocol.DIN70121)))
        if not offer & AppProtocol.DIN70121:  # §4 #1: supportedAppProtocolRes Failed_NoNegotiation
            self._go("session_setup", now, f"supportedAppProtocol: {app_protocol_text(offer)}")
            self.stop_detail = f"it offers {app_protocol_text(offer)}; this charger speaks DIN 70121 only"
            self._stop("no_common_protocol", now)
            return
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
        if answered and self.stop_reason is None and self.evse.pilot.state in C_LIKE:
            self.deadlines.cancel("cp_detection")
            self._go("cp_c", now, f"CP {self.evse.pilot.label} ({self.evse.pilot.high_v:.1f} V), locking")
            self.deadlines.set("lock", now + self.config.lock_time)
            self.deadlines.set("sequence", now + self.t["sequence"])

    def _enter_cable_check(self, now: float) -> None:
        self._go("cable_check", now, f"isolation test at {self.test_voltage:g} V")
        inlet = self.evse.inlet_voltage()
        if inlet >= T.SAFE_V:  # §2: the EV switches to C only with its contactors open
            self._welded(now, f"inlet at {inlet:.0f} V at CableCheckReq (relays open)")
            return
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

    def _enter_session_stop(self, now: float) -> None:
        self._go("session_stop", now, "SessionStopReq")
        self._answer(now, wait=False)
        self._end_supervision()

    def _tick(self, now: float) -> None:
        self.evse.advance(now)
        self.evse.publish()
        self.evse.measure()
        stage = self.stage
        if stage in SUPERVISED and not self._pilot_ok(now):
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
            if self.evse.pilot.state in C_LIKE and self.request == Request.CURRENT_DEMAND:
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

    def _on_deadline(self, name: str, now: float) -> None:
        stage = self.stage
        if name.startswith("rx:") and stage in SUPERVISED:
            code, self.stop_detail = self._rx_lost(name[3:], now)
            self._stop(code, now)
        elif name == "alive" and stage in SUPERVISED and self._status_at > self._advanced_at:
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
        elif name == "sequence" and stage in SUPERVISED:
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
            inlet = self.evse.inlet_voltage()
            if not self.evse.relays and self._ev_contactors_open():  # the voltage is the battery's
                self._welded(now, f"inlet still {inlet:.0f} V with the relays and the EV contactors open")
            self._note_shutdown_fault("output_not_discharged", now)
