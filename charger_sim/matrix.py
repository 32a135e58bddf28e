"""The compatibility matrix: every vehicle profile on every charger configuration.

Each same-protocol pair runs as a full session in simulated time (``profiles.pair_scenario``: from
the vehicle's plug-in SOC to its target, expecting a completed charge); a pair whose connectors do
not mate (different protocols) is reported without running, as ``incompatible`` at step 1.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .protocols import registry
from .report.batch import run_batch
from .report.meta import RunInfo, short_protocol
from .scenario.profiles import Profile, ProfileMismatch, charger_profiles, pair_scenario, vehicle_profiles
from .session.result import SessionResult

log = logging.getLogger(__name__)

INCOMPATIBLE = "incompatible"


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One vehicle on one charger."""

    vehicle: str
    charger: str
    vehicle_protocol: str
    charger_protocol: str
    outcome: str  # completed | stopped | unfinished | incompatible
    failed_step: int | None  # handshake step where it stopped (None: completed)
    step_name: str
    cause: str  # in words
    stop_reason: str
    stage: str  # charger stage where the stop began
    origin: str  # whose fault
    duration: float  # s of session time
    energy_kwh: float
    soc_start: float | None = None
    soc_end: float | None = None
    peak_current: float | None = None
    seed: int = 0

    @property
    def compatible(self) -> bool:
        return self.outcome != INCOMPATIBLE

    @property
    def completed(self) -> bool:
        return self.outcome == "completed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "vehicle": self.vehicle,
            "charger": self.charger,
            "vehicle_protocol": self.vehicle_protocol,
            "charger_protocol": self.charger_protocol,
            "outcome": self.outcome,
            "failed_step": self.failed_step,
            "step_name": self.step_name,
            "cause": self.cause,
            "stop_reason": self.stop_reason,
            "stage": self.stage,
            "origin": self.origin,
            "duration_s": round(self.duration, 3),
            "energy_kwh": round(self.energy_kwh, 3),
            "soc_start": None if self.soc_start is None else round(self.soc_start, 2),
            "soc_end": None if self.soc_end is None else round(self.soc_end, 2),
            "peak_current_a": None if self.peak_current is None else round(self.peak_current, 1),
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True)
class Matrix:
    vehicles: tuple[Profile, ...]
    chargers: tuple[Profile, ...]
    rows: tuple[MatrixRow, ...]
    seed: int = 0
    soc: float | None = None
    time_limit: float | None = None
    wall_seconds: float = 0.0

    def cell(self, vehicle: str, charger: str) -> MatrixRow:
        return next(r for r in self.rows if r.vehicle == vehicle and r.charger == charger)

    def to_dict(self, info: RunInfo | None = None) -> dict[str, Any]:
        def prof(p: Profile) -> dict[str, str]:
            return {"name": p.name, "protocol": p.protocol, "title": p.title, "path": p.path}

        run = [r for r in self.rows if r.compatible]
        return {
            "tool": "charger-sim matrix",
            "versions": dict((info or RunInfo()).versions),
            "seed": self.seed,
            "soc": self.soc,
            "time_limit": self.time_limit,
            "vehicles": [prof(p) for p in self.vehicles],
            "chargers": [prof(p) for p in self.chargers],
            "summary": {
                "pairs": len(self.rows),
                "run": len(run),
                "completed": sum(1 for r in run if r.completed),
                "failed": sum(1 for r in run if not r.completed),
                "incompatible": len(self.rows) - len(run),
            },
            "wall_seconds": round(self.wall_seconds, 3),
            "pairs": [r.to_dict() for r in self.rows],
        }


def _order(profiles: Iterable[Profile]) -> list[Profile]:
    """Grouped by protocol (registry order), then by name: compatible pairs form blocks."""
    rank = {name: i for i, name in enumerate(registry.names())}
    return sorted(profiles, key=lambda p: (rank.get(p.protocol, len(rank)), p.name))


def select(kind: str, names: Sequence[str] | None, known: Mapping[str, Profile]) -> list[Profile]:
    """The named profiles (in the order given), or all of them; an unknown name is a UsageError."""
    if not names:
        return _order(known.values())
    unknown = [n for n in names if n not in known]
    if unknown:
        listing = ", ".join(p.name for p in _order(known.values())) or "(none shipped)"
        plural = "s" if len(unknown) > 1 else ""
        raise UsageError(f"unknown {kind} profile{plural} {', '.join(unknown)}; known {kind}s: {listing}")
    seen: dict[str, Profile] = {}
    for n in names:
        seen.setdefault(n, known[n])
    return list(seen.values())


