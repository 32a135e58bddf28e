"""The CCS electrical model: control pilot states A-F, EV resistances, PWM duty, diode check, PP codes."""

from __future__ import annotations

import math

import pytest

from charger_sim.plant.harness import Harness
from charger_sim.protocols.ccs import electrical as E
from charger_sim.protocols.ccs.electrical import Connector, CpMode, CpState, PpCode


def test_ev_resistances() -> None:
    assert E.EV_LOAD_OHM[CpState.B] == 2740.0
    assert E.EV_LOAD_OHM[CpState.C] == pytest.approx(882, abs=1)  # 2.74 k || 1.3 k
    assert E.EV_LOAD_OHM[CpState.D] == pytest.approx(246, abs=1)  # 2.74 k || 270
    assert math.isinf(E.EV_LOAD_OHM[CpState.A])
    assert E.ev_load_ohm(False) == E.EV_LOAD_OHM[CpState.B]
    assert E.ev_load_ohm(True) == E.EV_LOAD_OHM[CpState.C]
    assert E.ev_load_ohm(True, ventilation=True) == E.EV_LOAD_OHM[CpState.D]


@pytest.mark.parametrize("state", [CpState.B, CpState.C, CpState.D])
def test_ev_loads_give_the_nominal_levels(state: CpState) -> None:
    high, low = E.cp_levels(CpMode.NORMAL, E.EV_LOAD_OHM[state], diode=True)
    assert high == pytest.approx(E.NOMINAL_V[state], abs=0.1)  # 9 / 6 / 3 V
    assert low == -12.0  # the diode blocks the negative half
    assert E.classify(high) is state


@pytest.mark.parametrize(
    ("mode", "ev_ohm", "short", "connected", "state"),
    [
        (CpMode.NORMAL, math.inf, False, True, CpState.A),  # no EV load: +12 V
        (CpMode.NORMAL, 2740.0, False, False, CpState.A),  # plug out
        (CpMode.NORMAL, 2740.0, True, True, CpState.E),  # CP shorted to PE: 0 V
        (CpMode.UNPOWERED, 2740.0, False, True, CpState.E),  # EVSE without power
        (CpMode.FAULT, 2740.0, False, True, CpState.F),  # EVSE drives -12 V
    ],
)
def test_states_a_e_f(mode: CpMode, ev_ohm: float, short: bool, connected: bool, state: CpState) -> None:
    high, _ = E.cp_levels(mode, ev_ohm, diode=True, short=short, connected=connected)
    assert high == pytest.approx(E.NOMINAL_V[state])
    assert E.classify(high) is state


@pytest.mark.parametrize("state", list(E.NOMINAL_V))
def test_receiver_windows_are_plus_minus_one_volt(state: CpState) -> None:
    nominal = E.NOMINAL_V[state]
    for delta in (-0.99, 0.0, 0.99):
        assert E.classify(nominal + delta) is state
    for delta in (-1.01, 1.01):
        assert E.classify(nominal + delta) is not state


@pytest.mark.parametrize("volts", [10.5, 7.5, 4.5, 1.5, -5.0, -13.5, 14.0])
def test_levels_between_the_windows_are_invalid(volts: float) -> None:
    assert E.classify(volts) is CpState.INVALID


def test_diode_check() -> None:
    _, low = E.cp_levels(CpMode.NORMAL, 2740.0, diode=True)
    assert E.diode_ok(low)
    high, low = E.cp_levels(CpMode.NORMAL, 2740.0, diode=False)
    assert low == pytest.approx(-high)  # near minus the high level: missing / shorted diode
    assert not E.diode_ok(low)
    assert E.classify(high) is CpState.B  # the high level alone does not show it


@pytest.mark.parametrize(
    ("duty", "meaning"),
    [
        (5.0, "digital communication required"),
        (3.0, "digital communication required"),
        (7.0, "digital communication required"),
        (2.9, "not allowed (0 A)"),
        (7.5, "not allowed (0 A)"),
        (100.0, "no PWM: no current offered, no communication"),
        (50.0, "AC current limit 30 A"),
    ],
)
def test_duty_meanings(duty: float, meaning: str) -> None:
    assert E.duty_meaning(duty) == meaning


