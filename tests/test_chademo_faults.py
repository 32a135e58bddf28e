"""Every fault kind of the catalogue against CHAdeMO: the stop path on the simulated clock.

Whole sessions (charger core + simulated Leaf-like vehicle, simulated driver) check the reason, the
handshake step, the flags on the wire and the reaction time; a scripted-vehicle bench
(``tests.helpers``) pins down the charger's line supervision and plausibility checks instant by
instant.  Section numbers refer to the CHAdeMO fact sheet; no sleeps, no wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from charger_sim.codec import Value, load_dbc
from charger_sim.drivers.simulated import SimulatedDriver
from charger_sim.errors import ScenarioError
from charger_sim.faults import FAULTS
from charger_sim.frames import Frame
from charger_sim.protocols import registry
from charger_sim.protocols.base import Outcome, Role
from charger_sim.protocols.chademo import faults as chademo_faults
from charger_sim.protocols.chademo.charger import ChademoChargerConfig
from charger_sim.protocols.chademo.states import Stage
from charger_sim.protocols.chademo.stops import REASONS
from charger_sim.protocols.chademo.supervision import K_CONFIRM_S, LINE_ON
from charger_sim.protocols.chademo.timing import STOP_CURRENT_A, limit
from charger_sim.scenario.loader import parse_scenario
from charger_sim.session.result import SessionResult
from charger_sim.session.session import Session
from tests.helpers import (
    CHARGER_MALFUNCTION,
    CHARGING,
    CYCLE,
    INCOMPATIBLE,
    LOCKED,
    STOP_CONTROL,
    SYSTEM_MALFUNCTION,
    Bench,
    ScriptedVehicle,
    charging,
    collapse,
    negotiating,
    status_byte,
)

CODEC = load_dbc("chademo")
INFO = registry.get("chademo")
T6 = limit("stop_current")
T11 = limit("can_loss")
JUST = 1e-3


# ---- whole sessions --------------------------------------------------------------------------------
@dataclass
class Run:
    result: SessionResult
    session: Session
    wire: list[tuple[float, Role, Frame]] = field(default_factory=list)  # as delivered, with send time

    def decoded(self, frame_id: int) -> list[tuple[float, dict[str, Value]]]:
        codec = CODEC.by_id(frame_id)
        assert codec is not None
        out = []
        for t, _, f in self.wire:
            if f.arbitration_id == frame_id and len(f.data) == codec.length:
                out.append((t, codec.decode(f.data)))
        return out

    def statuses(self, t0: float = -1.0) -> list[tuple[float, int]]:
        """(time, 109.5) of the charger's 0x109 sent after ``t0`` (not at the same instant)."""
        return [(t, status_byte(v)) for t, v in self.decoded(0x109) if t > t0 + JUST]

    def walk(self, t0: float = -1.0) -> list[int]:
        return collapse(s for _, s in self.statuses(t0))

    def stop_time(self) -> float:
        return next(e.time for e in self.result.timeline if e.role == "charger" and e.stage == "stopping")

    @property
    def fault_at(self) -> float:
        at = self.session.faults.first_fired
        assert at is not None
        return at


def run(faults: list[dict[str, Any]], *, vehicle: dict[str, Any] | None = None,
        charger: dict[str, Any] | None = None, time_limit: float = 1800.0, seed: int = 7) -> Run:
    spec = {
        "protocol": "chademo",
        "seed": seed,
        "time_limit": time_limit,
        "charger": {"profile": "chademo_50kw", **(charger or {})},
        "vehicle": {"profile": "leaf_40", "soc": 50, "target_soc": 60, **(vehicle or {})},
        "faults": faults,
    }
    session = Session(parse_scenario(spec, "test_chademo_faults.yaml"))
    wire: list[tuple[float, Role, Frame]] = []
    session.on_frame.append(lambda f, sender: wire.append((f.timestamp, sender, f)))
    end = SimulatedDriver(session).run(time_limit)
    return Run(session.result(end), session, wire)


