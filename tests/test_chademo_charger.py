"""CHAdeMO charger core, stage by stage, against a scripted vehicle on an explicit clock.

Every limit comes from ``protocols/chademo/timing.py``; the scripted vehicle only sends hand-built
0x100/0x101/0x102 frames and drives k and its contactors (see ``tests/helpers.py``).  Section
numbers refer to the CHAdeMO fact sheet (``shared/protocols/chademo.md``).
"""

from __future__ import annotations

import itertools

import pytest

from charger_sim.codec import Value
from charger_sim.errors import Origin
from charger_sim.frames import Frame
from charger_sim.protocols.base import Outcome
from charger_sim.protocols.chademo import timing
from charger_sim.protocols.chademo.charger import ChademoChargerConfig
from charger_sim.protocols.chademo.states import Stage
from charger_sim.protocols.chademo.timing import limit
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
    at_contactors,
    at_precharge,
    charging,
    negotiating,
)

JUST = 0.01  # "just before / just after" a limit: well inside one 100 ms cycle
TIME_TOL = 1e-6

# 0x109 byte 5 values of §6.4
IDLE = STOP_CONTROL  # 0x20
ENERGIZING = STOP_CONTROL | LOCKED  # 0x24
DELIVERING = LOCKED | CHARGING  # 0x05
RAMPING_DOWN = STOP_CONTROL | LOCKED | CHARGING  # 0x25


# --- shared checks ----------------------------------------------------------------------------------


def assert_terminal(bench: Bench) -> None:
    """Finished, d1 and d2 open, no deadline left, silent from now on, unlocked at <= 10 V."""
    charger = bench.charger
    assert charger.finished
    assert bench.stage is Stage.DONE
    assert not bench.harness.is_on("d1")
    assert not bench.harness.is_on("d2")
    assert charger.next_deadline() is None
    last = bench.decoded(0x109)[-1][1] if bench.frames(0x109) else None
    if last is not None:
        assert last["StatusConnectorLocked"] == 0
        assert last["PresentOutputVoltage"] <= timing.OUTPUT_SAFE_V
    sent = len(bench.sent)
    bench.step_to(bench.now + 2.0)  # the vehicle may still be talking: the charger stays quiet
    assert len(bench.sent) == sent
    assert bench.stage is Stage.DONE


def assert_unlocks_only_when_safe(bench: Bench) -> None:
    """109.5.2 is cleared only once the output is <= 10 V (§7 step 14)."""
    was_locked = False
    for _, v in bench.decoded(0x109):
        if v["StatusConnectorLocked"]:
            was_locked = True
        elif was_locked:
            assert v["PresentOutputVoltage"] <= timing.OUTPUT_SAFE_V, v
    unlocked = [s for s in bench.samples if s.stage == Stage.DONE.value]
    assert unlocked and unlocked[0].voltage <= timing.OUTPUT_SAFE_V


def assert_stop_at(bench: Bench, at: float) -> None:
    assert bench.stage_time(Stage.STOPPING) == pytest.approx(at, abs=TIME_TOL)


def assert_current_down_within_t6(bench: Bench, t_stop: float) -> None:
    """Output current <= 5 A within LIMITS['stop_current'] of the stop, and it stays there."""
    deadline = t_stop + limit("stop_current")
    bench.step_to(max(bench.now, deadline + CYCLE))
    after = [s for s in bench.samples if s.time >= t_stop - TIME_TOL]
    first_low = next(s for s in after if s.current <= timing.STOP_CURRENT_A)
    assert first_low.time <= deadline + TIME_TOL
    assert all(s.current <= timing.STOP_CURRENT_A for s in after if s.time >= first_low.time)
    reported = [v["PresentOutputCurrent"] for t, v in bench.decoded(0x109) if t >= deadline - TIME_TOL]
    assert reported and max(reported) <= timing.STOP_CURRENT_A
    assert "stop_current_slow" not in bench.charger.faults


def statuses_from(bench: Bench, t0: float) -> list[int]:
    return [s for t, s in bench.statuses() if t >= t0 - TIME_TOL]


def vehicle_welding_check(bench: Bench) -> None:
    """Scripted vehicle end of session: stop asking, open the contactors, set 102.5.3, open k."""
    bench.until_stage(Stage.WELDING_CHECK, within=limit("stop_current") + 1.0)
    bench.vehicle.set(ChargingEnabled=0, ChargeCurrentRequest=0)
    bench.open_contactors()
    bench.harness.set("k", False)


# --- wake-up and the 100 ms cycle -------------------------------------------------------------------


