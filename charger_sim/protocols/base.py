"""The interface every protocol core implements, and the helpers they share.

A core is a pure object (sans-I/O): it is fed frames and timer calls, each with ``now`` (seconds of
session time), answers with frames to send, queues events (stage changes, faults, the session's end)
and tells the driver its next deadline.  Drivers own the clock and the bus.  Cores never import
``can``, ``time``, ``threading`` or ``asyncio``.
"""

from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass, field

from ..errors import Origin
from ..frames import Frame

# The seven handshake steps users speak of (README, "How the stages map to the handshake").
HANDSHAKE_STEPS: dict[int, str] = {
    1: "physical connection detection",
    2: "insulation monitoring",
    3: "BMS wake-up",
    4: "parameter negotiation",
    5: "pre-charge",
    6: "main contactor closure",
    7: "continuous monitoring",
}


class Role(str, enum.Enum):
    CHARGER = "charger"
    VEHICLE = "vehicle"


class Outcome(str, enum.Enum):
    """How a session ended, from the charger's point of view."""

    COMPLETED = "completed"  # charged, then a normal vehicle-initiated stop and a clean shutdown
    STOPPED = "stopped"  # ended on any other path (fault, timeout, operator, incompatibility)
    UNFINISHED = "unfinished"  # still running when the scenario's time limit ran out


@dataclass(frozen=True, slots=True)
class StageChanged:
    time: float
    role: Role
    stage: str
    step: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaultRaised:
    time: float
    role: Role
    code: str
    message: str
    origin: Origin


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The core reached its terminal state.  ``stage``/``step`` say where the stop began."""

    time: float
    role: Role
    outcome: Outcome
    reason: str
    cause: str
    stage: str
    step: int
    origin: Origin


Event = StageChanged | FaultRaised | SessionEnded


@dataclass(frozen=True, slots=True)
class StopReason:
    """A named way for a session to stop: code, whose fault, operator words."""

    code: str
    origin: Origin
    cause: str
    normal: bool = False  # a normal end of charging (counts as completed if charging happened)


@dataclass(frozen=True, slots=True)
class Limit:
    """One row of a protocol's timing table."""

    name: str
    seconds: float
    source: str  # clause or source this value comes from
    note: str = ""


@dataclass(frozen=True, slots=True)
class Pin:
    """A control line a ``worn_pins`` fault can degrade (see :mod:`charger_sim.faults`)."""

    line: str  # the Harness line the other side reads
    bad: float  # what a worn / corroded contact makes it read by default (out of band)
    description: str


@dataclass(slots=True)
class Snapshot:
    """Key values of a core for the live view, timelines and curves (mutable, rebuilt per call)."""

    stage: str = ""
    step: int = 0
    values: dict[str, float | int | str | bool] = field(default_factory=dict)


class Deadlines:
    """Named absolute deadlines; the earliest is the core's next deadline."""

    __slots__ = ("_at", "_min")

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        # the earliest deadline while known (asked several times per step, changed less often);
        # math.nan = not known (recomputed on demand)
        self._min: float | None = None

    def set(self, name: str, at: float) -> None:
        at_before = self._at
        old = at_before.get(name)
        at_before[name] = at
        m = self._min
        if m is None:
            self._min = at if len(at_before) == 1 else math.nan
        elif at <= m:
            self._min = at
        elif old == m:  # the earliest one moved later
            self._min = math.nan

    def cancel(self, *names: str) -> None:
        for name in names:
            if self._at.pop(name, None) is not None:
                self._min = math.nan

    def clear(self) -> None:
        self._at.clear()
        self._min = None

    def get(self, name: str) -> float | None:
        return self._at.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._at

    def next(self) -> float | None:
        m = self._min
        if m is None or m == m:  # None (empty) or known
            return m
        m = self._min = min(self._at.values()) if self._at else None
        return m

    def due(self, now: float) -> list[str]:
        """Names whose deadline is at or before ``now`` (removed), earliest first."""
        m = self.next()
        if m is None or m > now + 1e-9:
            return []
        hit = sorted((t, n) for n, t in self._at.items() if t <= now + 1e-9)
        for _, name in hit:
            del self._at[name]
        self._min = math.nan if self._at else None
        return [name for _, name in hit]


class Cyclic:
    """Absolute-time cyclic schedule: due at start + k*period, never drifting."""

    __slots__ = ("next_at", "period")

    def __init__(self, period: float, start: float) -> None:
        self.period = period
        self.next_at = start

    def advance(self, now: float) -> None:
        """Move to the first slot after ``now`` (skipping missed slots, as a real ECU would)."""
        if now - self.next_at < 0.5 * self.period:  # on time (the usual case): k below is 1
            self.next_at += self.period
            return
        k = math.floor((now - self.next_at) / self.period + 1e-9) + 1
        self.next_at += max(k, 1) * self.period


class Core(abc.ABC):
    """Base of every protocol core (charger or simulated vehicle)."""

    role: Role

    def __init__(self) -> None:
        self._events: list[Event] = []
        self.finished = False

    # ---- inputs -------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self, now: float) -> list[Frame]:
        """Begin the session (charger: operator start; vehicle: plugged in)."""

    @abc.abstractmethod
    def receive(self, frame: Frame, now: float) -> list[Frame]:
        """A frame arrived from the bus."""

    @abc.abstractmethod
    def on_timer(self, now: float) -> list[Frame]:
        """``now`` reached (or passed) :meth:`next_deadline`."""

    @abc.abstractmethod
    def next_deadline(self) -> float | None:
        """Absolute time of the next timer call wanted, or None."""

    def request_stop(self, now: float, reason: str = "operator_stop") -> list[Frame]:
        """Operator stop (or Ctrl-C): run the protocol's stop path.  Default: nothing to do."""
        return []

    def inject_power_fault(self, now: float) -> None:
        """Charger power-stage fault (fault catalogue).  Cores without a power stage ignore it."""
        return None

    # ---- outputs ------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        self._events.append(event)

    def drain_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """Key values now (stage, voltages, currents, SOC...)."""
