"""J1939-21 connection-mode transport (protocols.gbt.transport): frames, sessions, timers, replays."""

from __future__ import annotations

import ast
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from charger_sim.errors import LocalProtocolError
from charger_sim.frames import Frame
from charger_sim.protocols.gbt import BMS_ADDRESS, CHARGER_ADDRESS, TP_PGNS
from charger_sim.protocols.gbt import transport as tp
from charger_sim.protocols.gbt.transport import (
    Abort,
    AbortReason,
    Bam,
    Cts,
    EndOfMsgAck,
    MessageReceived,
    Rts,
    TpTiming,
    TransferDone,
    TransferFailed,
    TransportEndpoint,
    format_tp_cm,
    make_id,
    parse_tp_cm,
    split_id,
)

FIELD_LOGS = Path(__file__).resolve().parents[1].parent / "shared" / "field-logs" / "gbt27930"
CAPTURE_A = FIELD_LOGS / "sut4nd0_candump-2023-12-25_220841.log"
CAPTURE_C = FIELD_LOGS / "ru5t_candump2.log"

C, B = CHARGER_ADDRESS, BMS_ADDRESS
BRM, BCP, BCS = 0x0200, 0x0600, 0x1100
CM_B2C, CM_C2B, DT_B2C, DT_C2B = 0x1CEC56F4, 0x1CECF456, 0x1CEB56F4, 0x1CEBF456

# The seven TP.DT frames of the BRM in capture A (sut4nd0), i.e. the real 49-byte BRM.
BRM_DT = [
    "0101010003F00540",
    "020E010000000100",
    "030000630B089500",
    "040001FF4C314E53",
    "0550474839384E41",
    "0631393632303200",
    "070104E707FFFF00",
]
BRM_PAYLOAD = b"".join(bytes.fromhex(h)[1:] for h in BRM_DT)
BCP_PAYLOAD = bytes.fromhex("7201DA052A02A510730803C60E")
BCS_PAYLOAD = bytes.fromhex("C50EA00F4C614D0000")
T = TpTiming()
EPS = 1e-3  # "just before / just after" a limit


def h(data: str) -> bytes:
    return bytes.fromhex(data.replace(" ", ""))


def cm(can_id: int, data: str, now: float = 0.0) -> Frame:
    return Frame(can_id, h(data), True, now)


