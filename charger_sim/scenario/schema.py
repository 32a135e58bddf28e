"""Scenario data model: what a YAML scenario file holds once validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..bms.battery import PackSpec

FAULT_TYPES = {
    "drop_message": "the link drops a message (by DBC name) from 'at' for 'duration' s (default forever)",
    "temperature_runaway": "a heat source of 'value' watts starts inside the pack (cooling failure)",
    "insulation_drop": "the DC link's insulation resistance falls to 'value' ohm",
    "operator_stop": "the operator presses stop",
    "power_stage_fault": "the charger's power stage trips (output off)",
}


@dataclass(frozen=True, slots=True)
class Trigger:
    """When a fault starts: a session time, a stage (plus a delay), or a SOC threshold."""

    time: float | None = None
    stage: str | None = None
    after: float = 0.0
    soc_above: float | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.time, self.stage, self.soc_above) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of: time, stage, soc_above")
        if self.after < 0 or (self.time is not None and self.time < 0):
            raise ValueError("times must not be negative")

    def describe(self) -> str:
        if self.time is not None:
            return f"at t={self.time:g} s"
        if self.stage is not None:
            return f"{self.after:g} s into stage {self.stage}"
        return f"when SOC > {self.soc_above:g} %"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    type: str
    at: Trigger
    message: str | None = None
    duration: float | None = None  # None = forever
    value: float | None = None

    def describe(self) -> str:
        what = self.type.replace("_", " ")
        if self.message:
            what += f" {self.message}"
        if self.value is not None:
            what += f" ({self.value:g})"
        span = "" if self.duration is None else f" for {self.duration:g} s"
        return f"{what} {self.at.describe()}{span}"


@dataclass(frozen=True, slots=True)
class Expectation:
    outcome: str = "completed"  # completed | stopped
    stage: str | None = None
    step: int | None = None
    reason: str | None = None
    within: float | None = None  # the session must have ended by this session time

    def __post_init__(self) -> None:
        if self.outcome not in ("completed", "stopped"):
            raise ValueError("outcome must be 'completed' or 'stopped'")
        if self.step is not None and not 1 <= self.step <= 7:
            raise ValueError("step must be 1..7 (the handshake steps)")

    def describe(self) -> str:
        text = self.outcome
        if self.stage:
            text += f" at {self.stage}"
        if self.step:
            text += f" (step {self.step})"
        if self.reason:
            text += f" with {self.reason}"
        if self.within is not None:
            text += f" within {self.within:g} s"
        return text


@dataclass(frozen=True, slots=True)
class VehicleSetup:
    pack: PackSpec
    soc: float
    temperature: float
    ambient: float
    behaviour: Any  # the protocol's vehicle configuration dataclass


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    protocol: str
    path: str
    seed: int
    time_limit: float
    charger: Any  # the protocol's charger configuration dataclass
    vehicle: VehicleSetup
    expect: Expectation
    description: str = ""
    faults: tuple[FaultSpec, ...] = field(default_factory=tuple)
