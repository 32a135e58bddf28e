"""A full CHAdeMO charger <-> simulated vehicle session in simulated time."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from charger_sim.codec import load_dbc
from charger_sim.drivers.simulated import SimulatedDriver
from charger_sim.frames import Frame
from charger_sim.protocols.base import Role
from charger_sim.protocols.chademo import timing as T
from charger_sim.scenario.loader import parse_scenario
from charger_sim.session.session import Session

CODEC = load_dbc("chademo")
BASIC = {
    "protocol": "chademo",
    "seed": 7,
    "vehicle": {"soc": 20, "target_soc": 80, "pack": {"max_charge_current_a": 110}},
    "charger": {"max_current": 125, "max_power": 50000},
    "expect": {"outcome": "completed"},
}


@dataclass
class Run:
    session: Session
    end: float
    frames: list[tuple[Role, Frame]]


def run(spec: dict[str, object]) -> Run:
    session = Session(parse_scenario(spec, "test.yaml"))
    frames: list[tuple[Role, Frame]] = []
    session.on_frame.append(lambda f, role: frames.append((role, f)))
    end = SimulatedDriver(session).run(7200.0)
    return Run(session, end, frames)


@pytest.fixture(scope="module")
def basic() -> Run:
    return run(BASIC)


def decoded(r: Run, frame_id: int) -> list[tuple[float, dict[str, float | int]]]:
    m = CODEC.by_id(frame_id)
    assert m is not None
    return [(f.timestamp, m.decode(f.data)) for _, f in r.frames if f.arbitration_id == frame_id]


def status_walk(r: Run) -> list[int]:
    walk: list[int] = []
    for _, f in r.frames:
        if f.arbitration_id == 0x109 and (not walk or walk[-1] != f.data[5]):
            walk.append(f.data[5])
    return walk


def test_completes_at_target_soc(basic: Run) -> None:
    res = basic.session.result(basic.end)
    assert res.outcome == "completed" and res.reason == "vehicle_stop" and res.passed
    assert 80.0 <= res.soc_end < 80.5
    assert res.energy_kwh == pytest.approx(basic.session.battery.energy_in_wh / 1000, rel=0.02)
    # 60 % of a 40.6 kWh pack plus losses
    assert 23.0 < res.energy_kwh < 27.0


def test_status_walk_matches_real_chargers(basic: Run) -> None:
    # fact sheet §6.4 / ZE1 capture: 0x20 -> 0x24 -> 0x05 -> 0x25 -> 0x24 -> 0x20
    assert status_walk(basic) == [0x20, 0x24, 0x05, 0x25, 0x24, 0x20]


def test_vehicle_status_walk(basic: Run) -> None:
    walk: list[int] = []
    for _, f in basic.frames:
        if f.arbitration_id == 0x102 and (not walk or walk[-1] != f.data[5]):
            walk.append(f.data[5])
    # JLD505 / Leaf walk without the V2X bit: 0x00 -> 0x08 -> 0x09 -> 0x01 -> 0x00 -> 0x08
    assert walk == [0x00, 0x08, 0x09, 0x01, 0x00, 0x08]


def test_charger_frames_every_100ms_108_before_109(basic: Run) -> None:
    charger = [f for role, f in basic.frames if role is Role.CHARGER]
    ids = [f.arbitration_id for f in charger]
    assert ids[:4] == [0x108, 0x109, 0x108, 0x109]
    times = [f.timestamp for f in charger if f.arbitration_id == 0x109]
    periods = {round(b - a, 6) for a, b in itertools.pairwise(times)}
    assert periods == {T.limit("cycle")}


def test_current_never_above_request_or_available(basic: Run) -> None:
    """Each 0x109 is compared with the last request the charger had received before sending it."""
    m102, m109 = CODEC.message("VehicleChargeControl"), CODEC.message("ChargerStatus")
    last_req = 0
    checked = 0
    for _, f in basic.frames:
        if f.arbitration_id == 0x102:
            last_req = int(m102.decode(f.data)["ChargeCurrentRequest"])
        elif f.arbitration_id == 0x109:
            s = m109.decode(f.data)
            assert s["PresentOutputCurrent"] <= 125
            if not s["StatusStopControl"]:
                # the slew limit (20 A/s) may trail a falling request by one cycle: 2 A
                assert s["PresentOutputCurrent"] <= last_req + 2
                checked += 1
    assert checked > 10_000


def test_current_tapers_and_reported_voltage_is_battery_voltage(basic: Run) -> None:
    samples = basic.session.samples
    charging = [s for s in samples if s.stage == "charging"]
    assert max(s.present_current for s in charging) == pytest.approx(110, abs=1)
    late = [s for s in charging if s.soc > 79]
    assert late and max(s.present_current for s in late) < 100  # taper above 80 % start / CV
    for s in charging[5:]:
        assert s.present_voltage == pytest.approx(s.present_voltage, abs=0.01)
    pack_max = basic.session.battery.spec.max_voltage
    assert all(s.present_voltage < pack_max + 15 for s in charging)


def test_stop_brings_current_below_5a_within_limit(basic: Run) -> None:
    status = decoded(basic, 0x109)
    stop_t = next(t for t, s in status if s["StatusStopControl"] == 1 and s["StatusCharging"] == 1)
    low_t = next(t for t, s in status if t > stop_t and s["PresentOutputCurrent"] <= T.STOP_CURRENT_A)
    assert low_t - stop_t <= T.limit("stop_current")


def test_welding_detection_and_unlock(basic: Run) -> None:
    stages = [e.stage for e in basic.session.timeline if e.role == "charger"]
    assert stages[-4:] == ["stopping", "welding_check", "shutdown", "done"]
    last = decoded(basic, 0x109)[-1][1]
    assert last["StatusConnectorLocked"] == 0 and last["PresentOutputVoltage"] <= T.OUTPUT_SAFE_V
    assert not basic.session.harness.is_on("d1") and not basic.session.harness.is_on("d2")


def test_deterministic_frames() -> None:
    a = run({**BASIC, "vehicle": {"soc": 70, "target_soc": 75}})
    b = run({**BASIC, "vehicle": {"soc": 70, "target_soc": 75}})
    assert [(r, f.timestamp, f.arbitration_id, f.data) for r, f in a.frames] == [
        (r, f.timestamp, f.arbitration_id, f.data) for r, f in b.frames
    ]


def test_seed_changes_the_pack() -> None:
    a = run({**BASIC, "seed": 1, "vehicle": {"soc": 70, "target_soc": 72}})
    b = run({**BASIC, "seed": 2, "vehicle": {"soc": 70, "target_soc": 72}})
    assert a.session.battery.group_capacities_ah != b.session.battery.group_capacities_ah


def test_frames_decode_with_an_independent_dbc() -> None:
    """The frames on the bus decode to the same values with a DBC written independently of ours."""
    import cantools

    independent = cantools.database.load_string(
        """VERSION ""
