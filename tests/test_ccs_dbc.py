"""dbc/ccs.dbc: strict load, the bridge conventions (SNA, 2-bit booleans, alive counters, unused bits),
value tables that match the cores' enumerations, round trips against cantools, hand-decoded frames."""

from __future__ import annotations

import re
from pathlib import Path

import cantools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charger_sim.codec import load_dbc
from charger_sim.errors import EncodeError
from charger_sim.protocols.ccs import bridge, timing
from charger_sim.protocols.ccs.electrical import CpState, PpCode
from charger_sim.protocols.ccs.states import NUMBER, TRANSITIONS, Stage
from charger_sim.protocols.machine import mermaid

CODEC = load_dbc("ccs")
README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
CHARGER_IDS = {
    0x500: "EvseStatus",
    0x501: "EvseMaxLimits",
    0x502: "EvseMinLimits",
    0x503: "EvsePresentValues",
}
VEHICLE_IDS = {0x510: "EvStatus", 0x511: "EvTargets", 0x512: "EvMaxLimits", 0x513: "EvBatteryInfo"}
BOOL2 = {0: "False", 1: "True", 2: "Invalid", 3: "SNA"}
# 2-bit fields that are enumerations rather than booleans (their value 3 is still SNA)
ENUM2 = {"EvseNotification", "EvseProcessing", "EvContactorState"}


def test_strict_load_and_inventory() -> None:
    db = cantools.database.load_file(str(CODEC.path), strict=True)
    assert {m.frame_id: m.name for m in db.messages} == {**CHARGER_IDS, **VEHICLE_IDS}
    for m in CODEC.messages:
        assert m.length == 8 and not m.is_extended and m.cycle_time == 100
        assert m.senders == (("CHARGER",) if m.frame_id in CHARGER_IDS else ("VEHICLE",))
    assert tuple(CHARGER_IDS.values()) == bridge.CHARGER_FRAMES
    assert tuple(VEHICLE_IDS.values()) == bridge.VEHICLE_FRAMES


def test_signals_do_not_overlap_and_unused_bits_are_ones() -> None:
    for m in CODEC.messages:
        covered = 0
        for s in m.signals:
            bits = s.mask << s.start
            assert not covered & bits, f"{m.name}.{s.name} overlaps"
            covered |= bits
        zeros = m.encode({s.name: s.from_raw(0) for s in m.signals})
        word = int.from_bytes(zeros, "little")
        assert word == ((1 << 64) - 1) & ~covered  # every bit no signal covers is 1


@pytest.mark.parametrize("message", [m.name for m in CODEC.messages])
def test_all_ones_is_sna_for_every_signal(message: str) -> None:
    m = CODEC.message(message)
    for s in m.signals:
        assert s.choices.get(s.mask) == "SNA", f"{m.name}.{s.name}: all ones must be SNA"
        assert s.maximum is not None and s.maximum >= s.from_raw(s.mask) - 1e-9  # SNA is encodable
        assert s.minimum == 0 and not s.signed
    assert m.encode({s.name: bridge.sna(m, s.name) for s in m.signals}) == b"\xff" * 8


def test_flags_are_two_bit_booleans() -> None:
    flags = [(m.name, s) for m in CODEC.messages for s in m.signals if s.length == 2]
    assert len(flags) >= 10
    for message, s in flags:
        if s.name in ENUM2:
            assert s.choices[3] == "SNA"
        else:
            assert s.choices == BOOL2, f"{message}.{s.name}"


def test_alive_counters_are_the_top_nibble_of_the_status_frames() -> None:
    for message, name in (("EvseStatus", "EvseAliveCounter"), ("EvStatus", "EvAliveCounter")):
        s = CODEC.message(message).signal(name)
        assert (s.start, s.length, s.choices) == (60, 4, {15: "SNA"})
    assert [bridge.next_alive(c) for c in (0, 13, 14)] == [1, 14, 0]