def assert_current_down_within_t6(r: Run, t_stop: float) -> None:
    """§7 step 11: <= 5 A within T6 of the stop (measured in the charger's own 0x109)."""
    late = [(t, v["PresentOutputCurrent"]) for t, v in r.decoded(0x109) if t >= t_stop + T6 + JUST]
    assert late and all(float(a) <= STOP_CURRENT_A for _, a in late), late[:3]


def ended(r: Run) -> tuple[str, str, str, int]:
    res = r.result
    return res.outcome, res.reason, res.stage, res.step


# ---- the catalogue mapping -------------------------------------------------------------------------
def test_every_fault_kind_has_a_chademo_note_and_the_registry_carries_them() -> None:
    assert set(chademo_faults.NOTES) == set(FAULTS)
    assert INFO.fault_notes is chademo_faults.NOTES
    assert INFO.pins is chademo_faults.PINS
    assert INFO.apply_firmware is chademo_faults.apply_firmware


def test_new_stop_reasons_are_in_the_table() -> None:
    for code in ("k_line_fault", "proximity_lost", "implausible_request", "contactor_welded"):
        assert code in REASONS and not REASONS[code].normal


# every pin, worn from plug-in and bouncing while charging: (reason, stage) each time
PIN_AT_PLUG_IN = {
    "d1": ("vehicle_not_awake", "wake_up", 3),  # the vehicle never sees d1: no CAN within T1
    "d2": ("contactor_timeout", "contactors", 6),  # the coils never pull in: T3
    "k": ("k_line_fault", "negotiation", 4),  # 102.5.0 = 1, pin 4 open: T1 names the line
    "proximity": ("proximity_lost", "idle", 1),  # no plug: step 1
}
PIN_WHILE_CHARGING = {
    "d1": "k_line_fault",  # the vehicle sleeps: k opens, CAN stops
    "d2": "vehicle_system_fault",  # the contactors drop out: 102.5.2
    "k": "k_line_fault",  # k bounces with 102.5.0 = 1
    "proximity": "proximity_lost",  # the plug supervision
}


def test_every_pin_is_a_harness_line_and_every_one_has_a_test() -> None:
    assert set(chademo_faults.PINS) == set(PIN_AT_PLUG_IN) == set(PIN_WHILE_CHARGING)
    for name, pin in chademo_faults.PINS.items():
        assert pin.line == name and pin.bad < LINE_ON and pin.description


@pytest.mark.parametrize("pin", sorted(PIN_AT_PLUG_IN))
def test_a_worn_pin_at_plug_in_stops_before_charging(pin: str) -> None:
    r = run([{"type": "worn_pins", "pin": pin, "mode": "out_of_band"}], time_limit=60)
    reason, stage, step = PIN_AT_PLUG_IN[pin]
    assert ended(r) == ("stopped", reason, stage, step)
    assert r.result.energy_kwh == 0.0
    timeline = [(e.time, e.stage) for e in r.result.timeline if e.role == "charger"]
    if pin == "d2":  # T3 after d2 closed
        t_d2 = next(t for t, s in timeline if s == "contactors")
        expected = t_d2 + limit("contactors")
    else:  # T1 from d1 (0 s) for d1 and k, at once for the plug
        expected = {"d1": limit("vehicle_can"), "k": limit("permission"), "proximity": 0.0}[pin]
    assert r.stop_time() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("pin", sorted(PIN_WHILE_CHARGING))
@pytest.mark.parametrize("mode", ["out_of_band", "bouncing"])
def test_a_worn_pin_while_charging_is_an_emergency_stop(pin: str, mode: str) -> None:
    fault = {"type": "worn_pins", "pin": pin, "mode": mode, "at": {"stage": "charging", "after": 20}}
    r = run([fault], time_limit=200)
    assert ended(r) == ("stopped", PIN_WHILE_CHARGING[pin], "charging", 7)
    t_stop = r.stop_time()
    # edge-triggered inputs: the stop starts at the first opening, not at the next 100 ms cycle
    assert t_stop - r.fault_at <= CYCLE + JUST
    assert_current_down_within_t6(r, t_stop)
    # the first 0x109 after the verdict (k: at most K_CONFIRM_S later) shows 109.5.4 and 109.5.5
    after = [s for t, s in r.statuses(t_stop + K_CONFIRM_S + JUST)]
    assert after[0] & SYSTEM_MALFUNCTION and after[0] & STOP_CONTROL


