"""DBC loading and the frame codec: every frame is encoded and decoded through a DBC file.

cantools parses the DBC (strict mode); from each message's signal definitions we build a small
precompiled codec (shift/mask on one integer) so the per-frame hot path stays cheap.  The DBC stays
the single source of truth: layouts, scalings, ranges and value tables all come from it, and the
tests cross-check every message against cantools' own encoder and decoder.

Conventions carried by DBC attributes (``BA_DEF_ BO_``):

* ``CsimUnusedBits`` (INT 0..255): the byte pattern of bits no signal covers (GB/T sends 1s).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cantools
from cantools.database.can import Database, Message

from .errors import DbcError, DecodeError, EncodeError
from .frames import Frame
from .resources import dbc_dir

log = logging.getLogger(__name__)

Value = int | float

_CACHE_LIMIT = 512


@dataclass(frozen=True, slots=True)
class SignalSpec:
    name: str
    start: int  # Intel (little-endian) LSB position in the frame's integer
    length: int
    signed: bool
    scale: float
    offset: float
    minimum: float | None
    maximum: float | None
    unit: str
    choices: Mapping[int, str]
    is_integer: bool  # scale and offset are whole numbers: decode to int

    @property
    def mask(self) -> int:
        return (1 << self.length) - 1

    def to_raw(self, value: Value, message: str) -> int:
        if self.minimum is not None and value < self.minimum - 1e-9:
            raise EncodeError(
                f"{message}.{self.name} = {value} is below its minimum {self.minimum} {self.unit}"
            )
        if self.maximum is not None and value > self.maximum + 1e-9:
            raise EncodeError(
                f"{message}.{self.name} = {value} is above its maximum {self.maximum} {self.unit}"
            )
        raw = round((value - self.offset) / self.scale)
        if self.signed:
            lo, hi = -(1 << (self.length - 1)), (1 << (self.length - 1)) - 1
        else:
            lo, hi = 0, self.mask
        if not lo <= raw <= hi:
            raise EncodeError(f"{message}.{self.name} = {value} does not fit {self.length} bits")
        return raw & self.mask

    def from_raw(self, raw: int) -> Value:
        if self.signed and raw & (1 << (self.length - 1)):
            raw -= 1 << self.length
        if self.is_integer:
            return raw * int(self.scale) + int(self.offset)
        return raw * self.scale + self.offset


class MessageCodec:
    """Encoder/decoder for one DBC message, built from cantools' parsed definition."""

    def __init__(self, message: Message, unused_pattern: int = 0) -> None:
        self.message = message
        self.name: str = message.name
        self.frame_id: int = message.frame_id
        self.is_extended: bool = bool(message.is_extended_frame)
        self.length: int = message.length
        self.senders: tuple[str, ...] = tuple(message.senders)
        self.cycle_time: int | None = message.cycle_time
        self.comment: str = message.comment or ""
        specs: list[SignalSpec] = []
        for sig in message.signals:
            if sig.byte_order != "little_endian" or sig.multiplexer_ids or sig.is_multiplexer:
                raise DbcError(
                    f"{self.name}.{sig.name}: only plain Intel (little-endian) signals are supported"
                )
            scale = float(sig.scale)
            offset = float(sig.offset)
            choices = {int(k): str(v) for k, v in (sig.choices or {}).items()}
            specs.append(
                SignalSpec(
                    name=sig.name,
                    start=sig.start,
                    length=sig.length,
                    signed=bool(sig.is_signed),
                    scale=scale,
                    offset=offset,
                    minimum=None if sig.minimum is None else float(sig.minimum),
                    maximum=None if sig.maximum is None else float(sig.maximum),
                    unit=sig.unit or "",
                    choices=choices,
                    is_integer=scale.is_integer() and offset.is_integer(),
                )
            )
        self.signals: tuple[SignalSpec, ...] = tuple(specs)
        self._by_name = {s.name: s for s in specs}
        covered = 0
        for s in specs:
            covered |= s.mask << s.start
        full = (1 << (8 * self.length)) - 1
        pattern = int.from_bytes(bytes([unused_pattern & 0xFF]) * self.length, "little")
        self._unused_fill = pattern & full & ~covered
        self._encode_cache: dict[tuple[tuple[str, Value], ...], bytes] = {}
        self._decode_cache: dict[bytes, dict[str, Value]] = {}

    def signal(self, name: str) -> SignalSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise EncodeError(f"{self.name} has no signal {name!r}") from None

    def encode(self, values: Mapping[str, Value]) -> bytes:
        """Encode every signal of the message; each must be given and within its DBC range."""
        key = tuple(values.items())
        cached = self._encode_cache.get(key)
        if cached is not None:
            return cached
        if len(values) != len(self.signals) or any(s.name not in values for s in self.signals):
            missing = [s.name for s in self.signals if s.name not in values]
            extra = [k for k in values if k not in self._by_name]
            raise EncodeError(f"{self.name}: missing signals {missing}, unknown signals {extra}")
        word = self._unused_fill
        for s in self.signals:
            word |= s.to_raw(values[s.name], self.name) << s.start
        data = word.to_bytes(self.length, "little")
        if len(self._encode_cache) >= _CACHE_LIMIT:
            self._encode_cache.clear()
        self._encode_cache[key] = data
        return data

    def decode(self, data: bytes, *, allow_truncated: bool = False) -> dict[str, Value]:
        """Decode frame bytes into physical values (ints where the scaling is integral).

        A frame longer than the DBC length is decoded from its first bytes; a shorter one raises
        :class:`DecodeError` unless ``allow_truncated``, which then leaves out signals that do not fit.
        """
        cached = self._decode_cache.get(data)
        if cached is not None:
            return dict(cached)
        n = len(data)
        if n < self.length and not allow_truncated:
            raise DecodeError(f"{self.name}: {n} data bytes, the DBC says {self.length}")
        word = int.from_bytes(data[: self.length], "little")
        avail = 8 * min(n, self.length)
        out: dict[str, Value] = {}
        for s in self.signals:
            if s.start + s.length > avail:
                continue
            out[s.name] = s.from_raw((word >> s.start) & s.mask)
        if len(self._decode_cache) >= _CACHE_LIMIT:
            self._decode_cache.clear()
        self._decode_cache[bytes(data)] = out
        return dict(out)

    def frame(self, values: Mapping[str, Value], now: float = 0.0) -> Frame:
        return Frame(self.frame_id, self.encode(values), self.is_extended, now)

    def describe(self, name: str, value: Value) -> str:
        """Value text from the DBC value table, or the number with its unit."""
        s = self._by_name[name]
        if isinstance(value, int) and value in s.choices:
            return s.choices[value]
        return f"{value:g} {s.unit}".strip() if isinstance(value, float) else f"{value} {s.unit}".strip()


