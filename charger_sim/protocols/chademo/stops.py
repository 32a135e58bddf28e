"""CHAdeMO stop reasons: code, whose fault, and the cause in an operator's words (§8).

Each row's comment cites the fact-sheet clause (or standard) the stop comes from.
"""

from __future__ import annotations

from ...errors import Origin
from ..base import StopReason

_V, _C, _L, _O = Origin.VEHICLE, Origin.CHARGER, Origin.LINK, Origin.OPERATOR

REASONS: dict[str, StopReason] = {
    r.code: r
    for r in (
        StopReason("vehicle_stop", _V, "vehicle ended charging (102.5.0 -> 0)", normal=True),
        StopReason(
            "vehicle_stop_before_charging", _V, "vehicle asked to stop before charging (102.5.4)", True
        ),
        StopReason("vehicle_over_voltage", _V, "vehicle reported a battery over-voltage fault (102.4.0)"),
        StopReason("vehicle_under_voltage", _V, "vehicle reported a battery under-voltage fault (102.4.1)"),
        StopReason("vehicle_current_deviation", _V, "vehicle reported a current-deviation fault (102.4.2)"),
        StopReason(
            "vehicle_high_temperature", _V, "vehicle reported a battery over-temperature fault (102.4.3)"
        ),
        StopReason("vehicle_voltage_deviation", _V, "vehicle reported a voltage-deviation fault (102.4.4)"),
        StopReason("vehicle_shift_position", _V, "vehicle is not in park (102.5.1)"),
        StopReason("vehicle_system_fault", _V, "vehicle reported a charging-system fault (102.5.2)"),
        StopReason("vehicle_not_awake", _V, "vehicle never woke up: no CAN frames after d1"),
        StopReason("no_permission", _V, "vehicle never granted charge permission (k / 102.5.0)"),
        StopReason("battery_incompatible", _V, "battery incompatible with this charger"),
        # §7 step 6 (test before d2); IEC 61851-23 insulation monitoring while the relays are closed
        StopReason("insulation_fault", _V, "insulation resistance below the fault threshold"),
        StopReason("insulation_timeout", _C, "insulation test did not complete"),
        StopReason("contactor_timeout", _V, "vehicle did not close its contactors after d2 (102.5.3)"),
        StopReason("no_current_request", _V, "no current request within the limit"),
        # §7 T11 (0x102 missing for 1 s) and §7 step 1 (0x100/0x102 not received within T1)
        StopReason("can_timeout", _L, "vehicle CAN frames stopped arriving"),
        StopReason("bus_error", _L, "the CAN interface failed (bus-off or interface down)"),
        StopReason("charge_time_limit", _C, "maximum charging time reached", normal=True),
        StopReason("threshold_voltage", _C, "output reached the threshold voltage"),
        StopReason("charger_malfunction", _C, "charger power stage fault"),
        StopReason("operator_stop", _O, "operator stopped the session", normal=True),
        StopReason("interrupted", _O, "session interrupted (Ctrl-C)", normal=True),
        StopReason("welding_check_timeout", _V, "vehicle never reported its welding check done (102.5.3)"),
        # §3, §8: k (pin 4) and 102.5.0 withdraw the permission together; k open while the next 0x102
        # still permits (or k never closing while 102.5.0 = 1) is a line fault, 109.5.4
        StopReason("k_line_fault", _V, "permission line k (pin 4) disagrees with 102.5.0: worn pin or wire"),
        # §3 (pin 7, plug present), §7 T15: connector detection lost, 109.5.4
        StopReason("proximity_lost", _V, "connector not detected (proximity, pin 7): unplugged or worn pin"),
        # §5.3 (output = min(102.3, 108.3); 102.1-2 <= 108.1-2), §5.5 109.5.4 "implausible request"
        StopReason("implausible_request", _V, "vehicle request outside the charger's announced limits"),
        # §7 step 6 (output < 10 V before the test), §7 T9 / step 12 (output collapses once the
        # contactors open), §10 (welding-detection DTCs): the connector stays locked while live
        StopReason("contactor_welded", _V, "vehicle contactors welded: battery voltage stays on the inlet"),
        StopReason("output_not_discharged", _C, "output voltage did not fall below 10 V for unlocking"),
    )
}
