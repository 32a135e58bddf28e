"""DBC loading and the frame codec: every frame is encoded and decoded through a DBC file.

cantools parses the DBC (strict mode); from each message's signal definitions we generate, once per
message, a small Python encoder and decoder (straight-line shift/mask code on one integer, the range
checks and scalings inlined as constants).  The DBC stays the single source of truth: layouts,
scalings, ranges and value tables all come from it, nothing is written by hand, and the tests
cross-check every message against cantools' own encoder and decoder.

Hot paths use :meth:`MessageCodec.encoder`: an encoder for the signals that change, the others fixed
once (and checked) when it is built, with a small memo of recent results.

Conventions carried by DBC attributes (``BA_DEF_ BO_``):

* ``CsimUnusedBits`` (INT 0..255): the byte pattern of bits no signal covers (GB/T sends 1s).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cantools
from cantools.database.can import Database, Message

from .errors import DbcError, DecodeError, EncodeError
from .frames import MAX_EXT_ID, MAX_STD_ID, Frame
from .resources import dbc_dir

log = logging.getLogger(__name__)

Value = int | float
Encoder = Callable[..., bytes]

_CACHE_LIMIT = 512
_TOLERANCE = 1e-9  # range checks accept values this far outside [minimum, maximum]

# Slot setters of the frozen Frame: the codec builds frames whose ID and length the DBC fixed.
_new_frame = object.__new__
_set_id: Callable[[Frame, int], None] = Frame.__dict__["arbitration_id"].__set__
_set_data: Callable[[Frame, bytes], None] = Frame.__dict__["data"].__set__
_set_ext: Callable[[Frame, bool], None] = Frame.__dict__["is_extended_id"].__set__
_set_ts: Callable[[Frame, float], None] = Frame.__dict__["timestamp"].__set__


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

    def raw_bounds(self) -> tuple[int, int]:
        """The raw integers the signal's bits can hold."""
        if self.signed:
            return -(1 << (self.length - 1)), (1 << (self.length - 1)) - 1
        return 0, self.mask

    def to_raw(self, value: Value, message: str) -> int:
        """The raw field for ``value``; :class:`EncodeError` if it is out of range or no number."""
        try:
            if self.minimum is not None and value < self.minimum - _TOLERANCE:
                raise EncodeError(
                    f"{message}.{self.name} = {value} is below its minimum {self.minimum} {self.unit}"
                )
            if self.maximum is not None and value > self.maximum + _TOLERANCE:
                raise EncodeError(
                    f"{message}.{self.name} = {value} is above its maximum {self.maximum} {self.unit}"
                )
            raw = round((value - self.offset) / self.scale)
        except (TypeError, ValueError, OverflowError) as err:
            raise EncodeError(f"{message}.{self.name} = {value!r} is not a finite number") from err
        lo, hi = self.raw_bounds()
        if not lo <= raw <= hi:
            raise EncodeError(f"{message}.{self.name} = {value} does not fit {self.length} bits")
        return raw & self.mask

    def from_raw(self, raw: int) -> Value:
        if self.signed and raw & (1 << (self.length - 1)):
            raw -= 1 << self.length
        if self.is_integer:
            return raw * int(self.scale) + int(self.offset)
        return raw * self.scale + self.offset


# ---- code generation -------------------------------------------------------------------------------
# Each signal becomes a few lines of straight Python; the constants are taken from the SignalSpec,
# which is built from cantools' parse of the DBC.  ``_raw_lines`` and ``_phys_expr`` compute exactly
# what SignalSpec.to_raw / from_raw compute (same operations in the same order, so the same floats).


