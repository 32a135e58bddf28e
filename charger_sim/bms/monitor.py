"""The simulated BMS's view of its pack, shared by every protocol's vehicle core.

Charge accumulates on every call; the pack model steps once per ``step`` seconds of session time
with the charge-conserving mean current (cells barely move in 100 ms), and the BMS's current limit
and tripped protections are refreshed with each step.
"""

from __future__ import annotations

from .battery import Battery

DEFAULT_STEP = 1.0  # s of session time per pack-model step


class PackMonitor:
    def __init__(self, battery: Battery, step: float = DEFAULT_STEP) -> None:
        if step <= 0:
            raise ValueError("step must be positive")
        self.battery = battery
        self.step = step
        self.limit = battery.charge_current_limit()
        self.tripped: frozenset[str] = frozenset()
        self._last: float | None = None
        self._charge = 0.0  # A*s accumulated since the last pack step
        self._dt = 0.0

    def update(self, current: float, now: float) -> None:
        """``current`` (A into the pack) has flowed since the previous call."""
        last, self._last = self._last, now
        if last is None:
            return
        dt = now - last
        if dt <= 0:
            return
        self._charge += current * dt
        self._dt += dt
        if self._dt >= self.step or (current == 0.0 and self._charge != 0.0):
            self.battery.step(self._charge / self._dt, self._dt)
            self._charge = 0.0
            self._dt = 0.0
            self.limit = self.battery.charge_current_limit()
            self.tripped = self.battery.protections(current)
