"""Read CAN capture files into :class:`~charger_sim.frames.Frame` lists, tolerantly and with precise errors.

Entry point: :func:`read_log` (or :func:`iter_frames`).  The format is detected from the file's content
(the first lines are *sniffed*), or forced with ``format=``.  Every line is accounted for in the
:class:`ReadResult`: it became a frame, or it was a valid record that is not a classic data frame (error,
remote, CAN FD: ``skipped_frames``), or it was not a frame at all (headers, logger menus, blank lines:
``skipped_lines``), or it looked like a frame but was malformed (``malformed_lines``; the first
:data:`MAX_PROBLEMS` are kept in ``problems`` as ``file:line: expected …`` strings).  With ``strict=True``
the first malformed line raises :class:`~charger_sim.errors.LogFormatError` instead.

Timestamps are normalised: ``Frame.timestamp`` is seconds since the first frame of the file, monotonic
non-decreasing (a frame stamped earlier than its predecessor gets the predecessor's time; a backward jump
of more than :data:`CLOCK_RESET_S` is taken as a clock reset and the clock continues from there).  Each
frame's raw time text, source line, channel and direction are kept in :attr:`ReadResult.info`.

Adding a format (the plug-in point)::

    from charger_sim.logs import LineRecord, MalformedLine, read_text_log, register_reader

    def parse(line: str) -> LineRecord | None:
        if not line.startswith("MYLOG "):
            return None  # not a frame: skipped and counted
        ...  # raise MalformedLine("expected …") for a frame line that cannot be read
        return LineRecord(arbitration_id, data, is_extended_id, time_ns, raw_time)

    register_reader(
        "mylog",
        sniff=lambda first_lines: any(line.startswith("MYLOG ") for line in first_lines),
        read=lambda path: read_text_log(path, "mylog", parse),
    )

The built-in formats live in :mod:`charger_sim.logs.formats`: python-can's (Vector ASC, BLF, PEAK TRC,
python-can's own CSV, and with ``format="python-can"`` anything :class:`can.LogReader` knows by file suffix)
and the text formats of the field logs (F1–F5 of ``shared/field-logs/README.md``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from can.io.player import MESSAGE_READERS

from charger_sim.errors import LogFormatError
from charger_sim.frames import Frame

logger = logging.getLogger(__name__)

MAX_PROBLEMS = 50
"""How many malformed-line messages a :class:`ReadResult` keeps (all are counted)."""

CLOCK_RESET_S = 1.0
"""A timestamp this many seconds (or more) before its predecessor is a clock reset, not a glitch."""

SNIFF_BYTES = 32_768
SNIFF_LINES = 200

RX = "rx"
TX = "tx"

SniffFunc = Callable[[Sequence[str]], bool]
"""Gets the first lines of a file (line ends removed) and says whether the reader handles it."""

ReadFunc = Callable[[Path], "ReadResult"]
"""Reads a whole file.  Malformed lines go into ``problems``; :func:`read_log` applies ``strict``."""


# --------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """Where one frame came from: source line (0 when not line-based), raw time text, channel, direction.

    ``direction`` is :data:`RX`, :data:`TX` or ``None`` when the format does not say.
    """

    line: int
    raw_time: str
    channel: str | None = None
    direction: str | None = None


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Everything read from one capture file; ``info[i]`` describes ``frames[i]``.

    Iterating a ``ReadResult`` iterates its frames; ``len()`` is the number of frames.
    """

    frames: tuple[Frame, ...]
    format: str
    path: str = ""
    info: tuple[FrameInfo, ...] = ()
    skipped_lines: int = 0
    """Lines that are not frames (headers, comments, logger menus, blank lines)."""
    malformed_lines: int = 0
    """Lines that look like frames but could not be read (all counted, first MAX_PROBLEMS in problems)."""
    skipped_frames: int = 0
    """Valid records that are not classic CAN data frames (error, remote, CAN FD)."""
    problems: tuple[str, ...] = ()
    """``file:line: expected …`` for the first malformed lines."""
    lines_read: int = 0
    """Lines in the file (0 for binary formats)."""
    time_corrections: int = 0
    """Frames whose timestamp went backwards and was clamped (or a clock reset)."""

    def __post_init__(self) -> None:
        if self.info and len(self.info) != len(self.frames):
            raise ValueError(f"info has {len(self.info)} entries for {len(self.frames)} frames")

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def channels(self) -> tuple[str | None, ...]:
        """Channel of each frame (``None`` where unknown)."""
        return tuple(i.channel for i in self.info) if self.info else (None,) * len(self.frames)

    @property
    def directions(self) -> tuple[str | None, ...]:
        """Direction (``"rx"``/``"tx"``/``None``) of each frame."""
        return tuple(i.direction for i in self.info) if self.info else (None,) * len(self.frames)