def test_start_closes_d1_and_stays_silent_until_a_vehicle_frame() -> None:
    bench = Bench()
    bench.start(0.0)
    assert bench.harness.is_on("d1")
    assert not bench.harness.is_on("d2")
    assert bench.stage is Stage.WAKE_UP
    assert bench.stage_changes() == [(0.0, "wake_up")]

    bench.step_to(3.0)
    assert bench.sent == []
    assert bench.stage is Stage.WAKE_UP

    bench.wake(3.0)
    bench.step_to(3.0)
    assert bench.charger.stage is Stage.NEGOTIATION
    assert [(f.arbitration_id, f.timestamp) for f in bench.sent] == [(0x108, 3.0), (0x109, 3.0)]


def test_0x108_then_0x109_every_100_ms() -> None:
    bench = Bench()
    bench.start(0.0)
    bench.wake(0.35)
    bench.step_to(0.35 + 2.0)
    ids = [f.arbitration_id for f in bench.sent]
    assert ids == [0x108, 0x109] * 21  # 0.35 s ... 2.35 s, no 0x118 at protocol 2
    f108, f109 = bench.frames(0x108), bench.frames(0x109)
    assert f108[0].timestamp == pytest.approx(0.35)
    for a, b in zip(f108, f109, strict=True):
        assert a.timestamp == b.timestamp  # 0x108 first, 0x109 in the same slot
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(f108)]
    assert all(g == pytest.approx(CYCLE, abs=TIME_TOL) for g in gaps)
    # idle status before permission: 0x20, the charger's own protocol number, no output
    for _, v in bench.decoded(0x109):
        assert v["StatusStopControl"] == 1 and v["StatusConnectorLocked"] == 0
        assert v["ProtocolNumberEVSE"] == 2
        assert v["PresentOutputVoltage"] == 0 and v["PresentOutputCurrent"] == 0
    assert set(bench.status_walk()) == {IDLE}


@pytest.mark.parametrize(
    ("available_v", "available_a", "vehicle_max_v", "threshold"),
    [
        (500.0, 125.0, 435, 435),  # Leaf: the battery's maximum
        (450.0, 110.0, 480, 450),  # charger's available voltage is lower
        (400.0, 60.0, 400, 400),
    ],
)
def test_0x108_capability_values(
    available_v: float, available_a: float, vehicle_max_v: int, threshold: int
) -> None:
    config = ChademoChargerConfig(max_voltage=available_v, max_current=available_a)
    bench = negotiating(config, ScriptedVehicle(MaxBatteryVoltage=vehicle_max_v, TargetBatteryVoltage=390))
    bench.step_to(bench.now + 0.5)
    values = [v for _, v in bench.decoded(0x108)]
    assert len(values) >= 5
    for v in values:
        assert v == {
            "WeldingDetectionSupport": 1,
            "AvailableOutputVoltage": int(available_v),
            "AvailableOutputCurrent": int(available_a),
            "ThresholdVoltage": threshold,
        }


# --- timeouts, each just before and just after its limit ------------------------------------------


def test_vehicle_silent_after_d1_stops_at_the_wake_up_limit() -> None:
    bench = Bench()
    bench.start(0.0)
    bench.step_to(limit("vehicle_can") - JUST)
    assert bench.stage is Stage.WAKE_UP
    assert bench.charger.stop_reason is None
    bench.step_to(limit("vehicle_can") + JUST)
    assert bench.stage is not Stage.WAKE_UP
    assert_stop_at(bench, limit("vehicle_can"))
    assert bench.samples[-1].status & SYSTEM_MALFUNCTION  # 109.5.4 (nothing was ever sent)
    ended = bench.finish()
    assert (ended.stage, ended.step, ended.origin) == ("wake_up", 3, Origin.VEHICLE)
    assert ended.outcome is Outcome.STOPPED
    assert bench.sent == []
    assert_terminal(bench)


def test_vehicle_silent_after_d1_reason_is_vehicle_not_awake() -> None:
    bench = Bench()
    bench.start(0.0)
    bench.step_to(limit("vehicle_can") + JUST)
    assert bench.finish().reason == "vehicle_not_awake"


