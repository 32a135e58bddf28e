"""The fault engine of a session: triggers, and what each fault does to the link, plant, pack or charger.

Pure and deterministic like the cores: the session calls :meth:`FaultEngine.step` after every driver
step with ``now``, routes every frame through :meth:`FaultEngine.link`, and includes
:meth:`FaultEngine.next_deadline` in its own deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..bms.battery import Battery
from ..codec import Codec
from ..frames import Frame
from ..plant.harness import Harness
from ..protocols.base import Core, Pin
from ..scenario.schema import FaultSpec
from .catalogue import DEFAULT_BOUNCE_PERIOD, FAULTS
from .link import Delivery, LinkFault, LinkFaults

log = logging.getLogger(__name__)

_EPS = 1e-9
OVER_VOLTAGE_MARGIN_V = 0.05  # cell_over_voltage: this far above the chemistry's trip voltage


@dataclass(slots=True)
class ActiveFault:
    spec: FaultSpec
    start: float | None = None  # when it starts (known once its trigger is met)
    end: float | None = None
    fired: bool = False
    restored: bool = False
    link: LinkFault | None = None
    next_flip: float | None = None  # worn_pins bouncing
    saved: float | None = None  # the value a restore puts back


class FaultEngine:
    def __init__(
        self,
        faults: tuple[FaultSpec, ...],
        *,
        codec: Codec,
        harness: Harness,
        battery: Battery,
        charger: Core,
        pins: Mapping[str, Pin],
        frame_message: Callable[[Frame], str | None] | None = None,
    ) -> None:
        self.harness = harness
        self.battery = battery
        self.charger = charger
        self.pins = pins
        self.links = LinkFaults(codec, frame_message)
        # firmware_mismatch acts on the vehicle's configuration before the session starts
        self.faults = [ActiveFault(f) for f in faults if f.type != "firmware_mismatch"]
        for af in self.faults:
            if FAULTS[af.spec.type].layer == "link":
                af.link = self.links.add(af.spec)
        self.fired: list[tuple[float, FaultSpec]] = []

    @property
    def first_fired(self) -> float | None:
        return self.fired[0][0] if self.fired else None

    @property
    def frames_dropped(self) -> int:
        return self.links.dropped

    def link(self, frame: Frame, now: float) -> list[Delivery]:
        return self.links.apply(frame, now)

    def next_deadline(self) -> float | None:
        best: float | None = None
        for af in self.faults:
            t: float | None = None
            if not af.fired:
                t = af.start if af.start is not None else af.spec.at.time
            elif not af.restored:
                t = af.next_flip if af.end is None else min(af.end, af.next_flip or af.end)
            if t is not None and (best is None or t < best):
                best = t
        return best

    def step(self, now: float, stage_entered: Mapping[str, float], reading: Callable[[str], float]) -> None:
        for af in self.faults:
            if af.restored:
                continue
            at = af.spec.at
            if af.start is None:
                if at.time is not None:
                    af.start = at.time
                elif at.stage is not None and at.stage in stage_entered:
                    af.start = stage_entered[at.stage] + at.after
                else:
                    cond = at.parsed_condition
                    if cond is not None and cond.holds(reading(cond.variable)):
                        af.start = now
                if af.start is not None and af.spec.duration is not None:
                    af.end = af.start + af.spec.duration
                if af.link is not None:  # the link acts on frames sent from ``start`` on, to the instant
                    af.link.start, af.link.end = af.start, af.end
            if af.start is not None and not af.fired and now + _EPS >= af.start:
                af.fired = True
                self.fired.append((now, af.spec))
                log.info("%.3f fault on: %s", now, af.spec.describe())
                self._apply(af, now, on=True)
            if af.fired and af.end is not None and now + _EPS >= af.end:
                af.restored = True
                log.info("%.3f fault off: %s", now, af.spec.describe())
                self._apply(af, now, on=False)
            elif af.fired and af.next_flip is not None and now + _EPS >= af.next_flip:
                self._flip(af, now)

    # ---- what each kind does ---------------------------------------------------------------------
    def _apply(self, af: ActiveFault, now: float, *, on: bool) -> None:
        spec = af.spec
        kind = spec.type
        if af.link is not None:
            pass  # LinkFaults.apply compares each frame's time with the fault's start and end
        elif kind == "temperature_runaway":
            self.battery.add_heat(float(spec.value or 0.0) if on else 0.0, index=spec.group)
        elif kind == "cell_over_voltage" and on:
            volts = self.battery.spec.cell_chemistry.over_voltage_v + OVER_VOLTAGE_MARGIN_V
            self.battery.force_cell_ocv(spec.group or 0, volts)
        elif kind == "cell_imbalance" and on:
            self.battery.inject_cell_offset(spec.group or 0, float(spec.value or 0.0))
        elif kind == "insulation_drop":
            if on:
                af.saved = self.harness.insulation_resistance_ohm
                self.harness.insulation_resistance_ohm = float(spec.value or 0.0)
            elif af.saved is not None:
                self.harness.insulation_resistance_ohm = af.saved
        elif kind == "contactor_welded":
            self.harness.welded = on
        elif kind == "worn_pins":
            self._pins(af, now, on=on)
        elif kind == "operator_stop" and on:
            self.charger.request_stop(now, "operator_stop")
        elif kind == "power_stage_fault" and on:
            self.charger.inject_power_fault(now)

    def _pins(self, af: ActiveFault, now: float, *, on: bool) -> None:
        pin = self.pins[str(af.spec.pin)]
        if not on:
            self.harness.overrides.pop(pin.line, None)
            af.next_flip = None
            return
        if (af.spec.mode or "out_of_band") == "bouncing":
            self.harness.overrides[pin.line] = 0.0  # the contact opens ...
            af.next_flip = now + (af.spec.period or DEFAULT_BOUNCE_PERIOD)
        else:
            self.harness.overrides[pin.line] = pin.bad if af.spec.value is None else float(af.spec.value)

    def _flip(self, af: ActiveFault, now: float) -> None:
        """A bouncing contact: open (reads 0) and closed (reads what is driven) in turn."""
        line = self.pins[str(af.spec.pin)].line
        if line in self.harness.overrides:
            del self.harness.overrides[line]
        else:
            self.harness.overrides[line] = 0.0
        af.next_flip = now + (af.spec.period or DEFAULT_BOUNCE_PERIOD)