class Codec:
    """All messages of one DBC file."""

    def __init__(self, db: Database, path: Path) -> None:
        self.db = db
        self.path = path
        self._by_name: dict[str, MessageCodec] = {}
        self._by_id: dict[tuple[int, bool], MessageCodec] = {}
        for msg in db.messages:
            pattern = 0
            attr = msg.dbc.attributes.get("CsimUnusedBits") if msg.dbc is not None else None
            if attr is not None:
                pattern = int(attr.value)
            mc = MessageCodec(msg, pattern)
            self._by_name[msg.name] = mc
            self._by_id[(msg.frame_id, mc.is_extended)] = mc

    @property
    def messages(self) -> list[MessageCodec]:
        return list(self._by_name.values())

    def message(self, name: str) -> MessageCodec:
        try:
            return self._by_name[name]
        except KeyError:
            raise DbcError(f"{self.path.name} has no message {name!r}") from None

    def by_id(self, frame_id: int, extended: bool = False) -> MessageCodec | None:
        return self._by_id.get((frame_id, extended))

    def encode(self, name: str, values: Mapping[str, Value], now: float = 0.0) -> Frame:
        return self.message(name).frame(values, now)


_LOADED: dict[Path, Codec] = {}


def load_dbc(name: str, directory: Path | None = None) -> Codec:
    """Load ``<directory>/<name>.dbc`` in cantools strict mode (cached per path)."""
    folder = directory if directory is not None else dbc_dir()
    path = (folder / f"{name}.dbc").resolve()
    codec = _LOADED.get(path)
    if codec is not None:
        return codec
    if not path.is_file():
        raise DbcError(f"DBC file not found: {path}")
    try:
        db = cantools.database.load_file(str(path), database_format="dbc", strict=True)
    except Exception as err:  # cantools raises several unrelated types for parse errors
        raise DbcError(f"{path}: {err}") from err
    assert isinstance(db, Database)
    codec = Codec(db, path)
    _LOADED[path] = codec
    log.debug("loaded %s with %d messages", path, len(codec.messages))
    return codec