def _raw_lines(s: SignalSpec, i: int, var: str, out: str) -> list[str]:
    """Statements turning physical ``var`` into the raw field ``out`` (shifted into place)."""
    lines: list[str] = []
    lo = None if s.minimum is None else s.minimum - _TOLERANCE
    hi = None if s.maximum is None else s.maximum + _TOLERANCE
    if lo is not None and hi is not None:
        lines.append(f"if not ({lo!r} <= {var} <= {hi!r}): _fail({i}, {var})")
    elif lo is not None:
        lines.append(f"if not ({lo!r} <= {var}): _fail({i}, {var})")
    elif hi is not None:
        lines.append(f"if not ({var} <= {hi!r}): _fail({i}, {var})")
    num = var if s.offset == 0.0 else f"({var} - {s.offset!r})"
    lines.append(f"{out} = round({num} / {s.scale!r})" if s.scale != 1.0 else f"{out} = round({num})")
    blo, bhi = s.raw_bounds()
    provably_fits = (
        lo is not None
        and hi is not None
        and s.scale > 0
        and blo <= round((lo - s.offset) / s.scale)
        and round((hi - s.offset) / s.scale) <= bhi
    )
    if not provably_fits:
        lines.append(f"if not ({blo} <= {out} <= {bhi}): _fail({i}, {var})")
    if s.signed:
        lines.append(f"{out} &= {s.mask}")
    if s.start:
        lines.append(f"{out} <<= {s.start}")
    return lines


def _phys_expr(s: SignalSpec, word: str) -> str:
    raw = f"({word} >> {s.start})" if s.start else word
    raw = f"({raw} & {s.mask})"
    if s.signed:
        sign = 1 << (s.length - 1)
        raw = f"(({raw} ^ {sign}) - {sign})"
    if s.is_integer:
        scale, offset = int(s.scale), int(s.offset)
        expr = raw if scale == 1 else f"{raw} * {scale}"
        return expr if offset == 0 else f"{expr} + {offset}"
    return f"{raw} * {s.scale!r} + {s.offset!r}"


def _compile(source: str, name: str, env: dict[str, Any]) -> Callable[..., Any]:
    namespace: dict[str, Any] = dict(env)
    exec(compile(source, f"<codec {name}>", "exec"), namespace)
    fn: Callable[..., Any] = namespace["_fn"]
    return fn


