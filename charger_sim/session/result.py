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
    # (session time, description) of each injected fault as it fired; filled by the session when it
    # records them (reports mark them on the curves), empty otherwise
    fault_times: list[tuple[float, str]] = field(default_factory=list)

    @property
    def failed_step(self) -> int | None:
        return None if self.outcome == "completed" else self.step

    @property
    def step_name(self) -> str:
        return HANDSHAKE_STEPS.get(self.step, "")

    @property
    def file_stem(self) -> str:
        """The scenario's file name without folder and extension (what ``charger-sim run`` takes)."""
        name = self.path.replace("\\", "/").rsplit("/", 1)[-1]
        for suffix in (".yaml", ".yml"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name or self.scenario

    def to_dict(self) -> dict[str, object]:
        """JSON-ready report of the session (keys are stable; ``wall_seconds`` is the only one that
        differs between two runs of the same scenario, seed and versions)."""
        return {
            "name": self.scenario,
            "file": self.file_stem,
            "protocol": self.protocol,
            "path": self.path,
            "seed": self.seed,
            "expected": self.expected,
            "outcome": self.outcome,
            "passed": self.passed,
            "mismatches": self.mismatches,
            "stage": self.stage,
            "step": self.step,
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
            "faults_fired": [{"time": round(t, 3), "fault": what} for t, what in self.fault_times],
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
            "wall_seconds": round(self.wall_seconds, 3),
        }
