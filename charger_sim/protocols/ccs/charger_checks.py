"""What the CCS bridge charger watches: the vehicle's frames (validity), its pilot, plug and DC_EVStatus,
the insulation monitor and the welding check.  § numbers refer to the CCS fact sheet.
"""

from __future__ import annotations

import logging
import math

from ...codec import Value
from . import timing as T
from .bridge import (
    VEHICLE_FRAMES,
    ContactorState,
    EvErrorCode,
    EvseStatusCode,
    IsolationStatus,
    number,
    truth,
)
from .charger_base import ChargerBase
from .electrical import CpState, PpCode, pp_ok
from .evse import ohm_text
from .states import ACTIVE, ENDING, POWER, REQUIRED, Stage
from .stops import EV_ERRORS, REASONS

log = logging.getLogger(__name__)


# Stages in which the vehicle reports the result of its welding check (§4 #12-13).
AFTER_POWER = frozenset((*ENDING, Stage.SESSION_STOP, Stage.UNLOCK, Stage.ERROR))
# Stages with the output live (relays closed onto the cable): a PP loss there is an emergency (§3, §8).
LIVE = frozenset((Stage.CABLE_CHECK, Stage.PRECHARGE, *POWER))
_FLAGS = frozenset(("EvReady", "EvChargingComplete", "EvBulkChargingComplete", "EvStopRequest"))
_RX_KEY = {name: f"rx:{name}" for name in VEHICLE_FRAMES}  # receive-timeout deadline names
# (message, stage) -> the signals states.REQUIRED asks of it there
_NEEDED: dict[tuple[str, Stage], tuple[str, ...]] = {
    (name, stage): tuple(signal for signal, stages in REQUIRED.get(name, ()) if stage in stages)
    for name in VEHICLE_FRAMES
    for stage in Stage
}


class ChargerChecks(ChargerBase):
    """Supervision on top of :class:`.charger_base.ChargerBase`; see :class:`.charger.CcsCharger`."""

    # ---- the vehicle's frames (§9) -----------------------------------------------------------------
    def _missing(self, name: str, values: dict[str, Value]) -> str:
        """What ``values`` lacks of the signals the stage needs (states.REQUIRED): '' if nothing."""
        needed = _NEEDED[name, self.stage]
        if not needed:
            return ""
        message = self._msg[name]
        for signal in needed:
            if number(message, values, signal) is None:
                return f"{signal} not available (SNA)"
            if signal in _FLAGS and truth(values[signal]) is None:
                return f"{signal} Invalid"
        return ""

    def _unusable(self, name: str, why: str) -> None:
        """A vehicle frame that cannot be used: counted, remembered, otherwise not received."""
        self.bad_frames += 1
        if name not in self._bad:
            log.info("unusable %s frame: %s", name, why)
        self._bad[name] = why

    def _arm_rx(self, name: str, now: float) -> None:
        """A usable frame: (re)start its receive timeout; the first one starts all four (§9)."""
        self._rx_at[name] = now
        if self._bad:
            self._bad.pop(name, None)
        deadline = now + self.t["rx_timeout"]
        self.deadlines.set(_RX_KEY[name], deadline)
        if not self._rx_armed:
            self._rx_armed = True
            for key in _RX_KEY.values():
                if key not in self.deadlines:
                    self.deadlines.set(key, deadline)

    def _rx_lost(self, name: str, now: float) -> tuple[str, str]:
        """(stop code, detail) for vehicle message ``name`` without a usable frame for rx_timeout."""
        timeout = self.t["rx_timeout"]
        if name in self._bad:
            frame = self.codec.message(name)
            return "invalid_frame", (
                f"{name} (0x{frame.frame_id:03X}) unusable for {timeout:g} s: {self._bad[name]}"
            )
        lost = [n for n in VEHICLE_FRAMES if now - self._rx_at.get(n, -math.inf) >= timeout - 1e-6]
        if len(lost) == len(VEHICLE_FRAMES):
            return "can_timeout", f"no vehicle frame for {timeout:g} s ({', '.join(lost)})"
        frame = self.codec.message(name)
        return "can_timeout", f"{name} (0x{frame.frame_id:03X}) missing for {timeout:g} s"

    def _alive_jumped(self, now: float) -> None:
        """§9: a counter jump of more than one lost frame (replayed or stale frames) is flagged, not fatal."""
        log.info("%.3f EvAliveCounter jumped (%d so far)", now, self.alive.jumps)
        if "alive_counter_jump" not in self.faults:
            self.faults.append("alive_counter_jump")

    # ---- the welding check (§4 #12, §7) ------------------------------------------------------------
    def _ev_contactors_open(self) -> bool:
        values = self.ev.get("EvStatus")
        state = None if values is None else values.get("EvContactorState")
        return state in (ContactorState.OPEN, ContactorState.ERROR)

    def _welding_checked(self, now: float) -> None:
        """The EV ends WeldingDetection: the charger's own check on the present voltage it reported."""
        inlet = self.evse.inlet_voltage()
        if inlet >= T.SAFE_V and self._ev_contactors_open():
            self._welded(now, f"inlet still {inlet:.0f} V after WeldingDetection with the EV contactors open")

    def _welded(self, now: float, detail: str) -> None:
        """The vehicle's contactors are welded: the welding fault becomes the reason of a normal end (a
        fault already being the reason, it is noted); in a stage still active, the charger stops."""
        code = "contactor_welded"
        if self.stage in ACTIVE:
            self.stop_detail = detail
            self._stop(code, now)
            return
        if self.stop_reason is not None and self.stop_reason.code == code:
            return
        log.info("%.3f contactor welded: %s", now, detail)
        if self.stop_reason is None or self.stop_reason.normal:
            self.stop_reason = REASONS[code]
            self.stop_stage = self.stop_stage or self.stage
            self.stop_detail = detail
        elif code not in self.faults:
            self.faults.append(code)
        self.status_code = EvseStatusCode.SHUTDOWN

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
        if code == "pp_invalid" and self.stage in LIVE:
            code = "pp_lost"
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

    def _why_ev_stops(self) -> str:
        """PowerDelivery(ReadyToCharge = false) in the current demand loop: a normal end, or (§8) an EV
        error code or EVReady = false sent with it: then the EV stopped on a fault."""
        code = self._ev("EvStatus", "EvErrorCode")
        if code is not None and code != EvErrorCode.NO_ERROR:
            return EV_ERRORS.get(int(code), "ev_error_reserved")
        if self._flag("EvReady") is False:
            soc = self._ev("EvStatus", "EvSoc")
            self.stop_detail = f"PowerDelivery(ReadyToCharge = false) with EVReady false at {soc or 0:g} %"
            return "ev_not_ready"
        return "vehicle_stop"

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

    def _isolation_level(self) -> IsolationStatus:
        return self.evse.isolation_level(self.test_voltage or self.config.max_voltage)