def dt_frames(payload: bytes, can_id: int = DT_B2C) -> list[Frame]:
    """TP.DT frames of a payload, built independently of the module (padding 0xFF)."""
    out = []
    for i in range(0, len(payload), 7):
        chunk = payload[i : i + 7]
        out.append(Frame(can_id, bytes([i // 7 + 1]) + chunk + b"\xff" * (7 - len(chunk)), True))
    return out


def data_of(frames: list[Frame]) -> list[str]:
    return [f.data.hex(" ").upper() for f in frames]


def wire(
    endpoints: dict[int, TransportEndpoint],
    frames: list[Frame],
    now: float = 0.0,
    drop: Callable[[Frame], bool] | None = None,
) -> list[Frame]:
    """Deliver frames between endpoints until the bus is quiet; returns every frame put on the bus."""
    bus: list[Frame] = []
    queue = list(frames)
    while queue:
        frame = queue.pop(0)
        bus.append(frame)
        if drop is not None and drop(frame):
            continue
        _prio, _pgn, dest, _src = split_id(frame.arbitration_id)
        if dest in endpoints:
            queue.extend(endpoints[dest].receive(frame, now))
    return bus


def pair(
    max_packets_per_cts: int | None = None, max_retransmits: int = 2
) -> tuple[TransportEndpoint, TransportEndpoint, dict[int, TransportEndpoint]]:
    charger = TransportEndpoint(C, max_packets_per_cts=max_packets_per_cts, max_retransmits=max_retransmits)
    bms = TransportEndpoint(B)
    return charger, bms, {C: charger, B: bms}


def cts_of(frames: list[Frame]) -> list[tuple[int, int]]:
    out = []
    for f in frames:
        if split_id(f.arbitration_id)[1] == tp.PGN_TP_CM:
            msg = parse_tp_cm(f.data)
            if isinstance(msg, Cts):
                out.append((msg.packets, msg.next_seq))
    return out


# --- TP.CM frames and identifiers ---------------------------------------------------------------------


def test_tp_cm_formats_match_the_sheet() -> None:
    assert format_tp_cm(Rts(49, 7, 0xFF, BRM)) == h("10 31 00 07 FF 00 02 00")
    assert format_tp_cm(Cts(7, 1, BRM)) == h("11 07 01 FF FF 00 02 00")
    assert format_tp_cm(EndOfMsgAck(49, 7, BRM)) == h("13 31 00 07 FF 00 02 00")
    assert format_tp_cm(Abort(0xFF, BRM)) == h("FF FF FF FF FF 00 02 00")
    assert format_tp_cm(Abort(AbortReason.TIMEOUT, BCS)) == h("FF 03 FF FF FF 00 11 00")
    assert format_tp_cm(Bam(20, 3, 0xFECA)) == h("20 14 00 03 FF CA FE 00")


@pytest.mark.parametrize(
    "msg",
    [Rts(1785, 255, 2, 0x1500), Cts(0, 0xFF, BCP), Cts(3, 5, BRM), EndOfMsgAck(13, 2, BCP), Abort(5, BCS)],
)
def test_tp_cm_round_trip(msg: tp.TpCm) -> None:
    assert parse_tp_cm(format_tp_cm(msg)) == msg


def test_tp_cm_parse_rejects_garbage() -> None:
    assert parse_tp_cm(h("10 0D 00 02 FF 00 06 00")) == Rts(13, 2, 0xFF, BCP)
    with pytest.raises(ValueError):
        parse_tp_cm(h("10 31 00 07"))
    with pytest.raises(ValueError):
        parse_tp_cm(h("12 31 00 07 FF 00 02 00"))


def test_identifiers() -> None:
    assert make_id(tp.PGN_TP_CM, C, B) == CM_B2C
    assert make_id(tp.PGN_TP_DT, B, C) == DT_C2B
    assert make_id(0x2600, B, C, priority=6) == 0x1826F456
    assert make_id(0x1E00, C, B, priority=2) == 0x081E56F4
    assert split_id(CM_C2B) == (7, tp.PGN_TP_CM, B, C)
    assert split_id(0x100956F4) == (4, 0x0900, C, B)
    assert split_id(0x18FEF100) == (6, 0xFEF1, 0xFF, 0x00)  # PDU2: broadcast


def test_timing_table_defaults() -> None:
    assert (T.tr, T.th, T.t1, T.t2, T.t3, T.t4) == (0.200, 0.500, 0.750, 1.250, 1.250, 1.050)


def test_module_is_pure() -> None:
    tree = ast.parse(Path(tp.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"can", "time", "threading", "asyncio", "socket"}


# --- originator ---------------------------------------------------------------------------------------


def test_brm_segmentation_exact_frames() -> None:
    bms = TransportEndpoint(B)
    (rts,) = bms.send(BRM, BRM_PAYLOAD, C, now=1.0)
    assert (rts.arbitration_id, rts.is_extended_id, rts.timestamp) == (CM_B2C, True, 1.0)
    assert rts.data == h("10 31 00 07 FF 00 02 00")
    assert bms.sending_to(C)
    dts = bms.receive(cm(CM_C2B, "11 07 01 FF FF 00 02 00"), now=1.001)
    assert [f.arbitration_id for f in dts] == [DT_B2C] * 7
    assert [f.data for f in dts] == [h(x) for x in BRM_DT]
    assert bms.drain_events() == []
    assert bms.receive(cm(CM_C2B, "13 31 00 07 FF 00 02 00"), now=1.07) == []
    assert bms.drain_events() == [TransferDone(BRM, C, 49)]
    assert not bms.sending_to(C) and bms.next_deadline() is None


@pytest.mark.parametrize(
    ("payload", "last_dt"),
    [(BCP_PAYLOAD, "02 10 73 08 03 C6 0E FF"), (BCS_PAYLOAD, "02 00 00 FF FF FF FF FF")],
)
def test_last_packet_is_padded_with_ff(payload: bytes, last_dt: str) -> None:
    bms = TransportEndpoint(B)
    (rts,) = bms.send(BCS, payload, C, now=0.0)
    assert rts.data[:5] == bytes([0x10, len(payload), 0, 2, 0xFF])
    dts = bms.receive(cm(CM_C2B, "11 02 01 FF FF 00 11 00"), now=0.0)
    assert data_of(dts)[-1] == last_dt


def test_originator_honours_cts_window_and_retransmit_requests() -> None:
    bms = TransportEndpoint(B, rts_max_packets=2)
    (rts,) = bms.send(BRM, BRM_PAYLOAD, C, now=0.0)
    assert rts.data == h("10 31 00 07 02 00 02 00")
    assert data_of(bms.receive(cm(CM_C2B, "11 02 01 FF FF 00 02 00"), 0.0)) == data_of(
        dt_frames(BRM_PAYLOAD)[0:2]
    )
    # a CTS asking for more than remains is capped at the last packet
    assert [f.data[0] for f in bms.receive(cm(CM_C2B, "11 09 06 FF FF 00 02 00"), 0.1)] == [6, 7]
    # a CTS going back is a retransmission request
    assert [f.data[0] for f in bms.receive(cm(CM_C2B, "11 01 03 FF FF 00 02 00"), 0.2)] == [3]
    # CTS for another PGN or from another node: ignored
    assert bms.receive(cm(CM_C2B, "11 07 01 FF FF 00 06 00"), 0.3) == []
    assert bms.receive(cm(make_id(tp.PGN_TP_CM, B, 0x57), "11 07 01 FF FF 00 02 00"), 0.3) == []
    bms.receive(cm(CM_C2B, "13 31 00 07 FF 00 02 00"), 0.4)
    assert bms.drain_events() == [TransferDone(BRM, C, 49)]


def test_originator_aborts_on_cts_beyond_the_message() -> None:
    bms = TransportEndpoint(B)
    bms.send(BCP, BCP_PAYLOAD, C, now=0.0)
    out = bms.receive(cm(CM_C2B, "11 02 03 FF FF 00 06 00"), 0.0)
    assert data_of(out) == ["FF 07 FF FF FF 00 06 00"]
    (event,) = bms.drain_events()
    assert isinstance(event, TransferFailed) and event.code == AbortReason.BAD_SEQUENCE and event.outgoing


def test_end_of_msg_ack_before_last_packet_is_a_failure() -> None:
    bms = TransportEndpoint(B)
    bms.send(BRM, BRM_PAYLOAD, C, now=0.0)
    bms.receive(cm(CM_C2B, "11 03 01 FF FF 00 02 00"), 0.0)
    bms.receive(cm(CM_C2B, "13 31 00 07 FF 00 02 00"), 0.0)
    (event,) = bms.drain_events()
    assert isinstance(event, TransferFailed) and event.outgoing and "EndOfMsgAck" in event.reason
    assert not bms.sending_to(C)


def test_send_validation() -> None:
    bms = TransportEndpoint(B)
    with pytest.raises(LocalProtocolError):
        bms.send(BRM, b"12345678", C, 0.0)  # single frame: the caller's business
    with pytest.raises(LocalProtocolError):
        bms.send(0x1500, bytes(1786), C, 0.0)
    with pytest.raises(LocalProtocolError):
        bms.send(BRM, BRM_PAYLOAD, B, 0.0)
    bms.send(BRM, BRM_PAYLOAD, C, 0.0)
    with pytest.raises(LocalProtocolError):
        bms.send(BCP, BCP_PAYLOAD, C, 0.0)  # one session per peer and direction
    assert len(bms.send(BCP, BCP_PAYLOAD, 0x57, 0.0)) == 1  # another peer: fine
    with pytest.raises(ValueError):
        TransportEndpoint(0xFF)
    with pytest.raises(ValueError):
        TransportEndpoint(C, max_packets_per_cts=0)


# --- receiver -----------------------------------------------------------------------------------------


def test_receiver_answers_like_the_real_charger() -> None:
    charger = TransportEndpoint(C, accept_pgns=TP_PGNS)
    (cts,) = charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)
    assert (cts.arbitration_id, cts.data) == (CM_C2B, h("11 07 01 FF FF 00 02 00"))
    assert charger.receiving_from(B)
    out: list[Frame] = []
    for i, frame in enumerate(dt_frames(BRM_PAYLOAD)):
        out += charger.receive(frame, 0.01 * (i + 1))
    assert data_of(out) == ["13 31 00 07 FF 00 02 00"] and out[0].arbitration_id == CM_C2B
    (event,) = charger.drain_events()
    assert event == MessageReceived(BRM, B, BRM_PAYLOAD)
    assert event.time == pytest.approx(0.07)
    assert not charger.receiving_from(B) and charger.next_deadline() is None


@pytest.mark.parametrize(
    ("own", "rts_limit", "expected"),
    [
        (None, 2, [(2, 1), (2, 3), (2, 5), (1, 7)]),
        (3, 0xFF, [(3, 1), (3, 4), (1, 7)]),
        (4, 2, [(2, 1), (2, 3), (2, 5), (1, 7)]),
        (1, 0xFF, [(1, k) for k in range(1, 8)]),
    ],
)
def test_windows_smaller_than_the_message(
    own: int | None, rts_limit: int, expected: list[tuple[int, int]]
) -> None:
    charger = TransportEndpoint(C, max_packets_per_cts=own)
    bms = TransportEndpoint(B, rts_max_packets=rts_limit)
    bus = wire({C: charger, B: bms}, bms.send(BRM, BRM_PAYLOAD, C, 0.0))
    assert cts_of(bus) == expected
    assert charger.drain_events() == [MessageReceived(BRM, B, BRM_PAYLOAD)]
    assert bms.drain_events() == [TransferDone(BRM, C, 49)]


@pytest.mark.parametrize("size", [9, 13, 14, 15, 49, 100, 512, 1785])
@pytest.mark.parametrize("window", [None, 1, 2, 7, 16])
def test_back_to_back_both_directions(size: int, window: int | None) -> None:
    rng = random.Random(size * 31 + (window or 0))
    to_bms = bytes(rng.randrange(256) for _ in range(size))
    to_charger = bytes(rng.randrange(256) for _ in range(size + 5 if size < 1785 else size))
    charger = TransportEndpoint(C, max_packets_per_cts=window)
    bms = TransportEndpoint(B, max_packets_per_cts=window)
    nodes = {C: charger, B: bms}
    # both sessions open at the same time, interleaved on the bus
    bus = wire(nodes, charger.send(0x1200, to_bms, B, 0.0) + bms.send(0x1500, to_charger, C, 0.0))
    charger_events, bms_events = charger.drain_events(), bms.drain_events()
    assert len(charger_events) == 2 and len(bms_events) == 2
    assert set(charger_events) == {TransferDone(0x1200, B, size), MessageReceived(0x1500, B, to_charger)}
    assert set(bms_events) == {MessageReceived(0x1200, C, to_bms), TransferDone(0x1500, C, len(to_charger))}
    assert charger.next_deadline() is None and bms.next_deadline() is None
    assert all(len(f.data) == 8 for f in bus)


def test_missing_packet_is_requested_again() -> None:
    charger, bms, nodes = pair()
    dropped: list[int] = []

    def drop_first_3(f: Frame) -> bool:
        if f.arbitration_id == DT_B2C and f.data[0] == 3 and not dropped:
            dropped.append(3)
            return True
        return False

    bus = wire(nodes, bms.send(BRM, BRM_PAYLOAD, C, 0.0), drop=drop_first_3)
    assert cts_of(bus) == [(7, 1), (1, 3)]  # retransmission of packet 3 only
    assert [f.data[0] for f in bus if f.arbitration_id == DT_B2C] == [1, 2, 3, 4, 5, 6, 7, 3]
    assert charger.drain_events() == [MessageReceived(BRM, B, BRM_PAYLOAD)]
    assert bms.drain_events() == [TransferDone(BRM, C, 49)]


def test_missing_run_is_requested_as_one_window() -> None:
    charger, bms, nodes = pair()
    bus = wire(nodes, bms.send(BRM, BRM_PAYLOAD, C, 0.0), drop=drop_first_copy_of(2, 3, 5))
    assert cts_of(bus) == [(7, 1), (2, 2), (1, 5)]
    assert charger.drain_events() == [MessageReceived(BRM, B, BRM_PAYLOAD)]


def drop_first_copy_of(*seqs: int) -> Callable[[Frame], bool]:
    seen: set[int] = set()

    def drop(f: Frame) -> bool:
        if f.arbitration_id == DT_B2C and f.data[0] in seqs and f.data[0] not in seen:
            seen.add(f.data[0])
            return True
        return False

    return drop


def test_retransmit_limit_reached_aborts_with_reason_5() -> None:
    charger, bms, nodes = pair(max_retransmits=2)
    bus = wire(nodes, bms.send(BRM, BRM_PAYLOAD, C, 0.0), drop=drop_first_copy_of(2, 4, 6))
    assert cts_of(bus) == [(7, 1), (1, 2), (1, 4)]  # the third request would exceed the limit
    assert data_of(bus)[-1] == "FF 05 FF FF FF 00 02 00" and bus[-1].arbitration_id == CM_C2B
    (mine,) = charger.drain_events()
    assert isinstance(mine, TransferFailed) and mine.code == 5 and not mine.by_peer and not mine.outgoing
    (theirs,) = bms.drain_events()
    assert isinstance(theirs, TransferFailed)
    assert theirs == TransferFailed(BRM, C, theirs.reason, 5, outgoing=True, by_peer=True)
    assert charger.next_deadline() is None and bms.next_deadline() is None


def test_retransmit_limit_is_configurable() -> None:
    charger, bms, nodes = pair(max_retransmits=3)
    bus = wire(nodes, bms.send(BRM, BRM_PAYLOAD, C, 0.0), drop=drop_first_copy_of(2, 4, 6))
    assert cts_of(bus) == [(7, 1), (1, 2), (1, 4), (1, 6)]
    assert charger.drain_events() == [MessageReceived(BRM, B, BRM_PAYLOAD)]


def test_retransmitted_packet_lost_again_ends_in_t2_timeout() -> None:
    charger, bms, nodes = pair()
    bus = wire(
        nodes,
        bms.send(BRM, BRM_PAYLOAD, C, 0.0),
        drop=lambda f: f.arbitration_id == DT_B2C and f.data[0] == 3,
    )
    assert cts_of(bus) == [(7, 1), (1, 3)]
    assert charger.on_timer(T.t2 - EPS) == []
    assert data_of(charger.on_timer(T.t2 + EPS)) == ["FF 03 FF FF FF 00 02 00"]


def test_out_of_order_packets_within_the_window() -> None:
    charger = TransportEndpoint(C)
    charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)
    dts = dt_frames(BRM_PAYLOAD)
    out: list[Frame] = []
    for k in (1, 2, 4, 3, 5, 6, 7):
        out += charger.receive(dts[k - 1], 0.0)
    assert data_of(out) == ["13 31 00 07 FF 00 02 00"]
    assert charger.drain_events() == [MessageReceived(BRM, B, BRM_PAYLOAD)]


def test_last_packet_overtaking_a_middle_one() -> None:
    charger = TransportEndpoint(C)
    charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)
    dts = dt_frames(BRM_PAYLOAD)
    for k in (1, 2, 3, 4, 5):
        assert charger.receive(dts[k - 1], 0.0) == []
    assert data_of(charger.receive(dts[6], 0.0)) == ["11 01 06 FF FF 00 02 00"]  # ask for 6
    assert data_of(charger.receive(dts[5], 0.0)) == ["13 31 00 07 FF 00 02 00"]  # the late 6 completes it
    assert charger.receive(dts[5], 0.0) == []  # the retransmitted 6 arrives after the end: ignored
    assert charger.drain_events() == [MessageReceived(BRM, B, BRM_PAYLOAD)]


def test_duplicate_packets_are_ignored() -> None:
    charger = TransportEndpoint(C)
    charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)
    dts = dt_frames(BRM_PAYLOAD)
    corrupt_dup = Frame(DT_B2C, b"\x02" + b"\x00" * 7, True)
    out: list[Frame] = []
    for frame in [dts[0], dts[1], dts[1], corrupt_dup, *dts[2:]]:
        out += charger.receive(frame, 0.0)
    assert data_of(out) == ["13 31 00 07 FF 00 02 00"]
    assert charger.drain_events() == [MessageReceived(BRM, B, BRM_PAYLOAD)]  # first copy kept


def test_packet_outside_the_window_aborts_with_reason_7() -> None:
    charger = TransportEndpoint(C, max_packets_per_cts=2)
    assert data_of(charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)) == ["11 02 01 FF FF 00 02 00"]
    charger.receive(dt_frames(BRM_PAYLOAD)[0], 0.0)
    assert data_of(charger.receive(dt_frames(BRM_PAYLOAD)[3], 0.0)) == ["FF 07 FF FF FF 00 02 00"]
    (event,) = charger.drain_events()
    assert isinstance(event, TransferFailed) and event.code == AbortReason.BAD_SEQUENCE
    assert charger.receive(dt_frames(BRM_PAYLOAD)[1], 0.0) == []  # session gone: ignored