@pytest.mark.parametrize(
    ("k", "enabled"), [(False, 0), (True, 0), (False, 1)], ids=["nothing", "k-only", "5.0-only"]
)
def test_no_permission_stops_at_t1_from_d1(k: bool, enabled: int) -> None:
    bench = negotiating(vehicle=ScriptedVehicle(ChargingEnabled=enabled))
    bench.harness.set("k", k)
    t1 = limit("permission")  # counted from d1 at 0 s, not from the vehicle's first frame
    bench.step_to(t1 - JUST)
    assert bench.stage is Stage.NEGOTIATION
    bench.step_to(t1 + JUST)
    assert_stop_at(bench, t1)
    assert statuses_from(bench, t1)[0] == STOP_CONTROL | SYSTEM_MALFUNCTION  # 0x30
    ended = bench.finish()
    # 102.5.0 = 1 with k open all along: the permission line is at fault, not the vehicle's will
    reason = "k_line_fault" if enabled and not k else "no_permission"
    assert (ended.reason, ended.stage, ended.step) == (reason, "negotiation", 4)
    assert bench.status_walk() == [IDLE, IDLE | SYSTEM_MALFUNCTION]
    assert_terminal(bench)


def test_can_loss_during_charging_stops_at_t11() -> None:
    bench = charging(request=100, settle=6.0)
    bench.vehicle.send_ids.discard(0x102)  # 0x100/0x101 keep coming, 0x102 stops
    bench.step_to(bench.now + 0.05)
    t_last = max(f.timestamp for f in bench.delivered if f.arbitration_id == 0x102)
    t11 = t_last + limit("can_loss")
    bench.step_to(t11 - JUST)
    assert bench.stage is Stage.CHARGING
    bench.step_to(t11 + JUST)
    assert_stop_at(bench, t11)
    assert statuses_from(bench, t11)[0] == RAMPING_DOWN | SYSTEM_MALFUNCTION  # 0x35
    assert_current_down_within_t6(bench, t11)
    # no 0x102, so no welding-check answer: the charger waits T7, then opens d2 (contactors drop)
    ended = bench.finish(within=limit("welding") + 5.0)
    assert (ended.reason, ended.stage, ended.step, ended.origin) == (
        "can_timeout",
        "charging",
        7,
        Origin.LINK,
    )
    assert bench.charger.faults == ["welding_check_timeout"]
    assert bench.status_walk() == [IDLE, ENERGIZING, DELIVERING, 0x35, 0x34, 0x30]
    assert_terminal(bench)


def test_insulation_test_never_reaching_its_voltage_stops_at_t2() -> None:
    # The vehicle's contactors close just after the pre-test check (output < 10 V, §7 step 6): the
    # battery clamps the output at 300 V, so the ramp to the 500 V test voltage never completes.
    bench = negotiating(contactors_need_d2=False)
    bench.grant_permission()
    t_permit = bench.until_stage(Stage.INSULATION_TEST, within=1.0)
    bench.harness.battery_voltage = 300.0
    bench.harness.contactors_closed = True
    t2 = t_permit + limit("insulation")
    bench.step_to(t2 - JUST)
    assert bench.stage is Stage.INSULATION_TEST
    assert not bench.harness.is_on("d2")
    assert {v["PresentOutputVoltage"] for t, v in bench.decoded(0x109) if t > t_permit + 1.0} == {300}
    bench.step_to(t2 + JUST)
    assert_stop_at(bench, t2)
    # §7 step 6: the insulation step fails with 109.5.1 (charger malfunction), not 109.5.4
    assert statuses_from(bench, t2)[0] == ENERGIZING | CHARGER_MALFUNCTION  # 0x26
    bench.harness.contactors_closed = False  # the vehicle opens up once the charger has stopped
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step, ended.origin) == (
        "insulation_timeout",
        "insulation_test",
        2,
        Origin.CHARGER,
    )
    assert bench.status_walk() == [IDLE, ENERGIZING, 0x26, 0x22]
    assert_terminal(bench)


def test_contactors_never_closing_stops_at_t3() -> None:
    bench = at_contactors()  # protocol 2; the vehicle keeps 102.5.3 = 1
    t_d2 = bench.stage_time(Stage.CONTACTORS)
    assert bench.harness.is_on("d2")
    t3 = t_d2 + limit("contactors")
    bench.step_to(t3 - JUST)
    assert bench.stage is Stage.CONTACTORS
    bench.step_to(t3 + JUST)
    assert_stop_at(bench, t3)
    assert statuses_from(bench, t3)[0] == ENERGIZING | SYSTEM_MALFUNCTION  # 0x34
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("contactor_timeout", "contactors", 6)
    assert bench.status_walk() == [IDLE, ENERGIZING, 0x34, 0x30]
    assert_terminal(bench)


