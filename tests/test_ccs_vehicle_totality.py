"""Totality (h2 ``test_state_machines`` style): every (stage, input event) pair of the simulated CCS
vehicle (EVCC) is handled explicitly.

The vehicle is brought to each of its stages by a scripted charger that answers every request at once,
one charger input is applied, and the stage it is in one cycle after its reaction time later must be
one the table allows for that pair.  The table names every pair, every allowed outcome is reachable
through the vehicle's state table, and an exception escaping the core fails the test.  § numbers
refer to the CCS fact sheet.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from charger_sim.bms.battery import Battery, PackSpec
from charger_sim.frames import Frame
from charger_sim.plant.harness import Harness
from charger_sim.protocols.base import SessionEnded
from charger_sim.protocols.ccs.bridge import Request
from charger_sim.protocols.ccs.states import NUMBER
from charger_sim.protocols.ccs.states import Stage as S
from charger_sim.protocols.ccs.vehicle import REQUEST, V_TRANSITIONS, CcsVehicle, CcsVehicleConfig, VStage
from tests.ccs_bench import CODEC, CYCLE

EPS = 1e-6


def _reach_all(edges: set[tuple[Any, Any]], stages: Any) -> dict[Any, set[Any]]:
    reach = {s: {s} for s in stages}
    for _ in stages:
        for s in stages:
            reach[s] |= {d for (a, d) in edges if a in reach[s]}
    return reach


# ---- simulated vehicle -----------------------------------------------------------------------------
VEHICLE_EVENTS = (
    "answer",  # EvseStatus answering the vehicle's request (Finished, OK, isolation Valid) + values
    "ongoing",  # the same answer with EVSEProcessing Ongoing
    "failed",  # the answer with ResponseCode FAILED
    "shutdown",  # EVSE_Shutdown with StopCharging
    "emergency",  # EvseStage emergency_stop, EVSE_EmergencyShutdown
    "charger_done",  # EvseStage done
    "isolation_fault",  # the answer with isolation status Fault
    "out_of_order",  # EvseStage session_setup, Finished: an answer to another request
    "present_values",  # EvsePresentValues only
    "malformed",  # EvseStatus with 3 data bytes
    "foreign",  # an unknown ID, EvseStatus as a 29-bit frame, the vehicle's own EvStatus
    "pwm_toggle",  # 5 % PWM switched on (off when on)
    "cp_unpowered",  # the EVSE's CP source off (0 V)
    "output_live",  # the charger's output at the battery voltage, 20 A
    "stop",  # the driver ends the session (bms role: Ctrl-C)
    "deadline",  # the clock jumps to the vehicle's next deadline
    "silence",  # 1.05 s without charger frames
)
V = VStage
_V_STOPPING = {"failed": {V.SESSION_STOP}, "shutdown": {V.SESSION_STOP}, "emergency": {V.SESSION_STOP}}
_V_ENDS = {"charger_done": {V.DONE}, "silence": {V.DONE}, "stop": {V.SESSION_STOP}, **_V_STOPPING}


def _vrow(
    stage: VStage, default: set[VStage], **special: set[VStage]
) -> dict[tuple[VStage, str], set[VStage]]:
    unknown = set(special) - set(VEHICLE_EVENTS)
    assert not unknown, unknown
    return {(stage, e): special.get(e, default) for e in VEHICLE_EVENTS}


def _vmessage(stage: VStage, after: VStage, **special: set[VStage]) -> dict[tuple[VStage, str], set[VStage]]:
    """A request stage: the (Finished, OK) answer moves on, a FAILED answer, the charger's shutdown or
    emergency and the driver's stop end the session after the reaction time; so does silence."""
    moves = {"answer": {after}, "isolation_fault": {after}, "shutdown": {V.SESSION_STOP}}
    return _vrow(stage, {stage}, **{**_V_ENDS, **moves, **special})


