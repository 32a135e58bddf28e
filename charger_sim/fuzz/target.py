"""One charger core under test: steps applied on an explicit clock, invariants checked after each.

The target owns the clock, the harness (control lines, DC link) and a little plant physics: the
vehicle's contactor coils are fed through the charger's contactor line (CHAdeMO ``d2``...), so they
drop out when the charger opens it, unless the hostile vehicle declared them ``welded``.  Between
steps every charger deadline is visited in order (``on_timer`` exactly at ``next_deadline()``).
After every input and every timer call the protocol's :class:`~charger_sim.fuzz.oracles.Oracle`
checks its invariants; any exception escaping the core is a violation too, and ends the session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..codec import Codec, load_dbc
from ..frames import Frame
from ..plant.harness import Harness
from ..protocols import registry
from ..protocols.base import Core
from .script import Step

_STUCK_LIMIT = 1000  # timer calls at one instant before the core counts as stuck
EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Violation:
    code: str  # stable identifier of the broken invariant (used to minimise counterexamples)
    detail: str
    t: float
    stage: str
    exception: bool = False

    def __str__(self) -> str:
        return f"t={self.t:.3f} s in {self.stage}: {self.code}: {self.detail}"


class Target:
    """A charger core, its harness and plant, the clock, and the protocol's oracle."""

    def __init__(
        self,
        protocol: str,
        charger: dict[str, Any] | None = None,
        *,
        oracle: Callable[[Target], Any] | None = None,
        core_factory: Callable[[Any, Harness, Codec], Core] | None = None,
    ) -> None:
        from .oracles import oracle_for

        self.info = registry.get(protocol)
        self.protocol = self.info.name
        self.codec = load_dbc(self.info.dbc)
        self.harness = Harness()
        self.charger_overrides = dict(charger or {})
        self.config: Any = self.info.charger_config(**self.charger_overrides)
        build = core_factory or self.info.build_charger
        self.core: Core = build(self.config, self.harness, self.codec)
        self.now = 0.0
        self.frames_in = 0  # frames delivered to the charger
        self.frames_out: list[Frame] = []  # what the charger sent (kept short: last few only)
        # everything the charger sent since a protocol-aware vehicle last took it (None: nobody reads)
        self.outbox: list[Frame] | None = None
        self.sent_count = 0
        self.timer_calls = 0
        self.violations: list[Violation] = []
        self.broken = False  # an exception escaped: the core's state is unknown, the session ends
        self.welded = False
        self.coil_line = _COIL_LINES.get(self.protocol)
        self.oracle = (oracle or oracle_for(self.protocol))(self)

    # ---- driving ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._call(lambda: self.core.start(self.now), "start")
        self.check()

    def apply(self, step: Step) -> None:
        """Run the charger's timers up to ``step.t``, then apply the step and check."""
        self.run_until(step.t)
        if self.broken:
            return
        self.now = max(self.now, step.t)
        self.oracle.before(step, self.now)
        if step.kind == "frame":
            frame = Frame(step.frame_id, step.data, step.extended, self.now)
            self.frames_in += 1
            self._call(lambda: self.core.receive(frame, self.now), "receive")
        elif step.kind == "line":
            self.harness.set(step.name, step.value)
        elif step.kind == "plant":
            self._plant(step.name, step.value)
        elif step.kind == "operator":
            if step.name == "stop":
                self._call(lambda: self.core.request_stop(self.now, "operator_stop"), "request_stop")
            else:
                self._call(lambda: self.core.inject_power_fault(self.now), "inject_power_fault")
        self._physics()
        self.check()

    def run_until(self, t: float) -> None:
        """Visit every charger deadline up to and including ``t``."""
        same = 0
        while not self.broken:
            deadline = self._call(self.core.next_deadline, "next_deadline")
            if self.broken or deadline is None or deadline > t + 1e-9:
                return
            if deadline <= self.now + 1e-12:
                same += 1
                if same > _STUCK_LIMIT:
                    self.violate("stuck", f"next_deadline() stays at {deadline:.6f} s after on_timer")
                    self.broken = True
                    return
            else:
                same = 0
            self.now = max(self.now, deadline)
            self.timer_calls += 1
            self._call(lambda: self.core.on_timer(self.now), "on_timer")
            self._physics()
            self.check()

    def finish(self, end: float) -> None:
        """Silence until ``end`` (timers only), then the terminal checks."""
        self.run_until(end)
        if not self.broken:
            self.now = max(self.now, end)
            self.oracle.final(self.now)

    # ---- internals -------------------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        try:
            out = fn()
        except Exception as err:  # the invariant: nothing escapes a core
            self.violate(
                f"exception:{type(err).__name__}",
                f"{what} raised {type(err).__name__}: {err}",
                exception=True,
            )
            self.broken = True
            return None
        if isinstance(out, list) and out:
            self.sent_count += len(out)
            self.frames_out = (self.frames_out + out)[-8:]
            if self.outbox is not None:
                self.outbox.extend(out)
        return out

    def _plant(self, name: str, value: float) -> None:
        h = self.harness
        if name == "contactors_closed":
            h.contactors_closed = bool(value)
        elif name == "battery_voltage":
            h.battery_voltage = float(value)
        elif name == "insulation_resistance_ohm":
            h.insulation_resistance_ohm = float(value)
        elif name == "connected":
            h.connected = bool(value)
        elif name == "welded":
            self.welded = bool(value)

    def _physics(self) -> None:
        # contactor coils are fed through the charger's line: they drop out when it opens
        h = self.harness
        if self.coil_line and h.contactors_closed and not self.welded and not h.is_on(self.coil_line):
            h.contactors_closed = False

    def check(self) -> None:
        if not self.broken:
            self.oracle.check(self.now)

    def stage(self) -> str:
        stage = getattr(self.core, "stage", None)
        value = getattr(stage, "value", stage)
        return str(value) if value is not None else "?"

    def violate(self, code: str, detail: str, *, exception: bool = False) -> None:
        try:
            stage = self.stage()
        except Exception:  # a broken core may not even say its stage
            stage = "?"
        self.violations.append(Violation(code, detail, self.now, stage, exception))

    def output_current(self) -> float:
        power = getattr(self.core, "power", None)
        if power is not None:
            return float(power.current)
        return float(self.harness.output_current)

    def describe_config(self) -> dict[str, Any]:
        """The charger configuration as overrides (what a case file stores)."""
        if dataclasses.is_dataclass(self.config):
            default = self.info.charger_config()
            return {
                f.name: getattr(self.config, f.name)
                for f in dataclasses.fields(self.config)
                if getattr(self.config, f.name) != getattr(default, f.name)
            }
        return dict(self.charger_overrides)


# The charger-driven line that energises the vehicle's contactor coils, per protocol.
_COIL_LINES = {"chademo": "d2"}
