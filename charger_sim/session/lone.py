"""A single-role session: one local core (charger or simulated BMS) against a real peer on the bus.

The counterpart of :class:`~charger_sim.session.session.Session` for the ``charger`` and ``bms``
commands: it builds only the local core, a :mod:`~charger_sim.plant.peer` plant that stands in for
the peer's hardware lines, records frames and events, and judges the outcome.  Same driver hooks as
:class:`Session` (``start``, ``link``, ``next_deadline``, ``observe``, ``done``, ``request_stop``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..bms.battery import Battery
from ..codec import Codec, load_dbc
from ..frames import Frame
from ..plant import peer as peers
from ..plant.harness import Harness
from ..protocols import registry
from ..protocols.base import Core, FaultRaised, Outcome, Role, SessionEnded, Snapshot, StageChanged
from ..scenario.schema import Scenario
from .result import Sample, SessionResult, TimelineEntry
from .session import SAMPLE_PERIOD, verdict

log = logging.getLogger(__name__)

VEHICLE_NODES = ("VEHICLE", "BMS")  # DBC node names of the vehicle side


class LoneSession:
    """One core of ``scenario`` (``role``) on a real bus; the other side is a real device."""

    def __init__(self, scenario: Scenario, role: Role, codec: Codec | None = None) -> None:
        if scenario.faults:
            raise_unsupported_faults(scenario)
        self.scenario = scenario
        self.role = role
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
        self.plant = peers.build(
            self.info.name, role, self.harness, self.codec, self.battery, setup.behaviour
        )
        if role is Role.CHARGER:
            self.core: Core = self.info.build_charger(scenario.charger, self.harness, self.codec)
        else:
            self.core = self.info.build_vehicle(setup.behaviour, self.battery, self.harness, self.codec)
        self.timeline: list[TimelineEntry] = []
        self.samples: list[Sample] = []
        self.fault_events: list[FaultRaised] = []
        self.ended: SessionEnded | None = None
        self.stage_entered: dict[str, float] = {}
        self.frames_on_wire = 0
        self.frames_from_peer = 0
        self.soc_start = self.battery.soc
        self.max_temperature = self.battery.temperature_c
        self.on_frame: list[Callable[[Frame, Role], None]] = []
        self.end_time: float | None = None
        self.stop_requested: str | None = None
        self._next_sample = 0.0

    # ---- ids on the bus ----------------------------------------------------------------------
    def own_messages(self) -> list[int]:
        return [m.frame_id for m in self.codec.messages if self._is_own(m.senders)]

    def peer_messages(self) -> list[int]:
        return [m.frame_id for m in self.codec.messages if not self._is_own(m.senders)]

    def _is_own(self, senders: tuple[str, ...]) -> bool:
        charger = "CHARGER" in senders
        return charger if self.role is Role.CHARGER else (not charger and bool(senders))

    # ---- driver hooks ------------------------------------------------------------------------
    def start(self, now: float) -> list[tuple[Role, Frame]]:
        self._next_sample = now
        self.plant.start(now)
        out = [(self.role, f) for f in self.core.start(now)]
        self.observe(now)
        return out

    def link(self, frame: Frame, sender: Role, now: float) -> list[tuple[float, Frame]]:
        for listener in self.on_frame:
            listener(frame, sender)
        self.frames_on_wire += 1
        return [(now, frame)]

    def heard(self, frame: Frame, now: float) -> None:
        """A peer frame arrived (recorded as received)."""
        self.frames_from_peer += 1
        peer = Role.VEHICLE if self.role is Role.CHARGER else Role.CHARGER
        for listener in self.on_frame:
            listener(frame, peer)

    def next_deadline(self) -> float | None:
        return self._next_sample

    def observe(self, now: float) -> None:
        for event in self.core.drain_events():
            self._record(event)
        if now + 1e-9 >= self._next_sample:
            self._sample(now)
            self._next_sample = now + SAMPLE_PERIOD

    def request_stop(self, now: float, reason: str) -> None:
        """Operator stop / Ctrl-C / bus failure: the local core runs its stop path."""
        self.stop_requested = reason
        if reason not in self.info.stop_reasons and self.role is Role.CHARGER:
            reason = "can_timeout" if reason == "bus_error" else "operator_stop"
        self.core.request_stop(now, reason)

    @property
    def done(self) -> bool:
        if self.ended is not None and self.core.finished:
            return True
        # a stop asked for before the peer was ever heard: nothing on the bus to wind down
        return self.stop_requested is not None and not self.plant.peer_seen

    # ---- views -------------------------------------------------------------------------------
    def charger_snapshot(self) -> Snapshot:
        return self.core.snapshot() if self.role is Role.CHARGER else self.plant.snapshot()

    def vehicle_snapshot(self) -> Snapshot:
        return self.core.snapshot() if self.role is Role.VEHICLE else self.plant.snapshot()

    # ---- internals -----------------------------------------------------------------------------
    def _record(self, event: StageChanged | FaultRaised | SessionEnded) -> None:
        if isinstance(event, StageChanged):
            values = dict(self.core.snapshot().values)
            self.timeline.append(
                TimelineEntry(event.time, event.role.value, event.stage, event.step, event.detail, values)
            )
            self.stage_entered.setdefault(event.stage, event.time)
        elif isinstance(event, FaultRaised):
            self.fault_events.append(event)
        elif event.role is self.role:
            self.ended = event

    def _sample(self, now: float) -> None:
        c = self.charger_snapshot().values
        v = self.vehicle_snapshot().values
        current = self.harness.output_current if self.harness.contactors_closed else 0.0
        self.max_temperature = max(self.max_temperature, self.battery.temperature_c)
        self.samples.append(
            Sample(
                time=now,
                stage=self.core.snapshot().stage,
                target_voltage=float(c.get("target_voltage", 0.0)),
                present_voltage=float(c.get("present_voltage", 0.0)),
                current_request=float(c.get("current_request", v.get("request", 0.0))),
                present_current=float(c.get("present_current", 0.0)),
                power_kw=float(c.get("power_kw", 0.0)),
                soc=self._soc(),
                max_cell_temperature=self.battery.temperature_c,
                max_cell_voltage=self.battery.max_cell_voltage(current),
            )
        )

    def _soc(self) -> float:
        if self.role is Role.VEHICLE:
            return self.battery.soc
        reported = self.plant.snapshot().values.get("soc")  # the real vehicle's own figure
        return float(reported) if isinstance(reported, (int, float)) and self.plant.peer_seen else 0.0

    # ---- result --------------------------------------------------------------------------------
    def result(self, end_time: float) -> SessionResult:
        self._sample(end_time)
        sc = self.scenario
        end = self.ended
        snap = self.core.snapshot()
        if end is None:
            outcome, reason, cause = Outcome.UNFINISHED.value, "time_limit", "time limit reached"
            stage, step, origin, duration = snap.stage, snap.step, "scenario", end_time
        elif self.role is Role.CHARGER:
            outcome, reason, cause = end.outcome.value, end.reason, end.cause
            stage, step, origin, duration = end.stage, end.step, end.origin.value, end.time
        else:  # the BMS: where it stopped charging, and why
            outcome, reason, cause = end.outcome.value, end.reason, end.cause
            mine = [e for e in self.timeline if e.role == self.role.value]
            at = next((i for i, e in enumerate(mine) if e.stage == "stopping"), len(mine))
            where = mine[at - 1] if at > 0 else None
            stage = where.stage if where is not None else end.stage
            step = where.step if where is not None else end.step
            origin, duration = end.origin.value, end.time
        if self.stop_requested == "interrupted" and outcome != Outcome.COMPLETED.value:
            reason, cause, origin = "interrupted", "session interrupted (Ctrl-C)", "operator"
        if self.role is Role.CHARGER:
            mismatches = verdict(sc, outcome, stage, step, reason, duration)
        else:  # charger stages and stop reasons do not apply to the vehicle's view
            mismatches = verdict_outcome_only(sc, outcome, reason)
        c = self.charger_snapshot().values
        power = getattr(self.core, "power", None)
        peak = max((s.present_current for s in self.samples), default=0.0)
        if power is not None:
            peak = max(peak, float(power.peak_current))
        if self.role is Role.CHARGER:
            energy = float(c.get("energy_kwh", 0.0))
            soc_start = next((s.soc for s in self.samples if s.soc), 0.0)
            soc_end = self._soc()
        else:
            energy = (
                sum(
                    a.present_voltage * a.present_current * (b.time - a.time)
                    for a, b in zip(self.samples, self.samples[1:], strict=False)
                )
                / 3.6e6
            )
            soc_start, soc_end = self.soc_start, self.battery.soc
        own = getattr(self.core, "frames_sent", 0)
        return SessionResult(
            scenario=f"{sc.name} ({self.role.value} role)",
            protocol=sc.protocol,
            path=sc.path,
            seed=sc.seed,
            expected=sc.expect.describe() if self.role is Role.CHARGER else sc.expect.outcome,
            outcome=outcome,
            reason=reason,
            cause=cause,
            stage=stage,
            step=step,
            origin=origin,
            duration=duration,
            energy_kwh=energy,
            peak_current=peak,
            soc_start=soc_start,
            soc_end=soc_end,
            max_temperature=self.max_temperature,
            frames_sent=int(own),
            frames_received=self.frames_from_peer,
            frames_dropped=0,
            passed=not mismatches,
            mismatches=mismatches,
            timeline=list(self.timeline),
            samples=list(self.samples),
            charger_faults=list(getattr(self.core, "faults", [])) if self.role is Role.CHARGER else [],
        )


def verdict_outcome_only(sc: Scenario, outcome: str, reason: str) -> list[str]:
    """The BMS role's verdict: only the outcome (stages, reasons and times are the charger's)."""
    if outcome != sc.expect.outcome:
        return [f"outcome {outcome} ({reason}), expected {sc.expect.outcome}"]
    return []


def raise_unsupported_faults(scenario: Scenario) -> None:
    from ..errors import ScenarioError

    kinds = ", ".join(sorted({f.type for f in scenario.faults}))
    raise ScenarioError(
        scenario.path,
        "faults",
        f"the charger and bms roles do not inject faults ({kinds}) yet: remove the faults section, "
        "or use 'charger-sim run' (both sides simulated)",
    )
