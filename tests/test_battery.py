"""Battery-pack physics model: OCV, coulomb counting, energy, thermal, BMS limits, protections."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import pytest

from charger_sim.bms import CHEMISTRIES, Battery, Chemistry, PackSpec
from charger_sim.bms import battery as battery_module

NO_SPREAD: dict[str, Any] = {"capacity_spread": 0.0, "resistance_spread": 0.0, "soc_spread": 0.0}


def flat_pack(**kwargs: Any) -> PackSpec:
    """A pack with no cell-to-cell spread, so every group is identical and the arithmetic is exact."""
    return PackSpec(**{**NO_SPREAD, **kwargs})


def ocv_integral(chem: Chemistry, soc_a: float, soc_b: float) -> float:
    """∫ cell_ocv d(soc) from soc_a to soc_b (percent·volts), computed independently from the table."""
    total = 0.0
    for (s0, v0), (s1, v1) in zip(chem.ocv, chem.ocv[1:], strict=False):
        lo, hi = max(s0, soc_a), min(s1, soc_b)
        if hi > lo:
            slope = (v1 - v0) / (s1 - s0)
            total += (hi - lo) * (v0 + slope * ((lo + hi) / 2 - s0))
    return total


# --- module hygiene ------------------------------------------------------------------------------


def test_no_forbidden_imports() -> None:
    forbidden = {"can", "time", "threading", "asyncio"}
    for path in (Path(battery_module.__file__), Path(battery_module.__file__).with_name("__init__.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_specs_are_frozen_and_slotted() -> None:
    spec = PackSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.series = 10  # type: ignore[misc]
    assert not hasattr(spec, "__dict__")
    assert not hasattr(CHEMISTRIES["nmc"], "__dict__")


# --- OCV -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "v0", "v100"), [("nmc", 3.00, 4.20), ("lfp", 2.50, 3.65), ("lmo", 3.00, 4.15)]
)
def test_ocv_tables_monotonic_with_exact_endpoints(name: str, v0: float, v100: float) -> None:
    chem = CHEMISTRIES[name]
    assert chem.name == name
    assert chem.cell_ocv(0.0) == v0
    assert chem.cell_ocv(100.0) == v100
    socs = [s / 10 for s in range(1001)]
    volts = [chem.cell_ocv(s) for s in socs]
    assert all(b > a for a, b in itertools.pairwise(volts))
    for soc, v in chem.ocv:  # table points are hit exactly
        assert chem.cell_ocv(soc) == v
    assert chem.under_voltage_v < chem.cell_ocv(50.0) < chem.charge_cutoff_v < chem.over_voltage_v


def test_ocv_linear_interpolation_and_extrapolation() -> None:
    nmc = CHEMISTRIES["nmc"]
    assert nmc.cell_ocv(25.0) == pytest.approx((3.67 + 3.74) / 2, abs=1e-12)
    assert nmc.cell_ocv(22.0) == pytest.approx(3.67 + 0.2 * 0.07, abs=1e-12)
    # beyond the table the end segments continue: an overcharged cell keeps rising
    assert nmc.cell_ocv(102.0) == pytest.approx(4.24, abs=1e-12)
    assert nmc.cell_ocv(-2.0) == pytest.approx(2.75, abs=1e-12)


def test_lfp_has_flat_plateau_and_steep_ends() -> None:
    lfp = CHEMISTRIES["lfp"]
    plateau = lfp.cell_ocv(90.0) - lfp.cell_ocv(20.0)
    assert 0.0 < plateau < 0.1
    assert lfp.cell_ocv(100.0) - lfp.cell_ocv(95.0) > 0.25
    assert lfp.cell_ocv(10.0) - lfp.cell_ocv(0.0) > 0.6


def test_chemistry_validation() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        Chemistry("bad", ((0.0, 3.0), (50.0, 2.9), (100.0, 4.0)), 3.9, 4.1, 2.5, 3.5)
    with pytest.raises(ValueError, match=r"span SOC 0\.\.100"):
        Chemistry("bad", ((0.0, 3.0), (90.0, 4.0)), 3.9, 4.1, 2.5, 3.5)
    with pytest.raises(ValueError, match="charge_cutoff_v < over_voltage_v"):
        Chemistry("bad", ((0.0, 3.0), (100.0, 4.2)), 4.3, 4.25, 2.5, 3.5)


# --- PackSpec ------------------------------------------------------------------------------------


def test_default_pack_properties() -> None:
    spec = PackSpec()
    assert spec.capacity_ah == pytest.approx(112.6)
    assert spec.nominal_voltage == pytest.approx(96 * 3.65)
    assert spec.capacity_kwh == pytest.approx(112.6 * 350.4 / 1000)
    assert 38.0 < spec.capacity_kwh < 42.0
    assert spec.max_voltage == pytest.approx(96 * 4.15)
    assert spec.min_voltage == pytest.approx(96 * 2.8)
    assert spec.pack_resistance_ohm == pytest.approx(0.072)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chemistry": "lead-acid"}, "unknown chemistry"),
        ({"series": 0}, "series must be an integer"),
        ({"parallel": 1.5}, "parallel must be an integer"),
        ({"cell_capacity_ah": 0.0}, "cell_capacity_ah must be > 0"),
        ({"cell_resistance_ohm": -0.001}, "cell_resistance_ohm must be > 0"),
        ({"max_charge_current_a": math.nan}, "max_charge_current_a must be a finite number"),
        ({"thermal_mass_j_per_k": 0.0}, "thermal_mass_j_per_k must be > 0"),
        ({"cooling_w_per_k": -1.0}, "cooling_w_per_k must be >= 0"),
        ({"taper_start_soc": 120.0}, "taper_start_soc must be within 0..100"),
        ({"taper_end_current_a": 200.0}, "must not exceed max_charge_current_a"),
        ({"derate_low_c": 40.0}, "derate_low_c <= derate_high_c"),
        ({"over_temperature_c": 30.0}, "derate_high_c < over_temperature_c"),
        ({"capacity_spread": 0.5}, "capacity_spread must be <"),
        ({"soc_spread": -0.1}, "soc_spread must be >= 0"),
    ],
)
def test_packspec_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PackSpec(**kwargs)


def test_battery_argument_validation() -> None:
    with pytest.raises(ValueError, match="initial soc"):
        Battery(PackSpec(), soc=101.0)
    battery = Battery(PackSpec(), soc=50.0)
    with pytest.raises(ValueError, match="dt must be >= 0"):
        battery.step(10.0, -1.0)
    with pytest.raises(IndexError):
        battery.inject_cell_offset(96, 1.0)


# --- voltages ------------------------------------------------------------------------------------


def test_pack_ocv_at_20_percent_is_realistic() -> None:
    assert 350.0 <= Battery(PackSpec(), soc=20.0).ocv() <= 365.0
    assert Battery(flat_pack(), soc=20.0).ocv() == pytest.approx(96 * 3.67, abs=1e-9)


def test_terminal_and_cell_voltages_include_ir() -> None:
    battery = Battery(flat_pack(), soc=50.0)
    assert battery.terminal_voltage(100.0) == pytest.approx(96 * 3.86 + 100.0 * 0.072, abs=1e-9)
    cells = battery.cell_voltages(100.0)
    assert len(cells) == 96
    assert cells[0] == pytest.approx(3.86 + 100.0 * 0.00075, abs=1e-12)
    assert battery.min_cell_voltage(-100.0) == pytest.approx(3.86 - 0.075, abs=1e-12)
    spread = Battery(PackSpec(), soc=50.0)
    assert math.fsum(spread.cell_voltages(80.0)) == pytest.approx(spread.terminal_voltage(80.0), abs=1e-9)
    assert spread.max_cell_voltage(80.0) > spread.min_cell_voltage(80.0)


# --- coulomb counting and energy ------------------------------------------------------------------


def test_one_c_for_one_hour_adds_exactly_100_percent() -> None:
    spec = flat_pack()
    one_step = Battery(spec, soc=0.0)
    one_step.step(spec.capacity_ah, 3600.0)
    assert one_step.soc == pytest.approx(100.0, abs=1e-9)
    assert one_step.group_socs == pytest.approx([100.0] * 96, abs=1e-9)
    stepped = Battery(spec, soc=0.0)
    for _ in range(3600):
        stepped.step(spec.capacity_ah, 1.0)
    assert stepped.soc == pytest.approx(100.0, abs=1e-9)
    assert stepped.charge_ah == pytest.approx(112.6, abs=1e-9)
    assert stepped.elapsed_s == pytest.approx(3600.0)
    stepped.step(-spec.capacity_ah / 2, 3600.0)  # C/2 discharge for 1 h
    assert stepped.soc == pytest.approx(50.0, abs=1e-9)


def test_each_group_counts_with_its_own_capacity() -> None:
    battery = Battery(PackSpec(capacity_spread=0.05), soc=30.0, seed=7)
    before = battery.group_socs
    battery.step(50.0, 600.0)
    gained = [b - a for a, b in zip(before, battery.group_socs, strict=True)]
    for delta, cap in zip(gained, battery.group_capacities_ah, strict=True):
        assert delta == pytest.approx(100.0 * 50.0 * 600.0 / 3600.0 / cap, rel=1e-12)
    assert max(gained) - min(gained) > 0.5  # a 5 % capacity spread shows up as SOC divergence


def test_energy_accounting_matches_ocv_integral_plus_joule_heat() -> None:
    spec = flat_pack()
    battery = Battery(spec, soc=20.0)
    current, seconds = 50.0, 1800
    for _ in range(seconds):
        battery.step(current, 1.0)
    soc_end = 20.0 + 100.0 * current * seconds / 3600.0 / spec.capacity_ah
    assert battery.soc == pytest.approx(soc_end, abs=1e-9)
    stored_wh = spec.series * ocv_integral(spec.cell_chemistry, 20.0, soc_end) * spec.capacity_ah / 100.0
    joule_wh = current**2 * spec.pack_resistance_ohm * seconds / 3600.0
    assert battery.heat_j / 3600.0 == pytest.approx(joule_wh, rel=1e-9)
    assert battery.energy_in_wh == pytest.approx(stored_wh + joule_wh, rel=1e-6)
    assert 8_900.0 < battery.energy_in_wh < 9_300.0  # 25 Ah at ≈ 363 V
    assert battery.energy_out_wh == 0.0
    battery.step(-current, 60.0)
    expected_out_wh = battery.terminal_voltage(-current) * current * 60.0 / 3600.0
    assert battery.energy_out_wh == pytest.approx(expected_out_wh, rel=1e-3)


# --- charging session ----------------------------------------------------------------------------


def run_following_limit(battery: Battery, until_soc: float, max_s: int = 20_000) -> int:
    seconds = 0
    while battery.soc < until_soc and seconds < max_s:
        battery.step(battery.charge_current_limit(), 1.0)
        seconds += 1
    return seconds


def test_20_to_80_percent_session_duration_and_heating() -> None:
    battery = Battery(PackSpec(), soc=20.0)
    assert battery.charge_current_limit() == pytest.approx(125.0)
    seconds = run_following_limit(battery, 80.0)
    assert 25 * 60 <= seconds <= 35 * 60
    assert 23_000.0 < battery.energy_in_wh < 27_000.0
    rise = battery.temperature_c - 25.0
    assert 5.0 < rise < 20.0  # 0.072 Ω at ≈125 A for half an hour into 150 kJ/K
    assert battery.protections(battery.charge_current_limit()) == frozenset()


def test_thermal_balance_without_cooling_and_steady_state_with_cooling() -> None:
    spec = flat_pack(cooling_w_per_k=0.0)
    battery = Battery(spec, soc=20.0)
    for _ in range(600):
        battery.step(100.0, 1.0)
    assert battery.temperature_c - 25.0 == pytest.approx(battery.heat_j / spec.thermal_mass_j_per_k, rel=1e-9)
    assert battery.temperature_c == pytest.approx(25.0 + 100.0**2 * 0.072 * 600 / 150_000.0, rel=1e-9)
    cooled = Battery(flat_pack(), soc=50.0, ambient_c=20.0)
    cooled.add_heat(150.0)
    cooled.step(0.0, 1e7)  # one huge step: exact integration, no blow-up
    assert cooled.temperature_c == pytest.approx(20.0 + 150.0 / 15.0, abs=1e-6)
    cooled.add_heat(0.0)
    cooled.step(0.0, 1e7)
    assert cooled.temperature_c == pytest.approx(20.0, abs=1e-6)


def test_hot_ambient_weak_cooling_reaches_over_temperature() -> None:
    spec = PackSpec(cooling_w_per_k=2.0)
    battery = Battery(spec, soc=10.0, temperature_c=40.0, ambient_c=40.0)
    seconds = 0
    while "over_temperature" not in battery.protections(125.0) and seconds < 3600:
        battery.step(125.0, 1.0)  # a charger that ignores the BMS's derating
        seconds += 1
    assert 20 * 60 < seconds < 40 * 60
    assert battery.temperature_c >= 55.0


# --- BMS current limit ---------------------------------------------------------------------------


def test_taper_reduces_limit_near_full() -> None:
    spec = flat_pack()
    mid, high = Battery(spec, soc=50.0), Battery(spec, soc=90.0)
    assert mid.charge_current_limit() == pytest.approx(125.0)
    assert high.taper_current_limit() == pytest.approx(125.0 - 0.5 * 115.0)
    assert high.charge_current_limit() <= 67.5 + 1e-9
    assert high.charge_current_limit() < mid.charge_current_limit()
    assert Battery(spec, soc=100.0).taper_current_limit() == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [(25.0, 125.0), (15.0, 125.0), (35.0, 125.0), (7.5, 62.5), (45.0, 62.5), (-5.0, 0.0), (0.0, 0.0),
     (56.0, 0.0)],
)
def test_temperature_derating(temperature: float, expected: float) -> None:
    battery = Battery(flat_pack(), soc=50.0, temperature_c=temperature)
    assert battery.charge_current_limit() == pytest.approx(expected, abs=1e-9)


def test_cv_limit_keeps_max_cell_at_cutoff() -> None:
    battery = Battery(PackSpec(), soc=94.0, seed=3)
    cutoff = CHEMISTRIES["nmc"].charge_cutoff_v
    limit = battery.charge_current_limit()
    assert 0.0 < limit < battery.taper_current_limit()  # CV is the binding constraint here
    assert battery.max_cell_voltage(limit) <= cutoff
    assert battery.max_cell_voltage(limit) == pytest.approx(cutoff, abs=1e-6)
    # follow the request to the end: the hottest-voltage cell never crosses the cutoff
    for _ in range(3600):
        limit = battery.charge_current_limit()
        assert battery.max_cell_voltage(limit) <= cutoff
        battery.step(limit, 1.0)
    assert battery.charge_current_limit() < 10.0
    assert battery.max_cell_voltage(0.0) <= cutoff
    assert Battery(flat_pack(), soc=98.0).charge_current_limit() == 0.0  # OCV already above cutoff


def test_imbalance_lowers_cv_limit() -> None:
    balanced = Battery(flat_pack(), soc=92.0)
    skewed = Battery(flat_pack(), soc=92.0)
    skewed.inject_cell_offset(10, 3.0)
    assert skewed.max_soc == pytest.approx(95.0)
    assert skewed.group_socs[10] == pytest.approx(95.0)
    assert skewed.charge_current_limit() < balanced.charge_current_limit()
    assert skewed.max_cell_voltage(0.0) - balanced.max_cell_voltage(0.0) == pytest.approx(0.024, abs=1e-9)


# --- protections ---------------------------------------------------------------------------------


def test_over_voltage_trips_with_forced_current_near_full() -> None:
    battery = Battery(flat_pack(), soc=98.0)
    assert battery.protections(0.0) == frozenset()
    assert battery.protections(200.0) == frozenset({"cell_over_voltage"})
    battery.step(125.0, 600.0)  # forced overcharge, far beyond 100 %
    assert battery.soc == 100.0
    assert max(battery.group_socs) > 100.0
    assert "cell_over_voltage" in battery.protections(0.0)


def test_under_voltage_trips_when_deeply_discharged() -> None:
    battery = Battery(flat_pack(), soc=2.0)
    assert battery.protections(-100.0) == frozenset()
    battery.step(-112.6, 144.0)  # 4 % out
    assert battery.protections(-100.0) == frozenset({"cell_under_voltage"})


def test_over_temperature_with_injected_heat() -> None:
    battery = Battery(PackSpec(), soc=50.0)
    battery.add_heat(5_000.0)
    seconds = 0
    while "over_temperature" not in battery.protections(0.0) and seconds < 7200:
        battery.step(0.0, 1.0)
        seconds += 1
    # 30 K * 150 kJ/K / 5 kW ≈ 900 s (a little more with cooling)
    assert 900 <= seconds < 1000
    assert battery.charge_current_limit() == 0.0
    battery.add_heat(0.0)
    battery.step(0.0, 1e6)
    assert battery.protections(0.0) == frozenset()


def test_local_heat_source_heats_one_group() -> None:
    battery = Battery(flat_pack(), soc=50.0)
    battery.add_heat(100.0, index=5)
    battery.step(0.0, 600.0)
    temps = battery.group_temperatures_c
    assert temps.index(max(temps)) == 5
    assert battery.temperature_c > battery.min_temperature_c == pytest.approx(25.0)


# --- determinism and spread ----------------------------------------------------------------------


def profile(battery: Battery) -> tuple[object, ...]:
    for _ in range(300):
        battery.step(battery.charge_current_limit(), 1.0)
    battery.step(-40.0, 30.0)
    return (battery.group_socs, battery.group_temperatures_c, battery.energy_in_wh, battery.energy_out_wh)


def test_same_seed_gives_identical_results() -> None:
    assert profile(Battery(PackSpec(), soc=30.0, seed=42)) == profile(Battery(PackSpec(), soc=30.0, seed=42))


def test_seed_changes_the_spread() -> None:
    a, b = Battery(PackSpec(), soc=50.0, seed=1), Battery(PackSpec(), soc=50.0, seed=2)
    assert a.group_capacities_ah != b.group_capacities_ah
    assert a.group_resistances_ohm != b.group_resistances_ohm
    assert a.group_socs != b.group_socs
    assert a.soc == pytest.approx(50.0) and b.soc == pytest.approx(50.0)  # spread is centred
    assert 0.2 < a.max_soc - a.min_soc < 3.0 * 2 * 0.5 + 1e-9  # ~0.5 %-point sigma, clipped at 3 sigma
    flat = Battery(flat_pack(), soc=50.0, seed=1)
    assert len(set(flat.group_capacities_ah)) == 1
    assert len(set(flat.group_socs)) == 1


@pytest.mark.parametrize("soc", [0.0, 100.0])
def test_initial_spread_stays_inside_0_100(soc: float) -> None:
    battery = Battery(PackSpec(soc_spread=2.0), soc=soc, seed=5)
    assert all(0.0 <= s <= 100.0 for s in battery.group_socs)
    assert battery.soc == pytest.approx(soc, abs=1e-9)


def test_ambient_is_settable() -> None:
    battery = Battery(flat_pack(), soc=50.0)
    battery.ambient_c = 45.0
    battery.step(0.0, 1e7)
    assert battery.ambient_c == 45.0
    assert battery.temperature_c == pytest.approx(45.0, abs=1e-6)
    assert battery.charge_current_limit() == pytest.approx(62.5, abs=1e-6)


def test_over_temperature_threshold_is_exact() -> None:
    assert Battery(flat_pack(), soc=50.0, temperature_c=54.9).protections(0.0) == frozenset()
    hot = Battery(flat_pack(), soc=50.0, temperature_c=55.0)
    assert hot.protections(0.0) == frozenset({"over_temperature"})


def test_derating_uses_coldest_group_for_cold_and_hottest_for_heat() -> None:
    cold = Battery(flat_pack(), soc=50.0, temperature_c=7.5, ambient_c=7.5)
    cold.add_heat(17.5 * 15.0 / 96, index=5)  # steady state: group 5 at 25 °C, the rest at 7.5 °C
    cold.step(0.0, 1e7)
    assert cold.temperature_c == pytest.approx(25.0, abs=1e-6)
    assert cold.charge_current_limit() == pytest.approx(62.5, abs=1e-6)
    hot = Battery(flat_pack(), soc=50.0)
    hot.add_heat(20.0 * 15.0 / 96, index=5)  # group 5 at 45 °C, the rest at 25 °C
    hot.step(0.0, 1e7)
    assert hot.min_temperature_c == pytest.approx(25.0, abs=1e-6)
    assert hot.charge_current_limit() == pytest.approx(62.5, abs=1e-6)
