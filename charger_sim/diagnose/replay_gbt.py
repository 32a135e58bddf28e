"""GB/T replay: the recorded BMS frames (transport sessions included, packet by packet) against the GB/T
charger core, configured from the recorded CML.  Our charger answers the BMS's RTS itself; the BMS's
contactors close at its BRO 0xAA and open once our charger brought the current down after a stop; the
battery voltage comes from BCP and then BCS."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from ..frames import Frame
from ..protocols import registry
from ..protocols.base import Core
from ..protocols.gbt import timing as GT
from ..protocols.gbt.states import Stage
from ..protocols.gbt.transport import split_id
from .capture import Record
from .gbt import RANK
from .model import CHARGER, VEHICLE
from .replay import ReplayBase, common_value

BMS_CLOSED_FROM = "ready"  # BMS stage (protocols.gbt.bms_states) from which its contactors are closed


class GbtReplay(ReplayBase):
    cycle = GT.limit("cml_period")
    can_loss = GT.limit("bcl")
    stop_phase = (Stage.STOPPING, Stage.STATISTICS, Stage.SHUTDOWN)
    done = Stage.DONE
    charger_stops: ClassVar[dict[str, str]] = {
        "operator_stop": "operator_stop",
        "charge_time_limit": "operator_stop",
    }
    walk_label = "charger message"

    def build(self) -> tuple[Core, dict[str, Any]]:
        info = registry.get("gbt")
        cml = [r.values for r in self.records if r.name == "CML"]
        notes = self.notes
        vmax = common_value(cml, "MaxOutputVoltage", 0, 1000, 750.0, notes)
        vmin = common_value(cml, "MinOutputVoltage", -1, vmax - 1, 150.0, notes)
        imax = common_value(cml, "MaxOutputCurrent", 0, 400, 250.0, notes)
        imin = common_value(cml, "MinOutputCurrent", -1, imax - 1, 0.0, notes)
        ccs = [r.dlc for r in self.records if r.name == "CCS"]
        wanted: dict[str, Any] = {
            "max_voltage": vmax,
            "min_voltage": min(vmin, vmax - 1),
            "max_current": imax,
            "min_current": min(imin, imax - 1),
            "max_power": vmax * imax,
            "ccs_length": 7 if ccs and max(set(ccs), key=ccs.count) == 7 else 8,
        }
        fields = {f.name for f in dataclasses.fields(info.charger_config)}
        kwargs = {k: v for k, v in wanted.items() if k in fields}
        try:
            cfg = info.charger_config(**kwargs)
        except ValueError as err:
            notes.append(f"recorded CML not usable ({err}): our charger runs its defaults")
            cfg = info.charger_config()
        if self.s.reason == "insulation_fault":
            self.harness.insulation_resistance_ohm = 1.0
        self.battery_v = 0.0
        return info.build_charger(cfg, self.harness, self.capture.codec), kwargs

    def items(self) -> list[Record]:
        frames = [r for r in self.records if r.message is not None]  # TP payloads: plant only
        frames += [r for r in self.capture.tp_frames if r.side == VEHICLE and self._in_session(r)]
        return sorted(frames, key=lambda r: r.index)

    def _in_session(self, rec: Record) -> bool:
        lo = self.records[0].time if self.records else 0.0
        return lo - 1e-9 <= rec.time <= self.s.end + 1e-9

    def token(self, frame: Frame) -> str | None:
        if not frame.is_extended_id:
            return None
        _p, pgn, _dest, source = split_id(frame.arbitration_id)
        mc = next(
            (m for m in self.capture.codec.messages if split_id(m.frame_id)[1] == pgn and m.length <= 8), None
        )
        if mc is None or split_id(mc.frame_id)[3] != source or "CHARGER" not in mc.senders:
            return None
        if mc.name in ("CRM", "CRO"):
            return f"{mc.name} {frame.data[:1].hex().upper()}"
        if mc.name in ("CST", "CEM"):
            return f"{mc.name} {frame.data.hex(' ').upper()}"
        return "CTS/CML" if mc.name in ("CTS", "CML") else mc.name

    def start_at(self) -> float:
        return (self.s.stages[0].start or 0.0) - self.cycle if self.s.stages else 0.0

    def stage_rank(self, stage: str) -> int:
        return RANK[Stage(stage)]

    def self_progressing(self) -> bool:
        """Insulation test, precharge (battery on the link), relay settling, statistics, error hold."""
        return self.our_stage() in (
            Stage.INSULATION_TEST.value,
            Stage.PRECHARGE.value,
            Stage.CONTACTORS.value,
            Stage.STATISTICS.value,
            Stage.ERROR.value,
        )

    def own_stop_ahead(self) -> bool:
        return self.our_stage() == Stage.INSULATION_TEST.value and self.s.reason in (
            "insulation_fault",
            "insulation_timeout",
        )

    def _bms_closed(self, t: float) -> bool:
        if self.our_stage() in (Stage.SHUTDOWN.value, Stage.DONE.value, Stage.STATISTICS.value):
            return False
        order = [s.stage for s in self.s.vehicle_stages]
        now = self.vehicle_stage(t)
        if BMS_CLOSED_FROM not in order or now not in order:
            return False
        return order.index(now) >= order.index(BMS_CLOSED_FROM) and now not in ("error", "done")

    def plant(self, rec: Record) -> None:
        if rec.name == "BCP":
            self.battery_v = float(rec.values.get("PresentBatteryVoltage", 0)) or self.battery_v
        elif rec.name == "BCS":
            self.battery_v = float(rec.values.get("MeasuredVoltage", 0)) or self.battery_v
        if rec.side == CHARGER:
            return
        if self.battery_v:
            self.harness.battery_voltage = self.battery_v
        self.harness.contactors_closed = self._bms_closed(rec.time)

    def refresh_plant(self) -> None:
        self.harness.contactors_closed = self.harness.contactors_closed and self._bms_closed(self.now_rec)