def test_packet_while_holding_aborts_with_reason_6() -> None:
    charger = TransportEndpoint(C)
    charger.hold(B)
    assert data_of(charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)) == ["11 00 FF FF FF 00 02 00"]
    assert data_of(charger.receive(dt_frames(BRM_PAYLOAD)[0], 0.0)) == ["FF 06 FF FF FF 00 02 00"]


def test_dt_without_session_and_foreign_frames_are_ignored() -> None:
    charger = TransportEndpoint(C)
    assert charger.receive(dt_frames(BRM_PAYLOAD)[0], 0.0) == []
    assert charger.receive(cm(0x0070F4B5, "00 00 00 00 00 00 00 00"), 0.0) == []
    assert charger.receive(Frame(0x100, h("10 31 00 07 FF 00 02 00")), 0.0) == []  # 11-bit
    assert (
        charger.receive(cm(make_id(tp.PGN_TP_CM, 0x57, B), "10 31 00 07 FF 00 02 00"), 0.0) == []
    )  # not ours
    assert charger.receive(cm(CM_B2C, "10 31 00"), 0.0) == []  # short TP.CM
    assert charger.receive(cm(CM_B2C, "13 31 00 07 FF 00 02 00"), 0.0) == []  # EOMA without session
    assert charger.receive(cm(CM_B2C, "11 07 01 FF FF 00 02 00"), 0.0) == []  # CTS without session
    assert charger.drain_events() == [] and charger.next_deadline() is None


