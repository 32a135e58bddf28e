"""SAE J1939-21 transport protocol, connection mode (TP.CM RTS/CTS/EndOfMsgAck/Abort + TP.DT), sans-I/O.

GB/T 27930 carries BRM, BCP, BCS, BMV, BMT and BSP (9...1785 bytes) this way.  A
:class:`TransportEndpoint` is one node address; it runs any number of concurrent sessions, at most one
per peer and direction (J1939-21 allows one connection-mode session per originator/recipient pair).
It is fed frames and timer calls, each with ``now`` (seconds), returns the frames to send, reports
completed and failed transfers as events (:meth:`TransportEndpoint.drain_events`) and tells the driver
its next deadline.  Nothing here touches a bus or a clock.

Choices where J1939-21 leaves room (documented in the tests):

* The receiver answers an RTS with one CTS for ``min(own limit, RTS byte 5, remaining)`` packets;
  the default own limit is "none", as real GB/T chargers do (``10 31 00 07 FF …`` → ``11 07 01 …``).
* A missing packet is asked for again with a CTS for the missing run once the window's last packet
  arrived (at most ``max_retransmits`` times per session, then Abort reason 5).  If the window's last
  packet itself never arrives, T1 expires and the receiver aborts (reason 3).
* Duplicate packets (already received) are ignored; a packet outside the open window is a bad
  sequence number (Abort reason 7), any packet while no window is open is unexpected (reason 6).
* A new RTS from a peer that still has an open session towards us replaces that session (the
  originator gave up on it; GB/T BMSs restart BCS every 250 ms) and reports the old one as failed.
* BAM (broadcast) is not used by GB/T 27930 and is ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from ...errors import LocalProtocolError
from ...frames import Frame

PGN_TP_CM: Final = 0xEC00  # connection management
PGN_TP_DT: Final = 0xEB00  # data transfer
BYTES_PER_PACKET: Final = 7
MAX_MESSAGE_SIZE: Final = 1785  # 255 packets x 7 bytes
NO_LIMIT: Final = 0xFF  # RTS byte 5: no limit on packets per CTS
GLOBAL_ADDRESS: Final = 0xFF


@dataclass(frozen=True, slots=True)
class TpTiming:
    """The timing table: every J1939-21 timer in seconds, with its source.

    GB/T 27930 states none of them; gbt27930.md section 5 lists these SAE J1939-21 defaults.
    """

    tr: float = 0.200  # responder's max response time; J1939-21 5.10.2.4 Tr (we answer within the call)
    th: float = 0.500  # a holding receiver repeats CTS(0) this often; J1939-21 5.10.2.4 Th
    t1: float = 0.750  # receiver: gap between two TP.DT of an open window; J1939-21 5.10.2.4 T1
    t2: float = 1.250  # receiver: its CTS until the first TP.DT; J1939-21 5.10.2.4 T2
    t3: float = 1.250  # originator: RTS / last TP.DT of a window until CTS or EndOfMsgAck; J1939-21 T3
    t4: float = 1.050  # originator: CTS(0) (hold) until the next CTS; J1939-21 5.10.2.4 T4


DEFAULT_TIMING: Final = TpTiming()


class Control(enum.IntEnum):
    """TP.CM control byte."""

    RTS = 0x10
    CTS = 0x11
    END_OF_MSG_ACK = 0x13
    BAM = 0x20
    ABORT = 0xFF


class AbortReason(enum.IntEnum):
    """Connection Abort reasons of SAE J1939-21 (byte 2 of TP.CM Abort)."""

    BUSY = 1  # already in one or more sessions and cannot support another
    RESOURCES = 2  # system resources were needed for another task
    TIMEOUT = 3
    CTS_WHILE_SENDING = 4  # CTS received while a data transfer is in progress
    MAX_RETRANSMITS = 5  # maximum retransmit request limit reached
    UNEXPECTED_DT = 6  # unexpected data transfer packet
    BAD_SEQUENCE = 7  # bad sequence number
    DUPLICATE_SEQUENCE = 8  # duplicate sequence number
    TOO_LARGE = 9  # total message size > 1785 bytes
    NOT_SPECIFIED = 0xFF  # what GB/T BMSs send (``FF FF FF FF FF …``)


def reason_text(code: int) -> str:
    try:
        return AbortReason(code).name.lower()
    except ValueError:
        return f"reason {code}"


def make_id(pgn: int, dest: int, source: int, priority: int = 7) -> int:
    """29-bit J1939 identifier of a PDU1 (destination-specific) PGN."""
    return ((priority & 0x7) << 26) | ((pgn & 0x3FF00) << 8) | ((dest & 0xFF) << 8) | (source & 0xFF)


def split_id(can_id: int) -> tuple[int, int, int, int]:
    """``(priority, pgn, dest, source)`` of a 29-bit identifier; PDU2 PGNs get dest 0xFF (global)."""
    priority, dp, source = (can_id >> 26) & 7, (can_id >> 24) & 3, can_id & 0xFF
    pf, ps = (can_id >> 16) & 0xFF, (can_id >> 8) & 0xFF
    if pf < 0xF0:
        return priority, (dp << 16) | (pf << 8), ps, source
    return priority, (dp << 16) | (pf << 8) | ps, GLOBAL_ADDRESS, source


@dataclass(frozen=True, slots=True)
class Rts:
    size: int
    packets: int
    max_packets: int  # per CTS; 0xFF = no limit
    pgn: int


@dataclass(frozen=True, slots=True)
class Cts:
    packets: int  # 0 = hold the connection open
    next_seq: int
    pgn: int


@dataclass(frozen=True, slots=True)
class EndOfMsgAck:
    size: int
    packets: int
    pgn: int


@dataclass(frozen=True, slots=True)
class Abort:
    reason: int
    pgn: int


@dataclass(frozen=True, slots=True)
class Bam:
    size: int
    packets: int
    pgn: int


TpCm = Rts | Cts | EndOfMsgAck | Abort | Bam


def parse_tp_cm(data: bytes) -> TpCm:
    """Parse the 8 data bytes of a TP.CM frame; ``ValueError`` if short or of an unknown kind."""
    if len(data) < 8:
        raise ValueError(f"TP.CM needs 8 data bytes, got {len(data)}")
    size, pgn = data[1] | data[2] << 8, int.from_bytes(data[5:8], "little")
    control = data[0]
    if control == Control.RTS:
        return Rts(size, data[3], data[4], pgn)
    if control == Control.CTS:
        return Cts(data[1], data[2], pgn)
    if control == Control.END_OF_MSG_ACK:
        return EndOfMsgAck(size, data[3], pgn)
    if control == Control.ABORT:
        return Abort(data[1], pgn)
    if control == Control.BAM:
        return Bam(size, data[3], pgn)
    raise ValueError(f"unknown TP.CM control byte 0x{control:02X}")


def format_tp_cm(msg: TpCm) -> bytes:
    """The 8 data bytes of a TP.CM frame (unused bytes 0xFF)."""
    pgn = msg.pgn.to_bytes(3, "little")
    if isinstance(msg, Rts):
        head = [Control.RTS, msg.size & 0xFF, msg.size >> 8, msg.packets, msg.max_packets]
    elif isinstance(msg, Cts):
        head = [Control.CTS, msg.packets, msg.next_seq, 0xFF, 0xFF]
    elif isinstance(msg, EndOfMsgAck):
        head = [Control.END_OF_MSG_ACK, msg.size & 0xFF, msg.size >> 8, msg.packets, 0xFF]
    elif isinstance(msg, Abort):
        head = [Control.ABORT, msg.reason, 0xFF, 0xFF, 0xFF]
    else:
        head = [Control.BAM, msg.size & 0xFF, msg.size >> 8, msg.packets, 0xFF]
    return bytes(head) + pgn


def packet_count(size: int) -> int:
    return -(-size // BYTES_PER_PACKET)


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A complete message arrived (EndOfMsgAck sent)."""

    pgn: int
    source: int
    payload: bytes
    time: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class TransferDone:
    """A message we sent was acknowledged with EndOfMsgAck."""

    pgn: int
    dest: int
    size: int
    time: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class TransferFailed:
    """A session ended without the message: ``code`` is the J1939-21 abort reason sent or received."""

    pgn: int
    peer: int
    reason: str
    code: int = AbortReason.NOT_SPECIFIED
    outgoing: bool = False  # we were the originator
    by_peer: bool = False  # the peer aborted (or abandoned) the session, not us
    time: float = field(default=0.0, compare=False)


