"""dbc/gbt27930.dbc: layout, round trips, 1-padding, cantools cross-check and real captured frames."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charger_sim.codec import Codec, MessageCodec, SignalSpec, Value, load_dbc
from charger_sim.errors import DecodeError, EncodeError

FIELD_LOGS = Path(__file__).resolve().parents[1].parent / "shared" / "field-logs" / "gbt27930"
CAPTURE_A = FIELD_LOGS / "sut4nd0_candump-2023-12-25_220841.log"
CAPTURE_B = FIELD_LOGS / "ru5t_candump3.log"
CAPTURE_C = FIELD_LOGS / "ru5t_candump2.log"

CHARGER, BMS = 0x56, 0xF4

# name: (PGN, priority, sender, DLC / reassembled length, cycle time ms) -- fact sheet section 3
CATALOGUE: dict[str, tuple[int, int, str, int, int]] = {
    "CHM": (0x2600, 6, "CHARGER", 3, 250),
    "BHM": (0x2700, 6, "BMS", 2, 250),
    "CRM": (0x0100, 6, "CHARGER", 8, 250),
    "BRM": (0x0200, 7, "BMS", 49, 250),
    "BCP": (0x0600, 7, "BMS", 13, 500),
    "CTS": (0x0700, 6, "CHARGER", 7, 500),
    "CML": (0x0800, 6, "CHARGER", 8, 250),
    "BRO": (0x0900, 4, "BMS", 1, 250),
    "CRO": (0x0A00, 4, "CHARGER", 1, 250),
    "BCL": (0x1000, 6, "BMS", 5, 50),
    "BCS": (0x1100, 7, "BMS", 9, 250),
    "CCS": (0x1200, 6, "CHARGER", 8, 50),
    "BSM": (0x1300, 6, "BMS", 7, 250),
    "BMV": (0x1500, 7, "BMS", 512, 10000),
    "BMT": (0x1600, 7, "BMS", 128, 10000),
    "BSP": (0x1700, 7, "BMS", 16, 10000),
    "BST": (0x1900, 4, "BMS", 4, 10),
    "CST": (0x1A00, 4, "CHARGER", 4, 10),
    "BSD": (0x1C00, 6, "BMS", 7, 250),
    "CSD": (0x1D00, 6, "CHARGER", 8, 250),
    "BEM": (0x1E00, 2, "BMS", 4, 250),
    "CEM": (0x1F00, 2, "CHARGER", 4, 250),
}


@pytest.fixture(scope="module")
def codec() -> Codec:
    return load_dbc("gbt27930")


def gbt_id(pgn: int, priority: int, sender: str) -> int:
    source, dest = (CHARGER, BMS) if sender == "CHARGER" else (BMS, CHARGER)
    return (priority << 26) | ((pgn >> 8) << 16) | (dest << 8) | source


def raw_limits(spec: SignalSpec) -> tuple[int, int]:
    """Smallest and largest raw value the DBC range allows."""
    lo, hi = 0, spec.mask
    if spec.minimum is not None:
        lo = max(lo, math.ceil((spec.minimum - spec.offset) / spec.scale - 1e-9))
    if spec.maximum is not None:
        hi = min(hi, math.floor((spec.maximum - spec.offset) / spec.scale + 1e-9))
    return lo, hi


def physical(mc: MessageCodec, raws: dict[str, int]) -> dict[str, Value]:
    return {name: mc.signal(name).from_raw(raw) for name, raw in raws.items()}


def assert_values_equal(got: dict[str, Value], want: dict[str, Value]) -> None:
    assert got.keys() == want.keys()
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name


# --- layout -------------------------------------------------------------------------------------------


def test_loads_every_message_with_ids_lengths_and_cycle_times(codec: Codec) -> None:
    assert sorted(m.name for m in codec.messages) == sorted(CATALOGUE)
    for name, (pgn, priority, sender, length, cycle) in CATALOGUE.items():
        mc = codec.message(name)
        assert mc.is_extended, name
        assert mc.frame_id == gbt_id(pgn, priority, sender), name
        assert mc.length == length, name
        assert mc.cycle_time == cycle, name
        assert mc.senders == (sender,), name
        assert mc.comment, name
        assert codec.by_id(mc.frame_id, extended=True) is mc


def test_sheet_ids_and_extended_dbc_ids(codec: Codec) -> None:
    assert codec.message("CHM").frame_id == 0x1826F456
    assert codec.message("CHM").message.dbc is not None
    assert codec.message("BHM").frame_id == 0x182756F4
    assert codec.message("BRO").frame_id == 0x100956F4
    assert codec.message("BEM").frame_id == 0x081E56F4
    assert codec.message("CEM").frame_id == 0x081FF456
    # virtual IDs of TP messages (fact sheet section 3)
    assert codec.message("BRM").frame_id == 0x1C0256F4
    assert codec.message("BCP").frame_id == 0x1C0656F4
    assert codec.message("BCS").frame_id == 0x1C1156F4
    text = (Path(__file__).resolve().parents[1] / "dbc" / "gbt27930.dbc").read_text()
    assert "BO_ 2552689750 CHM: 3 CHARGER" in text  # 0x1826F456 | 0x80000000


def test_only_tp_messages_are_longer_than_8_bytes(codec: Codec) -> None:
    longer = {m.name for m in codec.messages if m.length > 8}
    assert longer == {"BRM", "BCP", "BCS", "BMV", "BMT", "BSP"}


def test_two_bit_fields_have_value_tables(codec: Codec) -> None:
    two_bit = [(m.name, s) for m in codec.messages for s in m.signals if s.length == 2]
    assert len(two_bit) == 8 + 14 + 12 + 7 + 7  # CCS 1 + BSM 7, BST, CST, BEM, CEM
    for name, s in two_bit:
        assert set(s.choices) == {0, 1, 2, 3}, (name, s.name)
        assert s.choices[3] == "NotAvailable", (name, s.name)
        # 10 = untrusted, except the two BSM level fields where the sheet defines 10 = too low
        low = name == "BSM" and s.name in ("CellVoltageState", "SocState")
        assert s.choices[2] == ("TooLow" if low else "Untrusted"), (name, s.name)
    assert codec.message("CEM").describe("TimeoutBrm", 1) == "Timeout"
    assert codec.message("CST").describe("ManualStop", 1) == "Stopped"
    assert codec.message("BSM").describe("CellVoltageState", 2) == "TooLow"
    assert codec.message("CRM").describe("RecognitionResult", 0xAA) == "Recognised"
    assert codec.message("BRM").describe("BatteryType", 3) == "LFP"


def test_signals_do_not_overlap_and_fit(codec: Codec) -> None:
    for mc in codec.messages:
        covered = 0
        for s in mc.signals:
            mask = s.mask << s.start
            assert covered & mask == 0, (mc.name, s.name)
            assert s.start + s.length <= 8 * mc.length, (mc.name, s.name)
            covered |= mask


# --- round trips --------------------------------------------------------------------------------------

TYPICAL: dict[str, dict[str, Value]] = {
    "CHM": {"ProtocolVersionMinor": 1, "ProtocolVersionMajor": 1},
    "BHM": {"MaxPermissibleChargeVoltage": 426.1},
    "CML": {
        "MaxOutputVoltage": 950.0,
        "MinOutputVoltage": 38.0,
        "MaxOutputCurrent": -250.0,
        "MinOutputCurrent": 0.0,
    },
    "BCL": {"VoltageDemand": 426.1, "CurrentDemand": -35.8, "ChargeMode": 2},
    "BCP": {
        "MaxCellVoltage": 3.7,
        "MaxChargeCurrent": -250.2,
        "NominalEnergy": 55.4,
        "MaxTotalChargeVoltage": 426.1,
        "MaxTemperature": 65,
        "SOC": 77.6,
        "PresentBatteryVoltage": 378.2,
    },
    "BCS": {
        "MeasuredVoltage": 378.1,
        "MeasuredCurrent": -32.6,
        "MaxCellVoltage": 3.32,
        "MaxCellGroup": 6,
        "SOC": 77,
        "RemainingTime": 43,
    },
    "CCS": {"OutputVoltage": 384.0, "OutputCurrent": -35.8, "ChargeTime": 12, "ChargePermit": 1},
    "BSD": {
        "StopSOC": 77,
        "MinCellVoltage": 3.33,
        "MaxCellVoltage": 3.34,
        "MinTemperature": 3,
        "MaxTemperature": 4,
    },
    "CSD": {"ChargeTime": 27, "OutputEnergy": 12.5, "ChargerNumber": 0x01010101},
}


@pytest.mark.parametrize("name", sorted(TYPICAL))
def test_typical_values_round_trip(codec: Codec, name: str) -> None:
    mc = codec.message(name)
    data = mc.encode(TYPICAL[name])
    assert len(data) == mc.length
    assert_values_equal(mc.decode(data), TYPICAL[name])


@pytest.mark.parametrize("name", sorted(CATALOGUE))
@pytest.mark.parametrize("which", ["min", "max", "mid"])
def test_extreme_values_round_trip(codec: Codec, name: str, which: str) -> None:
    mc = codec.message(name)
    raws = {}
    for s in mc.signals:
        lo, hi = raw_limits(s)
        raws[s.name] = {"min": lo, "max": hi, "mid": (lo + hi) // 2}[which]
    values = physical(mc, raws)
    data = mc.encode(values)
    assert len(data) == mc.length
    assert_values_equal(mc.decode(data), values)
    assert mc.message.decode(data, decode_choices=False, scaling=False) == raws


def test_out_of_range_values_are_refused(codec: Codec) -> None:
    bcs = dict(TYPICAL["BCS"])
    bcs["RemainingTime"] = 601  # the standard caps it at 600 min
    with pytest.raises(EncodeError):
        codec.message("BCS").encode(bcs)
    bcp = dict(TYPICAL["BCP"])
    bcp["SOC"] = 100.1
    with pytest.raises(EncodeError):
        codec.message("BCP").encode(bcp)
    with pytest.raises(EncodeError):
        codec.message("CHM").encode({"ProtocolVersionMinor": 1})


def test_current_scaling_matches_sheet(codec: Codec) -> None:
    cml = codec.message("CML")
    data = cml.encode(TYPICAL["CML"])
    assert data[4:6] == bytes.fromhex("DC05")  # -250 A = raw 1500
    assert data[6:8] == bytes.fromhex("A00F")  # 0 A = raw 4000


# --- padding with 1s ----------------------------------------------------------------------------------


def test_unused_bits_are_sent_as_ones(codec: Codec) -> None:
    ccs = codec.message("CCS").encode(TYPICAL["CCS"])
    assert ccs[6] == 0xFD and ccs[7] == 0xFF  # permit 01, bits 3-8 = 1, byte 8 unused
    st_fields = {s.name: 0 for s in codec.message("CST").signals}
    assert codec.message("CST").encode({**st_fields, "ManualStop": 1}) == bytes.fromhex("0400F0F0")
    bem = {s.name: 0 for s in codec.message("BEM").signals}
    assert codec.message("BEM").encode({**bem, "TimeoutCrmAA": 1}) == bytes.fromhex("F4F0F0FC")
    assert codec.message("BEM").encode({**bem, "TimeoutCtsCml": 1}) == bytes.fromhex("F0F1F0FC")
    cem = {s.name: 0 for s in codec.message("CEM").signals}
    assert codec.message("CEM").encode({**cem, "TimeoutBrm": 1}) == bytes.fromhex("FDF0C0FC")
    bst = {s.name: 0 for s in codec.message("BST").signals}
    assert codec.message("BST").encode({**bst, "ChargerStopped": 1}) == bytes.fromhex("400000F0")
    bsm = {s.name: 0 for s in codec.message("BSM").signals}
    bsm.update(MaxCellVoltageNumber=1, MaxTempProbe=1, MinTempProbe=1, MaxTemperature=-50, MinTemperature=-50)
    assert codec.message("BSM").encode({**bsm, "ChargePermit": 1})[6] == 0xD0


def test_brm_reserved_bytes_are_ones(codec: Codec) -> None:
    brm = codec.message("BRM")
    data = brm.encode({s.name: s.from_raw(0) for s in brm.signals})
    assert data[23] == 0xFF  # byte 24 reserved
    assert data[46:49] == b"\xff\xff\xff"  # bytes 47-49 reserved
    assert data.count(0xFF) == 4


# --- cantools cross-check -----------------------------------------------------------------------------


@st.composite
def raw_values(draw: st.DrawFn, mc: MessageCodec) -> dict[str, int]:
    out = {}
    for s in mc.signals:
        lo, hi = raw_limits(s)
        out[s.name] = draw(st.integers(lo, hi))
    return out


def _cross_check(mc: MessageCodec, raws: dict[str, int]) -> None:
    values = physical(mc, raws)
    ours = mc.encode(values)
    # cantools: padding=True fills unused bits with 1, which is what CsimUnusedBits 255 asks for
    theirs = mc.message.encode(raws, scaling=False, padding=True, strict=True)
    assert ours == theirs
    theirs_scaled = mc.message.encode(values, scaling=True, padding=True, strict=True)
    assert ours == theirs_scaled
    assert mc.message.decode(ours, decode_choices=False, scaling=False) == raws
    decoded = mc.message.decode(ours, decode_choices=False)
    assert isinstance(decoded, dict)
    assert_values_equal(mc.decode(ours), {str(k): float(v) for k, v in decoded.items()})  # type: ignore[arg-type]
    assert_values_equal(mc.decode(ours), values)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_fast_codec_matches_cantools(codec: Codec, name: str) -> None:
    mc = codec.message(name)
    examples = 15 if mc.length > 64 else 60

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(raw_values(mc))
    def check(raws: dict[str, int]) -> None:
        _cross_check(mc, raws)

    check()


# --- truncated frames ---------------------------------------------------------------------------------


def test_ccs_with_dlc_7_needs_allow_truncated(codec: Codec) -> None:
    ccs = codec.message("CCS")
    data = bytes.fromhex("240BA00F0000FD")
    with pytest.raises(DecodeError):
        ccs.decode(data)
    values = ccs.decode(data, allow_truncated=True)
    assert values == pytest.approx(
        {"OutputVoltage": 285.2, "OutputCurrent": 0.0, "ChargeTime": 0, "ChargePermit": 1}
    )


def test_41_byte_brm_decodes_up_to_the_vin(codec: Codec) -> None:
    brm = codec.message("BRM")
    vin = b"LFV2A21K6C3123456"
    values = {s.name: s.from_raw(0) for s in brm.signals}
    values.update({f"Vin{i + 1:02d}": ch for i, ch in enumerate(vin)})
    values.update(BatteryType=6, RatedCapacity=180.0, BmsSwYear=2023)
    data = brm.encode(values)[:41]
    decoded = brm.decode(data, allow_truncated=True)
    assert bytes(int(decoded[f"Vin{i + 1:02d}"]) for i in range(17)) == vin
    assert decoded["RatedCapacity"] == pytest.approx(180.0)
    assert not any(k.startswith("BmsSw") for k in decoded)


def test_short_bmv_and_bmt_decode_only_present_cells(codec: Codec) -> None:
    bmv = codec.message("BMV")
    cells = [3.30 + 0.01 * k for k in range(96)]
    values = {s.name: s.from_raw(0) for s in bmv.signals}
    for k, volts in enumerate(cells):
        values[f"CellVoltage{k + 1:03d}"] = round(volts, 2)
        values[f"CellGroup{k + 1:03d}"] = k // 16
    data = bmv.encode(values)[: 2 * len(cells)]
    decoded = bmv.decode(data, allow_truncated=True)
    assert len(decoded) == 2 * len(cells)
    assert decoded["CellVoltage096"] == pytest.approx(4.25)
    assert decoded["CellGroup096"] == 5
    assert int.from_bytes(data[0:2], "little") == (0 << 12) | 330
    bmt = codec.message("BMT")
    decoded_t = bmt.decode(bytes([75, 76, 77]), allow_truncated=True)
    assert decoded_t == {"Temperature001": 25, "Temperature002": 26, "Temperature003": 27}


# --- real captured frames -----------------------------------------------------------------------------


def read_log(path: Path) -> list[tuple[int, bytes]]:
    can = pytest.importorskip("can")
    if not path.is_file():
        pytest.skip(f"field log {path} not available")
    with can.CanutilsLogReader(str(path)) as reader:
        return [(msg.arbitration_id, bytes(msg.data)) for msg in reader if msg.is_extended_id]


def frames_of(log: list[tuple[int, bytes]], can_id: int) -> list[bytes]:
    return [data for ident, data in log if ident == can_id]


def tp_payloads(log: list[tuple[int, bytes]], pgn: int) -> Iterator[bytes]:
    """Reassemble BMS -> charger TP sessions naively (RTS, then in-order DT), independent of transport.py."""
    size, chunks = -1, b""
    for ident, data in log:
        if ident == 0x1CEC56F4 and data[0] == 0x10:
            size = int.from_bytes(data[1:3], "little") if int.from_bytes(data[5:8], "little") == pgn else -1
            chunks = b""
        elif ident == 0x1CEB56F4 and size >= 0:
            chunks += data[1:8]
            if len(chunks) >= size:
                yield chunks[:size]
                size = -1


@pytest.mark.fieldlogs
def test_capture_a_single_frames(codec: Codec) -> None:
    log = read_log(CAPTURE_A)
    dec = {m.name: m for m in codec.messages}
    assert dec["CHM"].decode(frames_of(log, 0x1826F456)[0]) == {
        "ProtocolVersionMinor": 1,
        "ProtocolVersionMajor": 1,
    }
    assert dec["BHM"].decode(frames_of(log, 0x182756F4)[0]) == {
        "MaxPermissibleChargeVoltage": pytest.approx(426.1)
    }
    crm = [dec["CRM"].decode(d) for d in frames_of(log, 0x1801F456)]
    assert [c["RecognitionResult"] for c in crm] == [0x00, 0xAA]
    assert crm[0]["ChargerNumber"] == 0x01010101
    assert bytes(int(crm[0][f"ChargerAreaCode{i}"]) for i in (1, 2, 3)) == b"123"
    cts = dec["CTS"].decode(frames_of(log, 0x1807F456)[0])
    assert cts == {"Second": 0xFF, "Minute": 0xFF, "Hour": 0xFF, "Day": 0xFF, "Month": 0xFF, "Year": 0xFFFF}
    cml = dec["CML"].decode(frames_of(log, 0x1808F456)[0])
    assert cml == pytest.approx(
        {
            "MaxOutputVoltage": 950.0,
            "MinOutputVoltage": 38.0,
            "MaxOutputCurrent": -250.0,
            "MinOutputCurrent": 0.0,
        }
    )
    bro = [dec["BRO"].decode(d)["BmsReady"] for d in frames_of(log, 0x100956F4)]
    assert bro == [0x00] * 5 + [0xAA]
    assert [dec["CRO"].decode(d)["ChargerReady"] for d in frames_of(log, 0x100AF456)] == [0x00, 0xAA]
    bcl = [dec["BCL"].decode(d) for d in frames_of(log, 0x181056F4)]
    assert bcl[0] == pytest.approx({"VoltageDemand": 426.1, "CurrentDemand": -20.0, "ChargeMode": 2})
    assert {round(float(b["CurrentDemand"]), 1) for b in bcl} == {-20.0, -29.8, -32.8, -35.8}
    ccs_frames = frames_of(log, 0x1812F456)
    assert {len(d) for d in ccs_frames} == {7}
    ccs = [dec["CCS"].decode(d, allow_truncated=True) for d in ccs_frames]
    assert ccs[0] == pytest.approx(
        {"OutputVoltage": 285.2, "OutputCurrent": 0.0, "ChargeTime": 0, "ChargePermit": 1}
    )
    assert min(float(c["OutputCurrent"]) for c in ccs) == pytest.approx(-35.8)
    assert all(c["ChargePermit"] == 1 for c in ccs)
    bsm = dec["BSM"].decode(bytes.fromhex("1E3606350F0010"))
    assert bsm == {
        "MaxCellVoltageNumber": 31,
        "MaxTemperature": 4,
        "MaxTempProbe": 7,
        "MinTemperature": 3,
        "MinTempProbe": 16,
        "CellVoltageState": 0,
        "SocState": 0,
        "OverCurrent": 0,
        "OverTemperature": 0,
        "Insulation": 0,
        "OutputConnector": 0,
        "ChargePermit": 1,
    }
    assert bytes.fromhex("1E3606350F0010") in frames_of(log, 0x181356F4)
    cst = {dec["CST"].decode(d)["ManualStop"] for d in frames_of(log, 0x101AF456)}
    assert cst == {1}
    manual = dec["CST"].decode(bytes.fromhex("0400F0F0"))
    assert manual["ManualStop"] == 1 and sum(int(v) for v in manual.values()) == 1
    bst = dec["BST"].decode(frames_of(log, 0x101956F4)[0])
    assert bst["ChargerStopped"] == 1 and sum(int(v) for v in bst.values()) == 1
    bsd = dec["BSD"].decode(bytes.fromhex("4D4D014E013536"))
    assert bsd == pytest.approx(
        {
            "StopSOC": 77,
            "MinCellVoltage": 3.33,
            "MaxCellVoltage": 3.34,
            "MinTemperature": 3,
            "MaxTemperature": 4,
        }
    )
    csd = dec["CSD"].decode(frames_of(log, 0x181DF456)[0])
    assert csd == pytest.approx({"ChargeTime": 0, "OutputEnergy": 0.1, "ChargerNumber": 0x01010101})


@pytest.mark.fieldlogs
def test_capture_a_transport_payloads(codec: Codec) -> None:
    log = read_log(CAPTURE_A)
    (brm_data,) = list(tp_payloads(log, 0x0200))
    assert len(brm_data) == 49
    brm = codec.message("BRM").decode(brm_data)
    assert brm["BmsProtocolVersion"] == 0x000101
    assert codec.message("BRM").describe("BatteryType", brm["BatteryType"]) == "LFP"
    assert brm["RatedCapacity"] == pytest.approx(152.0)
    assert brm["RatedTotalVoltage"] == pytest.approx(364.8)
    assert brm["ProductionYear"] == 2084  # 0x63 + 1985: implausible, as the sheet says
    assert (brm["ProductionMonth"], brm["ProductionDay"], brm["ChargeCount"], brm["Ownership"]) == (
        11,
        8,
        149,
        1,
    )
    assert bytes(int(brm[f"Vin{i + 1:02d}"]) for i in range(17)) == b"L1NSPGH98NA196202"
    assert (brm["BmsSwYear"], brm["BmsSwMonth"], brm["BmsSwDay"], brm["BmsSwSerial"]) == (2023, 4, 1, 0)

    (bcp_data,) = list(tp_payloads(log, 0x0600))
    bcp = codec.message("BCP").decode(bcp_data)
    assert bcp == pytest.approx(
        {
            "MaxCellVoltage": 3.70,
            "MaxChargeCurrent": -250.2,
            "NominalEnergy": 55.4,
            "MaxTotalChargeVoltage": 426.1,
            "MaxTemperature": 65,
            "SOC": 77.6,
            "PresentBatteryVoltage": 378.2,
        }
    )
    bcs_all = [codec.message("BCS").decode(d) for d in tp_payloads(log, 0x1100)]
    assert len(bcs_all) > 50
    assert bcs_all[0] == pytest.approx(
        {
            "MeasuredVoltage": 378.1,
            "MeasuredCurrent": 0.0,
            "MaxCellVoltage": 3.32,
            "MaxCellGroup": 6,
            "SOC": 77,
            "RemainingTime": 0,
        }
    )
    assert any(b["MeasuredCurrent"] == pytest.approx(-32.6) and b["RemainingTime"] == 43 for b in bcs_all)


@pytest.mark.fieldlogs
def test_capture_b_frames(codec: Codec) -> None:
    log = read_log(CAPTURE_B)
    assert codec.message("BHM").decode(frames_of(log, 0x182756F4)[0])["MaxPermissibleChargeVoltage"] == (
        pytest.approx(405.6)
    )
    brm = codec.message("BRM").decode(next(tp_payloads(log, 0x0200)))
    assert codec.message("BRM").describe("BatteryType", brm["BatteryType"]) == "NCM"
    assert brm["RatedCapacity"] == pytest.approx(180.0) and brm["RatedTotalVoltage"] == pytest.approx(346.6)
    assert bytes(int(brm[f"Manufacturer{i}"]) for i in (1, 2, 3, 4)) == b"CATL"
    assert brm["PackSerial"] == 0xFFFFFFFF and brm["Vin01"] == 0xFF
    cml = codec.message("CML").decode(frames_of(log, 0x1808F456)[0])
    assert cml["MaxOutputVoltage"] == pytest.approx(450.0)
    assert cml["MinOutputVoltage"] == pytest.approx(200.0)
    assert cml["MaxOutputCurrent"] == pytest.approx(-120.0)
    cts = codec.message("CTS").decode(frames_of(log, 0x1807F456)[0])
    assert (cts["Hour"], cts["Day"], cts["Year"]) == (0x08, 0x09, 0x1415)  # non-BCD garbage, decoded raw
    ccs = [codec.message("CCS").decode(d, allow_truncated=True) for d in frames_of(log, 0x1812F456)]
    assert min(float(c["OutputCurrent"]) for c in ccs) == pytest.approx(-117.0)
    # byte 7 is 01 (allow) without the 1-padding, 00 (pause) in a few frames
    permits = [c["ChargePermit"] for c in ccs]
    assert set(permits) == {0, 1} and permits.count(1) > 0.9 * len(permits)
    bcs_raw = list(tp_payloads(log, 0x1100))
    assert bcs_raw[-1] == bytes.fromhex("AB0DA70F6C41235400")
    bcs = [codec.message("BCS").decode(d) for d in bcs_raw]
    # the sheet's "last AB 0D A7 0F 6C 41 23 54 00 = 350.7 V": the bytes are right, 0x0DAB = 3499 is 349.9 V
    assert bcs[-1] == pytest.approx(
        {
            "MeasuredVoltage": 349.9,
            "MeasuredCurrent": 0.7,
            "MaxCellVoltage": 3.64,
            "MaxCellGroup": 4,
            "SOC": 35,
            "RemainingTime": 84,
        }
    )


@pytest.mark.fieldlogs
def test_capture_c_error_frames(codec: Codec) -> None:
    log = read_log(CAPTURE_C)
    bem = [codec.message("BEM").decode(d) for d in frames_of(log, 0x081E56F4)]
    crm_aa = [b for b in bem if b["TimeoutCrmAA"] == 1]
    cts_cml = [b for b in bem if b["TimeoutCtsCml"] == 1]
    assert len(crm_aa) == 10 and len(cts_cml) == 5
    assert all(sum(int(v) for v in b.values()) == 1 for b in bem)
    cml = codec.message("CML").decode(frames_of(log, 0x1808F456)[0])
    # the sheet's "decoded minimum current exceeds the maximum": 280 A minimum vs 50 A maximum
    assert cml["MaxOutputCurrent"] == pytest.approx(-50.0)
    assert cml["MinOutputCurrent"] == pytest.approx(-280.0)
    assert abs(cml["MinOutputCurrent"]) > abs(cml["MaxOutputCurrent"])
    assert codec.message("BHM").decode(frames_of(log, 0x182756F4)[0])["MaxPermissibleChargeVoltage"] == (
        pytest.approx(495.1)
    )