def test_an_out_of_band_level_never_counts_as_closed() -> None:
    r = run([{"type": "worn_pins", "pin": "k", "mode": "out_of_band", "value": 0.5}], time_limit=60)
    assert ended(r) == ("stopped", "k_line_fault", "negotiation", 4)
    assert "out of band" in r.result.cause


@pytest.mark.parametrize(
    ("version", "number"),
    [("0.9", 1), ("0.9.1", 1), ("1.0", 2), ("1.1", 2), ("1.2", 2), ("2.0", 3), ("2", 2)],
)
def test_compatible_firmware_charges_with_its_version_behaviour(version: str, number: int) -> None:
    r = run([{"type": "firmware_mismatch", "version": version}], vehicle={"soc": 58})
    assert ended(r) == ("completed", "vehicle_stop", "charging", 7)
    assert {int(v["ProtocolNumberEV"]) for _, v in r.decoded(0x102)} == {number}
    charger: Any = r.session.charger
    assert charger.protocol == min(number, 2)
    contactors = next(e.time for e in r.result.timeline if e.role == "charger" and e.stage == "contactors")
    precharge = next(e.time for e in r.result.timeline if e.role == "charger" and e.stage == "precharge")
    if number == 1:  # §6.2: no 102.5.3 handshake, the fixed 2 s wait after d2
        assert precharge - contactors == pytest.approx(limit("contactors_fixed_wait"), abs=1e-6)
    else:  # 102.5.3 1 -> 0 (~1.2 s after d2 on the Leaf)
        assert precharge - contactors < limit("contactors_fixed_wait")
    assert any(f.arbitration_id == 0x110 for _, _, f in r.wire) is (number >= 3)


def test_firmware_before_0_9_is_refused_at_step_4_with_the_incompatible_flag() -> None:
    r = run([{"type": "firmware_mismatch", "version": "0.8"}], time_limit=60)
    assert ended(r) == ("stopped", "battery_incompatible", "negotiation", 4)
    assert "before CHAdeMO 0.9" in r.result.cause
    assert r.walk() == [STOP_CONTROL, STOP_CONTROL | INCOMPATIBLE]  # 0x20 -> 0x28


@pytest.mark.parametrize("version", ["3.0", "1.5", "x", "4"])
def test_unknown_firmware_versions_are_scenario_errors(version: str) -> None:
    with pytest.raises(ScenarioError, match="version"):
        parse_scenario(
            {"protocol": "chademo", "faults": [{"type": "firmware_mismatch", "version": version}]}, "x.yaml"
        )


# ---- link faults -----------------------------------------------------------------------------------
def test_one_lost_0x102_is_harmless() -> None:
    r = run([{"type": "drop_message", "message": "VehicleChargeControl", "count": 1,
              "at": {"stage": "charging", "after": 20}}])
    assert ended(r)[:2] == ("completed", "vehicle_stop")
    assert r.result.frames_dropped == 1


@pytest.mark.parametrize("duration", [2.0, None])
def test_0x102_lost_for_a_second_or_more_is_a_can_timeout_at_t11(duration: float | None) -> None:
    fault: dict[str, Any] = {"type": "drop_message", "message": "VehicleChargeControl",
                             "at": {"stage": "charging", "after": 20}}
    if duration is not None:
        fault["duration"] = duration
    r = run([fault], time_limit=300)
    assert ended(r) == ("stopped", "can_timeout", "charging", 7)
    last_102 = max(t for t, v in r.decoded(0x102) if t < r.fault_at + JUST)
    assert r.stop_time() == pytest.approx(last_102 + T11, abs=1e-6)
    assert r.statuses(r.stop_time())[0][1] == STOP_CONTROL | SYSTEM_MALFUNCTION | LOCKED | CHARGING  # 0x35
    assert_current_down_within_t6(r, r.stop_time())
    assert "no valid 0x102 for 1 s (T11)" in r.result.cause
    if duration is None:  # no 0x102, no welding-check answer: T7, then the stop path ends
        assert r.result.charger_faults == ["welding_check_timeout"]