TpEvent = MessageReceived | TransferDone | TransferFailed


@dataclass(slots=True, eq=False)
class _Session:
    pgn: int
    peer: int
    timer: str = field(default="", init=False)
    deadline: float | None = field(default=None, init=False)

    def arm(self, timer: str, deadline: float) -> None:
        self.timer, self.deadline = timer, deadline


@dataclass(slots=True, eq=False)
class _Outbound(_Session):
    payload: bytes = b""
    sent_all: bool = False

    @property
    def packets(self) -> int:
        return packet_count(len(self.payload))


@dataclass(slots=True, eq=False)
class _Inbound(_Session):
    size: int = 0
    window: int = 255  # packets per CTS
    data: bytearray = field(default_factory=bytearray)
    have: set[int] = field(default_factory=set)
    highest: int = 0
    first: int = 0  # open window [first, last]; 0 = none
    last: int = 0
    holding: bool = False
    retransmits: int = 0

    @property
    def packets(self) -> int:
        return packet_count(self.size)

    def first_missing(self) -> int:
        have, packets = self.have, self.packets
        if len(have) >= packets:
            return 0  # complete (the common case when a window ends)
        return next((seq for seq in range(1, packets + 1) if seq not in have), 0)


class TransportEndpoint:
    """J1939-21 connection-mode transport for one node address, both directions, many peers.

    ``max_packets_per_cts``: our receive window (None = all remaining packets, as GB/T chargers do);
    ``rts_max_packets``: byte 5 of our RTS (0xFF = no limit); ``accept_pgns``: PGNs we accept an RTS
    for (None = all; others are refused with an Abort).
    """

    def __init__(
        self,
        own_address: int,
        priority: int = 7,
        *,
        max_packets_per_cts: int | None = None,
        rts_max_packets: int = NO_LIMIT,
        accept_pgns: Collection[int] | None = None,
        max_retransmits: int = 2,
        timing: TpTiming = DEFAULT_TIMING,
    ) -> None:
        if not 0 <= own_address < GLOBAL_ADDRESS - 1:
            raise ValueError(f"own address 0x{own_address:X} is not a unicast J1939 address")
        if not 0 <= priority <= 7:
            raise ValueError(f"priority {priority} is not 0..7")
        if max_packets_per_cts is not None and not 1 <= max_packets_per_cts <= 255:
            raise ValueError(f"max_packets_per_cts {max_packets_per_cts} is not 1..255")
        if not 1 <= rts_max_packets <= 255:
            raise ValueError(f"rts_max_packets {rts_max_packets} is not 1..255")
        self.own_address = own_address
        self.priority = priority
        self.max_packets_per_cts = max_packets_per_cts
        self.rts_max_packets = rts_max_packets
        self.accept_pgns = None if accept_pgns is None else frozenset(accept_pgns)
        self.max_retransmits = max_retransmits
        self.timing = timing
        self._out: dict[int, _Outbound] = {}
        self._in: dict[int, _Inbound] = {}
        self._held: set[int] = set()
        self._events: list[TpEvent] = []
        self._rx_ids: dict[int, tuple[int, int, int]] = {}  # CAN ID -> (pgn, dest, source), cached
        self._tx_ids: dict[tuple[int, int], int] = {}  # (PGN, dest) -> CAN ID, cached

    # -- public API --

    def send(self, pgn: int, payload: bytes, dest: int, now: float) -> list[Frame]:
        """Start sending ``payload`` (9…1785 bytes) to ``dest``: returns the RTS."""
        size = len(payload)
        if not 8 < size <= MAX_MESSAGE_SIZE:
            raise LocalProtocolError(f"TP carries 9..{MAX_MESSAGE_SIZE} bytes, PGN 0x{pgn:04X} has {size}")
        if not 0 <= dest < GLOBAL_ADDRESS or dest == self.own_address:
            raise LocalProtocolError(f"TP destination 0x{dest:X} is not a peer address")
        if dest in self._out:
            raise LocalProtocolError(f"already sending PGN 0x{self._out[dest].pgn:04X} to 0x{dest:02X}")
        s = _Outbound(pgn, dest, bytes(payload))
        self._out[dest] = s
        s.arm("T3", now + self.timing.t3)
        return [self._cm(dest, Rts(size, s.packets, self.rts_max_packets, pgn), now)]

    def receive(self, frame: Frame, now: float) -> list[Frame]:
        """Handle one received frame (anything that is not TP to us is ignored); returns frames to send."""
        if not frame.is_extended_id:
            return []
        ident = self._rx_ids.get(frame.arbitration_id)
        if ident is None:
            _priority, pgn, dest, source = split_id(frame.arbitration_id)
            ident = self._rx_ids[frame.arbitration_id] = (pgn, dest, source)
        pgn, dest, source = ident
        if dest != self.own_address or source == self.own_address:
            return []
        if pgn == PGN_TP_DT:
            return self._on_dt(source, frame.data, now)
        if pgn != PGN_TP_CM:
            return []
        try:
            msg = parse_tp_cm(frame.data)
        except ValueError:
            return []
        if isinstance(msg, Rts):
            return self._on_rts(source, msg, now)
        if isinstance(msg, Cts):
            return self._on_cts(source, msg, now)
        if isinstance(msg, EndOfMsgAck):
            self._on_end_of_msg_ack(source, msg, now)
        elif isinstance(msg, Abort):
            self._on_abort(source, msg, now)
        return []

    def next_deadline(self) -> float | None:
        if not self._out and not self._in:
            return None  # the common case, asked on every step of a simulated session
        deadlines = [s.deadline for s in (*self._out.values(), *self._in.values()) if s.deadline is not None]
        return min(deadlines, default=None)

    def on_timer(self, now: float) -> list[Frame]:
        """Run every timer due at ``now`` (a timer expires when ``now >= deadline``)."""
        frames: list[Frame] = []
        for s in list(self._in.values()):
            if s.deadline is None or now < s.deadline:
                continue
            if s.timer == "Th":
                s.arm("Th", now + self.timing.th)
                frames.append(self._cm(s.peer, Cts(0, 0xFF, s.pgn), now))
            else:
                frames += self._abort(s, AbortReason.TIMEOUT, f"{s.timer} timeout waiting for TP.DT", now)
        for o in list(self._out.values()):
            if o.deadline is not None and now >= o.deadline:
                what = "CTS after a hold" if o.timer == "T4" else "CTS or EndOfMsgAck"
                frames += self._abort(o, AbortReason.TIMEOUT, f"{o.timer} timeout waiting for {what}", now)
        return frames

    def hold(self, peer: int) -> None:
        """Hold transfers from ``peer``: its next CTS is CTS(0), repeated every Th until :meth:`resume`."""
        self._held.add(peer)

    def resume(self, peer: int, now: float) -> list[Frame]:
        """End a hold; if a session is waiting on it, send its CTS now."""
        self._held.discard(peer)
        s = self._in.get(peer)
        return self._next_window(s, now) if s is not None and s.holding else []

    def abort(self, peer: int, now: float, reason: int = AbortReason.RESOURCES) -> list[Frame]:
        """Abort every session with ``peer`` (both directions)."""
        frames: list[Frame] = []
        for s in (self._out.get(peer), self._in.get(peer)):
            if s is not None:
                frames += self._abort(s, reason, "aborted locally", now)
        return frames

    def sending_to(self, peer: int) -> bool:
        return peer in self._out

    def receiving_from(self, peer: int) -> bool:
        return peer in self._in

    def drain_events(self) -> list[TpEvent]:
        events, self._events = self._events, []
        return events

    # -- receiver side --

    def _on_rts(self, source: int, msg: Rts, now: float) -> list[Frame]:
        old = self._in.pop(source, None)
        if old is not None:
            self._fail(old, "superseded by a new RTS", AbortReason.NOT_SPECIFIED, by_peer=True, now=now)
        refusal = ""
        code: int = AbortReason.NOT_SPECIFIED
        if self.accept_pgns is not None and msg.pgn not in self.accept_pgns:
            refusal = "PGN not accepted over TP"
        elif msg.size > MAX_MESSAGE_SIZE:
            refusal, code = f"size {msg.size} > {MAX_MESSAGE_SIZE}", AbortReason.TOO_LARGE
        elif msg.size <= 8 or msg.packets != packet_count(msg.size):
            refusal = f"inconsistent RTS: {msg.size} bytes in {msg.packets} packets"
        if refusal:
            self._events.append(TransferFailed(msg.pgn, source, f"RTS refused: {refusal}", code, time=now))
            return [self._cm(source, Abort(code, msg.pgn), now)]
        limit = min(self.max_packets_per_cts or 255, msg.max_packets or 255)
        s = _Inbound(msg.pgn, source, msg.size, limit, bytearray(b"\xff" * (msg.packets * BYTES_PER_PACKET)))
        self._in[source] = s
        return self._next_window(s, now)

    def _next_window(self, s: _Inbound, now: float) -> list[Frame]:
        """After the RTS or a finished window: EndOfMsgAck, CTS(0) hold, a retransmit CTS or the next CTS."""
        missing = s.first_missing()
        if not missing:
            del self._in[s.peer]
            self._events.append(MessageReceived(s.pgn, s.peer, bytes(s.data[: s.size]), now))
            return [self._cm(s.peer, EndOfMsgAck(s.size, s.packets, s.pgn), now)]
        s.first = s.last = 0
        if s.peer in self._held:
            s.holding = True
            s.arm("Th", now + self.timing.th)
            return [self._cm(s.peer, Cts(0, 0xFF, s.pgn), now)]
        s.holding = False
        if missing < s.highest:  # a gap: ask again for the missing run
            s.retransmits += 1
            if s.retransmits > self.max_retransmits:
                return self._abort(s, AbortReason.MAX_RETRANSMITS, f"packet {missing} still missing", now)
            run = 1
            while missing + run <= s.packets and missing + run not in s.have:
                run += 1
            count = min(run, s.window)
        else:
            count = min(s.window, s.packets - missing + 1)
        s.first, s.last = missing, missing + count - 1
        s.arm("T2", now + self.timing.t2)
        return [self._cm(s.peer, Cts(count, missing, s.pgn), now)]

    def _on_dt(self, source: int, data: bytes, now: float) -> list[Frame]:
        s = self._in.get(source)
        if s is None or not data:
            return []  # no session: J1939-21 says ignore
        seq = data[0]
        if seq in s.have:
            return []  # duplicate (e.g. overlap with a retransmission): ignored
        if not s.first:
            return self._abort(s, AbortReason.UNEXPECTED_DT, f"TP.DT {seq} while no window is open", now)
        if not s.first <= seq <= s.last:
            why = f"TP.DT {seq} outside window {s.first}..{s.last}"
            return self._abort(s, AbortReason.BAD_SEQUENCE, why, now)
        start = (seq - 1) * BYTES_PER_PACKET
        s.data[start : start + BYTES_PER_PACKET] = data[1:8].ljust(BYTES_PER_PACKET, b"\xff")
        s.have.add(seq)
        s.highest = max(s.highest, seq)
        if s.last in s.have:
            return self._next_window(s, now)
        s.arm("T1", now + self.timing.t1)
        return []

    # -- originator side --

    def _on_cts(self, source: int, msg: Cts, now: float) -> list[Frame]:
        s = self._out.get(source)
        if s is None or msg.pgn != s.pgn:
            return []  # J1939-21: a CTS outside a session is ignored
        if msg.packets == 0:
            s.arm("T4", now + self.timing.t4)
            return []
        if not 1 <= msg.next_seq <= s.packets:
            why = f"CTS asks for packet {msg.next_seq} of {s.packets}"
            return self._abort(s, AbortReason.BAD_SEQUENCE, why, now)
        last = min(s.packets, msg.next_seq + msg.packets - 1)
        frames = [self._dt(s, seq, now) for seq in range(msg.next_seq, last + 1)]
        s.sent_all = s.sent_all or last == s.packets
        s.arm("T3", now + self.timing.t3)
        return frames

    def _on_end_of_msg_ack(self, source: int, msg: EndOfMsgAck, now: float) -> None:
        s = self._out.get(source)
        if s is None or msg.pgn != s.pgn:
            return
        del self._out[source]
        if s.sent_all:
            self._events.append(TransferDone(s.pgn, source, len(s.payload), now))
        else:
            self._fail(s, "EndOfMsgAck before the last packet was sent", AbortReason.NOT_SPECIFIED, True, now)

    # -- both --

    def _on_abort(self, source: int, msg: Abort, now: float) -> None:
        for table in (self._out, self._in):
            s = table.get(source)
            if s is not None and s.pgn == msg.pgn:
                del table[source]
                self._fail(s, f"aborted by peer ({reason_text(msg.reason)})", msg.reason, True, now)

    def _abort(self, s: _Session, code: int, why: str, now: float) -> list[Frame]:
        if isinstance(s, _Outbound):
            self._out.pop(s.peer, None)
        else:
            self._in.pop(s.peer, None)
        self._fail(s, why, code, False, now)
        return [self._cm(s.peer, Abort(code, s.pgn), now)]

    def _fail(self, s: _Session, why: str, code: int, by_peer: bool, now: float) -> None:
        outgoing = isinstance(s, _Outbound)
        self._events.append(TransferFailed(s.pgn, s.peer, why, code, outgoing, by_peer, now))

    def _id(self, pgn: int, dest: int) -> int:
        can_id = self._tx_ids.get((pgn, dest))
        if can_id is None:
            can_id = self._tx_ids[(pgn, dest)] = make_id(pgn, dest, self.own_address, self.priority)
        return can_id

    def _cm(self, dest: int, msg: TpCm, now: float) -> Frame:
        return Frame(self._id(PGN_TP_CM, dest), format_tp_cm(msg), True, now)

    def _dt(self, s: _Outbound, seq: int, now: float) -> Frame:
        chunk = s.payload[(seq - 1) * BYTES_PER_PACKET : seq * BYTES_PER_PACKET]
        data = bytes([seq]) + chunk.ljust(BYTES_PER_PACKET, b"\xff")  # last packet padded with 0xFF
        return Frame(self._id(PGN_TP_DT, s.peer), data, True, now)
