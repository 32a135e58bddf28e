"""What a diagnosis says: stage spans (both sides), deviations, one verdict per session in the capture.

Outcomes (``Diagnosis.outcome``):

* ``completed``: charging happened and the session ended normally (the vehicle's or the charger's /
  operator's stop without a fault flag), with the shutdown captured;
* ``failed``: the session stopped on a fault, a timeout or an incompatibility (or before charging),
  ``failed_step`` says at which of the seven handshake steps (README) it stopped;
* ``partial``: the capture starts or ends mid-session and shows no failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocols.base import HANDSHAKE_STEPS

COMPLETED = "completed"
FAILED = "failed"
PARTIAL = "partial"

CHARGER = "charger"
VEHICLE = "vehicle"


def _r(value: float | None, ndigits: int = 3) -> float | None:
    return None if value is None else round(value, ndigits)


@dataclass(slots=True)
class StageSpan:
    """One stage of one side, as it happened on the bus.

    ``start``/``end`` are capture seconds (``None``: not visible in the capture, e.g. d1 closing);
    ``start_frame``/``end_frame`` index the capture's frames (useful when timestamps are unusable).
    ``limit``/``limit_s`` name the row of the protocol's timing table that bounds this stage.
    ``inferred``: the start was deduced from later evidence rather than seen directly.
    """

    stage: str
    step: int
    side: str
    start: float | None
    end: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    detail: str = ""
    limit: str | None = None
    limit_s: float | None = None
    inferred: bool = False

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)

    @property
    def over_limit(self) -> bool:
        d = self.duration
        return d is not None and self.limit_s is not None and d > self.limit_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "step": self.step,
            "side": self.side,
            "start": _r(self.start),
            "end": _r(self.end),
            "duration": _r(self.duration),
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "limit": self.limit,
            "limit_s": self.limit_s,
            "over_limit": self.over_limit,
            "inferred": self.inferred,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Deviation:
    """A protocol deviation seen in the capture.  ``kind``: period, dlc, byte_order, bcd, range,
    timing, sequence, transport."""

    kind: str
    text: str
    time: float | None = None
    side: str | None = None

    def __str__(self) -> str:
        at = f"{self.time:.3f} s: " if self.time is not None else ""
        return f"{at}{self.text}"


@dataclass(frozen=True, slots=True)
class Event:
    """A notable moment for the timeline (status changes, TP transfers, stop/timeout frames)."""

    time: float
    side: str
    text: str
    frame: int | None = None


@dataclass(slots=True)
class SessionVerdict:
    """One charging session (attempt) inside a capture."""

    index: int
    start: float
    end: float
    outcome: str = PARTIAL
    stage: str = ""
    step: int = 0
    reason: str = ""
    cause: str = ""
    origin: str = ""
    charged: bool = False
    starts_mid_session: bool = False
    ends_mid_session: bool = False
    stages: list[StageSpan] = field(default_factory=list)
    vehicle_stages: list[StageSpan] = field(default_factory=list)
    charger_walk: list[tuple[float, str]] = field(default_factory=list)
    vehicle_walk: list[tuple[float, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    progress: int = 0  # how far the session got (index of the furthest pre-stop stage in walk order)

    @property
    def failed_step(self) -> int | None:
        return self.step if self.outcome == FAILED else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": _r(self.start),
            "end": _r(self.end),
            "outcome": self.outcome,
            "failed_step": self.failed_step,
            "stage": self.stage,
            "step": self.step,
            "step_name": HANDSHAKE_STEPS.get(self.step, ""),
            "reason": self.reason,
            "cause": self.cause,
            "origin": self.origin,
            "charged": self.charged,
            "starts_mid_session": self.starts_mid_session,
            "ends_mid_session": self.ends_mid_session,
            "stages": [s.to_dict() for s in self.stages],
            "vehicle_stages": [s.to_dict() for s in self.vehicle_stages],
            "charger_walk": [v for _, v in self.charger_walk],
            "vehicle_walk": [v for _, v in self.vehicle_walk],
        }


@dataclass(slots=True)
class CaptureInfo:
    path: str
    format: str
    frames: int
    protocol_frames: int
    skipped_lines: int
    malformed_lines: int
    skipped_frames: int
    problems: tuple[str, ...]
    timestamps: str  # good | coarse | none
    duration: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "frames": self.frames,
            "protocol_frames": self.protocol_frames,
            "skipped_lines": self.skipped_lines,
            "malformed_lines": self.malformed_lines,
            "skipped_frames": self.skipped_frames,
            "problems": list(self.problems),
            "timestamps": self.timestamps,
            "duration": _r(self.duration),
        }


@dataclass(slots=True)
class Diagnosis:
    """The whole capture: every session found, the primary one's verdict on top, deviations, notes."""

    protocol: str
    capture: CaptureInfo
    sessions: list[SessionVerdict] = field(default_factory=list)
    primary: int = 0
    deviations: list[Deviation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stage_names_from: str = ""  # where the stage names come from (the emulator's table or the observer's)

    @property
    def main(self) -> SessionVerdict | None:
        return self.sessions[self.primary] if self.sessions else None

    @property
    def outcome(self) -> str:
        s = self.main
        return s.outcome if s is not None else PARTIAL

    @property
    def failed_step(self) -> int | None:
        s = self.main
        return s.failed_step if s is not None else None

    @property
    def cause(self) -> str:
        s = self.main
        return s.cause if s is not None else "no session found in the capture"

    def to_dict(self) -> dict[str, Any]:
        s = self.main
        return {
            "protocol": self.protocol,
            "outcome": self.outcome,
            "failed_step": self.failed_step,
            "step": s.step if s else None,
            "step_name": HANDSHAKE_STEPS.get(s.step, "") if s else "",
            "stage": s.stage if s else "",
            "reason": s.reason if s else "",
            "cause": self.cause,
            "origin": s.origin if s else "",
            "stages": [
                {
                    "stage": x.stage,
                    "step": x.step,
                    "start": _r(x.start),
                    "end": _r(x.end),
                    "duration": _r(x.duration),
                    "limit": x.limit,
                    "limit_s": x.limit_s,
                    "over_limit": x.over_limit,
                    "inferred": x.inferred,
                }
                for x in (s.stages if s else [])
            ],
            "vehicle_stages": [
                {"stage": x.stage, "step": x.step, "start": _r(x.start), "end": _r(x.end)}
                for x in (s.vehicle_stages if s else [])
            ],
            "charger_walk": [v for _, v in s.charger_walk] if s else [],
            "vehicle_walk": [v for _, v in s.vehicle_walk] if s else [],
            "deviations": [str(d) for d in self.deviations],
            "notes": list(self.notes),
            "session": self.primary,
            "sessions": [x.to_dict() for x in self.sessions],
            "capture": self.capture.to_dict(),
            "stage_names_from": self.stage_names_from,
        }
