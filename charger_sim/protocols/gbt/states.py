"""GB/T 27930-2015 charger stages and transitions: the table is the specification and the documentation.

Section numbers (§) refer to the project's GB/T fact sheet (``shared/protocols/gbt27930.md``).  Each
stage maps to one of the seven handshake steps users speak of (``base.HANDSHAKE_STEPS``).  GB/T walks
them in the order 1, 3, 2, 4, 5, 6, 7: the BMS wakes on the auxiliary power and answers CHM with BHM
before the charger tests the insulation; recognition and configuration are the negotiation.

The five phases of the standard group the stages: physical connection and auxiliary power (``idle``),
handshake (``handshake``, ``insulation_test``, ``recognition``), parameter configuration
(``configuration``, ``precharge``, ``contactors``), charging (``charging``) and end of charging
(``stopping``, ``statistics``, ``shutdown``).  ``error`` is the receive-timeout path of §8 (CEM, then
a re-handshake from CRM 0x00).
"""

from __future__ import annotations

import enum

from ..machine import Transition


class Stage(str, enum.Enum):
    IDLE = "idle"
    HANDSHAKE = "handshake"
    INSULATION_TEST = "insulation_test"
    RECOGNITION = "recognition"
    CONFIGURATION = "configuration"
    PRECHARGE = "precharge"
    CONTACTORS = "contactors"
    CHARGING = "charging"
    STOPPING = "stopping"
    STATISTICS = "statistics"
    ERROR = "error"
    SHUTDOWN = "shutdown"
    DONE = "done"


STEP: dict[Stage, int] = {
    Stage.IDLE: 1,
    Stage.HANDSHAKE: 3,
    Stage.INSULATION_TEST: 2,
    Stage.RECOGNITION: 4,
    Stage.CONFIGURATION: 4,
    Stage.PRECHARGE: 5,
    Stage.CONTACTORS: 6,
    Stage.CHARGING: 7,
    Stage.STOPPING: 7,
    Stage.STATISTICS: 7,
    Stage.ERROR: 7,
    Stage.SHUTDOWN: 7,
    Stage.DONE: 7,
}

PHASE: dict[Stage, str] = {
    Stage.IDLE: "physical connection",
    Stage.HANDSHAKE: "handshake",
    Stage.INSULATION_TEST: "handshake",
    Stage.RECOGNITION: "handshake",
    Stage.CONFIGURATION: "configuration",
    Stage.PRECHARGE: "configuration",
    Stage.CONTACTORS: "configuration",
    Stage.CHARGING: "charging",
    Stage.STOPPING: "end",
    Stage.STATISTICS: "end",
    Stage.ERROR: "error",
    Stage.SHUTDOWN: "end",
    Stage.DONE: "end",
}

DESCRIPTION: dict[Stage, str] = {
    Stage.IDLE: "plug detected (CC1), waiting for the operator's start",
    Stage.HANDSHAKE: "connector locked, auxiliary power on (K3/K4), CHM every 250 ms, waiting for BHM",
    Stage.INSULATION_TEST: "K1/K2 closed, output at min(BHM voltage, own max), measure, bleed; CHM continues",
    Stage.RECOGNITION: "CRM 0x00 until BRM (TP), then CRM 0xAA until BCP (TP)",
    Stage.CONFIGURATION: "BCP checked against own limits; CTS every 500 ms + CML every 250 ms until BRO 0xAA",
    Stage.PRECHARGE: "CRO 0x00; battery voltage checked against BCP; output pre-charged 1-10 V below it",
    Stage.CONTACTORS: "K1/K2 closed onto the battery, relays settling; CRO 0x00",
    Stage.CHARGING: "CRO 0xAA, then CCS every 50 ms; output follows BCL (CV or CC), BSM pause/resume",
    Stage.STOPPING: "CST every 10 ms, current ramped to <= 5 A, K1/K2 open; waiting for BST and BSD",
    Stage.STATISTICS: "BSD received: CSD every 250 ms",
    Stage.ERROR: "receive timeout: CEM every 250 ms, output < 5 A, K1/K2 open, then re-handshake",
    Stage.SHUTDOWN: "auxiliary power off, unlock when the output is < 60 V",
    Stage.DONE: "session over",
}




# Stages where the BMS is known (after CRM 0x00): stops go through CST, timeouts through CEM.
TALKING = (Stage.RECOGNITION, Stage.CONFIGURATION, Stage.PRECHARGE, Stage.CONTACTORS, Stage.CHARGING)

TRANSITIONS: tuple[Transition[Stage], ...] = (
    Transition("start", (Stage.IDLE,), Stage.HANDSHAKE, "§6 step 1: lock, aux power, CHM"),
    Transition("abandon", (Stage.IDLE,), Stage.DONE, "stopped before start, nothing to undo"),
    Transition("bms_seen", (Stage.HANDSHAKE,), Stage.INSULATION_TEST, "§6 step 2: BHM (or none after 5 s)"),
    Transition("insulation_passed", (Stage.INSULATION_TEST,), Stage.RECOGNITION, "§6 step 3: CRM 0x00"),
    Transition("parameters", (Stage.RECOGNITION,), Stage.CONFIGURATION, "§6 step 5: BCP ok, CTS + CML"),
    Transition("bms_ready", (Stage.CONFIGURATION,), Stage.PRECHARGE, "§6 step 6: BRO 0xAA, CRO 0x00"),
    Transition("precharged", (Stage.PRECHARGE,), Stage.CONTACTORS, "§6 step 6: close K1/K2"),
    Transition("charger_ready", (Stage.CONTACTORS,), Stage.CHARGING, "§6 step 7: CRO 0xAA"),
    Transition("stop", TALKING, Stage.STOPPING, "§6 step 9: CST every 10 ms, current <= 5 A"),
    Transition("timeout", TALKING, Stage.ERROR, "§8: CEM, output < 5 A, K1/K2 open"),
    Transition("retry", (Stage.ERROR,), Stage.RECOGNITION, "§8: re-handshake from CRM 0x00 (<= 3)"),
    Transition("give_up", (Stage.ERROR,), Stage.SHUTDOWN, "§8: retry limit reached"),
    Transition("statistics", (Stage.STOPPING,), Stage.STATISTICS, "§6 step 10: BSD, CSD every 250 ms"),
    Transition("end_timeout", (Stage.STOPPING,), Stage.ERROR, "§8: BSD timeout: CEM, no re-handshake"),
    Transition(
        "abort", (Stage.HANDSHAKE, Stage.INSULATION_TEST), Stage.SHUTDOWN, "§6: stop before recognition"
    ),
    Transition("statistics_sent", (Stage.STATISTICS,), Stage.SHUTDOWN, "§6 step 11: aux power off"),
    Transition("unlocked", (Stage.SHUTDOWN,), Stage.DONE, "§6 step 11: output < 60 V, unlock"),
    Transition(
        "kept_locked", (Stage.SHUTDOWN,), Stage.DONE, "§6 step 11: output still >= 60 V (welded): stay locked"
    ),
)
