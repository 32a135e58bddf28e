"""How the fault catalogue (charger_sim.faults) maps onto CHAdeMO's lines, frames and flags.

§ numbers refer to the CHAdeMO fact sheet (``shared/protocols/chademo.md``).  :data:`NOTES` says, per
fault kind, what the charger and the simulated vehicle of this package really do; the tests in
``tests/test_chademo_faults.py`` hold them to it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..base import Pin
from .supervision import K_CONFIRM_S, LINE_OFF, LINE_ON

#: Control lines of the CHAdeMO connector (§3) a worn contact can degrade.  Lines carry 1 when
#: driven (closed / +12 V) and 0 when open; ``value`` is what the other side then reads (between
#: LINE_OFF and LINE_ON: out of band, never "on").  A bouncing contact reads open every other period.
PINS: dict[str, Pin] = {
    "d1": Pin(
        "d1",
        0.0,
        "pin 2, charge sequence signal 1 (charger -> vehicle): the vehicle never wakes, or falls asleep "
        "mid-session (k opens, CAN stops)",
    ),
    "d2": Pin(
        "d2",
        0.0,
        "pin 10, charge sequence signal 2 (charger -> vehicle): the contactor coils hang on it; they never "
        "close, or drop out under load (102.5.2)",
    ),
    "k": Pin(
        "k",
        0.0,
        "pin 4, vehicle charge permission 'k' (vehicle -> charger): reads open; k_line_fault while "
        "102.5.0 = 1",
    ),
    "proximity": Pin(
        "proximity",
        0.0,
        "pin 7, connector proximity detection (read by the charger): reads unplugged; proximity_lost",
    ),
}

#: CHAdeMO version -> protocol number the vehicle sends in 102.0 (§6.1; 1.1 and 1.2 announce 1.0).
VERSIONS = {"0.8": 0, "0.9": 1, "0.9.1": 1, "1.0": 2, "1.0.1": 2, "1.1": 2, "1.2": 2, "2.0": 3}


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


_CONFIRM_MS = f"{K_CONFIRM_S * 1000:.0f} ms"
_BAND = f"{LINE_OFF:.0%}-{LINE_ON:.0%}"

NOTES: dict[str, str] = {
    "drop_message": "0x102 missing for T11 = 1 s: can_timeout, 109.5.4 (0x35 while delivering), shorter gaps "
    "harmless; 0x100 never usable: can_timeout at T1 = 8 s (step 4); 0x101: harmless (no remaining time); "
    "0x108: the vehicle never gets ready (no_permission at T1); 0x109 for 1 s: the vehicle gives up "
    "with 102.5.2 (vehicle_system_fault)",
    "delay_message": "no timestamps in CHAdeMO: a 0x102 delayed by T11 = 1 s or more is a CAN loss "
    "(can_timeout); shorter delays are harmless",
    "corrupt_signal": "decoded as the DBC lays it out; while charging 102.3 above 108.3 (without dynamic "
    "control) or 102.1-2 above 108.1-2 is an implausible request: output clamped, implausible_request, "
    "109.5.4; before permission a target above 108.1-2 is battery_incompatible (109.5.3); fault flags act "
    "as set; a cleared 102.5.0 is the vehicle's normal stop; a wrong 109.1-2 trips the vehicle's voltage "
    "deviation (102.4.4) after 1 s",
    "wrong_dlc": "every CHAdeMO frame has 8 bytes (§2): a shorter one is unusable and counts as not "
    "received (0x102: can_timeout after 1 s; 0x100: can_timeout at T1), the cause counts the frames "
    "ignored; a short 0x109 makes the vehicle give up (102.5.2)",
    "replay_message": "0x100-0x102 carry no alive counter or sequence number: stale frames cannot be "
    "detected; harmless while the values hold, but a stale 102.5.0 = 1 across the vehicle's stop "
    "contradicts k: k_line_fault",
    "duplicate_message": "harmless: every CHAdeMO frame is a state, not an event",
    "bus_off": "nothing passes: the charger stops after T11 = 1 s (can_timeout, 109.5.4), the vehicle gives "
    "up after 1 s (102.5.2); under 1 s harmless; no automatic retry after recovery (§8): a new session "
    "starts at step 1",
    "firmware_mismatch": "102.0 ProtocolNumberEV: 0.9 -> 1, 1.0/1.1/1.2 -> 2, 2.0 -> 3, before 0.9 -> 0; "
    "effective protocol = min(vehicle, charger): 0.9 charges with fixed waits (no 102.5.3), 2.0 adds "
    "0x110/0x118, 0 is refused at permission (battery_incompatible, 109.5.3, step 4)",
    "worn_pins": "lines are edge-triggered inputs (a bouncing contact is seen at its first opening) and "
    f"judged by a window comparator ({_BAND} of the driven level: out of band, never on). d1: "
    "vehicle_not_awake at T1 (step 3), mid-session the vehicle sleeps (k_line_fault); d2: "
    "contactor_timeout at T3 (step 6), mid-session the contactors drop out (vehicle_system_fault); k: "
    "never closed with 102.5.0 = 1: k_line_fault at T1 (step 4), opening with 102.5.0 still 1 "
    f"{_CONFIRM_MS} later (or closing again): k_line_fault, the stop begins at the opening; proximity: "
    "no plug at start: proximity_lost at step 1, later an immediate stop (proximity_lost, 109.5.4)",
    "insulation_drop": "before the test: insulation_fault at the measurement (109.5.1, step 2); with the "
    "relays closed the insulation monitor stops below 100 ohm/V of the test voltage (insulation_fault, "
    "109.5.1, next 100 ms cycle) and notes 'insulation_warning' below 500 ohm/V",
    "contactor_welded": "before the test the output is live with the contactors open: contactor_welded at "
    "step 2 (§7 step 6); at the end the vehicle's welding check finds the inlet live (T9) and raises "
    "102.5.2: contactor_welded; d2 and d1 open, the output stays above 10 V, the connector is never "
    "unlocked: the session ends locked (output_not_discharged noted)",
    "temperature_runaway": "the BMS trips at the pack's over-temperature limit: 102.4.3, "
    "vehicle_high_temperature (109.5.4, current <= 5 A within T6 = 0.5 s)",
    "cell_over_voltage": "102.4.0 battery over-voltage: vehicle_over_voltage (109.5.4)",
    "cell_imbalance": "the high group reaches the charge cutoff early: the BMS holds it there (CV) and ends "
    "charging once its limit falls below the 100.0 minimum current (a normal stop, short of the target "
    "SOC); an offset past the over-voltage limit trips 102.4.0",
    "power_stage_fault": "109.5.1 charger malfunction: charger_malfunction (0x27 -> 0x26 -> 0x22)",
    "operator_stop": "109.5.5 stop control, current to <= 5 A, 109.5.0 cleared (0x25 -> 0x24 -> 0x20): "
    "operator_stop",
}
