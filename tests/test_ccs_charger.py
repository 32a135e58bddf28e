"""CCS bridge charger core, stage by stage, against a scripted vehicle on an explicit clock.

Every limit comes from ``protocols/ccs/timing.py`` (each timeout is checked just before and just after
it); the scripted vehicle only sends hand-built frames and drives its pilot, plug and contactors (see
``tests/ccs_bench.py``).  § numbers refer to the CCS fact sheet.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charger_sim.errors import Origin
from charger_sim.frames import Frame
from charger_sim.protocols.base import Outcome
from charger_sim.protocols.ccs import timing
from charger_sim.protocols.ccs.bridge import (
    VEHICLE_FRAMES,
    EvErrorCode,
    EvseStatusCode,
    IsolationStatus,
    Notification,
    Processing,
    Protocol,
    Request,
    ResponseCode,
)
from charger_sim.protocols.ccs.electrical import CpState, PpCode
from charger_sim.protocols.ccs.evse import CcsChargerConfig
from charger_sim.protocols.ccs.states import NUMBER, Stage
from charger_sim.protocols.ccs.stops import EV_ERRORS
from tests.ccs_bench import (
    BATTERY_V,
    CODEC,
    CYCLE,
    ORDER,
    TIME_TOL,
    Bench,
    ScriptedEv,
    charging,
    vehicle_ends,
    walk_to,
)

JUST = 0.01  # "just before / just after" a limit: well inside one 100 ms cycle
limit = timing.limit
SNA2 = 3  # 2-bit SNA


# --- shared checks ----------------------------------------------------------------------------------


def assert_terminal(bench: Bench, *, locked: bool = False) -> None:
    """Done, output off, PWM off, relays open, silent from now on."""
    charger = bench.charger
    assert charger.finished and bench.stage is Stage.DONE
    assert charger.next_deadline() is None
    assert not charger.evse.relays and charger.evse.duty == 100.0
    assert charger.evse.locked is locked
    last = bench.last("EvseStatus")
    assert last["EvseStage"] == NUMBER[Stage.DONE] and last["CpDuty"] == 100.0
    sent = len(bench.sent)
    bench.step_to(bench.now + 2.0)
    assert len(bench.sent) == sent


def assert_stop_at(bench: Bench, stage: Stage, at: float) -> None:
    assert bench.stage_time(stage) == pytest.approx(at, abs=TIME_TOL)


def assert_current_off_within(bench: Bench, t_stop: float) -> None:
    """Output current <= 1 A within LIMITS['stop_current'] of ``t_stop`` and no slow-stop fault."""
    deadline = t_stop + limit("stop_current")
    bench.step_to(max(bench.now, deadline + CYCLE))
    after = [s for s in bench.samples if s.time >= t_stop - TIME_TOL]
    first_low = next(s for s in after if s.current <= timing.CURRENT_OFF_A)
    assert first_low.time <= deadline + TIME_TOL
    reported = [
        v["EvsePresentCurrent"] for t, v in bench.decoded("EvsePresentValues") if t >= deadline - TIME_TOL
    ]
    assert reported and max(reported) <= timing.CURRENT_OFF_A
    assert "stop_current_slow" not in bench.charger.faults


def answer(bench: Bench) -> dict[str, float | int]:
    """The next EvseStatus the charger sends."""
    n = len(bench.decoded("EvseStatus"))
    bench.run_until(lambda: len(bench.decoded("EvseStatus")) > n, within=CYCLE + TIME_TOL)
    return bench.last("EvseStatus")


# --- plug-in, pilot, the 100 ms cycle -----------------------------------------------------------------


def test_plug_in_reads_pp_and_cp_b1_then_starts_5_percent_pwm() -> None:
    bench = Bench()
    bench.start(0.0)
    first = bench.last("EvseStatus")
    assert first["EvseStage"] == NUMBER[Stage.PLUGGED_IN] == 1
    assert (first["CpState"], first["CpDuty"], first["CpDiodePresent"]) == (CpState.B, 100.0, SNA2)
    assert (first["PpResistance"], first["PpCode"]) == (1500, PpCode.TYPE2_13A)
    assert first["EvseIsolationStatus"] == IsolationStatus.SNA
    assert first["EvseStatusCode"] == EvseStatusCode.NOT_READY
    assert (first["EvseResponseCode"], first["EvseProcessing"]) == (ResponseCode.SNA, Processing.SNA)
    assert first["EvseProtocol"] == Protocol.NOT_NEGOTIATED
    bench.until_stage(Stage.CP_B_PWM, within=CYCLE + TIME_TOL)
    assert bench.stage_time(Stage.CP_B_PWM) == pytest.approx(CYCLE)  # B1 confirmed for one cycle
    v = bench.last("EvseStatus")
    assert (v["EvseStage"], v["CpState"], v["CpDuty"], v["CpDiodePresent"]) == (2, CpState.B, 5.0, 1)
    assert bench.harness.line("cp_duty") == 5.0
    assert bench.samples[-1].cp == "B2"


def test_frames_every_100_ms_in_order_with_a_wrapping_alive_counter() -> None:
    bench = Bench()
    bench.start(0.0)
    bench.step_to(2.0)
    ids = [f.arbitration_id for f in bench.sent]
    assert ids == [0x500, 0x501, 0x502, 0x503] * 21
    status = bench.decoded("EvseStatus")
    gaps = {round(b[0] - a[0], 6) for a, b in itertools.pairwise(status)}
    assert gaps == {CYCLE}
    counters = [int(v["EvseAliveCounter"]) for _, v in status]
    assert counters == [k % 15 for k in range(21)]  # 0..14, then 0 again; 15 is never sent
    for f in bench.sent:
        assert len(f.data) == 8 and not f.is_extended_id


def test_limit_frames_carry_the_configuration_and_sna_for_absent_options() -> None:
    config = CcsChargerConfig(
        max_voltage=920, max_current=200, max_power=150_000, min_voltage=200, min_current=1,
        current_regulation_tolerance=None, peak_current_ripple=3, energy_to_deliver_kwh=42.5,
    )  # fmt: skip
    bench = Bench(config)
    bench.start(0.0)
    maxima, minima = bench.last("EvseMaxLimits"), bench.last("EvseMinLimits")
    assert maxima == pytest.approx(
        {"EvseMaxVoltage": 920, "EvseMaxCurrent": 200, "EvseMaxPower": 150, "EvseEnergyToBeDelivered": 42.5}
    )
    assert minima["EvseMinVoltage"] == pytest.approx(200) and minima["EvseMinCurrent"] == pytest.approx(1)
    assert minima["EvseCurrentRegulationTolerance"] == pytest.approx(6553.5)  # SNA: not provided
    raw = next(f.data for f in bench.sent if f.arbitration_id == 0x502)
    assert raw[4:6] == b"\xff\xff"


# stage -> (CP state, duty, diode check, relays, locked) right after the charger entered it
PILOT_AT = {
    Stage.PLUGGED_IN: (CpState.B, 100.0, SNA2, False, False),
    Stage.CP_B_PWM: (CpState.B, 5.0, 1, False, False),
    Stage.SESSION_SETUP: (CpState.B, 5.0, 1, False, False),
    Stage.SERVICE_DISCOVERY: (CpState.B, 5.0, 1, False, False),
    Stage.AUTHORIZATION: (CpState.B, 5.0, 1, False, False),
    Stage.CHARGE_PARAMETER_DISCOVERY: (CpState.B, 5.0, 1, False, False),
    Stage.CP_STATE_C: (CpState.C, 5.0, 1, False, False),
    Stage.CABLE_CHECK: (CpState.C, 5.0, 1, True, True),
    Stage.PRECHARGE: (CpState.C, 5.0, 1, True, True),
    Stage.POWER_DELIVERY_START: (CpState.C, 5.0, 1, True, True),
    Stage.CURRENT_DEMAND: (CpState.C, 5.0, 1, True, True),
}


@pytest.mark.parametrize("stage", ORDER, ids=lambda s: s.value)
def test_cp_pp_and_answer_at_each_stage(stage: Stage) -> None:
    bench = walk_to(stage)
    v = bench.last("EvseStatus") if stage is Stage.PLUGGED_IN else answer(bench)
    cp, duty, diode, relays, locked = PILOT_AT[stage]
    assert v["EvseStage"] == NUMBER[stage]
    assert (v["CpState"], v["CpDuty"], v["CpDiodePresent"]) == (cp, duty, diode)
    assert (v["PpResistance"], v["PpCode"]) == (1500, PpCode.TYPE2_13A)
    assert (bench.charger.evse.relays, bench.charger.evse.locked) == (relays, locked)
    request = {s: int(r) for s, r in zip(ORDER[2:], [3, 4, 5, 6, 8, 8, 9, 10, 11], strict=True)}
    if stage in request and stage is not Stage.CP_STATE_C:
        assert v["EvseStage"] == request[stage] == bench.ev.get("EvRequest")  # the answer's number
    before_session = stage in (Stage.PLUGGED_IN, Stage.CP_B_PWM)
    assert v["EvseProtocol"] == (Protocol.NOT_NEGOTIATED if before_session else Protocol.DIN70121)
    expected_code = EvseStatusCode.NOT_READY if before_session else EvseStatusCode.READY
    if stage is Stage.CABLE_CHECK:
        expected_code = EvseStatusCode.ISOLATION_MONITORING_ACTIVE
    assert v["EvseStatusCode"] == expected_code
    if stage is Stage.SESSION_SETUP:
        assert v["EvseResponseCode"] == ResponseCode.OK_NEW_SESSION_ESTABLISHED
    elif not before_session:
        assert v["EvseResponseCode"] == ResponseCode.OK
    ongoing = stage in (Stage.AUTHORIZATION, Stage.CABLE_CHECK, Stage.PRECHARGE)
    if not before_session:
        assert v["EvseProcessing"] == (Processing.ONGOING if ongoing else Processing.FINISHED)


def test_every_answer_goes_out_well_within_the_message_timeout() -> None:
    bench = walk_to(Stage.CURRENT_DEMAND)
    answer(bench)
    requests = {}  # request -> first time the vehicle sent it
    for f in bench.delivered:
        if f.arbitration_id == 0x510:
            r = int(CODEC.message("EvStatus").decode(f.data)["EvRequest"])
            requests.setdefault(r, f.timestamp)
    for r, t in requests.items():
        if r in (Request.NONE, Request.CABLE_CHECK):
            continue  # the cable check waits for CP C and the lock (cp_detection, lock_time)
        seen = next(ts for ts, v in bench.decoded("EvseStatus") if v["EvseStage"] == r)
        assert seen - t <= CYCLE + TIME_TOL < limit("message_response")


# --- timeouts, each just before and just after its limit ------------------------------------------


def test_no_vehicle_on_the_pilot_stops_at_cp_detection() -> None:
    bench = Bench()
    bench.unplug_cp()  # CP stays at 12 V: state A
    bench.start(0.0, ev_talks=False)
    bench.step_to(limit("cp_detection") - JUST)
    assert bench.stage is Stage.PLUGGED_IN and bench.charger.evse.duty == 100.0
    bench.step_to(limit("cp_detection") + JUST)
    assert_stop_at(bench, Stage.ERROR, limit("cp_detection"))
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step, ended.origin) == (
        "no_vehicle",
        "plugged_in",
        1,
        Origin.VEHICLE,
    )
    assert all(s.duty == 100.0 for s in bench.samples)  # PWM never started
    assert_terminal(bench)


def test_link_never_up_stops_at_communication_setup() -> None:
    bench = walk_to(Stage.CP_B_PWM)  # the vehicle stays at EvRequest = 0 (no SLAC / SessionSetup)
    t = bench.stage_time(Stage.CP_B_PWM) + limit("communication_setup")
    bench.step_to(t - JUST)
    assert bench.stage is Stage.CP_B_PWM
    bench.step_to(t + JUST)
    assert_stop_at(bench, Stage.ERROR, t)
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("link_setup_timeout", "cp_b_pwm", 1)
    assert_terminal(bench)


def test_no_next_request_stops_at_the_sequence_timeout() -> None:
    bench = walk_to(Stage.SESSION_SETUP)
    bench.run_until(lambda: bench.answered(Stage.SESSION_SETUP), within=1.0)
    t = bench.stage_time(Stage.SESSION_SETUP) + limit("sequence")  # from the finished answer
    bench.step_to(t - JUST)
    assert bench.stage is Stage.SESSION_SETUP
    bench.step_to(t + JUST)
    assert_stop_at(bench, Stage.EMERGENCY_STOP, t)
    v = bench.status_after(t)[0]
    assert v["EvseStatusCode"] == EvseStatusCode.EMERGENCY_SHUTDOWN and v["CpDuty"] == 100.0
    assert v["EvseResponseCode"] == ResponseCode.FAILED
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("sequence_timeout", "session_setup", 3)
    assert_terminal(bench)


def test_authorization_never_given_stops_at_the_ongoing_limit() -> None:
    bench = walk_to(Stage.AUTHORIZATION, CcsChargerConfig(authorize=False))
    t = bench.stage_time(Stage.AUTHORIZATION) + limit("ongoing")
    assert limit("ongoing") < limit("sequence")  # the SECC finishes before the EVCC's 60 s
    bench.step_to(t - JUST)
    assert bench.stage is Stage.AUTHORIZATION
    t0 = bench.stage_time(Stage.AUTHORIZATION)
    assert {v["EvseProcessing"] for ts, v in bench.decoded("EvseStatus") if ts > t0 + TIME_TOL} == {1}
    bench.step_to(t + JUST)
    assert_stop_at(bench, Stage.ERROR, t)
    v = bench.status_after(t)[0]
    assert v["EvseResponseCode"] == ResponseCode.FAILED_CONTRACT_CANCELED
    assert v["EvseNotification"] == Notification.STOP_CHARGING
    ended = bench.finish(within=limit("sequence") + 2.0)  # nobody ends the session: released later
    assert (ended.reason, ended.origin, ended.stage) == (
        "authorization_timeout",
        Origin.OPERATOR,
        "authorization",
    )
    assert bench.charger.faults == ["session_not_closed"]


def test_cable_check_request_without_state_c_stops_at_cp_detection() -> None:
    bench = walk_to(Stage.CHARGE_PARAMETER_DISCOVERY)
    bench.run_until(lambda: bench.answered(Stage.CHARGE_PARAMETER_DISCOVERY), within=1.0)
    bench.ev.request(Request.CABLE_CHECK)  # S2 stays open: CP in B
    bench.run_until(lambda: "cp_detection" in bench.charger.deadlines, within=CYCLE + TIME_TOL)
    t = bench.now + limit("cp_detection")
    bench.step_to(t - JUST)
    assert bench.stage is Stage.CHARGE_PARAMETER_DISCOVERY
    bench.step_to(t + JUST)
    assert_stop_at(bench, Stage.ERROR, t)
    assert bench.status_after(t)[0]["EvseResponseCode"] == ResponseCode.FAILED_SEQUENCE_ERROR
    bench.ev.request(Request.SESSION_STOP)
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("cp_not_c", "charge_parameter_discovery", 4)
    assert_terminal(bench)


@pytest.mark.parametrize("revision", list(timing.REVISIONS))
def test_cable_check_not_finishing_stops_at_its_limit(revision: str) -> None:
    bench = walk_to(Stage.CP_STATE_C, CcsChargerConfig(revision=revision))
    t0 = bench.until_stage(Stage.CABLE_CHECK, within=1.0)
    # the contactors close during the test (a battery on the inlet at CableCheckReq would be a welded
    # contactor: test_ccs_faults): the battery clamps the test voltage
    bench.contactors(True, battery_voltage=300.0)
    t = t0 + limit("cable_check", revision)
    assert limit("cable_check", revision) == 38.0 < limit("vehicle_cable_check")
    bench.step_to(t - JUST)
    assert bench.stage is Stage.CABLE_CHECK
    assert bench.samples[-1].voltage == pytest.approx(300.0)
    bench.step_to(t + JUST)
    assert_stop_at(bench, Stage.ERROR, t)
    v = bench.status_after(t)[0]
    assert v["EvseStatusCode"] == EvseStatusCode.MALFUNCTION  # the charger's own failure
    bench.contactors(False)
    bench.ev.request(Request.SESSION_STOP)
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step, ended.origin) == (
        "cable_check_timeout", "cable_check", 2, Origin.CHARGER,
    )  # fmt: skip
    assert_terminal(bench)


def test_precharge_matched_but_no_power_delivery_is_a_vehicle_timeout() -> None:
    bench = walk_to(Stage.PRECHARGE)
    t = bench.stage_time(Stage.PRECHARGE) + limit("precharge")
    bench.step_to(t - JUST)
    assert bench.stage is Stage.PRECHARGE and bench.answered(Stage.PRECHARGE)  # matched: Finished
    assert bench.samples[-1].voltage == pytest.approx(BATTERY_V, abs=timing.PRECHARGE_READY_V)
    bench.step_to(t + JUST)
    assert_stop_at(bench, Stage.ERROR, t)
    bench.ev.request(Request.SESSION_STOP)
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step, ended.origin) == (
        "precharge_timeout", "precharge", 5, Origin.VEHICLE,
    )  # fmt: skip
    assert_terminal(bench)


def test_precharge_target_out_of_reach_is_a_charger_failure() -> None:
    bench = walk_to(Stage.CABLE_CHECK, CcsChargerConfig(max_voltage=400))
    bench.run_until(lambda: bench.answered(Stage.CABLE_CHECK), within=limit("cable_check"))
    bench.ev.set(EvTargetVoltage=430.0, EvTargetCurrent=2.0)  # above the charger's 400 V
    bench.ev.request(Request.PRECHARGE)
    t0 = bench.until_stage(Stage.PRECHARGE, within=1.0)
    bench.step_to(t0 + limit("precharge") - JUST)
    assert bench.stage is Stage.PRECHARGE
    assert {v["EvseProcessing"] for ts, v in bench.decoded("EvseStatus") if ts > t0 + TIME_TOL} == {1}
    assert bench.samples[-1].voltage == pytest.approx(400.0)
    bench.step_to(t0 + limit("precharge") + JUST)
    bench.ev.request(Request.SESSION_STOP)
    ended = bench.finish()
    assert (ended.reason, ended.origin) == ("precharge_failed", Origin.CHARGER)


def test_ready_to_charge_limit_counts_from_plug_in() -> None:
    bench = walk_to(Stage.SESSION_SETUP)
    for at, request in ((50.0, Request.SERVICE_DISCOVERY), (100.0, Request.CONTRACT_AUTHENTICATION)):
        bench.step_to(at)  # the vehicle dawdles 50 s before each request (inside the 60 s sequence)
        bench.ev.request(request)
    bench.step_to(limit("ready_to_charge") - JUST)
    assert bench.stage is Stage.AUTHORIZATION and bench.charger.stop_reason is None
    bench.step_to(limit("ready_to_charge") + JUST)
    assert_stop_at(bench, Stage.ERROR, limit("ready_to_charge"))
    assert bench.charger.stop_reason is not None
    assert bench.charger.stop_reason.code == "ready_to_charge_timeout"


@pytest.mark.parametrize("message", ["EvStatus", "EvTargets", "EvMaxLimits", "EvBatteryInfo"])
def test_a_missing_vehicle_frame_stops_at_the_receive_timeout(message: str) -> None:
    bench = charging(amps=100.0)
    bench.ev.send.discard(message)
    bench.step_to(bench.now + 0.05)
    frame_id = CODEC.message(message).frame_id
    t = max(f.timestamp for f in bench.delivered if f.arbitration_id == frame_id) + limit("rx_timeout")
    bench.step_to(t - JUST)
    assert bench.stage is Stage.CURRENT_DEMAND
    bench.step_to(t + JUST)
    assert_stop_at(bench, Stage.EMERGENCY_STOP, t)
    v = bench.status_after(t)[0]
    assert (v["EvseStatusCode"], v["CpDuty"]) == (EvseStatusCode.EMERGENCY_SHUTDOWN, 100.0)
    assert_current_off_within(bench, t)
    bench.contactors(False)  # the vehicle opens up once the current is off
    ended = bench.finish()
    assert (ended.reason, ended.origin, ended.stage) == ("can_timeout", Origin.LINK, "current_demand")
    assert message in ended.cause
    assert_terminal(bench)


def test_a_frozen_alive_counter_stops_at_the_alive_timeout() -> None:
    bench = charging(amps=100.0)
    bench.ev.freeze_counter = True  # frames keep coming, the counter stops
    bench.step_to(bench.now + 0.25)
    t = bench.charger.deadlines.get("alive")
    assert t is not None
    bench.step_to(t - JUST)
    assert bench.stage is Stage.CURRENT_DEMAND
    bench.step_to(t + JUST)
    assert_stop_at(bench, Stage.EMERGENCY_STOP, t)
    assert_current_off_within(bench, t)
    bench.contactors(False)
    ended = bench.finish()
    assert (ended.reason, ended.origin) == ("alive_counter_frozen", Origin.VEHICLE)


def test_an_sna_alive_counter_from_the_first_frame_counts_as_frozen() -> None:
    bench = Bench(ev=ScriptedEv(EvAliveCounter=15))
    bench.ev.freeze_counter = True
    bench.start(0.0)
    bench.step_to(limit("alive_timeout") - JUST)
    assert bench.charger.stop_reason is None
    bench.step_to(limit("alive_timeout") + JUST)
    assert bench.charger.stop_reason is not None
    assert bench.charger.stop_reason.code == "alive_counter_frozen"


def test_an_alive_counter_jump_is_counted_not_fatal() -> None:
    bench = charging(amps=50.0, settle=1.0)
    bench.ev.set(EvAliveCounter=(int(bench.ev.get("EvAliveCounter")) + 6) % 15)
    bench.step_to(bench.now + 1.0)
    assert bench.charger.alive.jumps == 1
    assert bench.stage is Stage.CURRENT_DEMAND


def test_unlock_waits_for_60_v_and_never_unlocks_a_live_connector() -> None:
    bench = charging(amps=100.0)
    bench.ev.freeze_counter = True  # a hung vehicle: its contactors stay closed
    t0 = bench.run_until(lambda: bench.stage is Stage.UNLOCK, within=3.0)
    assert not bench.charger.evse.relays and bench.charger.evse.locked
    assert bench.samples[-1].voltage == pytest.approx(BATTERY_V)  # the battery holds the inlet
    bench.step_to(t0 + limit("unlock_wait") - JUST)
    assert bench.stage is Stage.UNLOCK
    bench.step_to(t0 + limit("unlock_wait") + JUST)
    ended = bench.ended()
    assert ended.reason == "alive_counter_frozen" and bench.charger.faults == ["output_not_discharged"]
    assert bench.last("EvseStatus")["EvseStatusCode"] == EvseStatusCode.MALFUNCTION
    assert_terminal(bench, locked=True)


@pytest.mark.parametrize("revision", list(timing.REVISIONS))
def test_current_demand_is_answered_in_the_next_frame(revision: str) -> None:
    bench = charging(amps=40.0, settle=4.0, config=CcsChargerConfig(revision=revision))
    budget = limit("current_demand_response", revision)
    assert budget == {"din70121_2012": 0.25, "din_ts70121_2024": 0.5}[revision]
    assert budget > CYCLE
    t_set = bench.now
    bench.ev.set(EvTargetCurrent=60.0)
    n = len(bench.delivered)
    bench.run_until(lambda: len(bench.delivered) > n, within=CYCLE + TIME_TOL)
    t_rx = bench.delivered[-1].timestamp
    assert t_rx > t_set
    assert bench.charger.power.current_target == pytest.approx(60.0)  # applied on receipt
    bench.step_to(t_rx + CYCLE + TIME_TOL)
    later = [t for t, _ in bench.decoded("EvsePresentValues") if t > t_rx + TIME_TOL]
    assert later and later[0] - t_rx <= CYCLE + TIME_TOL <= budget


# --- cable check and isolation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ev_max", "charger_max", "test_v"),
    [(409.0, 500.0, 459.0), (480.0, 500.0, 500.0), (800.0, 1000.0, 880.0), (409.0, 450.0, 450.0)],
)
def test_cable_check_voltage_held_measured_and_bled(ev_max: float, charger_max: float, test_v: float) -> None:
    assert timing.cable_check_voltage(ev_max, charger_max) == pytest.approx(test_v)
    bench = walk_to(
        Stage.CABLE_CHECK, CcsChargerConfig(max_voltage=charger_max), ScriptedEv(EvMaxVoltage=ev_max)
    )
    t0 = bench.stage_time(Stage.CABLE_CHECK)
    bench.run_until(lambda: bench.answered(Stage.CABLE_CHECK), within=limit("cable_check"))
    t_done = bench.now
    during = [v for t, v in bench.decoded("EvseStatus") if t0 - TIME_TOL <= t < t_done - TIME_TOL]
    assert {v["EvseStatusCode"] for v in during} == {EvseStatusCode.ISOLATION_MONITORING_ACTIVE}
    assert {v["EvseProcessing"] for v in during} == {Processing.ONGOING}
    assert during[0]["EvseIsolationStatus"] == IsolationStatus.INVALID
    volts = [v["EvsePresentVoltage"] for t, v in bench.decoded("EvsePresentValues") if t0 <= t < t_done]
    assert max(volts) == pytest.approx(test_v)
    held = sum(1 for x in volts if x == pytest.approx(test_v))
    assert held >= round(limit("isolation_measure") / CYCLE)
    done = bench.last("EvseStatus")
    assert done["EvseIsolationStatus"] == IsolationStatus.VALID
    assert done["EvseStatusCode"] == EvseStatusCode.READY
    assert bench.last("EvsePresentValues")["EvsePresentVoltage"] < timing.SAFE_V  # bled before Finished
    assert max(s.current for s in bench.samples) <= timing.CABLE_CHECK_CURRENT_A


@pytest.mark.parametrize(
    ("ohm_per_v", "status"),
    [(99.0, IsolationStatus.FAULT), (101.0, IsolationStatus.WARNING), (499.0, IsolationStatus.WARNING),
     (501.0, IsolationStatus.VALID)],
)  # fmt: skip
def test_isolation_levels(ohm_per_v: float, status: IsolationStatus) -> None:
    bench = walk_to(Stage.CP_STATE_C)
    test_v = timing.cable_check_voltage(409.0, 500.0)
    bench.harness.insulation_resistance_ohm = ohm_per_v * test_v
    bench.until_stage(Stage.CABLE_CHECK, within=1.0)
    bench.run_until(
        lambda: bench.stage is Stage.ERROR or bench.answered(Stage.CABLE_CHECK), within=limit("cable_check")
    )
    v = answer(bench)
    assert v["EvseIsolationStatus"] == status
    if status is not IsolationStatus.FAULT:
        assert bench.stage is Stage.CABLE_CHECK
        return
    assert v["EvseStage"] == NUMBER[Stage.ERROR]
    assert v["EvseStatusCode"] == EvseStatusCode.SHUTDOWN and v["EvseResponseCode"] == ResponseCode.FAILED
    bench.s2(False)
    bench.ev.request(Request.SESSION_STOP)
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("isolation_fault", "cable_check", 2)
    assert f"{test_v:g} V" in ended.cause
    assert_terminal(bench)


def test_imd_keeps_watching_while_charging() -> None:
    bench = charging(amps=100.0)
    bench.harness.insulation_resistance_ohm = 10_000.0
    t = bench.run_until(lambda: bench.stage is Stage.ERROR, within=CYCLE + TIME_TOL)
    assert_current_off_within(bench, t)
    assert bench.last("EvseStatus")["EvseIsolationStatus"] == IsolationStatus.FAULT
    ended = vehicle_ends(bench)
    assert (ended.reason, ended.stage) == ("isolation_fault", "current_demand")


# --- current demand ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "ev_max", "expected", "current_flag", "power_flag"),
    [(150.0, 200.0, 125.0, 1, 1), (100.0, 200.0, 100.0, 0, 0), (100.0, 80.0, 80.0, 0, 0)],
)
def test_output_follows_the_target_within_the_limits(
    target: float, ev_max: float, expected: float, current_flag: int, power_flag: int
) -> None:
    bench = charging(amps=target, settle=8.0, ev=ScriptedEv(EvMaxCurrent=ev_max))
    assert bench.samples[-1].current == pytest.approx(expected)
    t0 = bench.stage_time(Stage.CURRENT_DEMAND)
    for a, b in itertools.pairwise(s for s in bench.samples if s.time >= t0):
        assert b.current - a.current <= timing.CURRENT_SLEW_A_PER_S * (b.time - a.time) + 1e-6
    present = bench.last("EvsePresentValues")
    assert present["EvsePresentCurrent"] == pytest.approx(expected)
    assert present["EvsePresentVoltage"] == pytest.approx(BATTERY_V)
    assert present["EvsePresentPower"] == pytest.approx(round(expected * BATTERY_V / 100) / 10)
    assert (present["EvseCurrentLimitAchieved"], present["EvseVoltageLimitAchieved"]) == (current_flag, 0)
    assert present["EvsePowerLimitAchieved"] == power_flag  # 150 A x 360 V > 50 kW


def test_power_limit_caps_the_current_and_sets_its_flag() -> None:
    bench = charging(amps=120.0, settle=8.0, config=CcsChargerConfig(max_power=30_000))
    assert bench.samples[-1].current == pytest.approx(30_000 / BATTERY_V, rel=1e-3)
    assert bench.last("EvsePresentValues")["EvsePowerLimitAchieved"] == 1


def test_limit_flags_are_sna_outside_the_current_demand_loop() -> None:
    bench = walk_to(Stage.POWER_DELIVERY_START)
    answer(bench)
    flags = {
        (v["EvseCurrentLimitAchieved"], v["EvseVoltageLimitAchieved"], v["EvsePowerLimitAchieved"])
        for _, v in bench.decoded("EvsePresentValues")
    }
    assert flags == {(SNA2, SNA2, SNA2)}


def test_vehicle_stop_ramps_down_within_the_limit_and_completes() -> None:
    bench = charging(amps=100.0)
    bench.ev.set(EvTargetCurrent=0.0, EvChargingComplete=1)
    bench.ev.request(Request.POWER_DELIVERY_STOP)
    t = bench.until_stage(Stage.POWER_DELIVERY_STOP, within=CYCLE + TIME_TOL)
    assert_current_off_within(bench, t)
    ended = vehicle_ends(bench)
    assert (ended.outcome, ended.reason, ended.stage, ended.step) == (
        Outcome.COMPLETED, "vehicle_stop", "current_demand", 7,
    )  # fmt: skip
    # welding detection: output off, the present voltage falls below 60 V before SessionStop
    t_weld = bench.stage_time(Stage.WELDING_DETECTION)
    volts = [v["EvsePresentVoltage"] for ts, v in bench.decoded("EvsePresentValues") if ts >= t_weld]
    assert volts[0] > timing.SAFE_V > volts[-1]
    # unlocked only below 60 V, after PWM off
    unlocked = next(s for s in bench.samples if not s.locked and s.time > t)
    assert unlocked.voltage < timing.SAFE_V and unlocked.duty == 100.0
    assert_terminal(bench)


def test_pause_and_resume_on_a_b_c_toggle() -> None:
    bench = charging(amps=100.0)
    bench.s2(False)  # C -> B
    t = bench.run_until(lambda: bench.stage is Stage.PAUSED, within=CYCLE + TIME_TOL)
    assert_current_off_within(bench, t)
    assert answer(bench)["EvseStage"] == NUMBER[Stage.PAUSED] == 17
    bench.step_to(bench.now + 2.0)
    bench.s2(True)  # B -> C
    t_resume = bench.run_until(lambda: bench.stage is Stage.CURRENT_DEMAND, within=CYCLE + TIME_TOL)
    bench.step_to(t_resume + 6.0)
    assert bench.samples[-1].current == pytest.approx(100.0)
    assert bench.charger.stop_reason is None
    ended = vehicle_ends(bench)
    assert (ended.outcome, ended.reason) == (Outcome.COMPLETED, "vehicle_stop")


def test_pause_ended_by_the_vehicle_is_a_cp_state_b_stop_begun_in_current_demand() -> None:
    bench = charging(amps=100.0)
    bench.s2(False)
    bench.run_until(lambda: bench.stage is Stage.PAUSED, within=CYCLE + TIME_TOL)
    ended = vehicle_ends(bench)
    assert (ended.outcome, ended.reason, ended.stage, ended.step) == (
        Outcome.STOPPED, "cp_state_b", "current_demand", 7,
    )  # fmt: skip


def test_a_pause_longer_than_the_sequence_timeout_stops() -> None:
    bench = charging(amps=100.0)
    bench.s2(False)
    t0 = bench.run_until(lambda: bench.stage is Stage.PAUSED, within=CYCLE + TIME_TOL)
    bench.step_to(t0 + limit("sequence") - JUST)
    assert bench.stage is Stage.PAUSED
    bench.step_to(t0 + limit("sequence") + JUST)
    assert_stop_at(bench, Stage.ERROR, t0 + limit("sequence"))
    assert bench.charger.stop_reason is not None and bench.charger.stop_reason.code == "cp_state_b"


@pytest.mark.parametrize("stage", [Stage.CABLE_CHECK, Stage.PRECHARGE, Stage.POWER_DELIVERY_START])
def test_cp_back_to_b_before_power_flows_stops(stage: Stage) -> None:
    bench = walk_to(stage)
    bench.s2(False)
    t = bench.run_until(lambda: bench.stage is Stage.ERROR, within=CYCLE + TIME_TOL)
    assert bench.charger.stop_reason is not None and bench.charger.stop_reason.code == "cp_state_b"
    assert bench.charger.stop_stage is stage
    assert answer(bench)["EvseNotification"] == Notification.STOP_CHARGING
    assert t - bench.stage_time(stage) <= CYCLE + TIME_TOL


@pytest.mark.parametrize("code", [c for c in EvErrorCode if c not in (EvErrorCode.NO_ERROR, EvErrorCode.SNA)])
def test_ev_error_code_stops_through_error(code: EvErrorCode) -> None:
    bench = charging(amps=100.0)
    bench.ev.set(EvErrorCode=int(code))
    t = bench.run_until(lambda: bench.stage is Stage.ERROR, within=CYCLE + TIME_TOL)
    v = answer(bench)
    assert v["EvseStatusCode"] == EvseStatusCode.SHUTDOWN
    assert (v["EvseNotification"], v["EvseResponseCode"]) == (Notification.STOP_CHARGING, ResponseCode.FAILED)
    assert_current_off_within(bench, t)
    ended = vehicle_ends(bench)
    assert (ended.reason, ended.outcome, ended.origin, ended.stage) == (
        EV_ERRORS[code], Outcome.STOPPED, Origin.VEHICLE, "current_demand",
    )  # fmt: skip
    assert_terminal(bench)


def test_ev_not_ready_stops() -> None:
    bench = charging(amps=60.0)
    bench.ev.set(EvReady=0)
    bench.run_until(lambda: bench.stage is Stage.ERROR, within=CYCLE + TIME_TOL)
    assert vehicle_ends(bench).reason == "ev_not_ready"


def test_ev_stop_request_ramps_down_like_a_normal_stop() -> None:
    bench = charging(amps=80.0)
    bench.ev.set(EvStopRequest=1)
    t = bench.run_until(lambda: bench.stage is Stage.POWER_DELIVERY_STOP, within=CYCLE + TIME_TOL)
    assert answer(bench)["EvseNotification"] == Notification.STOP_CHARGING
    assert_current_off_within(bench, t)
    ended = vehicle_ends(bench)
    assert (ended.outcome, ended.reason) == (Outcome.COMPLETED, "vehicle_stop")


def test_operator_stop_mid_charge() -> None:
    bench = charging(amps=100.0)
    t = bench.now
    bench.request_stop("operator_stop")
    assert_stop_at(bench, Stage.POWER_DELIVERY_STOP, t)
    v = answer(bench)
    assert (v["EvseStatusCode"], v["EvseNotification"]) == (
        EvseStatusCode.SHUTDOWN,
        Notification.STOP_CHARGING,
    )
    assert v["EvseResponseCode"] == ResponseCode.OK
    assert_current_off_within(bench, t)
    ended = vehicle_ends(bench)
    assert (ended.reason, ended.origin, ended.outcome) == ("operator_stop", Origin.OPERATOR, Outcome.STOPPED)
    assert_terminal(bench)


def test_operator_stop_before_power_waits_for_the_vehicle_session_stop() -> None:
    bench = walk_to(Stage.AUTHORIZATION)
    bench.request_stop("operator_stop")
    assert bench.stage is Stage.ERROR
    v = answer(bench)
    assert (v["EvseResponseCode"], v["EvseStatusCode"]) == (ResponseCode.OK, EvseStatusCode.SHUTDOWN)
    bench.ev.request(Request.SESSION_STOP)
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.outcome) == ("operator_stop", "authorization", Outcome.STOPPED)
    assert_terminal(bench)


def test_power_stage_fault_is_a_charger_malfunction() -> None:
    bench = charging(amps=100.0)
    bench.charger.inject_power_fault(bench.now)
    assert bench.stage is Stage.ERROR
    assert answer(bench)["EvseStatusCode"] == EvseStatusCode.MALFUNCTION
    ended = vehicle_ends(bench)
    assert (ended.reason, ended.origin) == ("charger_malfunction", Origin.CHARGER)


# --- sequence and compatibility -----------------------------------------------------------------------


def test_request_out_of_sequence_is_refused() -> None:
    bench = walk_to(Stage.SESSION_SETUP)
    bench.run_until(lambda: bench.answered(Stage.SESSION_SETUP), within=1.0)
    bench.ev.request(Request.PRECHARGE)  # skips everything
    bench.run_until(lambda: bench.stage is Stage.ERROR, within=CYCLE + TIME_TOL)
    assert answer(bench)["EvseResponseCode"] == ResponseCode.FAILED_SEQUENCE_ERROR
    bench.ev.request(Request.SESSION_STOP)
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("sequence_error", "session_setup", 3)
    assert "PRECHARGE" in ended.cause


@pytest.mark.parametrize(("ev_max_v", "ev_max_i"), [(100.0, 125.0), (409.0, 0.5)])
def test_vehicle_limits_outside_the_charger_range_are_refused(ev_max_v: float, ev_max_i: float) -> None:
    config = CcsChargerConfig(min_voltage=150.0, min_current=1.0)
    bench = walk_to(Stage.AUTHORIZATION, config, ScriptedEv(EvMaxVoltage=ev_max_v, EvMaxCurrent=ev_max_i))
    bench.run_until(lambda: bench.answered(Stage.AUTHORIZATION), within=2.0)
    bench.ev.request(Request.CHARGE_PARAMETER_DISCOVERY)
    bench.run_until(lambda: bench.stage is Stage.ERROR, within=CYCLE + TIME_TOL)
    assert answer(bench)["EvseResponseCode"] == ResponseCode.FAILED_WRONG_CHARGE_PARAMETER
    bench.ev.request(Request.SESSION_STOP)
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("incompatible", "charge_parameter_discovery", 4)


def test_session_stop_before_charging_is_normal_but_not_completed() -> None:
    bench = walk_to(Stage.CHARGE_PARAMETER_DISCOVERY)
    bench.ev.request(Request.SESSION_STOP)
    bench.until_stage(Stage.SESSION_STOP, within=CYCLE + TIME_TOL)
    ended = bench.finish()
    assert (ended.reason, ended.outcome) == ("vehicle_stop_before_charging", Outcome.STOPPED)
    assert_terminal(bench)


# --- pilot and plug faults ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("unplug", "cp_state_a"),
        ("short", "cp_state_e"),
        ("between", "cp_invalid"),
        ("no_diode", "diode_fault"),
    ],
)
def test_pilot_faults_stop_through_emergency(fault: str, reason: str) -> None:
    bench = charging(amps=100.0)
    if fault == "unplug":
        bench.unplug_cp()
    elif fault == "short":
        bench.harness.set("cp_short", True)
    elif fault == "between":
        bench.harness.set("cp_ev_ohm", 500.0)  # 4.5 V: between the C (5-7 V) and D (2-4 V) windows
    else:
        bench.harness.set("cp_ev_diode", False)
    t = bench.run_until(lambda: bench.stage is Stage.EMERGENCY_STOP, within=CYCLE + TIME_TOL)
    assert bench.charger.stop_reason is not None and bench.charger.stop_reason.code == reason
    assert bench.charger.evse.duty == 100.0  # PWM off
    assert_current_off_within(bench, t)


def test_missing_diode_is_found_when_pwm_starts() -> None:
    bench = Bench()
    bench.plug(diode=False)
    bench.start(0.0)
    assert bench.stage is Stage.PLUGGED_IN  # B1 still reads 8.8 V without the diode
    bench.run_until(lambda: bench.stage is Stage.EMERGENCY_STOP, within=2 * CYCLE + TIME_TOL)
    assert bench.stage_time(Stage.EMERGENCY_STOP) == pytest.approx(CYCLE)  # the first PWM period
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("diode_fault", "cp_b_pwm", 1)


@pytest.mark.parametrize(
    ("connector", "plug_ohm", "contact_ohm", "code"),
    [
        ("ccs2", None, 0.0, PpCode.TYPE2_13A),
        ("ccs2", 680.0, 0.0, PpCode.TYPE2_20A),
        ("ccs2", 220.0, 0.0, PpCode.TYPE2_32A),
        ("ccs2", 100.0, 0.0, PpCode.TYPE2_63A),
        ("ccs2", None, 961.0, PpCode.INVALID),  # 2461 Ohm
        ("ccs2", 70.0, 0.0, PpCode.INVALID),  # < 80 Ohm
        ("ccs2", None, math.inf, PpCode.NOT_CONNECTED),
        ("ccs1", None, 0.0, PpCode.TYPE1_LATCHED),
        ("ccs1", 480.0, 0.0, PpCode.TYPE1_BUTTON_PRESSED),
    ],
)
def test_pp_at_plug_in(connector: str, plug_ohm: float | None, contact_ohm: float, code: PpCode) -> None:
    bench = Bench(CcsChargerConfig(connector=connector, pp_resistor_ohm=plug_ohm))
    bench.plug(pp_contact_ohm=contact_ohm)
    bench.start(0.0)
    first = bench.last("EvseStatus")
    assert first["PpCode"] == code
    expected_ohm = (plug_ohm or {"ccs2": 1500.0, "ccs1": 150.0}[connector]) + contact_ohm
    assert first["PpResistance"] == (4094 if math.isinf(expected_ohm) else round(expected_ohm))
    if code in (PpCode.TYPE1_LATCHED,) or code.name.startswith("TYPE2"):
        bench.until_stage(Stage.CP_B_PWM, within=CYCLE + TIME_TOL)
        return
    ended = bench.finish()
    assert (ended.reason, ended.stage, ended.step) == ("pp_invalid", "plugged_in", 1)
    assert all(s.duty == 100.0 for s in bench.samples)
    assert_terminal(bench)


def test_type1_latch_button_mid_charge_ramps_down() -> None:
    bench = charging(amps=60.0, config=CcsChargerConfig(connector="ccs1"))
    bench.plug(pp_contact_ohm=330.0)  # 150 + 330 Ohm: button pressed
    bench.s2(True)
    bench.contactors(True)
    t = bench.run_until(lambda: bench.stage is Stage.POWER_DELIVERY_STOP, within=CYCLE + TIME_TOL)
    assert_current_off_within(bench, t)
    assert bench.charger.stop_reason is not None and bench.charger.stop_reason.code == "pp_unlatched"


# --- frames from elsewhere, stop before start ----------------------------------------------------------


def test_malformed_and_foreign_frames_are_ignored() -> None:
    bench = walk_to(Stage.CP_B_PWM)
    received = bench.charger.frames_received
    good = bench.ev.frame("EvStatus", bench.now)
    for frame in (
        Frame(0x510, good.data[:5], timestamp=bench.now),  # short
        Frame(0x510, good.data, is_extended_id=True),  # right number, 29-bit
        Frame(0x500, bytes(8)),  # a second charger's status
        Frame(0x7FF, b"\x01"),
    ):
        bench.deliver(frame)
    assert (bench.charger.bad_frames, bench.charger.frames_received) == (1, received)
    assert bench.stage is Stage.CP_B_PWM


def test_stop_before_start_is_final() -> None:
    bench = Bench()
    bench.request_stop("operator_stop")
    ended = bench.ended()
    assert (ended.reason, ended.stage, ended.step) == ("operator_stop", "idle", 1)
    bench.talk(0.0)
    bench.step_to(1.0)
    assert bench.sent == [] and bench.stage is Stage.DONE


# --- totality: whatever the vehicle does, the core stays safe ------------------------------------------

ACTIONS = st.one_of(
    st.tuples(st.just("request"), st.sampled_from([*list(Request), 1, 2, 7, 15, 99])),
    st.tuples(st.just("s2"), st.booleans()),
    st.tuples(st.just("contactors"), st.booleans()),
    st.tuples(st.just("error"), st.sampled_from([0, 0, 0, 1, 4, 11, 15])),
    st.tuples(st.just("ready"), st.sampled_from([0, 1, 1, 3])),
    st.tuples(st.just("target"), st.floats(0.0, 300.0)),
    st.tuples(st.just("silence"), st.sampled_from(list(VEHICLE_FRAMES))),
    st.tuples(st.just("freeze"), st.booleans()),
    st.tuples(st.just("stop"), st.sampled_from(["operator_stop", "interrupted"])),
    st.tuples(st.just("cp"), st.sampled_from(["unplug", "short", "replug"])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(st.tuples(ACTIONS, st.floats(0.0, 3.0)), min_size=1, max_size=25))
def test_any_vehicle_behaviour_keeps_the_core_safe(script: list[tuple[tuple[str, object], float]]) -> None:
    bench = charging(amps=50.0, settle=1.0) if len(script) % 2 else Bench()
    if not bench.samples:
        bench.start(0.0)
    config = bench.config
    for (kind, arg), wait in script:
        if kind == "request":
            bench.ev.set(EvRequest=int(arg))  # type: ignore[call-overload]
        elif kind == "s2":
            bench.s2(bool(arg))
        elif kind == "contactors":
            bench.contactors(bool(arg))
        elif kind == "error":
            bench.ev.set(EvErrorCode=int(arg))  # type: ignore[call-overload]
        elif kind == "ready":
            bench.ev.set(EvReady=int(arg))  # type: ignore[call-overload]
        elif kind == "target":
            bench.ev.set(EvTargetCurrent=round(float(arg), 1))  # type: ignore[arg-type]
        elif kind == "silence":
            bench.ev.send.discard(str(arg))
        elif kind == "freeze":
            bench.ev.freeze_counter = bool(arg)
        elif kind == "stop":
            bench.request_stop(str(arg))
        elif arg == "unplug":
            bench.unplug_cp()
        elif arg == "short":
            bench.harness.set("cp_short", True)
        else:
            bench.harness.set("cp_short", False)
            bench.s2(False)
        bench.step_to(bench.now + wait)
        for s in bench.samples:
            assert s.current <= config.max_current + 1e-6
        assert bench.stage in Stage
    # with the vehicle quiet, every session ends, exactly once, and the connector is never unlocked live
    bench.silence()
    bench.run_until(lambda: bench.charger.finished, within=200.0)
    bench.ended()
    was_locked = False
    for s in bench.samples:
        if s.locked:
            was_locked = True
        elif was_locked:
            assert s.voltage < timing.SAFE_V
            was_locked = False