def test_no_first_current_request_stops_at_t4() -> None:
    bench = at_precharge()
    t4 = bench.stage_time(Stage.PRECHARGE) + limit("first_request")
    bench.step_to(t4 - JUST)
    assert bench.stage is Stage.PRECHARGE
    bench.step_to(t4 + JUST)
    assert_stop_at(bench, t4)
    assert statuses_from(bench, t4)[0] == ENERGIZING | SYSTEM_MALFUNCTION  # 0x34
    vehicle_welding_check(bench)
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("no_current_request", "precharge", 5)
    assert bench.status_walk() == [IDLE, ENERGIZING, 0x34, 0x30]
    assert_terminal(bench)


def _stopped_without_welding_answer() -> tuple[Bench, float]:
    bench = charging(request=60, settle=4.0)
    bench.vehicle.set(ChargingEnabled=0, ChargeCurrentRequest=0)  # normal stop; 102.5.3 stays 0
    return bench, bench.until_stage(Stage.WELDING_CHECK, within=1.0)


def test_welding_check_never_answered_times_out_at_t7() -> None:
    bench, t_current_low = _stopped_without_welding_answer()
    t7 = t_current_low + limit("welding")
    bench.step_to(t7 - JUST)
    assert bench.stage is Stage.WELDING_CHECK
    assert bench.harness.is_on("d2")
    bench.step_to(t7 + JUST)
    assert bench.stage_time(Stage.SHUTDOWN) == pytest.approx(t7, abs=TIME_TOL)
    assert not bench.harness.is_on("d2")
    assert bench.charger.faults == ["welding_check_timeout"]
    ended = bench.finish()
    # the normal vehicle stop is overridden by the shutdown fault; the stop began while charging
    assert (ended.reason, ended.stage, ended.step) == ("welding_check_timeout", "charging", 7)
    assert ended.outcome is Outcome.STOPPED
    assert_unlocks_only_when_safe(bench)
    assert_terminal(bench)


def test_welding_check_timeout_sets_system_malfunction() -> None:
    bench, t_current_low = _stopped_without_welding_answer()
    t7 = t_current_low + limit("welding")
    bench.finish()
    after = statuses_from(bench, t7)
    assert after and all(s & SYSTEM_MALFUNCTION for s in after)


# --- protocol <= 1: fixed waits instead of 102.5.3 -------------------------------------------------


def test_protocol_1_waits_a_fixed_time_for_the_contactors() -> None:
    # A 0.9 vehicle never uses 102.5.3: it reads 0 from the start, which must not count as "closed".
    bench = at_contactors(vehicle=ScriptedVehicle(ProtocolNumberEV=1, ContactorOpen=0))
    assert bench.charger.protocol == 1
    t_d2 = bench.stage_time(Stage.CONTACTORS)
    bench.close_contactors()
    fixed = t_d2 + limit("contactors_fixed_wait")
    bench.step_to(fixed - JUST)
    assert bench.stage is Stage.CONTACTORS
    bench.step_to(fixed + JUST)
    assert bench.charger.stage is Stage.PRECHARGE
    assert bench.stage_time(Stage.PRECHARGE) == pytest.approx(fixed, abs=TIME_TOL)
    assert bench.charger.stop_reason is None


def test_protocol_1_waits_a_fixed_time_for_the_welding_check() -> None:
    bench = charging(vehicle=ScriptedVehicle(ProtocolNumberEV=1, ContactorOpen=0), request=40, settle=3.0)
    bench.vehicle.set(ChargingEnabled=0, ChargeCurrentRequest=0)
    t_low = bench.until_stage(Stage.WELDING_CHECK, within=1.0)
    bench.vehicle.set(ContactorOpen=1)  # meaningless at protocol 1: must not end the wait early
    fixed = t_low + limit("welding_fixed_wait")
    bench.step_to(fixed - JUST)
    assert bench.stage is Stage.WELDING_CHECK
    assert bench.harness.is_on("d2")
    bench.step_to(fixed + JUST)
    assert bench.stage_time(Stage.SHUTDOWN) == pytest.approx(fixed, abs=TIME_TOL)
    bench.harness.set("k", False)
    ended = bench.finish()
    assert (ended.reason, ended.outcome) == ("vehicle_stop", Outcome.COMPLETED)
    assert bench.charger.faults == []
    assert_terminal(bench)


