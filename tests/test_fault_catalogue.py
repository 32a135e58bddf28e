"""The protocol-independent fault catalogue: link faults on frames, triggers, validation, checks."""

from __future__ import annotations

from typing import Any

import pytest

from charger_sim.codec import load_dbc
from charger_sim.errors import ScenarioError
from charger_sim.faults import FAULTS
from charger_sim.faults.link import LinkFaults, corrupt, out_of_range_raw, raw_field
from charger_sim.frames import Frame
from charger_sim.protocols import registry
from charger_sim.scenario.loader import parse_scenario
from charger_sim.scenario.runner import run_simulated
from charger_sim.scenario.schema import Condition, FaultSpec, Trigger

CHADEMO = load_dbc("chademo")
CONTROL = CHADEMO.message("VehicleChargeControl")
REQUEST = CONTROL.signal("ChargeCurrentRequest")


def control_frame(request: int = 100, t: float = 0.0) -> Frame:
    values: dict[str, Any] = {s.name: 0 for s in CONTROL.signals}
    values.update(ProtocolNumberEV=2, TargetBatteryVoltage=410, ChargeCurrentRequest=request)
    return CHADEMO.encode("VehicleChargeControl", values, t)


def link_with(**fields: Any) -> tuple[LinkFaults, FaultSpec]:
    spec = FaultSpec(**fields)
    lf = LinkFaults(CHADEMO)
    lf.add(spec).start = 0.0
    return lf, spec


