"""Totality (h2 ``test_state_machines`` style): every (stage, input event) pair of the CCS bridge charger
core is handled explicitly (the simulated vehicle: ``test_ccs_vehicle_totality.py``).

Each core is brought to every one of its stages, one input event is applied, and the stage it is in
one cycle (100 ms) later must be one the table below allows for that pair.  The tables name every
pair (a missing or extra pair fails the test), every allowed outcome is reachable through the state
table, and an exception escaping a core fails the test too.  § numbers refer to the CCS fact sheet.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from charger_sim.frames import Frame
from charger_sim.protocols.ccs import timing
from charger_sim.protocols.ccs.bridge import Request
from charger_sim.protocols.ccs.states import TRANSITIONS, Stage
from tests.ccs_bench import CYCLE, Bench, charging, walk_to

EPS = 1e-6
S = Stage

# ---- charger ---------------------------------------------------------------------------------------
REQUEST_EVENTS = {f"req_{r.name.lower()}": r for r in Request}
CHARGER_EVENTS = (
    *REQUEST_EVENTS,  # EvRequest = each DIN request (and SNA), everything else as before
    "ev_error",  # EVErrorCode FAILED_EVRESSMalfunction
    "ev_not_ready",  # EVReady false
    "ev_stop",  # EvStopRequest true
    "targets",  # EvTargets: 50 A at 400 V
    "malformed",  # EvStatus with 3 data bytes, EvTargets with 7
    "foreign",  # an unknown ID, EvStatus as a 29-bit frame, the charger's own EvseStatus
    "cp_b",  # S2 open: CP state B
    "cp_c",  # S2 closed: CP state C
    "cp_a",  # no EV load on CP: state A
    "cp_short",  # CP shorted to PE: state E
    "no_diode",  # the EV's CP diode fails
    "pp_open",  # PP contact open: no plug
    "insulation_fault",  # insulation falls to 1 kOhm
    "operator_stop",
    "power_fault",
    "deadline",  # the vehicle silent, the clock jumps to the charger's next protocol timer
    "silence",  # 1.05 s without vehicle frames
)

ERR = {S.ERROR}
EMERGENCY = {S.EMERGENCY_STOP, S.UNLOCK}  # emergency stop; with no current flowing it is left in a cycle
# (typed Any: they are spread into _row's keyword arguments)
_PILOT_LOST: dict[str, Any] = {"cp_a": EMERGENCY, "cp_short": EMERGENCY, "no_diode": EMERGENCY}
_STOPS: dict[str, Any] = {"operator_stop": ERR, "power_fault": ERR}
_SILENT: dict[str, Any] = {
    "deadline": EMERGENCY,
    "silence": EMERGENCY,
}  # a vehicle frame missing 1 s: emergency stop


def _row(
    stage: Stage,
    default: set[Stage],
    *,
    stay: tuple[Request, ...] = (),
    moves: dict[Request, set[Stage]] | None = None,
    out_of_sequence: set[Stage] | None = None,
    **special: set[Stage],
) -> dict[tuple[Stage, str], set[Stage]]:
    """One stage's row.  Requests: ``stay`` are tolerated, ``moves`` move the stage on, SNA is no
    request at all; any other is out of sequence (FAILED_SequenceError: ``out_of_sequence``, default
    error).  Other events: ``special`` or ``default``."""
    unknown = set(special) - set(CHARGER_EVENTS)
    assert not unknown, unknown
    row: dict[tuple[Stage, str], set[Stage]] = {}
    for event in CHARGER_EVENTS:
        r = REQUEST_EVENTS.get(event)
        if r is None:
            row[(stage, event)] = special.get(event, default)
        elif r in (moves or {}):
            row[(stage, event)] = (moves or {})[r]
        elif r in stay or r is Request.SNA:
            row[(stage, event)] = default
        else:
            row[(stage, event)] = out_of_sequence if out_of_sequence is not None else ERR
    return row


def _session(stage: Stage, own: Request, **kw: Any) -> dict[tuple[Stage, str], set[Stage]]:
    """A V2G message stage: its own request again is tolerated, SessionStop ends the session, the
    vehicle's errors and the operator stop, the pilot's faults are emergencies, a PP fault an error."""
    moves = {Request.SESSION_STOP: {S.SESSION_STOP}, **kw.pop("moves", {})}
    special: dict[str, Any] = {"ev_error": ERR, "pp_open": ERR, **_PILOT_LOST, **_STOPS, **_SILENT, **kw}
    return _row(stage, {stage}, stay=(own,), moves=moves, **special)


# What each (stage, event) leads to within one cycle: §4 sequence, §2 pilot, §3 plug, §8 stop paths.
CHARGER_TABLE: dict[tuple[Stage, str], set[Stage]] = {
    # before the operator's start nothing is read; the stop ends the session
    **_row(S.IDLE, {S.IDLE}, out_of_sequence={S.IDLE}, operator_stop={S.DONE}),
    # PP read, CP B1: B for a cycle turns the 5 % PWM on (the bench's EV loads CP with R2)
    **_row(
        S.PLUGGED_IN,
        {S.CP_B_PWM},
        stay=(Request.NONE,),
        cp_c={S.PLUGGED_IN},
        cp_a={S.PLUGGED_IN},
        cp_short=EMERGENCY,
        no_diode=EMERGENCY,  # the diode check runs on the first PWM period
        pp_open=ERR,
        **_STOPS,
        **_SILENT,
    ),
    # 5 % PWM: SessionSetupReq opens the session
    **_row(
        S.CP_B_PWM,
        {S.CP_B_PWM},
        stay=(Request.NONE,),
        moves={Request.SESSION_SETUP: {S.SESSION_SETUP}},
        pp_open=ERR,
        **_PILOT_LOST,
        **_STOPS,
        **_SILENT,
    ),
    **_session(
        S.SESSION_SETUP, Request.SESSION_SETUP, moves={Request.SERVICE_DISCOVERY: {S.SERVICE_DISCOVERY}}
    ),
    **_session(
        S.SERVICE_DISCOVERY,
        Request.SERVICE_DISCOVERY,
        moves={Request.CONTRACT_AUTHENTICATION: {S.AUTHORIZATION}},
    ),
    # ContractAuthentication Ongoing (1 s): ChargeParameterDiscoveryReq before Finished is out of sequence
    **_session(S.AUTHORIZATION, Request.CONTRACT_AUTHENTICATION),
    # CableCheckReq is tolerated while CP is still B; CP C (shown answer) locks the connector
    **_session(
        S.CHARGE_PARAMETER_DISCOVERY,
        Request.CHARGE_PARAMETER_DISCOVERY,
        moves={Request.CABLE_CHECK: {S.CHARGE_PARAMETER_DISCOVERY}},
        cp_c={S.CHARGE_PARAMETER_DISCOVERY, S.CP_STATE_C},
    ),
    # locking: the lock's deadline starts the cable check; CP back to B stops
    **_session(
        S.CP_STATE_C,
        Request.CABLE_CHECK,
        moves={Request.CHARGE_PARAMETER_DISCOVERY: {S.CP_STATE_C}, Request.CABLE_CHECK: {S.CP_STATE_C}},
        cp_b=ERR,
        deadline={S.CABLE_CHECK},
    ),
    # the output is live from here: a PP loss is an emergency; EVReady false stops (§8)
    **_session(S.CABLE_CHECK, Request.CABLE_CHECK, cp_b=ERR, ev_not_ready=ERR, pp_open=EMERGENCY),
    **_session(
        S.PRECHARGE,
        Request.PRECHARGE,
        moves={
            Request.POWER_DELIVERY_START: {S.POWER_DELIVERY_START},
            Request.POWER_DELIVERY_STOP: {S.POWER_DELIVERY_STOP},
        },
        cp_b=ERR,
        ev_not_ready=ERR,
        pp_open=EMERGENCY,
        insulation_fault=ERR,  # the IMD watches from pre-charge on
    ),
    # power stages: SessionStop only after PowerDelivery(stop); the stop request and the operator's
    # stop ramp down through power_delivery_stop; a fault stops through error
    **_row(
        S.POWER_DELIVERY_START,
        {S.POWER_DELIVERY_START},
        stay=(Request.POWER_DELIVERY_START,),
        moves={
            Request.CURRENT_DEMAND: {S.CURRENT_DEMAND},
            Request.POWER_DELIVERY_STOP: {S.POWER_DELIVERY_STOP},
        },
        ev_error=ERR,
        ev_not_ready=ERR,
        ev_stop={S.POWER_DELIVERY_STOP},
        cp_b=ERR,
        pp_open=EMERGENCY,
        insulation_fault=ERR,
        operator_stop={S.POWER_DELIVERY_STOP},
        power_fault=ERR,
        **_PILOT_LOST,
        **_SILENT,
    ),
    **_row(
        S.CURRENT_DEMAND,
        {S.CURRENT_DEMAND},
        stay=(Request.CURRENT_DEMAND,),
        moves={Request.POWER_DELIVERY_STOP: {S.POWER_DELIVERY_STOP}},
        ev_error=ERR,
        ev_not_ready=ERR,
        ev_stop={S.POWER_DELIVERY_STOP},
        cp_b={S.PAUSED},  # C -> B: current off at once, the session stays open
        pp_open=EMERGENCY,
        insulation_fault=ERR,
        operator_stop={S.POWER_DELIVERY_STOP},
        power_fault=ERR,
        **_PILOT_LOST,
        **_SILENT,
    ),
    **_row(
        S.PAUSED,
        {S.PAUSED},
        stay=(Request.CURRENT_DEMAND,),
        moves={Request.POWER_DELIVERY_STOP: {S.POWER_DELIVERY_STOP}},
        ev_error=ERR,
        ev_not_ready=ERR,
        ev_stop={S.POWER_DELIVERY_STOP},
        cp_c={S.CURRENT_DEMAND},  # B -> C: resume
        pp_open=EMERGENCY,
        operator_stop={S.POWER_DELIVERY_STOP},
        power_fault=ERR,
        **_PILOT_LOST,
        silence=EMERGENCY,
    ),
    # the ending stages only move forward; a late request or fault is noted, the pilot lost is still
    # an emergency
    **_row(
        S.POWER_DELIVERY_STOP,
        {S.POWER_DELIVERY_STOP},
        out_of_sequence={S.POWER_DELIVERY_STOP},
        moves={Request.WELDING_DETECTION: {S.WELDING_DETECTION}, Request.SESSION_STOP: {S.SESSION_STOP}},
        **_PILOT_LOST,
        silence=EMERGENCY,
    ),
    **_row(
        S.WELDING_DETECTION,
        {S.WELDING_DETECTION},
        out_of_sequence={S.WELDING_DETECTION},
        moves={Request.SESSION_STOP: {S.SESSION_STOP}},
        **_PILOT_LOST,
        **_SILENT,
    ),
    # SessionStopRes goes out, then PWM off and relays open; unlock once the output is below 60 V
    **_row(
        S.SESSION_STOP,
        {S.SESSION_STOP, S.UNLOCK},
        out_of_sequence={S.SESSION_STOP, S.UNLOCK},
        silence={S.DONE},
    ),
    **_row(S.UNLOCK, {S.UNLOCK, S.DONE}, out_of_sequence={S.UNLOCK, S.DONE}),
    **_row(S.DONE, {S.DONE}, out_of_sequence={S.DONE}),
    # link up after a charger stop: the vehicle may still walk PowerDelivery(stop) .. SessionStop
    **_row(
        S.ERROR,
        {S.ERROR},
        out_of_sequence=ERR,
        moves={
            Request.POWER_DELIVERY_STOP: {S.POWER_DELIVERY_STOP},
            Request.WELDING_DETECTION: {S.WELDING_DETECTION},
            Request.SESSION_STOP: {S.SESSION_STOP},
        },
        **_PILOT_LOST,
        **_SILENT,
    ),
    # output off at once, PWM off, no answers: nothing the vehicle does matters any more
    **_row(S.EMERGENCY_STOP, EMERGENCY, out_of_sequence=EMERGENCY, silence={S.DONE}),
}

_ORDER = (
    S.PLUGGED_IN,
    S.CP_B_PWM,
    S.SESSION_SETUP,
    S.SERVICE_DISCOVERY,
    S.AUTHORIZATION,
    S.CHARGE_PARAMETER_DISCOVERY,
    S.CP_STATE_C,
    S.CABLE_CHECK,
    S.PRECHARGE,
    S.POWER_DELIVERY_START,
    S.CURRENT_DEMAND,
)


def reach_charger(stage: Stage) -> Bench:
    """A scripted-vehicle bench with the charger just in ``stage`` (the vehicle still talking)."""
    if stage is S.IDLE:
        return Bench()
    if stage in _ORDER:
        return walk_to(stage)
    if stage is S.ERROR:
        bench = walk_to(S.CHARGE_PARAMETER_DISCOVERY)
        bench.request_stop()
        return bench
    if stage is S.EMERGENCY_STOP:
        bench = walk_to(S.CHARGE_PARAMETER_DISCOVERY)
        bench.unplug_cp()
        bench.until_stage(S.EMERGENCY_STOP, within=1.0)
        return bench
    bench = charging(settle=1.0)
    if stage is S.PAUSED:
        bench.s2(False)
        bench.until_stage(S.PAUSED, within=1.0)
        return bench
    bench.ev.set(EvTargetCurrent=0.0, EvChargingComplete=1)
    bench.ev.request(Request.POWER_DELIVERY_STOP)
    bench.until_stage(S.POWER_DELIVERY_STOP, within=1.0)
    if stage is S.POWER_DELIVERY_STOP:
        return bench
    bench.run_until(lambda: bench.charger.power.current <= timing.CURRENT_OFF_A, within=2.0)
    bench.s2(False)
    bench.contactors(False)
    bench.ev.request(Request.WELDING_DETECTION)
    bench.until_stage(S.WELDING_DETECTION, within=1.0)
    if stage is S.WELDING_DETECTION:
        return bench
    bench.run_until(lambda: bench.charger.harness.output_voltage < timing.SAFE_V, within=5.0)
    bench.ev.request(Request.SESSION_STOP)
    bench.until_stage(S.SESSION_STOP, within=1.0)
    if stage is not S.SESSION_STOP:
        bench.until_stage(S.UNLOCK, within=1.0)
    if stage is S.DONE:
        bench.finish()
    return bench


def apply_charger_event(bench: Bench, event: str) -> None:
    """Apply ``event`` with the scripted vehicle silent (its frames sent once), then run one cycle."""
    bench.silence()
    ev, now = bench.ev, bench.now

    def frames(**fields: Any) -> None:
        ev.set(**fields)
        for frame in ev.frames(now):
            bench.deliver(frame)

    if event in REQUEST_EVENTS:
        frames(EvRequest=int(REQUEST_EVENTS[event]))
    elif event == "ev_error":
        frames(EvErrorCode=4)
    elif event == "ev_not_ready":
        frames(EvReady=0)
    elif event == "ev_stop":
        frames(EvStopRequest=1)
    elif event == "targets":
        frames(EvTargetVoltage=400.0, EvTargetCurrent=50.0)
    elif event == "malformed":
        bench.deliver(Frame(0x510, ev.frame("EvStatus", now).data[:3], False, now))
        bench.deliver(Frame(0x511, ev.frame("EvTargets", now).data[:7], False, now))
    elif event == "foreign":
        bench.deliver(Frame(0x7FF, bytes(8), False, now))
        bench.deliver(Frame(0x510, ev.frame("EvStatus", now).data, True, now))
        bench.deliver(Frame(0x500, bytes(8), False, now))
    elif event in ("cp_b", "cp_c"):
        bench.s2(event == "cp_c")
    elif event == "cp_a":
        bench.unplug_cp()
    elif event == "cp_short":
        bench.harness.set("cp_short", 1.0)
    elif event == "no_diode":
        bench.harness.set("cp_ev_diode", 0.0)
    elif event == "pp_open":
        bench.harness.set("pp_pin", 0.0)
    elif event == "insulation_fault":
        bench.harness.insulation_resistance_ohm = 1e3
    elif event == "operator_stop":
        bench.request_stop()
    elif event == "power_fault":
        bench.charger.inject_power_fault(now)
    elif event == "deadline":
        nxt = bench.charger.deadlines.next()
        if nxt is not None:
            bench.step_to(nxt + EPS)
    elif event == "silence":
        bench.step_to(now + 1.05)
    bench.step_to(bench.now + CYCLE + EPS)


def _reach_all(edges: set[tuple[Any, Any]], stages: Any) -> dict[Any, set[Any]]:
    reach = {s: {s} for s in stages}
    for _ in stages:
        for s in stages:
            reach[s] |= {d for (a, d) in edges if a in reach[s]}
    return reach


def test_charger_table_names_every_pair() -> None:
    assert set(CHARGER_TABLE) == set(itertools.product(Stage, CHARGER_EVENTS))


def test_charger_table_only_uses_transitions_of_the_state_table() -> None:
    reach = _reach_all({(src, row.dest) for row in TRANSITIONS for src in row.sources}, list(Stage))
    for (stage, event), allowed in CHARGER_TABLE.items():
        assert allowed <= reach[stage], (stage, event, allowed - reach[stage])


@pytest.mark.parametrize("stage", list(Stage), ids=lambda s: s.value)
def test_every_charger_stage_handles_every_event(stage: Stage) -> None:
    for event in CHARGER_EVENTS:
        bench = reach_charger(stage)
        assert bench.stage is stage
        apply_charger_event(bench, event)  # an escaping exception fails here
        allowed = CHARGER_TABLE[(stage, event)]
        assert bench.stage in allowed, f"{stage.value} + {event} -> {bench.stage.value}, allowed {allowed}"
        stopped = bench.stage in (S.ERROR, S.EMERGENCY_STOP, S.POWER_DELIVERY_STOP, S.PAUSED)
        if stopped and stage not in (S.ERROR, S.EMERGENCY_STOP, S.POWER_DELIVERY_STOP, S.PAUSED):
            assert bench.charger.stop_reason is not None or bench.stage is S.PAUSED  # a stop says why