@pytest.mark.parametrize(
    ("ev", "evse", "negotiated"),
    [(1, 2, 1), (2, 1, 1), (2, 2, 2), (3, 2, 2), (2, 3, 2), (3, 3, 3)],
)
def test_protocol_is_min_of_vehicle_and_charger(ev: int, evse: int, negotiated: int) -> None:
    bench = at_contactors(ChademoChargerConfig(protocol_number=evse), ScriptedVehicle(ProtocolNumberEV=ev))
    assert bench.charger.protocol == negotiated
    t_d2 = bench.stage_time(Stage.CONTACTORS)
    bench.close_contactors()  # 102.5.3 1 -> 0
    t_pre = bench.until_stage(Stage.PRECHARGE, within=limit("contactors"))
    if negotiated >= 2:
        assert t_pre - t_d2 <= CYCLE + TIME_TOL  # the next 0x102 closes the handshake
    else:
        assert t_pre == pytest.approx(t_d2 + limit("contactors_fixed_wait"), abs=TIME_TOL)
    assert {v["ProtocolNumberEVSE"] for _, v in bench.decoded(0x109)} == {evse}
    assert bool(bench.frames(0x118)) is (negotiated >= 3)


# --- compatibility -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "compatible"), [(400, True), (401, False), (480, False)])
def test_target_voltage_above_available_is_incompatible(target: int, compatible: bool) -> None:
    config = ChademoChargerConfig(max_voltage=400.0)
    bench = negotiating(config, ScriptedVehicle(TargetBatteryVoltage=target, MaxBatteryVoltage=420))
    bench.grant_permission()
    bench.step_to(bench.now + 0.3)
    if compatible:
        assert bench.stage is Stage.INSULATION_TEST
        assert bench.charger.stop_reason is None
        return
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("battery_incompatible", "negotiation", 4)
    assert str(target) in ended.cause
    assert bench.status_walk() == [IDLE, IDLE | INCOMPATIBLE]  # 0x20 -> 0x28
    assert all(v["PresentOutputVoltage"] == 0 for _, v in bench.decoded(0x109))  # no insulation test
    assert_terminal(bench)


def test_vehicle_protocol_0_is_incompatible() -> None:
    bench = negotiating(vehicle=ScriptedVehicle(ProtocolNumberEV=0))
    bench.grant_permission()
    ended = bench.finish()
    assert (ended.reason, ended.step) == ("battery_incompatible", 4)
    assert bench.status_walk() == [IDLE, IDLE | INCOMPATIBLE]


# --- insulation test -------------------------------------------------------------------------------


@pytest.mark.parametrize("test_voltage", [None, 450.0])
@pytest.mark.parametrize("factor", [0.99, 1.01])
def test_insulation_resistance_threshold(test_voltage: float | None, factor: float) -> None:
    config = ChademoChargerConfig(insulation_test_voltage=test_voltage)
    volts = config.test_voltage
    assert volts == (test_voltage or timing.INSULATION_TEST_V)
    bench = negotiating(config)
    bench.harness.insulation_resistance_ohm = factor * timing.INSULATION_OHM_PER_V * volts
    bench.grant_permission()
    if factor > 1:
        bench.until_stage(Stage.CONTACTORS, within=limit("insulation"))
        assert bench.charger.stop_reason is None
        return
    ended = bench.finish(within=limit("insulation") + 5.0)
    assert (ended.reason, ended.stage, ended.step) == ("insulation_fault", "insulation_test", 2)
    assert f"{volts:g} V" in ended.cause
    assert bench.status_walk() == [IDLE, ENERGIZING, ENERGIZING | CHARGER_MALFUNCTION, 0x22]
    assert not any(s.d2 for s in bench.samples)
    assert_unlocks_only_when_safe(bench)
    assert_terminal(bench)


@pytest.mark.parametrize("test_voltage", [None, 450.0])
def test_insulation_voltage_reported_then_bled_before_d2(test_voltage: float | None) -> None:
    config = ChademoChargerConfig(insulation_test_voltage=test_voltage)
    bench = at_contactors(config)
    t_permit = bench.stage_time(Stage.INSULATION_TEST)
    t_d2 = bench.stage_time(Stage.CONTACTORS)
    during = [v for t, v in bench.decoded(0x109) if t_permit - TIME_TOL <= t < t_d2 - TIME_TOL]
    reported = [int(v["PresentOutputVoltage"]) for v in during]
    assert max(reported) == round(config.test_voltage)
    held = sum(1 for r in reported if r == round(config.test_voltage))
    assert held >= round(limit("insulation_settle") / CYCLE)  # held while measuring
    assert all(v["StatusConnectorLocked"] == 1 and v["StatusCharging"] == 0 for v in during)
    # d2 closes only once the output has bled below 20 V
    first_d2 = next(s for s in bench.samples if s.d2)
    assert first_d2.time == pytest.approx(t_d2, abs=TIME_TOL)
    assert first_d2.voltage < timing.BLEED_DONE_V
    before = [s for s in bench.samples if s.time < t_d2 - TIME_TOL]
    assert max(s.voltage for s in before) == pytest.approx(config.test_voltage, abs=1.0)
    assert before[-1].voltage >= timing.BLEED_DONE_V  # it really was bleeding down to d2
    f109_at_d2 = next(v for t, v in bench.decoded(0x109) if t >= t_d2 - TIME_TOL)
    assert f109_at_d2["PresentOutputVoltage"] < timing.BLEED_DONE_V