# What each (stage, event) leads to within one vehicle cycle after its reaction time (0.2 s).
VEHICLE_TABLE: dict[tuple[VStage, str], set[VStage]] = {
    # waiting for the 5 % PWM; the charger's "done" or the driver ends it
    **_vrow(
        V.PLUGGED,
        {V.PLUGGED},
        charger_done={V.DONE},
        stop={V.DONE},
        pwm_toggle={V.LINK_SETUP, V.SESSION_SETUP},
    ),
    # SLAC / SDP / TCP for link_delay; an answer to SessionSetup is taken once the link is up
    **_vrow(
        V.LINK_SETUP,
        {V.LINK_SETUP, V.SESSION_SETUP},
        charger_done={V.DONE},
        stop={V.DONE},
        out_of_order={V.SESSION_SETUP, V.SERVICE_DISCOVERY},
    ),
    # the out-of-order answer (EvseStage session_setup) is the right one here
    **_vmessage(V.SESSION_SETUP, V.SERVICE_DISCOVERY, out_of_order={V.SERVICE_DISCOVERY}),
    **_vmessage(V.SERVICE_DISCOVERY, V.AUTHORIZATION),
    **_vmessage(V.AUTHORIZATION, V.CHARGE_PARAMETER_DISCOVERY),
    # answered: S2 closes (state C) and CableCheckReq starts, where an isolation fault ends the session
    **_vmessage(V.CHARGE_PARAMETER_DISCOVERY, V.CABLE_CHECK, isolation_fault={V.SESSION_STOP}),
    **_vmessage(V.CABLE_CHECK, V.PRECHARGE, isolation_fault={V.SESSION_STOP}),
    # the contactors close after the inlet matched the battery for 0.5 s (beyond this window)
    **_vmessage(V.PRECHARGE, V.PRECHARGE, isolation_fault={V.PRECHARGE}),
    # from here the battery is on the link: ending is PowerDelivery(ReadyToCharge = false)
    **_vmessage(
        V.POWER_DELIVERY_START,
        V.CURRENT_DEMAND,
        stop={V.POWER_DELIVERY_STOP},
        **{key: {V.POWER_DELIVERY_STOP} for key in _V_STOPPING},
    ),
    # CurrentDemandRes (EvsePresentValues) is due every 250 ms: a silent charger ends charging
    **_vrow(V.CURRENT_DEMAND, {V.POWER_DELIVERY_STOP}, charger_done={V.DONE}, silence={V.DONE}),
    # S2 open, 0 A: a stop skips straight to the welding check (the contactors open at once), an
    # emergency stop to SessionStop
    **_vrow(
        V.PAUSED,
        {V.PAUSED},
        charger_done={V.DONE},
        silence={V.DONE},
        stop={V.WELDING_DETECTION},
        failed={V.WELDING_DETECTION},
        shutdown={V.WELDING_DETECTION},
        emergency={V.SESSION_STOP},
    ),
    # the ending only moves forward: C -> B, contactors open, welding check, SessionStop
    **_vrow(V.POWER_DELIVERY_STOP, {V.POWER_DELIVERY_STOP}, charger_done={V.DONE}, silence={V.DONE}),
    **_vrow(
        V.WELDING_DETECTION,
        {V.WELDING_DETECTION},
        answer={V.SESSION_STOP},  # answered and the inlet below 60 V: not welded
        shutdown={V.SESSION_STOP},
        isolation_fault={V.SESSION_STOP},
        charger_done={V.DONE},
        silence={V.DONE},
    ),
    **_vrow(V.SESSION_STOP, {V.SESSION_STOP}, charger_done={V.DONE}, silence={V.DONE}),
    **_vrow(V.DONE, {V.DONE}),
    # a hung controller reacts to nothing (its frames repeat frozen)
    **_vrow(V.HUNG, {V.HUNG}),
}

_PACK = PackSpec(chemistry="nmc", series=96, parallel=2, cell_capacity_ah=56.3, max_charge_current_a=125.0)
_V_WINDOW = CYCLE + CcsVehicleConfig().stop_reaction + EPS


