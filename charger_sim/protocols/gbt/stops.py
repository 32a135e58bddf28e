"""GB/T 27930 stop reasons: code, whose fault, the cause in an operator's words, and what goes on the bus.

``CST_BITS`` says which CST fields (DBC signal names) a charger-initiated stop sets; ``CEM_BIT`` says
which CEM timeout flag a receive timeout sets (§4.4, §8).  ``BST_REASONS`` maps the BST fields the
BMS can set to the charger's reason codes, faults before reasons (§4.4).
"""

from __future__ import annotations

from ...errors import Origin
from ..base import StopReason

_V, _C, _L, _O = Origin.VEHICLE, Origin.CHARGER, Origin.LINK, Origin.OPERATOR

REASONS: dict[str, StopReason] = {
    r.code: r
    for r in (
        # BMS stops (BST): byte 1 reasons, then bytes 2-3 faults and byte 4 errors
        StopReason("bms_soc_target", _V, "BMS stopped: SOC target reached (BST 1.1-2)", normal=True),
        StopReason(
            "bms_total_voltage", _V, "BMS stopped: total-voltage setpoint reached (BST 1.3-4)", normal=True
        ),
        StopReason("bms_cell_voltage", _V, "BMS stopped: a cell reached its voltage limit (BST 1.5-6)"),
        StopReason("bms_stop", _V, "BMS stopped without giving a reason (BST)", normal=True),
        StopReason("bms_insulation_fault", _V, "BMS stopped: insulation fault (BST 2.1-2)"),
        StopReason("bms_connector_over_temperature", _V, "BMS stopped: output connector over-temperature"),
        StopReason("bms_component_over_temperature", _V, "BMS stopped: BMS component over-temperature"),
        StopReason("bms_connector_fault", _V, "BMS stopped: charging connector fault (BST 2.7-8)"),
        StopReason("bms_battery_over_temperature", _V, "BMS stopped: battery over-temperature (BST 3.1-2)"),
        StopReason("bms_relay_fault", _V, "BMS stopped: high-voltage relay fault (BST 3.3-4)"),
        StopReason("bms_cc2_fault", _V, "BMS stopped: detection point 2 (CC2) voltage fault (BST 3.5-6)"),
        StopReason("bms_other_fault", _V, "BMS stopped: other fault (BST 3.7-8)"),
        StopReason("bms_over_current", _V, "BMS stopped: over-current (BST 4.1-2)"),
        StopReason("bms_abnormal_voltage", _V, "BMS stopped: abnormal voltage (BST 4.3-4)"),
        # BSM states abnormal: the charger stops with a CST fault stop (§4.3, §8)
        StopReason("bsm_cell_voltage", _V, "BSM reports a cell voltage too high or too low"),
        StopReason("bsm_soc", _V, "BSM reports the SOC too high or too low"),
        StopReason("bsm_over_current", _V, "BSM reports charging over-current"),
        StopReason("bsm_over_temperature", _V, "BSM reports battery over-temperature"),
        StopReason("bsm_insulation", _V, "BSM reports an insulation fault"),
        StopReason("bsm_connector", _V, "BSM reports an output connector fault"),
        StopReason("pause_timeout", _V, "BMS paused charging (BSM permit 00) for more than 10 min"),
        StopReason("bem_received", _V, "BMS reported a receive timeout (BEM)"),
        # receive timeouts on the charger side (CEM)
        StopReason("brm_timeout", _V, "BMS never sent its recognition message BRM (CEM SPN 3921)"),
        StopReason("bcp_timeout", _V, "BMS never sent its battery parameters BCP (CEM SPN 3922)"),
        StopReason("bro_timeout", _V, "BMS never became ready: BRO 0xAA missing (CEM SPN 3923)"),
        StopReason("bcs_timeout", _L, "BCS stopped arriving (CEM SPN 3924)"),
        StopReason("bcl_timeout", _L, "BCL stopped arriving (CEM SPN 3925)"),
        StopReason("bst_timeout", _V, "BMS never answered CST with BST (CEM SPN 3926)"),
        StopReason("bsd_timeout", _V, "BMS never sent its statistics BSD (CEM SPN 3927)"),
        StopReason("can_timeout", _L, "the CAN bus failed: frames could no longer be exchanged"),
        # charger-side decisions
        StopReason("battery_incompatible", _V, "battery incompatible with this charger (BCP vs CML)"),
        StopReason("battery_voltage_mismatch", _V, "battery voltage at the connector does not match BCP"),
        StopReason("no_battery_voltage", _V, "no battery voltage at the connector after BRO 0xAA"),
        StopReason("precharge_timeout", _C, "output could not be pre-charged to the battery voltage"),
        StopReason("insulation_fault", _V, "insulation test failed"),
        StopReason("insulation_timeout", _C, "insulation test did not complete"),
        StopReason("charge_time_limit", _C, "maximum charging time reached", normal=True),
        StopReason("charger_malfunction", _C, "charger power stage fault"),
        StopReason("operator_stop", _O, "operator stopped the session", normal=True),
        StopReason("interrupted", _O, "session interrupted (Ctrl-C)", normal=True),
        StopReason("output_not_discharged", _C, "output voltage did not fall below 60 V for unlocking"),
        # fault catalogue (issue #5): line supervision, adhesion check, version check.
        # GB/T 18487.1 annex B: CC1 reads 4 V only with the plug fully connected (switch S closed)
        StopReason("cc1_fault", _V, "connector not fully connected: detection point 1 (CC1) is not at 4 V"),
        # GB/T 18487.1 adhesion check: with K1/K2 (and the vehicle's contactors) open the output is dead
        StopReason("contactor_welded", _C, "DC contactors welded: output still live with K1/K2 open"),
        # §4.1 BRM bytes 1-3, §2 compatibility, §11: V1.1 (2015) and V1.0 (2011) only
        StopReason("protocol_incompatible", _V, "BMS protocol version (BRM bytes 1-3) not supported"),
    )
}