def test_a_short_gap_of_0x102_below_t11_is_harmless() -> None:
    r = run([{"type": "drop_message", "message": "VehicleChargeControl", "duration": 0.6,
              "at": {"stage": "charging", "after": 20}}])
    assert ended(r)[:2] == ("completed", "vehicle_stop")


def test_0x100_never_received_is_a_can_timeout_at_t1_not_a_missing_permission() -> None:
    r = run([{"type": "drop_message", "message": "VehicleChargeLimits"}], time_limit=60)
    assert ended(r) == ("stopped", "can_timeout", "negotiation", 4)
    assert r.stop_time() == pytest.approx(limit("permission"), abs=1e-6)
    assert "0x100" in r.result.cause


def test_0x109_lost_makes_the_vehicle_give_up_with_its_system_fault_flag() -> None:
    r = run([{"type": "drop_message", "message": "ChargerStatus", "at": {"stage": "charging", "after": 20}}])
    assert ended(r) == ("stopped", "vehicle_system_fault", "charging", 7)
    flagged = next(t for t, v in r.decoded(0x102) if v["ChargingSystemFault"])
    assert flagged - r.fault_at <= limit("vehicle_charger_can_loss") + CYCLE + JUST


@pytest.mark.parametrize(("delay", "reason"), [(0.3, "vehicle_stop"), (1.5, "can_timeout")])
def test_a_late_0x102_is_a_can_loss_only_beyond_t11(delay: float, reason: str) -> None:
    fault = {"type": "delay_message", "message": "VehicleChargeControl", "delay": delay,
             "at": {"stage": "charging", "after": 20}}
    if delay < T11:
        fault["duration"] = 30  # over before the vehicle's own stop
    r = run([fault])
    assert ended(r)[:2] == (("completed" if delay < T11 else "stopped"), reason)
    if delay >= T11:
        assert r.stop_time() - r.fault_at <= T11 + CYCLE + JUST


@pytest.mark.parametrize("mode", ["out_of_range", "not_available", "bitflip", "set"])
def test_a_corrupted_request_above_108_3_is_clamped_and_stops_with_109_5_4(mode: str) -> None:
    fault: dict[str, Any] = {"type": "corrupt_signal", "message": "VehicleChargeControl",
                             "signal": "ChargeCurrentRequest", "mode": mode,
                             "at": {"stage": "charging", "after": 30}}
    if mode == "bitflip":
        fault["bit"] = 7  # 125 A -> 253 A
    if mode == "set":
        fault["value"] = 180
    r = run([fault], time_limit=200)
    assert ended(r) == ("stopped", "implausible_request", "charging", 7)
    assert r.result.peak_current <= 125.0 + 1e-9  # never above 108.3
    # the stop begins with the first corrupted 0x102 (T10: within a cycle of the fault)
    assert r.stop_time() - r.fault_at <= CYCLE + JUST
    assert r.statuses(r.stop_time())[0][1] & SYSTEM_MALFUNCTION
    assert "above the available 125 A (108.3)" in r.result.cause
    assert_current_down_within_t6(r, r.stop_time())


def test_with_dynamic_control_a_request_above_108_3_is_only_clamped() -> None:
    bench = charging(ChademoChargerConfig(max_current=80, dynamic_control=True), request=100, settle=8.0)
    assert bench.stage is Stage.CHARGING
    assert max(s.current for s in bench.samples) == pytest.approx(80)


def test_a_request_above_108_3_on_the_bench_never_moves_the_output() -> None:
    bench = charging(request=60, settle=5.0)
    before = bench.samples[-1].current
    bench.vehicle.set(ChargeCurrentRequest=255)
    bench.run_until(lambda: bench.stage is not Stage.CHARGING, within=CYCLE + JUST)
    assert bench.charger.stop_reason is not None and bench.charger.stop_reason.code == "implausible_request"
    assert max(s.current for s in bench.samples) <= before + 1e-9


def test_target_voltage_not_available_while_charging_is_implausible() -> None:
    r = run([{"type": "corrupt_signal", "message": "VehicleChargeControl", "signal": "TargetBatteryVoltage",
              "mode": "not_available", "at": {"stage": "charging", "after": 30}}], time_limit=200)
    assert ended(r) == ("stopped", "implausible_request", "charging", 7)
    assert "65535 V" in r.result.cause


