"""Built-in log formats: python-can's, and the text formats F1–F5 of ``shared/field-logs/README.md`` §1.

python-can reads ``asc``, ``blf``, ``trc`` and ``python-can-csv`` (and, with ``format="python-can"``, anything
:class:`can.LogReader` knows by file suffix); error, remote and CAN FD messages are counted, not returned.
The text formats are parsed here, line by line:

========  ===============  =============================================================================
Format    Aliases          Lines
========  ===============  =============================================================================
candump   f1               ``(2022-06-02 22:49:58.145756)  can1  102   [8]  02 9A …`` (also a plain
                           ``(seconds)`` time); ``[DLC]`` optional
candump-  f2               ``(1703560144.117287) can0 1808F456#1C257C01`` (``candump -l``; optional
log                        trailing ``R``/``T`` direction as python-can writes it)
gvret-    f3, savvycan     ``Time Stamp,ID,Extended,Dir,Bus,LEN,D1..D8`` with µs times (any base, may be
csv                        negative; differences are used, signed 64-bit wrap)
candue    f4               ``Rcvd msgID: 0x109; 01; 00; …; 5A  00:02:06.750`` anywhere in the line; always
                           8 bytes; every other line is logger text
rxtx-     f5               ``(14.543) TX1 108 [8] 01 AF …``; RX/TX becomes the direction, the digit the
dump                       channel
========  ===============  =============================================================================

An ID is 29-bit when written with more than 3 hex digits (F1, F2, F5), by the ``Extended`` column (F3), or
when its value exceeds 0x7FF (F4, whose logger does not pad).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, TextIO, cast

import can

from charger_sim.errors import LogFormatError
from charger_sim.frames import MAX_EXT_ID, MAX_STD_ID
from charger_sim.logs.readers import (
    RX,
    TX,
    LineRecord,
    MalformedLine,
    NotADataFrame,
    ReadResult,
    ResultBuilder,
    SniffFunc,
    open_text,
    parse_seconds_ns,
    read_text_log,
    register_reader,
)

_HEX = re.compile(r"[0-9A-Fa-f]+")
_HEX_BYTE = re.compile(r"[0-9A-Fa-f]{2}")
_CAN_ERR_FLAG = 0x20000000
_FD_LENGTHS = frozenset({12, 16, 20, 24, 32, 48, 64})
_NS = 1_000_000_000

# ------------------------------------------------------------------------------------------- helpers


def parse_can_id(text: str, *, extended: bool | None = None) -> tuple[int, bool]:
    """Hex ID (optional ``0x``) → (value, is_extended).  ``extended=None``: more than 3 digits = 29-bit."""
    digits = text[2:] if text[:2].lower() == "0x" else text
    if not _HEX.fullmatch(digits):
        raise MalformedLine(f"expected a hexadecimal CAN ID, got {text!r}")
    value = int(digits, 16)
    ext = len(digits) > 3 if extended is None else extended
    limit = MAX_EXT_ID if ext else MAX_STD_ID
    if value > limit:
        bits = "29" if ext else "11"
        raise MalformedLine(f"expected a {bits}-bit CAN ID (at most 0x{limit:X}), got {text!r}")
    return value, ext


def parse_spaced_bytes(tokens: Sequence[str], dlc: int | None) -> bytes:
    """Data bytes from whitespace-separated hex tokens.

    With a DLC exactly that many bytes must follow (another hex byte after them is a DLC mismatch; other
    trailing text, e.g. candump's ASCII column, is ignored).  Without one the leading run of hex bytes is
    taken.
    """
    count = len(tokens) if dlc is None else dlc
    out = bytearray()
    for i in range(count):
        if i >= len(tokens):
            raise MalformedLine(f"expected {dlc} data bytes after [{dlc}], got {i}")
        tok = tokens[i]
        if not _HEX_BYTE.fullmatch(tok):
            if dlc is None and not _looks_like_byte(tok):
                break  # trailing annotation after the bytes
            raise MalformedLine(f"expected a two-digit hex data byte, got {tok!r} (byte {i + 1})")
        out.append(int(tok, 16))
    if dlc is not None and len(tokens) > dlc and _HEX_BYTE.fullmatch(tokens[dlc]):
        extra = sum(1 for _ in _leading_bytes(tokens))
        raise MalformedLine(f"expected {dlc} data bytes after [{dlc}], got {extra} (DLC does not match data)")
    if len(out) > 8:
        raise MalformedLine(f"expected at most 8 data bytes (classic CAN), got {len(out)}")
    return bytes(out)


def _looks_like_byte(token: str) -> bool:
    return len(token) <= 3 and token.isalnum()


def _leading_bytes(tokens: Sequence[str]) -> list[str]:
    out: list[str] = []
    for tok in tokens:
        if not _HEX_BYTE.fullmatch(tok):
            break
        out.append(tok)
    return out


def _id_dlc_data(rest: str) -> tuple[int, bool, bytes]:
    """``ID [DLC] b0 b1 …`` (DLC optional) as candump and the F5 dump print it."""
    lowered = rest.lower()
    if "errorframe" in lowered:
        raise NotADataFrame("error frame")
    if "remote request" in lowered:
        raise NotADataFrame("remote frame")
    tokens = rest.split()
    if not tokens:
        raise MalformedLine("expected a CAN ID and data after the time stamp")
    id_text, *tail = tokens
    dlc: int | None = None
    if tail and tail[0].startswith("["):
        m = re.fullmatch(r"\[(\d+)\]", tail[0])
        if m is None:
            raise MalformedLine(f"expected a DLC like [8], got {tail[0]!r}")
        dlc = int(m[1])
        tail = tail[1:]
        if dlc > 8:
            if dlc in _FD_LENGTHS:
                raise NotADataFrame(f"CAN FD frame ([{dlc}])")
            raise MalformedLine(f"expected a DLC of 0 to 8, got [{dlc}]")
    can_id, ext = parse_can_id(id_text)
    return can_id, ext, parse_spaced_bytes(tail, dlc)


# ---------------------------------------------------------------------------------------- F1 candump

_F1_TIME = re.compile(
    r"\(\s*(?:(?P<date>\d{4}-\d\d-\d\d)[ T](?P<clock>\d\d:\d\d:\d\d(?:\.\d*)?)"
    r"|(?P<secs>-?\d+(?:\.\d*)?))\s*\)\s*(?P<iface>\S*)\s*(?P<rest>.*)")
_F1_SNIFF = re.compile(
    r"^\s*\((?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?|\d+\.\d+)\)\s+\S+\s+[0-9A-Fa-f]{1,8}\s+\[\d+\]")


def _clock_ns(clock: str) -> int:
    h, m, s = clock.split(":", 2)
    return (int(h) * 3600 + int(m) * 60) * _NS + parse_seconds_ns(s)


def parse_candump_line(line: str) -> LineRecord | None:
    """F1: ``(YYYY-MM-DD hh:mm:ss.uuuuuu) iface ID [DLC] bytes`` (or a plain ``(seconds)`` time)."""
    m = _F1_TIME.search(line)
    if m is None:
        return None
    if not m["iface"]:
        raise MalformedLine("expected an interface, a CAN ID and data after the time stamp")
    if m["date"] is not None:
        try:
            day = date.fromisoformat(m["date"]).toordinal()
        except ValueError as exc:
            raise MalformedLine(f"expected a valid date, got {m['date']!r}") from exc
        time_ns = day * 86_400 * _NS + _clock_ns(m["clock"])
        raw = f"{m['date']} {m['clock']}"
    else:
        raw = m["secs"]
        time_ns = parse_seconds_ns(raw)
    can_id, ext, data = _id_dlc_data(m["rest"])
    if ext and can_id & _CAN_ERR_FLAG:
        raise NotADataFrame("error frame")
    return LineRecord(can_id, data, ext, time_ns, raw, m["iface"])


# ------------------------------------------------------------------------------------ F2 candump -l

_F2 = re.compile(r"\(\s*(?P<ts>[^()\s]*)\s*\)\s+(?P<iface>\S+)\s+(?P<id>[^#\s]*)#(?P<data>\S*)"
                 r"\s*(?P<rest>.*)")
_F2_SNIFF = re.compile(r"^\s*\(-?\d+(?:\.\d+)?\)\s+\S+\s+[0-9A-Fa-f]{1,8}#")


def parse_candump_log_line(line: str) -> LineRecord | None:
    """F2: ``(epoch.micro) iface ID#DATA [R|T]``; remote (``ID#R``), FD (``ID##F…``), error frames skipped."""
    m = _F2.search(line)
    if m is None:
        return None
    try:
        time_ns = parse_seconds_ns(m["ts"])
    except ValueError as exc:
        ts = m["ts"]
        raise MalformedLine(f"expected a time stamp in seconds like (1703560144.117287), got ({ts})") from exc
    id_text, data_text = m["id"], m["data"]
    if _HEX.fullmatch(id_text) and len(id_text) == 8 and int(id_text, 16) & _CAN_ERR_FLAG:
        raise NotADataFrame("error frame")
    can_id, ext = parse_can_id(id_text)
    if data_text[:1] in ("R", "r"):
        raise NotADataFrame("remote frame")
    if data_text.startswith("#"):
        raise NotADataFrame("CAN FD frame")
    data_text = data_text.split("_", 1)[0]  # candump's optional _<len8_dlc> suffix
    if data_text and not _HEX.fullmatch(data_text):
        raise MalformedLine(f"expected hex data after '#', got {data_text!r}")
    if len(data_text) % 2:
        raise MalformedLine(f"expected an even number of hex digits after '#', got {len(data_text)}")
    if len(data_text) > 16:
        raise MalformedLine(f"expected at most 8 data bytes (classic CAN), got {len(data_text) // 2}")
    flag = m["rest"].split()[0] if m["rest"].split() else ""
    direction = {"R": RX, "T": TX}.get(flag.upper())
    return LineRecord(can_id, bytes.fromhex(data_text), ext, time_ns, m["ts"], m["iface"], direction)


# --------------------------------------------------------------------------------- F3 GVRET/SavvyCAN

_F3_COLUMNS = ("time stamp", "id", "extended", "dir", "bus", "len", *(f"d{k}" for k in range(1, 9)))
_F3_ROW_SNIFF = re.compile(r"^-?\d+,[0-9A-Fa-f]{1,8},(?:true|false),", re.IGNORECASE)
_F3_WRAP_NS = (1 << 64) * 1000  # µs counter printed as signed 64-bit


class GvretCsvParser:
    """F3 rows, columns located by the header (``Time Stamp,ID,Extended,Dir,Bus,LEN,D1..D8``)."""

    def __init__(self) -> None:
        self.columns = {name: i for i, name in enumerate(_F3_COLUMNS)}

    def __call__(self, line: str) -> LineRecord | None:
        fields = [f.strip() for f in line.lstrip("\ufeff").split(",")]
        if len(fields) < 2:
            return None
        if fields[0].lower() == "time stamp":
            self.columns = {name.lower(): i for i, name in enumerate(fields) if name}
            return None
        col = self.columns

        def get(name: str) -> str | None:
            i = col.get(name)
            return fields[i] if i is not None and i < len(fields) else None

        ts, id_text, length = get("time stamp"), get("id"), get("len")
        if ts is None or id_text is None or length is None:
            raise MalformedLine(f"expected at least {max(col['time stamp'], col['id'], col['len']) + 1} "
                                f"comma-separated fields, got {len(fields)}")
        if not re.fullmatch(r"-?\d+", ts):
            raise MalformedLine(f"expected an integer Time Stamp in microseconds, got {ts!r}")
        ext_text = (get("extended") or "").lower()
        if ext_text in ("true", "1"):
            extended: bool | None = True
        elif ext_text in ("false", "0"):
            extended = False
        elif ext_text == "":
            extended = None
        else:
            raise MalformedLine(f"expected Extended true or false, got {get('extended')!r}")
        if extended is None:  # no Extended column: decide by value (GVRET pads IDs to 8 digits)
            extended = bool(_HEX.fullmatch(id_text)) and int(id_text, 16) > MAX_STD_ID
        can_id, ext = parse_can_id(id_text, extended=extended)
        if not length.isdigit() or int(length) > 8:
            raise MalformedLine(f"expected LEN 0 to 8, got {length!r}")
        dlc = int(length)
        data = bytearray()
        for k in range(1, dlc + 1):
            value = get(f"d{k}")
            if value is None or value == "":
                raise MalformedLine(f"expected {dlc} data bytes (LEN={dlc}), got {k - 1}")
            if not re.fullmatch(r"[0-9A-Fa-f]{1,2}", value):
                raise MalformedLine(f"expected a hex data byte in D{k}, got {value!r}")
            data.append(int(value, 16))
        direction = {"rx": RX, "tx": TX}.get((get("dir") or "").lower())
        return LineRecord(can_id, bytes(data), ext, int(ts) * 1000, ts, get("bus") or None, direction)


# ----------------------------------------------------------------------------------- F4 CANDue logger

_F4 = re.compile(r"Rcvd msgID:\s*(?P<id>[^;\s]*)\s*;(?P<body>.*)$", re.IGNORECASE)
_F4_TIME = re.compile(r"(?P<clock>\d+:\d\d:\d\d(?:\.\d+)?)\s*$")


def parse_candue_line(line: str) -> LineRecord | None:
    """F4: ``Rcvd msgID: 0x109; b0; …; b7  hh:mm:ss.mmm`` found anywhere in the line; 8 bytes, no DLC."""
    m = _F4.search(line)
    if m is None:
        return None
    body = m["body"]
    t = _F4_TIME.search(body)
    if t is None:
        raise MalformedLine("expected a hh:mm:ss.mmm time stamp after the data bytes")
    tokens = [tok.strip() for tok in body[: t.start()].split(";")]
    if tokens and tokens[-1] == "":
        tokens.pop()
    if len(tokens) != 8:
        raise MalformedLine(f"expected 8 data bytes separated by ';' (the logger prints 8), "
                            f"got {len(tokens)}")
    data = bytearray()
    for i, tok in enumerate(tokens, start=1):
        if not re.fullmatch(r"[0-9A-Fa-f]{1,2}", tok):
            raise MalformedLine(f"expected a hex data byte, got {tok!r} (byte {i})")
        data.append(int(tok, 16))
    digits = m["id"][2:] if m["id"][:2].lower() == "0x" else m["id"]
    wide = bool(_HEX.fullmatch(digits)) and int(digits, 16) > MAX_STD_ID
    can_id, ext = parse_can_id(m["id"], extended=wide)
    clock = t["clock"]
    return LineRecord(can_id, bytes(data), ext, _clock_ns(clock), clock)


# -------------------------------------------------------------------------------- F5 RX0/TX1 dump

_F5 = re.compile(r"\(\s*(?P<ts>-?\d+(?:\.\d*)?)\s*\)\s+(?P<dir>[RT])X(?P<ch>\d+)(?:\s+(?P<rest>.*)|$)",
                 re.IGNORECASE)
_F5_SNIFF = re.compile(r"^\s*\(\d+\.\d+\)\s+[RT]X\d+\s+[0-9A-Fa-f]{1,8}\s")


def parse_rxtx_line(line: str) -> LineRecord | None:
    """F5: ``(seconds.mmm) RX0|TX1 ID [DLC] bytes``; RX/TX → direction, digit → channel."""
    m = _F5.search(line)
    if m is None:
        return None
    can_id, ext, data = _id_dlc_data(m["rest"] or "")
    direction = RX if m["dir"].upper() == "R" else TX
    return LineRecord(can_id, data, ext, parse_seconds_ns(m["ts"]), m["ts"], m["ch"], direction)


# ------------------------------------------------------------------------------ python-can formats


class _CountingText:
    """A text file wrapper that counts the lines python-can's readers take from it."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self.line = 0

    def __iter__(self) -> _CountingText:
        return self

    def __next__(self) -> str:
        text = self._handle.readline()
        if not text:
            raise StopIteration
        self.line += 1
        return text

    def readline(self, size: int = -1) -> str:
        text = self._handle.readline(size)
        if text:
            self.line += 1
        return text

    def close(self) -> None:
        self._handle.close()

    @property
    def closed(self) -> bool:
        return self._handle.closed


def _message_channel(msg: can.Message) -> str | None:
    return None if msg.channel is None else str(msg.channel)


def _read_with_python_can(path: Path, format_name: str, make_reader: Callable[[Any], Iterable[can.Message]],
                          *, text: bool, has_direction: bool = True) -> ReadResult:
    """Read with a python-can reader; error/remote/FD messages are counted in ``skipped_frames``."""
    col = ResultBuilder(path, format_name)
    counter: _CountingText | None = None
    try:
        if text:
            counter = _CountingText(open_text(path))
            reader = make_reader(counter)
        else:
            reader = make_reader(path)
    except LogFormatError:
        raise
    except Exception as exc:
        if counter is not None:
            counter.close()
        message = f"{path}: expected a {format_name} file, python-can cannot open it: {exc}"
        raise LogFormatError(message) from exc
    index = 0
    iterator = iter(reader)
    while True:
        try:
            msg = next(iterator)
        except StopIteration:
            break
        except Exception as exc:  # python-can parsers raise anything from ValueError to struct.error
            where = f"{path}:{counter.line}" if counter is not None else f"{path}: after message {index}"
            col.problem(where, f"expected a valid {format_name} record, python-can failed "
                               f"({type(exc).__name__}: {exc}); the rest of the file was not read")
            break
        index += 1
        if msg.is_error_frame or msg.is_remote_frame or msg.is_fd or len(msg.data) > 8:
            col.skipped_frames += 1
            continue
        line = counter.line if counter is not None else 0
        direction = (RX if msg.is_rx else TX) if has_direction else None
        rec = LineRecord(msg.arbitration_id, bytes(msg.data), msg.is_extended_id,
                         round(msg.timestamp * 1_000_000) * 1000, repr(msg.timestamp),
                         _message_channel(msg), direction)
        try:
            col.add(rec, line)
        except ValueError as exc:
            col.problem(f"{path}:{line}" if line else f"{path}: message {index}",
                        f"expected a valid classic CAN frame: {exc}")
    if counter is not None:
        counter.close()
        col.lines = counter.line
        col.skipped_lines = col.lines - len(col.frames) - col.skipped_frames - col.malformed
    else:
        stop = getattr(reader, "stop", None)
        if callable(stop):
            stop()
    return col.result()


def _any_line(lines: Sequence[str], pattern: str, flags: int = 0) -> bool:
    rx = re.compile(pattern, flags)
    return any(rx.search(line) for line in lines)


def _first_nonblank(lines: Sequence[str]) -> str:
    return next((line.strip().lstrip("\ufeff") for line in lines if line.strip()), "")


# ------------------------------------------------------------------------------------ registration


def _matches(rx: re.Pattern[str]) -> SniffFunc:
    return lambda lines: any(rx.search(line) for line in lines)


def _gvret_sniff(lines: Sequence[str]) -> bool:
    return any(line.lstrip("\ufeff").lower().startswith("time stamp,id,") or _F3_ROW_SNIFF.match(line)
               for line in lines)


def read_gvret_csv(path: Path) -> ReadResult:
    return read_text_log(path, "gvret-csv", GvretCsvParser(), time_wrap_ns=_F3_WRAP_NS)


# python-can's formats first: their sniffers are the most specific.
register_reader(
    "blf", lambda lines: bool(lines) and lines[0].startswith("LOGG"),
    lambda p: _read_with_python_can(p, "blf", can.BLFReader, text=False),
    description="Vector BLF (binary), read by python-can", _builtin=True)
register_reader(
    "asc",
    lambda lines: _any_line(lines[:20], r"^\s*(date\s+\w+|base\s+(hex|dec)\b|begin\s+triggerblock)",
                            re.IGNORECASE),
    lambda p: _read_with_python_can(p, "asc", lambda f: can.ASCReader(cast(TextIO, f)), text=True),
    description="Vector ASC, read by python-can", _builtin=True)
register_reader(
    "trc", lambda lines: _any_line(lines[:20], r"^;\s*(\$FILEVERSION|.*PCAN)"),
    lambda p: _read_with_python_can(p, "trc", lambda f: can.TRCReader(cast(TextIO, f)), text=True),
    description="PEAK PCAN-View TRC, read by python-can", _builtin=True)
register_reader(
    "python-can-csv",
    lambda lines: _first_nonblank(lines).lower().replace(" ", "")
    == "timestamp,arbitration_id,extended,remote,error,dlc,data",
    lambda p: _read_with_python_can(p, "python-can-csv", lambda f: can.CSVReader(cast(TextIO, f)),
                                    text=True, has_direction=False),
    description="CSV written by python-can (base64 data)", aliases=("can-csv",), _builtin=True)
register_reader(
    "python-can",
    lambda lines: bool(lines) and lines[0].startswith(("SQLite format 3", "MDF     ")),
    lambda p: _read_with_python_can(p, "python-can", can.LogReader, text=False),
    description="anything can.LogReader reads, chosen by file suffix (.asc .blf .csv .db .log .mf4 "
                ".trc, optionally .gz)", _builtin=True)
register_reader("gvret-csv", _gvret_sniff, read_gvret_csv, aliases=("f3", "savvycan"), _builtin=True,
                description="F3 GVRET/SavvyCAN CSV (Time Stamp,ID,Extended,Dir,Bus,LEN,D1..D8)")
register_reader("candump-log", _matches(_F2_SNIFF),
                lambda p: read_text_log(p, "candump-log", parse_candump_log_line),
                aliases=("f2", "canutils"), _builtin=True,
                description="F2 candump -l log: (epoch) iface ID#DATA")
register_reader("rxtx-dump", _matches(_F5_SNIFF), lambda p: read_text_log(p, "rxtx-dump", parse_rxtx_line),
                aliases=("f5",), _builtin=True,
                description="F5 relative-time dual-channel dump: (14.543) TX1 108 [8] …")
register_reader("candump", _matches(_F1_SNIFF), lambda p: read_text_log(p, "candump", parse_candump_line),
                aliases=("f1",), _builtin=True,
                description="F1 candump with absolute time: (2022-06-02 22:49:58.145756) can1 102 [8] …")
register_reader("candue", _matches(re.compile(r"Rcvd msgID:\s*0x[0-9A-Fa-f]+\s*;", re.IGNORECASE)),
                lambda p: read_text_log(p, "candue", parse_candue_line), aliases=("f4", "jld505"),
                _builtin=True, description="F4 CANDue serial logger: Rcvd msgID: 0x109; 01; …  hh:mm:ss.mmm")
