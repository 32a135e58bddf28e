"""CHAdeMO stop reasons: code, whose fault, and the cause in an operator's words (§8)."""

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
        StopReason("insulation_fault", _V, "insulation test failed"),
        StopReason("insulation_timeout", _C, "insulation test did not complete"),
        StopReason("contactor_timeout", _V, "vehicle did not close its contactors after d2 (102.5.3)"),
        StopReason("no_current_request", _V, "no current request within the limit"),
        StopReason("can_timeout", _L, "vehicle CAN frames (0x102) stopped arriving"),
        StopReason("bus_error", _L, "the CAN interface failed (bus-off or interface down)"),
        StopReason("charge_time_limit", _C, "maximum charging time reached", normal=True),
        StopReason("threshold_voltage", _C, "output reached the threshold voltage"),
        StopReason("charger_malfunction", _C, "charger power stage fault"),
        StopReason("operator_stop", _O, "operator stopped the session", normal=True),
        StopReason("interrupted", _O, "session interrupted (Ctrl-C)", normal=True),
        StopReason("welding_check_timeout", _V, "vehicle never reported its welding check done (102.5.3)"),
        StopReason("output_not_discharged", _C, "output voltage did not fall below 10 V for unlocking"),
    )
}
