"""How the fault catalogue (charger_sim.faults) maps onto the CCS bridge profile's lines, frames and flags.

§ numbers refer to the CCS fact sheet (``shared/protocols/ccs-over-can.md``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..base import Pin
from . import timing as T
from .electrical import CP_PIN_LINE, PP_PIN_LINE, WORN_CP_V, WORN_PP_OHM

#: Lines of the CCS connector a worn or corroded contact can degrade.  ``value`` is what the charger
#: then reads on the line; 0 (and every other flip of a bouncing contact) is an open contact.
PINS: dict[str, Pin] = {
    "cp": Pin(
        CP_PIN_LINE,
        WORN_CP_V,
        f"control pilot contact (§2): the EVSE reads the CP high level 'value' V (default {WORN_CP_V:g} V, "
        "between the B and C windows: Invalid); open: no EV load, +12 V (state A)",
    ),
    "pp": Pin(
        PP_PIN_LINE,
        WORN_PP_OHM,
        f"proximity contact (§3): the inlet reads PP-PE 'value' ohm (default {WORN_PP_OHM:g} ohm: Invalid "
        "for CCS2 and CCS1); open: no plug",
    ),
    "diode": Pin(
        "cp_ev_diode",
        0.0,
        "the EV's CP diode (§2 diode check) shorted or open: the low half of the PWM reads minus the "
        "high level",
    ),
}

#: Application protocols an EV can offer in supportedAppProtocol (§1, §4 #1), by firmware name.
#: This charger is a DIN SPEC 70121 SECC: DIN must be among them, or the negotiation fails.
APP_PROTOCOLS = ("din70121", "iso15118_2", "iso15118_20")

#: firmware_mismatch versions: (app protocols the EV offers, in its priority order; bridge revision).
VERSIONS: dict[str, tuple[str, str | None]] = {
    "din70121": ("din70121", None),
    "din70121_2012": ("din70121", "din70121_2012"),
    "din_ts70121_2024": ("din70121", "din_ts70121_2024"),
    "iso15118_2": ("iso15118_2", None),
    "iso15118_20": ("iso15118_20", None),
    "iso15118_2+din70121": ("iso15118_2+din70121", None),
    "iso15118_20+din70121": ("iso15118_20+din70121", None),
    "iso15118_20+iso15118_2": ("iso15118_20+iso15118_2", None),
}


def apply_firmware(config: Any, version: str) -> Any:
    """The vehicle configuration whose EVCC firmware offers ``version`` (see :data:`VERSIONS`)."""
    text = str(version).strip().lower()
    if text not in VERSIONS:
        raise ValueError(f"unknown CCS firmware {version!r}; expected one of: {', '.join(VERSIONS)}")
    protocols, revision = VERSIONS[text]
    assert revision is None or revision in T.REVISIONS
    changes: dict[str, Any] = {"app_protocols": protocols}
    if revision is not None:
        changes["revision"] = revision
    return dataclasses.replace(config, **changes)


NOTES: dict[str, str] = {
    "drop_message": "a vehicle frame missing 1 s: can_timeout naming it, emergency stop (§9); one lost frame "
    "is harmless; EvsePresentValues missing > 0.25 s: the EV stops with EVReady false (ev_not_ready)",
    "delay_message": "1 s late or more: can_timeout; less: the charger uses the late values, clamped; "
    "charger frames late beyond the EV's CurrentDemand budget (0.25 s, 0.5 s TS 2024): ev_not_ready",
    "corrupt_signal": "SNA / Invalid / out of range (all ones) where the stage needs a value: the frame is "
    "unusable, invalid_frame after 1 s; numbers clamped to min(request, EV max, charger max); "
    "EvErrorCode and flags act as sent; a stuck EvAliveCounter: alive_counter_frozen",
    "wrong_dlc": "the frame is unusable (not received): invalid_frame after 1 s (emergency stop)",
    "replay_message": "EvAliveCounter jump flagged (alive_counter_jump); a stale request out of sequence: "
    "FAILED_SequenceError (sequence_error); stale targets stay within the limits",
    "duplicate_message": "repeated EvAliveCounter and requests tolerated: harmless",
    "bus_off": "1 s or more: can_timeout (no vehicle frame), emergency stop, no resumption after recovery; "
    "shorter: the EV's 0.25 s CurrentDemand budget ends it (ev_not_ready)",
    "firmware_mismatch": "supportedAppProtocol (" + ", ".join(VERSIONS) + "): DIN offered: charges, with "
    "the EV's revision's timers; ISO 15118 only: no_common_protocol at session_setup (step 3)",
    "worn_pins": "cp: cp_invalid (7.5 V) / cp_state_a (open); pp: pp_invalid at plug-in (step 1), pp_lost "
    "(emergency) with the output live; diode: diode_fault; a bounce acts at the first open sample (100 ms)",
    "insulation_drop": "before: isolation Fault in the cable check (step 2); during: the IMD stops it "
    "(isolation_fault, 0 A within 0.3 s)",
    "contactor_welded": "WeldingDetection: inlet live, EvContactorState Error: contactor_welded, connector "
    "stays locked; welded before the cable check: battery on the inlet at CableCheckReq (step 2)",
    "temperature_runaway": "EVErrorCode FAILED_RESSTemperatureInhibit: ev_ress_temperature_inhibit",
    "cell_over_voltage": "EVErrorCode FAILED_ChargingVoltageOutOfRange: ev_charging_voltage_out_of_range",
    "cell_imbalance": "the highest cell reaches its cutoff: taper, then ChargingComplete early (a short "
    "session, vehicle_stop)",
    "power_stage_fault": "EVSE_Malfunction, StopCharging, output off: charger_malfunction",
    "operator_stop": "EVSENotification StopCharging, EVSE_Shutdown, 0 A; the EV ends normally: operator_stop",
}
