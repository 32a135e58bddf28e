"""Totality (h2 ``test_state_machines`` style): every (stage, input event) pair of the CHAdeMO charger
and simulated-vehicle cores is handled explicitly.

Each core is brought to every one of its stages, one input event is applied, and the stage it is in
one cycle later must be one the table below allows for that pair.  The tables name every pair (a
missing or extra pair fails the test), so a new stage or a new kind of input forces a decision;
an exception escaping a core fails it too (cores fail into a safe stop, never half-transitioned).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from charger_sim.codec import load_dbc
from charger_sim.frames import Frame
from charger_sim.protocols.base import Role
from charger_sim.protocols.chademo.states import TRANSITIONS, Stage
from charger_sim.protocols.chademo.timing import limit
from charger_sim.protocols.chademo.vehicle import V_TRANSITIONS, VStage
from charger_sim.scenario.loader import parse_scenario
from charger_sim.session.session import Session
from tests.helpers import CYCLE, Bench, at_contactors, at_precharge, charging, negotiating

CODEC = load_dbc("chademo")
EPS = 1e-6

# ---- charger ---------------------------------------------------------------------------------------

CHARGER_EVENTS = (
    "v100",  # valid 0x100
    "v101",  # valid 0x101
    "v102_idle",  # 0x102, no permission (102.5.0 = 0)
    "v102_permit",  # k closed and 102.5.0 = 1
    "v102_fault",  # 102.4.3 over-temperature
    "v102_disable",  # 102.5.0 = 0 and request 0 (the vehicle's stop)
    "v102_stop_before",  # 102.5.4 stop before charging
    "v102_contactors",  # 102.5.3 = 0: contactors closed
    "v102_open",  # 102.5.3 = 1: contactors open (welding check done)
    "v102_request",  # 102.3 = 50 A
    "malformed",  # 0x102 with 3 data bytes
    "foreign",  # unknown ID, extended 0x102, a second charger's 0x109
    "k_open",  # the k line opens
    "deadline",  # silent vehicle, the clock jumps to the charger's next protocol timer
    "silence",  # 1.05 s without vehicle frames
    "operator_stop",
    "power_fault",
)

STOP = {Stage.STOPPING, Stage.WELDING_CHECK, Stage.SHUTDOWN, Stage.DONE}
NONE_DONE = {Stage.STOPPING, Stage.WELDING_CHECK, Stage.SHUTDOWN}


def _row(stage: Stage, default: set[Stage], **special: set[Stage]) -> dict[tuple[Stage, str], set[Stage]]:
    unknown = set(special) - set(CHARGER_EVENTS)
    assert not unknown, unknown
    return {(stage, e): special.get(e, default) for e in CHARGER_EVENTS}


ACTIVE_STOPS: dict[str, set[Stage]] = {
    "v102_fault": STOP,
    "operator_stop": STOP,
    "power_fault": STOP,
}

# What each (stage, event) leads to within one cycle: §7 steps and §8 stop paths.
CHARGER_TABLE: dict[tuple[Stage, str], set[Stage]] = {
    # before the operator's start nothing happens but the stop, which ends the session
    **_row(Stage.IDLE, {Stage.IDLE}, operator_stop={Stage.DONE}),
    # any vehicle frame wakes the session; T1 runs out; stops go straight to shutdown
    **_row(
        Stage.WAKE_UP,
        {Stage.NEGOTIATION},
        v102_permit={Stage.NEGOTIATION, Stage.INSULATION_TEST},
        malformed={Stage.WAKE_UP},
        foreign={Stage.WAKE_UP},
        k_open={Stage.WAKE_UP},
        silence={Stage.WAKE_UP},
        deadline=NONE_DONE,
        **ACTIVE_STOPS,
    ),
    # permission (k + 102.5.0) starts the insulation test; incompatibility, T1 and T11 stop
    **_row(
        Stage.NEGOTIATION,
        {Stage.NEGOTIATION},
        v102_permit={Stage.INSULATION_TEST},
        deadline=NONE_DONE,
        silence=NONE_DONE,
        **ACTIVE_STOPS,
    ),
    # the test runs on its own clock; the vehicle's stop, k opening, T2 and T11 stop it
    **_row(
        Stage.INSULATION_TEST,
        {Stage.INSULATION_TEST},
        v102_idle=NONE_DONE,
        v102_disable=NONE_DONE,
        v102_stop_before=NONE_DONE,
        k_open=NONE_DONE,
        deadline={Stage.INSULATION_TEST, Stage.CONTACTORS} | NONE_DONE,  # settle, T2 or T11
        silence=NONE_DONE,
        **ACTIVE_STOPS,
    ),
    # d2 closed: 102.5.3 1->0 moves on; T3, T11 and every stop end it
    **_row(
        Stage.CONTACTORS,
        {Stage.CONTACTORS},
        v102_idle=NONE_DONE,
        v102_disable=NONE_DONE,
        v102_stop_before=NONE_DONE,
        v102_contactors={Stage.PRECHARGE},
        k_open=NONE_DONE,
        deadline=NONE_DONE,
        silence=NONE_DONE,
        **ACTIVE_STOPS,
    ),
    # the first request starts the current; T4, T11 and every stop end it
    **_row(
        Stage.PRECHARGE,
        {Stage.PRECHARGE},
        v102_idle=NONE_DONE,
        v102_disable=NONE_DONE,
        v102_stop_before=NONE_DONE,
        v102_request={Stage.CHARGING},
        k_open=NONE_DONE,
        deadline=NONE_DONE,
        silence=NONE_DONE,
        **ACTIVE_STOPS,
    ),
    # charging follows 102.3; 102.5.4 is ignored once charging; every stop path ends it
    **_row(
        Stage.CHARGING,
        {Stage.CHARGING},
        v102_idle=NONE_DONE,
        v102_disable=NONE_DONE,
        k_open=NONE_DONE,
        deadline={Stage.CHARGING} | NONE_DONE,  # T11 first (charge time limit later)
        silence=NONE_DONE,
        **ACTIVE_STOPS,
    ),
    # the stop path only moves forward: the ramp down ends at <= 5 A, nothing restarts it
    **_row(
        Stage.STOPPING, {Stage.STOPPING, Stage.WELDING_CHECK}, deadline={Stage.STOPPING, Stage.WELDING_CHECK}
    ),
    # 102.5.3 0->1 (or T7) ends the welding check
    **_row(
        Stage.WELDING_CHECK,
        {Stage.WELDING_CHECK},
        v102_open={Stage.SHUTDOWN},
        deadline={Stage.WELDING_CHECK, Stage.SHUTDOWN},  # the T6 check first, then T7
    ),
    # d2 open, then d1; unlock when the output is below 10 V
    **_row(Stage.SHUTDOWN, {Stage.SHUTDOWN, Stage.DONE}),
    **_row(Stage.DONE, {Stage.DONE}),
}


def reach_charger(stage: Stage) -> Bench:
    """A scripted-vehicle bench with the charger in ``stage`` (the vehicle still sending)."""
    if stage is Stage.IDLE:
        return Bench()
    if stage is Stage.WAKE_UP:
        bench = Bench()
        bench.start(0.0)
        return bench
    if stage is Stage.NEGOTIATION:
        return negotiating()
    if stage is Stage.INSULATION_TEST:
        bench = negotiating()
        bench.grant_permission()
        bench.until_stage(Stage.INSULATION_TEST, within=1.0)
        return bench
    if stage is Stage.CONTACTORS:
        return at_contactors()
    if stage is Stage.PRECHARGE:
        return at_precharge()
    bench = charging(request=100, settle=2.0)
    if stage is Stage.CHARGING:
        return bench
    bench.request_stop()
    if stage is Stage.STOPPING:
        return bench
    bench.vehicle.set(ChargingEnabled=0, ChargeCurrentRequest=0)
    bench.until_stage(Stage.WELDING_CHECK, within=1.0)
    if stage is Stage.WELDING_CHECK:
        return bench
    bench.open_contactors()
    bench.harness.set("k", False)
    bench.until_stage(Stage.SHUTDOWN, within=1.0)
    if stage is Stage.SHUTDOWN:
        return bench
    bench.finish()
    return bench


def apply_charger_event(bench: Bench, event: str) -> None:
    """Apply ``event`` with the scripted vehicle silent, then run one cycle."""
    bench.silence()
    v = bench.vehicle
    now = bench.now
    f102 = dict(v.values[0x102])

    def send(**fields: Any) -> None:
        bench.deliver(CODEC.message("VehicleChargeControl").frame({**f102, **fields}, now))

    if event == "v100":
        bench.deliver(v.frame(0x100, now))
    elif event == "v101":
        bench.deliver(v.frame(0x101, now))
    elif event == "v102_idle":
        send(ChargingEnabled=0, ChargeCurrentRequest=0)
    elif event == "v102_permit":
        bench.harness.set("k", True)
        bench.deliver(v.frame(0x100, now))
        send(ChargingEnabled=1)
    elif event == "v102_fault":
        send(FaultHighTemperature=1)
    elif event == "v102_disable":
        send(ChargingEnabled=0, ChargeCurrentRequest=0)
    elif event == "v102_stop_before":
        send(StopBeforeCharging=1)
    elif event == "v102_contactors":
        send(ContactorOpen=0)
    elif event == "v102_open":
        send(ContactorOpen=1)
    elif event == "v102_request":
        send(ChargeCurrentRequest=50)
    elif event == "malformed":
        bench.deliver(Frame(0x102, v.frame(0x102, now).data[:3], timestamp=now))
    elif event == "foreign":
        bench.deliver(Frame(0x7FF, b"\x00" * 8, timestamp=now))
        bench.deliver(Frame(0x102, v.frame(0x102, now).data, is_extended_id=True, timestamp=now))
        bench.deliver(Frame(0x109, bytes(8), timestamp=now))
    elif event == "k_open":
        bench.harness.set("k", False)
    elif event == "deadline":
        nxt = bench.charger.deadlines.next()
        if nxt is not None:
            bench.step_to(nxt + EPS)
    elif event == "silence":
        bench.step_to(now + limit("can_loss") + 0.05)
    elif event == "operator_stop":
        bench.request_stop()
    elif event == "power_fault":
        bench.charger.inject_power_fault(now)
    bench.step_to(bench.now + CYCLE + EPS)


def test_charger_table_names_every_pair() -> None:
    assert set(CHARGER_TABLE) == set(itertools.product(Stage, CHARGER_EVENTS))


def test_charger_table_only_uses_transitions_of_the_state_table() -> None:
    """Each allowed outcome is the stage itself or reachable through TRANSITIONS."""
    edges = {(src, row.dest) for row in TRANSITIONS for src in row.sources}
    reach = {s: {s} for s in Stage}
    for _ in Stage:
        for s in Stage:
            reach[s] |= {d for (a, d) in edges if a in reach[s]}
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
        if bench.stage in STOP and stage not in STOP | {Stage.IDLE}:
            assert bench.charger.stop_reason is not None  # a stop always says why


# ---- simulated vehicle -----------------------------------------------------------------------------

VEHICLE_EVENTS = (
    "c108",  # 0x108 capability
    "c109_idle",  # 0x109 status 0x20 (stopped / not yet charging)
    "c109_charging",  # 0x109 status 0x05 (delivering)
    "c109_stop",  # 0x109 status 0x25 (stop control while charging)
    "c109_fault",  # 0x109 charger malfunction
    "malformed",  # 0x109 with 2 data bytes
    "foreign",  # unknown and extended IDs, another vehicle's 0x102
    "d1_open",
    "d2_toggle",  # d2 closes (or opens, if closed)
    "deadline",  # the clock jumps to the vehicle's next deadline
    "silence",  # 1.05 s without charger frames
)

V_STOP = {VStage.STOPPING, VStage.WELDING_CHECK, VStage.DONE}


def _vrow(
    stage: VStage, default: set[VStage], **special: set[VStage]
) -> dict[tuple[VStage, str], set[VStage]]:
    unknown = set(special) - set(VEHICLE_EVENTS)
    assert not unknown, unknown
    return {(stage, e): special.get(e, default) for e in VEHICLE_EVENTS}


VEHICLE_TABLE: dict[tuple[VStage, str], set[VStage]] = {
    # the ECU samples d1 and sleeps until it closes: CAN is ignored
    **_vrow(
        VStage.ASLEEP,
        {VStage.ASLEEP},
        deadline={VStage.ASLEEP, VStage.AWAKE},
        silence={VStage.AWAKE},  # d1 is closed: the ECU wakes after its delay
    ),
    # 0x109 after 0x108 moves on; d1 opening ends it; a silent charger is a fault (kit behaviour)
    **_vrow(
        VStage.AWAKE,
        {VStage.AWAKE, VStage.READY},
        d1_open={VStage.DONE},
        silence={VStage.AWAKE, VStage.READY, VStage.STOPPING, VStage.DONE},
        malformed={VStage.AWAKE},
        foreign={VStage.AWAKE},
    ),
    **_vrow(
        VStage.READY,
        {VStage.READY},
        d1_open={VStage.DONE},
        deadline={VStage.READY, VStage.PERMITTED},
        silence={VStage.STOPPING, VStage.PERMITTED},
    ),
    **_vrow(
        VStage.PERMITTED,
        {VStage.PERMITTED},
        c109_fault={VStage.STOPPING},
        d1_open={VStage.DONE},
        d2_toggle={VStage.PERMITTED, VStage.CONTACTORS_CLOSED},
        deadline={VStage.PERMITTED, VStage.CONTACTORS_CLOSED, VStage.STOPPING},
        silence={VStage.STOPPING},
    ),
    **_vrow(
        VStage.CONTACTORS_CLOSED,
        {VStage.CONTACTORS_CLOSED},
        c109_fault={VStage.STOPPING, VStage.WELDING_CHECK},  # no current yet: contactors open at once
        d1_open={VStage.DONE},
        d2_toggle={VStage.WELDING_CHECK},  # §3: the contactor coils hang on d2: they drop out (102.5.2)
        deadline={VStage.CONTACTORS_CLOSED, VStage.CHARGING, VStage.STOPPING},
        silence={VStage.CHARGING, VStage.STOPPING, VStage.WELDING_CHECK},
    ),
    # the charger's stop is followed after the Leaf's reaction time; a silent charger is a fault
    **_vrow(
        VStage.CHARGING,
        {VStage.CHARGING},
        c109_stop={VStage.CHARGING, VStage.STOPPING},
        c109_fault={VStage.CHARGING, VStage.STOPPING},
        d1_open={VStage.DONE},
        d2_toggle={VStage.WELDING_CHECK},  # contactors drop out under load: 102.5.2, straight to the check
        deadline={VStage.CHARGING, VStage.STOPPING},
        silence={VStage.STOPPING, VStage.WELDING_CHECK},
    ),
    **_vrow(VStage.STOPPING, {VStage.STOPPING, VStage.WELDING_CHECK}, d1_open={VStage.DONE}),
    **_vrow(VStage.WELDING_CHECK, {VStage.WELDING_CHECK}, d1_open={VStage.DONE}),
    **_vrow(VStage.DONE, {VStage.DONE}),
}

_SCENARIO = {
    "protocol": "chademo",
    "seed": 3,
    "vehicle": {"soc": 50, "target_soc": 90},
    "expect": {"outcome": "completed"},
}


def reach_vehicle(stage: VStage) -> tuple[Session, float]:
    """A whole simulated session, paused at the first instant the vehicle is in ``stage``.

    The pause may fall between a core's timer and the delivery of what it sent (AWAKE lasts no
    time at all in a simulated session): those frames are simply dropped.
    """
    spec: dict[str, Any] = dict(_SCENARIO)
    if stage in (VStage.STOPPING, VStage.WELDING_CHECK, VStage.DONE):
        spec = {**spec, "faults": [{"type": "operator_stop", "at": {"stage": "charging", "after": 5}}]}
    session = Session(parse_scenario(spec, "totality.yaml"))
    charger, vehicle = session.charger, session.vehicle
    peer = {Role.CHARGER: vehicle, Role.VEHICLE: charger}

    def reached() -> bool:
        return vehicle.stage is stage  # type: ignore[attr-defined]

    def deliver(sender: Role, frames: list[Frame], now: float) -> None:
        for frame in frames:
            out = peer[sender].receive(frame, now)
            deliver(Role.VEHICLE if sender is Role.CHARGER else Role.CHARGER, out, now)

    now = 0.0
    session.start(now)
    while not reached():
        nxt = min(d for d in (charger.next_deadline(), vehicle.next_deadline(), session.next_deadline()) if d)
        now = max(now, nxt)
        assert now < 300.0, f"vehicle never reached {stage.value}"
        for role, core in ((Role.CHARGER, charger), (Role.VEHICLE, vehicle)):
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now + 1e-9:
                out = core.on_timer(now)
                if reached():
                    return session, now
                deliver(role, out, now)
                if reached():
                    return session, now
        session.observe(now)
    return session, now


def apply_vehicle_event(session: Session, now: float, event: str) -> VStage:
    vehicle: Any = session.vehicle
    h = session.harness
    m108, m109 = CODEC.message("ChargerCapability"), CODEC.message("ChargerStatus")
    cap = {
        "WeldingDetectionSupport": 1,
        "AvailableOutputVoltage": 500,
        "AvailableOutputCurrent": 125,
        "ThresholdVoltage": 435,
    }
    status = {s.name: 0 for s in m109.signals} | {"ProtocolNumberEVSE": 2, "PresentOutputVoltage": 380}

    def s109(**flags: int) -> Frame:
        return m109.frame({**status, **flags}, now)

    if event == "c108":
        vehicle.receive(m108.frame(cap, now), now)
    elif event == "c109_idle":
        vehicle.receive(s109(StatusStopControl=1), now)
    elif event == "c109_charging":
        vehicle.receive(s109(StatusCharging=1, StatusConnectorLocked=1), now)
    elif event == "c109_stop":
        vehicle.receive(s109(StatusCharging=1, StatusConnectorLocked=1), now)
        vehicle.receive(s109(StatusCharging=1, StatusConnectorLocked=1, StatusStopControl=1), now)
    elif event == "c109_fault":
        vehicle.receive(s109(StatusChargerMalfunction=1, StatusStopControl=1), now)
    elif event == "malformed":
        vehicle.receive(Frame(0x109, b"\x02\x00", timestamp=now), now)
    elif event == "foreign":
        vehicle.receive(Frame(0x7FF, bytes(8), timestamp=now), now)
        vehicle.receive(Frame(0x109, bytes(8), is_extended_id=True, timestamp=now), now)
        vehicle.receive(Frame(0x102, bytes(8), timestamp=now), now)
    elif event == "d1_open":
        h.set("d1", False)
    elif event == "d2_toggle":
        h.set("d2", not h.is_on("d2"))
    t = now
    if event == "deadline":
        nxt = vehicle.next_deadline()
        t = now if nxt is None else max(now, nxt)
    elif event == "silence":
        t = now + 1.05
    # the vehicle alone from here (the charger is not driven): every vehicle deadline up to t + cycle
    end = t + CYCLE + EPS
    while (nxt := vehicle.next_deadline()) is not None and nxt <= end:
        vehicle.on_timer(max(nxt, now))
        now = max(nxt, now)
    stage: VStage = vehicle.stage
    return stage


def test_vehicle_table_names_every_pair() -> None:
    assert set(VEHICLE_TABLE) == set(itertools.product(VStage, VEHICLE_EVENTS))


def test_vehicle_table_only_uses_transitions_of_the_state_table() -> None:
    edges = {(src, row.dest) for row in V_TRANSITIONS for src in row.sources}
    reach = {s: {s} for s in VStage}
    for _ in VStage:
        for s in VStage:
            reach[s] |= {d for (a, d) in edges if a in reach[s]}
    for (stage, event), allowed in VEHICLE_TABLE.items():
        assert allowed <= reach[stage], (stage, event, allowed - reach[stage])


@pytest.mark.parametrize("stage", list(VStage), ids=lambda s: s.value)
def test_every_vehicle_stage_handles_every_event(stage: VStage) -> None:
    for event in VEHICLE_EVENTS:
        session, now = reach_vehicle(stage)
        assert session.vehicle.stage is stage  # type: ignore[attr-defined]
        after = apply_vehicle_event(session, now, event)
        allowed = VEHICLE_TABLE[(stage, event)]
        assert after in allowed, f"{stage.value} + {event} -> {after.value}, allowed {allowed}"


def test_vehicle_protection_stop_ends_the_tick() -> None:
    """A protection tripping while charging stops the vehicle once, with request 0 in the same frame.

    Found while reworking the tick: it went on in the charging branch after the protection's stop
    (request back up to 2 A; a second stop -> LocalProtocolError when the target SOC was reached too).
    """
    session, _ = reach_vehicle(VStage.CHARGING)
    vehicle: Any = session.vehicle
    vehicle.config = dataclasses.replace(vehicle.config, target_soc=10.0)  # target reached as well
    vehicle.pack.tripped = frozenset({"over_temperature"})
    out = vehicle.on_timer(vehicle.next_deadline())
    assert vehicle.stage is VStage.STOPPING
    f102 = CODEC.message("VehicleChargeControl").decode(
        next(f.data for f in out if f.arbitration_id == 0x102)
    )
    assert (f102["ChargeCurrentRequest"], f102["ChargingEnabled"], f102["FaultHighTemperature"]) == (0, 0, 1)
