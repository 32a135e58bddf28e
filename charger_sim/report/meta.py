"""What makes a run reproducible (versions, seeds, overrides) and the words reports share."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata

from .. import __version__
from ..errors import UsageError
from ..protocols import registry
from ..protocols.base import HANDSHAKE_STEPS
from ..session.result import SessionResult

# distribution name -> the key reports use
_DISTRIBUTIONS = (("cantools", "cantools"), ("python-can", "python-can"), ("transitions", "transitions"))

ORIGIN_WORDS: Mapping[str, str] = {
    "vehicle": "the vehicle / BMS",
    "charger": "the charger",
    "link": "the CAN link between them",
    "operator": "the operator",
    "scenario": "the scenario's time limit",
    "bus": "the CAN interface",
    "user": "the command line",
}


def versions() -> dict[str, str]:
    """Versions of charger-sim, Python and the libraries that shape a session's frames."""
    out = {"charger-sim": __version__, "python": platform.python_version()}
    for dist, key in _DISTRIBUTIONS:
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - a broken environment
            out[key] = "unknown"
    return out


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The run a report describes: what it took to reproduce it."""

    versions: Mapping[str, str] = field(default_factory=versions)
    seed_override: int | None = None  # --seed
    time_limit_override: float | None = None  # --time-limit
    wall_seconds: float = 0.0  # the whole run (excluded from determinism comparisons)
    command: str = "charger-sim run"

    def reproduce(self, result: SessionResult) -> str:
        """The command line that runs this scenario again, frame for frame."""
        parts = [self.command, result.path or result.file_stem, "--seed", str(result.seed)]
        if self.time_limit_override is not None:
            parts += ["--time-limit", f"{self.time_limit_override:g}"]
        return " ".join(parts)


def short_protocol(protocol: str) -> str:
    """``CHAdeMO``, ``GB/T``, ``CCS``: the connector family users name."""
    try:
        return registry.get(protocol).title.split()[0]
    except UsageError:  # an unknown name is shown as given
        return protocol


def step_text(step: int) -> str:
    return f"step {step}: {HANDSHAKE_STEPS.get(step, '?')}"


def stage_description(protocol: str, stage: str) -> str:
    try:
        return str(registry.get(protocol).stage_descriptions.get(stage, ""))
    except UsageError:
        return ""


def stop_stages(protocol: str) -> frozenset[str]:
    from ..session.session import stop_stages as from_steps

    try:
        return from_steps(registry.get(protocol).stage_steps)
    except UsageError:
        return frozenset()


def stop_began(result: SessionResult) -> float | None:
    """Session time at which the charger entered its stop path (None: it never did)."""
    stops = stop_stages(result.protocol)
    return next((e.time for e in result.timeline if e.role == "charger" and e.stage in stops), None)


def charging_began(result: SessionResult) -> float | None:
    """Session time of the charger's first step-7 stage (energy transfer), if it got there."""
    return next((e.time for e in result.timeline if e.role == "charger" and e.step == 7), None)


def where_stopped(result: SessionResult) -> str:
    """One line: where the session ended, in the handshake's words."""
    step = step_text(result.step)
    if result.outcome == "completed":
        return f"completed in {result.stage} ({step})"
    if result.outcome == "unfinished":
        return f"still in {result.stage} ({step}) when the time limit ran out"
    return f"stopped at {result.stage} ({step})"


def whose(result: SessionResult) -> str:
    return ORIGIN_WORDS.get(result.origin, result.origin)


def duration_text(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def short_duration(seconds: float) -> str:
    """``42 s``, ``34 min``, ``1 h 21 min`` (grid cells)."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def clock_text(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss`` (tables)."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, sec = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"