@pytest.mark.parametrize(
    ("rts", "abort", "code"),
    [
        ("10 0E 00 02 FF 34 12 00", "FF FF FF FF FF 34 12 00", 0xFF),  # PGN not accepted
        ("10 FA 06 00 FF 00 15 00", "FF 09 FF FF FF 00 15 00", 9),  # 1786 bytes
        ("10 31 00 06 FF 00 02 00", "FF FF FF FF FF 00 02 00", 0xFF),  # 49 bytes in 6 packets
        ("10 08 00 02 FF 00 11 00", "FF FF FF FF FF 00 11 00", 0xFF),  # 8 bytes is no TP message
    ],
)
def test_refused_rts(rts: str, abort: str, code: int) -> None:
    charger = TransportEndpoint(C, accept_pgns=TP_PGNS)
    assert data_of(charger.receive(cm(CM_B2C, rts), 0.0)) == [abort]
    (event,) = charger.drain_events()
    assert isinstance(event, TransferFailed) and event.code == code and "refused" in event.reason
    assert not charger.receiving_from(B)


def test_new_rts_supersedes_an_open_session() -> None:
    charger = TransportEndpoint(C)
    charger.receive(cm(CM_B2C, "10 09 00 02 FF 00 11 00"), 0.0)
    charger.receive(dt_frames(BCS_PAYLOAD)[0], 0.01)
    assert data_of(charger.receive(cm(CM_B2C, "10 09 00 02 FF 00 11 00"), 0.25)) == [
        "11 02 01 FF FF 00 11 00"
    ]
    (old,) = charger.drain_events()
    assert isinstance(old, TransferFailed) and old.by_peer and "superseded" in old.reason
    for frame in dt_frames(BCS_PAYLOAD):
        charger.receive(frame, 0.26)
    assert charger.drain_events() == [MessageReceived(BCS, B, BCS_PAYLOAD)]