class EvRig:
    """The vehicle core and a scripted charger answering each request (Finished, OK) at once."""

    def __init__(self, **config: Any) -> None:
        self.harness = Harness()
        self.harness.set("cp_mode", 1.0)  # +12 V, no PWM yet
        self.harness.set("cp_duty", 100.0)
        cfg = CcsVehicleConfig(link_delay=0.2, cp_c_delay=0.0, **config)
        self.vehicle = CcsVehicle(cfg, Battery(_PACK, soc=50.0, seed=1), self.harness, CODEC)
        self.counter = 0
        self.answering = True
        self.now = 0.0
        self.vehicle.start(0.0)

    @property
    def stage(self) -> VStage:
        return self.vehicle.stage

    def status(self, **fields: int) -> Frame:
        request = REQUEST[self.vehicle.stage]
        stage = int(request) if request not in (Request.NONE, Request.SNA) else NUMBER[S.CP_B_PWM]
        values = {
            "EvseStage": stage,
            "EvseProtocol": 1,
            "EvseResponseCode": 0,
            "CpState": 2,
            "CpDiodePresent": 1,
            "CpDuty": 5.0,
            "PpResistance": 1500,
            "PpCode": 1,
            "EvseIsolationStatus": 1,
            "EvseStatusCode": 1,
            "EvseNotification": 0,
            "EvseProcessing": 0,
            "EvseAliveCounter": self.counter,
            **fields,
        }
        self.counter = (self.counter + 1) % 15
        return CODEC.message("EvseStatus").frame(values, self.now)

    def present_values(self, amps: float = 0.0) -> Frame:
        values = {
            "EvsePresentVoltage": round(self.harness.output_voltage, 1),
            "EvsePresentCurrent": amps,
            "EvsePresentPower": 0.0,
            "EvseCurrentLimitAchieved": 0,
            "EvseVoltageLimitAchieved": 0,
            "EvsePowerLimitAchieved": 0,
            "EvseNotificationMaxDelay": 2,
        }
        return CODEC.message("EvsePresentValues").frame(values, self.now)

    def deliver(self, frame: Frame) -> None:
        self.vehicle.receive(frame, self.now)

    def answer(self, **fields: int) -> None:
        vehicle = self.vehicle
        if vehicle.stage is V.PRECHARGE:  # pre-charged to the battery voltage
            self.harness.output_voltage = vehicle.battery.terminal_voltage(0.0)
        elif vehicle.stage is V.WELDING_DETECTION:  # the inlet is dead with the contactors open
            self.harness.output_voltage = 0.0
        self.deliver(self.status(**fields))
        self.deliver(self.present_values())
        maxima = {"EvseMaxVoltage": 500.0, "EvseMaxCurrent": 125.0, "EvseMaxPower": 50.0}
        self.deliver(
            CODEC.message("EvseMaxLimits").frame({**maxima, "EvseEnergyToBeDelivered": 6553.5}, self.now)
        )

    def step(self, hold: VStage | None = None) -> bool:
        nxt = self.vehicle.next_deadline()
        if nxt is None:
            return False
        self.now = max(self.now, nxt)
        out = self.vehicle.on_timer(self.now)
        if out and self.answering and self.vehicle.stage is not hold:
            self.answer()
        return True

    def run(self, until: float) -> None:
        while (nxt := self.vehicle.next_deadline()) is not None and nxt <= until + 1e-9:
            self.step()
        self.now = max(self.now, until)

    def run_to(self, stage: VStage, within: float = 30.0) -> None:
        """Until the vehicle enters ``stage`` (its request there not answered yet)."""
        end = self.now + within
        while self.vehicle.stage is not stage:
            assert self.now <= end and self.step(hold=stage), f"never reached {stage.value}"


_V_ORDER = (
    V.LINK_SETUP,
    V.SESSION_SETUP,
    V.SERVICE_DISCOVERY,
    V.AUTHORIZATION,
    V.CHARGE_PARAMETER_DISCOVERY,
    V.CABLE_CHECK,
    V.PRECHARGE,
    V.POWER_DELIVERY_START,
    V.CURRENT_DEMAND,
)


