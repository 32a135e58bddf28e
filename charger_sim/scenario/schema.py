"""Scenario data model: what a YAML scenario file holds once validated."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..bms.battery import PackSpec

_OPS = (">=", "<=", ">", "<")
#: Quantities a fault's ``at.condition`` can compare (``"soc > 50"``): the simulated vehicle's
#: pack and the charger's output, read after every step.
CONDITION_VARIABLES = {
    "soc": "state of charge, %",
    "temperature": "hottest cell group, degC",
    "cell_voltage": "highest cell voltage, V",
    "current": "charger output current, A",
    "voltage": "charger output voltage, V",
    "time": "session time, s",
}


@dataclass(frozen=True, slots=True)
class Condition:
    """``variable op number``, e.g. ``soc > 50`` or ``temperature >= 45``."""

    variable: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Condition:
        for op in _OPS:
            if op in text:
                left, _, right = text.partition(op)
                name = left.strip()
                if name not in CONDITION_VARIABLES:
                    known = ", ".join(CONDITION_VARIABLES)
                    raise ValueError(f"unknown quantity {name!r} in condition; expected one of: {known}")
                try:
                    number = float(right.strip().rstrip("%").strip())
                except ValueError:
                    raise ValueError(f"condition {text!r}: {right.strip()!r} is not a number") from None
                return cls(name, op, number)
        ops = ", ".join(_OPS)
        raise ValueError(f"condition {text!r}: expected 'quantity op number' with op one of {ops}")

    def holds(self, value: float) -> bool:
        if self.op == ">":
            return value > self.value
        if self.op == ">=":
            return value >= self.value
        if self.op == "<":
            return value < self.value
        return value <= self.value

    def __str__(self) -> str:
        return f"{self.variable} {self.op} {self.value:g}"


@dataclass(frozen=True, slots=True)
class Trigger:
    """When a fault starts: a session time, a stage (plus a delay), or a condition.

    ``soc_above: 50`` is shorthand for ``condition: "soc > 50"``.  No trigger at all means "from the
    start of the session".
    """

    time: float | None = None
    stage: str | None = None
    after: float = 0.0
    soc_above: float | None = None
    condition: str | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.time, self.stage, self.soc_above, self.condition) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of: time, stage, soc_above, condition")
        if self.after < 0 or (self.time is not None and self.time < 0):
            raise ValueError("times must not be negative")
        if self.after and self.stage is None:
            raise ValueError("'after' counts from a stage: give 'stage' with it")
        if self.condition is not None:
            Condition.parse(self.condition)

    @property
    def parsed_condition(self) -> Condition | None:
        if self.soc_above is not None:
            return Condition("soc", ">", self.soc_above)
        return None if self.condition is None else Condition.parse(self.condition)

    def describe(self) -> str:
        if self.time is not None:
            return "from the start" if self.time == 0 else f"at t={self.time:g} s"
        if self.stage is not None:
            if not self.after:
                return f"on entering stage {self.stage}"
            return f"{self.after:g} s into stage {self.stage}"
        return f"when {self.parsed_condition}"


START = Trigger(time=0.0)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One entry of a scenario's ``faults:`` list (see :mod:`charger_sim.faults.catalogue`)."""

    type: str
    at: Trigger = START
    duration: float | None = None  # None = until the end of the session
    message: str | None = None  # DBC message name (link faults)
    signal: str | None = None  # corrupt_signal
    mode: str | None = None  # corrupt_signal: set | bitflip | out_of_range | not_available; worn_pins
    value: float | None = None  # a number whose unit the fault kind defines
    bit: int | None = None  # corrupt_signal bitflip: bit of the signal (0 = its LSB)
    count: int | None = None  # drop_message: this many frames, then pass again
    delay: float | None = None  # delay_message: seconds
    dlc: int | None = None  # wrong_dlc: the length sent
    age: float | None = None  # replay_message: how old the replayed frames are, seconds
    copies: int | None = None  # duplicate_message: extra copies of each frame
    pin: str | None = None  # worn_pins: the protocol's pin / line name
    period: float | None = None  # worn_pins bouncing: seconds between flips
    group: int | None = None  # battery faults: the cell group (default 0)
    version: str | None = None  # firmware_mismatch: the protocol version the vehicle announces

    def describe(self) -> str:
        what = self.type.replace("_", " ")
        details = []
        if self.message:
            details.append(self.message + (f".{self.signal}" if self.signal else ""))
        for name in ("mode", "pin", "version"):
            if getattr(self, name) is not None:
                details.append(f"{name} {getattr(self, name)}")
        for name, unit in (("value", ""), ("bit", ""), ("count", " frames"), ("delay", " s"), ("dlc", ""),
                           ("age", " s"), ("copies", ""), ("period", " s"), ("group", "")):
            v = getattr(self, name)
            if v is not None:
                details.append(f"{name} {v:g}{unit}")
        if details:
            what += " (" + ", ".join(details) + ")"
        span = "" if self.duration is None else f" for {self.duration:g} s"
        return f"{what} {self.at.describe()}{span}"


@dataclass(frozen=True, slots=True)
class Expectation:
    outcome: str = "completed"  # completed | stopped
    stage: str | None = None
    step: int | None = None
    reason: str | None = None
    within: float | None = None  # the session must have ended by this session time
    # optional checks
    max_current: float | None = None  # A: the output current never exceeded this
    stop_within: float | None = None  # s: the charger began its stop this soon after the first fault
    energy_min_kwh: float | None = None
    energy_max_kwh: float | None = None

    def __post_init__(self) -> None:
        if self.outcome not in ("completed", "stopped"):
            raise ValueError("outcome must be 'completed' or 'stopped'")
        if self.step is not None and not 1 <= self.step <= 7:
            raise ValueError("step must be 1..7 (the handshake steps)")
        for name in ("within", "max_current", "stop_within", "energy_min_kwh", "energy_max_kwh"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative")
        if (
            self.energy_min_kwh is not None
            and self.energy_max_kwh is not None
            and self.energy_min_kwh > self.energy_max_kwh
        ):
            raise ValueError("energy_min_kwh is above energy_max_kwh")

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
        checks = []
        if self.max_current is not None:
            checks.append(f"current <= {self.max_current:g} A")
        if self.stop_within is not None:
            checks.append(f"stop <= {self.stop_within:g} s after the fault")
        if self.energy_min_kwh is not None or self.energy_max_kwh is not None:
            lo = "" if self.energy_min_kwh is None else f"{self.energy_min_kwh:g}"
            hi = "" if self.energy_max_kwh is None else f"{self.energy_max_kwh:g}"
            checks.append(f"energy {lo}..{hi} kWh")
        if checks:
            text += "; " + ", ".join(checks)
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
