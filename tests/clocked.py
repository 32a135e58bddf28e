"""The explicit-clock stepping shared by the protocol test benches (no sleeps, no wall clock).

A bench provides ``now``, ``charger``, ``stage``, ``next_instant()``, ``step()``, ``stage_time()``
and ``ended()``; this mixin walks the clock from instant to instant on top of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from charger_sim.protocols.base import SessionEnded

EPS = 1e-9  # same-instant tolerance (absolute-time schedules accumulate float error)


class Clocked:
    now: float
    charger: Any
    stage: Any

    def next_instant(self) -> float | None:
        raise NotImplementedError

    def step(self) -> float | None:
        raise NotImplementedError

    def stage_time(self, stage: Any) -> float:
        raise NotImplementedError

    def ended(self) -> SessionEnded:
        raise NotImplementedError

    def step_to(self, t: float) -> None:
        """Visit every instant up to and including ``t``; the clock then reads ``t``."""
        while True:
            nxt = self.next_instant()
            if nxt is None or nxt > t + EPS:
                break
            self.step()
        self.now = max(self.now, t)

    def run_until(self, predicate: Callable[[], bool], within: float) -> float:
        """Step until ``predicate()`` holds; fail if it does not within ``within`` seconds."""
        end = self.now + within
        while not predicate():
            nxt = self.next_instant()
            if nxt is None or nxt > end + EPS:
                raise AssertionError(
                    f"condition not met within {within:g} s (t={self.now:.3f}, stage {self.stage.value})"
                )
            self.step()
        return self.now

    def until_stage(self, stage: Any, within: float) -> float:
        self.run_until(lambda: self.stage is stage, within)
        return self.stage_time(stage)

    def finish(self, within: float = 30.0) -> SessionEnded:
        self.run_until(lambda: self.charger.finished, within)
        return self.ended()