# --- aborts -------------------------------------------------------------------------------------------


def test_abort_received_by_the_receiver() -> None:
    charger = TransportEndpoint(C)
    charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)
    charger.receive(dt_frames(BRM_PAYLOAD)[0], 0.0)
    assert charger.receive(cm(CM_B2C, "FF 02 FF FF FF 00 06 00"), 0.0) == []  # other PGN: not ours
    assert charger.receiving_from(B)
    assert charger.receive(cm(CM_B2C, "FF FF FF FF FF 00 02 00"), 0.0) == []
    (event,) = charger.drain_events()
    assert isinstance(event, TransferFailed)
    assert event == TransferFailed(BRM, B, event.reason, 0xFF, outgoing=False, by_peer=True)
    assert not charger.receiving_from(B) and charger.next_deadline() is None
    assert charger.receive(dt_frames(BRM_PAYLOAD)[1], 0.0) == []


def test_abort_received_by_the_originator() -> None:
    bms = TransportEndpoint(B)
    bms.send(BCP, BCP_PAYLOAD, C, 0.0)
    bms.receive(cm(CM_C2B, "FF 01 FF FF FF 00 06 00"), 0.1)
    (event,) = bms.drain_events()
    assert isinstance(event, TransferFailed)
    assert event == TransferFailed(BCP, C, event.reason, AbortReason.BUSY, outgoing=True, by_peer=True)
    assert "busy" in event.reason
    assert bms.receive(cm(CM_C2B, "11 02 01 FF FF 00 06 00"), 0.2) == []  # late CTS ignored
    bms.send(BCP, BCP_PAYLOAD, C, 0.3)  # a new session may start