def test_target_voltage_out_of_range_before_charging_is_battery_incompatible() -> None:
    r = run([{"type": "corrupt_signal", "message": "VehicleChargeControl", "signal": "TargetBatteryVoltage",
              "mode": "out_of_range"}], time_limit=60)
    assert ended(r) == ("stopped", "battery_incompatible", "negotiation", 4)
    assert r.walk()[-1] & INCOMPATIBLE


def test_a_bit_flip_in_0x109_voltage_trips_the_vehicles_voltage_deviation_flag() -> None:
    r = run([{"type": "corrupt_signal", "message": "ChargerStatus", "signal": "PresentOutputVoltage",
              "mode": "bitflip", "bit": 8, "at": {"stage": "charging", "after": 30}}], time_limit=200)
    assert ended(r) == ("stopped", "vehicle_voltage_deviation", "charging", 7)
    flagged = next(t for t, v in r.decoded(0x102) if v["FaultVoltageDeviation"])
    assert flagged - r.fault_at <= limit("vehicle_voltage_deviation") + 2 * CYCLE + JUST
    assert r.stop_time() == pytest.approx(flagged, abs=1e-6)  # the charger acts on the frame itself


@pytest.mark.parametrize("signal", [s.name for s in CODEC.message("VehicleChargeControl").signals])
def test_any_corrupted_0x102_signal_never_raises_and_never_drives_above_the_limits(signal: str) -> None:
    for mode in ("out_of_range", "not_available", "bitflip"):
        r = run([{"type": "corrupt_signal", "message": "VehicleChargeControl", "signal": signal, "mode": mode,
                  "at": {"stage": "charging", "after": 10}}], vehicle={"soc": 55, "target_soc": 57},
                time_limit=400)
        assert r.result.outcome in ("completed", "stopped"), (signal, mode, r.result.cause)
        assert r.result.peak_current <= 125.0 + 1e-9
        requests = [float(v["ChargeCurrentRequest"]) for _, v in r.decoded(0x102)]
        currents = [float(v["PresentOutputCurrent"]) for _, v in r.decoded(0x109)]
        assert max(currents) <= max(requests)


@pytest.mark.parametrize(("message", "dlc", "reason", "stage", "step"), [
    ("VehicleChargeControl", 4, "can_timeout", "charging", 7),
    ("VehicleChargeLimits", 6, "can_timeout", "negotiation", 4),
    ("ChargerStatus", 5, "vehicle_system_fault", "charging", 7),
])
def test_a_wrong_dlc_makes_the_frame_unusable(
    message: str, dlc: int, reason: str, stage: str, step: int
) -> None:
    at = {"stage": "charging", "after": 20} if stage == "charging" else {"time": 0}
    r = run([{"type": "wrong_dlc", "message": message, "dlc": dlc, "at": at}], time_limit=200)
    assert ended(r) == ("stopped", reason, stage, step)
    if message != "ChargerStatus":  # the charger's cause counts what it had to ignore
        assert f"with {dlc} data byte(s) ignored" in r.result.cause
        charger: Any = r.session.charger
        assert charger.bad_frames > 0


def test_stale_0x102_is_undetectable_and_harmless_while_steady() -> None:
    r = run([{"type": "replay_message", "message": "VehicleChargeControl", "age": 5, "duration": 30,
              "at": {"stage": "charging", "after": 20}}])
    assert ended(r)[:2] == ("completed", "vehicle_stop")


def test_stale_0x102_across_the_vehicles_stop_contradicts_k() -> None:
    # no alive counter: the stale 102.5.0 = 1 outlives the vehicle's k opening by the replay age
    r = run([{"type": "replay_message", "message": "VehicleChargeControl", "age": 3,
              "at": {"condition": "soc > 59.5"}}])
    assert ended(r) == ("stopped", "k_line_fault", "charging", 7)


def test_duplicated_frames_are_harmless() -> None:
    r = run([{"type": "duplicate_message", "message": m, "copies": 2}
             for m in ("VehicleChargeControl", "ChargerStatus", "ChargerCapability")])
    assert ended(r)[:2] == ("completed", "vehicle_stop")


