"""A capture as the observers see it: frames decoded through our DBCs, each with its sender.

:func:`load_capture` reads a log (any format :mod:`charger_sim.logs` reads), detects the protocol
(unless told), decodes every protocol frame through the protocol's DBC, reassembles GB/T transport
sessions (:mod:`.tp`) into their messages, infers who sent each frame (a passive sniffer's direction
column is useless, so it comes from the identifier: DBC senders for CHAdeMO, source address for GB/T)
and grades the timestamps (``good``, ``coarse`` or ``none``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import median

from ..codec import Codec, MessageCodec, Value, load_dbc
from ..errors import DbcError, UsageError
from ..frames import Frame
from ..logs import ReadResult, read_log
from ..protocols.gbt import BMS_ADDRESS, CHARGER_ADDRESS
from ..protocols.gbt.transport import PGN_TP_CM, PGN_TP_DT, make_id, split_id
from .model import CHARGER, VEHICLE
from .tp import PassiveTransport, TpMessage, TpProblem

log = logging.getLogger(__name__)

PROTOCOLS = ("chademo", "gbt", "ccs")
DBC_NAMES = {"chademo": "chademo", "gbt": "gbt27930", "ccs": "ccs"}

# CHAdeMO frames the fact sheet lists (§4) that our DBC does not describe (V2H, maker codes).
CHADEMO_EXTRA_SENDERS = {
    0x103: VEHICLE,
    0x200: VEHICLE,
    0x201: VEHICLE,
    0x202: VEHICLE,
    0x700: VEHICLE,
    0x208: CHARGER,
    0x209: CHARGER,
}
CHADEMO_EXTRA_NAMES = {
    0x103: "KitBatteryVoltage",
    0x200: "VehicleDischargeLimits",
    0x201: "VehicleDischargeEstimate",
    0x202: "VehicleLeaf202",
    0x700: "VehicleMakerCode",
    0x208: "ChargerDischargeCurrent",
    0x209: "ChargerDischargeControl",
}

COARSE_IRREGULAR_SHARE = 0.1  # share of a cyclic frame's intervals off by >50 %: a logger dropping frames


@dataclass(slots=True)
class Record:
    """One protocol message in a capture (a CAN frame, or a reassembled GB/T TP payload)."""

    index: int  # index of the (last) frame in the capture
    time: float
    arbitration_id: int
    extended: bool
    data: bytes
    side: str | None
    line: int = 0
    message: MessageCodec | None = None
    values: dict[str, Value] = field(default_factory=dict)
    problem: str = ""  # why it could not be decoded fully
    tp: TpMessage | None = None  # set for reassembled TP payloads
    raw_name: str = ""  # a name for frames our DBC does not describe

    @property
    def name(self) -> str:
        if self.message is not None:
            return self.message.name
        return self.raw_name

    @property
    def dlc(self) -> int:
        return len(self.data)

    def id_text(self) -> str:
        return f"{self.arbitration_id:08X}" if self.extended else f"{self.arbitration_id:03X}"


@dataclass(slots=True)
class Capture:
    path: str
    protocol: str
    codec: Codec
    read: ReadResult
    records: list[Record]  # protocol messages in capture order (TP payloads at their last packet)
    tp_frames: list[Record]  # TP.CM / TP.DT frames themselves (GB/T)
    tp_problems: list[TpProblem]
    foreign: dict[str, int]  # frames outside the protocol: id text -> count
    timestamps: str
    t0: float  # capture time of the first protocol frame (times in records are relative to it)

    @property
    def duration(self) -> float:
        return self.records[-1].time if self.records else 0.0


# ----------------------------------------------------------------------------------- detection


def _chademo_side(codec: Codec, frame: Frame) -> str | None:
    if frame.is_extended_id:
        return None
    mc = codec.by_id(frame.arbitration_id, False)
    if mc is not None:
        senders = {s.upper() for s in mc.senders}
        return CHARGER if "CHARGER" in senders else VEHICLE if senders else None
    return CHADEMO_EXTRA_SENDERS.get(frame.arbitration_id)


def _gbt_side(frame: Frame) -> str | None:
    if not frame.is_extended_id:
        return None
    _p, _pgn, dest, source = split_id(frame.arbitration_id)
    if source == CHARGER_ADDRESS and dest == BMS_ADDRESS:
        return CHARGER
    if source == BMS_ADDRESS and dest == CHARGER_ADDRESS:
        return VEHICLE
    return None


def _generic_side(codec: Codec, frame: Frame) -> str | None:
    mc = codec.by_id(frame.arbitration_id, frame.is_extended_id)
    if mc is None:
        return None
    senders = " ".join(mc.senders).upper()
    if "CHARGER" in senders or "EVSE" in senders:
        return CHARGER
    return VEHICLE if senders else None


def available_protocols() -> list[str]:
    """Protocols whose DBC is installed (CCS only once ``dbc/ccs.dbc`` exists)."""
    out = []
    for name in PROTOCOLS:
        try:
            load_dbc(DBC_NAMES[name])
        except DbcError:
            continue
        out.append(name)
    return out


def detect_protocol(frames: Sequence[Frame]) -> str | None:
    """The protocol most frames belong to (``None`` when no frame belongs to any)."""
    scores: dict[str, int] = {}
    for name in available_protocols():
        codec = load_dbc(DBC_NAMES[name])
        if name == "chademo":
            n = sum(1 for f in frames if not f.is_extended_id and codec.by_id(f.arbitration_id) is not None)
        elif name == "gbt":
            n = sum(1 for f in frames if _gbt_side(f) is not None)
        else:
            n = sum(1 for f in frames if codec.by_id(f.arbitration_id, f.is_extended_id) is not None)
        scores[name] = n
    best = max(scores.items(), key=lambda kv: kv[1], default=("", 0))
    return best[0] if best[1] > 0 else None


def timestamp_quality(frames: Sequence[Frame]) -> str:
    """``none`` (all equal), ``coarse`` (cyclic frames irregular: a logger dropping frames) or ``good``."""
    if len(frames) < 2 or frames[-1].timestamp - frames[0].timestamp <= 0:
        return "none"
    last: dict[tuple[int, bool], float] = {}
    intervals: dict[tuple[int, bool], list[float]] = {}
    for f in frames:
        key = (f.arbitration_id, f.is_extended_id)
        if key in last:
            intervals.setdefault(key, []).append(f.timestamp - last[key])
        last[key] = f.timestamp
    shares = []
    for values in intervals.values():
        if len(values) < 20:
            continue
        m = median(values)
        if m <= 0:
            continue
        shares.append(sum(1 for v in values if v > 1.5 * m or v < 0.5 * m) / len(values))
    if shares and median(shares) > COARSE_IRREGULAR_SHARE:
        return "coarse"
    return "good"


# ------------------------------------------------------------------------------------- loading


def _decode(mc: MessageCodec, data: bytes) -> tuple[dict[str, Value], str]:
    problem = ""
    if len(data) < mc.length:
        problem = f"{len(data)} data bytes, the DBC says {mc.length}"
    elif len(data) > mc.length:
        problem = f"{len(data)} data bytes, the DBC says {mc.length} (extra bytes ignored)"
    return mc.decode(data, allow_truncated=True), problem


def load_capture(path: Path | str, protocol: str = "auto", log_format: str | None = None) -> Capture:
    """Read, detect, decode.  ``protocol``: ``auto`` or one of :data:`PROTOCOLS`."""
    result = read_log(path, format=log_format)
    return capture_from(result, protocol)


def capture_from(result: ReadResult, protocol: str = "auto") -> Capture:
    frames = result.frames
    proto = protocol.lower().replace("/", "").replace("-", "")
    if proto == "auto":
        found = detect_protocol(frames)
        if found is None:
            raise UsageError(
                f"{result.path}: no CHAdeMO or GB/T 27930 frames found in {len(frames)} frames "
                f"(give --protocol to force one)"
            )
        proto = found
    if proto not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; expected auto, {', '.join(PROTOCOLS)}")
    try:
        codec = load_dbc(DBC_NAMES[proto])
    except DbcError as err:
        raise UsageError(f"protocol {proto}: no DBC available yet ({err})") from err
    records: list[Record] = []
    tp_frames: list[Record] = []
    problems: list[TpProblem] = []
    foreign: dict[str, int] = {}
    tp = PassiveTransport()
    info = result.info
    for i, f in enumerate(frames):
        line = info[i].line if info else 0
        if proto == "chademo":
            side = _chademo_side(codec, f)
        elif proto == "gbt":
            side = _gbt_side(f)
        else:
            side = _generic_side(codec, f)
        if side is None:
            foreign[f.id_text()] = foreign.get(f.id_text(), 0) + 1
            continue
        t = f.timestamp
        if proto == "gbt" and PassiveTransport.is_tp(f):
            pgn = split_id(f.arbitration_id)[1]
            tp_frames.append(
                Record(
                    i,
                    t,
                    f.arbitration_id,
                    True,
                    f.data,
                    side,
                    line,
                    raw_name="TP.CM" if pgn == PGN_TP_CM else "TP.DT",
                )
            )
            for res in tp.feed(f, t, i):
                if isinstance(res, TpProblem):
                    problems.append(res)
                else:
                    records.append(_tp_record(codec, res, side, line))
            continue
        mc = codec.by_id(f.arbitration_id, f.is_extended_id)
        if mc is None and proto == "gbt":
            mc = _gbt_message(codec, f)
        rec = Record(i, t, f.arbitration_id, f.is_extended_id, f.data, side, line)
        if mc is not None:
            rec.message = mc
            rec.values, rec.problem = _decode(mc, f.data)
        else:
            rec.raw_name = CHADEMO_EXTRA_NAMES.get(f.arbitration_id, "") if proto == "chademo" else ""
        records.append(rec)
    if frames:
        problems += [p for p in tp.finish(frames[-1].timestamp, len(frames) - 1) if isinstance(p, TpProblem)]
    # Times count from the first frame our DBC describes (the field-log README's convention).
    t0 = next((r.time for r in records if r.message is not None), records[0].time if records else 0.0)
    for r in (*records, *tp_frames):
        r.time -= t0
    problems = [
        replace(p, time=p.time - t0, rts_time=None if p.rts_time is None else p.rts_time - t0)
        for p in problems
    ]
    return Capture(
        path=result.path,
        protocol=proto,
        codec=codec,
        read=result,
        records=records,
        tp_frames=tp_frames,
        tp_problems=problems,
        foreign=foreign,
        timestamps=timestamp_quality(frames),
        t0=t0,
    )


def _gbt_message(codec: Codec, frame: Frame) -> MessageCodec | None:
    """A GB/T message by PGN (a sender may use another priority than the DBC's identifier)."""
    _p, pgn, dest, source = split_id(frame.arbitration_id)
    for mc in codec.messages:
        _mp, mpgn, mdest, msource = split_id(mc.frame_id)
        if mpgn == pgn and mdest == dest and msource == source:
            return mc
    return None


def _tp_record(codec: Codec, msg: TpMessage, side: str, line: int) -> Record:
    virtual_id = make_id(msg.pgn, msg.dest, msg.source, 7)
    rec = Record(msg.end_index, msg.end, virtual_id, True, msg.payload, side, line, tp=msg)
    mc = codec.by_id(virtual_id, True)
    if mc is None:
        rec.raw_name = f"PGN 0x{msg.pgn:04X}"
        return rec
    rec.message = mc
    rec.values, problem = _decode(mc, msg.payload)
    # BMV/BMT/BSP are as long as the pack has cells/probes; BRM is 41 (table) or 49 (every vehicle) bytes
    if mc.name in ("BMV", "BMT", "BSP") or (mc.name == "BRM" and len(msg.payload) in (41, 49)):
        problem = ""
    rec.problem = problem
    return rec


__all__ = [
    "PGN_TP_CM",
    "PGN_TP_DT",
    "PROTOCOLS",
    "Capture",
    "Record",
    "available_protocols",
    "capture_from",
    "detect_protocol",
    "load_capture",
    "timestamp_quality",
]
