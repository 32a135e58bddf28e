"""A full CCS bridge session, charger core <-> simulated vehicle core, in simulated time."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from charger_sim.codec import load_dbc
from charger_sim.drivers.simulated import SimulatedDriver
from charger_sim.frames import Frame
from charger_sim.protocols.base import Role
from charger_sim.protocols.ccs import timing as T
from charger_sim.protocols.ccs.bridge import ALIVE_MODULO, Request
from charger_sim.protocols.ccs.states import NUMBER, Stage
from charger_sim.scenario.loader import parse_scenario
from charger_sim.session.session import Session

CODEC = load_dbc("ccs")
CYCLE = T.limit("cycle")
BASIC = {
    "protocol": "ccs",
    "seed": 7,
    "vehicle": {"soc": 20, "target_soc": 80, "pack": {"max_charge_current_a": 110}},
    "charger": {"max_current": 125, "max_power": 50000},
    "expect": {"outcome": "completed"},
}
SHORT = {**BASIC, "vehicle": {"soc": 70, "target_soc": 72}}

# Every charger stage of a normal session, in order, with the pilot and plug as the charger reads
# them on entry: CP state (with the PWM suffix), duty, PP resistance.
WALK = [
    (Stage.PLUGGED_IN, "B1", 100.0),
    (Stage.CP_B_PWM, "B2", 5.0),
    (Stage.SESSION_SETUP, "B2", 5.0),
    (Stage.SERVICE_DISCOVERY, "B2", 5.0),
    (Stage.AUTHORIZATION, "B2", 5.0),
    (Stage.CHARGE_PARAMETER_DISCOVERY, "B2", 5.0),
    (Stage.CP_STATE_C, "C2", 5.0),
    (Stage.CABLE_CHECK, "C2", 5.0),
    (Stage.PRECHARGE, "C2", 5.0),
    (Stage.POWER_DELIVERY_START, "C2", 5.0),
    (Stage.CURRENT_DEMAND, "C2", 5.0),
    (Stage.POWER_DELIVERY_STOP, "C2", 5.0),  # the EV switches to B 300-450 ms later
    (Stage.WELDING_DETECTION, "B2", 5.0),
    (Stage.SESSION_STOP, "B2", 5.0),
    (Stage.UNLOCK, "B1", 100.0),  # PWM off
    (Stage.DONE, "B1", 100.0),
]


@dataclass
class Run:
    session: Session
    end: float
    frames: list[tuple[Role, Frame]]

    def decoded(self, message: str) -> list[tuple[float, dict[str, float | int]]]:
        m = CODEC.message(message)
        return [(f.timestamp, m.decode(f.data)) for _, f in self.frames if f.arbitration_id == m.frame_id]


def run(spec: dict[str, object]) -> Run:
    session = Session(parse_scenario(spec, "test.yaml"))
    frames: list[tuple[Role, Frame]] = []
    session.on_frame.append(lambda f, role: frames.append((role, f)))
    end = SimulatedDriver(session).run(7200.0)
    return Run(session, end, frames)


@pytest.fixture(scope="module")
def basic() -> Run:
    return run(BASIC)


def test_completes_at_target_soc(basic: Run) -> None:
    res = basic.session.result(basic.end)
    assert (res.outcome, res.reason, res.stage, res.step) == (
        "completed",
        "vehicle_stop",
        "current_demand",
        7,
    )
    assert res.passed and res.charger_faults == []
    assert 80.0 <= res.soc_end < 80.5
    assert res.energy_kwh == pytest.approx(basic.session.battery.energy_in_wh / 1000, rel=0.02)
    assert 23.0 < res.energy_kwh < 27.0
    assert basic.session.vehicle_end is not None and basic.session.vehicle_end.outcome.value == "completed"


def test_walks_every_stage_in_order_with_cp_and_pp_correct_at_each(basic: Run) -> None:
    charger = [e for e in basic.session.timeline if e.role == "charger"]
    assert [e.stage for e in charger] == [s.value for s, _, _ in WALK]
    for entry, (stage, cp, duty) in zip(charger, WALK, strict=True):
        v = entry.values
        assert (v["cp_state"], v["cp_duty"]) == (cp, duty), stage
        assert (v["pp_ohm"], v["pp_code"]) == (1500.0, "TYPE2_13A"), stage
        assert v["evse_stage"] == NUMBER[stage]
    # on the bus, each stage appears in EvseStatus, in the same order, each for at least one frame
    walk = [int(v["EvseStage"]) for _, v in basic.decoded("EvseStatus")]
    collapsed = [k for k, _ in itertools.groupby(walk)]
    assert collapsed == [NUMBER[s] for s, _, _ in WALK]


def test_cp_levels_on_the_bus_follow_the_pilot(basic: Run) -> None:
    status = basic.decoded("EvseStatus")
    for _, v in status:
        stage = int(v["EvseStage"])
        if NUMBER[Stage.CP_STATE_C] <= stage <= NUMBER[Stage.CURRENT_DEMAND]:
            assert (v["CpState"], v["CpDuty"]) == (2, 5.0)  # C2
        elif NUMBER[Stage.CP_B_PWM] <= stage < NUMBER[Stage.CP_STATE_C]:
            assert (v["CpState"], v["CpDuty"], v["CpDiodePresent"]) == (1, 5.0, 1)  # B2, diode checked
        elif stage in (NUMBER[Stage.PLUGGED_IN], NUMBER[Stage.UNLOCK], NUMBER[Stage.DONE]):
            assert (v["CpState"], v["CpDuty"], v["CpDiodePresent"]) == (1, 100.0, 3)  # B1, no PWM
        assert (v["PpResistance"], v["PpCode"]) == (1500, 1)
    ev_cp = {int(v["EvCpState"]) for _, v in basic.decoded("EvStatus")}
    assert ev_cp == {1, 2}  # the vehicle reads the same wire


def test_vehicle_walks_the_din_requests_in_order(basic: Run) -> None:
    requests = [k for k, _ in itertools.groupby(int(v["EvRequest"]) for _, v in basic.decoded("EvStatus"))]
    assert requests == [0, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14]
    stages = [e.stage for e in basic.session.timeline if e.role == "vehicle"]
    assert stages == [
        "link_setup", "session_setup", "service_discovery", "authorization", "charge_parameter_discovery",
        "cable_check", "precharge", "power_delivery_start", "current_demand", "power_delivery_stop",
        "welding_detection", "session_stop", "done",
    ]  # fmt: skip


def test_every_request_is_answered_with_its_own_number(basic: Run) -> None:
    first_request = {}
    for t, v in basic.decoded("EvStatus"):
        first_request.setdefault(int(v["EvRequest"]), t)
    first_answer = {}
    for t, v in basic.decoded("EvseStatus"):
        first_answer.setdefault(int(v["EvseStage"]), t)
    for r, t in first_request.items():
        if r == Request.NONE:
            continue
        delay = first_answer[r] - t
        budget = CYCLE if r != Request.CABLE_CHECK else CYCLE + basic.session.scenario.charger.lock_time
        assert 0 < delay <= budget + 1e-6, (r, delay)
        assert delay < T.limit("message_response")


def test_both_sides_send_four_frames_every_100_ms(basic: Run) -> None:
    for role, ids in (
        (Role.CHARGER, [0x500, 0x501, 0x502, 0x503]),
        (Role.VEHICLE, [0x510, 0x511, 0x512, 0x513]),
    ):
        frames = [f for r, f in basic.frames if r is role]
        assert [f.arbitration_id for f in frames[:8]] == ids * 2
        times = [f.timestamp for f in frames if f.arbitration_id == ids[0]]
        assert {round(b - a, 6) for a, b in itertools.pairwise(times)} == {CYCLE}


def test_alive_counters_advance_by_one_every_frame(basic: Run) -> None:
    for message, name in (("EvseStatus", "EvseAliveCounter"), ("EvStatus", "EvAliveCounter")):
        counters = [int(v[name]) for _, v in basic.decoded(message)]
        assert counters[:16] == [k % ALIVE_MODULO for k in range(16)]
        assert all((b - a) % ALIVE_MODULO == 1 for a, b in itertools.pairwise(counters))
    assert basic.session.charger.alive.jumps == 0  # type: ignore[attr-defined]


def test_din_timing_is_respected(basic: Run) -> None:
    entered = basic.session.stage_entered
    assert entered["precharge"] - entered["cable_check"] < T.limit("cable_check")
    assert entered["power_delivery_start"] - entered["precharge"] < T.limit("precharge")
    assert entered["power_delivery_start"] < T.limit("ready_to_charge")
    # PowerDelivery(stop): current <= 1 A within 0.3 s, C -> B after 300-450 ms, contactors open after
    t_stop = entered["power_delivery_stop"]
    present = basic.decoded("EvsePresentValues")
    low = next(t for t, v in present if t >= t_stop and v["EvsePresentCurrent"] <= T.CURRENT_OFF_A)
    assert low - t_stop <= T.limit("stop_current") + 1e-6
    ev = basic.decoded("EvStatus")
    t_b = next(t for t, v in ev if t >= t_stop and v["EvCpState"] == 1)
    assert 0.3 <= t_b - t_stop <= 0.45 + CYCLE
    t_open = next(t for t, v in ev if t >= t_stop and v["EvContactorState"] == 0)
    assert t_open >= low
    # welding detection ends below 60 V; the charger unlocks only below 60 V
    t_session_stop = entered["session_stop"]
    volts = next(v["EvsePresentVoltage"] for t, v in present if t >= t_session_stop)
    assert volts < T.SAFE_V + 10  # the last welding answer had fallen below 60 V
    unlock = next(e for e in basic.session.timeline if e.role == "charger" and e.stage == "done")
    assert float(unlock.values["present_voltage"]) < T.SAFE_V


def test_pre_charge_matches_the_battery_and_cable_check_voltage(basic: Run) -> None:
    entered = basic.session.stage_entered
    present = basic.decoded("EvsePresentValues")
    during_check = [
        v["EvsePresentVoltage"] for t, v in present if entered["cable_check"] <= t < entered["precharge"]
    ]
    assert max(during_check) == pytest.approx(T.cable_check_voltage(409.0, 500.0))
    targets = basic.decoded("EvTargets")
    target = next(v["EvTargetVoltage"] for t, v in targets if t >= entered["precharge"])
    at_pds = next(v["EvsePresentVoltage"] for t, v in present if t >= entered["power_delivery_start"])
    assert abs(at_pds - target) < T.PRECHARGE_MATCH_V
    precharge_current = {
        v["EvTargetCurrent"]
        for t, v in targets
        if entered["precharge"] <= t < entered["power_delivery_start"]
    }
    assert precharge_current == {T.PRECHARGE_CURRENT_A}


def test_current_never_above_the_target_or_the_limit(basic: Run) -> None:
    """Each EvsePresentValues against the targets the charger had received in the cycle before it
    (a falling target is followed at the stop slew, within one cycle)."""
    targets = [0.0, 0.0]
    checked = 0
    for _, f in basic.frames:
        if f.arbitration_id == 0x511:
            value = CODEC.message("EvTargets").decode(f.data)["EvTargetCurrent"]
            targets = [targets[-1], 0.0 if value >= 6553.5 else float(value)]
        elif f.arbitration_id == 0x503:
            present = CODEC.message("EvsePresentValues").decode(f.data)["EvsePresentCurrent"]
            assert present <= 125.0 + 1e-6
            assert present <= max(targets) + 1e-6
            checked += 1
    assert checked > 10_000


def test_current_tapers_near_full(basic: Run) -> None:
    charging = [s for s in basic.session.samples if s.stage == "current_demand"]
    assert max(s.present_current for s in charging) == pytest.approx(110, abs=1)
    late = [s for s in charging if s.soc > 79]
    assert late and max(s.present_current for s in late) < 100


def test_deterministic_frames() -> None:
    a, b = run(SHORT), run(SHORT)
    assert [(r, f.timestamp, f.arbitration_id, f.data) for r, f in a.frames] == [
        (r, f.timestamp, f.arbitration_id, f.data) for r, f in b.frames
    ]


def test_seed_changes_the_pack() -> None:
    a = run({**SHORT, "seed": 1})
    b = run({**SHORT, "seed": 2})
    assert a.session.battery.group_capacities_ah != b.session.battery.group_capacities_ah


def test_frames_decode_with_an_independent_dbc() -> None:
    """The frames decode to the same values with a DBC written independently from the README layout."""
    import cantools

    independent = cantools.database.load_string(
        """VERSION ""