def test_a_bus_off_shorter_than_t11_is_harmless() -> None:
    r = run([{"type": "bus_off", "duration": 0.5, "at": {"stage": "charging", "after": 20}}])
    assert ended(r)[:2] == ("completed", "vehicle_stop")


def test_a_bus_off_of_two_seconds_stops_at_t11_and_never_retries() -> None:
    r = run([{"type": "bus_off", "duration": 2, "at": {"stage": "charging", "after": 20}}], time_limit=300)
    assert ended(r) == ("stopped", "can_timeout", "charging", 7)
    assert r.stop_time() - r.fault_at <= T11 + CYCLE + JUST
    wake_ups = [e for e in r.result.timeline if e.role == "charger" and e.stage == "wake_up"]
    assert len(wake_ups) == 1  # §8: no automatic retry after recovery
    charger: Any = r.session.charger
    assert charger.stage is Stage.DONE and not r.session.harness.lines.get("d1")
    # the vehicle gave up on the silent charger too
    assert any(v["ChargingSystemFault"] for _, v in r.decoded(0x102))


# ---- plant, battery and charger faults ---------------------------------------------------------------
def test_insulation_drop_while_charging_is_caught_by_the_monitor_within_a_cycle() -> None:
    r = run([{"type": "insulation_drop", "value": 20000, "at": {"stage": "charging", "after": 30}}],
            time_limit=200)
    assert ended(r) == ("stopped", "insulation_fault", "charging", 7)
    assert r.stop_time() - r.fault_at <= CYCLE + JUST
    assert r.statuses(r.stop_time())[0][1] & CHARGER_MALFUNCTION  # §7 step 6: 109.5.1
    assert "insulation monitoring" in r.result.cause


def test_insulation_in_the_warning_band_is_noted_and_charging_goes_on() -> None:
    r = run([{"type": "insulation_drop", "value": 150000, "at": {"stage": "charging", "after": 30}}])
    assert ended(r)[:2] == ("completed", "vehicle_stop")
    assert r.result.charger_faults == ["insulation_warning"]


def test_insulation_drop_before_the_test_fails_the_test_at_step_2() -> None:
    r = run([{"type": "insulation_drop", "value": 20000}], time_limit=60)
    assert ended(r) == ("stopped", "insulation_fault", "insulation_test", 2)


def test_welded_contactors_end_the_session_locked_instead_of_hanging() -> None:
    r = run([{"type": "contactor_welded", "at": {"stage": "charging", "after": 20}}], time_limit=900)
    assert ended(r) == ("stopped", "contactor_welded", "charging", 7)
    assert r.result.charger_faults == ["contactor_welded", "output_not_discharged"]
    # the vehicle's welding check (T9 after its own wait) raised 102.5.2 and never set 102.5.3
    flagged = [v for _, v in r.decoded(0x102) if v["ChargingSystemFault"]]
    assert flagged and not any(v["ContactorOpen"] for v in flagged)
    welding = next(e.time for e in r.result.timeline if e.role == "charger" and e.stage == "welding_check")
    assert r.result.duration <= welding + limit("welding") + limit("unlock_wait")
    h = r.session.harness
    assert not h.lines.get("d1") and not h.lines.get("d2")  # relays open ...
    last = r.statuses()[-1][1]
    assert last & LOCKED and last & CHARGER_MALFUNCTION  # ... but never unlocked while live


def test_welded_contactors_at_plug_in_are_found_before_the_insulation_test() -> None:
    r = run([{"type": "contactor_welded"}], time_limit=60)
    assert ended(r) == ("stopped", "contactor_welded", "insulation_test", 2)
    assert not any(e.stage == "contactors" for e in r.result.timeline if e.role == "charger")
    assert not r.session.harness.lines.get("d2")


def test_a_normal_welding_check_is_not_mistaken_for_welding() -> None:
    r = run([])
    assert ended(r)[:2] == ("completed", "vehicle_stop")
    assert r.result.charger_faults == []