class MessageCodec:
    """Encoder/decoder for one DBC message, generated from cantools' parsed definition."""

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
            if scale == 0.0 or not math.isfinite(scale) or not math.isfinite(offset):
                raise DbcError(f"{self.name}.{sig.name}: scale {sig.scale} / offset {sig.offset} unusable")
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
        self._index = {s.name: i for i, s in enumerate(specs)}
        covered = 0
        for s in specs:
            covered |= s.mask << s.start
        full = (1 << (8 * self.length)) - 1
        pattern = int.from_bytes(bytes([unused_pattern & 0xFF]) * self.length, "little")
        self._unused_fill = pattern & full & ~covered
        limit = MAX_EXT_ID if self.is_extended else MAX_STD_ID
        # Frames of this message can skip Frame's validation only if it would pass anyway.
        self._trusted = 0 <= self.frame_id <= limit and self.length <= 8
        self._decode_cache: dict[bytes, dict[str, Value]] = {}
        self._encode_cache: dict[tuple[tuple[str, ...], tuple[Value, ...]], bytes] = {}
        self._encode_all = self._build_encoder([s.name for s in specs], {}, mapping=True)
        self._decode_full = self._build_decoder()

    # ---- generated code ------------------------------------------------------------------------
    def _fail(self, index: int, value: Value) -> None:
        """Raise the EncodeError SignalSpec.to_raw gives for ``value`` (called by generated code)."""
        self.signals[index].to_raw(value, self.name)
        raise EncodeError(f"{self.name}.{self.signals[index].name} = {value!r} cannot be encoded")

    def _build_encoder(
        self, names: list[str], fixed: Mapping[str, Value], *, mapping: bool = False
    ) -> Encoder:
        fill = self._unused_fill
        for name, value in fixed.items():
            fill |= self.signal(name).to_raw(value, self.name) << self.signal(name).start
        body: list[str] = []
        args = [f"v{k}" for k in range(len(names))]
        parts = [str(fill)] if fill or not names else []
        for k, name in enumerate(names):
            body += _raw_lines(self.signal(name), self._index[name], f"v{k}", f"r{k}")
            parts.append(f"r{k}")
        word = " | ".join(parts)
        if mapping:
            keys = ", ".join(f"values[{n!r}]" for n in names)
            head = [
                "def _fn(values):",
                f"    if len(values) != {len(names)}: _wrong(values)",
                "    try:",
                f"        {', '.join(args)} = {keys}" if names else "        pass",
                "    except KeyError:",
                "        _wrong(values)",
            ]
        else:
            head = [f"def _fn({', '.join(args)}):"]
        lines = [*head, "    try:", *(f"        {b}" for b in body or ["pass"])]
        lines += [
            "    except (TypeError, ValueError, OverflowError) as err:",
            f"        _explain(_NAMES, ({', '.join(args)}{',' if len(args) == 1 else ''}), err)",
            f"    return ({word}).to_bytes({self.length}, 'little')",
        ]
        env = {
            "_fail": self._fail,
            "_wrong": self._wrong,
            "_explain": self._explain,
            "_NAMES": tuple(names),
            "round": round,
        }
        return _compile("\n".join(lines) + "\n", self.name, env)

    def _build_decoder(self) -> Callable[[bytes], dict[str, Value]]:
        items = ", ".join(f"{s.name!r}: {_phys_expr(s, 'w')}" for s in self.signals)
        source = (
            "def _fn(data):\n"
            f"    w = _from_bytes(data[:{self.length}], 'little')\n"
            f"    return {{{items}}}\n"
        )
        return _compile(source, self.name, {"_from_bytes": int.from_bytes})

    def _explain(self, names: tuple[str, ...], values: tuple[Any, ...], err: Exception) -> None:
        """Name the signal whose value could not be encoded (called by generated code)."""
        for name, value in zip(names, values, strict=True):
            self.signal(name).to_raw(value, self.name)
        raise EncodeError(f"{self.name}: cannot encode: {err}") from err

    def _wrong(self, values: Mapping[str, Value]) -> None:
        missing = [s.name for s in self.signals if s.name not in values]
        extra = [k for k in values if k not in self._by_name]
        raise EncodeError(f"{self.name}: missing signals {missing}, unknown signals {extra}")

    # ---- API -----------------------------------------------------------------------------------
    def signal(self, name: str) -> SignalSpec:
        try:
            return self._by_name[name]
        except KeyError:
            raise EncodeError(f"{self.name} has no signal {name!r}") from None

    def encode(self, values: Mapping[str, Value]) -> bytes:
        """Encode every signal of the message; each must be given and within its DBC range."""
        try:  # names and values as two flat tuples: cheaper to build and hash than the item pairs
            key = (tuple(values), tuple(values.values()))
            cached = self._encode_cache.get(key)
        except TypeError:  # unhashable values: encode() reports them
            return self._encode_all(values)
        if cached is None:
            cached = self._encode_all(values)
            if len(self._encode_cache) >= _CACHE_LIMIT:
                self._encode_cache.clear()
            self._encode_cache[key] = cached
        return cached

    def encoder(self, *names: str, memo: int = _CACHE_LIMIT, **fixed: Value) -> Encoder:
        """A compiled encoder taking ``names``' values positionally; ``fixed`` signals are constant.

        Every signal of the message must be named once, in ``names`` or ``fixed``; the fixed values
        are range-checked now, the others on every call (EncodeError, as :meth:`encode`).  With
        ``memo`` > 0 the last results are remembered (the arguments must then be hashable).
        """
        given = [*names, *fixed]
        if len(set(given)) != len(given) or set(given) != set(self._by_name):
            missing = [s.name for s in self.signals if s.name not in given]
            extra = [n for n in given if n not in self._by_name]
            raise EncodeError(f"{self.name}: encoder misses signals {missing}, unknown signals {extra}")
        fn = self._build_encoder(list(names), fixed)
        if memo <= 0:
            return fn
        cache: dict[tuple[Any, ...], bytes] = {}

        def memoised(*args: Any) -> bytes:
            data = cache.get(args)
            if data is None:
                data = fn(*args)
                if len(cache) >= memo:
                    cache.clear()
                cache[args] = data
            return data

        return memoised

    def framer(self, *names: str, memo: int = _CACHE_LIMIT, **fixed: Value) -> Callable[..., Frame]:
        """As :meth:`encoder`, but the result is the frame: ``framer(...)(now, *values) -> Frame``."""
        frame_id, extended = self.frame_id, self.is_extended
        if not self._trusted or memo <= 0:
            encode = self.encoder(*names, memo=memo, **fixed)

            def checked(now: float, *args: Any) -> Frame:
                return self.frame_of(encode(*args), now)

            return checked
        encode = self.encoder(*names, memo=0, **fixed)
        cache: dict[tuple[Any, ...], bytes] = {}
        new, set_id, set_data, set_ext, set_ts = _new_frame, _set_id, _set_data, _set_ext, _set_ts

        def framed(now: float, *args: Any) -> Frame:
            data = cache.get(args)
            if data is None:
                data = encode(*args)
                if len(cache) >= memo:
                    cache.clear()
                cache[args] = data
            f = new(Frame)
            set_id(f, frame_id)
            set_data(f, data)
            set_ext(f, extended)
            set_ts(f, now)
            return f

        return framed

    def decode(self, data: bytes, *, allow_truncated: bool = False) -> dict[str, Value]:
        """Decode frame bytes into physical values (ints where the scaling is integral).

        A frame longer than the DBC length is decoded from its first bytes; a shorter one raises
        :class:`DecodeError` unless ``allow_truncated``, which then leaves out signals that do not fit.
        """
        if type(data) is not bytes:
            data = bytes(data)
        n = len(data)
        if n < self.length:  # never cached: the same bytes must still fail without allow_truncated
            if not allow_truncated:
                raise DecodeError(f"{self.name}: {n} data bytes, the DBC says {self.length}")
            word = int.from_bytes(data, "little")
            avail = 8 * n
            return {
                s.name: s.from_raw((word >> s.start) & s.mask)
                for s in self.signals
                if s.start + s.length <= avail
            }
        cached = self._decode_cache.get(data)
        if cached is None:
            cached = self._decode_full(data)
            if len(self._decode_cache) >= _CACHE_LIMIT:
                self._decode_cache.clear()
            self._decode_cache[data] = cached
        return dict(cached)

    def frame(self, values: Mapping[str, Value], now: float = 0.0) -> Frame:
        return self.frame_of(self.encode(values), now)

    def frame_of(self, data: bytes, now: float = 0.0) -> Frame:
        """A frame of this message carrying ``data`` (as produced by one of its encoders)."""
        if not self._trusted or len(data) > 8 or type(data) is not bytes:
            return Frame(self.frame_id, data, self.is_extended, now)
        f = _new_frame(Frame)
        _set_id(f, self.frame_id)
        _set_data(f, data)
        _set_ext(f, self.is_extended)
        _set_ts(f, now)
        return f

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
        default = 0  # BA_DEF_DEF_ "CsimUnusedBits" applies to messages without their own BA_
        definition = db.dbc.attribute_definitions.get("CsimUnusedBits") if db.dbc is not None else None
        if definition is not None and definition.default_value is not None:
            default = int(definition.default_value)
        for msg in db.messages:
            pattern = default
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
_DIRECTORY: Path | None = None  # --dbc-dir: replaces the shipped dbc/ folder for this process


