"""Configuration of the GB/T charger and of the simulated BMS: the scenario's ``charger:`` and
``vehicle:`` keys (every field is a key; unknown keys and out-of-range values are scenario errors).
Section numbers (§) refer to the GB/T fact sheet.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from ...plant.power import PowerStageSpec
from . import timing as T


@dataclass(frozen=True, slots=True)
class GbtChargerConfig:
    max_voltage: float = 750.0  # V, CML MaxOutputVoltage
    min_voltage: float = 150.0  # V, CML MinOutputVoltage
    max_current: float = 250.0  # A, CML MaxOutputCurrent (sent as -250 A)
    min_current: float = 0.0  # A, CML MinOutputCurrent
    max_power: float = 60_000.0  # W
    charger_number: int = 1  # CRM bytes 2-5 and CSD
    area_code: str = ""  # CRM bytes 6-8, up to 3 ASCII characters ("" = 0xFF, not provided)
    insulation_test_voltage: float | None = None  # default min(BHM voltage, max_voltage)
    insulation_threshold_ohm_per_v: float = T.INSULATION_OHM_PER_V
    ccs_length: int = 8  # the standard's 8 bytes; 7 = what real chargers send (§10)
    cts_time: str | None = None  # ISO date-time for CTS (advanced by session time); None = all 0xFF
    max_rehandshakes: int = T.MAX_REHANDSHAKES
    tp_window: int | None = None  # packets per TP CTS; None = all remaining (as real chargers)
    max_charge_time_s: float | None = None
    current_slew_a_per_s: float = T.CURRENT_SLEW_A_PER_S

    def __post_init__(self) -> None:
        if not 0 < self.max_voltage <= 1000:
            raise ValueError("max_voltage must be in (0, 1000] V")
        if not 0 <= self.min_voltage < self.max_voltage:
            raise ValueError("min_voltage must be in [0, max_voltage) V")
        if not 0 < self.max_current <= 400:
            raise ValueError("max_current must be in (0, 400] A (the current fields' -400 A offset)")
        if not 0 <= self.min_current < self.max_current:
            raise ValueError("min_current must be in [0, max_current) A")
        if self.max_power <= 0:
            raise ValueError("max_power must be positive")
        if not 0 <= self.charger_number <= 0xFFFFFFFF:
            raise ValueError("charger_number must fit 4 bytes")
        if len(self.area_code) > 3 or not self.area_code.isascii():
            raise ValueError("area_code must be at most 3 ASCII characters")
        if self.ccs_length not in (7, 8):
            raise ValueError("ccs_length must be 7 or 8 bytes")
        if not 0 <= self.max_rehandshakes <= 10:
            raise ValueError("max_rehandshakes must be 0..10")
        if self.tp_window is not None and not 1 <= self.tp_window <= 255:
            raise ValueError("tp_window must be 1..255 packets")
        if self.current_slew_a_per_s <= 0:
            raise ValueError("current_slew_a_per_s must be positive")
        if self.cts_time is not None:
            self.cts_base()

    def cts_base(self) -> _dt.datetime | None:
        if self.cts_time is None:
            return None
        try:
            return _dt.datetime.fromisoformat(self.cts_time)
        except ValueError as err:
            raise ValueError(f"cts_time must be an ISO date-time like 2024-05-01T12:00:00 ({err})") from None

    def power_spec(self) -> PowerStageSpec:
        return PowerStageSpec(
            max_voltage=self.max_voltage,
            max_current=self.max_current,
            max_power=self.max_power,
            min_voltage=self.min_voltage,
            current_slew_a_per_s=self.current_slew_a_per_s,
            # current <= 5 A within the stop limit (§7) from any setpoint, with a 20 % margin
            stop_slew_a_per_s=max(600.0, self.max_current / (0.8 * T.limit("stop_current"))),
        )


@dataclass(frozen=True, slots=True)
class GbtBmsConfig:
    target_soc: float = 80.0  # BST "SOC target reached" here
    charge_mode: str = "cc"  # "cc": BCL follows the charge curve; "cv": voltage setpoint, charger regulates
    cv_voltage: float | None = None  # CV mode voltage demand (default: pack charge-cutoff voltage)
    max_current: float | None = None  # BCP maximum charge current (default: the pack's)
    max_cell_voltage: float | None = None  # BCP maximum cell voltage (default: cutoff + 0.02 V)
    max_total_voltage: float | None = None  # BCP / BHM maximum total voltage (default: cells x max cell)
    brm_length: int = 49  # 41 = the standard's table (ends after the VIN); 49 = every real vehicle
    answer_brm: bool = True  # False: never sends BRM
    send_bhm: bool = True  # False: a 2011-era BMS without BHM
    bro_ready: bool = True  # False: BRO 0x00 forever
    bro_delay: float = 1.25  # §9 capture A: BRO 0x00 for 1.25 s, then 0xAA
    pause_at_soc: float | None = None  # BSM charge permit 00 (pause) from this SOC ...
    pause_duration: float = 60.0  # ... for this long, then 01 again
    cell_imbalance: float = 0.0  # SOC points cell group 1 runs ahead of the pack (at plug-in)
    cell_data: bool = False  # send BMV/BMT every 10 s (optional messages)
    tp_window: int = 255  # RTS byte 5, packets per CTS (255 = no limit; capture C: 7 and 2)
    reserved_bits_zero: bool = False  # §10 capture A: BSM/BST reserved bits sent as 0
    vin: str = "LCSIMGBT000000001"
    manufacturer: str = "CSIM"
    insulation_resistance_ohm: float = 5.0e6  # vehicle + cable, seen by the insulation test
    wake_delay: float = 0.015  # §9: first BHM ~15 ms after the first CHM
    brm_delay: float = 0.025  # §9: BRM RTS ~26 ms after CRM 0x00
    bcl_delay: float = 0.026  # §9: first BCL ~26 ms after CRO 0xAA
    bst_hold: float = 0.1  # §9 capture A: BST for ~0.1 s (10 frames) before BSD
    protocol_version: str = "1.1"  # BRM bytes 1-3 (§4.1): "1.1" = 01 01 00 (2015), "1.0" = 2011

    def __post_init__(self) -> None:
        self.protocol_version_raw()  # "major.minor" (ValueError otherwise)
        if not 0 < self.target_soc <= 100:
            raise ValueError("target_soc must be in (0, 100] %")
        if self.charge_mode not in ("cc", "cv"):
            raise ValueError("charge_mode must be 'cc' or 'cv'")
        if self.brm_length not in (41, 49):
            raise ValueError("brm_length must be 41 or 49 bytes")
        if not 1 <= self.tp_window <= 255:
            raise ValueError("tp_window must be 1..255 packets")
        if len(self.vin) != 17 or not self.vin.isascii():
            raise ValueError("vin must be 17 ASCII characters")
        if len(self.manufacturer) > 4 or not self.manufacturer.isascii():
            raise ValueError("manufacturer must be at most 4 ASCII characters")
        if self.pause_duration <= 0:
            raise ValueError("pause_duration must be positive")
        for name in ("bro_delay", "wake_delay", "brm_delay", "bcl_delay", "bst_hold"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_current is not None and not 0 < self.max_current <= 400:
            raise ValueError("max_current must be in (0, 400] A")

    def protocol_version_raw(self) -> int:
        """BRM BmsProtocolVersion: byte 1 the minor, bytes 2-3 the major (V1.1 = 0x000101)."""
        major, dot, minor = self.protocol_version.strip().upper().removeprefix("V").partition(".")
        if not (dot and major.isdigit() and minor.isdigit() and int(major) <= 0xFFFF and int(minor) <= 0xFF):
            raise ValueError(
                f"protocol_version must be 'major.minor' like 1.1 (2015) or 1.0 (2011), "
                f"got {self.protocol_version!r}"
            )
        return int(major) << 8 | int(minor)
