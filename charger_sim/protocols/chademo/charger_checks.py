"""What the CHAdeMO charger supervises besides its sequence: the vehicle's 0x102 (parsed once per
distinct frame), its control lines (the plug, pin 7; the permission line k, pin 4), the plausibility of
its requests, the insulation monitor while the relays are closed, and welded contactors.

:class:`ChargerChecks` is the base of :class:`.charger.ChademoCharger`, which owns the state these
methods read and the stop path they call.  Section numbers refer to the CHAdeMO fact sheet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...codec import Value
from ...plant.harness import Harness
from ..base import Core, Deadlines, StopReason
from . import supervision as S
from . import timing as T
from .states import Stage
from .stops import REASONS

if TYPE_CHECKING:
    from .charger import ChademoChargerConfig

log = logging.getLogger(__name__)

FAULT_BITS = (
    ("FaultOverVoltage", "vehicle_over_voltage"),
    ("FaultUnderVoltage", "vehicle_under_voltage"),
    ("FaultCurrentDeviation", "vehicle_current_deviation"),
    ("FaultHighTemperature", "vehicle_high_temperature"),
    ("FaultVoltageDeviation", "vehicle_voltage_deviation"),
    ("ShiftPosition", "vehicle_shift_position"),
    ("ChargingSystemFault", "vehicle_system_fault"),
)

BEFORE_CHARGING = (
    Stage.WAKE_UP,
    Stage.NEGOTIATION,
    Stage.INSULATION_TEST,
    Stage.CONTACTORS,
    Stage.PRECHARGE,
)
ACTIVE = (*BEFORE_CHARGING, Stage.CHARGING)
RELAYS_CLOSED = (Stage.INSULATION_TEST, Stage.CONTACTORS, Stage.PRECHARGE, Stage.CHARGING)


@dataclass(frozen=True, slots=True)
class Control:
    """The fields of one 0x102 the charger acts on, read once per distinct frame."""

    protocol: int
    fault: str | None  # first fault flag set (stop reason code), in FAULT_BITS order
    enabled: int
    stop_before_charging: bool
    contactor_open: bool
    welding_done: bool  # ContactorOpen set (read with default 0, unlike contactor_open's 1)
    system_fault: bool  # 102.5.2 on its own (the welding check's verdict, whatever else is set)
    request: int | float
    target: int | float

    @staticmethod
    def of(v: dict[str, Value]) -> Control:
        fault = next((reason for signal, reason in FAULT_BITS if v.get(signal, 0)), None)
        return Control(
            protocol=int(v.get("ProtocolNumberEV", 0)),
            fault=fault,
            enabled=int(v.get("ChargingEnabled", 0)),
            stop_before_charging=bool(v.get("StopBeforeCharging", 0)),
            contactor_open=bool(v.get("ContactorOpen", 1)),
            welding_done=bool(v.get("ContactorOpen", 0)),
            system_fault=bool(v.get("ChargingSystemFault", 0)),
            request=v.get("ChargeCurrentRequest", 0),
            target=v.get("TargetBatteryVoltage", 0),
        )


class ChargerChecks(Core):
    """Line supervision and plausibility on the charger's state (see :class:`.charger.ChademoCharger`)."""

    stage: Stage
    harness: Harness
    config: ChademoChargerConfig
    deadlines: Deadlines
    vehicle: dict[int, dict[str, Value]]
    flags: dict[str, int]
    faults: list[str]
    stop_reason: StopReason | None
    stop_detail: str
    stop_stage: Stage | None
    frames_received: int
    _ctl: Control | None
    _lines: S.LineWatch
    _k_opened_at: tuple[float, float, bool] | None  # k opened while 102.5.0 = 1: (time, level, 0x102 seen)
    _bad: dict[int, tuple[int, int]]  # unusable vehicle frames: ID -> (count, last DLC)
    _ins_fault_ohm: float
    _ins_warn_ohm: float

    def _begin_stop(self, code: str, now: float, detail: str = "") -> None:
        raise NotImplementedError

    def _welding_checked(self, now: float, detail: str = "vehicle contactors open") -> None:
        raise NotImplementedError

    def _supervise(self, now: float) -> None:
        """A watched line flipped: the plug (pin 7, §3) and the permission line k (pin 4, §8)."""
        levels = self._lines.sample()
        if self._k_opened_at is not None and S.line_on(levels["k"]):
            self._k_confirm(now, None)  # k closed again before the vehicle's stop showed: a bounce
        stage = self.stage
        if stage not in ACTIVE:
            return
        if not S.line_on(levels["proximity"]):
            self.stop_detail = S.describe_level("proximity (pin 7)", levels["proximity"])
            self._begin_stop("proximity_lost", now)
            if stage is Stage.WAKE_UP and not self.frames_received:
                self.stop_stage = Stage.IDLE  # the plug check of step 1 failed before the vehicle woke
        elif stage in RELAYS_CLOSED and not S.line_on(levels["k"]):
            self._k_opened(now)

    def _k_opened(self, now: float) -> None:
        """§8: k opening withdraws the permission: stop at once.  A vehicle withdraws k and 102.5.0
        together; while 0x102 still permits, the 0x102s of the next K_CONFIRM_S say which it was."""
        level = self.harness.line("k")
        self._begin_stop("vehicle_stop", now, S.describe_level("k (pin 4)", level))
        if self._ctl is not None and self._ctl.enabled:
            self._k_opened_at = (now, level, False)
            self.deadlines.set("k_confirm", now + S.K_CONFIRM_S)

    def _k_confirm(self, now: float, c: Control | None, *, final: bool = False) -> None:
        """k opened while 102.5.0 = 1: a 0x102 arrived (``c``), k moved, or the window ended (``final``).

        The vehicle's own stop shows 102.5.0 = 0 (or a fault flag) within the window; k closing again
        (a bouncing contact) or 102.5.0 still 1 when it ends is a fault of the k line (109.5.4)."""
        assert self._k_opened_at is not None
        since, level, heard = self._k_opened_at
        reclosed = S.line_on(self.harness.line("k"))
        code: str | None = None
        if c is not None and c.fault is not None:
            code = c.fault
        elif c is not None and not c.enabled:
            pass  # the vehicle's own stop: k and 102.5.0 withdrawn together (§8)
        elif reclosed or final:
            code = "k_line_fault"
            if reclosed:
                after = f"closed again {now - since:.2f} s later with 102.5.0 = 1 (contact bounce)"
            elif heard or c is not None:
                after = f"102.5.0 still 1 {now - since:.2f} s later"
            else:
                after = "no 0x102 since"
            self.stop_detail = f"{S.describe_level('k (pin 4)', level)} at {since:.2f} s, {after}"
        else:
            self._k_opened_at = (since, level, True)  # 102.5.0 still 1: wait for the window to end
            return
        self._k_opened_at = None
        self.deadlines.cancel("k_confirm")
        if code is not None:
            self.stop_reason = REASONS[code]
            self.flags["StatusSystemMalfunction"] = 1  # §8: a vehicle-side fault, 109.5.4

    def _permission_timeout(self, now: float) -> None:
        """T1 ran out in negotiation (§7 step 4): name the half of the permission that was missing."""
        c, k = self._ctl, self.harness.line("k")
        t1 = f"T1 = {T.limit('permission'):g} s"
        if c is not None and c.enabled and 0x100 not in self.vehicle:  # §7 step 1: 0x100 never usable
            self.stop_detail = S.missing_frame(0x100, f"(charge limits) within {t1}", self._bad.get(0x100))
            self._begin_stop("can_timeout", now)
        elif c is not None and c.enabled and not S.line_on(k):
            self.stop_detail = f"102.5.0 = 1 but {S.describe_level('k (pin 4)', k)} until {t1}"
            self._begin_stop("k_line_fault", now)
        else:
            self._begin_stop("no_permission", now)

    def _is_implausible(self, c: Control) -> bool:
        """§5.3/§5.5: 102.1-2 above 108.1-2, or 102.3 above 108.3.  With dynamic control (§6.3) 108.3
        may fall under a request the vehicle has not lowered yet: the output is clamped, no stop."""
        cfg = self.config
        return c.target > cfg.max_voltage or (c.request > cfg.max_current and not cfg.dynamic_control)

    def _implausible(self, now: float, c: Control) -> None:
        """§5.3, §5.5: a request above what 0x108 announced; the output never followed it."""
        cfg = self.config
        why = S.implausible(float(c.request), float(c.target), cfg.max_current, cfg.max_voltage)
        self.stop_detail = why or ""
        self._begin_stop("implausible_request", now)

    def _monitor_insulation(self, now: float) -> None:
        """IEC 61851-23 insulation monitoring while the relays are closed: < 100 ohm/V stops, < 500 warns."""
        r = self.harness.insulation_resistance_ohm
        if r < self._ins_fault_ohm:
            self.stop_detail = (
                f"insulation monitoring: {S.ohm_text(r)} below {S.ohm_text(self._ins_fault_ohm)} "
                f"({self.config.insulation_threshold_ohm_per_v:g} ohm/V at {self.config.test_voltage:g} V)"
            )
            self._begin_stop("insulation_fault", now)
        elif "insulation_warning" not in self.faults:
            self.faults.append("insulation_warning")
            log.warning("%.3f insulation %s in the warning band", now, S.ohm_text(r))

    def _welded(self, now: float, detail: str) -> None:
        """§7 step 6 / T9, §10: the battery stays on the connector with the vehicle's contactors open."""
        self.faults.append("contactor_welded")
        if self.stage in ACTIVE:
            self.stop_detail = detail
            self._begin_stop("contactor_welded", now)
            return
        if self.stop_reason is None or self.stop_reason.normal:
            self.stop_reason, self.stop_detail = REASONS["contactor_welded"], detail
        self.flags["StatusSystemMalfunction"] = 1
        self._welding_checked(now, "welding check failed: contactors welded")
