"""Replay a capture's vehicle side against charger-sim's charger core, in simulated time.

The recorded vehicle frames are released in their recorded order and pace; each one is anchored to our
charger's entry into the stage the recorded charger was in when the frame was sent (the vehicle reacts
to stage changes).  While our charger is behind in a stage it leaves on its own (an insulation test, a
fixed wait, a precharge), the vehicle's next frame is held and the vehicle keeps repeating its last
frames, as a real ECU would; when our charger is ahead, the frames of the stage it already left follow
at once.  What is not on the bus is inferred (CHAdeMO: the k line from 102.5.0, the vehicle's
contactors from its flags; GB/T: the BMS contactors from BRO 0xAA, the battery voltage from BCP/BCS).
Our charger is configured like the recorded one (its advertised limits); a stop the recorded charger
made on its own (operator, power-stage fault) is applied to ours at the same point.

The result says whether our charger walked the same stages as the recorded one (``matched``) and
where it diverged; the status walks (CHAdeMO 0x109.5, GB/T the charger's message sequence) are
compared too (``status_matched``).
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar

from ..codec import Value
from ..errors import UsageError
from ..frames import Frame
from ..plant.harness import Harness
from ..protocols import registry
from ..protocols.base import Core, SessionEnded, StageChanged
from . import diagnose
from .capture import Capture, Record
from .model import CHARGER, VEHICLE, SessionVerdict

log = logging.getLogger(__name__)

HOLD_LIMIT_S = 30.0  # a frame held this long: our charger is not going to reach the recorded stage
END_GRACE_S = 30.0  # after the recording: let our charger finish its stop sequence
SYNTH_DT = 0.01  # s between frames when a capture has no usable timestamps (all equal)
RECENT_S = 1.0  # a vehicle frame not repeated in the recording for this long is no longer being sent


def replay(capture: Capture) -> dict[str, Any]:
    """Replay the main session of ``capture`` (see :func:`charger_sim.diagnose.diagnose`)."""
    if capture.protocol not in registry.names():
        raise UsageError(
            f"replay needs charger-sim's {capture.protocol} charger core, which is not registered "
            f"(registered: {', '.join(registry.names())})"
        )
    diag = diagnose(capture)
    s = diag.main
    base: dict[str, Any] = {
        "protocol": capture.protocol,
        "path": capture.path,
        "session": diag.primary,
        "recorded_outcome": diag.outcome,
        "matched": False,
        "status_matched": False,
        "charger_walk": [],
        "recorded_walk": [],
        "charger_stages": [],
        "recorded_stages": [] if s is None else [x.stage for x in s.stages],
    }
    if s is None:
        return {**base, "divergence": "no session in the capture"}
    if s.starts_mid_session:
        return {**base, "divergence": "the capture starts mid-session: there is no start to replay"}
    sessions = diag.sessions
    if capture.timestamps == "none":
        capture, sessions = _retimed(capture, sessions)
        base["notes"] = [
            f"the capture has no usable timestamps: frames replayed {SYNTH_DT * 1000:g} ms apart"
        ]
    engine: ReplayBase
    if capture.protocol == "chademo":
        from .replay_chademo import ChademoReplay

        engine = ChademoReplay(capture, sessions, diag.primary)
    elif capture.protocol == "gbt":
        from .replay_gbt import GbtReplay

        engine = GbtReplay(capture, sessions, diag.primary)
    else:
        raise UsageError(f"replay of {capture.protocol} captures is not implemented")
    result = engine.run()
    result["notes"] = base.pop("notes", []) + result["notes"]
    return {**base, **result}


def _retimed(capture: Capture, sessions: list[SessionVerdict]) -> tuple[Capture, list[SessionVerdict]]:
    """Frame order as the time base, for captures whose timestamps are all equal."""

    def at(index: int | None) -> float | None:
        return None if index is None else index * SYNTH_DT

    records = [dataclasses.replace(r, time=r.index * SYNTH_DT) for r in capture.records]
    tp_frames = [dataclasses.replace(r, time=r.index * SYNTH_DT) for r in capture.tp_frames]
    out = []
    for v in sessions:
        spans = [
            dataclasses.replace(
                x, start=at(x.start_frame), end=at(x.end_frame) if x.end is not None else None
            )
            for x in v.stages
        ]
        vspans = [
            dataclasses.replace(
                x, start=at(x.start_frame), end=at(x.end_frame) if x.end is not None else None
            )
            for x in v.vehicle_stages
        ]
        last = max((r.time for r in records), default=0.0)
        out.append(dataclasses.replace(v, stages=spans, vehicle_stages=vspans, start=0.0, end=last))
    return dataclasses.replace(capture, records=records, tp_frames=tp_frames), out


class ReplayBase(abc.ABC):
    """The protocol-neutral replay loop; subclasses say how the protocol's plant and stages work."""

    cycle: float
    can_loss: float
    stop_phase: tuple[enum.Enum, ...]
    done: enum.Enum
    charger_stops: ClassVar[dict[str, str]]  # recorded reason -> the request_stop reason applied to ours
    walk_label = "status"

    def __init__(self, capture: Capture, sessions: list[SessionVerdict], index: int) -> None:
        self.capture = capture
        self.s = sessions[index]
        lo = sessions[index - 1].end if index > 0 else float("-inf")
        self.records = [r for r in capture.records if lo < r.time <= self.s.end + 1e-9]
        self.time_of = {r.index: r.time for r in self.records}
        self.notes: list[str] = []
        self.harness = Harness()
        self.charger, self.config = self.build()
        self.now = 0.0
        self.walk: list[str] = []
        self.stages: list[tuple[float, str, str]] = []
        self.ended: SessionEnded | None = None
        self.last_vehicle: dict[int, tuple[Frame, float]] = {}  # id -> (frame, recorded time)
        self.held = 0.0
        self.divergence: str | None = None
        self.injected = False
        self.last_tx = 0.0
        self.now_rec = 0.0  # recorded time of the last vehicle frame delivered
        self.entered: dict[str, list[float]] = {}  # our charger's entries into each stage
        self.base = 0.0  # recorded time of replay time 0

    # -------------------------------------------------------------------------- protocol hooks
    @abc.abstractmethod
    def build(self) -> tuple[Core, dict[str, Any]]:
        """Our charger core, configured like the recorded charger, and that configuration."""

    @abc.abstractmethod
    def items(self) -> list[Record]:
        """The recorded frames to deliver (vehicle side, raw CAN frames) and the charger records the
        plant estimate learns from, in capture order."""

    @abc.abstractmethod
    def token(self, frame: Frame) -> str | None:
        """The walk token of a charger frame (None: not part of the walk)."""

    @abc.abstractmethod
    def start_at(self) -> float:
        """Recorded time at which our charger is started (the operator's start)."""

    @abc.abstractmethod
    def stage_rank(self, stage: str) -> int: ...

    @abc.abstractmethod
    def self_progressing(self) -> bool:
        """Our charger leaves its current stage on its own: holding the vehicle cannot starve it."""

    def own_stop_ahead(self) -> bool:
        """The recorded charger stopped on its own in this stage and ours will too."""
        return False

    @abc.abstractmethod
    def plant(self, rec: Record) -> None:
        """Update the harness from a recorded frame (before delivering it, for vehicle frames)."""

    @abc.abstractmethod
    def refresh_plant(self) -> None:
        """Update the harness between frames (the vehicle reacting to our charger)."""

    # -------------------------------------------------------------------------- helpers
    def our_stage(self) -> str:
        stage = getattr(self.charger, "stage", None)  # every core mirrors its machine in .stage
        return str(stage.value) if isinstance(stage, enum.Enum) else str(self.charger.snapshot().stage)

    def _drain(self) -> None:
        for ev in self.charger.drain_events():
            if isinstance(ev, StageChanged) and ev.role.value == CHARGER:
                if not self.stages or self.stages[-1][1] != ev.stage:
                    self.stages.append((ev.time, ev.stage, ev.detail))
                    self.entered.setdefault(ev.stage, []).append(ev.time)
            elif isinstance(ev, SessionEnded) and ev.role.value == CHARGER:
                self.ended = ev

    def _sent(self, frames: list[Frame]) -> None:
        for f in frames:
            text = self.token(f)
            if text is not None and (not self.walk or self.walk[-1] != text):
                self.walk.append(text)

    def _run_until(self, t: float) -> None:
        while True:
            nd = self.charger.next_deadline()
            if nd is None or nd > t + 1e-9:
                break
            self.now = max(self.now, nd)
            self._sent(self.charger.on_timer(self.now))
            self._drain()
            self.refresh_plant()
        self.now = max(self.now, t)

    def _wait_until(self, t: float) -> None:
        """Run our charger to ``t``; across a long pause the vehicle keeps sending its last frames."""
        while self.now + self.cycle < t - 1e-9:
            self._run_until(self.now + self.cycle)
            if self.now - self.last_tx >= self.can_loss / 2:
                self._repeat_vehicle()
        self._run_until(t)

    def _recorded_span(self, rec: Record) -> tuple[str, float, int]:
        """The recorded charger's stage just before ``rec`` (the frame that moved it is not gated on it),
        when the recorded charger entered it, and which entry into that stage it was (0 = the first;
        GB/T re-handshakes enter recognition again)."""
        stage = self.s.stages[0].stage if self.s.stages else ""
        since = rec.time
        seen: dict[str, int] = {}
        occurrence = 0
        for span in self.s.stages:
            if span.start_frame is not None and span.start_frame < rec.index:
                stage = span.stage
                since = span.start if span.start is not None else self.time_of.get(span.start_frame, since)
                occurrence = seen.get(stage, 0)
                seen[stage] = occurrence + 1
        return stage, since, occurrence

    def vehicle_stage(self, t: float) -> str:
        current = ""
        for span in self.s.vehicle_stages:
            if span.start is not None and span.start <= t + 1e-9:
                current = span.stage
        return current

    def _stopping(self, stage: str) -> bool:
        return stage in {s.value for s in self.stop_phase} or stage == self.done.value

    def _deliver(self, rec: Record) -> None:
        self.last_tx = self.now
        self.now_rec = rec.time
        frame = Frame(rec.arbitration_id, rec.data, rec.extended, self.now)
        if rec.tp is None and rec.name not in ("TP.CM", "TP.DT"):
            self.last_vehicle[rec.arbitration_id] = (frame, rec.time)
        self.plant(rec)
        self._sent(self.charger.receive(frame, self.now))
        self._drain()

    def _repeat_vehicle(self) -> None:
        self.last_tx = self.now
        self.refresh_plant()
        for frame, sent in list(self.last_vehicle.values()):
            if self.now_rec - sent > RECENT_S:
                continue  # the vehicle had stopped sending this one
            again = Frame(frame.arbitration_id, frame.data, frame.is_extended_id, self.now)
            self._sent(self.charger.receive(again, self.now))
        self._drain()

    def _inject(self) -> None:
        """A stop the recorded charger made on its own, applied to ours at the same point."""
        if self.injected or self._stopping(self.our_stage()) or not self.stages:
            return
        self.injected = True
        if self.s.reason in self.charger_stops:
            self.charger.request_stop(self.now, self.charger_stops[self.s.reason])
        elif self.s.reason == "charger_malfunction":
            self.charger.inject_power_fault(self.now)
        self._drain()
        self.notes.append(f"recorded charger's own stop ({self.s.reason}) applied to ours at the same point")

    # -------------------------------------------------------------------------- the run
    def run(self) -> dict[str, Any]:
        s = self.s
        items = self.items()
        vehicle = [r for r in items if r.side == VEHICLE and r.tp is None]
        if not vehicle:
            raise UsageError(f"{self.capture.path}: no vehicle frames to replay")
        t_start = self.start_at()
        base = self.base = min(vehicle[0].time, t_start)
        stop_span = next((x for x in s.stages if self._stopping(x.stage)), None)
        own_stop_at = None
        if stop_span is not None and (s.reason in self.charger_stops or s.reason == "charger_malfunction"):
            own_stop_at = stop_span.start
        started = False
        released: float | None = None  # replay time of the last vehicle frame
        prev_t = base
        for rec in items:
            if not started and rec.time >= t_start:
                self._wait_until(max(self.now, t_start - base))
                self._sent(self.charger.start(self.now))
                self._drain()
                started = True
            if rec.side == CHARGER or rec.tp is not None:  # plant only: reassembled TP is not re-sent
                self.plant(rec)
                continue
            if own_stop_at is not None and rec.time >= own_stop_at - 1e-9:
                self._inject()
            stage, since, occurrence = self._recorded_span(rec)
            paced = (rec.time - base) if released is None else released + (rec.time - prev_t)
            waited = 0.0
            while (
                started
                and len(self.entered.get(stage, ())) <= occurrence
                and self.self_progressing()
                and (not self._stopping(stage) or self.own_stop_ahead())
            ):
                if waited >= HOLD_LIMIT_S:
                    self.divergence = (
                        f"our charger did not reach {stage} (it stayed in {self.our_stage()} for "
                        f"{waited:.0f} s while the vehicle held its frame of {rec.time:.3f} s)"
                    )
                    break
                waited += self.cycle
                self.held += self.cycle
                self._wait_until(self.now + self.cycle)
                self._repeat_vehicle()
            entries = self.entered.get(stage, [])
            if len(entries) > occurrence and not self._stopping(stage):
                ours = self.our_stage()
                ahead = len(entries) > occurrence + 1 or (
                    self.stage_rank(ours) > self.stage_rank(stage) and not self._stopping(ours)
                )
                due = self.now if ahead else entries[occurrence] + (rec.time - since)
            else:
                due = paced
            due = max(due, self.now, released if released is not None else 0.0)
            self._wait_until(due)
            self._deliver(rec)
            released, prev_t = self.now, rec.time
        self._finish_run()
        return self._result()

    def _finish_run(self) -> None:
        s = self.s
        ended_recorded = bool(s.stages) and self._stopping(s.stages[-1].stage)
        last = self.now
        end = max(self.now, s.end - self.base + self.held) + END_GRACE_S  # the recording's length, at least
        while (
            self.our_stage() != self.done.value
            and self.now < end
            and (self._stopping(self.our_stage()) or ended_recorded)
        ):
            self._run_until(self.now + self.cycle)
            self._repeat_vehicle()
        if self.now - last > self.cycle and ended_recorded:
            self.notes.append(
                f"the recording ends at {s.end:.2f} s; the vehicle's last frames were repeated for "
                f"{self.now - last:.1f} s while our charger finished"
            )

    def recorded_walk(self) -> list[str]:
        walk: list[str] = []
        for r in self.records:
            if r.side == CHARGER and r.tp is None:
                text = self.token(Frame(r.arbitration_id, r.data[:8], r.extended))
                if text is not None and (not walk or walk[-1] != text):
                    walk.append(text)
        return walk

    def _result(self) -> dict[str, Any]:
        s = self.s
        recorded_walk = self.recorded_walk()
        recorded_stages = [x.stage for x in s.stages]
        ours = [stage for _t, stage, _d in self.stages]
        divergence = self.divergence or _stage_divergence(recorded_stages, self.stages)
        status_matched = self.walk == recorded_walk
        if not status_matched:
            self.notes.append(
                f"the {self.walk_label} walks differ: recorded {' → '.join(recorded_walk) or '—'}, "
                f"ours {' → '.join(self.walk) or '—'}"
            )
        ours_reason = self.ended.reason if self.ended is not None else ""
        if divergence is None and s.reason and ours_reason and ours_reason != s.reason:
            self.notes.append(f"same walk, different stop reason: recorded {s.reason}, ours {ours_reason}")
        return {
            "matched": divergence is None,
            "status_matched": status_matched,
            "charger_walk": self.walk,
            "recorded_walk": recorded_walk,
            "charger_stages": ours,
            "recorded_stages": recorded_stages,
            "divergence": divergence,
            "reason": {"recorded": s.reason, "ours": ours_reason},
            "charger_config": self.config,
            "held_s": round(self.held, 3),
            "replay_duration_s": round(self.now, 3),
            "timeline": [{"time": round(t, 3), "stage": st, "detail": d} for t, st, d in self.stages],
            "notes": self.notes,
        }


def _stage_divergence(recorded: list[str], ours: Sequence[tuple[float, str, str]]) -> str | None:
    names = [stage for _t, stage, _d in ours]
    for i, (a, b) in enumerate(zip(recorded, names, strict=False)):
        if a != b:
            t, _stage, detail = ours[i]
            return f"stage {i + 1}: the recorded charger went to {a}, ours to {b} at {t:.2f} s ({detail})"
    if len(names) < len(recorded):
        return (
            f"our charger stopped at {names[-1] if names else 'idle'}; the recording goes on to "
            f"{' → '.join(recorded[len(names) :])}"
        )
    if len(names) > len(recorded):
        return f"our charger went on to {' → '.join(names[len(recorded) :])}; the recording ends before"
    return None


def common_value(
    values: list[dict[str, Value]], key: str, lo: float, hi: float, default: float, notes: list[str]
) -> float:
    """The most frequent value of ``key`` within (lo, hi]; ``default`` (with a note) when none is."""
    seen = Counter(abs(float(v.get(key, 0))) for v in values if lo < abs(float(v.get(key, 0))) <= hi)
    if not seen:
        if values:
            notes.append(f"recorded {key} out of range: using {default:g}")
        return default
    return seen.most_common(1)[0][0]
