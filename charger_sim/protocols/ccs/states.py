"""CCS (DIN SPEC 70121 bridge profile) charger stages and transitions: the table is the specification.

The stages follow the DIN 70121 DC sequence as the charger (SECC + power stage) sees it.  Each has a
number, sent as ``EvseStatus.EvseStage``: the message stages carry the number of the ``EvRequest``
they answer (3-6, 8-14).  § numbers refer to the CCS fact sheet (``shared/protocols/ccs-over-can.md``).

Each stage maps to one of the seven handshake steps users speak of (``base.HANDSHAKE_STEPS``).  CCS
walks them in the order 1, 3, 4, 2, 5, 6, 7: plug and pilot, the EV's controller opens the session,
parameters are exchanged, the charger tests the insulation, pre-charges, the EV closes its
contactors, then the current demand loop and the end of the session.
"""

from __future__ import annotations

import enum

from ..machine import Transition
from .bridge import Request


class Stage(str, enum.Enum):
    IDLE = "idle"
    PLUGGED_IN = "plugged_in"
    CP_B_PWM = "cp_b_pwm"
    SESSION_SETUP = "session_setup"
    SERVICE_DISCOVERY = "service_discovery"
    AUTHORIZATION = "authorization"
    CHARGE_PARAMETER_DISCOVERY = "charge_parameter_discovery"
    CP_STATE_C = "cp_state_c"
    CABLE_CHECK = "cable_check"
    PRECHARGE = "precharge"
    POWER_DELIVERY_START = "power_delivery_start"
    CURRENT_DEMAND = "current_demand"
    POWER_DELIVERY_STOP = "power_delivery_stop"
    WELDING_DETECTION = "welding_detection"
    SESSION_STOP = "session_stop"
    UNLOCK = "unlock"
    DONE = "done"
    PAUSED = "paused"
    ERROR = "error"
    EMERGENCY_STOP = "emergency_stop"


# EvseStage on the bus (255 = SNA).  3-6 and 8-14 equal the EvRequest the stage answers.
NUMBER: dict[Stage, int] = {
    Stage.IDLE: 0,
    Stage.PLUGGED_IN: 1,
    Stage.CP_B_PWM: 2,
    Stage.SESSION_SETUP: 3,
    Stage.SERVICE_DISCOVERY: 4,
    Stage.AUTHORIZATION: 5,
    Stage.CHARGE_PARAMETER_DISCOVERY: 6,
    Stage.CP_STATE_C: 7,
    Stage.CABLE_CHECK: 8,
    Stage.PRECHARGE: 9,
    Stage.POWER_DELIVERY_START: 10,
    Stage.CURRENT_DEMAND: 11,
    Stage.POWER_DELIVERY_STOP: 12,
    Stage.WELDING_DETECTION: 13,
    Stage.SESSION_STOP: 14,
    Stage.UNLOCK: 15,
    Stage.DONE: 16,
    Stage.PAUSED: 17,
    Stage.ERROR: 18,
    Stage.EMERGENCY_STOP: 19,
}
STAGE_SNA = 255

STEP: dict[Stage, int] = {
    Stage.IDLE: 1,
    Stage.PLUGGED_IN: 1,
    Stage.CP_B_PWM: 1,
    Stage.SESSION_SETUP: 3,
    Stage.SERVICE_DISCOVERY: 4,
    Stage.AUTHORIZATION: 4,
    Stage.CHARGE_PARAMETER_DISCOVERY: 4,
    Stage.CP_STATE_C: 4,
    Stage.CABLE_CHECK: 2,
    Stage.PRECHARGE: 5,
    Stage.POWER_DELIVERY_START: 6,
    Stage.CURRENT_DEMAND: 7,
    Stage.POWER_DELIVERY_STOP: 7,
    Stage.WELDING_DETECTION: 7,
    Stage.SESSION_STOP: 7,
    Stage.UNLOCK: 7,
    Stage.DONE: 7,
    Stage.PAUSED: 7,
    Stage.ERROR: 7,
    Stage.EMERGENCY_STOP: 7,
}

