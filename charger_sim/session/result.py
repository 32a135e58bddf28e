"""What a session produced: timeline, samples, summary, verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocols.base import HANDSHAKE_STEPS


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    time: float
    role: str
    stage: str
    step: int
    detail: str
    values: dict[str, float | int | str | bool]


@dataclass(frozen=True, slots=True)
class Sample:
    time: float
    stage: str
    target_voltage: float
    present_voltage: float
    current_request: float
    present_current: float
    power_kw: float
    soc: float
    max_cell_temperature: float
    max_cell_voltage: float


@dataclass(slots=True)
class SessionResult:
    scenario: str
    protocol: str
    path: str
    seed: int
    expected: str
    outcome: str
    reason: str
    cause: str
    stage: str
    step: int
    origin: str
    duration: float
    energy_kwh: float
    peak_current: float
    soc_start: float
    soc_end: float
    max_temperature: float
    frames_sent: int
    frames_received: int
    frames_dropped: int
    passed: bool
    mismatches: list[str]
    timeline: list[TimelineEntry] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    charger_faults: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    cadence: list[Any] = field(default_factory=list)  # drivers.realtime.Cadence rows (real-time runs)
    bus_events: list[str] = field(default_factory=list)  # error frames seen (real-time runs)

    @property
    def failed_step(self) -> int | None:
        return None if self.outcome == "completed" else self.step

    @property
    def step_name(self) -> str:
        return HANDSHAKE_STEPS.get(self.step, "")

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.scenario,
            "protocol": self.protocol,
            "path": self.path,
            "seed": self.seed,
            "expected": self.expected,
            "outcome": self.outcome,
            "passed": self.passed,
            "mismatches": self.mismatches,
            "stage": self.stage,
            "failed_step": self.failed_step,
            "step_name": self.step_name,
            "stop_reason": self.reason,
            "cause": self.cause,
            "origin": self.origin,
            "duration_s": round(self.duration, 3),
            "energy_kwh": round(self.energy_kwh, 3),
            "peak_current_a": round(self.peak_current, 1),
            "soc_start": round(self.soc_start, 2),
            "soc_end": round(self.soc_end, 2),
            "max_temperature_c": round(self.max_temperature, 2),
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "frames_dropped": self.frames_dropped,
            "faults_injected": self.faults,
            "charger_faults": self.charger_faults,
            "timeline": [
                {
                    "time": round(e.time, 3),
                    "role": e.role,
                    "stage": e.stage,
                    "step": e.step,
                    "detail": e.detail,
                }
                for e in self.timeline
            ],
            "versions": self.versions,
        }