# ------------------------------------------------------------------------------------ line framework


class MalformedLine(Exception):
    """Raised by a line parser for a line that looks like a frame but is not valid.

    The message says what was expected (``"expected 8 data bytes after [8], got 7"``).
    """


class NotADataFrame(Exception):
    """Raised by a line parser for a valid record that is not a classic data frame (error/remote/FD)."""


@dataclass(frozen=True, slots=True)
class LineRecord:
    """One frame parsed from a text line.  ``time_ns`` is on the file's own base (any origin, may be < 0)."""

    arbitration_id: int
    data: bytes
    is_extended_id: bool
    time_ns: int
    raw_time: str
    channel: str | None = None
    direction: str | None = None


LineParser = Callable[[str], "LineRecord | None"]
"""Parses one line (line end removed): a record, ``None`` for a non-frame line, or raises
:class:`MalformedLine` / :class:`NotADataFrame`."""


class Clock:
    """Turns raw timestamps (ns, any base) into seconds since the first frame, never decreasing.

    ``wrap_ns``: the raw counter wraps modulo this many ns (differences are taken modulo it, signed).
    """

    def __init__(self, wrap_ns: int | None = None) -> None:
        self._wrap = wrap_ns
        self._prev_raw: int | None = None
        self._elapsed = 0  # ns since the first frame following the raw clock (may dip below _last)
        self._last = 0  # ns of the last timestamp handed out
        self.corrections = 0

    def __call__(self, raw_ns: int) -> float:
        if self._prev_raw is None:
            self._prev_raw = raw_ns
            return 0.0
        step = raw_ns - self._prev_raw
        if self._wrap is not None:
            half = self._wrap // 2
            step = (step + half) % self._wrap - half
        self._prev_raw = raw_ns
        self._elapsed += step
        if self._elapsed < self._last:
            self.corrections += 1
            if self._last - self._elapsed >= CLOCK_RESET_S * 1e9:
                logger.warning("timestamps jump back %.3f s: taken as a clock reset",
                               (self._last - self._elapsed) / 1e9)
                self._elapsed = self._last
        else:
            self._last = self._elapsed
        return self._last / 1e9


def parse_seconds_ns(text: str) -> int:
    """``"14.543"`` → 14_543_000_000 exactly (no float rounding); accepts a sign and any fraction length."""
    m = re.fullmatch(r"\s*([-+]?)(\d*)(?:\.(\d*))?\s*", text)
    if m is None or not (m[2] or m[3]):
        raise ValueError(f"not a number of seconds: {text!r}")
    frac = (m[3] or "")[:9].ljust(9, "0")
    ns = int(m[2] or "0") * 1_000_000_000 + int(frac)
    return -ns if m[1] == "-" else ns


