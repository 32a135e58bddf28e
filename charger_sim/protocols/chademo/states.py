"""CHAdeMO charger stages and transitions: the table is the specification and the documentation.

Each stage maps to one of the seven handshake steps users speak of (see ``base.HANDSHAKE_STEPS``).
CHAdeMO walks them in the order 1, 3, 4, 2, 6, 5, 7: the vehicle wakes and negotiates before the
charger locks the connector and tests the insulation.
"""

from __future__ import annotations

import enum

from ..machine import Transition


class Stage(str, enum.Enum):
    IDLE = "idle"
    WAKE_UP = "wake_up"
    NEGOTIATION = "negotiation"
    INSULATION_TEST = "insulation_test"
    CONTACTORS = "contactors"
    PRECHARGE = "precharge"
    CHARGING = "charging"
    STOPPING = "stopping"
    WELDING_CHECK = "welding_check"
    SHUTDOWN = "shutdown"
    DONE = "done"


STEP: dict[Stage, int] = {
    Stage.IDLE: 1,
    Stage.WAKE_UP: 3,
    Stage.NEGOTIATION: 4,
    Stage.INSULATION_TEST: 2,
    Stage.CONTACTORS: 6,
    Stage.PRECHARGE: 5,
    Stage.CHARGING: 7,
    Stage.STOPPING: 7,
    Stage.WELDING_CHECK: 7,
    Stage.SHUTDOWN: 7,
    Stage.DONE: 7,
}

DESCRIPTION: dict[Stage, str] = {
    Stage.IDLE: "plug detected, waiting for the operator's start",
    Stage.WAKE_UP: "d1 closed, waiting for the vehicle's CAN frames",
    Stage.NEGOTIATION: "0x108/0x109 exchanged, waiting for charge permission (k + 102.5.0)",
    Stage.INSULATION_TEST: "connector locked, insulation test, bleed to < 20 V",
    Stage.CONTACTORS: "d2 closed, waiting for the vehicle's contactors (102.5.3 1->0)",
    Stage.PRECHARGE: "output matched to the battery, waiting for the first current request",
    Stage.CHARGING: "output current follows 102.3 every 100 ms",
    Stage.STOPPING: "stop flag set, current ramping down to <= 5 A",
    Stage.WELDING_CHECK: "output collapsed, waiting for the vehicle's welding check (102.5.3 0->1)",
    Stage.SHUTDOWN: "d2 then d1 opened, unlock when the output is < 10 V",
    Stage.DONE: "session over",
}




_ACTIVE = (
    Stage.WAKE_UP,
    Stage.NEGOTIATION,
    Stage.INSULATION_TEST,
    Stage.CONTACTORS,
    Stage.PRECHARGE,
    Stage.CHARGING,
)

TRANSITIONS: tuple[Transition[Stage], ...] = (
    Transition("start", (Stage.IDLE,), Stage.WAKE_UP, "§7 step 1: close d1"),
    Transition("abandon", (Stage.IDLE,), Stage.DONE, "§8: stopped before start, nothing to undo"),
    Transition("vehicle_seen", (Stage.WAKE_UP,), Stage.NEGOTIATION, "§7 step 2-3: start 0x108/0x109"),
    Transition(
        "permitted", (Stage.NEGOTIATION,), Stage.INSULATION_TEST, "§7 step 4-6: lock, insulation test"
    ),
    Transition("insulation_passed", (Stage.INSULATION_TEST,), Stage.CONTACTORS, "§7 step 7: close d2"),
    Transition("contactors_closed", (Stage.CONTACTORS,), Stage.PRECHARGE, "§7 step 8: match output"),
    Transition("current_requested", (Stage.PRECHARGE,), Stage.CHARGING, "§7 step 9: 0x24 -> 0x05"),
    Transition("stop", _ACTIVE, Stage.STOPPING, "§7 step 11, §8: set 109.5.5, ramp down"),
    Transition("current_stopped", (Stage.STOPPING,), Stage.WELDING_CHECK, "§7 step 12: clear 109.5.0"),
    Transition("no_welding_check", (Stage.STOPPING,), Stage.SHUTDOWN, "§7 step 13: contactors never closed"),
    Transition("welding_checked", (Stage.WELDING_CHECK,), Stage.SHUTDOWN, "§7 step 13: open d2, then d1"),
    Transition("unlocked", (Stage.SHUTDOWN,), Stage.DONE, "§7 step 14: output <= 10 V, unlock"),
)