def test_local_abort_both_directions() -> None:
    charger = TransportEndpoint(C)
    charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)
    charger.send(0x1200, bytes(20), B, 0.0)
    frames = charger.abort(B, 0.5)
    assert data_of(frames) == ["FF 02 FF FF FF 00 12 00", "FF 02 FF FF FF 00 02 00"]
    assert {f.arbitration_id for f in frames} == {CM_C2B}
    assert [(e.pgn, e.outgoing) for e in charger.drain_events() if isinstance(e, TransferFailed)] == [
        (0x1200, True),
        (BRM, False),
    ]
    assert charger.abort(B, 0.6) == [] and charger.next_deadline() is None


# --- timers -------------------------------------------------------------------------------------------


def _expect_timeout(ep: TransportEndpoint, limit: float, abort: str) -> None:
    assert ep.next_deadline() == pytest.approx(limit)
    assert ep.on_timer(limit - EPS) == []
    assert ep.drain_events() == []
    out = ep.on_timer(limit + EPS)
    assert data_of(out) == [abort]
    (event,) = ep.drain_events()
    assert isinstance(event, TransferFailed) and event.code == AbortReason.TIMEOUT and not event.by_peer
    assert ep.next_deadline() is None and ep.on_timer(limit + 10) == []


def test_t3_after_rts() -> None:
    bms = TransportEndpoint(B)
    bms.send(BRM, BRM_PAYLOAD, C, now=2.0)
    _expect_timeout(bms, 2.0 + T.t3, "FF 03 FF FF FF 00 02 00")


def test_t3_after_last_packet_of_a_window() -> None:
    bms = TransportEndpoint(B)
    bms.send(BRM, BRM_PAYLOAD, C, now=0.0)
    bms.receive(cm(CM_C2B, "11 03 01 FF FF 00 02 00"), 0.5)
    _expect_timeout(bms, 0.5 + T.t3, "FF 03 FF FF FF 00 02 00")


def test_t3_waiting_for_end_of_msg_ack() -> None:
    bms = TransportEndpoint(B)
    bms.send(BCS, BCS_PAYLOAD, C, now=0.0)
    bms.receive(cm(CM_C2B, "11 02 01 FF FF 00 11 00"), 0.1)
    _expect_timeout(bms, 0.1 + T.t3, "FF 03 FF FF FF 00 11 00")


