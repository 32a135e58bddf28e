"""Link faults: what happens to frames between the two sides (pure: frames and ``now`` in, frames out)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..codec import Codec, SignalSpec
from ..frames import Frame
from ..scenario.schema import FaultSpec

Delivery = tuple[float, Frame]  # (arrival time, frame)

_REPLAY_SLACK = 1.0  # s of extra history kept beyond a replay fault's age


@dataclass(slots=True)
class LinkFault:
    spec: FaultSpec
    start: float | None = None  # active from start (inclusive) to end (exclusive; None = forever)
    end: float | None = None
    remaining: int | None = None  # drop_message 'count' still to drop
    history: deque[Frame] = field(default_factory=deque)  # replay_message: frames seen, oldest first
    hits: int = 0  # frames this fault acted on


class LinkFaults:
    """Applies the active link faults of a session to each frame put on the wire."""

    def __init__(self, codec: Codec, frame_message: Callable[[Frame], str | None] | None = None) -> None:
        self.codec = codec
        self._names = {m.frame_id: m.name for m in codec.messages}
        self._frame_message = frame_message
        self.faults: list[LinkFault] = []
        self._replays: list[LinkFault] = []
        self.dropped = 0

    def add(self, spec: FaultSpec) -> LinkFault:
        lf = LinkFault(spec, remaining=spec.count)
        self.faults.append(lf)
        if spec.type == "replay_message":
            self._replays.append(lf)
        return lf

    def message_of(self, frame: Frame) -> str | None:
        name = self._names.get(frame.arbitration_id)
        if name is None and self._frame_message is not None:
            name = self._frame_message(frame)
        return name

    def apply(self, frame: Frame, now: float) -> list[Delivery]:
        if not self.faults:
            return [(now, frame)]
        name = self.message_of(frame)
        for lf in self._replays:
            if name == lf.spec.message:
                self._remember(lf, frame, now)
        out: list[Delivery] = [(now, frame)]
        for lf in self.faults:
            if lf.start is None or now < lf.start or (lf.end is not None and now >= lf.end):
                continue
            spec = lf.spec
            if spec.type == "bus_off":
                lf.hits += 1
                self.dropped += 1
                return []
            if name != spec.message:
                continue
            if spec.type == "drop_message":
                if lf.remaining is not None:
                    if lf.remaining <= 0:
                        continue
                    lf.remaining -= 1
                lf.hits += 1
                self.dropped += 1
                return []
            lf.hits += 1
            if spec.type == "delay_message":
                out = [(at + float(spec.delay or 0.0), f) for at, f in out]
                continue
            out = [(at, self._alter(lf, f, now)) for at, f in out]
            if spec.type == "duplicate_message":
                out = [d for d in out for _ in range(1 + (spec.copies or 1))]
        return out

    # ---- internals ---------------------------------------------------------------------------------
    def _remember(self, lf: LinkFault, frame: Frame, now: float) -> None:
        age = lf.spec.age or 0.0
        lf.history.append(Frame(frame.arbitration_id, frame.data, frame.is_extended_id, now))
        while lf.history and lf.history[0].timestamp < now - age - _REPLAY_SLACK:
            lf.history.popleft()

    def _alter(self, lf: LinkFault, frame: Frame, now: float) -> Frame:
        spec = lf.spec
        kind = spec.type
        if kind == "wrong_dlc":
            n = int(spec.dlc or 0)
            data = frame.data[:n] + b"\xff" * max(0, n - len(frame.data))
            return Frame(frame.arbitration_id, data, frame.is_extended_id, frame.timestamp)
        if kind == "replay_message":
            cutoff = now - float(spec.age or 0.0)
            old = None
            for past in lf.history:
                if past.arbitration_id != frame.arbitration_id:
                    continue  # a multi-packet message: replace each transport frame by its own kind
                if past.timestamp <= cutoff + 1e-9:
                    old = past
                else:
                    break
            if old is None:  # not that much history yet: the oldest frame seen
                old = next((p for p in lf.history if p.arbitration_id == frame.arbitration_id), frame)
            return Frame(old.arbitration_id, old.data, old.is_extended_id, frame.timestamp)
        if kind == "corrupt_signal":
            sig = self.codec.message(str(spec.message)).signal(str(spec.signal))
            return Frame(frame.arbitration_id, corrupt(frame.data, sig, spec), frame.is_extended_id,
                         frame.timestamp)
        return frame


def raw_field(data: bytes, sig: SignalSpec) -> int:
    return (int.from_bytes(data, "little") >> sig.start) & sig.mask


def corrupt(data: bytes, sig: SignalSpec, spec: FaultSpec) -> bytes:
    """``data`` with signal ``sig`` corrupted as ``spec`` says (``mode`` and ``value``/``bit``)."""
    word = int.from_bytes(data, "little")
    raw = (word >> sig.start) & sig.mask
    mode = spec.mode
    if mode == "set":
        raw = round((float(spec.value or 0.0) - sig.offset) / sig.scale) & sig.mask
    elif mode == "bitflip":
        raw ^= 1 << int(spec.bit or 0)
    elif mode == "not_available":
        raw = sig.mask
    elif mode == "out_of_range":
        raw = out_of_range_raw(sig)
    word = (word & ~(sig.mask << sig.start)) | (raw << sig.start)
    return (word & ((1 << (8 * len(data))) - 1)).to_bytes(len(data), "little")


def out_of_range_raw(sig: SignalSpec) -> int:
    """A raw value just above the DBC maximum (or below the minimum), else all ones."""
    lo, hi = sig.raw_bounds()
    if sig.maximum is not None:
        raw = round((sig.maximum - sig.offset) / sig.scale) + 1
        if lo <= raw <= hi and raw != sig.mask:
            return raw & sig.mask
    if sig.minimum is not None:
        raw = round((sig.minimum - sig.offset) / sig.scale) - 1
        if lo <= raw <= hi:
            return raw & sig.mask
    return sig.mask
