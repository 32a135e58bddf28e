"""CAN capture files → :class:`~charger_sim.frames.Frame` lists.

>>> result = read_log("capture.csv")            # format detected from the content  # doctest: +SKIP
>>> result.format, len(result.frames), result.problems  # doctest: +SKIP

See :mod:`charger_sim.logs.readers` for the result, the error rules and how to register a format, and
:mod:`charger_sim.logs.formats` for the built-in text formats.
"""

from __future__ import annotations

from charger_sim.logs import formats as _formats  # registers the built-in text formats
from charger_sim.logs.readers import (
    CLOCK_RESET_S,
    MAX_PROBLEMS,
    RX,
    TX,
    Clock,
    FrameInfo,
    LineParser,
    LineRecord,
    MalformedLine,
    NotADataFrame,
    ReaderSpec,
    ReadFunc,
    ReadResult,
    SniffFunc,
    available_formats,
    detect_format,
    first_lines,
    iter_frames,
    parse_seconds_ns,
    read_log,
    read_text_log,
    register_reader,
    unregister_reader,
)

del _formats

__all__ = [
    "CLOCK_RESET_S",
    "MAX_PROBLEMS",
    "RX",
    "TX",
    "Clock",
    "FrameInfo",
    "LineParser",
    "LineRecord",
    "MalformedLine",
    "NotADataFrame",
    "ReadFunc",
    "ReadResult",
    "ReaderSpec",
    "SniffFunc",
    "available_formats",
    "detect_format",
    "first_lines",
    "iter_frames",
    "parse_seconds_ns",
    "read_log",
    "read_text_log",
    "register_reader",
    "unregister_reader",
]