def test_t4_after_hold() -> None:
    bms = TransportEndpoint(B)
    bms.send(BRM, BRM_PAYLOAD, C, now=0.0)
    assert bms.receive(cm(CM_C2B, "11 00 FF FF FF 00 02 00"), 0.2) == []
    _expect_timeout(bms, 0.2 + T.t4, "FF 03 FF FF FF 00 02 00")


def test_t2_after_cts() -> None:
    charger = TransportEndpoint(C)
    charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 3.0)
    _expect_timeout(charger, 3.0 + T.t2, "FF 03 FF FF FF 00 02 00")


def test_t1_between_packets() -> None:
    charger = TransportEndpoint(C)
    charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)
    for i, frame in enumerate(dt_frames(BRM_PAYLOAD)[:6]):
        charger.receive(frame, 0.1 * (i + 1))
    _expect_timeout(charger, 0.6 + T.t1, "FF 03 FF FF FF 00 02 00")  # packet 7 never came


def test_t2_after_retransmit_request() -> None:
    charger = TransportEndpoint(C)
    charger.receive(cm(CM_B2C, "10 09 00 02 FF 00 11 00"), 0.0)
    assert data_of(charger.receive(dt_frames(BCS_PAYLOAD)[1], 0.4)) == ["11 01 01 FF FF 00 11 00"]
    _expect_timeout(charger, 0.4 + T.t2, "FF 03 FF FF FF 00 11 00")


def test_timers_are_per_session() -> None:
    charger = TransportEndpoint(C)
    other = make_id(tp.PGN_TP_CM, C, 0x57)
    charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)
    charger.receive(cm(other, "10 0D 00 02 FF 00 06 00"), 1.0)
    assert charger.next_deadline() == pytest.approx(T.t2)
    out = charger.on_timer(T.t2 + EPS)
    assert [split_id(f.arbitration_id)[2] for f in out] == [B]
    assert charger.receiving_from(0x57) and charger.next_deadline() == pytest.approx(1.0 + T.t2)


def test_cts_hold_then_resume_on_the_originator() -> None:
    bms = TransportEndpoint(B)
    bms.send(BRM, BRM_PAYLOAD, C, now=0.0)
    assert bms.receive(cm(CM_C2B, "11 00 FF FF FF 00 02 00"), 0.1) == []
    assert bms.next_deadline() == pytest.approx(0.1 + T.t4)
    assert bms.on_timer(0.1 + T.t4 - EPS) == []
    assert bms.receive(cm(CM_C2B, "11 00 FF FF FF 00 02 00"), 0.6) == []  # repeated hold restarts T4
    assert bms.on_timer(0.1 + T.t4 + EPS) == []
    assert bms.next_deadline() == pytest.approx(0.6 + T.t4)
    dts = bms.receive(cm(CM_C2B, "11 07 01 FF FF 00 02 00"), 1.0)
    assert [f.data for f in dts] == [h(x) for x in BRM_DT]
    assert bms.next_deadline() == pytest.approx(1.0 + T.t3)
    bms.receive(cm(CM_C2B, "13 31 00 07 FF 00 02 00"), 1.1)
    assert bms.drain_events() == [TransferDone(BRM, C, 49)]


def test_receiver_hold_repeats_cts0_every_th_then_resumes() -> None:
    charger, bms, nodes = pair(max_packets_per_cts=3)
    charger.hold(B)
    bus = wire(nodes, bms.send(BRM, BRM_PAYLOAD, C, 0.0), now=0.0)
    assert cts_of(bus) == [(0, 0xFF)]
    assert charger.next_deadline() == pytest.approx(T.th)
    assert charger.on_timer(T.th - EPS) == []
    (again,) = charger.on_timer(T.th + EPS)
    assert again.data == h("11 00 FF FF FF 00 02 00")
    assert wire(nodes, [again], now=T.th + EPS)[1:] == []  # the originator restarts T4, sends nothing
    assert charger.next_deadline() == pytest.approx(2 * T.th + EPS)
    assert bms.next_deadline() == pytest.approx(T.th + EPS + T.t4)
    bus = wire(nodes, charger.resume(B, 0.9), now=0.9)
    assert cts_of(bus) == [(3, 1), (3, 4), (1, 7)]
    assert charger.drain_events() == [MessageReceived(BRM, B, BRM_PAYLOAD)]
    assert bms.drain_events() == [TransferDone(BRM, C, 49)]
    assert charger.resume(B, 1.0) == []  # nothing waiting