class ResultBuilder:
    """Accumulates frames, counts and problems for one file (for readers that are not line-by-line).

    ``add(record, line)`` a frame, ``problem("file:line", "expected …", text)`` a malformed record, bump
    ``skipped_lines`` / ``skipped_frames`` / ``lines`` directly, then ``result()``.
    """

    def __init__(self, path: Path, format_name: str, wrap_ns: int | None = None) -> None:
        self.path = path
        self.format = format_name
        self.clock = Clock(wrap_ns)
        self.frames: list[Frame] = []
        self.info: list[FrameInfo] = []
        self.skipped_lines = 0
        self.malformed = 0
        self.skipped_frames = 0
        self.problems: list[str] = []
        self.lines = 0

    def add(self, rec: LineRecord, line: int = 0) -> None:
        """Add a frame (``ValueError`` from :class:`Frame` when the ID/data do not fit classic CAN)."""
        frame = Frame(rec.arbitration_id, rec.data, rec.is_extended_id)
        ts = self.clock(rec.time_ns)
        self.frames.append(replace(frame, timestamp=ts))
        self.info.append(FrameInfo(line, rec.raw_time, rec.channel, rec.direction))

    def problem(self, location: str, message: str, text: str = "") -> None:
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS:
            shown = text.strip()
            shown = shown if len(shown) <= 70 else shown[:67] + "..."
            self.problems.append(f"{location}: {message}" + (f" (line: {shown!r})" if shown else ""))
        logger.debug("%s: %s", location, message)

    def result(self) -> ReadResult:
        res = ReadResult(
            frames=tuple(self.frames), format=self.format, path=str(self.path), info=tuple(self.info),
            skipped_lines=self.skipped_lines, malformed_lines=self.malformed,
            skipped_frames=self.skipped_frames, problems=tuple(self.problems), lines_read=self.lines,
            time_corrections=self.clock.corrections,
        )
        logger.info("%s: %s, %d frames, %d non-frame lines, %d malformed, %d non-data frames",
                    self.path, self.format, len(res.frames), res.skipped_lines, res.malformed_lines,
                    res.skipped_frames)
        if res.malformed_lines:
            logger.warning("%s: %d malformed frame line(s), first: %s", self.path, res.malformed_lines,
                           res.problems[0])
        return res


def open_text(path: Path) -> TextIO:
    """Text mode, universal newlines (CRLF/CR/LF), undecodable bytes replaced (they make a line malformed)."""
    try:
        return path.open("r", encoding="utf-8", errors="replace", newline=None)
    except OSError as exc:
        raise LogFormatError(f"{path}: cannot read file: {exc.strerror or exc}") from exc


def read_text_log(path: Path, format_name: str, parse_line: LineParser, *,
                  time_wrap_ns: int | None = None) -> ReadResult:
    """Read a line-based log with ``parse_line`` (see :data:`LineParser`) into a :class:`ReadResult`.

    Handles CRLF, a missing final newline and undecodable bytes; counts every line.
    """
    col = ResultBuilder(path, format_name, time_wrap_ns)
    with open_text(path) as handle:
        for lineno, raw in enumerate(handle, start=1):
            col.lines = lineno
            line = raw.rstrip("\r\n")
            try:
                rec = parse_line(line)
            except MalformedLine as exc:
                col.problem(f"{path}:{lineno}", str(exc), line)
                continue
            except NotADataFrame as exc:
                col.skipped_frames += 1
                logger.debug("%s: %s skipped", f"{path}:{lineno}", exc)
                continue
            except ValueError as exc:  # a plug-in parser's own conversion failing
                col.problem(f"{path}:{lineno}", f"expected a valid {format_name} line: {exc}", line)
                continue
            if rec is None:
                col.skipped_lines += 1
                continue
            try:
                col.add(rec, lineno)
            except ValueError as exc:  # Frame's own checks (ID range, > 8 bytes)
                col.problem(f"{path}:{lineno}", f"expected a valid classic CAN frame: {exc}", line)
    return col.result()


# ------------------------------------------------------------------------------------------ registry


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """A registered log format."""

    name: str
    sniff: SniffFunc
    read: ReadFunc
    description: str = ""
    aliases: tuple[str, ...] = ()
    builtin: bool = field(default=False, compare=False)


_REGISTRY: dict[str, ReaderSpec] = {}


def register_reader(name: str, sniff: SniffFunc, read: ReadFunc, *, description: str = "",
                    aliases: Iterable[str] = (), replace_existing: bool = False,
                    _builtin: bool = False) -> None:
    """Register a log format.

    ``sniff(first_lines)`` gets up to :data:`SNIFF_LINES` first lines of a file (line ends removed,
    undecodable bytes replaced) and returns whether ``read(path)`` handles it.  Auto-detection tries
    user-registered readers first (most recent first), then the built-in ones.  ``name`` and ``aliases``
    are accepted (case-insensitively) by ``read_log(..., format=name)``.
    """
    key = name.lower()
    names = {key, *(a.lower() for a in aliases)}
    if not replace_existing:
        taken = sorted(n for n in names if _lookup(n) is not None)
        if taken:
            raise ValueError(f"log format name already registered: {', '.join(taken)}")
    _REGISTRY.pop(key, None)
    _REGISTRY[key] = ReaderSpec(key, sniff, read, description, tuple(sorted(names - {key})), _builtin)