# --- current control -------------------------------------------------------------------------------


def _assert_slew(bench: Bench, t0: float, t1: float) -> None:
    samples = bench.samples_between(t0, t1)
    for a, b in itertools.pairwise(samples):
        dt = b.time - a.time
        assert abs(b.current - a.current) <= timing.CURRENT_SLEW_A_PER_S * dt + 1e-6, (a, b)


@pytest.mark.parametrize(("available", "asked"), [(80.0, 100), (125.0, 40)])
def test_output_current_follows_min_of_request_and_available(available: float, asked: int) -> None:
    # With dynamic control (§6.3) a request above 108.3 can be the vehicle lagging a lowered 108.3:
    # the output is clamped and charging goes on (without it the request is implausible and stops:
    # tests/test_chademo_faults.py).
    bench = charging(ChademoChargerConfig(max_current=available, dynamic_control=True), request=asked)
    t_start = bench.stage_time(Stage.CHARGING)
    target = min(asked, available)
    bench.step_to(t_start + target / timing.CURRENT_SLEW_A_PER_S + 1.0)
    during = bench.samples_between(t_start, bench.now)
    assert max(s.current for s in during) == pytest.approx(target)
    assert during[-1].current == pytest.approx(target)
    assert all(s.current <= target + 1e-9 for s in during)
    assert all(v["PresentOutputCurrent"] <= target for _, v in bench.decoded(0x109))
    _assert_slew(bench, bench.stage_time(Stage.PRECHARGE), bench.now)
    # the vehicle lowers its request: the output follows down at the same slew, not below it
    t_drop = bench.now
    bench.vehicle.set(ChargeCurrentRequest=20)
    bench.step_to(t_drop + (target - 20) / timing.CURRENT_SLEW_A_PER_S + 1.0)
    assert bench.samples[-1].current == pytest.approx(20)
    assert all(s.current >= 20 - 1e-9 for s in bench.samples_between(t_drop, bench.now))
    _assert_slew(bench, t_drop, bench.now)
    assert bench.stage is Stage.CHARGING


@pytest.mark.parametrize("trigger", ["102.5.0", "k"])
def test_vehicle_stop_ramps_down_and_walks_the_status_byte(trigger: str) -> None:
    bench = charging(request=100, settle=6.0)
    assert bench.samples[-1].current == pytest.approx(100)
    if trigger == "k":  # k opens first; the vehicle's next 0x102 withdraws 102.5.0 (one cycle later)
        bench.harness.set("k", False)
        bench.vehicle.set(ChargingEnabled=0, ChargeCurrentRequest=0)
    else:
        bench.vehicle.set(ChargingEnabled=0, ChargeCurrentRequest=0)
    bench.until_stage(Stage.STOPPING, within=CYCLE + TIME_TOL)
    t_stop = bench.stage_time(Stage.STOPPING)
    assert bench.charger.stop_reason is not None and bench.charger.stop_reason.code == "vehicle_stop"
    assert_current_down_within_t6(bench, t_stop)
    vehicle_welding_check(bench)
    ended = bench.finish()
    assert (ended.reason, ended.outcome, ended.stage, ended.step) == (
        "vehicle_stop",
        Outcome.COMPLETED,
        "charging",
        7,
    )
    assert bench.status_walk() == [IDLE, ENERGIZING, DELIVERING, RAMPING_DOWN, ENERGIZING, IDLE]
    assert_unlocks_only_when_safe(bench)
    # §7 step 13: d2 opens first, d1 at least T8 later
    t_d2_off = next(s.time for s in bench.samples if s.time > t_stop and not s.d2)
    t_d1_off = next(s.time for s in bench.samples if s.time > t_stop and not s.d1)
    assert t_d1_off - t_d2_off >= limit("d2_to_d1") - TIME_TOL
    assert_terminal(bench)


def test_ramp_down_starts_when_the_stop_begins() -> None:
    bench = charging(request=100, settle=6.0)
    bench.vehicle.set(ChargingEnabled=0, ChargeCurrentRequest=0)
    bench.until_stage(Stage.STOPPING, within=CYCLE + TIME_TOL)
    t_stop = bench.stage_time(Stage.STOPPING)
    at_stop = [s for s in bench.samples if s.time == pytest.approx(t_stop, abs=TIME_TOL)]
    assert at_stop[-1].current == pytest.approx(100)