DESCRIPTION: dict[Stage, str] = {
    Stage.IDLE: "EVSE powered, +12 V on CP (state A), waiting for the operator's start",
    Stage.PLUGGED_IN: "PP read and decoded, CP state B1 (9 V, no PWM) confirmed",
    Stage.CP_B_PWM: "CP state B2: 5 % PWM, diode checked; SLAC, SDP, TCP and supportedAppProtocol",
    Stage.SESSION_SETUP: "SessionSetup answered OK_NewSessionEstablished, DIN 70121 agreed",
    Stage.SERVICE_DISCOVERY: "ServiceDiscovery / ServicePaymentSelection answered (ExternalPayment)",
    Stage.AUTHORIZATION: "ContractAuthentication: Ongoing until the operator authorises, then Finished",
    Stage.CHARGE_PARAMETER_DISCOVERY: "limits exchanged and checked; waiting for the EV to switch CP to C",
    Stage.CP_STATE_C: "CP state C seen: connector locked, output relays closed",
    Stage.CABLE_CHECK: "isolation test at the cable-check voltage, <= 2 A, then bleed below 60 V",
    Stage.PRECHARGE: "output regulated to EvTargetVoltage with <= 2 A until the EV closes its contactors",
    Stage.POWER_DELIVERY_START: "PowerDelivery(ReadyToCharge = true): battery on the DC link, 0 A",
    Stage.CURRENT_DEMAND: "output current follows EvTargetCurrent every 100 ms, 20 A/s",
    Stage.POWER_DELIVERY_STOP: "PowerDelivery(ReadyToCharge = false) or StopCharging: current to 0 A",
    Stage.WELDING_DETECTION: "output off; present voltage reported while the EV checks its contactors",
    Stage.SESSION_STOP: "SessionStop answered",
    Stage.UNLOCK: "PWM off, relays open; connector unlocked once the output is below 60 V",
    Stage.DONE: "session over",
    Stage.PAUSED: "CP fell from C to B in the current demand loop: 0 A, waiting for C again or a stop",
    Stage.ERROR: "charger stop with the link up (EVSE_Shutdown / EVSE_Malfunction, StopCharging, "
    "FAILED answers): output off; the EV may still walk PowerDelivery(stop) .. SessionStop",
    Stage.EMERGENCY_STOP: "link or pilot lost, or a safety fault: output off at once, PWM off, no answers",
}


# Stages where the V2G session is open and the charger can still stop normally.
BEFORE_POWER = (
    Stage.SESSION_SETUP,
    Stage.SERVICE_DISCOVERY,
    Stage.AUTHORIZATION,
    Stage.CHARGE_PARAMETER_DISCOVERY,
    Stage.CP_STATE_C,
    Stage.CABLE_CHECK,
    Stage.PRECHARGE,
)
POWER = (Stage.POWER_DELIVERY_START, Stage.CURRENT_DEMAND, Stage.PAUSED)
ACTIVE = (Stage.PLUGGED_IN, Stage.CP_B_PWM, *BEFORE_POWER, *POWER)
ENDING = (Stage.POWER_DELIVERY_STOP, Stage.WELDING_DETECTION)

# Requests the charger may see in a stage without acting on them: the vehicle has not seen the
# answer yet, or waits for a condition (CP state C, the lock).  Any other new request there is a
# sequence error (FAILED_SequenceError); the requests that move a stage on are in the charger core.
TOLERATED: dict[Stage, frozenset[int]] = {
    Stage.PLUGGED_IN: frozenset({Request.NONE}),
    Stage.CP_B_PWM: frozenset({Request.NONE}),
    Stage.SESSION_SETUP: frozenset({Request.SESSION_SETUP}),
    Stage.SERVICE_DISCOVERY: frozenset({Request.SERVICE_DISCOVERY}),
    Stage.AUTHORIZATION: frozenset({Request.CONTRACT_AUTHENTICATION}),
    Stage.CHARGE_PARAMETER_DISCOVERY: frozenset({Request.CHARGE_PARAMETER_DISCOVERY, Request.CABLE_CHECK}),
    Stage.CP_STATE_C: frozenset({Request.CHARGE_PARAMETER_DISCOVERY, Request.CABLE_CHECK}),
    Stage.CABLE_CHECK: frozenset({Request.CABLE_CHECK}),
    Stage.PRECHARGE: frozenset({Request.PRECHARGE}),
    Stage.POWER_DELIVERY_START: frozenset({Request.POWER_DELIVERY_START}),
    Stage.CURRENT_DEMAND: frozenset({Request.CURRENT_DEMAND}),
    Stage.PAUSED: frozenset({Request.CURRENT_DEMAND}),
    Stage.POWER_DELIVERY_STOP: frozenset({Request.CURRENT_DEMAND, Request.POWER_DELIVERY_STOP}),
    Stage.WELDING_DETECTION: frozenset({Request.WELDING_DETECTION}),
}
# Signals a vehicle frame must carry (not SNA, not Invalid) in the stages that act on them: §4 (the
# DIN request content: DC_EVStatus in every DC request from ChargeParameterDiscovery on, the targets of
# PreChargeReq and CurrentDemandReq) and §9 (SNA decodes to "no value", never to a number; 2-bit flags
# 2 Invalid / 3 SNA).  A frame without them is unusable: the charger keeps the last good values and the
# frame does not count as received (its rx_timeout runs on; then invalid_frame).  EvMaxLimits is checked
# where it is read (ChargeParameterDiscovery: FAILED_WrongChargeParameter); EvBatteryInfo is optional.
_DC_STATUS = frozenset(
    (Stage.CHARGE_PARAMETER_DISCOVERY, Stage.CP_STATE_C, Stage.CABLE_CHECK, Stage.PRECHARGE, *POWER, *ENDING)
)
_TARGETS = frozenset((Stage.PRECHARGE, Stage.CURRENT_DEMAND, Stage.PAUSED))
REQUIRED: dict[str, tuple[tuple[str, frozenset[Stage]], ...]] = {
    "EvStatus": (
        ("EvRequest", frozenset((*ACTIVE, *ENDING, Stage.ERROR))),
        ("EvReady", _DC_STATUS),
        ("EvErrorCode", _DC_STATUS),
        ("EvSoc", _DC_STATUS),
    ),
    "EvTargets": (("EvTargetVoltage", _TARGETS), ("EvTargetCurrent", _TARGETS)),
}

