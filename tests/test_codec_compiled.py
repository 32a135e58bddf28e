"""The generated codec: encoders/framers built from the DBC behave exactly as ``encode``/``decode``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charger_sim.codec import load_dbc
from charger_sim.errors import DecodeError, EncodeError
from charger_sim.frames import Frame

CODEC = load_dbc("chademo")
M109 = CODEC.message("ChargerStatus")
STATUS = {s.name: 0 for s in M109.signals} | {"ProtocolNumberEVSE": 2, "PresentOutputVoltage": 380}


def test_truncated_decode_is_not_served_from_the_cache() -> None:
    """Regression: a 7-byte frame decoded with allow_truncated used to be cached, and the same bytes
    then decoded without allow_truncated came back from the cache instead of raising."""
    data = M109.encode(STATUS)[:7]
    assert "RemainingTimeMin" not in M109.decode(data, allow_truncated=True)
    with pytest.raises(DecodeError, match="7 data bytes"):
        M109.decode(data)


def test_decoded_dicts_are_private_copies() -> None:
    data = M109.encode(STATUS)
    first = M109.decode(data)
    first["PresentOutputVoltage"] = 1
    assert M109.decode(data)["PresentOutputVoltage"] == 380


@settings(max_examples=100, deadline=None)
@given(volts=st.integers(0, 1000), amps=st.integers(0, 255), flags=st.integers(0, 63), now=st.floats(0, 1e6))
def test_framer_matches_encode_and_frame(volts: int, amps: int, flags: int, now: float) -> None:
    names = [s.name for s in M109.signals if s.name.startswith("Status")]
    framer = M109.framer(
        "PresentOutputVoltage",
        "PresentOutputCurrent",
        *names,
        **{
            k: v
            for k, v in STATUS.items()
            if k not in ("PresentOutputVoltage", "PresentOutputCurrent", *names)
        },
    )
    bits = [(flags >> i) & 1 for i in range(len(names))]
    values = {
        **STATUS,
        "PresentOutputVoltage": volts,
        "PresentOutputCurrent": amps,
        **dict(zip(names, bits, strict=True)),
    }
    got = framer(now, volts, amps, *bits)
    assert got == Frame(0x109, M109.encode(values), False, now)
    assert got == M109.frame(values, now)


def test_encoder_checks_ranges_and_names() -> None:
    enc = M109.encoder(*STATUS)
    with pytest.raises(EncodeError, match="PresentOutputCurrent = 300 is above its maximum"):
        enc(*{**STATUS, "PresentOutputCurrent": 300}.values())
    with pytest.raises(EncodeError, match="misses signals"):
        M109.encoder("PresentOutputVoltage")
    with pytest.raises(EncodeError, match="unknown signals"):
        M109.encoder(*STATUS, Bogus=1)
    with pytest.raises(EncodeError, match="ProtocolNumberEVSE = 999"):
        M109.encoder(*[n for n in STATUS if n != "ProtocolNumberEVSE"], ProtocolNumberEVSE=999)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "12", None])
def test_non_numbers_are_encode_errors(bad: object) -> None:
    with pytest.raises(EncodeError, match="PresentOutputVoltage"):
        M109.encode({**STATUS, "PresentOutputVoltage": bad})  # type: ignore[dict-item]


def test_dbc_default_unused_bits_apply(tmp_path: Path) -> None:
    text = (CODEC.path).read_text(encoding="utf-8")
    custom = tmp_path / "chademo.dbc"
    custom.write_text(text.replace('BA_DEF_DEF_ "CsimUnusedBits" 0;', 'BA_DEF_DEF_ "CsimUnusedBits" 255;'))
    other = load_dbc("chademo", tmp_path).message("ChargerStatus")
    assert other.encode(STATUS)[4] == 0xFE  # bits 33-39 of 0x109 are unused
    assert M109.encode(STATUS)[4] == 0x00
