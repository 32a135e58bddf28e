"""What the simulated GB/T BMS puts on the bus, computed from the pack model (§4, §9).

BRM identity (battery type, capacity, VIN...), BCP limits, BCS/BSM/BSD from the pack state, optional
BMV/BMT cell data, and the 2-bit flag messages BST/BEM.  Payloads of multi-packet messages are
returned as bytes for the transport; single frames as :class:`Frame`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...bms.battery import Battery
from ...codec import Codec, Value
from ...frames import Frame
from .messages import clear_unused, flags

if TYPE_CHECKING:  # pragma: no cover
    from .config import GbtBmsConfig

BATTERY_TYPE = {"lfp": 3, "lmo": 4, "nmc": 6}  # §4.1 BRM byte 4 (0xFF = other)
MAX_BMV_CELLS = 256
TEMPERATURE_PROBES = 16


class BmsFrames:
    def __init__(self, config: GbtBmsConfig, battery: Battery, codec: Codec) -> None:
        self.config = config
        self.battery = battery
        self.codec = codec
        spec = battery.spec
        chem = spec.cell_chemistry
        self.max_cell_voltage = round(config.max_cell_voltage or chem.charge_cutoff_v + 0.02, 2)
        self.max_total_voltage = round(config.max_total_voltage or spec.series * self.max_cell_voltage, 1)
        self.cv_voltage = round(config.cv_voltage or spec.max_voltage, 1)
        self.max_current = round(config.max_current or spec.max_charge_current_a, 1)
        self._zero = ("BSM", "BST") if config.reserved_bits_zero else ()
        self._brm = self._build_brm()
        self._codecs = {m.name: m for m in codec.messages}
        self._bsm_key: tuple[object, ...] = ()
        self._bsm_data = b""
        self._index_at = -1.0  # battery.elapsed_s of the cached highest-cell index
        self._resistances = battery.group_resistances_ohm
        self._cell_at = -1.0  # battery.elapsed_s of the cached highest cell
        self._cell_ocv = 0.0
        self._cell_r = 0.0
        self._index = 0

    # ---- single frames -----------------------------------------------------------------------
    def single(self, name: str, values: dict[str, Value], now: float) -> Frame:
        codec = self._codecs[name]
        frame = codec.frame(values, now)
        if name in self._zero:
            return Frame(frame.arbitration_id, clear_unused(codec, frame.data), True, now)
        return frame

    def flags(self, name: str, on: tuple[str, ...], now: float) -> Frame:
        return self.single(name, flags(self.codec.message(name), on), now)

    def bsm(self, states: dict[str, int], permit: int, now: float) -> Frame:
        """Temperatures and cell numbers only move with a pack step: reuse the bytes until then."""
        key = (self.battery.elapsed_s, permit, *sorted(states.items()))
        if key != self._bsm_key:
            self._bsm_key, self._bsm_data = key, self._bsm(states, permit, now).data
        return Frame(self._codecs["BSM"].frame_id, self._bsm_data, True, now)

    def _bsm(self, states: dict[str, int], permit: int, now: float) -> Frame:
        b = self.battery
        temps = b.group_temperatures_c
        t_hot, t_cold = b.temperature_c, b.min_temperature_c
        hot, cold = temps.index(t_hot), temps.index(t_cold)
        probes = max(1, len(temps) // TEMPERATURE_PROBES)
        values: dict[str, Value] = {
            "MaxCellVoltageNumber": self._max_cell_index() + 1,
            "MaxTemperature": _temp(t_hot),
            "MaxTempProbe": min(TEMPERATURE_PROBES, hot // probes + 1),
            "MinTemperature": _temp(t_cold),
            "MinTempProbe": min(TEMPERATURE_PROBES, cold // probes + 1),
            "CellVoltageState": states.get("CellVoltageState", 0),
            "SocState": states.get("SocState", 0),
            "OverCurrent": states.get("OverCurrent", 0),
            "OverTemperature": states.get("OverTemperature", 0),
            "Insulation": states.get("Insulation", 0),
            "OutputConnector": states.get("OutputConnector", 0),
            "ChargePermit": permit,
        }
        return self.single("BSM", values, now)

    def bsd(self, current: float, now: float) -> Frame:
        cells = self.battery.cell_voltages(current)
        b = self.battery
        values: dict[str, Value] = {
            "StopSOC": max(0, min(100, round(b.soc))),
            "MinCellVoltage": round(min(cells), 2),
            "MaxCellVoltage": round(max(cells), 2),
            "MinTemperature": _temp(b.min_temperature_c),
            "MaxTemperature": _temp(b.temperature_c),
        }
        return self.single("BSD", values, now)

    # ---- transport payloads ------------------------------------------------------------------
    def brm(self) -> bytes:
        return self._brm

    def _build_brm(self) -> bytes:
        cfg, spec = self.config, self.battery.spec
        maker = cfg.manufacturer.encode("ascii").ljust(4, b"\xff")
        values: dict[str, Value] = {
            "BmsProtocolVersion": cfg.protocol_version_raw(),  # 01 01 00 = V1.1
            "BatteryType": BATTERY_TYPE.get(spec.chemistry, 0xFF),
            "RatedCapacity": round(spec.capacity_ah, 1),
            "RatedTotalVoltage": round(spec.nominal_voltage, 1),
            **{f"Manufacturer{i + 1}": maker[i] for i in range(4)},
            "PackSerial": 1,
            "ProductionYear": 2023,
            "ProductionMonth": 4,
            "ProductionDay": 1,
            "ChargeCount": 149,
            "Ownership": 1,
            **{f"Vin{i + 1:02d}": ch for i, ch in enumerate(cfg.vin.encode("ascii"))},
            "BmsSwSerial": 0,
            "BmsSwDay": 1,
            "BmsSwMonth": 4,
            "BmsSwYear": 2023,
        }
        data = self.codec.message("BRM").encode(values)
        return data[: cfg.brm_length]

    def bcp(self, current: float) -> bytes:
        b = self.battery
        values: dict[str, Value] = {
            "MaxCellVoltage": self.max_cell_voltage,
            "MaxChargeCurrent": -self.max_current,
            "NominalEnergy": min(1000.0, round(b.spec.capacity_kwh, 1)),
            "MaxTotalChargeVoltage": self.max_total_voltage,
            "MaxTemperature": round(b.spec.over_temperature_c),
            "SOC": round(b.soc, 1),
            "PresentBatteryVoltage": round(b.terminal_voltage(current), 1),
        }
        return self.codec.message("BCP").encode(values)

    def bcs(self, current: float, request: float) -> bytes:
        b = self.battery
        index = self._max_cell_index()
        soc = b.soc
        remaining = 0
        if current >= 1.0:
            ah_left = max(0.0, self.config.target_soc - soc) / 100.0 * b.spec.capacity_ah
            remaining = min(600, round(60.0 * ah_left / current))
        values: dict[str, Value] = {
            "MeasuredVoltage": round(b.terminal_voltage(current), 1),
            "MeasuredCurrent": -round(current, 1),
            "MaxCellVoltage": min(40.95, round(self.max_cell(current), 2)),
            "MaxCellGroup": min(15, index * 16 // b.spec.series),
            "SOC": max(0, min(100, round(soc))),
            "RemainingTime": remaining,
        }
        return self.codec.message("BCS").encode(values)

    def bmv(self, current: float) -> bytes:
        cells = self.battery.cell_voltages(current)[:MAX_BMV_CELLS]
        values: dict[str, Value] = {}
        for i in range(MAX_BMV_CELLS):
            v = cells[i] if i < len(cells) else 0.0
            values[f"CellVoltage{i + 1:03d}"] = min(40.95, round(v, 2))
            values[f"CellGroup{i + 1:03d}"] = min(15, i * 16 // len(cells))
        return self.codec.message("BMV").encode(values)[: 2 * len(cells)]

    def bmt(self) -> bytes:
        temps = self.battery.group_temperatures_c
        size = max(1, len(temps) // TEMPERATURE_PROBES)
        probes = [max(temps[i : i + size]) for i in range(0, len(temps), size)][:TEMPERATURE_PROBES]
        values: dict[str, Value] = {f"Temperature{i + 1:03d}": 0 for i in range(128)}
        for i, t in enumerate(probes):
            values[f"Temperature{i + 1:03d}"] = _temp(t)
        data = self.codec.message("BMT").encode(values)[: max(9, len(probes))]
        return data  # at least 9 bytes: a TP message

    # ---- pack views --------------------------------------------------------------------------
    def max_cell(self, current: float) -> float:
        """Highest cell voltage.  Cell OCVs only move with a pack step, so the highest cell is found
        once per step and followed with its own I*R in between (exact unless two cells swap places
        within one step, then off by at most the slew x the resistance spread: about a millivolt)."""
        b = self.battery
        if b.elapsed_s != self._cell_at:
            cells = b.cell_voltages(current)
            top = max(cells)
            i = cells.index(top)
            self._cell_at, self._cell_r = b.elapsed_s, self._resistances[i]
            self._cell_ocv = top - current * self._cell_r
        return self._cell_ocv + current * self._cell_r

    def _max_cell_index(self) -> int:
        """The group with the highest SOC (cached per pack step)."""
        if self.battery.elapsed_s != self._index_at:
            socs = self.battery.group_socs
            self._index_at, self._index = self.battery.elapsed_s, socs.index(max(socs))
        return self._index


def _temp(celsius: float) -> int:
    return max(-50, min(205, round(celsius)))
