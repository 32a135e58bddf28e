"""How the fault catalogue (charger_sim.faults) maps onto CHAdeMO's lines, frames and flags."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..base import Pin

#: Control lines of the CHAdeMO connector (fact sheet §2) a worn contact can degrade.
PINS: dict[str, Pin] = {
    "d1": Pin("d1", 0.0, "pin 2, charge sequence signal 1 (charger → vehicle): reads open"),
    "d2": Pin("d2", 0.0, "pin 10, charge sequence signal 2 (charger → vehicle): reads open"),
    "k": Pin("k", 0.0, "pin 4, vehicle charge permission 'k' (vehicle → charger): reads open"),
    "proximity": Pin("proximity", 0.0, "pin 7, connector proximity detection: reads unplugged"),
}

#: CHAdeMO version → protocol number the vehicle sends in 102.0 (fact sheet §6.1).
VERSIONS = {"0.8": 0, "0.9": 1, "0.9.1": 1, "1.0": 2, "1.1": 2, "1.2": 2, "2.0": 3}


def apply_firmware(config: Any, version: str) -> Any:
    """The vehicle configuration announcing CHAdeMO ``version`` (or a raw protocol number 0..3)."""
    text = str(version).strip()
    if text in VERSIONS:
        number = VERSIONS[text]
    elif text.isdigit() and 0 <= int(text) <= 3:
        number = int(text)
    else:
        raise ValueError(f"unknown CHAdeMO version {version!r}; expected one of: {', '.join(VERSIONS)} "
                         "(or a protocol number 0..3)")
    return dataclasses.replace(config, protocol_number=number)


NOTES: dict[str, str] = {
    "drop_message": "e.g. 0x102 lost: the charger's 1 s CAN timeout (109.5.4 'charging system error')",
    "corrupt_signal": "flags and values as the DBC defines them (e.g. 102.ChargingCurrentRequest)",
    "bus_off": "both sides lose CAN: charger CAN timeout after 1 s, d1/d2 open",
    "firmware_mismatch": "102.0 ProtocolNumberEV: 0.9 → 1, 1.0 → 2, 2.0 → 3 (0 = before 0.9: incompatible)",
    "worn_pins": "d1, d2, k (pin 4), proximity (pin 7)",
    "insulation_drop": "the charger's insulation test before charging / monitoring during it",
    "contactor_welded": "the vehicle's welding check finds voltage after opening: 102.5.3 never set",
    "temperature_runaway": "102.4.3 battery over-temperature",
    "cell_over_voltage": "102.4.0 battery over-voltage",
    "cell_imbalance": "the highest cell reaches the cutoff early: taper, then 102.4.0 or a short session",
    "power_stage_fault": "109.5.1 charger malfunction (stop, 0x109 status 0x34..)",
    "operator_stop": "109.5.5 stop control, current ramps to 0",
}