def reach_vehicle(stage: VStage) -> EvRig:
    config: dict[str, Any] = {}
    if stage is V.PAUSED:
        config = {"cp_b_at_soc": 0.0, "resume_after_s": 30.0}
    elif stage is V.HUNG:
        config = {"hang_at_soc": 0.0}
    rig = EvRig(**config)
    if stage is V.PLUGGED:
        return rig
    rig.harness.set("cp_duty", 5.0)
    for s in _V_ORDER:
        if stage in (V.PAUSED, V.HUNG) and s is V.CURRENT_DEMAND:
            rig.run_to(stage)  # straight from the first current demand
            return rig
        rig.run_to(s)
        if s is stage:
            return rig
    rig.vehicle.request_stop(rig.now)
    if stage is V.POWER_DELIVERY_STOP:
        return rig
    for s in (V.WELDING_DETECTION, V.SESSION_STOP):
        rig.answer()
        rig.run_to(s)
        if s is stage:
            return rig
    rig.answer(EvseStage=NUMBER[S.DONE])
    rig.run_to(V.DONE)
    return rig


def apply_vehicle_event(rig: EvRig, event: str) -> None:
    """Apply ``event`` with the scripted charger silent from now on, then run the reaction window."""
    rig.answering = False
    now = rig.now
    if event == "answer":
        rig.answer()
    elif event == "ongoing":
        rig.answer(EvseProcessing=1)
    elif event == "failed":
        rig.answer(EvseResponseCode=4)
    elif event == "shutdown":
        rig.answer(EvseStatusCode=2, EvseNotification=1)
    elif event == "emergency":
        rig.answer(EvseStage=NUMBER[S.EMERGENCY_STOP], EvseStatusCode=5, EvseNotification=1)
    elif event == "charger_done":
        rig.answer(EvseStage=NUMBER[S.DONE])
    elif event == "isolation_fault":
        rig.answer(EvseIsolationStatus=3)
    elif event == "out_of_order":
        rig.answer(EvseStage=NUMBER[S.SESSION_SETUP])
    elif event == "present_values":
        rig.deliver(rig.present_values(20.0))
    elif event == "malformed":
        rig.deliver(Frame(0x500, rig.status().data[:3], False, now))
    elif event == "foreign":
        rig.deliver(Frame(0x7FF, bytes(8), False, now))
        rig.deliver(Frame(0x500, rig.status().data, True, now))
        rig.deliver(Frame(0x510, bytes(8), False, now))
    elif event == "pwm_toggle":
        rig.harness.set("cp_duty", 100.0 if rig.harness.line("cp_duty") < 100.0 else 5.0)
    elif event == "cp_unpowered":
        rig.harness.set("cp_mode", 0.0)
    elif event == "output_live":
        rig.harness.output_voltage = rig.vehicle.battery.terminal_voltage(0.0)
        rig.harness.output_current = 20.0
    elif event == "stop":
        rig.vehicle.request_stop(now)
    elif event == "deadline":
        nxt = rig.vehicle.next_deadline()
        if nxt is not None:
            rig.run(nxt)
    elif event == "silence":
        rig.run(now + 1.05)
    rig.run(rig.now + _V_WINDOW)


def test_vehicle_table_names_every_pair() -> None:
    assert set(VEHICLE_TABLE) == set(itertools.product(VStage, VEHICLE_EVENTS))


def test_vehicle_table_only_uses_transitions_of_the_state_table() -> None:
    reach = _reach_all({(src, row.dest) for row in V_TRANSITIONS for src in row.sources}, list(VStage))
    for (stage, event), allowed in VEHICLE_TABLE.items():
        assert allowed <= reach[stage], (stage, event, allowed - reach[stage])


@pytest.mark.parametrize("stage", list(VStage), ids=lambda s: s.value)
def test_every_vehicle_stage_handles_every_event(stage: VStage) -> None:
    for event in VEHICLE_EVENTS:
        rig = reach_vehicle(stage)
        assert rig.stage is stage
        apply_vehicle_event(rig, event)  # an escaping exception fails here
        allowed = VEHICLE_TABLE[(stage, event)]
        assert rig.stage in allowed, f"{stage.value} + {event} -> {rig.stage.value}, allowed {allowed}"
        ends = [e for e in rig.vehicle.drain_events() if isinstance(e, SessionEnded)]
        assert len(ends) <= 1
