"""A session: charger core + simulated vehicle core + plant, with fault injection and recording.

Drivers (simulated or real-time) call :meth:`Session.link` for every frame put on the wire,
:meth:`Session.observe` after every step, and honour :meth:`Session.next_deadline`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..bms.battery import Battery
from ..codec import Codec, load_dbc
from ..faults.engine import FaultEngine
from ..frames import Frame
from ..plant.harness import Harness
from ..protocols import registry
from ..protocols.base import Core, FaultRaised, Outcome, Role, SessionEnded, StageChanged
from ..scenario.schema import Scenario
from .result import Sample, SessionResult, TimelineEntry

log = logging.getLogger(__name__)

SAMPLE_PERIOD = 1.0
END_GRACE = 2.0  # keep running this long after the charger finished, for the vehicle's last frames


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
        behaviour = setup.behaviour
        for spec in scenario.faults:
            if spec.type == "firmware_mismatch" and self.info.apply_firmware is not None:
                behaviour = self.info.apply_firmware(behaviour, str(spec.version))
        self.vehicle: Core = self.info.build_vehicle(behaviour, self.battery, self.harness, self.codec)
        self.charger: Core = self.info.build_charger(scenario.charger, self.harness, self.codec)
        self.timeline: list[TimelineEntry] = []
        self.samples: list[Sample] = []
        self.fault_events: list[FaultRaised] = []
        self.charger_end: SessionEnded | None = None
        self.vehicle_end: SessionEnded | None = None
        self.stage_entered: dict[str, float] = {}
        self.stop_times: list[float] = []  # when the charger entered a stop stage (see stop_stages)
        self._stop_stages = stop_stages(self.info.stage_steps)
        self.frames_on_wire = 0
        self.soc_start = self.battery.soc
        self.max_temperature = self.battery.temperature_c
        self.faults = FaultEngine(
            scenario.faults,
            codec=self.codec,
            harness=self.harness,
            battery=self.battery,
            charger=self.charger,
            pins=self.info.pins,
            frame_message=self.info.frame_message,
        )
        self._next_sample = 0.0
        self.on_frame: list[Callable[[Frame, Role], None]] = []
        self.end_time: float | None = None

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
        out = self.faults.link(frame, now)
        for listener in self.on_frame:
            for _, f in out:
                listener(f, sender)
        return out

    @property
    def frames_dropped(self) -> int:
        return self.faults.frames_dropped

    def next_deadline(self) -> float | None:
        fault = self.faults.next_deadline()
        return self._next_sample if fault is None else min(fault, self._next_sample)

    def observe(self, now: float) -> None:
        """After each driver step: events, fault triggers, samples."""
        for core in (self.charger, self.vehicle):
            for event in core.drain_events():
                self._record(event, now)
        self.faults.step(now, self.stage_entered, self._reading)
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
                if event.stage in self._stop_stages:
                    self.stop_times.append(event.time)
        elif isinstance(event, FaultRaised):
            self.fault_events.append(event)
        elif event.role is Role.CHARGER:
            self.charger_end = event
        else:
            self.vehicle_end = event

    def _reading(self, name: str) -> float:
        """A quantity a fault's condition compares (schema.CONDITION_VARIABLES)."""
        h = self.harness
        current = h.output_current if h.contactors_closed else 0.0
        if name == "soc":
            return self.battery.soc
        if name == "temperature":
            return self.battery.temperature_c
        if name == "cell_voltage":
            return self.battery.max_cell_voltage(current)
        if name == "current":
            return current
        if name == "voltage":
            return h.output_voltage
        return self.end_time or 0.0

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
        energy = float(c.get("energy_kwh", 0.0))
        peak = max((s.present_current for s in self.samples), default=0.0)
        power = getattr(self.charger, "power", None)
        if power is not None:
            peak = max(peak, float(power.peak_current))
        mismatches = verdict(sc, outcome, stage_name, step, reason, duration)
        fault_at = self.faults.first_fired
        stop_at = next((t for t in self.stop_times if fault_at is not None and t >= fault_at - 1e-9), None)
        mismatches += checks(sc, peak, energy, fault_at, stop_at)
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
            fault_times=[(t, spec.describe()) for t, spec in self.faults.fired],
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


def stop_stages(stage_steps: Mapping[str, int]) -> frozenset[str]:
    """The charger stages of a stop path: every stage after the first step-7 stage (bar 'paused')."""
    names = list(stage_steps)
    first = next((i for i, n in enumerate(names) if stage_steps[n] == 7), len(names))
    return frozenset(n for n in names[first + 1 :] if n != "paused")


def checks(
    sc: Scenario, peak_current: float, energy_kwh: float, fault_at: float | None, stop_at: float | None
) -> list[str]:
    """The scenario's optional checks (expect.max_current, stop_within, energy_*_kwh) that failed."""
    exp = sc.expect
    out: list[str] = []
    if exp.max_current is not None and peak_current > exp.max_current + 1e-6:
        out.append(f"peak current {peak_current:.1f} A, expected at most {exp.max_current:g} A")
    if exp.stop_within is not None:
        if fault_at is None:
            out.append("no fault fired, so no stop to time (expect.stop_within)")
        elif stop_at is None:
            out.append(f"the charger never began a stop after the fault at {fault_at:.3f} s")
        elif stop_at - fault_at > exp.stop_within + 1e-9:
            out.append(
                f"the charger began its stop {stop_at - fault_at:.3f} s after the fault, "
                f"expected within {exp.stop_within:g} s"
            )
    if exp.energy_min_kwh is not None and energy_kwh < exp.energy_min_kwh:
        out.append(f"energy {energy_kwh:.2f} kWh, expected at least {exp.energy_min_kwh:g} kWh")
    if exp.energy_max_kwh is not None and energy_kwh > exp.energy_max_kwh:
        out.append(f"energy {energy_kwh:.2f} kWh, expected at most {exp.energy_max_kwh:g} kWh")
    return out
