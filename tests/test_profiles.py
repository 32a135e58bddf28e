"""Vehicle profiles and charger configurations: shipped set, references from scenarios, pairing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from charger_sim.errors import ScenarioError
from charger_sim.scenario.loader import load_scenario, parse_scenario
from charger_sim.scenario.profiles import (
    ProfileMismatch,
    charger_profiles,
    pair_scenario,
    vehicle_profiles,
)
from charger_sim.scenario.runner import run_simulated

VEHICLES = vehicle_profiles()
CHARGERS = charger_profiles()


def test_the_required_vehicle_profiles_ship() -> None:
    by_protocol: dict[str, list[str]] = {}
    for p in VEHICLES.values():
        by_protocol.setdefault(p.protocol, []).append(p.name)
    assert {"leaf_40", "leaf_62", "ioniq5_800v", "gbt_lfp_bus", "gbt_ncm_car"} <= set(VEHICLES)
    assert set(by_protocol) == {"chademo", "gbt", "ccs"}
    for protocol in by_protocol:
        assert any(c.protocol == protocol for c in CHARGERS.values()), protocol


@pytest.mark.parametrize("name", sorted(VEHICLES))
def test_every_vehicle_profile_builds_a_valid_scenario(name: str) -> None:
    v = VEHICLES[name]
    charger = next(c for c in CHARGERS.values() if c.protocol == v.protocol)
    sc = pair_scenario(v, charger, seed=3)
    assert sc.protocol == v.protocol and sc.seed == 3 and sc.expect.outcome == "completed"
    assert v.title and v.description


def test_profile_figures_are_what_their_titles_say() -> None:
    def kwh(name: str) -> float:
        sc = pair_scenario(VEHICLES[name], next(c for c in CHARGERS.values()
                                                 if c.protocol == VEHICLES[name].protocol))
        return sc.vehicle.pack.capacity_kwh

    assert 38 < kwh("leaf_40") < 42 and 60 < kwh("leaf_62") < 64
    assert 270 < kwh("gbt_lfp_bus") < 290 and 57 < kwh("gbt_ncm_car") < 61
    bus = pair_scenario(VEHICLES["ioniq5_800v"], CHARGERS["ccs_350kw_920v"])
    assert bus.vehicle.pack.max_voltage > 780  # an 800 V class pack


def test_different_protocols_do_not_pair() -> None:
    with pytest.raises(ProfileMismatch, match="inlet does not take"):
        pair_scenario(VEHICLES["leaf_40"], CHARGERS["gbt_60kw_750v"])


def test_a_scenario_refers_to_profiles_and_overrides_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "protocol: chademo\n"
        "vehicle: {profile: leaf_62, soc: 77, pack: {cooling_w_per_k: 3}}\n"
        "charger: {profile: chademo_20kw_wallbox, max_current: 40}\n",
        encoding="utf-8",
    )
    sc = load_scenario(path)
    assert sc.vehicle.soc == 77
    assert sc.vehicle.pack.parallel == 3 and sc.vehicle.pack.cooling_w_per_k == 3  # merged key by key
    assert sc.charger.max_current == 40 and sc.charger.max_voltage == 450
    assert sc.vehicle.behaviour.max_current == 200


def test_a_profile_by_path_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "car.yaml").write_text(
        "title: my car\nprotocol: chademo\nvehicle: {soc: 55, max_current: 60}\n", encoding="utf-8"
    )
    (tmp_path / "s.yaml").write_text("protocol: chademo\nvehicle: {profile: ./car.yaml}\n", encoding="utf-8")
    sc = load_scenario(tmp_path / "s.yaml")
    assert sc.vehicle.soc == 55 and sc.vehicle.behaviour.max_current == 60


@pytest.mark.parametrize(
    ("data", "key", "text"),
    [
        ({"vehicle": {"profile": "tesla_roadster"}}, "vehicle.profile", "unknown vehicle profile"),
        ({"vehicle": {"profile": "gbt_ncm_car"}}, "vehicle.profile", "is a gbt vehicle"),
        ({"charger": {"profile": 5}}, "charger.profile", "expected a charger profile name"),
        ({"vehicle": {"profile": "leaf_40", "wings": 2}}, "vehicle.wings", "unknown key"),
    ],
)
def test_bad_profile_references(data: dict[str, Any], key: str, text: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario({"protocol": "chademo", **data}, "bad.yaml")
    assert err.value.key == key and text in str(err.value)


def test_an_800v_car_cannot_charge_on_a_500v_charger() -> None:
    r = run_simulated(pair_scenario(VEHICLES["ioniq5_800v"], CHARGERS["ccs_50kw_500v"]))
    assert r.outcome == "stopped" and r.energy_kwh == 0.0
    assert r.step <= 5


def test_a_bus_pack_is_refused_by_a_500v_pile_at_negotiation() -> None:
    r = run_simulated(pair_scenario(VEHICLES["gbt_lfp_bus"], CHARGERS["gbt_30kw_500v"]))
    assert (r.outcome, r.step, r.reason) == ("stopped", 4, "battery_incompatible")