def set_dbc_dir(directory: Path | None) -> None:
    """Load DBC files from ``directory`` instead of the shipped ``dbc/`` (None: back to shipped).

    The folder must exist and hold at least one ``*.dbc`` file (:class:`DbcError` otherwise).
    """
    global _DIRECTORY
    if directory is not None:
        folder = Path(directory)
        if not folder.is_dir():
            raise DbcError(f"--dbc-dir {folder}: no such folder")
        if not any(p.is_file() for p in folder.glob("*.dbc")):
            raise DbcError(f"--dbc-dir {folder}: the folder holds no *.dbc file")
        directory = folder.resolve()
    _DIRECTORY = directory


def current_dbc_dir() -> Path:
    return _DIRECTORY if _DIRECTORY is not None else dbc_dir()


def load_dbc(name: str, directory: Path | None = None) -> Codec:
    """Load ``<directory>/<name>.dbc`` in cantools strict mode (cached per path)."""
    folder = directory if directory is not None else current_dbc_dir()
    path = (folder / f"{name}.dbc").resolve()
    codec = _LOADED.get(path)
    if codec is not None:
        return codec
    if not path.is_file():
        raise DbcError(f"DBC file not found: {path}")
    try:
        db = cantools.database.load_file(str(path), database_format="dbc", strict=True)
    except Exception as err:  # cantools raises several unrelated types for parse errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DbcError(f"{path}: invalid DBC: {first}") from err
    assert isinstance(db, Database)
    codec = Codec(db, path)
    _LOADED[path] = codec
    log.debug("loaded %s with %d messages", path, len(codec.messages))
    return codec
