"""Fuzzing campaigns: many hostile sessions against a charger core, counted, minimised, reported.

A session: random charger configuration, a hostile vehicle (mood: cooperative / hostile / chaos)
ticking every ~100 ms for a random length, then silence until the charger must be safe.  Every
step is recorded, so the first counterexample can be replayed and minimised (delta debugging over
the steps: the smallest list that still breaks the same invariant) into a case file.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..protocols import registry
from .oracles import oracle_for
from .script import Case, Step
from .target import Target, Violation
from .vehicles import charger_config, hostile_for

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SessionOutcome:
    frames: int
    steps: list[Step]
    config: dict[str, Any]
    violations: list[Violation]
    end: float
    seed: int
    stages: set[str]
    timer_calls: int
    vehicle_errors: list[str] = field(default_factory=list)  # the simulated vehicle core failed


@dataclass(slots=True)
class Report:
    protocol: str
    oracle: str
    seed: int
    frames: int = 0
    sessions: int = 0
    timer_calls: int = 0
    violations: int = 0
    exceptions: int = 0
    vehicle_exceptions: int = 0  # sessions whose simulated vehicle core raised (a vehicle bug)
    first_vehicle_error: str = ""
    by_code: Counter[str] = field(default_factory=Counter)
    stages_reached: Counter[str] = field(default_factory=Counter)
    first: Case | None = None
    first_violation: str = ""
    wall_seconds: float = 0.0
    jobs: int = 1

    def merge(self, other: Report) -> None:
        self.frames += other.frames
        self.sessions += other.sessions
        self.timer_calls += other.timer_calls
        self.violations += other.violations
        self.exceptions += other.exceptions
        self.vehicle_exceptions += other.vehicle_exceptions
        self.first_vehicle_error = self.first_vehicle_error or other.first_vehicle_error
        self.by_code.update(other.by_code)
        self.stages_reached.update(other.stages_reached)
        if self.first is None and other.first is not None:
            self.first, self.first_violation = other.first, other.first_violation

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "oracle": self.oracle,
            "seed": self.seed,
            "frames": self.frames,
            "sessions": self.sessions,
            "timer_calls": self.timer_calls,
            "violations": self.violations,
            "exceptions": self.exceptions,
            "vehicle_exceptions": self.vehicle_exceptions,
            "first_vehicle_error": self.first_vehicle_error or None,
            "violations_by_invariant": dict(sorted(self.by_code.items())),
            "sessions_reaching_stage": dict(sorted(self.stages_reached.items())),
            "first_violation": self.first_violation or None,
            "counterexample": self.first.to_yaml() if self.first is not None else None,
            "frames_per_s": round(self.frames / self.wall_seconds) if self.wall_seconds else None,
            "wall_seconds": round(self.wall_seconds, 3),
            "jobs": self.jobs,
        }


def run_session(
    protocol: str, seed: int, *, core_factory: Callable[..., Any] | None = None
) -> SessionOutcome:
    """One hostile session, recorded."""
    rng = random.Random(seed)
    config = charger_config(protocol, rng)
    target = Target(protocol, config, core_factory=core_factory)
    vehicle = hostile_for(target.protocol)(target, rng)
    steps: list[Step] = []
    target.start()
    length = rng.choice(vehicle.lengths)  # s of hostile behaviour before the final silence
    now = 0.0
    stages: set[str] = set()
    while now < length and not target.broken:
        target.run_until(now)
        for step in vehicle.tick(now):
            steps.append(step)
            target.apply(step)
            if target.broken:
                break
        stages.add(target.stage())
        now += vehicle.next_period()
    end = now + target.oracle.silence
    target.finish(end)
    stages.add(target.stage())
    return SessionOutcome(
        target.frames_in,
        steps,
        target.describe_config(),
        target.violations,
        end,
        seed,
        stages,
        target.timer_calls,
        list(getattr(vehicle, "vehicle_errors", [])),
    )


def replay(case: Case, *, core_factory: Callable[..., Any] | None = None) -> list[Violation]:
    """Run a case file's steps and return the violations (empty: the charger behaved)."""
    target = Target(case.protocol, case.charger, core_factory=core_factory)
    target.start()
    for step in case.steps:
        target.apply(step)
        if target.broken:
            break
    last = case.steps[-1].t if case.steps else 0.0
    target.finish(max(case.end, target.now, last + target.oracle.silence))  # the terminal check needs silence
    return target.violations