def test_cell_over_voltage_stops_on_102_4_0() -> None:
    r = run([{"type": "cell_over_voltage", "at": {"stage": "charging", "after": 30}}], time_limit=200)
    assert ended(r) == ("stopped", "vehicle_over_voltage", "charging", 7)
    flagged = next(t for t, v in r.decoded(0x102) if v["FaultOverVoltage"])
    assert r.stop_time() == pytest.approx(flagged, abs=1e-6)
    assert r.statuses(flagged)[0][1] & SYSTEM_MALFUNCTION
    assert_current_down_within_t6(r, flagged)


def test_temperature_runaway_stops_on_102_4_3() -> None:
    r = run([{"type": "temperature_runaway", "value": 20000, "at": {"stage": "charging", "after": 30}}],
            vehicle={"target_soc": 90}, time_limit=900)
    assert ended(r) == ("stopped", "vehicle_high_temperature", "charging", 7)
    flagged = next(t for t, v in r.decoded(0x102) if v["FaultHighTemperature"])
    assert r.stop_time() == pytest.approx(flagged, abs=1e-6)


def test_cell_imbalance_ends_charging_early_at_the_cell_cutoff() -> None:
    r = run([{"type": "cell_imbalance", "value": 25, "group": 3}], vehicle={"soc": 50, "target_soc": 90},
            time_limit=3600)
    assert ended(r)[:2] == ("completed", "vehicle_stop")
    assert r.result.soc_end < 80.0  # the BMS ended short of its 90 % target
    vehicle: Any = r.session.vehicle
    assert "charge cutoff" in vehicle.stop_cause


def test_a_large_imbalance_trips_the_over_voltage_flag() -> None:
    fault = {"type": "cell_imbalance", "value": 60, "at": {"stage": "charging", "after": 30}}
    r = run([fault], time_limit=200)
    assert ended(r) == ("stopped", "vehicle_over_voltage", "charging", 7)


@pytest.mark.parametrize(("at", "stage", "step", "first"), [
    ({"stage": "charging", "after": 30}, "charging", 7, 0x27),
    ({"stage": "insulation_test"}, "insulation_test", 2, 0x26),
])
def test_power_stage_fault_is_a_charger_malfunction(
    at: dict[str, Any], stage: str, step: int, first: int
) -> None:
    r = run([{"type": "power_stage_fault", "at": at}], time_limit=200)
    assert ended(r) == ("stopped", "charger_malfunction", stage, step)
    assert r.stop_time() == pytest.approx(r.fault_at, abs=1e-9)
    assert r.walk(r.stop_time())[0] == first
    assert r.walk()[-1] == STOP_CONTROL | CHARGER_MALFUNCTION  # 0x22


def test_operator_stop_walks_0x25_0x24_0x20() -> None:
    r = run([{"type": "operator_stop", "at": {"stage": "charging", "after": 30}}], time_limit=200)
    assert ended(r) == ("stopped", "operator_stop", "charging", 7)
    assert r.stop_time() == pytest.approx(r.fault_at, abs=1e-9)
    assert r.walk(r.stop_time()) == [0x25, 0x24, 0x20]
    assert_current_down_within_t6(r, r.stop_time())


def test_a_condition_trigger_fires_when_it_first_holds() -> None:
    r = run([{"type": "operator_stop", "at": {"condition": "soc > 55"}}], vehicle={"target_soc": 70})
    assert ended(r)[:2] == ("stopped", "operator_stop")
    soc_at_stop = next(s.soc for s in r.result.samples if s.time >= r.fault_at - 1.0)
    assert 55.0 - 0.5 <= soc_at_stop <= 55.5


# ---- the charger's line supervision on the scripted bench ----------------------------------------------
def test_k_opening_with_102_5_0_withdrawn_in_the_next_frame_is_the_vehicles_normal_stop() -> None:
    bench = charging(request=80, settle=4.0)
    bench.harness.set("k", False)
    t_open = bench.now
    bench.vehicle.set(ChargingEnabled=0, ChargeCurrentRequest=0)
    bench.step_to(t_open + K_CONFIRM_S + CYCLE)
    assert bench.stage_time(Stage.STOPPING) == pytest.approx(t_open, abs=1e-9)  # at the edge
    assert bench.charger.stop_reason is not None and bench.charger.stop_reason.code == "vehicle_stop"
    assert not any(s & SYSTEM_MALFUNCTION for _, s in bench.statuses())


