"""A passive (listening-only) J1939-21 connection-mode reassembler for captures.

:class:`~charger_sim.protocols.gbt.transport.TransportEndpoint` is a node: it answers RTS with CTS.  A
capture has both nodes already talking, so here we only watch: every RTS opens a transfer between its
originator and recipient, CTS/TP.DT/EndOfMsgAck/Abort advance or close it, and the transfer ends as a
reassembled message or as a problem ("RTS without CTS", an Abort, missing packets).  The frame parsing
(``parse_tp_cm``, ``split_id``, ``packet_count``) is the transport module's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..frames import Frame
from ..protocols.gbt.transport import (
    BYTES_PER_PACKET,
    PGN_TP_CM,
    PGN_TP_DT,
    Abort,
    Bam,
    Cts,
    EndOfMsgAck,
    Rts,
    parse_tp_cm,
    reason_text,
    split_id,
)

NO_CTS = "no_cts"
ABORTED = "aborted"
INCOMPLETE = "incomplete"
UNEXPECTED = "unexpected"


@dataclass(frozen=True, slots=True)
class TpMessage:
    """A reassembled TP message (``payload`` cut to the RTS size)."""

    pgn: int
    source: int
    dest: int
    payload: bytes
    start: float
    end: float
    start_index: int
    end_index: int
    window: int  # RTS byte 5: packets per CTS the originator allows
    cts_count: int


@dataclass(frozen=True, slots=True)
class TpProblem:
    """A transfer that did not deliver its message, or a TP frame outside any transfer."""

    kind: str  # NO_CTS, ABORTED, INCOMPLETE, UNEXPECTED
    pgn: int
    source: int  # the originator
    dest: int
    time: float
    index: int
    text: str
    rts_time: float | None = None


TpResult = TpMessage | TpProblem


@dataclass(slots=True)
class _Transfer:
    rts: Rts
    source: int
    dest: int
    start: float
    start_index: int
    data: bytearray = field(default_factory=bytearray)
    have: set[int] = field(default_factory=set)
    cts_count: int = 0
    delivered: bool = False


class PassiveTransport:
    """Feed every frame of a capture in order; collect reassembled messages and transfer problems."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, int], _Transfer] = {}

    @staticmethod
    def is_tp(frame: Frame) -> bool:
        if not frame.is_extended_id:
            return False
        pgn = split_id(frame.arbitration_id)[1]
        return pgn in (PGN_TP_CM, PGN_TP_DT)

    def feed(self, frame: Frame, time: float, index: int) -> list[TpResult]:
        if not self.is_tp(frame):
            return []
        _prio, pgn, dest, source = split_id(frame.arbitration_id)
        if pgn == PGN_TP_DT:
            return self._on_dt(source, dest, frame.data, time, index)
        try:
            msg = parse_tp_cm(frame.data)
        except ValueError as err:
            return [TpProblem(UNEXPECTED, 0, source, dest, time, index, f"unreadable TP.CM: {err}")]
        if isinstance(msg, Rts):
            out = self._close((source, dest), time, index, "superseded by a new RTS")
            buf = bytearray(b"\xff" * (msg.packets * BYTES_PER_PACKET))
            self._open[(source, dest)] = _Transfer(msg, source, dest, time, index, buf)
            return out
        if isinstance(msg, Cts):
            t = self._open.get((dest, source))
            if t is not None and t.rts.pgn == msg.pgn:
                t.cts_count += 1
            return []
        if isinstance(msg, EndOfMsgAck):
            t = self._open.get((dest, source))
            if t is not None and t.rts.pgn == msg.pgn and t.delivered:
                del self._open[(dest, source)]
            return []
        if isinstance(msg, Abort):
            for key, by in (((source, dest), "originator"), ((dest, source), "recipient")):
                t = self._open.get(key)
                if t is not None and t.rts.pgn == msg.pgn:
                    del self._open[key]
                    if t.delivered:
                        return []
                    if by == "originator" and t.cts_count == 0:
                        return [
                            self._no_cts(t, time, index, f"originator aborted ({reason_text(msg.reason)})")
                        ]
                    return [
                        TpProblem(
                            ABORTED,
                            t.rts.pgn,
                            t.source,
                            t.dest,
                            time,
                            index,
                            f"aborted by the {by} ({reason_text(msg.reason)})",
                            t.start,
                        )
                    ]
            return [
                TpProblem(
                    ABORTED,
                    msg.pgn,
                    source,
                    dest,
                    time,
                    index,
                    f"Abort ({reason_text(msg.reason)}) outside any transfer",
                )
            ]
        if isinstance(msg, Bam):
            return []  # broadcast: not used by GB/T 27930
        return []

    def finish(self, time: float, index: int) -> list[TpResult]:
        out: list[TpResult] = []
        for key in list(self._open):
            out += self._close(key, time, index, "capture ended")
        return out

    # -- internals --

    def _on_dt(self, source: int, dest: int, data: bytes, time: float, index: int) -> list[TpResult]:
        t = self._open.get((source, dest))
        if t is None or not data:
            return [TpProblem(UNEXPECTED, 0, source, dest, time, index, "TP.DT outside any transfer")]
        seq = data[0]
        if not 1 <= seq <= t.rts.packets:
            return [
                TpProblem(
                    UNEXPECTED,
                    t.rts.pgn,
                    source,
                    dest,
                    time,
                    index,
                    f"TP.DT sequence {seq} outside 1..{t.rts.packets}",
                    t.start,
                )
            ]
        start = (seq - 1) * BYTES_PER_PACKET
        t.data[start : start + BYTES_PER_PACKET] = data[1:8].ljust(BYTES_PER_PACKET, b"\xff")
        t.have.add(seq)
        if len(t.have) == t.rts.packets and not t.delivered:
            t.delivered = True
            return [
                TpMessage(
                    t.rts.pgn,
                    source,
                    dest,
                    bytes(t.data[: t.rts.size]),
                    t.start,
                    time,
                    t.start_index,
                    index,
                    t.rts.max_packets,
                    t.cts_count,
                )
            ]
        return []

    def _no_cts(self, t: _Transfer, time: float, index: int, why: str) -> TpProblem:
        return TpProblem(
            NO_CTS,
            t.rts.pgn,
            t.source,
            t.dest,
            time,
            index,
            f"RTS for {t.rts.size} bytes (window {t.rts.max_packets}) never got a CTS; {why}",
            t.start,
        )

    def _close(self, key: tuple[int, int], time: float, index: int, why: str) -> list[TpResult]:
        t = self._open.pop(key, None)
        if t is None or t.delivered:
            return []
        if t.cts_count == 0:
            return [self._no_cts(t, time, index, why)]
        missing = t.rts.packets - len(t.have)
        return [
            TpProblem(
                INCOMPLETE,
                t.rts.pgn,
                t.source,
                t.dest,
                time,
                index,
                f"{missing} of {t.rts.packets} packets missing; {why}",
                t.start,
            )
        ]