@pytest.mark.parametrize(
    ("message", "signal", "enum"),
    [
        ("EvseStatus", "EvseProtocol", bridge.Protocol),
        ("EvseStatus", "EvseResponseCode", bridge.ResponseCode),
        ("EvseStatus", "EvseIsolationStatus", bridge.IsolationStatus),
        ("EvseStatus", "EvseStatusCode", bridge.EvseStatusCode),
        ("EvseStatus", "EvseNotification", bridge.Notification),
        ("EvseStatus", "EvseProcessing", bridge.Processing),
        ("EvseStatus", "CpState", CpState),
        ("EvseStatus", "PpCode", PpCode),
        ("EvStatus", "EvErrorCode", bridge.EvErrorCode),
        ("EvStatus", "EvRequest", bridge.Request),
        ("EvStatus", "EvCpState", CpState),
        ("EvStatus", "EvContactorState", bridge.ContactorState),
    ],
)
def test_value_tables_match_the_cores_enumerations(message: str, signal: str, enum: type) -> None:
    choices = CODEC.message(message).signal(signal).choices
    members = {int(v) for v in enum}  # type: ignore[call-overload]
    assert set(choices) - {15, 31, 255, 7, 3} <= members
    for member in enum:  # type: ignore[attr-defined]
        key = int(member)
        assert key in choices or key == CODEC.message(message).signal(signal).mask
        norm = re.sub(r"[^a-z0-9]", "", choices[key].lower()).removeprefix("evse")
        assert norm == re.sub(r"[^a-z0-9]", "", member.name.lower()) or member.name == "SNA", (
            choices[key],
            member.name,
        )


def test_stage_table_matches_the_stage_numbers() -> None:
    choices = CODEC.message("EvseStatus").signal("EvseStage").choices
    assert set(choices) == {*NUMBER.values(), 255}
    for stage, n in NUMBER.items():
        words = re.sub(r"[^a-z]", "", choices[n].lower())
        assert words.startswith(re.sub(r"[^a-z]", "", stage.value)[:6]) or (stage, n) in {
            (Stage.CP_B_PWM, 2),
            (Stage.POWER_DELIVERY_START, 10),
        }
    # the message stages carry the number of the request they answer
    for request in bridge.Request:
        if request not in (bridge.Request.NONE, bridge.Request.SNA):
            stage = next(s for s, n in NUMBER.items() if n == request)
            assert stage.value.startswith(request.name.lower().split("_")[0]) or stage is Stage.AUTHORIZATION


def _values(draw: st.DrawFn, name: str) -> dict[str, float | int]:
    m = CODEC.message(name)
    return {s.name: s.from_raw(draw(st.integers(0, s.mask))) for s in m.signals}


@pytest.mark.parametrize("name", [m.name for m in CODEC.messages])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_round_trip_and_agreement_with_cantools(name: str, data: st.DataObject) -> None:
    values = data.draw(st.composite(lambda draw: _values(draw, name))())
    m = CODEC.message(name)
    encoded = m.encode(values)
    assert m.decode(encoded) == pytest.approx(values)
    theirs = int.from_bytes(m.message.encode(values, scaling=True, strict=True), "little")
    covered = sum(s.mask << s.start for s in m.signals)
    assert (theirs | (((1 << 64) - 1) & ~covered)).to_bytes(8, "little") == encoded  # unused bits: 1
    assert m.message.decode(encoded, decode_choices=False) == pytest.approx(m.decode(encoded))


# Frames from the shipped basic scenario, decoded by hand with the README's bit layout.
HAND_DECODED = [
    (
        "EvseStatus",
        "08 01 92 0C DC 15 40 04",
        {"EvseStage": 8, "EvseProtocol": 1, "EvseResponseCode": 0, "CpState": 2, "CpDiodePresent": 1,
         "CpDuty": 5.0, "PpResistance": 1500, "PpCode": 1, "EvseIsolationStatus": 0, "EvseStatusCode": 4,
         "EvseNotification": 0, "EvseProcessing": 1, "EvseAliveCounter": 0},
    ),
    (
        "EvseStatus",
        "01 F8 31 FA DC 15 0F 0C",
        {"EvseStage": 1, "EvseProtocol": 0, "EvseResponseCode": 31, "CpState": 1, "CpDiodePresent": 3,
         "CpDuty": 100.0, "PpResistance": 1500, "PpCode": 1, "EvseIsolationStatus": 15, "EvseStatusCode": 0,
         "EvseNotification": 0, "EvseProcessing": 3, "EvseAliveCounter": 0},
    ),
    (
        "EvsePresentValues",
        "8F 0E E2 04 D2 01 C0 02",
        {"EvsePresentVoltage": 372.7, "EvsePresentCurrent": 125.0, "EvsePresentPower": 46.6,
         "EvseCurrentLimitAchieved": 0, "EvseVoltageLimitAchieved": 0, "EvsePowerLimitAchieved": 0,
         "EvseNotificationMaxDelay": 2},
    ),
    (
        "EvStatus",
        "0B 01 20 26 FD FF FF 0F",
        {"EvRequest": 11, "EvReady": 1, "EvChargingComplete": 0, "EvBulkChargingComplete": 0,
         "EvStopRequest": 0, "EvErrorCode": 0, "EvCpState": 2, "EvSoc": 38, "EvContactorState": 1,
         "EvAliveCounter": 0},
    ),
    (
        "EvTargets",
        "C2 0D 14 00 FF FF FF FF",
        {"EvTargetVoltage": 352.2, "EvTargetCurrent": 2.0, "EvRemainingTimeToFullSoc": 65535,
         "EvRemainingTimeToBulkSoc": 65535},
    ),
    ("EvseMaxLimits", "88 13 E2 04 F4 01 FF FF",
     {"EvseMaxVoltage": 500.0, "EvseMaxCurrent": 125.0, "EvseMaxPower": 50.0,
      "EvseEnergyToBeDelivered": 6553.5}),
]  # fmt: skip


