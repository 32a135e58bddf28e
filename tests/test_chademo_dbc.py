"""dbc/chademo.dbc: strict load, every message round-trips, our codec agrees with cantools, real frames."""

from __future__ import annotations

import cantools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charger_sim.codec import load_dbc
from charger_sim.errors import DecodeError, EncodeError

CODEC = load_dbc("chademo")
IDS = {0x100, 0x101, 0x102, 0x108, 0x109, 0x110, 0x118}


def test_strict_load_and_inventory() -> None:
    db = cantools.database.load_file(str(CODEC.path), strict=True)
    assert {m.frame_id for m in db.messages} == IDS
    for m in CODEC.messages:
        assert m.length == 8 and not m.is_extended and m.cycle_time == 100


def test_every_flag_bit_is_a_signal_with_a_value_table() -> None:
    for name in ("VehicleChargeControl", "ChargerStatus"):
        m = CODEC.message(name)
        for s in m.signals:
            if s.length == 1:
                assert len(s.choices) == 2, f"{name}.{s.name} has no value table"


def _values(draw: st.DrawFn, name: str) -> dict[str, float | int]:
    m = CODEC.message(name)
    out: dict[str, float | int] = {}
    for s in m.signals:
        lo = int(s.minimum or 0)
        hi = int(s.maximum if s.maximum is not None else s.mask)
        raw = draw(
            st.integers(
                min_value=round((lo - s.offset) / s.scale), max_value=round((hi - s.offset) / s.scale)
            )
        )
        out[s.name] = s.from_raw(raw)
    return out


@pytest.mark.parametrize("name", [m.name for m in CODEC.messages])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip_and_agreement_with_cantools(name: str, data: st.DataObject) -> None:
    values = data.draw(st.composite(lambda draw: _values(draw, name))())
    m = CODEC.message(name)
    encoded = m.encode(values)
    assert m.decode(encoded) == pytest.approx(values)
    ref = m.message
    assert ref.encode(values, scaling=True, strict=True) == encoded
    assert ref.decode(encoded, decode_choices=False) == pytest.approx(m.decode(encoded))


def test_real_leaf_frames_decode() -> None:
    # Leaf ZE1 first frames (fact sheet §9) and a charger frame from the ZE1 capture.
    v102 = CODEC.by_id(0x102)
    assert v102 is not None
    d = v102.decode(bytes.fromhex("029A010000800300"))
    assert d["ProtocolNumberEV"] == 2 and d["TargetBatteryVoltage"] == 410
    assert d["DischargeCompatible"] == 1 and d["ChargingEnabled"] == 0 and d["ChargedRate"] == 3
    v100 = CODEC.message("VehicleChargeLimits").decode(bytes.fromhex("06000000B301F000"))
    assert (
        v100["MinChargeCurrent"] == 6
        and v100["MaxBatteryVoltage"] == 435
        and v100["ChargedRateRefConst"] == 0xF0
    )
    s109 = CODEC.message("ChargerStatus").decode(bytes.fromhex("0200000000 20 FF5A".replace(" ", "")))
    assert (
        s109["StatusStopControl"] == 1 and s109["RemainingTime10s"] == 0xFF and s109["RemainingTimeMin"] == 90
    )


def test_out_of_range_and_wrong_length_are_errors() -> None:
    m = CODEC.message("ChargerCapability")
    ok = {
        "WeldingDetectionSupport": 1,
        "AvailableOutputVoltage": 500,
        "AvailableOutputCurrent": 125,
        "ThresholdVoltage": 435,
    }
    with pytest.raises(EncodeError, match="AvailableOutputCurrent"):
        m.encode({**ok, "AvailableOutputCurrent": 300})
    with pytest.raises(EncodeError, match="missing"):
        m.encode({"ThresholdVoltage": 1})
    with pytest.raises(DecodeError, match="6 data bytes"):
        m.decode(bytes(6))
    assert "AvailableOutputCurrent" not in m.decode(bytes(3), allow_truncated=True)