def minimise(
    case: Case, code: str, *, core_factory: Callable[..., Any] | None = None, budget: float = 30.0
) -> Case:
    """Delta debugging: drop steps while the replay still breaks invariant ``code``."""
    deadline = time.monotonic() + budget

    def fails(steps: list[Step]) -> bool:
        trial = Case(case.protocol, case.charger, steps, case.end, case.seed)
        return any(v.code == code for v in replay(trial, core_factory=core_factory))

    steps = list(case.steps)
    n = 2
    while len(steps) >= 2 and time.monotonic() < deadline:
        chunk = max(1, len(steps) // n)
        reduced = False
        for i in range(0, len(steps), chunk):
            candidate = steps[:i] + steps[i + chunk :]
            if fails(candidate):
                steps = candidate
                n = max(n - 1, 2)
                reduced = True
                break
            if time.monotonic() >= deadline:
                break
        if not reduced:
            if chunk == 1:
                break
            n = min(len(steps), n * 2)
    end = (steps[-1].t if steps else 0.0) + oracle_for(case.protocol).silence
    return Case(case.protocol, case.charger, steps, end, case.seed, case.violation)


def _campaign_part(args: tuple[str, int, int, int, float]) -> Report:
    protocol, frames, seed, stride, min_budget = args
    info = registry.get(protocol)
    report = Report(info.name, oracle_for(info.name).name, seed)
    start = time.perf_counter()
    session_seed = seed
    while report.frames < frames:
        outcome = run_session(info.name, session_seed)
        report.sessions += 1
        report.frames += outcome.frames
        report.stages_reached.update(outcome.stages)
        report.timer_calls += outcome.timer_calls
        if outcome.vehicle_errors:
            report.vehicle_exceptions += 1
            if not report.first_vehicle_error:
                report.first_vehicle_error = f"session seed {session_seed}: {outcome.vehicle_errors[0]}"
        if outcome.violations:
            report.violations += len(outcome.violations)
            report.exceptions += sum(1 for v in outcome.violations if v.exception)
            report.by_code.update(v.code for v in outcome.violations)
            if report.first is None:
                first = outcome.violations[0]
                cut = [s for s in outcome.steps if s.t <= first.t + 1e-9]
                case = Case(info.name, outcome.config, cut, 0.0, session_seed, str(first))
                if not any(v.code == first.code for v in replay(case)):
                    case = Case(
                        info.name, outcome.config, outcome.steps, outcome.end, session_seed, str(first)
                    )
                report.first = minimise(case, first.code, budget=min_budget)
                report.first.notes = [
                    f"charger-sim fuzz counterexample ({info.name}), session seed {session_seed}",
                    f"violation: {first}",
                    "replay: charger-sim fuzz --replay <this file>",
                ]
                report.first_violation = str(first)
        session_seed += stride
    report.wall_seconds = time.perf_counter() - start
    return report


def run_campaign(
    protocol: str, frames: int, *, seed: int = 0, jobs: int = 1, minimise_budget: float = 30.0
) -> Report:
    """Hostile sessions until ``frames`` frames were delivered; ``jobs`` worker processes share them."""
    info = registry.get(protocol)
    jobs = max(1, jobs)
    start = time.perf_counter()
    parts = [(info.name, -(-frames // jobs), seed + i, jobs, minimise_budget) for i in range(jobs)]
    if jobs == 1:
        with quiet_logs():
            results = [_campaign_part(parts[0])]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(jobs, initializer=_worker_init, initargs=(_dbc_dir(),)) as pool:
            results = pool.map(_campaign_part, parts)
    report = Report(info.name, oracle_for(info.name).name, seed, jobs=jobs)
    for part in results:
        report.merge(part)
    report.wall_seconds = time.perf_counter() - start
    return report


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The cores log every hostile frame they ignore: keep a campaign's output to its report."""
    logger = logging.getLogger("charger_sim")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _dbc_dir() -> str | None:
    from .. import codec

    return None if codec._DIRECTORY is None else str(codec._DIRECTORY)


def _worker_init(dbc_dir: str | None) -> None:
    from pathlib import Path

    from .. import codec

    logging.getLogger("charger_sim").setLevel(logging.ERROR)
    if dbc_dir is not None:
        codec.set_dbc_dir(Path(dbc_dir))