def test_receiver_hold_between_windows() -> None:
    charger = TransportEndpoint(C, max_packets_per_cts=2)
    charger.receive(cm(CM_B2C, "10 31 00 07 FF 00 02 00"), 0.0)
    charger.hold(B)  # takes effect at the next CTS, never inside an open window
    dts = dt_frames(BRM_PAYLOAD)
    assert charger.receive(dts[0], 0.01) == []
    assert data_of(charger.receive(dts[1], 0.02)) == ["11 00 FF FF FF 00 02 00"]
    assert data_of(charger.resume(B, 0.3)) == ["11 02 03 FF FF 00 02 00"]
    assert charger.next_deadline() == pytest.approx(0.3 + T.t2)


# --- replays of real captures -------------------------------------------------------------------------


def read_log(path: Path) -> list[Frame]:
    can = pytest.importorskip("can")
    if not path.is_file():
        pytest.skip(f"field log {path} not available")
    with can.CanutilsLogReader(str(path)) as reader:
        msgs = list(reader)
    t0 = msgs[0].timestamp
    return [Frame(m.arbitration_id, bytes(m.data), m.is_extended_id, m.timestamp - t0) for m in msgs]


@pytest.mark.fieldlogs
def test_replay_capture_a_through_a_charger_endpoint() -> None:
    log = read_log(CAPTURE_A)
    charger = TransportEndpoint(C, accept_pgns=TP_PGNS)
    ours: list[Frame] = []
    events: list[object] = []
    for frame in log:
        deadline = charger.next_deadline()
        if deadline is not None and frame.timestamp >= deadline:
            ours += charger.on_timer(frame.timestamp)
        if frame.is_extended_id and split_id(frame.arbitration_id)[2] == C:
            ours += charger.receive(frame, frame.timestamp)
        events += charger.drain_events()
    real = [f for f in log if f.arbitration_id == CM_C2B]
    # every CTS and EndOfMsgAck the real charger sent, byte for byte, and nothing else (no abort)
    assert data_of(ours) == data_of(real)
    assert all(f.arbitration_id == CM_C2B for f in ours)
    received = [e for e in events if isinstance(e, MessageReceived)]
    assert len(received) == len(events)
    assert [e.pgn for e in received[:2]] == [BRM, BCP]
    assert received[0].payload == BRM_PAYLOAD and received[0].source == B
    assert received[1].payload == BCP_PAYLOAD
    bcs = [e.payload for e in received if e.pgn == BCS]
    assert len(bcs) == len(received) - 2 and len(bcs) > 50
    assert bcs[0] == BCS_PAYLOAD and all(len(p) == 9 for p in bcs)


@pytest.mark.fieldlogs
def test_replay_capture_a_bms_side() -> None:
    """A BMS endpoint sending the captured payloads, fed the real charger frames, sends the real frames."""
    log = read_log(CAPTURE_A)
    bms = TransportEndpoint(B)
    payload_of = {BRM: BRM_PAYLOAD, BCP: BCP_PAYLOAD}
    sessions = 0
    ours: list[Frame] = []
    real: list[Frame] = []
    for frame in log:
        if frame.arbitration_id == CM_B2C and frame.data[0] == 0x10:
            pgn = int.from_bytes(frame.data[5:8], "little")
            if pgn not in payload_of:
                break  # BCS payloads vary: covered by the receiving replay
            ours += bms.send(pgn, payload_of[pgn], C, frame.timestamp)
            real.append(frame)
            sessions += 1
        elif frame.arbitration_id == DT_B2C:
            real.append(frame)
        elif frame.arbitration_id == CM_C2B:
            ours += bms.receive(frame, frame.timestamp)
    assert sessions == 2
    assert data_of(ours) == data_of(real)
    assert [f.arbitration_id for f in ours] == [f.arbitration_id for f in real]
    assert bms.drain_events() == [TransferDone(BRM, C, 49), TransferDone(BCP, C, 13)]


@pytest.mark.fieldlogs
def test_replay_capture_c_unanswered_rts_and_bms_aborts() -> None:
    log = read_log(CAPTURE_C)
    charger = TransportEndpoint(C, accept_pgns=TP_PGNS)
    ours: list[Frame] = []
    for frame in log:
        if frame.arbitration_id == CM_B2C:
            ours += charger.receive(frame, frame.timestamp)
    # the real charger never answered; ours answers with the BMS's window (7 for BRM, 2 for BCP)
    assert set(data_of(ours)) == {"11 07 01 FF FF 00 02 00", "11 02 01 FF FF 00 06 00"}
    events = charger.drain_events()
    assert all(isinstance(e, TransferFailed) and e.by_peer for e in events)
    aborted = [
        e for e in events if isinstance(e, TransferFailed) and e.code == 0xFF and "aborted" in e.reason
    ]
    superseded = [e for e in events if isinstance(e, TransferFailed) and "superseded" in e.reason]
    assert len(aborted) == sum(1 for f in log if f.arbitration_id == CM_B2C and f.data[0] == 0xFF)
    assert len(superseded) == 2  # RTS repeated without an abort in between (BRM -> BRM, BRM -> BCP)
