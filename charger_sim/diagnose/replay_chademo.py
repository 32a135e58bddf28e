"""CHAdeMO replay: the recorded 0x100/0x101/0x102 against the CHAdeMO charger core, configured from the
recorded 0x108/0x109.  k is inferred from 102.5.0; the vehicle's contactors close after our d2 when the
recording shows them closed and open once our charger brought the current down after a stop; the
battery voltage is what the recorded charger measured while the battery was connected."""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from ..frames import Frame
from ..protocols.base import Core
from ..protocols.chademo import timing as T
from ..protocols.chademo.charger import ChademoCharger, ChademoChargerConfig
from ..protocols.chademo.states import Stage
from .capture import Record
from .chademo_tables import LOCKED, RANK, STOP_PHASE, status_of
from .model import CHARGER, VEHICLE
from .replay import ReplayBase, common_value

CONNECTED_VSTAGES = ("contactors_closed", "charging", "stopping")


class ChademoReplay(ReplayBase):
    cycle = T.limit("cycle")
    can_loss = T.limit("can_loss")
    stop_phase = STOP_PHASE
    done = Stage.DONE
    charger_stops: ClassVar[dict[str, str]] = {
        "operator_stop": "operator_stop",
        "charge_time_limit": "operator_stop",
    }
    walk_label = "0x109.5 status"

    def build(self) -> tuple[Core, dict[str, Any]]:
        notes = self.notes
        c108 = [r.values for r in self.records if r.name == "ChargerCapability"]
        c109 = [r for r in self.records if r.name == "ChargerStatus"]
        volts = common_value(c108, "AvailableOutputVoltage", 0, 1000, 500.0, notes)
        amps = common_value(c108, "AvailableOutputCurrent", 0, 255, 125.0, notes)
        proto = int(common_value([r.values for r in c109], "ProtocolNumberEVSE", 0, 3, 2, notes))
        welds = Counter(int(v.get("WeldingDetectionSupport", 0)) for v in c108)
        weld = bool(welds and welds.most_common(1)[0][0])
        ins = next((x for x in self.s.stages if x.stage == Stage.INSULATION_TEST.value), None)
        lock_first, peak = True, 0.0
        if ins is not None and ins.start is not None:
            end = ins.end if ins.end is not None else ins.start
            during = [r for r in c109 if ins.start - 1e-9 <= r.time <= end + 1e-9]
            if during:
                lock_first = bool(status_of(during[0].values) & LOCKED)
                peak = max(float(r.values.get("PresentOutputVoltage", 0)) for r in during)
        test_v = min(peak, volts) if peak > T.BLEED_DONE_V * 2 else None
        cfg = ChademoChargerConfig(
            max_voltage=volts,
            max_current=amps,
            max_power=volts * amps,
            protocol_number=proto,
            welding_detection=weld,
            insulation_test_voltage=test_v,
            lock_before_insulation=lock_first,
        )
        if self.s.reason == "insulation_fault":
            self.harness.insulation_resistance_ohm = 1.0  # the recorded test failed: make ours fail too
        self.m109 = self.capture.codec.message("ChargerStatus")
        self.battery_v = 0.0
        shown = {
            "max_voltage": volts,
            "max_current": amps,
            "protocol_number": proto,
            "welding_detection": weld,
            "insulation_test_voltage": test_v,
            "lock_before_insulation": lock_first,
        }
        return ChademoCharger(cfg, self.harness, self.capture.codec), shown

    def items(self) -> list[Record]:
        return [r for r in self.records if r.message is not None]

    def token(self, frame: Frame) -> str | None:
        if frame.arbitration_id != 0x109 or frame.is_extended_id:
            return None
        return f"0x{status_of(self.m109.decode(frame.data, allow_truncated=True)):02X}"

    def start_at(self) -> float:
        negotiation = next((x.start for x in self.s.stages if x.stage == Stage.NEGOTIATION.value), None)
        first = next((r.time for r in self.records if r.side == VEHICLE), 0.0)
        return (negotiation if negotiation is not None else first) - self.cycle

    def stage_rank(self, stage: str) -> int:
        return RANK[Stage(stage)]

    def self_progressing(self) -> bool:
        """The insulation test, or the protocol <= 1 fixed wait after d2."""
        ours = self.our_stage()
        proto = getattr(self.charger, "protocol", None) or 2
        return ours == Stage.INSULATION_TEST.value or (ours == Stage.CONTACTORS.value and proto <= 1)

    def own_stop_ahead(self) -> bool:
        """The recorded charger stopped in its insulation test; ours (same fault) will too."""
        return self.our_stage() == Stage.INSULATION_TEST.value and self.s.reason in (
            "insulation_fault",
            "insulation_timeout",
        )

    def _contactors_closed(self, t: float) -> bool:
        """As the recording shows them, but closed only after our d2, and opened once our charger
        brought the current down after a stop (the vehicle reacts to our charger)."""
        if self.our_stage() in (Stage.WELDING_CHECK.value, Stage.SHUTDOWN.value, Stage.DONE.value):
            return False
        return self.harness.is_on("d2") and self.vehicle_stage(t) in CONNECTED_VSTAGES

    def plant(self, rec: Record) -> None:
        if rec.side == CHARGER:
            if rec.name == "ChargerStatus" and self.vehicle_stage(rec.time) in CONNECTED_VSTAGES:
                self.battery_v = float(rec.values.get("PresentOutputVoltage", 0)) or self.battery_v
            return
        if rec.name == "VehicleChargeControl":
            self.harness.set("k", bool(rec.values.get("ChargingEnabled")))  # k inferred from 102.5.0
            self.harness.contactors_closed = self._contactors_closed(rec.time)
            self.harness.battery_voltage = (
                self.battery_v or float(rec.values.get("TargetBatteryVoltage", 0)) * 0.9
            )

    def refresh_plant(self) -> None:
        self.harness.contactors_closed = self.harness.contactors_closed and self._contactors_closed(
            self.now_rec
        )