BS_:
BU_: A B
BO_ 1280 S: 8 A
 SG_ stage : 0|8@1+ (1,0) [0|255] "" B
 SG_ cp : 16|4@1+ (1,0) [0|15] "" B
 SG_ duty : 22|10@1+ (0.1,0) [0|102.3] "%" B
 SG_ pp : 32|12@1+ (1,0) [0|4095] "Ohm" B
 SG_ alive : 60|4@1+ (1,0) [0|15] "" B
BO_ 1283 P: 8 A
 SG_ v : 0|16@1+ (0.1,0) [0|6553.5] "V" B
 SG_ i : 16|16@1+ (0.1,0) [0|6553.5] "A" B
BO_ 1296 E: 8 B
 SG_ req : 0|8@1+ (1,0) [0|255] "" A
 SG_ soc : 24|8@1+ (1,0) [0|255] "%" A
""",
        database_format="dbc",
    )
    r = run(SHORT)
    ours = {m: CODEC.message(m) for m in ("EvseStatus", "EvsePresentValues", "EvStatus")}
    for _, f in r.frames:
        if f.arbitration_id == 0x500:
            a, b = (
                ours["EvseStatus"].decode(f.data),
                independent.get_message_by_frame_id(0x500).decode(f.data),
            )
            assert (a["EvseStage"], a["CpState"], a["PpResistance"], a["EvseAliveCounter"]) == (
                b["stage"], b["cp"], b["pp"], b["alive"],
            )  # fmt: skip
            assert a["CpDuty"] == pytest.approx(b["duty"])
        elif f.arbitration_id == 0x503:
            a, b = (
                ours["EvsePresentValues"].decode(f.data),
                independent.get_message_by_frame_id(0x503).decode(f.data),
            )
            assert (a["EvsePresentVoltage"], a["EvsePresentCurrent"]) == pytest.approx((b["v"], b["i"]))
        elif f.arbitration_id == 0x510:
            a, b = ours["EvStatus"].decode(f.data), independent.get_message_by_frame_id(0x510).decode(f.data)
            assert (a["EvRequest"], a["EvSoc"]) == (b["req"], b["soc"])


@pytest.mark.parametrize("revision", list(T.REVISIONS))
def test_vehicle_stops_when_current_demand_answers_are_late(revision: str) -> None:
    """The EV's CurrentDemand response budget (0.25 s DIN 2012, 0.5 s DIN TS 2024): EvsePresentValues
    lost for longer ends the session with PowerDelivery(stop) and EVReady = false: ev_not_ready."""
    spec = {
        **SHORT,
        "vehicle": {"soc": 60, "target_soc": 80, "revision": revision},
        "charger": {"revision": revision},
        "faults": [
            {
                "type": "drop_message",
                "message": "EvsePresentValues",
                "at": {"stage": "current_demand", "after": 20},
            }
        ],
        "expect": {"outcome": "stopped", "reason": "ev_not_ready"},
    }
    r = run(spec)
    assert r.session.result(r.end).passed
    assert r.session.vehicle_end is not None and "late" in r.session.vehicle_end.cause
    present = [t for t, _ in r.decoded("EvsePresentValues")]  # as sent (before the link drops them)
    t_drop = r.session.stage_entered["current_demand"] + 20
    last_rx = max(t for t in present if t < t_drop - 1e-9)
    t_stop = next(t for t, v in r.decoded("EvStatus") if v["EvRequest"] == Request.POWER_DELIVERY_STOP)
    budget = T.limit("current_demand_response", revision)
    assert budget < t_stop - last_rx <= budget + CYCLE + 1e-6


def test_the_required_ccs_scenarios_ship() -> None:
    from charger_sim.resources import scenarios_dir
    from charger_sim.scenario.loader import load_scenario

    names = {p.stem for p in scenarios_dir().glob("ccs_*.yaml")}
    assert {
        "ccs_basic",
        "ccs_isolation_fault",
        "ccs_precharge_timeout",
        "ccs_cp_state_b",
        "ccs_pp_invalid",
        "ccs_alive_counter_frozen",
        "ccs_ev_error",
    } <= names
    for name in names:
        assert load_scenario(scenarios_dir() / f"{name}.yaml").protocol == "ccs"