def parse_names(text: str | None) -> list[str] | None:
    """``"a,b, c"`` -> ["a", "b", "c"]; None or "" or "all" -> None (every profile)."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    return None if not names or names == ["all"] else names


def incompatibility(vehicle: Profile, charger: Profile) -> str | None:
    """Why the two cannot be plugged together, or None if they speak the same protocol."""
    if vehicle.protocol == charger.protocol:
        return None
    v, c = short_protocol(vehicle.protocol), short_protocol(charger.protocol)
    return f"the vehicle's {v} inlet does not take a {c} connector"


def _incompatible_row(vehicle: Profile, charger: Profile, cause: str, seed: int) -> MatrixRow:
    return MatrixRow(
        vehicle=vehicle.name,
        charger=charger.name,
        vehicle_protocol=vehicle.protocol,
        charger_protocol=charger.protocol,
        outcome=INCOMPATIBLE,
        failed_step=1,
        step_name="physical connection detection",
        cause=cause,
        stop_reason="connector_mismatch",
        stage="",
        origin="connector",
        duration=0.0,
        energy_kwh=0.0,
        seed=seed,
    )


def _row(vehicle: Profile, charger: Profile, r: SessionResult) -> MatrixRow:
    return MatrixRow(
        vehicle=vehicle.name,
        charger=charger.name,
        vehicle_protocol=vehicle.protocol,
        charger_protocol=charger.protocol,
        outcome=r.outcome,
        failed_step=r.failed_step,
        step_name=r.step_name,
        cause=r.cause,
        stop_reason=r.reason,
        stage=r.stage,
        origin=r.origin,
        duration=r.duration,
        energy_kwh=r.energy_kwh,
        soc_start=r.soc_start,
        soc_end=r.soc_end,
        peak_current=r.peak_current,
        seed=r.seed,
    )


def run_matrix(
    vehicles: Sequence[Profile] | None = None,
    chargers: Sequence[Profile] | None = None,
    *,
    seed: int = 0,
    soc: float | None = None,
    time_limit: float | None = None,
    jobs: int = 1,
    on_done: Callable[[MatrixRow], None] | None = None,
) -> Matrix:
    """Run every vehicle × charger pair (default: every shipped profile) in simulated time."""
    import time

    start = time.perf_counter()
    vs = tuple(vehicles if vehicles is not None else _order(vehicle_profiles().values()))
    cs = tuple(chargers if chargers is not None else _order(charger_profiles().values()))
    rows: dict[tuple[str, str], MatrixRow] = {}
    todo: list[tuple[Profile, Profile]] = []
    scenarios = []
    for v in vs:
        for c in cs:
            why = incompatibility(v, c)
            if why is None:
                try:
                    scenarios.append(pair_scenario(v, c, seed=seed, soc=soc, time_limit=time_limit))
                    todo.append((v, c))
                    continue
                except ProfileMismatch as err:  # the profile API's own judgement
                    why = err.message
            rows[(v.name, c.name)] = _incompatible_row(v, c, why, seed)
            if on_done is not None:
                on_done(rows[(v.name, c.name)])

    def done(i: int, result: SessionResult) -> None:
        v, c = todo[i]
        rows[(v.name, c.name)] = _row(v, c, result)
        log.info("%s on %s: %s", v.name, c.name, result.outcome)
        if on_done is not None:
            on_done(rows[(v.name, c.name)])

    run_batch(scenarios, jobs=jobs, on_done=done)
    ordered = tuple(rows[(v.name, c.name)] for v in vs for c in cs)
    return Matrix(
        vs, cs, ordered, seed=seed, soc=soc, time_limit=time_limit, wall_seconds=time.perf_counter() - start
    )


def kwh_text(kwh: float) -> str:
    return f"{kwh:.0f} kWh" if kwh >= 10 else f"{kwh:.1f} kWh"


def cell_text(row: MatrixRow) -> tuple[str, str, str]:
    """(kind, headline, detail) of a grid cell; kind is ok | bad | warn | na."""
    from .report.meta import short_duration

    if row.outcome == INCOMPATIBLE:
        return "na", "—", ""
    if row.completed:
        return "ok", f"completed {kwh_text(row.energy_kwh)}", f"in {short_duration(row.duration)}"
    if row.outcome == "unfinished":
        return "warn", f"unfinished {kwh_text(row.energy_kwh)}", "time limit reached"
    short = row.stop_reason.replace("_", " ")
    delivered = f"{kwh_text(row.energy_kwh)} delivered" if row.energy_kwh >= 0.05 else "no energy delivered"
    return "bad", f"step {row.failed_step}: {short}", delivered
