"""CHAdeMO timing limits and electrical thresholds: the one table the cores and the tests use.

Sources: the project's CHAdeMO fact sheet (``shared/protocols/chademo.md``), which cites open
implementations and real captures; section numbers refer to it.
"""

from __future__ import annotations

from ..base import Limit

_ROWS = (
    Limit("cycle", 0.100, "§2, §7 T10", "every frame, both directions, 100 ms +-10 ms"),
    Limit("vehicle_can", 8.0, "§7 step 1, T1", "vehicle frames after d1; same budget as permission"),
    Limit("permission", 8.0, "§7 step 4, T1", "k closed and 102.5.0 = 1 within 8 s of d1 (real 3-4 s)"),
    Limit("can_loss", 1.0, "§7 T11", "loss of vehicle CAN: 'stop immediately'; implementations use 1 s"),
    Limit("insulation", 20.0, "§7 step 6, T2", "from charge permission to d2"),
    Limit("contactors", 4.0, "§7 step 7, T3", "after d2: 102.5.3 1->0 (protocol >= 2; real 1-2 s)"),
    Limit("contactors_fixed_wait", 2.0, "§6.2", "protocol <= 1: fixed wait after d2 instead of 102.5.3"),
    Limit("first_request", 4.0, "§7 step 8, T4", "first current request after contactors closed"),
    Limit("charging_flag", 0.5, "§7 step 9, T5", "set 109.5.0 after the first request (real 0.09 s)"),
    Limit("stop_current", 0.5, "§7 step 11, T6", "output current <= 5 A after a stop begins"),
    Limit("welding", 10.0, "§7 step 12, T7", "102.5.3 0->1 after current <= 5 A (typ. 4 s, max 10 s)"),
    Limit("welding_fixed_wait", 4.0, "§7 step 12", "protocol <= 1: fixed wait instead of 102.5.3"),
    Limit("d2_to_d1", 0.5, "§7 step 13, T8", "open d2, wait >= 500 ms, open d1"),
    Limit("output_collapse", 2.0, "§7 T9", "output <= 10 V within 2 s after the vehicle opens contactors"),
    Limit("unlock_wait", 5.0, "§7 step 14", "charger gives up waiting for output <= 10 V (charger fault)"),
    Limit("insulation_settle", 1.0, "§7 step 6", "hold at the test voltage while measuring"),
    # Vehicle-side limits (the simulated vehicle's own timers)
    Limit(
        "vehicle_charger_can_loss", 1.0, "§9", "vehicle gives up on a silent charger (kit implementations)"
    ),
    Limit(
        "vehicle_stop_giveup", 2.5, "§7 step 11, §9", "vehicle gives up if current not <= 5 A after its stop"
    ),
    Limit(
        "vehicle_current_deviation", 5.0, "§7 T13", ">= 10 A deviation for >= 5 s: current-deviation fault"
    ),
    Limit(
        "vehicle_voltage_deviation",
        1.0,
        "§7 T14",
        "voltage deviation persisting 1 s: fault (sheet: Leaf ~20 V)",
    ),
)

LIMITS: dict[str, Limit] = {row.name: row for row in _ROWS}

# Electrical thresholds (same sources).
STOP_CURRENT_A = 5.0  # §7 step 11: current considered stopped
OUTPUT_SAFE_V = 10.0  # §7 step 6/14: output < 10 V before the test and before unlocking
BLEED_DONE_V = 20.0  # §7 step 6: bleed to < 20 V after the insulation test
INSULATION_TEST_V = 500.0  # §7 step 6: ramp to ~480-500 V (capped at the available voltage)
INSULATION_OHM_PER_V = 100.0  # IEC 61851-23 insulation fault threshold (100 ohm/V)
INSULATION_WARN_OHM_PER_V = 500.0  # IEC 61851-23 warning band (100-500 ohm/V)
CURRENT_DEVIATION_A = 10.0  # §7 T13
VOLTAGE_DEVIATION_V = 20.0  # §7 T14
CURRENT_SLEW_A_PER_S = 20.0  # §7 T12
VEHICLE_REQUEST_STEP_A = 2.0  # §9: Leaf steps +2 A per 100 ms
LINE_ON = 0.75  # §3: a 12 V control line reads on at >= 9 V (window comparator; thresholds UNCERTAIN)
LINE_OFF = 0.25  # §3: ... and off at <= 3 V; in between the reading is out of band (never on)


def limit(name: str) -> float:
    return LIMITS[name].seconds
