"""Helpers shared by the GB/T charger and BMS cores: routing received frames by PGN, 2-bit flag sets,
the charge-current sign convention and CTS time stamps.  Layouts all come from ``dbc/gbt27930.dbc``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ...codec import Codec, MessageCodec, Value
from ...frames import Frame
from .transport import PGN_TP_CM, PGN_TP_DT, Control, split_id

# PGN of each message carried by the J1939-21 transport (§3, §5).
TP_MESSAGES: Final = {
    0x0200: "BRM",
    0x0600: "BCP",
    0x1100: "BCS",
    0x1500: "BMV",
    0x1600: "BMT",
    0x1700: "BSP",
}
TP_PGN: Final = {name: pgn for pgn, name in TP_MESSAGES.items()}

CHARGER_TX: Final = ("CHM", "CRM", "CTS", "CML", "CRO", "CCS", "CST", "CSD", "CEM")
BMS_TX: Final = ("BHM", "BRO", "BCL", "BSM", "BST", "BSD", "BEM")

UNTRUSTED: Final = 2  # 2-bit field value "10": the receiver keeps its previous state (§1)
NOT_AVAILABLE: Final = 3
NOT_AVAILABLE_V: Final = 6553.5  # a 0.1 V field with every bit set: "not provided" (§1)


@dataclass(frozen=True, slots=True)
class Route:
    """What a received frame is: transport (TP.CM / TP.DT) or one single-frame DBC message."""

    tp: bool
    codec: MessageCodec | None = None


class Router:
    """Classifies frames from ``peer`` to ``own`` by PGN (any priority), cached per CAN ID."""

    def __init__(self, codec: Codec, own: int, peer: int, names: Iterable[str]) -> None:
        self.own = own
        self.peer = peer
        self._by_pgn: dict[int, MessageCodec] = {}
        for name in names:
            mc = codec.message(name)
            self._by_pgn[split_id(mc.frame_id)[1]] = mc
        self._cache: dict[int, Route | None] = {}

    def route(self, frame: Frame) -> Route | None:
        if not frame.is_extended_id:
            return None
        can_id = frame.arbitration_id
        if can_id in self._cache:
            return self._cache[can_id]
        _prio, pgn, dest, source = split_id(can_id)
        route: Route | None = None
        if dest == self.own and source == self.peer:
            if pgn in (PGN_TP_CM, PGN_TP_DT):
                route = Route(True)
            elif pgn in self._by_pgn:
                route = Route(False, self._by_pgn[pgn])
        self._cache[can_id] = route
        return route


def flags(codec: MessageCodec, on: Iterable[str] = ()) -> dict[str, Value]:
    """Every signal of a 2-bit flag message (BST, CST, BEM, CEM) 00, the named ones 01."""
    chosen = set(on)
    unknown = chosen - {s.name for s in codec.signals}
    if unknown:
        raise KeyError(f"{codec.name} has no fields {sorted(unknown)}")
    return {s.name: 1 if s.name in chosen else 0 for s in codec.signals}


def set_flags(values: dict[str, Value]) -> list[str]:
    """Names of the fields set to 01 (00 normal, 10 untrusted and 11 unused are not)."""
    return [name for name, v in values.items() if v == 1]


def clear_unused(codec: MessageCodec, data: bytes) -> bytes:
    """``data`` with the bits no signal covers sent as 0 (a quirk of some BMSs, capture A)."""
    covered = 0
    for s in codec.signals:
        covered |= s.mask << s.start
    word = int.from_bytes(data, "little") & covered
    return word.to_bytes(len(data), "little")


def tp_message_name(frame: Frame) -> str | None:
    """The DBC name of the message a TP.CM frame (RTS, CTS, EndOfMsgAck, Abort) is about, else None.

    Lets a link fault drop a multi-packet message by name: without its RTS the transfer never starts
    (TP.DT frames carry no PGN and are left alone).
    """
    if not frame.is_extended_id or len(frame.data) < 8:
        return None
    if split_id(frame.arbitration_id)[1] != PGN_TP_CM:
        return None
    if frame.data[0] not in (Control.RTS, Control.CTS, Control.END_OF_MSG_ACK, Control.ABORT):
        return None
    return TP_MESSAGES.get(int.from_bytes(frame.data[5:8], "little"))


def bcd(value: int) -> int:
    """Packed BCD of 0..99 (one byte) or 0..9999 (two bytes, little-endian in the frame)."""
    out, shift = 0, 0
    while True:
        out |= (value % 10) << shift
        value //= 10
        shift += 4
        if not value:
            return out


def cts_values(base: _dt.datetime | None, seconds: float) -> dict[str, Value]:
    """CTS fields: packed BCD of ``base`` + ``seconds`` of session time, or all 0xFF (not provided)."""
    if base is None:
        return {"Second": 0xFF, "Minute": 0xFF, "Hour": 0xFF, "Day": 0xFF, "Month": 0xFF, "Year": 0xFFFF}
    t = base + _dt.timedelta(seconds=int(seconds))
    return {
        "Second": bcd(t.second),
        "Minute": bcd(t.minute),
        "Hour": bcd(t.hour),
        "Day": bcd(t.day),
        "Month": bcd(t.month),
        "Year": bcd(t.year),
    }


def charge_current(value: Value) -> float:
    """A current field (0.1 A/bit, -400 A offset, negative = charge) as a positive charge current."""
    return max(0.0, -float(value))


def version_text(raw: int) -> str:
    """BRM/CHM protocol version (bytes 1-3: minor, then the major as 16 bits): ``V1.1``."""
    return f"V{raw >> 8}.{raw & 0xFF}"


def bcl_problem(values: dict[str, Value]) -> str:
    """Why a BCL cannot be followed (the frame then counts as not received), or "" (§4.3)."""
    current = float(values["CurrentDemand"])
    if current > 0.0:  # also the all-ones "not available" (+6153.5 A)
        return f"current demand {current:+.1f} A is not a charge current (-400..0 A)"
    if float(values["VoltageDemand"]) >= NOT_AVAILABLE_V:
        return "voltage demand not available (FF FF)"
    mode = int(values["ChargeMode"])
    if mode not in (1, 2):
        return f"charge mode 0x{mode:02X} is neither 0x01 (CV) nor 0x02 (CC)"
    return ""
