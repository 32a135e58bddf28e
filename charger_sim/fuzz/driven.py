"""Protocol-aware hostile vehicles: the real simulated vehicle core, misbehaving.

A :class:`Driven` vehicle runs a simulated vehicle core (the GB/T BMS, the CCS EVCC) on a harness
and clock of its own, feeds it every frame the charger sent and turns what it does into recorded
steps: its frames (after mutation) and every change it makes to the vehicle side of the harness
(contactors, battery voltage, insulation, pilot loads).  The core never touches the charger's
harness, so a session replays from its steps alone, without the vehicle.

Its mood decides when and how often it misbehaves (cooperative: only once charging; hostile: after
a calm start; chaos: from the first tick), and then it mutates the core's own frames (lost,
duplicated, delayed and so reordered or stale, a field out of its DBC range or at a random value,
truncated or padded, another ID format or priority, a corrupted byte), holds fields at a chosen
value for a while (a stuck demand, a frozen alive counter), mutes whole messages, does everything
:class:`~.vehicles.Hostile` does (random IDs and payloads, floods, silence) and adds the protocol's
own faults (:meth:`Driven.protocol_mutation`).
"""

from __future__ import annotations

import abc
import dataclasses
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..codec import MessageCodec, SignalSpec
from ..frames import Frame
from ..plant.harness import Harness
from ..protocols.base import Core
from .script import Step
from .vehicles import Hostile, out_of_range_raw, patch_raw, random_value

if TYPE_CHECKING:
    from .target import Target

PERIOD = 0.1  # s: the longest gap between two ticks, and the unit mood probabilities refer to
PLANT = ("contactors_closed", "battery_voltage", "insulation_resistance_ohm")
BATTERY_STEP_V = 0.2  # battery voltage changes smaller than this are not sent (one step each)
MAX_CALLS = 20_000  # core calls in one tick before the vehicle counts as stuck
DELAYS = (0.02, 0.05, 0.2, 0.6, 1.5)  # s a held-back frame arrives late
HOLD_S = (0.2, 0.5, 1.0, 1.5, 3.0, 10.0)  # s a held field, a mute or a forced plant value lasts


@dataclass(slots=True)
class Held:
    """A field of one message held at a raw value until ``until`` (whatever the core sends)."""

    spec: SignalSpec
    raw: int
    until: float


def raw_of(spec: SignalSpec, value: float) -> int:
    return round((value - spec.offset) / spec.scale) & spec.mask


