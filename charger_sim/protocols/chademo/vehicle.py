"""Simulated CHAdeMO vehicle (sans-I/O): a Leaf-like ECU on the shared battery model.

Timings default to the Leaf ZE1 capture (§9 of the fact sheet); quirks seen in the field are options.
Everything it reports comes from the pack model and the charger's output on the DC link.
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
from . import supervision as S
from . import timing as T

log = logging.getLogger(__name__)


class VStage(str, enum.Enum):
    ASLEEP = "asleep"
    AWAKE = "awake"
    READY = "ready"
    PERMITTED = "permitted"
    CONTACTORS_CLOSED = "contactors_closed"
    CHARGING = "charging"
    STOPPING = "stopping"
    WELDING_CHECK = "welding_check"
    DONE = "done"


V_STEP = {
    VStage.ASLEEP: 1,
    VStage.AWAKE: 3,
    VStage.READY: 4,
    VStage.PERMITTED: 2,
    VStage.CONTACTORS_CLOSED: 6,
    VStage.CHARGING: 7,
    VStage.STOPPING: 7,
    VStage.WELDING_CHECK: 7,
    VStage.DONE: 7,
}


VTransition = Transition  # the vehicle table uses the same row type


_LIVE = (VStage.AWAKE, VStage.READY, VStage.PERMITTED, VStage.CONTACTORS_CLOSED, VStage.CHARGING)
_ACTIVE = (VStage.PERMITTED, VStage.CONTACTORS_CLOSED, VStage.CHARGING)
_DEAF = (VStage.ASLEEP, VStage.DONE)
_CHARGER_CAN_LOSS_S = T.limit("vehicle_charger_can_loss")
_PROTECTIONS = (  # battery protection -> 102.4 fault flag
    ("cell_over_voltage", "FaultOverVoltage"),
    ("cell_under_voltage", "FaultUnderVoltage"),
    ("over_temperature", "FaultHighTemperature"),
)


@dataclass(frozen=True, slots=True)
class _Status:
    """The fields of one 0x109 the vehicle acts on, read once per distinct frame."""

    charging: bool  # 109.5.0 set and 109.5.5 clear
    stop_control: bool  # 109.5.5
    fault: bool  # charger malfunction, system malfunction or battery incompatible
    present_voltage: float

    @staticmethod
    def of(v: dict[str, Value]) -> _Status:
        return _Status(
            charging=bool(v.get("StatusCharging")) and not v.get("StatusStopControl"),
            stop_control=bool(v.get("StatusStopControl")),
            fault=bool(
                v.get("StatusChargerMalfunction")
                or v.get("StatusSystemMalfunction")
                or v.get("StatusBatteryIncompatible")
            ),
            present_voltage=float(v.get("PresentOutputVoltage", 0)),
        )

V_TRANSITIONS: tuple[VTransition[VStage], ...] = (
    VTransition("wake", (VStage.ASLEEP,), VStage.AWAKE, "§3: d1 wakes the vehicle ECU, CAN starts"),
    VTransition("charger_seen", (VStage.AWAKE,), VStage.READY, "§7 step 2-3: 0x108/0x109 received"),
    VTransition("permit", (VStage.READY,), VStage.PERMITTED, "§7 step 4: close k, 102.5.0 = 1"),
    VTransition("close_contactors", (VStage.PERMITTED,), VStage.CONTACTORS_CLOSED, "§7 step 7: d2 seen"),
    VTransition("request", (VStage.CONTACTORS_CLOSED,), VStage.CHARGING, "§7 step 8: 102.3 > 0"),
    VTransition("stop", _LIVE, VStage.STOPPING, "§8: 102.5.0 -> 0, request 0"),
    VTransition("open_contactors", (VStage.STOPPING,), VStage.WELDING_CHECK, "§7 step 12: current <= 5 A"),
    VTransition(
        "sleep", (*_LIVE, VStage.STOPPING, VStage.WELDING_CHECK), VStage.DONE, "§7 step 13: d1 opened"
    ),
)


@dataclass(frozen=True, slots=True)
class ChademoVehicleConfig:
    protocol_number: int = 2
    target_voltage: float | None = None  # default: pack max voltage + 10 V (Leaf: 410 V)
    max_battery_voltage: float | None = None  # default: target + 25 V (Leaf: 435 V)
    max_current: float = 125.0  # the vehicle's own limit on top of the pack's charge curve
    min_charge_current: int = 6  # 100.0 (Leaf ZE1: 6 A)
    max_charge_time_min: int = 90  # 101.2 (sent with 101.1 = 0xFF)
    target_soc: float = 80.0
    discharge_compatible: bool = False  # 102.5.7 (Leaf: 1, status 0x80 family)
    grant_permission: bool = True
    sets_contactor_flag: bool = True  # False: ZombieVerter quirk, never sets 102.5.3
    frame_period: float = 0.1  # 0.225: ZombieVerter quirk
    wake_delay: float = 0.2  # §9: 0x88 at +0.2 s
    permission_delay: float = 3.2  # §9: 0x89 at +3.4 s after d1
    contactor_delay: float = 1.2  # §9: 0x81 ~1.2 s after d2
    first_request_delay: float = 1.7  # §9: first request 1.7 s after contactors
    request_start: float = 2.0  # §9: starts at 2 A
    request_step: float = T.VEHICLE_REQUEST_STEP_A  # §9: +2 A per 100 ms
    requests_current: bool = True  # False: never requests current (EFACEC / Instavolt captures)
    stop_reaction: float = 0.27  # §9: 0x80 and request 0 ~0.27 s after 0x25
    welding_check_time: float = 2.1  # §9: 0x88 ~2.1 s after 109.5.0 clears
    insulation_resistance_ohm: float = 5.0e6  # vehicle + cable, seen by the insulation test

    def __post_init__(self) -> None:
        if not 0 <= self.protocol_number <= 3:
            raise ValueError("protocol_number must be 0..3")
        if not 0 < self.target_soc <= 100:
            raise ValueError("target_soc must be in (0, 100] %")
        if self.frame_period <= 0:
            raise ValueError("frame_period must be positive")


class ChademoVehicle(Core):
    """The vehicle side: ECU timing, 0x100/0x101/0x102 every cycle, battery on the DC link."""

    role = Role.VEHICLE

    def __init__(
        self, config: ChademoVehicleConfig, battery: Battery, harness: Harness, codec: Codec | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.battery = battery
        self.harness = harness
        self.codec = codec or load_dbc("chademo")
        self._m100 = self.codec.message("VehicleChargeLimits")
        self._m101 = self.codec.message("VehicleChargeTime")
        self._m102 = self.codec.message("VehicleChargeControl")
        self._m110 = self.codec.message("VehicleExtendedFunctions")
        # Compiled frame builders (generated from the DBC): now + positional values, memoised.
        self._enc100 = self._m100.framer(
            "MinChargeCurrent", "MaxBatteryVoltage", "ChargedRateRefConst", MinBatteryVoltage=0
        )
        self._enc101 = self._m101.framer(
            "MaxChargeTimeMin", "RatedCapacity", MaxChargeTime10s=0xFF, EstChargeTimeMin=0
        )
        self._enc102 = self._m102.framer(
            "ProtocolNumberEV",
            "TargetBatteryVoltage",
            "ChargeCurrentRequest",
            "FaultOverVoltage",
            "FaultUnderVoltage",
            "FaultCurrentDeviation",
            "FaultHighTemperature",
            "FaultVoltageDeviation",
            "ChargingEnabled",
            "ChargingSystemFault",
            "ContactorOpen",
            "DischargeCompatible",
            "ChargedRate",
            ShiftPosition=0,
            StopBeforeCharging=0,
            DynamicControlLegacy=0,
        )
        self._enc110 = self._m110.framer(DynamicControl=0, HighCurrentControl=0, HighVoltageControl=0)
        self._rx = {
            0x108: self.codec.message("ChargerCapability"),
            0x109: self.codec.message("ChargerStatus"),
        }
        self.sm = StageMachine(VStage, V_TRANSITIONS, VStage.ASLEEP)
        self.stage: VStage = VStage.ASLEEP  # mirrors self.sm
        self.deadlines = Deadlines()
        self.cyclic: Cyclic | None = None
        self.charger: dict[int, dict[str, Value]] = {}
        self._raw: dict[int, bytes] = {}  # last decoded bytes per ID: an unchanged frame is not re-decoded
        self._status: _Status | None = None  # the last 0x109, parsed
        self._available_current = 0.0  # 108.3 of the last 0x108
        self._rated_capacity = round(battery.spec.capacity_kwh, 1)
        self.harness.insulation_resistance_ohm = config.insulation_resistance_ohm
        target = config.target_voltage or math.ceil(battery.spec.max_voltage + 10.0)
        self.target_voltage = float(target)
        self.max_battery_voltage = float(config.max_battery_voltage or self.target_voltage + 25.0)
        self.enabled = 0
        self.request = 0.0
        self.faults: dict[str, int] = {
            "FaultOverVoltage": 0,
            "FaultUnderVoltage": 0,
            "FaultCurrentDeviation": 0,
            "FaultHighTemperature": 0,
            "FaultVoltageDeviation": 0,
            "ChargingSystemFault": 0,
        }
        self.contactor_open_flag = 0
        self.stop_cause = ""
        self.frames_sent = 0
        self.frames_received = 0
        self._last_charger_rx: float | None = None
        self._deviation_since: float | None = None
        self._vdev_since: float | None = None
        self._charger_stopping = False
        self._charger_charging = False
        self.pack = PackMonitor(battery)
        self._lines = S.LineWatch(harness, {"d1": 0.0, "d2": 0.0})  # inputs with edge interrupts
        self._now = 0.0
        self._opened_at = 0.0  # contactors opened for the welding check

    def _go(self, trigger: str, now: float, detail: str = "") -> None:
        stage: VStage = self.sm.fire(trigger)
        self.stage = stage
        self.emit(StageChanged(now, Role.VEHICLE, stage.value, V_STEP[stage], detail))

    def _c(self, frame_id: int, signal: str, default: Value = 0) -> Value:
        values = self.charger.get(frame_id)
        return default if values is None else values.get(signal, default)

    # ---- inputs ----------------------------------------------------------------------------
    def start(self, now: float) -> list[Frame]:
        """Plugged in: the ECU sleeps and samples d1 (proximity line set)."""
        self.harness.set("proximity", True)
        self.deadlines.set("poll_d1", now)
        return []

    def receive(self, frame: Frame, now: float) -> list[Frame]:
        if frame.is_extended_id or self.stage in _DEAF:
            return []
        fid = frame.arbitration_id
        codec = self._rx.get(fid)
        if codec is None:
            return []
        data = frame.data
        if data != self._raw.get(fid):
            try:
                values = codec.decode(data)
            except DecodeError:
                return []
            self._raw[fid] = data
            self.charger[fid] = values
            if fid == 0x109:
                self._status = _Status.of(values)
            else:
                self._available_current = float(values.get("AvailableOutputCurrent", 0))
        self.frames_received += 1
        self._last_charger_rx = now
        if fid == 0x109:  # the status frame it acts on is the one it supervises (§9: ~1 s)
            self.deadlines.set("charger_can_loss", now + _CHARGER_CAN_LOSS_S)
            self._on_109(now)
        return []

    def on_timer(self, now: float) -> list[Frame]:
        self._now = now
        if self._lines.changed():
            self._supervise_lines(now)
        for name in self.deadlines.due(now):
            self._on_deadline(name, now)
        cyclic = self.cyclic
        if cyclic is not None and now + 1e-9 >= cyclic.next_at:
            self._tick(now)
            if self.stage is VStage.DONE:
                self.cyclic = None
                self.finished = True
                return []
            cyclic.advance(now)
            return self._frames(now)
        return []

    def next_deadline(self) -> float | None:
        if self.stage not in _DEAF and self._lines.changed():  # d1 / d2 flipped: react now (input edge)
            return self._now
        nxt = self.deadlines.next()
        cyclic = self.cyclic
        if cyclic is not None and (nxt is None or cyclic.next_at < nxt):
            return cyclic.next_at
        return nxt

    def request_stop(self, now: float, reason: str = "operator_stop") -> list[Frame]:
        """The driver (or Ctrl-C in the ``bms`` role) ends charging: 102.5.0 -> 0, request 0 (§8)."""
        if self.stage in _LIVE:
            self._stop(now, "interrupted (Ctrl-C)" if reason == "interrupted" else reason.replace("_", " "))
        return []

    # ---- behaviour -------------------------------------------------------------------------
    def _on_deadline(self, name: str, now: float) -> None:
        stage = self.stage
        if name == "poll_d1":
            if S.line_on(self.harness.line("d1")):
                self.deadlines.set("wake", now + self.config.wake_delay)
            else:
                self.deadlines.set("poll_d1", now + 0.05)
        elif name == "wake" and stage is VStage.ASLEEP:
            self._go("wake", now, "d1 seen, ECU awake")
            self.cyclic = Cyclic(self.config.frame_period, now)
        elif name == "permit" and stage is VStage.READY:
            if self.config.grant_permission:
                self.enabled = 1
                self.harness.set("k", True)
                self._go("permit", now, "k closed, 102.5.0 = 1")
        elif name == "contactors" and stage is VStage.PERMITTED:
            self.harness.contactors_closed = True
            self.contactor_open_flag = 0
            self._go("close_contactors", now, "main contactors closed")
            if self.config.requests_current:
                self.deadlines.set("first_request", now + self.config.first_request_delay)
        elif name == "first_request" and stage is VStage.CONTACTORS_CLOSED:
            self.request = self.config.request_start
            self._go("request", now, f"first request {self.request:g} A")
        elif name == "charger_stopped" and stage in _LIVE:
            self._stop(now, "charger stopped the session")
        elif name == "charger_can_loss" and stage in _LIVE:
            self.faults["ChargingSystemFault"] = 1
            self._stop(now, "charger CAN frames stopped arriving")
        elif name == "stop_giveup" and stage is VStage.STOPPING:
            self._open_contactors(now, "charger current not <= 5 A in time: contactors opened anyway")
        elif name == "welding_done" and stage is VStage.WELDING_CHECK:
            if self.harness.output_voltage <= T.OUTPUT_SAFE_V or not S.line_on(self.harness.line("d2")):
                self.contactor_open_flag = 1 if self._proto() >= 2 else 0
            elif now >= self._opened_at + self.config.welding_check_time + T.limit("output_collapse") - 1e-9:
                # §7 T9: the inlet should be <= 10 V within 2 s of opening; still live: welded (§10)
                self.faults["ChargingSystemFault"] = 1
                self.stop_cause = f"welding check failed: inlet still at {self.harness.output_voltage:.0f} V"
            else:
                self.deadlines.set("welding_done", now + self.config.frame_period)

    def _proto(self) -> int:
        charger = int(self._c(0x109, "ProtocolNumberEVSE", 0))
        return min(charger, self.config.protocol_number) if charger else self.config.protocol_number

    def _on_109(self, now: float) -> None:
        st = self._status
        assert st is not None
        stage = self.stage
        if stage is VStage.AWAKE and 0x108 in self.charger:
            self._go("charger_seen", now, "charger frames received")
            if self.config.sets_contactor_flag and self._proto() >= 2:
                self.contactor_open_flag = 1
            self.deadlines.set("permit", now + self.config.permission_delay)
        if st.charging:
            self._charger_charging = True
        if stage is VStage.CHARGING:
            charger_stop = (st.stop_control and self._charger_charging) or st.fault
            if charger_stop and not self._charger_stopping:
                self._charger_stopping = True
                self.deadlines.set("charger_stopped", now + self.config.stop_reaction)
        elif st.fault and stage in _ACTIVE:
            self._stop(now, "charger reported a fault before charging")

    def _stop(self, now: float, cause: str) -> None:
        self.deadlines.cancel("permit", "contactors", "first_request", "charger_stopped")
        self.enabled = 0
        self.request = 0.0
        self.harness.set("k", False)
        self.stop_cause = self.stop_cause or cause
        self._go("stop", now, cause)
        if self.harness.contactors_closed:
            self.contactor_open_flag = 0
            self.deadlines.set("stop_giveup", now + T.limit("vehicle_stop_giveup"))

    def _open_contactors(self, now: float, detail: str) -> None:
        self.deadlines.cancel("stop_giveup")
        self._opened_at = now
        self.harness.contactors_closed = False
        self._go("open_contactors", now, detail)
        self.deadlines.set("welding_done", now + self.config.welding_check_time)

    def _tick(self, now: float) -> None:
        harness = self.harness
        current = harness.output_current if harness.contactors_closed else 0.0
        self.pack.update(current, now)
        harness.battery_voltage = measured = self.battery.terminal_voltage(current)
        stage = self.stage
        if stage not in _DEAF and not S.line_on(harness.line("d1")):
            harness.contactors_closed = False
            harness.set("k", False)
            self._go("sleep", now, "d1 opened")
            self._end(now)
            return
        if self.pack.tripped:
            self._protect(current, now)
            if self.stage is not stage:  # a protection stopped the session: nothing more this cycle
                return
        if stage is VStage.CHARGING:
            if self.battery.soc >= self.config.target_soc:
                self._stop(now, f"target SOC {self.config.target_soc:g} % reached")
            elif self.pack.limit < self._min_current and self.battery.cv_current_limit() < self._min_current:
                # the highest cell is at the charge cutoff (imbalance): the BMS ends charging (§5.1 100.0)
                self._stop(now, f"highest cell at the charge cutoff, SOC {self.battery.soc:.0f} %")
            else:
                self._update_request()
                self._check_deviation(current, measured, now)
        elif (
            stage is VStage.PERMITTED and "contactors" not in self.deadlines and S.line_on(harness.line("d2"))
        ):
            self.deadlines.set("contactors", now + self.config.contactor_delay)
        elif stage is VStage.STOPPING and self.harness.contactors_closed and current <= T.STOP_CURRENT_A:
            self._open_contactors(now, "current <= 5 A, contactors opened for the welding check")

    @property
    def _min_current(self) -> float:
        """Below this the BMS ends charging rather than trickle (100.0 minimum current, 1 A at least)."""
        return max(1.0, float(self.config.min_charge_current))

    def _supervise_lines(self, now: float) -> None:
        """d1 or d2 flipped (§3): d1 gone ends the session; the contactor coils hang on d2."""
        levels = self._lines.sample()
        stage = self.stage
        if stage in _DEAF:
            return
        if not S.line_on(levels["d1"]):
            self._tick(now)  # the ECU falls asleep (see _tick)
        elif not S.line_on(levels["d2"]) and self.harness.contactors_closed and stage in _ACTIVE:
            self.faults["ChargingSystemFault"] = 1
            self._stop(now, "main contactors dropped out: d2 (pin 10) lost")
            self._open_contactors(now, "contactor coils lost d2: contactors open")

    def _update_request(self) -> None:
        # min(pack limit, max current, available or 255), floored, at least 0.0, then
        # min(limit, request + step): the builtins' results, without the calls (hot path)
        config = self.config
        limit = self.pack.limit
        if config.max_current < limit:
            limit = config.max_current
        available = self._available_current or 255.0
        if available < limit:
            limit = available
        floored = math.floor(limit)
        bounded = floored if floored > 0.0 else 0.0
        ramp = self.request + config.request_step
        self.request = ramp if ramp < bounded else bounded

    def _protect(self, current: float, now: float) -> None:
        tripped = self.pack.tripped
        for name, flag in _PROTECTIONS:
            if name in tripped and not self.faults[flag]:
                self.faults[flag] = 1
                if self.stage in _LIVE:
                    self._stop(now, f"battery protection: {name.replace('_', ' ')}")

    def _check_deviation(self, current: float, measured: float, now: float) -> None:
        if abs(self.request - current) >= T.CURRENT_DEVIATION_A:
            self._deviation_since = self._deviation_since if self._deviation_since is not None else now
            if now - self._deviation_since >= T.limit("vehicle_current_deviation"):
                self.faults["FaultCurrentDeviation"] = 1
                self._stop(now, "charger current deviates from the request by >= 10 A for 5 s")
                return
        else:
            self._deviation_since = None
        reported = self._status.present_voltage if self._status is not None else 0.0
        if reported and abs(reported - measured) > T.VOLTAGE_DEVIATION_V:
            self._vdev_since = self._vdev_since if self._vdev_since is not None else now
            if now - self._vdev_since >= T.limit("vehicle_voltage_deviation"):
                self.faults["FaultVoltageDeviation"] = 1
                self._stop(now, f"charger reports {reported:g} V, battery measures {measured:.0f} V")
        else:
            self._vdev_since = None

    def _end(self, now: float) -> None:
        self.deadlines.clear()
        soc_reached = self.battery.soc >= self.config.target_soc
        self.emit(
            SessionEnded(
                now,
                Role.VEHICLE,
                Outcome.COMPLETED if soc_reached else Outcome.STOPPED,
                "target_soc" if soc_reached else "stopped",
                self.stop_cause or "d1 opened",
                VStage.DONE.value,
                7,
                Origin.VEHICLE,
            )
        )

    # ---- frames out --------------------------------------------------------------------------
    def _frames(self, now: float) -> list[Frame]:
        config = self.config
        proto = config.protocol_number
        faults = self.faults
        f100 = self._enc100(
            now,
            config.min_charge_current if proto >= 2 else 0,
            round(self.max_battery_voltage),
            100 if self.stage is not VStage.AWAKE else 0xF0,
        )
        f101 = self._enc101(now, config.max_charge_time_min, self._rated_capacity)
        soc = max(0, min(100, round(self.battery.soc)))
        f102 = self._enc102(
            now,
            proto,
            round(self.target_voltage),
            round(self.request),
            faults["FaultOverVoltage"],
            faults["FaultUnderVoltage"],
            faults["FaultCurrentDeviation"],
            faults["FaultHighTemperature"],
            faults["FaultVoltageDeviation"],
            self.enabled,
            faults["ChargingSystemFault"],
            self.contactor_open_flag if config.sets_contactor_flag else 0,
            int(config.discharge_compatible),
            soc,
        )
        out = [f100, f101, f102]
        if proto >= 3:
            out.append(self._enc110(now))
        self.frames_sent += len(out)
        return out

    def snapshot(self) -> Snapshot:
        current = self.harness.output_current if self.harness.contactors_closed else 0.0
        return Snapshot(
            stage=self.stage.value,
            step=V_STEP[self.stage],
            values={
                "soc": self.battery.soc,
                "battery_voltage": self.battery.terminal_voltage(current),
                "max_cell_voltage": self.battery.max_cell_voltage(current),
                "temperature": self.battery.temperature_c,
                "request": self.request,
                "contactors_closed": self.harness.contactors_closed,
                "frames_sent": self.frames_sent,
            },
        )