FAULTS = [
    ("FaultOverVoltage", "vehicle_over_voltage"),  # 102.4.0
    ("FaultUnderVoltage", "vehicle_under_voltage"),  # 102.4.1
    ("FaultCurrentDeviation", "vehicle_current_deviation"),  # 102.4.2
    ("FaultHighTemperature", "vehicle_high_temperature"),  # 102.4.3
    ("FaultVoltageDeviation", "vehicle_voltage_deviation"),  # 102.4.4
    ("ShiftPosition", "vehicle_shift_position"),  # 102.5.1
    ("ChargingSystemFault", "vehicle_system_fault"),  # 102.5.2
]


@pytest.mark.parametrize(("signal", "reason"), FAULTS, ids=[s for s, _ in FAULTS])
def test_vehicle_fault_bit_during_charging_stops(signal: str, reason: str) -> None:
    bench = charging(request=100, settle=6.0)
    fault: dict[str, Value] = {signal: 1}
    bench.vehicle.set(**fault)  # k and 102.5.0 stay as they were: stop regardless (§8)
    bench.until_stage(Stage.STOPPING, within=CYCLE + TIME_TOL)
    t_stop = bench.stage_time(Stage.STOPPING)
    assert statuses_from(bench, t_stop)[0] == RAMPING_DOWN | SYSTEM_MALFUNCTION  # 0x35
    assert_current_down_within_t6(bench, t_stop)
    vehicle_welding_check(bench)
    ended = bench.finish()
    assert (ended.reason, ended.outcome, ended.origin, ended.step) == (
        reason,
        Outcome.STOPPED,
        Origin.VEHICLE,
        7,
    )
    assert all(s & SYSTEM_MALFUNCTION for s in statuses_from(bench, t_stop))
    assert bench.status_walk() == [IDLE, ENERGIZING, DELIVERING, 0x35, 0x34, 0x30]
    assert_terminal(bench)


# --- operator stop, charge time ----------------------------------------------------------------------


def test_operator_stop_mid_charge() -> None:
    bench = charging(request=100, settle=6.0)
    t_stop = bench.now
    bench.request_stop("operator_stop")
    assert_stop_at(bench, t_stop)
    assert_current_down_within_t6(bench, t_stop)
    vehicle_welding_check(bench)
    ended = bench.finish()
    assert (ended.reason, ended.origin, ended.outcome) == ("operator_stop", Origin.OPERATOR, Outcome.STOPPED)
    assert bench.status_walk() == [IDLE, ENERGIZING, DELIVERING, RAMPING_DOWN, ENERGIZING, IDLE]
    assert_terminal(bench)


TIME_LIMITS = [
    # 10 s units: 109.6 = ceil(remaining / 10 s), 109.7 = ceil(remaining / 1 min)
    pytest.param(3, 0, 30.0, [(5.0, (3, 1)), (15.0, (2, 1)), (25.0, (1, 1))], id="10s-units"),
    # minutes (101.1 = 0xFF): 109.6 = 0xFF, 109.7 = ceil(remaining / 1 min)
    pytest.param(0xFF, 2, 120.0, [(30.0, (0xFF, 2)), (90.0, (0xFF, 1))], id="minutes"),
]


def _remaining(v: dict[str, Value]) -> tuple[int, int]:
    return int(v["RemainingTime10s"]), int(v["RemainingTimeMin"])


def _charging_with_time_limit(t10: int, tmin: int) -> tuple[Bench, float]:
    vehicle = ScriptedVehicle(MaxChargeTime10s=t10, MaxChargeTimeMin=tmin)
    bench = charging(vehicle=vehicle, request=100)
    return bench, bench.stage_time(Stage.CHARGING)