BS_:
BU_: EV EVSE
BO_ 258 EV102: 8 EV
 SG_ proto : 0|8@1+ (1,0) [0|255] "" EVSE
 SG_ target_v : 8|16@1+ (1,0) [0|65535] "V" EVSE
 SG_ req_a : 24|8@1+ (1,0) [0|255] "A" EVSE
 SG_ enabled : 40|1@1+ (1,0) [0|1] "" EVSE
 SG_ soc : 48|8@1+ (1,0) [0|255] "%" EVSE
BO_ 265 EVSE109: 8 EVSE
 SG_ v : 8|16@1+ (1,0) [0|65535] "V" EV
 SG_ i : 24|8@1+ (1,0) [0|255] "A" EV
 SG_ status : 40|8@1+ (1,0) [0|255] "" EV
""",
        database_format="dbc",
    )
    r = run({**BASIC, "vehicle": {"soc": 70, "target_soc": 72}})
    ours109, theirs109 = CODEC.message("ChargerStatus"), independent.get_message_by_frame_id(265)
    for _, f in r.frames:
        if f.arbitration_id == 0x109:
            a, b = ours109.decode(f.data), theirs109.decode(f.data)
            assert (a["PresentOutputVoltage"], a["PresentOutputCurrent"]) == (b["v"], b["i"])
            assert b["status"] == f.data[5]


def test_a_stop_at_low_current_still_shows_0x25_for_a_cycle() -> None:
    """Real chargers show 0x25 while ramping down even from a few amps (field-log walks)."""
    r = run(
        {
            **BASIC,
            "vehicle": {"soc": 50, "target_soc": 80},
            "faults": [{"type": "operator_stop", "at": {"stage": "charging", "after": 1.0}}],
            "expect": {"outcome": "stopped", "reason": "operator_stop"},
        }
    )
    low = [s.present_current for s in r.session.samples if s.stage == "charging"]
    assert max(low) < 60  # the ramp had barely started
    assert status_walk(r)[:5] == [0x20, 0x24, 0x05, 0x25, 0x24]
