"""Decoded rows of a capture: every protocol frame through our DBC, GB/T transport frames described and
their reassembled messages decoded (``charger-sim decode``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..codec import MessageCodec, Value
from ..protocols.gbt.messages import TP_MESSAGES as TP_NAMES
from ..protocols.gbt.transport import Abort, Bam, Cts, EndOfMsgAck, Rts, parse_tp_cm, reason_text
from .capture import Capture, Record

FRAME, TRANSPORT, MESSAGE, UNKNOWN = "frame", "tp", "message", "unknown"


@dataclass(frozen=True, slots=True)
class Row:
    index: int
    time: float
    line: int
    side: str
    id_text: str
    dlc: int
    name: str
    data: str
    signals: str
    kind: str
    problem: str = ""
    values: dict[str, Value] | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "time": round(self.time, 6),
            "line": self.line,
            "side": self.side,
            "id": self.id_text,
            "dlc": self.dlc,
            "name": self.name,
            "data": self.data,
            "kind": self.kind,
            "signals": {
                k: (round(v, 6) if isinstance(v, float) else v) for k, v in (self.values or {}).items()
            },
            "problem": self.problem,
        }


def signal_text(mc: MessageCodec, values: dict[str, Value], limit: int = 40) -> str:
    parts = []
    for name, value in list(values.items())[:limit]:
        text = mc.describe(name, value)
        parts.append(f"{name}={text}")
    more = len(values) - limit
    return " ".join(parts) + (f" … (+{more} signals)" if more > 0 else "")


def _ascii(values: dict[str, Value], prefix: str, count: int) -> str:
    chars = [
        int(values.get(f"{prefix}{i:02d}" if count > 9 else f"{prefix}{i}", 0xFF))
        for i in range(1, count + 1)
    ]
    return "".join(chr(c) if 32 <= c < 127 else "." for c in chars)


def _extra(rec: Record) -> str:
    """Human extras: the VIN / manufacturer of a BRM, the CRM area code."""
    if rec.name == "BRM":
        vin = _ascii(rec.values, "Vin", 17)
        maker = _ascii(rec.values, "Manufacturer", 4)
        return f" [VIN {vin!r}, manufacturer {maker!r}, {len(rec.data)} bytes]"
    if rec.name == "CRM":
        return f" [area {_ascii(rec.values, 'ChargerAreaCode', 3)!r}]"
    return ""


def _tp_text(rec: Record) -> str:
    if rec.name == "TP.DT":
        return f"TP.DT packet {rec.data[0] if rec.data else '?'}"
    try:
        msg = parse_tp_cm(rec.data)
    except ValueError as err:
        return f"TP.CM unreadable: {err}"
    name = TP_NAMES.get(msg.pgn, f"PGN 0x{msg.pgn:04X}")
    if isinstance(msg, Rts):
        window = "no limit" if msg.max_packets == 0xFF else str(msg.max_packets)
        return f"RTS {name}: {msg.size} bytes in {msg.packets} packets, window {window}"
    if isinstance(msg, Cts):
        return (
            f"CTS {name}: {msg.packets} packets from {msg.next_seq}" if msg.packets else f"CTS {name}: hold"
        )
    if isinstance(msg, EndOfMsgAck):
        return f"EndOfMsgAck {name}: {msg.size} bytes"
    if isinstance(msg, Abort):
        return f"Abort {name}: {reason_text(msg.reason)}"
    if isinstance(msg, Bam):
        return f"BAM {name}: {msg.size} bytes"
    return "TP.CM"


def rows(capture: Capture, *, include_unknown: bool = False) -> Iterator[Row]:
    """Every row in capture order; a reassembled TP message right after its last packet."""
    items: list[tuple[int, int, Record]] = [(r.index, 1 if r.tp else 0, r) for r in capture.records]
    items += [(r.index, 0, r) for r in capture.tp_frames]
    for _i, _order, rec in sorted(items, key=lambda x: (x[0], x[1])):
        side = rec.side or ""
        data = rec.data.hex(" ").upper()
        if rec.tp is None and rec.name in ("TP.CM", "TP.DT"):
            yield Row(
                rec.index,
                rec.time,
                rec.line,
                side,
                rec.id_text(),
                rec.dlc,
                rec.name,
                data,
                _tp_text(rec),
                TRANSPORT,
            )
        elif rec.message is not None:
            kind = MESSAGE if rec.tp is not None else FRAME
            yield Row(
                rec.index,
                rec.time,
                rec.line,
                side,
                rec.id_text(),
                rec.dlc,
                rec.message.name,
                data,
                signal_text(rec.message, rec.values) + _extra(rec),
                kind,
                rec.problem,
                rec.values,
            )
        elif include_unknown:
            yield Row(
                rec.index,
                rec.time,
                rec.line,
                side,
                rec.id_text(),
                rec.dlc,
                rec.raw_name or "?",
                data,
                "(not in the DBC)",
                UNKNOWN,
            )


def select(all_rows: Iterable[Row], names: list[str] | None) -> Iterator[Row]:
    """Rows whose message name matches one of ``names`` (case-insensitive; ``TP`` = transport frames)."""
    if not names:
        yield from all_rows
        return
    wanted = {n.lower() for n in names}
    for row in all_rows:
        name = row.name.lower()
        if (
            name in wanted
            or (row.kind == TRANSPORT and ("tp" in wanted or name in wanted))
            or (row.kind == TRANSPORT and any(w.upper() in row.signals.split(":")[0] for w in wanted))
        ):
            yield row