@pytest.mark.parametrize(
    ("duty", "amps"),
    [(10.0, 6.0), (25.0, 15.0), (50.0, 30.0), (85.0, 51.0), (90.0, 65.0), (96.0, 80.0), (97.0, 80.0),
     (98.0, 0.0), (5.0, 0.0)],
)  # fmt: skip
def test_ac_current_from_duty(duty: float, amps: float) -> None:
    assert E.ac_current_limit(duty) == pytest.approx(amps)


@pytest.mark.parametrize(
    ("ohm", "code"),
    [
        (79.0, PpCode.INVALID),
        (80.0, PpCode.TYPE2_63A),
        (100.0, PpCode.TYPE2_63A),
        (140.0, PpCode.TYPE2_32A),
        (220.0, PpCode.TYPE2_32A),
        (308.0, PpCode.TYPE2_20A),
        (680.0, PpCode.TYPE2_20A),
        (936.0, PpCode.TYPE2_13A),
        (1500.0, PpCode.TYPE2_13A),
        (2459.0, PpCode.TYPE2_13A),
        (2460.0, PpCode.INVALID),
        (3700.0, PpCode.INVALID),
        (4094.0, PpCode.NOT_CONNECTED),
        (math.inf, PpCode.NOT_CONNECTED),
    ],
)
def test_type2_pp_windows(ohm: float, code: PpCode) -> None:
    assert E.pp_decode(ohm, Connector.CCS2) is code


@pytest.mark.parametrize(
    ("ohm", "code"),
    [(150.0, PpCode.TYPE1_LATCHED), (480.0, PpCode.TYPE1_BUTTON_PRESSED), (60.0, PpCode.INVALID),
     (1500.0, PpCode.INVALID), (math.inf, PpCode.NOT_CONNECTED)],
)  # fmt: skip
def test_type1_pp_codes(ohm: float, code: PpCode) -> None:
    assert E.pp_decode(ohm, Connector.CCS1) is code


def test_nominal_resistors_decode_to_their_own_code_and_rating() -> None:
    for code, ohm in E.PP_NOMINAL_OHM.items():
        connector = Connector.CCS1 if code.name.startswith("TYPE1") else Connector.CCS2
        assert E.pp_decode(ohm, connector) is code
    codes = (PpCode.TYPE2_13A, PpCode.TYPE2_20A, PpCode.TYPE2_32A, PpCode.TYPE2_63A)
    assert [E.CABLE_RATING_A[c] for c in codes] == [13.0, 20.0, 32.0, 63.0]
    assert E.pp_ok(PpCode.TYPE2_13A) and E.pp_ok(PpCode.TYPE1_LATCHED)
    assert not E.pp_ok(PpCode.TYPE1_BUTTON_PRESSED) and not E.pp_ok(PpCode.INVALID)


def test_read_pilot_from_harness_lines() -> None:
    h = Harness()
    h.set("cp_mode", CpMode.NORMAL)
    h.set("cp_duty", E.NO_PWM)
    h.set("cp_ev_ohm", E.ev_load_ohm(False))
    h.set("cp_ev_diode", True)
    reading = E.read_pilot(h)
    assert (reading.state, reading.label, reading.pwm, reading.diode_ok) == (CpState.B, "B1", False, None)
    h.set("cp_duty", E.DIGITAL_DUTY)
    h.set("cp_ev_ohm", E.ev_load_ohm(True))
    reading = E.read_pilot(h)
    assert (reading.state, reading.label, reading.pwm, reading.diode_ok) == (CpState.C, "C2", True, True)
    h.set("pp_contact_ohm", 200.0)
    assert E.measure_pp(h, 1500.0) == 1700.0
    h.connected = False
    assert math.isinf(E.measure_pp(h, 1500.0))
    assert E.read_pilot(h).state is CpState.A