class Driven(Hostile):
    """A simulated vehicle core on a shadow harness; its output is recorded (and mutated) as steps."""

    vehicle_lines: tuple[str, ...] = ()  # harness lines the vehicle side drives (more are claimed when
    # the core writes them)
    deep_stages: frozenset[str] = frozenset()  # charger stages that count as "charging"
    lengths: tuple[float, ...] = (5.0, 15.0, 25.0, 40.0, 40.0, 60.0, 90.0, 120.0)

    def __init__(self, target: Target, rng: random.Random) -> None:
        super().__init__(target, rng)
        self.shadow = Harness()
        self.core: Core = self.build(rng)
        target.outbox = []
        self.clock = 0.0
        self.started = False
        self.dead = False
        self.vehicle_errors: list[str] = []
        self.deep = False
        self.last = 0.0
        self.calm_until = rng.choice((0.0, 5.0, 12.0, 20.0, 30.0, rng.uniform(0.0, 60.0)))
        self.held_frames: list[tuple[float, Frame]] = []
        self.forced: dict[str, tuple[float, float]] = {}  # vehicle field -> (value, until)
        self.held: dict[tuple[str, str], Held] = {}  # (message, signal) -> held raw value
        self.muted: dict[str, float] = {}  # message -> until
        self.restores: list[Step] = []  # line / plant steps undoing a pulse, due at their t
        self.sent: dict[str, float] = {}  # what the charger's harness holds for each vehicle field
        self.queue: list[Step] = []  # injected frames due later (floods spread out, TP sequences)
        self.owned = dict.fromkeys(self.vehicle_lines)  # lines the vehicle side drives (ordered)
        self.seen: dict[str, float] = {}

    @abc.abstractmethod
    def build(self, rng: random.Random) -> Core:
        """The vehicle core (on ``self.shadow``) with a random configuration for this session."""

    def protocol_mutation(self, now: float) -> list[Step]:
        """The protocol's own faults; the default has none."""
        return []

    # ---- the session loop's interface ------------------------------------------------------------
    def next_period(self) -> float:
        gap = PERIOD
        if not self.dead:
            deadline = self.core.next_deadline()
            if deadline is not None:
                gap = min(gap, deadline - self.last)
        for at in (
            *(t for t, _ in self.held_frames),
            *(s.t for s in self.restores),
            *(s.t for s in self.queue),
        ):
            gap = min(gap, at - self.last)
        if self.t.outbox:  # the charger answered at once (TP CTS, EndOfMsgAck): take it promptly
            gap = min(gap, 0.001)
        if self.misbehaving(self.last) and self.rng.random() < 0.2 * self.p_mutate:
            gap = self.rng.choice((0.15, 0.3, 0.5))  # the vehicle's controller stalls
        return max(gap, 1e-4)

    def tick(self, now: float) -> list[Step]:
        dt = max(0.0, now - self.last)
        self.last = now
        frames = self.drive(now)
        if not self.deep and self.t.stage() in self.deep_stages:
            self.deep = True
        steps = self._due(now)
        if self.misbehaving(now) and self.rng.random() < self.chance(dt):
            steps += self.mutation(now)
        steps += self.plant_steps(now)
        frame_steps = [self.step_of(g, now) for f in frames for g in self.mangle(f, now)]
        late = [f for at, f in self.held_frames if at <= now + 1e-9]
        if late:
            self.held_frames = [(at, f) for at, f in self.held_frames if at > now + 1e-9]
            frame_steps += [self.step_of(f, now) for f in late]
        if frame_steps and self.rng.random() < 0.05:
            self.stale = frame_steps
        return [s if s.t == now else dataclasses.replace(s, t=now) for s in steps + frame_steps]

    def misbehaving(self, now: float) -> bool:
        if self.mood == "chaos":
            return True
        if self.mood == "hostile":
            return now >= self.calm_until
        return self.deep

    def chance(self, dt: float) -> float:
        """The mood's probability per 100 ms, for a tick ``dt`` long."""
        return float(1.0 - (1.0 - self.p_mutate) ** (dt / PERIOD))

    # ---- running the vehicle core ------------------------------------------------------------------
    def drive(self, now: float) -> list[Frame]:
        """The charger's frames in, the core's timers up to ``now``, in time order; its frames out."""
        inbox = self.t.outbox or []
        self.t.outbox = []
        if self.dead:
            return []
        self.sync_in()
        core, out, i, calls = self.core, [], 0, 0
        try:
            if not self.started:
                self.started = True
                out += core.start(now)
            while calls < MAX_CALLS:
                calls += 1
                deadline = core.next_deadline()
                due = deadline is not None and deadline <= now + 1e-9
                if i < len(inbox) and (deadline is None or not due or inbox[i].timestamp < deadline):
                    frame, i = inbox[i], i + 1
                    self.clock = max(self.clock, frame.timestamp)
                    out += core.receive(frame, self.clock)
                elif due and deadline is not None:
                    self.clock = max(self.clock, deadline)
                    out += core.on_timer(self.clock)
                else:
                    break
            else:
                self._die(f"stuck: {MAX_CALLS} calls at {now:.3f} s")
        except Exception as err:  # the vehicle core is not under test: it falls silent
            self._die(f"{type(err).__name__}: {err}")
        self._claim_lines()
        return out

    def _die(self, why: str) -> None:
        self.dead = True
        self.vehicle_errors.append(why)

    def sync_in(self) -> None:
        """What the charger drives, as the vehicle reads it: lines, output, plug."""
        t, h = self.t.harness, self.shadow
        owned = self.owned
        for name, value in t.lines.items():
            if name not in owned:
                h.lines[name] = value
        h.output_current = t.output_current
        h.output_voltage = t.output_voltage
        h.connected = t.connected
        h.overrides = dict(t.overrides)
        self.seen = dict(h.lines)

    def _claim_lines(self) -> None:
        """Lines the vehicle core wrote since :meth:`sync_in` are the vehicle's from now on."""
        seen = self.seen
        for name, value in self.shadow.lines.items():
            if name not in self.owned and (name not in seen or seen[name] is not value):
                self.owned[name] = None

    def plant_steps(self, now: float) -> list[Step]:
        """Each vehicle-side harness value that changed (or is forced), as a step."""
        h = self.shadow
        values: dict[str, float] = {
            "contactors_closed": float(h.contactors_closed),
            "battery_voltage": h.battery_voltage,
            "insulation_resistance_ohm": h.insulation_resistance_ohm,
        }
        for name in self.owned:
            if name in h.lines:
                values["line:" + name] = h.lines[name]
        for key, (value, until) in list(self.forced.items()):
            if now < until:
                values[key] = value
            else:
                del self.forced[key]
        steps: list[Step] = []
        for key, value in values.items():
            last = self.sent.get(key)
            if last is not None and (
                last == value or (key == "battery_voltage" and abs(last - value) < BATTERY_STEP_V)
            ):
                continue
            self.sent[key] = value
            if key.startswith("line:"):
                steps.append(Step(now, "line", name=key[5:], value=value))
            else:
                steps.append(Step(now, "plant", name=key, value=value))
        return steps

    def force(self, key: str, value: float, seconds: float, now: float) -> None:
        """Hold a vehicle-side harness value (``line:NAME`` for a line) whatever the core does."""
        self.forced[key] = (value, now + seconds)

    def pulse(
        self, kind: str, name: str, value: float, back: float, seconds: float, now: float
    ) -> list[Step]:
        """A harness value the vehicle core does not drive, changed now and restored later."""
        self.restores.append(Step(now + seconds, kind, name=name, value=back))
        return [Step(now, kind, name=name, value=value)]

    def _due(self, now: float) -> list[Step]:
        steps: list[Step] = []
        for pending in (self.restores, self.queue):
            due = [s for s in pending if s.t <= now + 1e-9]
            if due:
                pending[:] = [s for s in pending if s.t > now + 1e-9]
                steps += [Step(now, s.kind, s.frame_id, s.data, s.extended, s.name, s.value) for s in due]
        return steps

    # ---- mutating the core's frames -----------------------------------------------------------------
    def step_of(self, frame: Frame, now: float) -> Step:
        return Step(
            now, "frame", frame_id=frame.arbitration_id, data=frame.data, extended=frame.is_extended_id
        )

    def message_of(self, frame: Frame) -> MessageCodec | None:
        return self.t.codec.by_id(frame.arbitration_id, frame.is_extended_id)

    def hold(self, message: str, signal: str, raw: int, seconds: float, now: float) -> None:
        spec = self.t.codec.message(message).signal(signal)
        self.held[(message, signal)] = Held(spec, raw & spec.mask, now + seconds)

    def hold_value(self, message: str, signal: str, value: float, seconds: float, now: float) -> None:
        spec = self.t.codec.message(message).signal(signal)
        self.hold(message, signal, raw_of(spec, value), seconds, now)

    def mangle(self, frame: Frame, now: float) -> list[Frame]:
        m = self.message_of(frame)
        if now < self.silent_until or (m is not None and self.muted.get(m.name, -1.0) > now):
            return []
        data = frame.data
        if m is not None and self.held:
            for (name, _), held in list(self.held.items()):
                if held.until <= now:
                    del self.held[(name, _)]
                elif name == m.name and 8 * len(data) >= held.spec.start + held.spec.length:
                    data = patch_raw(data, held.spec, held.raw)
        f = Frame(frame.arbitration_id, data, frame.is_extended_id, now)
        if not self.misbehaving(now) or self.rng.random() >= self.p_mutate * 0.25:
            return [f]
        rng = self.rng
        x = rng.random()
        if x < 0.2:
            return []  # lost
        if x < 0.3:
            return [f, f]  # duplicated
        if x < 0.45:
            self.held_frames.append((now + rng.choice(DELAYS), f))  # late: reordered, stale
            return []
        if x < 0.6 and m is not None and m.signals and len(data) >= m.length:
            spec = rng.choice(m.signals)
            return [
                Frame(
                    f.arbitration_id,
                    patch_raw(data, spec, out_of_range_raw(spec, rng)),
                    f.is_extended_id,
                    now,
                )
            ]
        if x < 0.75 and m is not None and m.signals and len(data) >= m.length:
            spec = rng.choice(m.signals)
            raw = raw_of(spec, float(random_value(spec, rng)))
            return [Frame(f.arbitration_id, patch_raw(data, spec, raw), f.is_extended_id, now)]
        if x < 0.85:
            if rng.random() < 0.5 or len(data) >= 8:
                data = data[: rng.randint(0, max(0, len(data) - 1))]
            else:
                data = data + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8 - len(data))))
            return [Frame(f.arbitration_id, data, f.is_extended_id, now)]
        if x < 0.92:
            return [self.other_id(f)]
        if data:
            i = rng.randrange(len(data))
            data = data[:i] + bytes([rng.getrandbits(8)]) + data[i + 1 :]
        return [Frame(f.arbitration_id, data, f.is_extended_id, now)]

    def other_id(self, f: Frame) -> Frame:
        """The same frame with another ID format, or (29-bit) another priority."""
        if f.is_extended_id and f.arbitration_id > 0x7FF:
            prio = self.rng.randint(0, 7)
            return Frame((f.arbitration_id & ~(7 << 26)) | (prio << 26), f.data, True, f.timestamp)
        return Frame(f.arbitration_id, f.data, not f.is_extended_id, f.timestamp)

    # ---- mutations ------------------------------------------------------------------------------
    def mutation(self, now: float) -> list[Step]:
        rng = self.rng
        x = rng.random()
        if x < 0.3:
            return super().mutation(now)  # random frames, floods, silence, stale frames, ID formats
        if x < 0.45 and self.messages:  # a field held at a random or out-of-range value
            m = rng.choice(self.messages)
            spec = rng.choice(m.signals)
            raw = (
                out_of_range_raw(spec, rng)
                if rng.random() < 0.3
                else raw_of(spec, float(random_value(spec, rng)))
            )
            self.hold(m.name, spec.name, raw, rng.choice(HOLD_S), now)
            return []
        if x < 0.52 and self.messages:  # one message muted
            self.muted[rng.choice(self.messages).name] = now + rng.choice((0.3, 0.9, 1.1, 2.0, 6.0))
            return []
        if x < 0.58:
            return [Step(now, "operator", name=rng.choice(("stop", "power_fault")))]
        return self.protocol_mutation(now)

    def plant_fault(self, now: float) -> list[Step]:
        """Contactors opened under load, closed early or welded; battery voltage jumps; insulation
        faults; the plug pulled for a moment."""
        rng = self.rng
        secs = rng.choice(HOLD_S)
        x = rng.random()
        if x < 0.3:
            if rng.random() < 0.2:  # welded: closed for the rest of the session
                self.force("contactors_closed", 1.0, 1e6, now)
            else:
                self.force("contactors_closed", float(rng.random() < 0.4), secs, now)
            return []
        if x < 0.55:
            v = self.shadow.battery_voltage
            jump = rng.choice((0.0, 50.0, 0.9 * v, 1.1 * v, v + 30.0, 1000.0))
            self.force("battery_voltage", jump, secs, now)
            return []
        if x < 0.8:
            self.force("insulation_resistance_ohm", rng.choice((0.0, 1e3, 3e4, 6e4, 1e5)), secs, now)
            return []
        return self.pulse("plant", "connected", 0.0, 1.0, rng.choice((0.05, 0.3, 2.0)), now)

    def spread(self, steps: list[Step], now: float, gap: float) -> list[Step]:
        """The first of ``steps`` now, the others queued ``gap`` apart (TP sequences, bursts)."""
        if not steps:
            return []
        for k, s in enumerate(steps[1:], start=1):
            self.queue.append(Step(now + k * gap, s.kind, s.frame_id, s.data, s.extended, s.name, s.value))
        return [steps[0]]
