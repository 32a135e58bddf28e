"""Simulated GB/T BMS stages and transitions (the table is the documentation), and which of its
receive timeouts raise which BEM flag (§4.4, §7).  Section numbers refer to the GB/T fact sheet.
"""

from __future__ import annotations

import enum

from ..machine import Transition


class VStage(str, enum.Enum):
    ASLEEP = "asleep"
    HANDSHAKE = "handshake"
    RECOGNITION = "recognition"
    CONFIGURATION = "configuration"
    READY = "ready"
    CHARGING = "charging"
    STOPPING = "stopping"
    STATISTICS = "statistics"
    ERROR = "error"
    DONE = "done"


V_STEP = {
    VStage.ASLEEP: 1,
    VStage.HANDSHAKE: 3,
    VStage.RECOGNITION: 4,
    VStage.CONFIGURATION: 4,
    VStage.READY: 6,
    VStage.CHARGING: 7,
    VStage.STOPPING: 7,
    VStage.STATISTICS: 7,
    VStage.ERROR: 7,
    VStage.DONE: 7,
}


VTransition = Transition  # the vehicle table uses the same row type


HOUSEKEEPING_PERIOD = 0.1  # s: the BMS's own cycle when it sends nothing
ASLEEP_OR_DONE = (VStage.ASLEEP, VStage.DONE)
V_TALKING = (VStage.RECOGNITION, VStage.CONFIGURATION, VStage.READY, VStage.CHARGING)
V_AWAKE = (VStage.HANDSHAKE, *V_TALKING, VStage.STOPPING, VStage.STATISTICS, VStage.ERROR)

V_TRANSITIONS: tuple[VTransition[VStage], ...] = (
    VTransition("wake", (VStage.ASLEEP,), VStage.HANDSHAKE, "§6 step 1: aux power on, BHM"),
    VTransition("crm", (VStage.HANDSHAKE, VStage.ERROR), VStage.RECOGNITION, "§6 step 3: CRM 0x00, BRM"),
    VTransition("recognised", (VStage.RECOGNITION,), VStage.CONFIGURATION, "§6 step 4: CRM 0xAA, BCP"),
    VTransition("ready", (VStage.CONFIGURATION,), VStage.READY, "§6 step 5: contactors closed, BRO 0xAA"),
    VTransition("charge", (VStage.READY,), VStage.CHARGING, "§6 step 7: CRO 0xAA, BCL/BCS/BSM"),
    VTransition("stop", V_TALKING, VStage.STOPPING, "§6 step 9: BST every 10 ms"),
    VTransition("statistics", (VStage.STOPPING,), VStage.STATISTICS, "§6 step 10: BSD"),
    VTransition("error", V_AWAKE, VStage.ERROR, "§8: BEM sent or CEM received; wait for CRM"),
    VTransition("sleep", V_AWAKE, VStage.DONE, "§6 step 11: aux power off"),
)


# BMS receive timeouts -> BEM flag and the stages they apply in (§4.4, §7).
BEM_FLAG = {
    "bms_crm": "TimeoutCrm00",
    "bms_crm_aa": "TimeoutCrmAA",
    "bms_cts_cml": "TimeoutCtsCml",
    "bms_cro": "TimeoutCro",
    "bms_cro_aa": "TimeoutCro",
    "bms_ccs": "TimeoutCcs",
    "bms_cst": "TimeoutCst",
    "bms_csd": "TimeoutCsd",
}
BEM_STAGES = {
    "bms_crm": (VStage.HANDSHAKE,),
    "bms_crm_aa": (VStage.RECOGNITION,),
    "bms_cts_cml": (VStage.CONFIGURATION,),
    "bms_cro": (VStage.READY,),
    "bms_cro_aa": (VStage.READY,),
    "bms_ccs": (VStage.CHARGING,),
    "bms_cst": (VStage.STOPPING,),
    "bms_csd": (VStage.STOPPING, VStage.STATISTICS),
}
