"""A session: charger core + simulated vehicle core + plant, with fault injection and recording.

Drivers (simulated or real-time) call :meth:`Session.link` for every frame put on the wire,
:meth:`Session.observe` after every step, and honour :meth:`Session.next_deadline`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..bms.battery import Battery
from ..codec import Codec, load_dbc
from ..frames import Frame
from ..plant.harness import Harness
from ..protocols import registry
from ..protocols.base import Core, FaultRaised, Outcome, Role, SessionEnded, StageChanged
from ..scenario.schema import FaultSpec, Scenario
from .result import Sample, SessionResult, TimelineEntry

log = logging.getLogger(__name__)

SAMPLE_PERIOD = 1.0
LINK_FAULTS = frozenset({"drop_message"})
END_GRACE = 2.0  # keep running this long after the charger finished, for the vehicle's last frames


@dataclass(slots=True)
class _ActiveFault:
    spec: FaultSpec
    start: float | None = None
    end: float | None = None
    fired: bool = False
    restored: bool = False


class Session:
    def __init__(self, scenario: Scenario, codec: Codec | None = None) -> None:
        self.scenario = scenario
        self.info = registry.get(scenario.protocol)
        self.codec = codec or load_dbc(self.info.dbc)
        self.harness = Harness()
        setup = scenario.vehicle
        self.battery = Battery(
            setup.pack,
            soc=setup.soc,
            temperature_c=setup.temperature,
            ambient_c=setup.ambient,
            seed=scenario.seed,
        )
        self.vehicle: Core = self.info.build_vehicle(setup.behaviour, self.battery, self.harness, self.codec)
        self.charger: Core = self.info.build_charger(scenario.charger, self.harness, self.codec)
        self.timeline: list[TimelineEntry] = []
        self.samples: list[Sample] = []
        self.fault_events: list[FaultRaised] = []
        self.charger_end: SessionEnded | None = None
        self.vehicle_end: SessionEnded | None = None
        self.stage_entered: dict[str, float] = {}
        self.frames_dropped = 0
        self.frames_on_wire = 0
        self.soc_start = self.battery.soc
        self.max_temperature = self.battery.temperature_c
        self._faults = [_ActiveFault(f) for f in scenario.faults]
        self._link_faults = [af for af in self._faults if af.spec.type in LINK_FAULTS]
        self._next_sample = 0.0
        self._drop_names: dict[int, str] = {m.frame_id: m.name for m in self.codec.messages}
        self.on_frame: list[Callable[[Frame, Role], None]] = []
        self.end_time: float | None = None
        self._saved_insulation = self.harness.insulation_resistance_ohm

    # ---- driver hooks ------------------------------------------------------------------------
    def start(self, now: float) -> list[tuple[Role, Frame]]:
        self._next_sample = now
        out = [(Role.VEHICLE, f) for f in self.vehicle.start(now)]
        out += [(Role.CHARGER, f) for f in self.charger.start(now)]
        self.observe(now)
        return out

    def link(self, frame: Frame, sender: Role, now: float) -> list[tuple[float, Frame]]:
        """Apply link faults to a frame ``sender`` put on the wire: [(delivery time, frame)].

        Listeners (the ``--log`` writer) see the frames the link delivers, as a logger at the
        charger would: a frame a fault dropped never reaches the log.
        """
        self.frames_on_wire += 1
        out = self._apply_link_faults(frame, now)
        for listener in self.on_frame:
            for _, f in out:
                listener(f, sender)
        return out

    def _apply_link_faults(self, frame: Frame, now: float) -> list[tuple[float, Frame]]:
        if not self._link_faults:
            return [(now, frame)]
        name = self._drop_names.get(frame.arbitration_id)
        if name is None and self.info.frame_message is not None:
            name = self.info.frame_message(frame)
        for af in self._link_faults:
            if (
                af.spec.type == "drop_message"
                and af.start is not None
                and af.start <= now
                and (af.end is None or now < af.end)
                and name == af.spec.message
            ):
                self.frames_dropped += 1
                return []
        return [(now, frame)]

    def next_deadline(self) -> float | None:
        candidates = [self._next_sample]
        for af in self._faults:
            if not af.fired and af.start is not None:
                candidates.append(af.start)
            elif af.fired and not af.restored and af.end is not None:
                candidates.append(af.end)
            elif af.start is None and af.spec.at.time is not None:
                candidates.append(af.spec.at.time)
        return min(candidates) if candidates else None

    def observe(self, now: float) -> None:
        """After each driver step: events, fault triggers, samples."""
        for core in (self.charger, self.vehicle):
            for event in core.drain_events():
                self._record(event, now)
        self._faults_step(now)
        if now + 1e-9 >= self._next_sample:
            self._sample(now)
            self._next_sample = now + SAMPLE_PERIOD

    def request_stop(self, now: float, reason: str) -> None:
        """Operator stop, Ctrl-C or a failed bus: the charger runs its stop path."""
        if reason not in self.info.stop_reasons:
            reason = "can_timeout" if reason == "bus_error" else "operator_stop"
        self.charger.request_stop(now, reason)

    @property
    def done(self) -> bool:
        if self.charger_end is None:
            return False
        return self.vehicle.finished or (
            self.end_time is not None and self.end_time >= self.charger_end.time + END_GRACE
        )

    # ---- internals -----------------------------------------------------------------------------
    def _record(self, event: StageChanged | FaultRaised | SessionEnded, now: float) -> None:
        if isinstance(event, StageChanged):
            values = (
                self.charger.snapshot().values
                if event.role is Role.CHARGER
                else self.vehicle.snapshot().values
            )
            self.timeline.append(
                TimelineEntry(
                    event.time, event.role.value, event.stage, event.step, event.detail, dict(values)
                )
            )
            if event.role is Role.CHARGER:
                self.stage_entered.setdefault(event.stage, event.time)
        elif isinstance(event, FaultRaised):
            self.fault_events.append(event)
        elif event.role is Role.CHARGER:
            self.charger_end = event
        else:
            self.vehicle_end = event

    def _faults_step(self, now: float) -> None:
        for af in self._faults:
            at = af.spec.at
            if af.start is None:
                if at.time is not None:
                    af.start = at.time
                elif at.stage is not None and at.stage in self.stage_entered:
                    af.start = self.stage_entered[at.stage] + at.after
                elif at.soc_above is not None and self.battery.soc > at.soc_above:
                    af.start = now
                if af.start is not None and af.spec.duration is not None:
                    af.end = af.start + af.spec.duration
            if af.start is not None and not af.fired and now + 1e-9 >= af.start:
                af.fired = True
                self._apply(af.spec, now, on=True)
            if af.fired and not af.restored and af.end is not None and now + 1e-9 >= af.end:
                af.restored = True
                self._apply(af.spec, now, on=False)

    def _apply(self, spec: FaultSpec, now: float, *, on: bool) -> None:
        log.info("%.3f fault %s %s", now, spec.describe(), "on" if on else "off")
        if spec.type == "temperature_runaway":
            self.battery.add_heat(float(spec.value or 0.0) if on else 0.0)
        elif spec.type == "insulation_drop":
            if on:
                self._saved_insulation = self.harness.insulation_resistance_ohm
                self.harness.insulation_resistance_ohm = float(spec.value or 0.0)
            else:
                self.harness.insulation_resistance_ohm = self._saved_insulation
        elif spec.type == "operator_stop" and on:
            self.charger.request_stop(now, "operator_stop")
        elif spec.type == "power_stage_fault" and on:
            self.charger.inject_power_fault(now)

    def _sample(self, now: float) -> None:
        c = self.charger.snapshot()
        cv = c.values
        current = self.harness.output_current if self.harness.contactors_closed else 0.0
        self.max_temperature = max(self.max_temperature, self.battery.temperature_c)
        self.samples.append(
            Sample(
                time=now,
                stage=c.stage,
                target_voltage=float(cv.get("target_voltage", 0.0)),
                present_voltage=float(cv.get("present_voltage", 0.0)),
                current_request=float(cv.get("current_request", 0.0)),
                present_current=float(cv.get("present_current", 0.0)),
                power_kw=float(cv.get("power_kw", 0.0)),
                soc=self.battery.soc,
                max_cell_temperature=self.battery.temperature_c,
                max_cell_voltage=self.battery.max_cell_voltage(current),
            )
        )

    # ---- result --------------------------------------------------------------------------------
    def result(self, end_time: float) -> SessionResult:
        self._sample(end_time)
        sc = self.scenario
        end = self.charger_end
        c = self.charger.snapshot().values
        if end is None:
            stage = self.charger.snapshot()
            outcome, reason, cause = Outcome.UNFINISHED.value, "time_limit", "scenario time limit reached"
            stage_name, step, origin, duration = stage.stage, stage.step, "scenario", end_time
        else:
            outcome, reason, cause = end.outcome.value, end.reason, end.cause
            stage_name, step, origin, duration = end.stage, end.step, end.origin.value, end.time
        mismatches = verdict(sc, outcome, stage_name, step, reason, duration)
        energy = float(c.get("energy_kwh", 0.0))
        peak = max((s.present_current for s in self.samples), default=0.0)
        power = getattr(self.charger, "power", None)
        if power is not None:
            peak = max(peak, float(power.peak_current))
        return SessionResult(
            scenario=sc.name,
            protocol=sc.protocol,
            path=sc.path,
            seed=sc.seed,
            expected=sc.expect.describe(),
            outcome=outcome,
            reason=reason,
            cause=cause,
            stage=stage_name,
            step=step,
            origin=origin,
            duration=duration,
            energy_kwh=energy,
            peak_current=peak,
            soc_start=self.soc_start,
            soc_end=self.battery.soc,
            max_temperature=self.max_temperature,
            frames_sent=int(c.get("frames_sent", 0)),
            frames_received=int(c.get("frames_received", 0)),
            frames_dropped=self.frames_dropped,
            passed=not mismatches,
            mismatches=mismatches,
            timeline=list(self.timeline),
            samples=list(self.samples),
            faults=[f.describe() for f in sc.faults],
            charger_faults=list(getattr(self.charger, "faults", [])),
        )


def verdict(sc: Scenario, outcome: str, stage: str, step: int, reason: str, duration: float) -> list[str]:
    """Differences between what happened and what the scenario expects (empty: passed)."""
    exp = sc.expect
    out: list[str] = []
    if outcome != exp.outcome:
        out.append(f"outcome {outcome} ({reason}), expected {exp.outcome}")
    if exp.stage is not None and stage != exp.stage:
        out.append(f"stopped at stage {stage}, expected {exp.stage}")
    if exp.step is not None and step != exp.step:
        out.append(f"stopped at step {step}, expected step {exp.step}")
    if exp.reason is not None and reason != exp.reason:
        out.append(f"stop reason {reason}, expected {exp.reason}")
    if exp.within is not None and duration > exp.within:
        out.append(f"ended at {duration:.1f} s, expected within {exp.within:g} s")
    return out