@pytest.mark.parametrize(("message", "hexdata", "expected"), HAND_DECODED, ids=[h[1] for h in HAND_DECODED])
def test_hand_decoded_frames(message: str, hexdata: str, expected: dict[str, float]) -> None:
    data = bytes.fromhex(hexdata)
    m = CODEC.message(message)
    assert m.decode(data) == pytest.approx(expected)
    assert m.encode(expected) == data
    if message == "EvseStatus":  # the 10-bit duty across bytes 2-3, as the README writes it
        assert ((data[2] >> 6) | (data[3] << 2)) / 10 == expected["CpDuty"]


def test_out_of_range_is_an_error() -> None:
    m = CODEC.message("EvStatus")
    ok = {s.name: 0 for s in m.signals}
    with pytest.raises(EncodeError, match="EvErrorCode"):
        m.encode({**ok, "EvErrorCode": 16})


def check_readme_section(text: str) -> None:
    """The README's CCS bridge section agrees with the DBC, the stage numbers, the timing table and
    the transition table (its Mermaid diagram is the generated one)."""
    start = text.index("## CCS over CAN")
    end = text.find("\n## ", start + 1)
    text = text[start : end if end > 0 else len(text)]
    lines = text.splitlines()

    def row(key: str) -> list[str]:
        found = next((ln for ln in lines if ln.startswith(f"| `{key}` |")), None)
        assert found is not None, f"{key} missing from the README"
        return [c.strip() for c in found.strip("|").split("|")]

    for m in CODEC.messages:
        assert f"0x{m.frame_id:03X} `{m.name}`" in text, m.name
        for s in m.signals:
            cells = row(s.name)
            assert cells[1:4] == [
                str(s.start),
                str(s.length),
                f"{s.start // 8}.{s.start % 8}–"
                f"{(s.start + s.length - 1) // 8}.{(s.start + s.length - 1) % 8}",
            ], s.name
            assert cells[4] == f"{s.scale:g}", s.name
    for stage, n in NUMBER.items():
        line = next((ln for ln in lines if ln.startswith(f"| {n} | `{stage.value}` |")), None)
        assert line is not None, stage
    for name, value in timing.LIMITS.items():
        line = next((ln for ln in lines if ln.startswith(f"| {name} |")), None)
        assert line is not None, name
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == f"{value.seconds:g} s", name
        assert cells[2] == f"{timing.limit(name, 'din_ts70121_2024'):g} s", name
    start = text.index("```mermaid\nstateDiagram-v2\n    [*] --> idle\n    idle --> plugged_in")
    start = text.index("\n", start) + 1
    end = text.index("```", start)
    assert text[start:end] == mermaid(TRANSITIONS, Stage.IDLE, Stage.DONE)
    assert "bridge profile" in text and "not the PLC link" in text


def test_readme_section_matches_the_dbc_when_present() -> None:
    """Once the README carries the CCS bridge section, it must agree with the code."""
    if "## CCS over CAN" not in README:
        pytest.skip("README has no CCS bridge section yet")
    check_readme_section(README)