def unregister_reader(name: str) -> None:
    """Remove a registered format (by name or alias); unknown names are ignored."""
    spec = _lookup(name)
    if spec is not None:
        del _REGISTRY[spec.name]


def available_formats() -> dict[str, str]:
    """Registered format names → description."""
    return {spec.name: spec.description for spec in _REGISTRY.values()}


def _lookup(name: str) -> ReaderSpec | None:
    key = name.lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    return next((s for s in _REGISTRY.values() if key in s.aliases), None)


def _detection_order() -> list[ReaderSpec]:
    specs = list(_REGISTRY.values())
    return [s for s in reversed(specs) if not s.builtin] + [s for s in specs if s.builtin]


def first_lines(path: Path, max_lines: int = SNIFF_LINES) -> list[str]:
    """The first lines of a file as the sniffers see them."""
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise LogFormatError(f"{path}: cannot read file: {exc.strerror or exc}") from exc
    return re.split(r"\r\n|\r|\n", head.decode("utf-8", errors="replace"))[:max_lines]


def detect_format(path: Path | str) -> str:
    """Name of the registered format that claims the file; :class:`LogFormatError` when none does."""
    path = Path(path)
    lines = first_lines(path)
    if not any(line.strip() for line in lines):
        raise LogFormatError(f"{path}: empty file, expected a CAN log")
    for spec in _detection_order():
        try:
            if spec.sniff(lines):
                logger.debug("%s: detected format %s", path, spec.name)
                return spec.name
        except Exception:  # a broken plug-in sniffer must not hide the other formats
            logger.exception("sniffer of log format %s failed on %s", spec.name, path)
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in MESSAGE_READERS and _lookup("python-can") is not None:
        return "python-can"
    lineno, text = next((i, t) for i, t in enumerate(lines, start=1) if t.strip())
    shown = text.strip()[:60]
    raise LogFormatError(f"{path}:{lineno}: expected a CAN log in a known format "
                         f"({', '.join(_REGISTRY)}), got {shown!r}")


def read_log(path: Path | str, format: str | None = None, strict: bool = False) -> ReadResult:
    """Read a CAN capture file.

    ``format``: a registered name or alias (see :func:`available_formats`); detected from the content
    when ``None``.  ``strict``: raise :class:`LogFormatError` (``file:line: expected …``) for the first
    malformed frame line, and for a non-empty file without a single frame, instead of reporting them in
    the result.  Unreadable files and unknown formats always raise :class:`LogFormatError`.
    """
    path = Path(path)
    if not path.is_file():
        reason = "no such file" if not path.exists() else "not a regular file"
        raise LogFormatError(f"{path}: cannot read file: {reason}")
    if format is None:
        spec = _lookup(detect_format(path))
        assert spec is not None
    else:
        found = _lookup(format)
        if found is None:
            raise LogFormatError(f"{path}: unknown log format {format!r}, expected one of: "
                                 f"{', '.join(_REGISTRY)}")
        spec = found
    result = spec.read(path)
    if not result.path or not result.format:
        result = replace(result, path=result.path or str(path), format=result.format or spec.name)
    if strict:
        if result.problems:
            raise LogFormatError(result.problems[0])
        if result.malformed_lines:
            raise LogFormatError(f"{path}: {result.malformed_lines} malformed frame line(s)")
        if not result.frames and path.stat().st_size > 0:
            raise LogFormatError(f"{path}: expected at least one {spec.name} frame, found none "
                                 f"({result.skipped_lines} non-frame lines)")
    return result


def iter_frames(path: Path | str, format: str | None = None, strict: bool = False) -> Iterator[Frame]:
    """The frames of :func:`read_log` as an iterator."""
    return iter(read_log(path, format=format, strict=strict).frames)