def scenario(faults: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {"protocol": "chademo", "seed": 1, "time_limit": 900, "vehicle": {"soc": 70}, "faults": faults,
            "expect": {"outcome": "stopped"}, **top}


# ---- link faults, frame by frame ---------------------------------------------------------------
def test_drop_count_drops_that_many_frames_then_passes() -> None:
    lf, _ = link_with(type="drop_message", message="VehicleChargeControl", count=2)
    got = [lf.apply(control_frame(), t * 0.1) for t in range(4)]
    assert [len(g) for g in got] == [0, 0, 1, 1]
    assert lf.dropped == 2


def test_a_link_fault_acts_only_between_its_start_and_end() -> None:
    lf = LinkFaults(CHADEMO)
    f = lf.add(FaultSpec(type="drop_message", message="VehicleChargeControl"))
    f.start, f.end = 1.0, 2.0
    assert [len(lf.apply(control_frame(), t)) for t in (0.9, 1.0, 1.5, 2.0)] == [1, 0, 0, 1]


def test_other_messages_pass_untouched() -> None:
    lf, _ = link_with(type="drop_message", message="VehicleChargeLimits")
    frame = control_frame()
    assert lf.apply(frame, 0.5) == [(0.5, frame)]


def test_delay_postpones_arrival() -> None:
    lf, _ = link_with(type="delay_message", message="VehicleChargeControl", delay=0.35)
    [(at, frame)] = lf.apply(control_frame(), 1.0)
    assert at == pytest.approx(1.35) and frame == control_frame()


def test_duplicate_sends_copies() -> None:
    lf, _ = link_with(type="duplicate_message", message="VehicleChargeControl", copies=2)
    assert len(lf.apply(control_frame(), 1.0)) == 3


def test_wrong_dlc_cuts_or_pads() -> None:
    lf, _ = link_with(type="wrong_dlc", message="VehicleChargeControl", dlc=3)
    [(_, short)] = lf.apply(control_frame(), 0.0)
    assert short.data == control_frame().data[:3]
    frame6 = Frame(0x100, bytes(6))
    lf2, _ = link_with(type="wrong_dlc", message="VehicleChargeLimits", dlc=8)
    [(_, padded)] = lf2.apply(frame6, 0.0)
    assert padded.data == bytes(6) + b"\xff\xff"


def test_replay_sends_the_frame_from_age_seconds_ago() -> None:
    lf = LinkFaults(CHADEMO)
    f = lf.add(FaultSpec(type="replay_message", message="VehicleChargeControl", age=1.0))
    for i in range(20):  # 2 s of history before the fault starts: request = i
        lf.apply(control_frame(i, i * 0.1), i * 0.1)
    f.start = 2.0
    [(_, got)] = lf.apply(control_frame(20, 2.0), 2.0)
    assert CONTROL.decode(got.data)["ChargeCurrentRequest"] == 10  # sent at t = 1.0


@pytest.mark.parametrize(
    ("mode", "extra", "expected"),
    [("set", {"value": 200}, 200), ("bitflip", {"bit": 3}, 100 ^ 8), ("not_available", {}, 255)],
)
def test_corrupt_signal_modes(mode: str, extra: dict[str, Any], expected: int) -> None:
    spec = FaultSpec(type="corrupt_signal", message="VehicleChargeControl", signal="ChargeCurrentRequest",
                     mode=mode, **extra)
    data = corrupt(control_frame(100).data, REQUEST, spec)
    assert raw_field(data, REQUEST) == expected
    other = CONTROL.decode(data)
    assert other["TargetBatteryVoltage"] == 410 and other["ProtocolNumberEV"] == 2  # neighbours intact


def test_out_of_range_is_just_beyond_the_dbc_limits() -> None:
    volts = CONTROL.signal("TargetBatteryVoltage")  # [0|1000] V in 16 bits
    assert out_of_range_raw(volts) == 1001
    assert out_of_range_raw(REQUEST) == 255  # [0|255] fills 8 bits: all ones is all there is


def test_bus_off_drops_everything_both_ways() -> None:
    lf, _ = link_with(type="bus_off")
    assert lf.apply(control_frame(), 0.1) == [] and lf.apply(Frame(0x109, bytes(8)), 0.1) == []


# ---- triggers and conditions ---------------------------------------------------------------------
def test_condition_parsing_and_evaluation() -> None:
    c = Condition.parse("soc >= 50 %")
    assert (c.variable, c.op, c.value) == ("soc", ">=", 50.0)
    assert c.holds(50) and not c.holds(49.9)
    with pytest.raises(ValueError, match="unknown quantity"):
        Condition.parse("pressure > 3")
    with pytest.raises(ValueError, match="exactly one"):
        Trigger(time=1.0, stage="charging")
    with pytest.raises(ValueError, match="'after' counts from a stage"):
        Trigger(time=1.0, after=2.0)


def test_a_condition_trigger_fires_when_it_first_holds() -> None:
    spec = scenario([{"type": "operator_stop", "at": {"condition": "soc > 72"}}],
                    expect={"outcome": "stopped", "reason": "operator_stop"})
    sc = parse_scenario(spec, "t.yaml")
    result = run_simulated(sc)
    assert result.passed, result.mismatches
    end_soc = result.soc_end
    assert 72 < end_soc < 72.5  # stopped right after crossing, not at the 80 % target


def test_every_catalogue_kind_is_accepted_by_the_loader_for_chademo() -> None:
    examples: dict[str, dict[str, Any]] = {
        "drop_message": {"message": "VehicleChargeControl", "count": 1},
        "delay_message": {"message": "VehicleChargeControl", "delay": 0.2},
        "corrupt_signal": {"message": "VehicleChargeControl", "signal": "ChargeCurrentRequest",
                           "mode": "set", "value": 10},
        "wrong_dlc": {"message": "VehicleChargeControl", "dlc": 4},
        "replay_message": {"message": "VehicleChargeControl", "age": 2},
        "duplicate_message": {"message": "VehicleChargeControl"},
        "bus_off": {"duration": 1},
        "firmware_mismatch": {"version": "0.9"},
        "worn_pins": {"pin": "k", "mode": "bouncing"},
        "insulation_drop": {"value": 1000},
        "contactor_welded": {},
        "temperature_runaway": {"value": 3000},
        "cell_over_voltage": {"group": 3},
        "cell_imbalance": {"value": 5},
        "power_stage_fault": {},
        "operator_stop": {},
    }
    assert set(examples) == set(FAULTS)
    for kind, params in examples.items():
        item: dict[str, Any] = {"type": kind, **params}
        if kind != "firmware_mismatch":
            item["at"] = {"stage": "charging", "after": 5}
        sc = parse_scenario(scenario([item]), "t.yaml")
        assert sc.faults[0].type == kind


# ---- one clear line for a bad fault ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "key", "text"),
    [
        ({"type": "melt"}, "faults[0].type", "expected one of"),
        ({"type": "drop_message"}, "faults[0].message", "missing"),
        ({"type": "drop_message", "message": "Nope"}, "faults[0].message", "no message 'Nope'"),
        ({"type": "drop_message", "message": "VehicleChargeControl", "count": 0}, "faults[0].count", ">= 1"),
        ({"type": "corrupt_signal", "message": "VehicleChargeControl", "signal": "X", "mode": "set"},
         "faults[0].signal", "no signal 'X'"),
        ({"type": "corrupt_signal", "message": "VehicleChargeControl", "signal": "ChargeCurrentRequest",
          "mode": "melt"}, "faults[0].mode", "expected one of"),
        ({"type": "corrupt_signal", "message": "VehicleChargeControl", "signal": "ChargeCurrentRequest",
          "mode": "set", "value": 300}, "faults[0].value", "does not fit"),
        ({"type": "corrupt_signal", "message": "VehicleChargeControl", "signal": "ChargeCurrentRequest",
          "mode": "bitflip", "bit": 8}, "faults[0].bit", "0..7"),
        ({"type": "wrong_dlc", "message": "VehicleChargeControl", "dlc": 8}, "faults[0].dlc", "already"),
        ({"type": "worn_pins", "pin": "cp"}, "faults[0].pin", "unknown pin"),
        ({"type": "firmware_mismatch", "version": "7.5"}, "faults[0].version", "unknown CHAdeMO version"),
        ({"type": "firmware_mismatch", "version": "0.9", "at": {"time": 5}}, "faults[0].at", "from plug-in"),
        ({"type": "cell_imbalance", "value": 3, "group": 96}, "faults[0].group", "0..95"),
        ({"type": "operator_stop", "message": "VehicleChargeControl"}, "faults[0].message", "unknown key"),
        ({"type": "operator_stop", "at": {"stage": "flying"}}, "faults[0].at.stage", "unknown stage"),
        ({"type": "operator_stop", "at": {"condition": "soc ~ 3"}}, "faults[0].at", "expected 'quantity op"),
    ],
)
def test_bad_faults_give_one_line_naming_the_key(item: dict[str, Any], key: str, text: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(scenario([item]), "bad.yaml")
    assert err.value.key == key, str(err.value)
    assert text in str(err.value) and "\n" not in str(err.value)


# ---- expectation checks -----------------------------------------------------------------------------
def test_checks_pass_and_fail_on_real_figures() -> None:
    faults = [{"type": "power_stage_fault", "at": {"stage": "charging", "after": 60}}]
    ok = run_simulated(parse_scenario(scenario(faults, expect={
        "outcome": "stopped", "stop_within": 0.5, "max_current": 125, "energy_max_kwh": 5}), "t.yaml"))
    assert ok.passed, ok.mismatches
    bad = run_simulated(parse_scenario(scenario(faults, expect={
        "outcome": "stopped", "max_current": 50, "energy_min_kwh": 20}), "t.yaml"))
    assert not bad.passed
    assert any("peak current" in m and "at most 50 A" in m for m in bad.mismatches)
    assert any("expected at least 20 kWh" in m for m in bad.mismatches)


def test_stop_within_without_a_fault_is_reported() -> None:
    r = run_simulated(parse_scenario(scenario([], expect={"outcome": "completed", "stop_within": 1}),
                                     "t.yaml"))
    assert any("no fault fired" in m for m in r.mismatches)


def test_every_protocol_declares_its_pins_as_harness_lines() -> None:
    for name in registry.names():
        info = registry.get(name)
        for pin, spec in info.pins.items():
            assert pin and spec.line and spec.description