def test_k_bouncing_is_seen_between_cycles_and_is_a_line_fault() -> None:
    bench = charging(request=80, settle=4.0)
    t_open = bench.now + 0.03  # between two 100 ms cycles
    bench.step_to(t_open)
    bench.harness.set("k", False)
    bench.step_to(t_open + 0.02)
    assert bench.stage is Stage.STOPPING and bench.stage_time(Stage.STOPPING) == pytest.approx(t_open)
    bench.harness.set("k", True)  # the contact closes again: a bounce
    bench.step_to(bench.now + CYCLE)
    stop = bench.charger.stop_reason
    assert stop is not None and stop.code == "k_line_fault"
    assert bench.statuses()[-1][1] & SYSTEM_MALFUNCTION
    assert "contact bounce" in bench.charger.stop_detail


def test_k_open_with_102_5_0_still_set_after_the_window_is_a_line_fault() -> None:
    bench = charging(request=80, settle=4.0)
    bench.harness.set("k", False)
    t_open = bench.now
    bench.step_to(t_open + K_CONFIRM_S - JUST)
    stop = bench.charger.stop_reason
    assert stop is not None and stop.code == "vehicle_stop"  # still deciding, but already stopping
    bench.step_to(t_open + K_CONFIRM_S + JUST)
    stop = bench.charger.stop_reason
    assert stop is not None and stop.code == "k_line_fault"


def test_a_plug_not_detected_at_start_never_closes_d1() -> None:
    bench = Bench()
    bench.harness.set("proximity", False)
    bench.start(0.0)
    assert not bench.harness.is_on("d1") and bench.stage is Stage.DONE
    assert (bench.ended().reason, bench.ended().step) == ("proximity_lost", 1)


def test_losing_the_plug_mid_charge_stops_at_once() -> None:
    bench = charging(request=80, settle=4.0)
    bench.harness.set("proximity", True)
    bench.step_to(bench.now + CYCLE)
    bench.harness.set("proximity", False)
    t_lost = bench.now
    bench.step_to(t_lost + JUST)
    assert bench.stage is Stage.STOPPING and bench.stage_time(Stage.STOPPING) == pytest.approx(t_lost)
    stop = bench.charger.stop_reason
    assert stop is not None and stop.code == "proximity_lost"


def test_no_permission_line_and_no_plug_line_mean_the_old_behaviour() -> None:
    # a harness without a proximity line (no plug sensor) counts as plugged; k absent counts as open
    bench = negotiating(vehicle=ScriptedVehicle(ChargingEnabled=0))
    assert bench.stage is Stage.NEGOTIATION
    assert bench.charger.snapshot().values["k"] is False


def test_the_vehicle_supervises_d2_continuously() -> None:
    r = run([{"type": "worn_pins", "pin": "d2", "mode": "bouncing", "period": 0.03,
              "at": {"stage": "charging", "after": 20}}], time_limit=200)
    vehicle: Any = r.session.vehicle
    assert "d2 (pin 10)" in vehicle.stop_cause
    assert r.result.outcome == Outcome.STOPPED.value


def test_level_thresholds_are_a_window() -> None:
    from charger_sim.protocols.chademo.supervision import LINE_OFF, describe_level, line_on

    assert line_on(1.0) and not line_on(0.5) and not line_on(0.0)
    assert "out of band" in describe_level("k", (LINE_OFF + LINE_ON) / 2)
    assert describe_level("k", 0.0) == "k open" and describe_level("k", 1.0) == "k closed"


def test_the_role_of_each_stop_reason_in_the_report() -> None:
    r = run([{"type": "worn_pins", "pin": "k", "mode": "bouncing", "at": {"stage": "charging", "after": 10}}],
            time_limit=200)
    assert r.result.origin == "vehicle"
    assert r.result.cause.startswith(REASONS["k_line_fault"].cause)
    sent = {(t, role) for t, role, f in r.wire if f.arbitration_id == 0x109}
    assert all(role is Role.CHARGER for _, role in sent)