@pytest.mark.parametrize(("t10", "tmin", "limit_s", "checkpoints"), TIME_LIMITS)
def test_remaining_time_counts_down_and_stops_at_zero(
    t10: int, tmin: int, limit_s: float, checkpoints: list[tuple[float, tuple[int, int]]]
) -> None:
    bench, t_start = _charging_with_time_limit(t10, tmin)
    bench.step_to(t_start + limit_s - JUST)
    assert bench.stage is Stage.CHARGING

    frames = bench.decoded(0x109)
    before = [_remaining(v) for t, v in frames if t < t_start - TIME_TOL]
    full = (t10, 1) if t10 != 0xFF else (0xFF, tmin)
    assert before and set(before) == {full}
    for offset, expected in checkpoints:
        assert _remaining(next(v for t, v in frames if t >= t_start + offset - TIME_TOL)) == expected
    counting = [_remaining(v) for t, v in frames if t >= t_start - TIME_TOL]
    assert all(a >= b for a, b in itertools.pairwise(counting))

    bench.step_to(t_start + limit_s + JUST)
    assert_stop_at(bench, t_start + limit_s)
    assert_current_down_within_t6(bench, t_start + limit_s)
    vehicle_welding_check(bench)
    ended = bench.finish()
    assert (ended.reason, ended.origin, ended.outcome) == (
        "charge_time_limit",
        Origin.CHARGER,
        Outcome.STOPPED,
    )
    assert bench.status_walk() == [IDLE, ENERGIZING, DELIVERING, RAMPING_DOWN, ENERGIZING, IDLE]
    assert_terminal(bench)


@pytest.mark.parametrize(
    ("t10", "tmin", "after_stop"),
    [
        pytest.param(3, 0, (0, 0), id="10s-units"),
        pytest.param(
            0xFF,
            2,
            (0xFF, 0),
            id="minutes",
        ),
    ],
)
def test_remaining_time_reads_zero_after_the_time_limit_stop(
    t10: int, tmin: int, after_stop: tuple[int, int]
) -> None:
    bench, t_start = _charging_with_time_limit(t10, tmin)
    limit_s = 10.0 * t10 if t10 != 0xFF else 60.0 * tmin
    bench.step_to(t_start + limit_s + 1.0)
    assert bench.charger.stop_reason is not None
    assert bench.charger.stop_reason.code == "charge_time_limit"
    after = {_remaining(v) for t, v in bench.decoded(0x109) if t >= t_start + limit_s - TIME_TOL}
    assert after == {after_stop}


# --- malformed and foreign frames ----------------------------------------------------------------------


def test_wrong_dlc_is_ignored_and_counted() -> None:
    bench = Bench()
    bench.start(0.0)
    bench.step_to(0.5)
    bench.deliver(Frame(0x100, bench.vehicle.frame(0x100, 0.5).data[:7], timestamp=0.5))
    bench.deliver(Frame(0x102, b"", timestamp=0.5))
    assert (bench.charger.bad_frames, bench.charger.frames_received) == (2, 0)
    bench.step_to(1.0)
    assert bench.stage is Stage.WAKE_UP  # a truncated frame does not wake the charger
    assert bench.sent == []

    bench.wake(1.0)
    bench.until_stage(Stage.NEGOTIATION, within=0.1)
    bench.silence()  # from here on the test hands over every frame itself
    bench.harness.set("k", True)
    bench.vehicle.set(ChargingEnabled=1)
    permit = bench.vehicle.frame(0x102, bench.now)
    received = bench.charger.frames_received
    bench.deliver(Frame(0x102, permit.data[:5], timestamp=bench.now))
    bench.step_to(bench.now + 0.3)
    assert bench.charger.stage is Stage.NEGOTIATION  # the short 0x102 granted nothing
    assert (bench.charger.bad_frames, bench.charger.frames_received) == (3, received)
    bench.deliver(bench.vehicle.frame(0x102, bench.now))
    assert bench.snapshot_stage() == Stage.INSULATION_TEST.value
    assert (bench.charger.bad_frames, bench.charger.frames_received) == (3, received + 1)


def test_unknown_ids_are_ignored() -> None:
    bench = Bench()
    bench.start(0.0)
    full = bench.vehicle.frame(0x102, 0.0).data
    for frame in (
        Frame(0x110, bytes(8)),  # 0x110 (vehicle extended functions): not read by this charger
        Frame(0x200, bytes(8)),
        Frame(0x700, b"\x01\x02\x00\x00\x06\x00\x00\x00"),
        Frame(0x109, bytes(8)),  # a second charger's status
        Frame(0x102, full, is_extended_id=True),  # right number, wrong ID format
        Frame(0x7FF, b"\xff"),
    ):
        bench.deliver(frame)
    assert (bench.charger.frames_received, bench.charger.bad_frames) == (0, 0)
    bench.step_to(2.0)
    assert bench.stage is Stage.WAKE_UP
    assert bench.sent == []


def test_stop_before_start_is_final() -> None:
    bench = Bench()
    bench.request_stop("operator_stop")
    ended = bench.ended()
    assert (ended.reason, ended.stage, ended.step) == ("operator_stop", "idle", 1)
    assert not bench.harness.is_on("d1")
    bench.wake(0.1)
    bench.step_to(1.0)
    assert bench.sent == []
    assert bench.stage is Stage.DONE
