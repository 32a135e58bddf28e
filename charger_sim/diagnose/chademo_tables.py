"""Tables and per-session bookkeeping of the passive CHAdeMO observer (:mod:`.chademo`).

Everything here names rows of the emulator's own tables (``protocols.chademo``): which timing row
bounds a stage, which stop reason is the expiry of which limit; no value is repeated.
"""

from __future__ import annotations

from ..codec import Value
from ..errors import Origin
from ..protocols.base import StopReason
from ..protocols.chademo import timing as T
from ..protocols.chademo.states import TRANSITIONS, Stage
from ..protocols.chademo.stops import REASONS
from ..protocols.chademo.vehicle import VStage
from ..protocols.machine import StageMachine
from .capture import Record
from .model import SessionVerdict

# 0x109 byte 5, rebuilt from the DBC signals (§5.5)
STATUS_BITS = (
    ("StatusCharging", 0x01),
    ("StatusChargerMalfunction", 0x02),
    ("StatusConnectorLocked", 0x04),
    ("StatusBatteryIncompatible", 0x08),
    ("StatusSystemMalfunction", 0x10),
    ("StatusStopControl", 0x20),
)
CHARGING, MALFUNCTION, LOCKED, INCOMPATIBLE, SYSTEM, STOP = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

WALK_ORDER: tuple[Stage, ...] = (
    Stage.IDLE,
    Stage.WAKE_UP,
    Stage.NEGOTIATION,
    Stage.INSULATION_TEST,
    Stage.CONTACTORS,
    Stage.PRECHARGE,
    Stage.CHARGING,
    Stage.STOPPING,
    Stage.WELDING_CHECK,
    Stage.SHUTDOWN,
    Stage.DONE,
)
RANK = {s: i for i, s in enumerate(WALK_ORDER)}
PRE_STOP = (
    Stage.WAKE_UP,
    Stage.NEGOTIATION,
    Stage.INSULATION_TEST,
    Stage.CONTACTORS,
    Stage.PRECHARGE,
    Stage.CHARGING,
)
BEFORE_CHARGING = (Stage.INSULATION_TEST, Stage.CONTACTORS, Stage.PRECHARGE)
STOP_PHASE = (Stage.STOPPING, Stage.WELDING_CHECK, Stage.SHUTDOWN)

# Which timing-table row bounds each stage (values always come from timing.LIMITS).
STAGE_LIMIT = {
    Stage.WAKE_UP: "vehicle_can",
    Stage.NEGOTIATION: "permission",
    Stage.INSULATION_TEST: "insulation",
    Stage.CONTACTORS: "contactors",
    Stage.PRECHARGE: "first_request",
    Stage.STOPPING: "stop_current",
    Stage.WELDING_CHECK: "welding",
    Stage.SHUTDOWN: "unlock_wait",
}
STAGE_LIMIT_P1 = {Stage.CONTACTORS: "contactors_fixed_wait", Stage.WELDING_CHECK: "welding_fixed_wait"}

# Stops the emulator's charger never makes but a capture can show.
OBSERVED_REASONS = {
    r.code: r
    for r in (
        StopReason("charger_silent", Origin.CHARGER, "charger stopped transmitting (0x108/0x109)"),
        StopReason("charger_absent", Origin.CHARGER, "charger never transmitted (no 0x108/0x109)"),
    )
}
EPS = 1e-6
TIMEOUT_LIMITS = {  # stop reason -> the timing row whose expiry it is
    "no_permission": "permission",
    "insulation_timeout": "insulation",
    "contactor_timeout": "contactors",
    "no_current_request": "first_request",
}
STAGE_TIMEOUT = {Stage.CONTACTORS: "contactor_timeout", Stage.PRECHARGE: "no_current_request"}
EARLY_SHARE = 0.6  # a "timeout" stop before this share of the limit is something else (a CAN loss)
FRESH = 3 * T.limit("cycle")  # a charger status older than this is not evidence of its present state


def reason(code: str) -> StopReason:
    return REASONS.get(code) or OBSERVED_REASONS[code]


def status_of(values: dict[str, Value]) -> int:
    return sum(bit for name, bit in STATUS_BITS if values.get(name))


def ms_text(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1.0 else f"{seconds:.1f} s"


class Session:
    """Bookkeeping for one session; the stage machine is the emulator's."""

    def __init__(self, index: int, rec: Record) -> None:
        self.v = SessionVerdict(index=index, start=rec.time, end=rec.time)
        self.sm = StageMachine(Stage, TRANSITIONS, Stage.IDLE)
        self.stage = Stage.IDLE
        self.stop: StopReason | None = None
        self.stop_stage: Stage | None = None
        self.stop_time: float | None = None
        self.stop_detail = ""
        self.shutdown_fault: str | None = None
        self.pending: tuple[str, float, str] | None = None  # a vehicle-initiated stop awaiting the charger
        self.permitted_at: float | None = None
        self.lock_at_permission = False
        self.peak_v = 0.0
        self.peak_charging_v = 0.0
        self.peak_charging_a = 0.0
        self.d2_at: float | None = None
        self.contactors_were_closed = False
        self.first_request: float | None = None
        self.charging_flag_at: float | None = None
        self.stop_current_at: float | None = None
        self.stage_at: float | None = None
        self.status_at_stop = 0
        self.last_charger: float | None = None
        self.charger_frames = 0
        self.first_enabled: float | None = None
        self.vstage: VStage | None = None
        self.contactor_flag_seen = False
        self.silent = False  # the stop was the charger going silent
