"""CHAdeMO line supervision and plausibility checks (sans-I/O), shared by the charger and the vehicle.

Control lines are hardware inputs: a real ECU reads them through an input filter and an edge
interrupt, not once per 100 ms CAN cycle.  :class:`LineWatch` gives a core that behaviour: the core's
``next_deadline()`` is "now" as soon as a watched line reads differently from what the core last
sampled (a line flipped by the plant or a worn contact), and ``on_timer`` samples and reacts.  A
contact that bounces faster than the CAN cycle is therefore seen, as on a real charger.

Lines carry their driven level as 1.0 (closed / +12 V) and 0.0 (open); a worn contact may read
anything in between.  Readings are judged with a window comparator (§3: 12 V signals): at or above
:data:`LINE_ON` of the driven level is on, at or below :data:`LINE_OFF` is off, in between is out of
band and never counts as on.  Section numbers refer to the CHAdeMO fact sheet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ...plant.harness import Harness
from . import timing as T

LINE_ON = T.LINE_ON  # fractions of the driven level (timing.py, with the other thresholds)
LINE_OFF = T.LINE_OFF

#: §2, §8: a vehicle ends charging with k *and* 102.5.0 -> 0; the 0x102 that follows a k opening is
#: due within one cycle (T10 = the timing table's "cycle").  If none says 102.5.0 = 0 within two
#: cycles, the k line is faulty (derived from the table, not a limit of its own).
K_CONFIRM_S = 2.0 * T.limit("cycle")


def line_on(level: float) -> bool:
    return level >= LINE_ON


def describe_level(name: str, level: float) -> str:
    if level >= LINE_ON:
        return f"{name} closed"
    if level <= LINE_OFF:
        return f"{name} open"
    return f"{name} out of band ({level:.0%} of its driven level)"


class LineWatch:
    """Edge detection on some harness lines: ``changed()`` after a flip, ``sample()`` to take it in."""

    __slots__ = ("_harness", "_items", "levels")

    def __init__(self, harness: Harness, defaults: Mapping[str, float]) -> None:
        self._harness = harness
        self._items = tuple(defaults.items())  # (line, level read while nobody drives it)
        self.levels: dict[str, float] = {}
        self.sample()

    def changed(self) -> bool:
        """Cheap enough for every ``next_deadline()``: plain dict reads unless a worn pin overrides."""
        h = self._harness
        read = h.line if h.overrides else h.lines.get
        levels = self.levels
        for name, default in self._items:  # noqa: SIM110 (a plain loop: no generator on the hot path)
            if read(name, default) != levels[name]:
                return True
        return False

    def sample(self) -> dict[str, float]:
        line = self._harness.line
        self.levels = {name: line(name, default) for name, default in self._items}
        return self.levels


def implausible(request: float, target: float, max_current: float, max_voltage: float) -> str | None:
    """Why a 0x102 received while charging is implausible (§5.3, §5.5), or None.

    The vehicle knows the charger's available current (108.3) and voltage (108.1-2) from the first
    0x108; a request above them is a corrupted frame or a vehicle fault, never a real demand.  The
    output is clamped to min(request, 108.3) regardless; this says whether to stop as well.
    """
    if request > max_current:
        return f"102.3 current request {request:g} A is above the available {max_current:g} A (108.3)"
    if target > max_voltage:
        return f"102.1-2 target voltage {target:g} V is above the available {max_voltage:g} V (108.1-2)"
    return None


def missing_frame(frame_id: int, what: str, bad: tuple[int, int] | None) -> str:
    """Operator words for a vehicle frame that did not arrive (or arrived unusable)."""
    text = f"no valid 0x{frame_id:03X} {what}"
    if bad is not None:
        count, dlc = bad
        text += f"; {count} frame(s) 0x{frame_id:03X} with {dlc} data byte(s) ignored (DLC 8 expected, §2)"
    return text


def ohm_text(r: float | None) -> str:
    if r is None:
        return "?"
    if math.isinf(r):
        return "open circuit"
    return f"{r / 1e6:.2f} MOhm" if r >= 1e6 else f"{r / 1e3:.1f} kOhm"