# BST field -> reason, in priority order (faults and errors before the byte-1 reasons).
BST_REASONS: tuple[tuple[str, str], ...] = (
    ("InsulationFault", "bms_insulation_fault"),
    ("OutputConnectorOverTemp", "bms_connector_over_temperature"),
    ("BmsComponentOverTemp", "bms_component_over_temperature"),
    ("ChargingConnectorFault", "bms_connector_fault"),
    ("BatteryOverTemp", "bms_battery_over_temperature"),
    ("HvRelayFault", "bms_relay_fault"),
    ("Cc2VoltageFault", "bms_cc2_fault"),
    ("OtherFault", "bms_other_fault"),
    ("OverCurrent", "bms_over_current"),
    ("AbnormalVoltage", "bms_abnormal_voltage"),
    ("CellVoltageSetpointReached", "bms_cell_voltage"),
    ("TotalVoltageSetpointReached", "bms_total_voltage"),
    ("SocTargetReached", "bms_soc_target"),
)

# BSM state field -> reason; the value 01 is abnormal, and for the two voltage/SOC fields 10 too
# ("too low"); for the others 10 is "untrusted" and keeps the previous state (§1, §4.3).
BSM_STATES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("CellVoltageState", "bsm_cell_voltage", frozenset({1, 2})),
    ("SocState", "bsm_soc", frozenset({1, 2})),
    ("OverCurrent", "bsm_over_current", frozenset({1})),
    ("OverTemperature", "bsm_over_temperature", frozenset({1})),
    ("Insulation", "bsm_insulation", frozenset({1})),
    ("OutputConnector", "bsm_connector", frozenset({1})),
)

# CST fields a charger-initiated stop sets (every other 2-bit field 00).
_FAULT_OTHER = ("FaultStop", "OtherFault")
CST_BITS: dict[str, tuple[str, ...]] = {
    "operator_stop": ("ManualStop",),  # 04 00 F0 F0, as in capture A
    "interrupted": ("ManualStop",),
    "charge_time_limit": ("ConditionReached",),
    "battery_incompatible": ("FaultStop", "EnergyNotDeliverable"),
    "battery_voltage_mismatch": ("FaultStop", "AbnormalVoltage"),
    "no_battery_voltage": ("FaultStop", "AbnormalVoltage"),
    "precharge_timeout": ("FaultStop", "EnergyNotDeliverable"),
    "charger_malfunction": _FAULT_OTHER,
    "pause_timeout": _FAULT_OTHER,
    "cc1_fault": ("FaultStop", "ChargingConnectorFault"),  # CST byte 2 bits 3-4
    "contactor_welded": _FAULT_OTHER,
    "protocol_incompatible": _FAULT_OTHER,
}
BMS_STOPPED: tuple[str, ...] = ("BmsStopped",)  # 40 00 F0 F0: the answer to a BST

# Receive timeout -> CEM flag (§4.4).
CEM_BIT: dict[str, str] = {
    "brm_timeout": "TimeoutBrm",
    "bcp_timeout": "TimeoutBcp",
    "bro_timeout": "TimeoutBro",
    "bcs_timeout": "TimeoutBcs",
    "bcl_timeout": "TimeoutBcl",
    "bst_timeout": "TimeoutBst",
    "bsd_timeout": "TimeoutBsd",
}


def cst_bits(code: str) -> tuple[str, ...]:
    """CST fields for a stop with reason ``code`` (BMS stops are answered with ``BmsStopped``)."""
    if code in CST_BITS:
        return CST_BITS[code]
    if code.startswith("bms_"):
        return BMS_STOPPED
    return _FAULT_OTHER  # BSM abnormal and anything else the charger decides is a fault stop
