"""CHAdeMO charger core (sans-I/O): d1/d2/lock, insulation test, 0x108/0x109 every 100 ms, current
control, every stop path and welding detection.  Section numbers refer to the CHAdeMO fact sheet."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from ...codec import Codec, Value, load_dbc
from ...errors import DecodeError, Origin
from ...frames import Frame
from ...plant.harness import Harness
from ...plant.power import Mode, PowerStage, PowerStageSpec
from ..base import Cyclic, Deadlines, Outcome, Role, SessionEnded, Snapshot, StageChanged, StopReason
from ..machine import StageMachine
from . import supervision as S
from . import timing as T
from .charger_checks import ACTIVE as _ACTIVE
from .charger_checks import FAULT_BITS, ChargerChecks
from .charger_checks import RELAYS_CLOSED as _RELAYS_CLOSED
from .charger_checks import Control as _Control
from .states import STEP, TRANSITIONS, Stage
from .stops import REASONS

log = logging.getLogger(__name__)

_FAULT_BITS = FAULT_BITS  # 102.4/102.5 fault flags -> stop reasons (the diagnosers read it from here)
_ACTIVE_OR_STOPPING = frozenset((*_ACTIVE, Stage.STOPPING))
_STOPPED = (Stage.STOPPING, Stage.WELDING_CHECK, Stage.SHUTDOWN, Stage.DONE)
_CAN_LOSS_S = T.limit("can_loss")


@dataclass(frozen=True, slots=True)
class ChademoChargerConfig:
    max_voltage: float = 500.0
    max_current: float = 125.0
    max_power: float = 62_500.0
    min_voltage: float = 50.0
    protocol_number: int = 2
    welding_detection: bool = True
    insulation_test_voltage: float | None = None  # default min(500 V, max_voltage)
    insulation_threshold_ohm_per_v: float = T.INSULATION_OHM_PER_V
    max_charge_time_s: float | None = None  # the charger's own limit on top of the vehicle's
    lock_before_insulation: bool = True  # 0x24 during the test (EVgo) rather than 0x20 (ZE1 capture)
    honour_stop_before_charging: bool = True
    current_slew_a_per_s: float = T.CURRENT_SLEW_A_PER_S
    dynamic_control: bool = False  # declare 0x118 DynamicControl

    def __post_init__(self) -> None:
        if not 0 < self.max_voltage <= 1000:
            raise ValueError("max_voltage must be in (0, 1000] V")
        if not 0 < self.max_current <= 255:
            raise ValueError("max_current must be in (0, 255] A (0x108 byte 3)")
        if not 0 <= self.protocol_number <= 3:
            raise ValueError("protocol_number must be 0..3")
        if self.max_power <= 0:
            raise ValueError("max_power must be positive")

    @property
    def test_voltage(self) -> float:
        if self.insulation_test_voltage is not None:
            return min(self.insulation_test_voltage, self.max_voltage)
        return min(T.INSULATION_TEST_V, self.max_voltage)

    def power_spec(self) -> PowerStageSpec:
        return PowerStageSpec(
            max_voltage=self.max_voltage,
            max_current=self.max_current,
            max_power=self.max_power,
            min_voltage=self.min_voltage,
            current_slew_a_per_s=self.current_slew_a_per_s,
        )


class ChademoCharger(ChargerChecks):
    """The charger side of one CHAdeMO session (its supervision: :mod:`.charger_checks`)."""

    role = Role.CHARGER

    def __init__(self, config: ChademoChargerConfig, harness: Harness, codec: Codec | None = None) -> None:
        super().__init__()
        self.config = config
        self.harness = harness
        self.codec = codec or load_dbc("chademo")
        self._m108 = self.codec.message("ChargerCapability")
        self._m109 = self.codec.message("ChargerStatus")
        self._m118 = self.codec.message("ChargerExtendedFunctions")
        # Compiled frame builders (generated from the DBC): now + positional values, memoised.
        self._enc108 = self._m108.framer(
            "WeldingDetectionSupport", "AvailableOutputVoltage", "AvailableOutputCurrent", "ThresholdVoltage"
        )
        self._enc109 = self._m109.framer(
            "ProtocolNumberEVSE",
            "PresentOutputVoltage",
            "PresentOutputCurrent",
            "StatusCharging",
            "StatusChargerMalfunction",
            "StatusConnectorLocked",
            "StatusBatteryIncompatible",
            "StatusSystemMalfunction",
            "StatusStopControl",
            "RemainingTime10s",
            "RemainingTimeMin",
            DischargeCompatible=0,
        )
        self._rx = {
            0x100: self.codec.message("VehicleChargeLimits"),
            0x101: self.codec.message("VehicleChargeTime"),
            0x102: self.codec.message("VehicleChargeControl"),
        }
        self.sm = StageMachine(Stage, TRANSITIONS, Stage.IDLE)
        self.stage: Stage = Stage.IDLE  # mirrors self.sm (plain attribute: read on every frame)
        self.power = PowerStage(config.power_spec())
        self.deadlines = Deadlines()
        self.cyclic: Cyclic | None = None
        self.vehicle: dict[int, dict[str, Value]] = {}
        self._raw: dict[int, bytes] = {}  # last decoded bytes per ID: an unchanged frame is not re-decoded
        self._ctl: _Control | None = None  # the last 0x102, parsed
        self._threshold = float(config.max_voltage)  # min(100.4-5 max battery voltage, available)
        self._vehicle_limit: float | None = None  # 0x101 charge time limit, s
        self._limit_in_10s = False  # 0x101 uses 10 s units (101.1 != 0xFF)
        self.protocol: int | None = None
        self.flags = {
            "StatusCharging": 0,
            "StatusChargerMalfunction": 0,
            "StatusConnectorLocked": 0,
            "StatusBatteryIncompatible": 0,
            "StatusSystemMalfunction": 0,
            "StatusStopControl": 1,
        }
        self.stop_reason: StopReason | None = None
        self.stop_detail = ""
        self.stop_stage: Stage | None = None
        self.faults: list[str] = []
        self.contactors_were_closed = False
        self.charge_start: float | None = None
        self.charge_end: float | None = None
        self.time_limit_s: float | None = None
        self.insulation_phase = ""
        self.insulation_result_ohm: float | None = None
        self.frames_sent = 0
        self._stop_frames_sent = 0  # cycle frames sent since the stop began (0x25 shown at least once)
        self.frames_received = 0
        self.bad_frames = 0
        self._last_enabled = 0
        self._now = 0.0
        # line supervision (supervision.py): k (pin 4) and the plug (pin 7; no line = no sensor: plugged)
        self._lines = S.LineWatch(harness, {"k": 0.0, "proximity": 1.0})
        self._k_opened_at: tuple[float, float, bool] | None = None  # k opened with 102.5.0 = 1 (see checks)
        self._bad: dict[int, tuple[int, int]] = {}  # unusable vehicle frames: ID -> (count, last DLC)
        self._ins_fault_ohm = config.insulation_threshold_ohm_per_v * config.test_voltage
        self._ins_warn_ohm = max(self._ins_fault_ohm, T.INSULATION_WARN_OHM_PER_V * config.test_voltage)
        self._welding_fault_seen = False  # 102.5.2 already set when the welding check began
        self._welding_from = 0.0  # when the current stopped (the welding check began)
        self._locked_out = False  # output still live after the stop: connector stays locked, session over

    # ---- helpers ---------------------------------------------------------------------------
    def _go(self, trigger: str, now: float, detail: str = "") -> None:
        stage: Stage = self.sm.fire(trigger)
        self.stage = stage
        log.debug("%.3f charger %s -> %s", now, trigger, stage.value)
        self.emit(StageChanged(now, Role.CHARGER, stage.value, STEP[stage], detail))

    def _v(self, frame_id: int, signal: str, default: Value = 0) -> Value:
        values = self.vehicle.get(frame_id)
        return default if values is None else values.get(signal, default)

    def _set_line(self, name: str, on: bool) -> None:
        self.harness.set(name, on)

    def _status_byte(self) -> int:
        f = self.flags
        return (
            f["StatusCharging"]
            | f["StatusChargerMalfunction"] << 1
            | f["StatusConnectorLocked"] << 2
            | f["StatusBatteryIncompatible"] << 3
            | f["StatusSystemMalfunction"] << 4
            | f["StatusStopControl"] << 5
        )

    # ---- inputs ----------------------------------------------------------------------------
    def start(self, now: float) -> list[Frame]:
        """Operator start with the plug detected: close d1 (§7 step 1)."""
        self._now = now
        self.power.reset_clock(now)
        plug = self._lines.sample()["proximity"]
        if not S.line_on(plug):  # §3 pin 7: no plug detected, step 1 fails; d1 stays open
            self.stop_detail = S.describe_level("proximity (pin 7)", plug)
            self._go("abandon", now, "no plug detected (proximity, pin 7)")
            self._finish(now, "proximity_lost")
            return []
        self._set_line("d1", True)
        self._go("start", now, "d1 closed")
        self.deadlines.set("vehicle_can", now + T.limit("vehicle_can"))
        self.deadlines.set("permission", now + T.limit("permission"))
        return []

    def receive(self, frame: Frame, now: float) -> list[Frame]:
        self._now = now
        if frame.is_extended_id:
            return []
        fid = frame.arbitration_id
        codec = self._rx.get(fid)
        stage = self.stage
        if codec is None or stage is Stage.DONE or self.finished:
            return []
        data = frame.data
        if data != self._raw.get(fid):  # an unchanged frame is not decoded again
            try:
                values = codec.decode(data)
            except DecodeError as err:  # §2: DLC 8; an unusable frame counts as not received
                self.bad_frames += 1
                self._bad[fid] = (self._bad.get(fid, (0, 0))[0] + 1, len(data))
                log.info("ignored vehicle frame: %s", err)
                return []
            self._store(fid, data, values)
        self.frames_received += 1
        if stage is Stage.WAKE_UP:
            self._vehicle_seen(now)
            stage = self.stage
        if fid == 0x102:
            if stage in _ACTIVE_OR_STOPPING:
                self.deadlines.set("can_loss", now + _CAN_LOSS_S)
            self._on_102(now)
        return []

    def _store(self, fid: int, data: bytes, values: dict[str, Value]) -> None:
        """Keep a newly decoded vehicle frame and what the charger derives from it."""
        self._raw[fid] = data
        self.vehicle[fid] = values
        if fid == 0x102:
            self._ctl = _Control.of(values)
        elif fid == 0x100:
            vmax = values.get("MaxBatteryVoltage", 0)
            self._threshold = min(float(vmax), self.config.max_voltage) if vmax else self.config.max_voltage
        elif fid == 0x101:
            self._vehicle_limit = self._vehicle_time_limit()
            self._limit_in_10s = int(values.get("MaxChargeTime10s", 0xFF)) != 0xFF

    def on_timer(self, now: float) -> list[Frame]:
        self._now = now
        if self._lines.changed():
            self._supervise(now)
        for name in self.deadlines.due(now):
            self._on_deadline(name, now)
        cyclic = self.cyclic
        if cyclic is not None and now + 1e-9 >= cyclic.next_at:
            self._tick(now)
            out = self._cycle_frames(now)
            if self.stage is Stage.DONE:
                self.cyclic = None
                self.finished = True
            else:
                cyclic.advance(now)
            return out
        if self.stage is not Stage.DONE:
            self._tick(now)
        return []

    def next_deadline(self) -> float | None:
        if not self.finished and self._lines.changed():  # a watched line flipped: react now (input edge)
            return self._now
        nxt = self.deadlines.next()
        cyclic = self.cyclic
        if cyclic is not None and (nxt is None or cyclic.next_at < nxt):
            return cyclic.next_at
        return nxt

    def request_stop(self, now: float, reason: str = "operator_stop") -> list[Frame]:
        self._now = now
        if self.stage in _ACTIVE:
            self._begin_stop(reason, now)
        elif self.stage is Stage.IDLE:
            self._go("abandon", now, "stopped before start")
            self._finish(now, reason)  # never started: nothing on the bus to undo; stays silent
        return []

    def inject_power_fault(self, now: float) -> None:
        """Charger power-stage fault (fault catalogue): output off, malfunction stop."""
        self.power.faulted = True
        if self.stage in _ACTIVE:
            self._begin_stop("charger_malfunction", now)

    # ---- vehicle frames ----------------------------------------------------------------------
    def _vehicle_seen(self, now: float) -> None:
        self.deadlines.cancel("vehicle_can")
        self._go("vehicle_seen", now, "vehicle CAN frames received")
        self.cyclic = Cyclic(T.limit("cycle"), now)
        self.deadlines.set("can_loss", now + T.limit("can_loss"))

    def _on_102(self, now: float) -> None:
        c = self._ctl
        assert c is not None
        stage = self.stage
        self.protocol = protocol = min(c.protocol, self.config.protocol_number)
        if c.fault is not None and stage in _ACTIVE:
            self._begin_stop(c.fault, now)
            return
        if self._k_opened_at is not None:
            self._k_confirm(now, c)
        enabled = c.enabled
        was_enabled, self._last_enabled = self._last_enabled, enabled
        if stage is Stage.CHARGING:  # the common case first
            if was_enabled and not enabled:
                self._begin_stop("vehicle_stop", now)
            elif self._is_implausible(c):
                self._implausible(now, c)
            else:  # _follow_request, inlined
                power = self.power
                power.advance(now, self.harness.dc_link_voltage)
                power.set_current(min(float(c.request), self.config.max_current))
        elif stage is Stage.NEGOTIATION:
            self._check_permission(now)
        elif stage in _RELAYS_CLOSED:
            if was_enabled and not enabled:
                self._begin_stop("vehicle_stop", now)
                return
            if c.stop_before_charging and self.config.honour_stop_before_charging:
                self._begin_stop("vehicle_stop_before_charging", now)
                return
            if stage is Stage.CONTACTORS and protocol >= 2 and not c.contactor_open:
                self._contactors_closed(now)
            elif stage is Stage.PRECHARGE and int(c.request) > 0:
                self._start_charging(now)
        elif stage is Stage.WELDING_CHECK:
            if c.system_fault and not self._welding_fault_seen and self._output_held(now):
                self._welded(now, "the vehicle's welding check failed (102.5.2) with the output still live")
            elif protocol >= 2 and c.welding_done:
                self._welding_checked(now)

    def _check_permission(self, now: float) -> None:
        if not (S.line_on(self.harness.line("k")) and self._ctl is not None and self._ctl.enabled):
            return
        if 0x100 not in self.vehicle:
            return  # limits not known yet: wait for the next cycle
        self.deadlines.cancel("permission")
        target = float(self._v(0x102, "TargetBatteryVoltage"))
        vmax = float(self._v(0x100, "MaxBatteryVoltage"))
        if target > self.config.max_voltage:
            self.stop_detail = (
                f"vehicle target {target:g} V is above the charger's available {self.config.max_voltage:g} V"
            )
            self._begin_stop("battery_incompatible", now)
            return
        if target < self.config.min_voltage or vmax < self.config.min_voltage:
            self.stop_detail = (
                f"vehicle target {target:g} V is below the charger's minimum {self.config.min_voltage:g} V"
            )
            self._begin_stop("battery_incompatible", now)
            return
        if self.protocol is not None and self.protocol < 1:
            self.stop_detail = "vehicle announces a protocol number before CHAdeMO 0.9"
            self._begin_stop("battery_incompatible", now)
            return
        self._go("permitted", now, "k closed and 102.5.0 = 1")
        if self.config.lock_before_insulation:
            self.flags["StatusConnectorLocked"] = 1
        self.power.advance(now, self.harness.dc_link_voltage)
        if self.power.voltage > T.OUTPUT_SAFE_V:  # §7 step 6: the output must be < 10 V before the test
            self.flags["StatusConnectorLocked"] = 1  # live connector: keep it locked
            volts = f"{self.power.voltage:.0f} V"
            self._welded(now, f"{volts} on the output before the insulation test, vehicle contactors open")
            return
        self.insulation_phase = "ramp"
        self.power.set_voltage(self.config.test_voltage)
        self.deadlines.set("insulation", now + T.limit("insulation"))

    # ---- periodic work -----------------------------------------------------------------------
    def _tick(self, now: float) -> None:
        power, harness = self.power, self.harness
        power.advance(now, harness.dc_link_voltage)
        harness.output_current = power.current
        harness.output_voltage = power.voltage
        stage = self.stage
        if stage is Stage.CHARGING:
            if power.voltage >= self._threshold and power.current > 0:
                self._begin_stop("threshold_voltage", now)
            elif harness.line("k") < S.LINE_ON:
                self._k_opened(now)
            elif harness.insulation_resistance_ohm < self._ins_warn_ohm:
                self._monitor_insulation(now)
        elif stage is Stage.NEGOTIATION:
            self._check_permission(now)
        elif stage in _RELAYS_CLOSED and harness.line("k") < S.LINE_ON:
            # §8: k opening withdraws the permission at any point after it was given, not only
            # while charging (found by charger-sim fuzz: d2 used to close with k open)
            self._k_opened(now)
        elif stage is Stage.INSULATION_TEST:
            self._insulation_step(now)
        elif stage in _RELAYS_CLOSED and harness.insulation_resistance_ohm < self._ins_warn_ohm:
            self._monitor_insulation(now)  # contactors, precharge: the monitor runs from the test on
        elif stage is Stage.STOPPING:
            # a stop while delivering shows 0x25 on the bus for at least one cycle, as real chargers do
            shown = not self.flags["StatusCharging"] or self._stop_frames_sent > 0
            if self.power.current <= T.STOP_CURRENT_A and shown:
                self.deadlines.cancel("stop_current")
                self.flags["StatusCharging"] = 0
                self.power.set_off()
                self._welding_fault_seen = self._ctl is not None and self._ctl.system_fault
                self._welding_from = now
                if self.contactors_were_closed:
                    self._go("current_stopped", now, "output current <= 5 A")
                    if self.protocol is not None and self.protocol >= 2:
                        self.deadlines.set("welding", now + T.limit("welding"))
                    else:
                        self.deadlines.set("welding_fixed", now + T.limit("welding_fixed_wait"))
                else:
                    self._go("no_welding_check", now, "contactors never closed")
                    self._enter_shutdown(now)
        elif stage is Stage.WELDING_CHECK:
            c = self._ctl
            if self.protocol is not None and self.protocol >= 2 and c is not None and c.welding_done:
                self._welding_checked(now)
        elif stage is Stage.SHUTDOWN and self._discharged():
            self.flags["StatusConnectorLocked"] = 0
            self.deadlines.cancel("unlock_wait")
            self._go("unlocked", now, "output <= 10 V, connector unlocked")
            if not self._locked_out:  # a locked-out session has ended already
                self._finish(now)

    def _output_live_now(self, now: float) -> bool:
        self.power.advance(now, self.harness.dc_link_voltage)
        return self.power.voltage > T.OUTPUT_SAFE_V

    def _output_held(self, now: float) -> bool:
        """§7 T9: with the power stage off the output is <= 10 V within 2 s of the current stopping,
        unless the battery still holds it up."""
        self.power.advance(now, self.harness.dc_link_voltage)
        late = now >= self._welding_from + T.limit("output_collapse") - 1e-9
        return late and self.power.voltage > T.OUTPUT_SAFE_V

    def _discharged(self) -> bool:  # d1 as driven: a worn pin changes what the vehicle reads, not this
        return not self.harness.lines.get("d1") and self.power.voltage <= T.OUTPUT_SAFE_V

    def _insulation_step(self, now: float) -> None:
        test_v = self.config.test_voltage
        if self.insulation_phase == "ramp" and self.power.voltage >= test_v - 1.0:
            self.insulation_phase = "measure"
            self.deadlines.set("insulation_measure", now + T.limit("insulation_settle"))
        elif self.insulation_phase == "bleed" and self.power.voltage < T.BLEED_DONE_V:
            self.insulation_phase = "done"
            self.deadlines.cancel("insulation")
            self.flags["StatusConnectorLocked"] = 1
            self._set_line("d2", True)
            self._go(
                "insulation_passed",
                now,
                f"insulation {self._ohm_text(self.insulation_result_ohm)}, d2 closed",
            )
            if self.protocol is not None and self.protocol >= 2:
                self.deadlines.set("contactors", now + T.limit("contactors"))
            else:
                self.deadlines.set("contactors_fixed", now + T.limit("contactors_fixed_wait"))

    def _insulation_measured(self, now: float) -> None:
        r = self.harness.insulation_resistance_ohm
        self.insulation_result_ohm = r
        threshold = self.config.insulation_threshold_ohm_per_v * self.config.test_voltage
        if r < threshold:
            self.stop_detail = (
                f"insulation resistance {self._ohm_text(r)} below {self._ohm_text(threshold)} "
                f"({self.config.insulation_threshold_ohm_per_v:g} ohm/V at {self.config.test_voltage:g} V)"
            )
            self._begin_stop("insulation_fault", now)
            return
        self.insulation_phase = "bleed"
        self.power.set_off()

    @staticmethod
    def _ohm_text(r: float | None) -> str:
        return S.ohm_text(r)

    def _contactors_closed(self, now: float) -> None:
        self.deadlines.cancel("contactors", "contactors_fixed")
        self.contactors_were_closed = True
        self._go("contactors_closed", now, "vehicle contactors closed")
        self.power.set_current(0.0)
        self.deadlines.set("first_request", now + T.limit("first_request"))

    def _start_charging(self, now: float) -> None:
        self.deadlines.cancel("first_request")
        self.flags["StatusCharging"] = 1
        self.flags["StatusStopControl"] = 0
        self.charge_start = now
        limit = self._vehicle_limit
        if self.config.max_charge_time_s is not None:
            limit = (
                self.config.max_charge_time_s if limit is None else min(limit, self.config.max_charge_time_s)
            )
        self.time_limit_s = limit
        if limit is not None:
            self.deadlines.set("charge_time", now + limit)
        self._go("current_requested", now, f"first request {self._v(0x102, 'ChargeCurrentRequest')} A")
        self._follow_request(now)

    def _follow_request(self, now: float) -> None:
        c = self._ctl
        if c is not None and self._is_implausible(c):
            self._implausible(now, c)
            return
        request = float(c.request) if c is not None else 0.0
        self.power.advance(now, self.harness.dc_link_voltage)  # a new setpoint applies from now on
        self.power.set_current(min(request, self.config.max_current))

    def _vehicle_time_limit(self) -> float | None:
        if 0x101 not in self.vehicle:
            return None
        t10 = int(self._v(0x101, "MaxChargeTime10s"))
        if t10 != 0xFF:
            return 10.0 * t10 if t10 else None
        tmin = int(self._v(0x101, "MaxChargeTimeMin"))
        return 60.0 * tmin if tmin else None

    def _threshold_voltage(self) -> float:
        return self._threshold

    # ---- deadlines ---------------------------------------------------------------------------
    def _on_deadline(self, name: str, now: float) -> None:
        stage = self.stage
        if name == "vehicle_can" and stage is Stage.WAKE_UP:
            self._begin_stop("vehicle_not_awake", now)
        elif name == "permission" and stage is Stage.NEGOTIATION:
            self._permission_timeout(now)
        elif name == "can_loss" and stage in _ACTIVE:
            self.stop_detail = S.missing_frame(0x102, f"for {_CAN_LOSS_S:g} s (T11)", self._bad.get(0x102))
            self._begin_stop("can_timeout", now)
        elif name == "k_confirm" and self._k_opened_at is not None:
            self._k_confirm(now, None, final=True)
        elif name == "insulation" and stage is Stage.INSULATION_TEST:
            self._begin_stop("insulation_timeout", now)
        elif name == "insulation_measure" and stage is Stage.INSULATION_TEST:
            self._insulation_measured(now)
        elif name == "contactors" and stage is Stage.CONTACTORS:
            self._begin_stop("contactor_timeout", now)
        elif name == "contactors_fixed" and stage is Stage.CONTACTORS:
            self._contactors_closed(now)
        elif name == "first_request" and stage is Stage.PRECHARGE:
            self._begin_stop("no_current_request", now)
        elif name == "charge_time" and stage is Stage.CHARGING:
            self._begin_stop("charge_time_limit", now)
        elif name == "stop_current" and stage is Stage.STOPPING:
            self.faults.append("stop_current_slow")
            log.warning(
                "current still %.1f A %.1f s after the stop", self.power.current, T.limit("stop_current")
            )
        elif name == "welding" and stage is Stage.WELDING_CHECK:
            self._note_shutdown_fault("welding_check_timeout")
            self._welding_checked(now)
        elif name == "welding_fixed" and stage is Stage.WELDING_CHECK:
            self._welding_checked(now)
        elif name == "d1_off" and stage is Stage.SHUTDOWN:
            self._set_line("d1", False)
        elif name == "unlock_wait" and stage is Stage.SHUTDOWN and self._output_live_now(now):
            # (a real-time loop woken late may find the output down already: the tick then unlocks)
            self._note_shutdown_fault("output_not_discharged")
            self.flags["StatusChargerMalfunction"] = 1
            # §7 step 14: a live connector is never unlocked.  The session ends locked (out of order);
            # the charger keeps watching and unlocks if the output ever falls below 10 V.
            self._locked_out = True
            self._finish(now)

    # ---- stop path ---------------------------------------------------------------------------
    def _begin_stop(self, code: str, now: float, detail: str = "") -> None:
        reason = REASONS[code]
        self._stop_frames_sent = 0
        stage = self.stage
        self.stop_reason = reason
        self.stop_stage = stage
        log.info("%.3f charger stop in %s: %s", now, stage.value, code)
        self.deadlines.cancel(
            "vehicle_can",
            "permission",
            "can_loss",
            "insulation",
            "insulation_measure",
            "contactors",
            "contactors_fixed",
            "first_request",
            "charge_time",
        )
        self.flags["StatusStopControl"] = 1
        if code == "battery_incompatible":
            self.flags["StatusBatteryIncompatible"] = 1
        elif code in ("charger_malfunction", "insulation_fault", "insulation_timeout", "threshold_voltage"):
            self.flags["StatusChargerMalfunction"] = 1
        elif not reason.normal and reason.origin in (Origin.VEHICLE, Origin.LINK):
            self.flags["StatusSystemMalfunction"] = 1
        if stage is Stage.CHARGING:
            self.charge_end = now
        self.power.advance(now, self.harness.dc_link_voltage)  # the ramp starts now, not at the last tick
        if self.power.mode is Mode.CURRENT:
            self.power.set_current(0.0, stopping=True)
        else:
            self.power.set_off()
        self._go("stop", now, detail or reason.cause)
        self.deadlines.set("stop_current", now + T.limit("stop_current"))
        self._tick(now)

    def _welding_checked(self, now: float, detail: str = "vehicle contactors open") -> None:
        self.deadlines.cancel("welding", "welding_fixed")
        self._go("welding_checked", now, detail)
        self._enter_shutdown(now)

    def _enter_shutdown(self, now: float) -> None:
        self._set_line("d2", False)
        self.deadlines.set("d1_off", now + T.limit("d2_to_d1"))
        self.deadlines.set("unlock_wait", now + T.limit("unlock_wait"))

    def _note_shutdown_fault(self, code: str) -> None:
        self.faults.append(code)
        if code == "welding_check_timeout":
            self.flags["StatusSystemMalfunction"] = 1  # a vehicle timeout, like T1-T4 (§8)
        if self.stop_reason is not None and self.stop_reason.normal:
            self.stop_reason = REASONS[code]

    def _finish(self, now: float, code: str | None = None) -> None:
        if code is not None:
            self.stop_reason = REASONS[code]
            self.stop_stage = Stage.IDLE
        reason = self.stop_reason or REASONS["operator_stop"]
        stage = self.stop_stage or Stage.IDLE
        completed = reason.normal and self.charge_start is not None and reason.origin is Origin.VEHICLE
        cause = reason.cause + (f": {self.stop_detail}" if self.stop_detail else "")
        self.emit(
            SessionEnded(
                now,
                Role.CHARGER,
                Outcome.COMPLETED if completed else Outcome.STOPPED,
                reason.code,
                cause,
                stage.value,
                STEP[stage],
                reason.origin,
            )
        )
        self.deadlines.clear()
        self.finished = self.cyclic is None

    # ---- frames out --------------------------------------------------------------------------
    def _cycle_frames(self, now: float) -> list[Frame]:
        if self.stage is Stage.STOPPING:
            self._stop_frames_sent += 1
        rem_10s, rem_min = self._remaining_fields(now)
        config = self.config
        f = self.flags
        f108 = self._enc108(
            now,
            1 if config.welding_detection else 0,
            round(config.max_voltage),
            round(config.max_current),
            round(self._threshold),
        )
        power = self.power
        volts, amps = round(power.voltage), round(power.current)
        f109 = self._enc109(
            now,
            config.protocol_number,
            volts if volts < 1000 else 1000,  # min(1000, volts)
            amps if amps < 255 else 255,  # min(255, amps)
            f["StatusCharging"],
            f["StatusChargerMalfunction"],
            f["StatusConnectorLocked"],
            f["StatusBatteryIncompatible"],
            f["StatusSystemMalfunction"],
            f["StatusStopControl"],
            rem_10s,
            rem_min,
        )
        out = [f108, f109]
        if self.config.dynamic_control or (self.protocol or 0) >= 3:
            out.append(
                self._m118.frame(
                    {
                        "DynamicControl": int(self.config.dynamic_control),
                        "HighCurrentControl": 0,
                        "HighVoltageControl": int(self.config.max_voltage > 500),
                    },
                    now,
                )
            )
        self.frames_sent += len(out)
        return out

    def _remaining_fields(self, now: float) -> tuple[int, int]:
        """109.6/7: 00 00 until 0x101 arrives, then 0xFF + minutes (10 s units if the vehicle uses them)."""
        limit = self.time_limit_s if self.time_limit_s is not None else self._vehicle_limit
        if limit is None:
            return 0, 0
        elapsed = 0.0 if self.charge_start is None else (self.charge_end or now) - self.charge_start
        remaining = limit - elapsed
        if not remaining > 0.0:  # max(0.0, remaining)
            remaining = 0.0
        reason = self.stop_reason
        if (
            reason is not None
            and self.stage in _STOPPED
            and (not reason.normal or reason.code == "charge_time_limit")
        ):
            remaining = 0.0
        if remaining < 1e-3:  # deadlines may fire a hair early: no phantom minute left
            remaining = 0.0
        minutes = math.ceil(remaining / 60.0)
        if minutes > 255:
            minutes = 255
        if self._limit_in_10s:
            return min(254, math.ceil(remaining / 10.0)), minutes
        return 0xFF, minutes

    # ---- views -------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        stage = self.stage
        return Snapshot(
            stage=stage.value,
            step=STEP[stage],
            values={
                "status": f"0x{self._status_byte():02X}",
                "d1": self.harness.is_on("d1"),
                "d2": self.harness.is_on("d2"),
                "k": self.harness.is_on("k"),
                "target_voltage": float(self._v(0x102, "TargetBatteryVoltage")),
                "current_request": float(self._v(0x102, "ChargeCurrentRequest")),
                "present_voltage": self.power.voltage,
                "present_current": self.power.current,
                "power_kw": self.power.voltage * self.power.current / 1000.0,
                "energy_kwh": self.power.energy_wh / 1000.0,
                "soc": float(self._v(0x102, "ChargedRate")),
                "frames_sent": self.frames_sent,
                "frames_received": self.frames_received,
                "last_fault": self.faults[-1]
                if self.faults
                else (self.stop_reason.code if self.stop_reason and not self.stop_reason.normal else ""),
            },
        )