TRANSITIONS: tuple[Transition[Stage], ...] = (
    Transition("start", (Stage.IDLE,), Stage.PLUGGED_IN, "§3, §2: plug detected: PP read, CP B1 (9 V)"),
    Transition("abandon", (Stage.IDLE,), Stage.DONE, "stopped before start, nothing to undo"),
    Transition("pwm_on", (Stage.PLUGGED_IN,), Stage.CP_B_PWM, "§2: 5 % PWM (B2), diode check, §1: link"),
    Transition(
        "session_setup",
        (Stage.CP_B_PWM,),
        Stage.SESSION_SETUP,
        "§4 #1-2: supportedAppProtocol (DIN), SessionSetupReq",
    ),
    Transition(
        "service_discovery",
        (Stage.SESSION_SETUP,),
        Stage.SERVICE_DISCOVERY,
        "§4 #3-4: ServiceDiscovery, ServicePaymentSelection",
    ),
    Transition(
        "authorization", (Stage.SERVICE_DISCOVERY,), Stage.AUTHORIZATION, "§4 #5: ContractAuthentication"
    ),
    Transition(
        "charge_parameters",
        (Stage.AUTHORIZATION,),
        Stage.CHARGE_PARAMETER_DISCOVERY,
        "§4 #6: ChargeParameterDiscovery",
    ),
    Transition("cp_c", (Stage.CHARGE_PARAMETER_DISCOVERY,), Stage.CP_STATE_C, "§2: EV switches B -> C; lock"),
    Transition("cable_check", (Stage.CP_STATE_C,), Stage.CABLE_CHECK, "§4 #7, §7: CableCheckReq"),
    Transition("precharge", (Stage.CABLE_CHECK,), Stage.PRECHARGE, "§4 #8, §7: PreChargeReq"),
    Transition(
        "power_delivery",
        (Stage.PRECHARGE,),
        Stage.POWER_DELIVERY_START,
        "§4 #9: PowerDelivery(ReadyToCharge = true)",
    ),
    Transition(
        "current_demand", (Stage.POWER_DELIVERY_START,), Stage.CURRENT_DEMAND, "§4 #10: CurrentDemandReq"
    ),
    Transition("pause", (Stage.CURRENT_DEMAND,), Stage.PAUSED, "§2, §8: CP C -> B: stop current at once"),
    Transition("resume", (Stage.PAUSED,), Stage.CURRENT_DEMAND, "§2: CP back to C (B-C toggle)"),
    Transition("ramp_down", POWER, Stage.POWER_DELIVERY_STOP, "§8: StopCharging, EVSE_Shutdown, 0 A"),
    Transition(
        "power_delivery_stop",
        (Stage.PRECHARGE, *POWER, Stage.ERROR),
        Stage.POWER_DELIVERY_STOP,
        "§4 #11: PowerDelivery(ReadyToCharge = false)",
    ),
    Transition(
        "welding_detection",
        (Stage.POWER_DELIVERY_STOP, Stage.ERROR),
        Stage.WELDING_DETECTION,
        "§4 #12, §7: WeldingDetectionReq",
    ),
    Transition(
        "session_stop",
        (*BEFORE_POWER, *ENDING, Stage.ERROR),
        Stage.SESSION_STOP,
        "§4 #13: SessionStopReq",
    ),
    Transition("error", ACTIVE, Stage.ERROR, "§8: charger stop with the link up: FAILED / EVSE_Shutdown"),
    Transition(
        "emergency",
        (*ACTIVE, *ENDING, Stage.ERROR),
        Stage.EMERGENCY_STOP,
        "§8: timeout, CAN or CP loss: output off, no further answers",
    ),
    Transition("close", (Stage.SESSION_STOP,), Stage.UNLOCK, "§2: PWM off, relays open"),
    Transition("release", (Stage.ERROR, Stage.EMERGENCY_STOP), Stage.UNLOCK, "§8: output off, relays open"),
    Transition("unlocked", (Stage.UNLOCK,), Stage.DONE, "§7: output < 60 V, connector unlocked"),
    Transition("give_up", (Stage.UNLOCK,), Stage.DONE, "§7: output stays >= 60 V: stays locked"),
)
