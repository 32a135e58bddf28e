"""CAN log readers: every built-in format and quirk, python-can round trips, the field logs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import can
import pytest

from charger_sim.errors import ExitCode, LogFormatError
from charger_sim.frames import Frame
from charger_sim.logs import (
    MAX_PROBLEMS,
    RX,
    TX,
    LineRecord,
    MalformedLine,
    ReadResult,
    available_formats,
    detect_format,
    iter_frames,
    read_log,
    read_text_log,
    register_reader,
    unregister_reader,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIELD_LOGS = SHARED / "field-logs"


def write(tmp_path: Path, name: str, lines: list[str], *, eol: str = "\n", final_eol: bool = True) -> Path:
    path = tmp_path / name
    text = eol.join(lines) + (eol if final_eol else "")
    path.write_bytes(text.encode("utf-8"))
    return path


def accounted(result: ReadResult) -> bool:
    """Every line became a frame, a skipped line, a malformed line or a skipped (non-data) frame."""
    total = len(result.frames) + result.skipped_lines + result.malformed_lines + result.skipped_frames
    return total == result.lines_read


def monotonic(result: ReadResult) -> bool:
    times = [f.timestamp for f in result.frames]
    return all(b >= a for a, b in itertools.pairwise(times))


# ----------------------------------------------------------------------------------- F1 candump


def test_candump_absolute_time(tmp_path: Path) -> None:
    path = write(tmp_path, "abs.txt", [
        " (2022-06-02 22:49:58.125771)  can1  100   [8]  06 00 00 00 B3 01 F0 00",
        " (2022-06-02 22:49:58.145756)  can1  102   [8]  02 9A 01 00 00 80 03 00",
        " ",
        "",
        " (2022-06-02 22:49:59.145756)  can1  18FF50E5   [3]  01 02 03",
        "(2022-06-02 22:49:59.200000) can1 7FF 11 22",  # no DLC: the bytes give it
    ])
    result = read_log(path)
    assert result.format == "candump"
    assert [f.arbitration_id for f in result] == [0x100, 0x102, 0x18FF50E5, 0x7FF]
    assert [f.is_extended_id for f in result] == [False, False, True, False]
    assert result.frames[1].data == bytes.fromhex("029A0100008003 00".replace(" ", ""))
    assert result.frames[3].data == b"\x11\x22"
    assert [f.timestamp for f in result] == pytest.approx([0.0, 0.019985, 1.019985, 1.074229])
    assert result.info[1].raw_time == "2022-06-02 22:49:58.145756"
    assert result.info[1].channel == "can1" and result.info[1].direction is None
    assert [i.line for i in result.info] == [1, 2, 5, 6]
    assert result.skipped_lines == 2 and result.malformed_lines == 0 and result.problems == ()
    assert accounted(result) and len(result) == 4


def test_candump_malformed_lines_reported_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.txt", [
        "(2022-06-02 22:49:58.100000)  can1  100   [8]  06 00 00 00 B3 01 F0 00",
        "logger started",  # not a frame: counted, not a problem
        "(2022-06-02 22:49:58.200000)  can1  101   [8]  06 00 9G 00 B3 01 F0 00",  # bad hex
        "(2022-06-02 22:49:58.300000)  can1  102   [8]  02 9A 01 00 00 80 03",  # DLC 8, 7 bytes
        "(2022-06-02 22:49:58.400000)  can1  108   [2]  01 02 03",  # DLC 2, 3 bytes
        "(2022-06-02 22:49:58.500000)  can1  GHI   [1]  01",  # bad ID
        "(2022-06-02 22:49:58.600000)  can1  109   [8]  02 00 00 00 00 20 FF 5A",
    ])
    result = read_log(path)
    assert [f.arbitration_id for f in result] == [0x100, 0x109]
    assert result.skipped_lines == 1
    assert result.malformed_lines == 4
    assert len(result.problems) == 4
    p3, p4, p5, p6 = result.problems
    assert p3.startswith(f"{path}:3: expected a two-digit hex data byte, got '9G'")
    assert p4.startswith(f"{path}:4: expected 8 data bytes after [8], got 7")
    assert p5.startswith(f"{path}:5: expected 2 data bytes after [2], got 3")
    assert p6.startswith(f"{path}:6: expected a hexadecimal CAN ID, got 'GHI'")
    assert accounted(result)

    with pytest.raises(LogFormatError) as err:
        read_log(path, strict=True)
    assert str(err.value).startswith(f"{path}:3: expected a two-digit hex data byte")
    assert err.value.exit_code is ExitCode.LOG_FORMAT


def test_candump_remote_and_error_frames_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "rtr.txt", [
        "(2022-06-02 22:49:58.100000)  can0  123   [2]  remote request",
        "(2022-06-02 22:49:58.200000)  can0  20000080   [8]  00 00 00 00 00 00 00 00   ERRORFRAME",
        "(2022-06-02 22:49:58.300000)  can0  124   [1]  55",
    ])
    result = read_log(path)
    assert [f.arbitration_id for f in result] == [0x124]
    assert result.skipped_frames == 2 and result.malformed_lines == 0 and accounted(result)


# ------------------------------------------------------------------------------ F2 candump -l


def test_candump_log_no_final_newline_crlf_and_python_can_agree(tmp_path: Path) -> None:
    lines = [
        "(1703560144.117287) can0 1808F456#1C257C01DC05A00F",
        "(1703560144.187287) can0 100#0102",
        "(1703560144.187287) can0 101#",
        "(1703560144.200000) can0 1CECF456#13090002FF001100",
    ]
    path = write(tmp_path, "gbt.log", lines, eol="\r\n", final_eol=False)
    result = read_log(path)
    assert result.format == "candump-log"
    assert [(f.arbitration_id, f.is_extended_id, f.data.hex()) for f in result] == [
        (0x1808F456, True, "1c257c01dc05a00f"), (0x100, False, "0102"), (0x101, False, ""),
        (0x1CECF456, True, "13090002ff001100")]
    assert [f.timestamp for f in result] == pytest.approx([0.0, 0.07, 0.07, 0.082713])
    assert result.info[3].line == 4 and result.info[3].raw_time == "1703560144.200000"
    assert result.lines_read == 4 and accounted(result)

    with can.LogReader(path) as reader:
        theirs = [(m.arbitration_id, m.is_extended_id, bytes(m.data)) for m in reader]
    assert theirs == [(f.arbitration_id, f.is_extended_id, f.data) for f in result]


def test_candump_log_quirks(tmp_path: Path) -> None:
    path = write(tmp_path, "q.log", [
        "(0.000000) vcan0 123#1122 R",
        "(0.010000) vcan0 124#33 T",
        "(0.020000) vcan0 00000123#R R",  # remote
        "(0.030000) vcan0 20000080#",  # error frame
        "(0.040000) vcan0 125##1AABB",  # CAN FD
        "(0.050000) vcan0 126#ABC",  # odd digit count
        "(0.060000) vcan0 127#ZZ",  # bad hex
        "(0.070000) vcan0 128#112233445566778899",  # 9 bytes
        "",
    ])
    result = read_log(path)
    assert [(f.arbitration_id, f.data) for f in result] == [(0x123, b"\x11\x22"), (0x124, b"\x33")]
    assert result.directions == (RX, TX)
    assert result.channels == ("vcan0", "vcan0")
    assert result.skipped_frames == 3 and result.skipped_lines == 1 and result.malformed_lines == 3
    assert [p.split(": ", 1)[0] for p in result.problems] == [f"{path}:6", f"{path}:7", f"{path}:8"]
    assert "even number of hex digits" in result.problems[0]
    assert "at most 8 data bytes" in result.problems[2]
    assert accounted(result)


# ------------------------------------------------------------------------------ F3 GVRET CSV

GVRET_HEADER = "Time Stamp,ID,Extended,Dir,Bus,LEN,D1,D2,D3,D4,D5,D6,D7,D8"


def test_gvret_csv_negative_timestamps_crlf_and_len(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", [
        GVRET_HEADER,
        "-1688467643383897,00000201,false,Rx,0,8,02,00,00,00,00,00,00,00,",
        "-1688467643373880,00000528,false,Rx,0,6,07,09,1D,07,00,00,00,00,",
        "-1688467643363869,1808F456,true,Rx,1,2,1C,25,00,00,00,00,00,00,",
    ], eol="\r\n")
    result = read_log(path)
    assert result.format == "gvret-csv"
    assert [(f.arbitration_id, f.is_extended_id, f.data.hex()) for f in result] == [
        (0x201, False, "0200000000000000"), (0x528, False, "07091d070000"), (0x1808F456, True, "1c25")]
    assert [f.timestamp for f in result] == pytest.approx([0.0, 0.010017, 0.020028])
    assert result.info[0].raw_time == "-1688467643383897"
    assert result.info[2].channel == "1" and result.info[2].direction == RX
    assert result.skipped_lines == 1 and accounted(result)


def test_gvret_csv_signed_wrap_and_malformed_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "w.csv", [
        GVRET_HEADER,
        f"{2**63 - 500},00000100,false,Rx,0,1,01,00,00,00,00,00,00,00,",
        f"{-(2**63) + 500},00000100,false,Rx,0,1,02,00,00,00,00,00,00,00,",  # wrapped: +1 ms
        "garbage without commas",
        "12,00000100,false,Rx,0,8,01,02,03,",  # LEN 8, 3 bytes
        "13,00000800,false,Rx,0,1,01,00,00,00,00,00,00,00,",  # 0x800 is not 11-bit
        "14,00000100,maybe,Rx,0,1,01,00,00,00,00,00,00,00,",
        "x15,00000100,false,Rx,0,1,01,00,00,00,00,00,00,00,",
    ])
    result = read_log(path)
    assert [f.data for f in result] == [b"\x01", b"\x02"]
    assert result.frames[1].timestamp == pytest.approx(0.001)
    assert result.skipped_lines == 2 and result.malformed_lines == 4
    assert result.problems[0].startswith(f"{path}:5: expected 8 data bytes (LEN=8), got 3")
    assert result.problems[1].startswith(f"{path}:6: expected a 11-bit CAN ID")
    assert result.problems[2].startswith(f"{path}:7: expected Extended true or false")
    assert result.problems[3].startswith(f"{path}:8: expected an integer Time Stamp")
    assert accounted(result)


def test_gvret_csv_columns_follow_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", ["Time Stamp,ID,LEN,D1,D2", "5,18FF50E5,2,01,02", "6,100,1,03"])
    result = read_log(path)
    assert result.format == "gvret-csv"
    assert [(f.arbitration_id, f.is_extended_id, f.data) for f in result] == [
        (0x18FF50E5, True, b"\x01\x02"), (0x100, False, b"\x03")]
    assert result.frames[1].timestamp == pytest.approx(1e-6)
    assert result.info[0].channel is None and result.info[0].direction is None


# ------------------------------------------------------------------------------ F4 CANDue


def test_candue_stray_d_menus_crlf(tmp_path: Path) -> None:
    path = write(tmp_path, "jld.txt", [
        "=========== CANDue Logger Program Version 1.11 ==============",
        "  C1  - CAN bus selector",
        "Setting data logger to ON..efaec.txt..",
        "Rcvd msgID: 0x109; 01; 00; 00; 00; 00; 20; FF; 5A  00:02:06.750",
        "EVSE:Available CHARGE Voltage: 500v Available Current: 26A Threshold Voltage:182v",
        "dRcvd msgID: 0x404; 06; 5B; FF; FE; 02; 26; 00; 00  00:02:06.750",
        "Rcvd msgID: 0x108; 00; F4; 01  00:02:06.800",  # only 3 bytes
        "Rcvd msgID: 0x102; 02; B1; 00; 00; 00; 08; FF; 00",  # no time
        "Rcvd msgID: 0x1806E5F4; 02; B1; 00; 00; 00; 08; FF; 00  00:02:07.010",
        "",
    ], eol="\r\n")
    result = read_log(path)
    assert result.format == "candue"
    assert [(f.arbitration_id, f.is_extended_id) for f in result] == [
        (0x109, False), (0x404, False), (0x1806E5F4, True)]
    assert result.frames[1].data == bytes.fromhex("065BFFFE02260000")
    assert all(f.dlc == 8 for f in result)
    assert [f.timestamp for f in result] == pytest.approx([0.0, 0.0, 0.26])  # duplicate time kept
    assert [i.line for i in result.info] == [4, 6, 9]
    assert result.skipped_lines == 5 and result.malformed_lines == 2
    assert result.problems[0].startswith(f"{path}:7: expected 8 data bytes")
    assert result.problems[1].startswith(f"{path}:8: expected a hh:mm:ss.mmm time stamp")
    assert accounted(result)


# ------------------------------------------------------------------------------ F5 RX0/TX1


def test_rxtx_dump_direction_and_channel(tmp_path: Path) -> None:
    path = write(tmp_path, "qc.txt", [
        "(14.471) RX0 100 [8] 00 00 00 00 B3 01 F0 00",
        "(14.543) TX1 108 [8] 01 AF C8 0B AF C8 00 00",
        "~(14.544) TX1 109 02 99 E8 00 01 05 FF 3C",  # stray character, no DLC
        "(14.544) RX0 200 [8] FF 00",  # DLC mismatch
    ], final_eol=False)
    result = read_log(path)
    assert result.format == "rxtx-dump"
    assert [f.arbitration_id for f in result] == [0x100, 0x108, 0x109]
    assert result.directions == (RX, TX, TX)
    assert result.channels == ("0", "1", "1")
    assert result.frames[2].data == bytes.fromhex("0299E8000105FF3C")
    assert [f.timestamp for f in result] == pytest.approx([0.0, 0.072, 0.073])
    assert result.problems == (f"{path}:4: expected 8 data bytes after [8], got 2 "
                               "(line: '(14.544) RX0 200 [8] FF 00')",)
    assert accounted(result)


# ---------------------------------------------------------------------------------- timestamps


def test_backwards_and_reset_timestamps_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, "t.txt", [
        "(10.000) RX0 100 [1] 01",
        "(10.100) RX0 100 [1] 02",
        "(10.050) RX0 100 [1] 03",  # 50 ms back: clamped
        "(10.200) RX0 100 [1] 04",
        "(2.000) RX0 100 [1] 05",  # 8.2 s back: a clock reset
        "(2.100) RX0 100 [1] 06",
    ])
    result = read_log(path)
    assert [f.timestamp for f in result] == pytest.approx([0.0, 0.1, 0.1, 0.2, 0.2, 0.3])
    assert result.time_corrections == 2
    assert [i.raw_time for i in result.info][4] == "2.000"
    assert monotonic(result)


# ------------------------------------------------------------------------- detection, errors, API


def test_format_override_and_aliases(tmp_path: Path) -> None:
    path = write(tmp_path, "x.dat", ["(14.471) RX0 100 [1] 01"])
    assert read_log(path, format="F5").format == "rxtx-dump"
    # forcing a format that does not fit: nothing read, everything counted; strict refuses it
    forced = read_log(path, format="candue")
    assert forced.frames == () and forced.skipped_lines == 1
    with pytest.raises(LogFormatError, match="expected at least one candue frame"):
        read_log(path, format="candue", strict=True)
    builtins = {"candump", "candump-log", "gvret-csv", "candue", "rxtx-dump", "asc", "blf", "trc",
                "python-can"}
    assert builtins <= set(available_formats())


def test_unknown_empty_missing_files(tmp_path: Path) -> None:
    unknown = write(tmp_path, "notes.txt", ["", "hello world, this is not a CAN log"])
    with pytest.raises(LogFormatError) as err:
        read_log(unknown)
    assert str(err.value).startswith(f"{unknown}:2: expected a CAN log in a known format")
    assert "\n" not in str(err.value)

    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    with pytest.raises(LogFormatError, match="empty file"):
        read_log(empty)
    with pytest.raises(LogFormatError, match="cannot read file: no such file"):
        read_log(tmp_path / "missing.log")
    with pytest.raises(LogFormatError, match="not a regular file"):
        read_log(tmp_path)
    with pytest.raises(LogFormatError, match="unknown log format 'nope'"):
        read_log(unknown, format="nope")


def test_problems_are_capped_but_all_counted(tmp_path: Path) -> None:
    path = write(tmp_path, "many.log", ["(0.0) can0 100#0"] * (MAX_PROBLEMS + 7) + ["(0.1) can0 100#00"])
    result = read_log(path, format="candump-log")
    assert result.malformed_lines == MAX_PROBLEMS + 7
    assert len(result.problems) == MAX_PROBLEMS
    assert result.problems[-1].startswith(f"{path}:{MAX_PROBLEMS}:")
    assert len(result.frames) == 1 and accounted(result)


def test_iter_frames(tmp_path: Path) -> None:
    path = write(tmp_path, "i.log", ["(1.0) can0 100#01", "(2.0) can0 101#02"])
    assert list(iter_frames(path)) == [Frame(0x100, b"\x01", False, 0.0), Frame(0x101, b"\x02", False, 1.0)]


@pytest.fixture
def mylog() -> Iterator[str]:
    def parse(line: str) -> LineRecord | None:
        if not line.startswith("MYLOG "):
            return None
        parts = line.split()
        if len(parts) != 4:
            raise MalformedLine(f"expected 'MYLOG <ms> <id> <hex>', got {len(parts)} fields")
        _, ms, can_id, data = parts
        return LineRecord(int(can_id, 16), bytes.fromhex(data), False, int(ms) * 1_000_000, ms)

    register_reader("mylog", lambda lines: any(ln.startswith("MYLOG ") for ln in lines),
                    lambda path: read_text_log(path, "mylog", parse), description="test format")
    try:
        yield "mylog"
    finally:
        unregister_reader("mylog")


def test_plugin_registry(tmp_path: Path, mylog: str) -> None:
    path = write(tmp_path, "p.txt", ["# my format", "MYLOG 5 123 0102", "MYLOG 15 124", "MYLOG 25 125 zz"])
    assert detect_format(path) == mylog
    result = read_log(path)
    assert result.format == mylog
    assert [(f.arbitration_id, f.data, f.timestamp) for f in result] == [(0x123, b"\x01\x02", 0.0)]
    assert result.skipped_lines == 1 and result.malformed_lines == 2
    assert result.problems[0].startswith(f"{path}:3: expected 'MYLOG <ms> <id> <hex>'")
    assert result.problems[1].startswith(f"{path}:4: expected a valid mylog line")  # ValueError in parser
    with pytest.raises(ValueError, match="already registered"):
        register_reader(mylog, lambda lines: False, lambda p: ReadResult((), mylog))
    with pytest.raises(ValueError, match="already registered"):
        register_reader("other", lambda lines: False, lambda p: ReadResult((), "other"), aliases=("F1",))


def test_plugin_without_path_gets_it_filled(tmp_path: Path) -> None:
    register_reader("const", lambda lines: False, lambda p: ReadResult((Frame(1, b""),), ""))
    try:
        path = write(tmp_path, "c.bin", ["anything"])
        result = read_log(path, format="CONST")
        assert result.format == "const" and result.path == str(path) and len(result) == 1
    finally:
        unregister_reader("const")
    assert "const" not in available_formats()


# ------------------------------------------------------------------------- python-can round trip

ROUND_TRIP = [
    can.Message(timestamp=1000.0, arbitration_id=0x100, data=b"", is_extended_id=False),
    can.Message(timestamp=1000.1, arbitration_id=0x102, data=bytes.fromhex("029A010000800300"),
                is_extended_id=False),
    can.Message(timestamp=1000.1, arbitration_id=0x7FF, data=b"\x01\x02\x03", is_extended_id=False),
    can.Message(timestamp=1000.35, arbitration_id=0x1808F456, data=bytes.fromhex("1C257C01DC05A00F"),
                is_extended_id=True),
]
NON_DATA = [
    can.Message(timestamp=1000.4, arbitration_id=0x123, is_remote_frame=True, dlc=2, is_extended_id=False),
    can.Message(timestamp=1000.5, is_error_frame=True),
]


@pytest.mark.parametrize(("suffix", "fmt", "non_data"), [
    (".asc", "asc", 2), (".blf", "blf", 2), (".log", "candump-log", 2), (".csv", "python-can-csv", 2),
    (".trc", "trc", 0),  # python-can's TRC writer drops remote and error frames itself
])
def test_python_can_round_trip(tmp_path: Path, suffix: str, fmt: str, non_data: int) -> None:
    path = tmp_path / f"round{suffix}"
    with can.Logger(str(path)) as logger:
        for msg in ROUND_TRIP + NON_DATA:
            logger.on_message_received(msg)
    result = read_log(path)
    assert result.format == fmt
    assert [(f.arbitration_id, f.is_extended_id, f.data) for f in result] == [
        (m.arbitration_id, m.is_extended_id, bytes(m.data)) for m in ROUND_TRIP]
    assert [f.timestamp for f in result] == pytest.approx([0.0, 0.1, 0.1, 0.35], abs=1e-6)
    assert result.skipped_frames == non_data
    assert result.problems == () and monotonic(result)


def test_python_can_log_through_can_logreader(tmp_path: Path) -> None:
    path = tmp_path / "via.log"
    with can.Logger(str(path)) as logger:
        for msg in ROUND_TRIP + NON_DATA:
            logger.on_message_received(msg)
    ours, theirs = read_log(path), read_log(path, format="python-can")
    assert theirs.format == "python-can"
    assert theirs.frames == ours.frames and theirs.skipped_frames == 2


def test_python_can_failure_mid_file_is_located(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    with can.Logger(str(path)) as logger:
        for msg in ROUND_TRIP:
            logger.on_message_received(msg)
    with path.open("a") as handle:
        handle.write("1000.9,0x100,0,0\n")
        handle.write("1001.0,0x101,0,0,0,1,AQ==\n")
    result = read_log(path)
    assert len(result.frames) == 4 and result.malformed_lines == 1
    assert result.problems[0].startswith(f"{path}:6: expected a valid python-can-csv record")
    assert "rest of the file was not read" in result.problems[0]
    with pytest.raises(LogFormatError, match=r"broken\.csv:6: expected"):
        read_log(path, strict=True)


def test_unreadable_blf_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.blf"
    path.write_bytes(b"LOGG" + b"\x00" * 20)
    with pytest.raises(LogFormatError) as err:
        read_log(path)
    assert str(err.value).startswith(f"{path}: expected a blf file") and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ field logs

fieldlogs = pytest.mark.skipif(not FIELD_LOGS.is_dir(), reason=f"{FIELD_LOGS} not present")

# file, format, frames (README §2/§3 "Frames", F4: "frame lines"), newline count (§4), span in s (§2/§3,
# compared to the README's precision)
FIELD = [
    ("chademo/osexpert_logs.candump.txt", "candump", 8694, 8695, "461.3"),
    ("chademo/rand12345_nissan-leaf-chademo-start-stop.csv", "gvret-csv", 4072, 4073, "51.06"),
    ("chademo/dalathegreat_ZE1-chademo-starting-and-charging.csv", "gvret-csv", 4692, 4693, "39.55"),
    ("chademo/dalathegreat_QC_30kWh_canlog_init_only_no_charging.txt", "rxtx-dump", 292, 292, "5.02"),
    ("chademo/damienmaguire_aero3.txt", "candue", 1599, 1603, "190.3"),
    ("chademo/damienmaguire_efaec.txt", "candue", 911, 5644, "114.9"),
    ("chademo/damienmaguire_log.txt", "candue", 845, 880, "62.5"),
    ("chademo/osexpert_GeniePointFail.csv", "gvret-csv", 374, 375, "12.04"),
    ("chademo/osexpert_InstavoltBYDFail.csv", "gvret-csv", 1056, 1057, "31.79"),
    ("chademo/osexpert_evgo_kildare.csv", "gvret-csv", 4014, 4015, "84.27"),
    ("gbt27930/sut4nd0_candump-2023-12-25_220841.log", "candump-log", 1857, 1857, "66.50"),
    ("gbt27930/ru5t_candump3.log", "candump-log", 4770, 4769, "0.0"),
    ("gbt27930/ru5t_candump2.log", "candump-log", 188, 187, "0.0"),
]


def field(name: str) -> Path:
    return FIELD_LOGS / name


@pytest.mark.fieldlogs
@fieldlogs
@pytest.mark.parametrize(("name", "fmt", "frames", "newlines", "span"), FIELD, ids=[f[0] for f in FIELD])
def test_field_log_counts(name: str, fmt: str, frames: int, newlines: int, span: str) -> None:
    path = field(name)
    assert path.read_bytes().count(b"\n") == newlines
    result = read_log(path, strict=True)
    assert result.format == fmt
    assert len(result.frames) == frames
    assert result.problems == () and result.malformed_lines == 0 and result.skipped_frames == 0
    assert result.frames[0].timestamp == 0.0
    half_digit = 0.5 * 10 ** -len(span.partition(".")[2])
    assert result.frames[-1].timestamp == pytest.approx(float(span), abs=half_digit + 1e-9)
    assert monotonic(result) and result.time_corrections == 0
    assert accounted(result)


@pytest.mark.fieldlogs
@fieldlogs
def test_field_osexpert_candump_content() -> None:
    result = read_log(field("chademo/osexpert_logs.candump.txt"))
    assert {f.arbitration_id for f in result.frames[:143]} == {0x700}
    first = result.frames[143]
    assert (first.arbitration_id, result.info[143].line) == (0x100, 144)
    assert result.info[143].raw_time == "2022-06-02 22:49:58.125771"
    first_102 = next(f for f in result.frames[143:] if f.arbitration_id == 0x102)
    assert first_102.data == bytes.fromhex("029A010000800300")  # Leaf ZE1: protocol 2, target 410 V
    assert first_102.timestamp == pytest.approx(first.timestamp + 0.019985, abs=1e-6)
    assert result.skipped_lines == 1  # line 692, a lone space
    assert 692 not in {i.line for i in result.info}
    assert {i.channel for i in result.info} == {"can1"}
    assert not any(f.is_extended_id for f in result)


@pytest.mark.fieldlogs
@fieldlogs
def test_field_csv_negative_and_dlc6() -> None:
    ze1 = read_log(field("chademo/dalathegreat_ZE1-chademo-starting-and-charging.csv"))
    assert ze1.info[0].raw_time == "-1688467643383897"
    assert ze1.frames[0] == Frame(0x201, bytes.fromhex("0200000000000000"), False, 0.0)
    evgo = read_log(field("chademo/osexpert_evgo_kildare.csv"))
    dlc6 = {f.arbitration_id for f in evgo if f.dlc == 6}
    assert dlc6 == set(range(0x521, 0x529))
    assert evgo.frames[0].data == bytes.fromhex("07091D070000")


@pytest.mark.fieldlogs
@fieldlogs
def test_field_rxtx_dump_directions() -> None:
    result = read_log(field("chademo/dalathegreat_QC_30kWh_canlog_init_only_no_charging.txt"))
    tx = [(f, i) for f, i in zip(result.frames, result.info, strict=True) if i.direction == TX]
    assert tx and {i.channel for _, i in tx} == {"1"}
    f108, i108 = tx[0]
    assert (f108.arbitration_id, f108.data) == (0x108, bytes.fromhex("01AFC80BAFC80000"))
    assert i108.raw_time == "14.543" and f108.timestamp == pytest.approx(0.072)
    assert result.info[0].raw_time == "14.471" and result.info[-1].raw_time == "19.487"
    assert 17.44 <= max(float(i.raw_time) for _, i in tx) < 17.45  # "emulator stops sending after 17.44 s"


@pytest.mark.fieldlogs
@fieldlogs
def test_field_candue_stray_d_and_text_lines() -> None:
    aero3 = read_log(field("chademo/damienmaguire_aero3.txt"))
    by_line = dict(zip((i.line for i in aero3.info), aero3.frames, strict=True))
    assert by_line[1598].arbitration_id == 0x404
    assert by_line[1598].data == bytes.fromhex("065BFFFE02260000")
    assert aero3.skipped_lines == 4
    efaec = read_log(field("chademo/damienmaguire_efaec.txt"))
    assert efaec.skipped_lines == 4733
    assert sum(1 for f in efaec if f.arbitration_id == 0x101) == 11
    log = read_log(field("chademo/damienmaguire_log.txt"))
    assert 877 in {i.line for i in log.info}


@pytest.mark.fieldlogs
@fieldlogs
def test_field_gbt_candump_logs_match_python_can() -> None:
    for name in ("gbt27930/sut4nd0_candump-2023-12-25_220841.log", "gbt27930/ru5t_candump2.log"):
        ours = read_log(field(name))
        theirs = read_log(field(name), format="python-can")
        assert ours.frames == theirs.frames
    sut = read_log(field("gbt27930/sut4nd0_candump-2023-12-25_220841.log"))
    assert sut.frames[0] == Frame(0x0070F4B5, b"\x00\x00\xb5", True, 0.0)
    assert all(f.is_extended_id for f in sut)
    ru5t3 = read_log(field("gbt27930/ru5t_candump3.log"))
    assert ru5t3.lines_read == 4770  # 4,769 newlines and an unterminated last line
    assert ru5t3.frames[-1] == Frame(0x101AF456, bytes.fromhex("0400F0F0"), True, 0.0)
