"""CCS bridge stop reasons: code, whose fault, the cause in an operator's words (§8), and how the
charger stops for each (through ``error`` with the link up, or ``emergency_stop``)."""

from __future__ import annotations

from ...errors import Origin
from ..base import StopReason
from .bridge import EvErrorCode, ResponseCode

_V, _C, _L, _O = Origin.VEHICLE, Origin.CHARGER, Origin.LINK, Origin.OPERATOR

REASONS: dict[str, StopReason] = {
    r.code: r
    for r in (
        # normal ends
        StopReason("vehicle_stop", _V, "vehicle ended charging (PowerDelivery(ReadyToCharge = false))", True),
        StopReason(
            "vehicle_stop_before_charging", _V, "vehicle ended the session before charging", normal=True
        ),
        StopReason("operator_stop", _O, "operator stopped the session", normal=True),
        StopReason("interrupted", _O, "session interrupted (Ctrl-C)", normal=True),
        # vehicle
        StopReason("ev_not_ready", _V, "vehicle withdrew EVReady"),
        StopReason("ev_ress_temperature_inhibit", _V, "vehicle error FAILED_RESSTemperatureInhibit"),
        StopReason("ev_shift_position", _V, "vehicle error FAILED_EVShiftPosition (not in park)"),
        StopReason("ev_connector_lock_fault", _V, "vehicle error FAILED_ChargerConnectorLockFault"),
        StopReason("ev_ress_malfunction", _V, "vehicle error FAILED_EVRESSMalfunction"),
        StopReason(
            "ev_charging_current_differential", _V, "vehicle error FAILED_ChargingCurrentdifferential"
        ),
        StopReason("ev_charging_voltage_out_of_range", _V, "vehicle error FAILED_ChargingVoltageOutOfRange"),
        StopReason(
            "ev_charging_system_incompatibility", _V, "vehicle error FAILED_ChargingSystemIncompatibility"
        ),
        StopReason("ev_error_reserved", _V, "vehicle sent a reserved EVErrorCode"),
        StopReason("ev_error_no_data", _V, "vehicle error NoData"),
        StopReason(
            "incompatible", _V, "vehicle limits do not fit this charger (FAILED_WrongChargeParameter)"
        ),
        StopReason("sequence_error", _V, "vehicle request out of sequence (FAILED_SequenceError)"),
        StopReason("cp_state_b", _V, "control pilot fell from C to B while energised (EV paused / stopped)"),
        StopReason("cp_not_c", _V, "vehicle asked for the cable check without switching CP to state C"),
        StopReason("cp_state_a", _V, "control pilot state A: vehicle disconnected"),
        StopReason("cp_state_e", _V, "control pilot state E: CP shorted to PE"),
        StopReason("cp_invalid", _V, "control pilot level outside every state window"),
        StopReason("diode_fault", _V, "EV diode missing or shorted (CP low level not -12 V)"),
        StopReason(
            "pp_invalid", _V, "proximity pilot resistance invalid (worn pin, broken resistor, no plug)"
        ),
        StopReason("no_vehicle", _V, "no vehicle on the pilot (CP not in state B)"),
        StopReason("link_setup_timeout", _V, "vehicle never opened the session (SLAC / SDP / SessionSetup)"),
        StopReason("sequence_timeout", _V, "vehicle sent no next request (V2G_SECC_Sequence_Timeout)"),
        StopReason("ready_to_charge_timeout", _V, "vehicle not ready to charge in time (PowerDelivery)"),
        StopReason("isolation_fault", _V, "insulation test failed (isolation status Fault)"),
        StopReason("precharge_timeout", _V, "vehicle did not close its contactors after pre-charge"),
        StopReason("alive_counter_frozen", _V, "vehicle alive counter stopped: controller hung"),
        # §3, §8: PP open or invalid while the output is live: the plug may be coming out
        StopReason("pp_lost", _V, "proximity pilot lost with the output live (worn contact, plug out)"),
        # §1, §4 #1: supportedAppProtocol without DIN 70121 (Failed_NoNegotiation); this SECC speaks DIN only
        StopReason("no_common_protocol", _V, "vehicle offers no application protocol this charger speaks"),
        # §4 #12, §7: WeldingDetection: the inlet stays live with the vehicle's contactors open; or §2
        # (S2 closes only with the contactors open): battery voltage on the inlet at CableCheckReq
        StopReason("contactor_welded", _V, "vehicle contactors welded: the inlet stays live with them open"),
        # link
        StopReason("can_timeout", _L, "vehicle CAN frames stopped arriving"),
        # §9: SNA / Invalid in a field the stage needs, or a wrong DLC: the frame is unusable for 1 s
        StopReason("invalid_frame", _L, "vehicle frames arrive unusable (wrong length, SNA or Invalid)"),
        # charger
        StopReason("cable_check_timeout", _C, "cable check did not complete"),
        StopReason("precharge_failed", _C, "output did not reach the pre-charge voltage"),
        StopReason("charger_malfunction", _C, "charger power stage fault"),
        StopReason("output_not_discharged", _C, "output voltage did not fall below 60 V for unlocking"),
        # operator
        StopReason("authorization_timeout", _O, "session not authorised in time"),
        StopReason("pp_unlatched", _O, "Type 1 latch button pressed: connected, not latched", normal=True),
    )
}

# Reasons that stop through emergency_stop: the link or the pilot can no longer be trusted, or the
# plug may be coming out.  Every other reason stops through error (link up) or, for a normal stop
# while power flows, through power_delivery_stop.
EMERGENCY: frozenset[str] = frozenset(
    {
        "can_timeout",
        "invalid_frame",
        "alive_counter_frozen",
        "pp_lost",
        "sequence_timeout",
        "cp_state_a",
        "cp_state_e",
        "cp_invalid",
        "diode_fault",
    }
)

# ResponseCode the charger answers with once it stops for a reason (OK if not listed).
RESPONSE: dict[str, ResponseCode] = {
    "incompatible": ResponseCode.FAILED_WRONG_CHARGE_PARAMETER,
    "sequence_error": ResponseCode.FAILED_SEQUENCE_ERROR,
    "cp_not_c": ResponseCode.FAILED_SEQUENCE_ERROR,
    "authorization_timeout": ResponseCode.FAILED_CONTRACT_CANCELED,
    # supportedAppProtocolRes Failed_NoNegotiation has no DIN ResponseCode: plain FAILED
    "no_common_protocol": ResponseCode.FAILED,
}

EV_ERRORS: dict[int, str] = {
    EvErrorCode.FAILED_RESS_TEMPERATURE_INHIBIT: "ev_ress_temperature_inhibit",
    EvErrorCode.FAILED_EV_SHIFT_POSITION: "ev_shift_position",
    EvErrorCode.FAILED_CHARGER_CONNECTOR_LOCK_FAULT: "ev_connector_lock_fault",
    EvErrorCode.FAILED_EV_RESS_MALFUNCTION: "ev_ress_malfunction",
    EvErrorCode.FAILED_CHARGING_CURRENT_DIFFERENTIAL: "ev_charging_current_differential",
    EvErrorCode.FAILED_CHARGING_VOLTAGE_OUT_OF_RANGE: "ev_charging_voltage_out_of_range",
    EvErrorCode.RESERVED_A: "ev_error_reserved",
    EvErrorCode.RESERVED_B: "ev_error_reserved",
    EvErrorCode.RESERVED_C: "ev_error_reserved",
    EvErrorCode.FAILED_CHARGING_SYSTEM_INCOMPATIBILITY: "ev_charging_system_incompatibility",
    EvErrorCode.NO_DATA: "ev_error_no_data",
}
