"""The fault catalogue on the CCS bridge profile: every kind's stop path on the simulated clock (reason,
step, the frames and flags on the wire, the reaction time against the protocol's limit), the pin and
firmware mapping, and the shipped ccs_*.yaml catalogue.

Whole sessions (charger core + simulated vehicle + fault engine) run in simulated time; a few charger
rules are pinned on the scripted-vehicle bench (``tests/ccs_bench.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from charger_sim.codec import Value, load_dbc
from charger_sim.drivers.simulated import SimulatedDriver
from charger_sim.errors import ScenarioError
from charger_sim.faults import FAULTS
from charger_sim.frames import Frame
from charger_sim.plant.harness import Harness
from charger_sim.protocols import registry
from charger_sim.protocols.base import Role
from charger_sim.protocols.ccs import electrical as E
from charger_sim.protocols.ccs import faults as F
from charger_sim.protocols.ccs import timing as T
from charger_sim.protocols.ccs.bridge import (
    APP_PROTOCOL_LINE,
    AppProtocol,
    ContactorState,
    EvErrorCode,
    EvseStatusCode,
    IsolationStatus,
    Notification,
    Protocol,
    Request,
    ResponseCode,
    app_protocols,
)
from charger_sim.protocols.ccs.charger import CcsCharger
from charger_sim.protocols.ccs.states import NUMBER, REQUIRED, Stage
from charger_sim.protocols.ccs.stops import EMERGENCY, REASONS
from charger_sim.protocols.ccs.vehicle import CcsVehicleConfig
from charger_sim.resources import scenarios_dir
from charger_sim.scenario.loader import load_scenario, parse_scenario
from charger_sim.session.result import SessionResult
from charger_sim.session.session import Session
from tests.ccs_bench import BATTERY_V, charging, walk_to

CODEC = load_dbc("ccs")
CYCLE = T.limit("cycle")
RX = T.limit("rx_timeout")
STOP_CURRENT = T.limit("stop_current")
EPS = 1e-6
CD = "current_demand"
AT_CD = {"stage": CD, "after": 20}  # the default trigger: 20 s into the current demand loop

# ---- running a session with faults -------------------------------------------------------------------


@dataclass
class Run:
    session: Session
    result: SessionResult
    frames: list[tuple[Role, Frame]]  # as delivered by the link (after the faults)
    sent: list[tuple[Role, Frame]]  # as each side put them on the wire (before the faults)

    def decoded(
        self, message: str, role: Role | None = None, *, as_sent: bool = False
    ) -> list[tuple[float, dict[str, Value]]]:
        m = CODEC.message(message)
        return [
            (f.timestamp, m.decode(f.data))
            for r, f in (self.sent if as_sent else self.frames)
            if f.arbitration_id == m.frame_id and len(f.data) == m.length and (role is None or r is role)
        ]

    @property
    def fault_at(self) -> float:
        at = self.session.faults.first_fired
        assert at is not None, "no fault fired"
        return at

    @property
    def stop_at(self) -> float:
        """When the charger entered its first stop stage at or after the fault."""
        return next(t for t in self.session.stop_times if t >= self.fault_at - EPS)

    def shown(self, stage: Stage) -> tuple[float, dict[str, Value]]:
        """The first EvseStatus the charger sent showing ``stage`` after the fault."""
        return next(
            (ts, v)
            for ts, v in self.decoded("EvseStatus", Role.CHARGER, as_sent=True)
            if ts >= self.fault_at - EPS and v["EvseStage"] == NUMBER[stage]
        )

    def current_after(self, t: float) -> float:
        """The highest EvsePresentCurrent the charger sent from ``t`` on."""
        return max(
            (
                float(v["EvsePresentCurrent"])
                for ts, v in self.decoded("EvsePresentValues", as_sent=True)
                if ts >= t - EPS
            ),
            default=0.0,
        )

    def stages(self, role: str = "charger") -> list[str]:
        return [e.stage for e in self.result.timeline if e.role == role]


def run(
    faults: list[dict[str, Any]],
    *,
    vehicle: dict[str, Any] | None = None,
    charger: dict[str, Any] | None = None,
    time_limit: float = 900.0,
) -> Run:
    spec = {
        "protocol": "ccs",
        "seed": 3,
        "time_limit": time_limit,
        "vehicle": vehicle if vehicle is not None else {"soc": 60, "target_soc": 63},
        "charger": charger or {},
        "faults": faults,
        "expect": {"outcome": "stopped"},
    }
    session = Session(parse_scenario(spec, "test.yaml"))
    frames: list[tuple[Role, Frame]] = []
    sent: list[tuple[Role, Frame]] = []
    session.on_frame.append(lambda f, role: frames.append((role, f)))
    link = session.link

    def recording_link(frame: Frame, sender: Role, now: float) -> list[tuple[float, Frame]]:
        sent.append((sender, frame))
        return link(frame, sender, now)

    session.link = recording_link  # type: ignore[method-assign]
    end = SimulatedDriver(session).run(time_limit)
    return Run(session, session.result(end), frames, sent)


def assert_stopped(r: Run, reason: str, stage: str = CD, step: int = 7) -> None:
    res = r.result
    assert (res.outcome, res.reason, res.stage, res.step) == ("stopped", reason, stage, step), res.cause
    assert res.cause.startswith(REASONS[reason].cause)


def assert_emergency(r: Run, *, within: float) -> None:
    """The stop went through emergency_stop within ``within`` s of the fault: EvseStage 19,
    EVSE_EmergencyShutdown, PWM off, and the current below 1 A within the stop-current limit."""
    assert r.stop_at - r.fault_at <= within + EPS
    assert r.stages()[r.stages().index("emergency_stop") - 1] in (CD, "paused")
    t, v = r.shown(Stage.EMERGENCY_STOP)
    assert t <= r.stop_at + CYCLE + EPS  # in the next EvseStatus
    assert (v["EvseStatusCode"], v["EvseResponseCode"]) == (
        EvseStatusCode.EMERGENCY_SHUTDOWN,
        ResponseCode.FAILED,
    )
    assert v["CpDuty"] == 100.0
    assert r.current_after(r.stop_at + STOP_CURRENT) <= T.CURRENT_OFF_A


def assert_error_stop(r: Run, *, within: float, status: EvseStatusCode = EvseStatusCode.SHUTDOWN) -> None:
    """The stop went through error (link up) within ``within`` s: StopCharging, the status code, and
    the current below 1 A within the stop-current limit."""
    assert r.stop_at - r.fault_at <= within + EPS
    t, v = r.shown(Stage.ERROR)
    assert t <= r.stop_at + CYCLE + EPS  # in the next EvseStatus
    assert (v["EvseNotification"], v["EvseStatusCode"]) == (Notification.STOP_CHARGING, status)
    assert r.current_after(r.stop_at + STOP_CURRENT) <= T.CURRENT_OFF_A


def assert_completed(r: Run) -> None:
    assert (r.result.outcome, r.result.reason) == ("completed", "vehicle_stop"), r.result.cause


# ---- the catalogue mapping ---------------------------------------------------------------------------


def test_every_catalogue_kind_has_a_ccs_note_and_three_pins() -> None:
    info = registry.get("ccs")
    assert set(info.fault_notes) == set(FAULTS)
    assert set(info.pins) == {"cp", "pp", "diode"}
    assert info.apply_firmware is F.apply_firmware


@pytest.mark.parametrize(
    ("pin", "value", "expected"),
    [
        ("cp", None, "INVALID"),  # the default bad reading: 7.5 V, between the B and C windows
        ("cp", 0.0, "A"),  # open: no EV load seen, +12 V
        ("cp", 3.0, "D"),
        ("pp", None, "INVALID"),  # 3000 ohm
        ("pp", 0.0, "NOT_CONNECTED"),  # open
        ("pp", 680.0, "TYPE2_20A"),
        ("diode", None, "diode_fault"),
    ],
)
def test_every_pin_changes_what_the_charger_reads(pin: str, value: float | None, expected: str) -> None:
    h = Harness()
    h.set("cp_mode", E.CpMode.NORMAL)
    h.set("cp_duty", E.DIGITAL_DUTY)
    h.set("cp_ev_ohm", E.ev_load_ohm(True))
    before = E.read_pilot(h)
    assert (before.state, before.diode_ok) == (E.CpState.C, True)
    assert E.pp_decode(E.measure_pp(h, 1500.0), E.Connector.CCS2) is E.PpCode.TYPE2_13A
    spec = F.PINS[pin]
    h.overrides[spec.line] = spec.bad if value is None else value
    pilot = E.read_pilot(h)
    if pin == "cp":
        assert pilot.state.name == expected
    elif pin == "pp":
        assert E.pp_decode(E.measure_pp(h, 1500.0), E.Connector.CCS2).name == expected
    else:
        assert pilot.diode_ok is False
    h.overrides.clear()
    assert E.read_pilot(h).state is E.CpState.C


def test_an_open_cp_contact_reads_no_pilot_on_the_vehicle_side() -> None:
    h = Harness()
    h.set("cp_mode", E.CpMode.NORMAL)
    h.set("cp_duty", E.DIGITAL_DUTY)
    h.set("cp_ev_ohm", E.ev_load_ohm(False))
    h.overrides[E.CP_PIN_LINE] = 0.0
    ev = E.read_pilot(h, ev_side=True)
    assert (ev.high_v, ev.pwm) == (0.0, False)
    assert E.read_pilot(h).state is E.CpState.A


@pytest.mark.parametrize(
    ("version", "offer", "revision"),
    [
        ("din70121", AppProtocol.DIN70121, T.DEFAULT_REVISION),
        ("din70121_2012", AppProtocol.DIN70121, "din70121_2012"),
        ("din_ts70121_2024", AppProtocol.DIN70121, "din_ts70121_2024"),
        ("iso15118_2", AppProtocol.ISO15118_2, T.DEFAULT_REVISION),
        ("iso15118_20", AppProtocol.ISO15118_20, T.DEFAULT_REVISION),
        ("iso15118_2+din70121", AppProtocol.ISO15118_2 | AppProtocol.DIN70121, T.DEFAULT_REVISION),
        ("ISO15118_20+DIN70121", AppProtocol.ISO15118_20 | AppProtocol.DIN70121, T.DEFAULT_REVISION),
    ],
)
def test_firmware_versions_set_the_offer_and_the_revision(
    version: str, offer: AppProtocol, revision: str
) -> None:
    config = F.apply_firmware(CcsVehicleConfig(), version)
    assert app_protocols(config.app_protocols) == offer
    assert config.revision == revision


@pytest.mark.parametrize("version", ["2.0", "iso15118_3", "chademo", ""])
def test_unknown_firmware_is_one_line_naming_the_key(version: str) -> None:
    spec = {"protocol": "ccs", "faults": [{"type": "firmware_mismatch", "version": version}]}
    with pytest.raises(ScenarioError) as err:
        parse_scenario(spec, "bad.yaml")
    assert err.value.key == "faults[0].version" and "unknown CCS firmware" in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_pins_and_offers_are_refused() -> None:
    with pytest.raises(ScenarioError, match="unknown pin for CCS"):
        parse_scenario({"protocol": "ccs", "faults": [{"type": "worn_pins", "pin": "d1"}]}, "bad.yaml")
    with pytest.raises(ScenarioError, match="unknown application protocol"):
        parse_scenario({"protocol": "ccs", "vehicle": {"app_protocols": "din70121+iso9999"}}, "bad.yaml")


def test_new_reasons_are_in_the_tables() -> None:
    assert {"invalid_frame", "pp_lost"} <= EMERGENCY
    assert {"no_common_protocol", "contactor_welded"}.isdisjoint(EMERGENCY)
    for code in ("invalid_frame", "pp_lost", "no_common_protocol", "contactor_welded"):
        assert not REASONS[code].normal
    assert {"EvStatus", "EvTargets"} == set(REQUIRED)


# ---- link faults: drop, delay ---------------------------------------------------------------------------


def test_one_lost_frame_is_harmless() -> None:
    r = run([{"type": "drop_message", "message": "EvTargets", "count": 1, "at": AT_CD}])
    assert_completed(r)
    assert r.session.frames_dropped == 1 and r.result.charger_faults == []


@pytest.mark.parametrize("message", ["EvStatus", "EvTargets", "EvMaxLimits", "EvBatteryInfo"])
def test_a_vehicle_frame_lost_for_good_stops_at_the_receive_timeout(message: str) -> None:
    r = run([{"type": "drop_message", "message": message, "at": AT_CD}])
    assert_stopped(r, "can_timeout")
    assert f"{message} (0x" in r.result.cause
    assert r.stop_at - r.fault_at >= RX - CYCLE - EPS
    assert_emergency(r, within=RX)


@pytest.mark.parametrize(("duration", "stops"), [(RX - 2 * CYCLE, False), (2.0, True)])
def test_a_burst_of_lost_frames_stops_only_beyond_the_receive_timeout(duration: float, stops: bool) -> None:
    r = run([{"type": "drop_message", "message": "EvStatus", "duration": duration, "at": AT_CD}])
    if stops:
        assert_stopped(r, "can_timeout")
        assert_emergency(r, within=RX)
    else:
        assert_completed(r)


def test_a_frame_never_received_times_out_one_second_after_the_first_one() -> None:
    r = run([{"type": "drop_message", "message": "EvMaxLimits"}])
    assert_stopped(r, "can_timeout", "cp_b_pwm", 1)
    assert "EvMaxLimits (0x512) missing" in r.result.cause
    assert r.result.duration < 2.0


@pytest.mark.parametrize(("delay", "stops"), [(0.5, False), (1.5, True)])
def test_late_vehicle_frames_stop_only_beyond_the_receive_timeout(delay: float, stops: bool) -> None:
    r = run([{"type": "delay_message", "message": "EvTargets", "delay": delay, "at": AT_CD}])
    if stops:
        assert_stopped(r, "can_timeout")
        assert_emergency(r, within=RX)
    else:
        assert_completed(r)


def test_lost_current_demand_answers_end_the_session_from_the_vehicle_with_evready_false() -> None:
    r = run([{"type": "drop_message", "message": "EvsePresentValues", "at": AT_CD}])
    assert_stopped(r, "ev_not_ready")
    assert r.session.vehicle_end is not None and "late" in r.session.vehicle_end.cause
    stop_req = next(
        (t, v)
        for t, v in r.decoded("EvStatus", Role.VEHICLE)
        if v["EvRequest"] == Request.POWER_DELIVERY_STOP
    )
    assert stop_req[1]["EvReady"] == 0 and stop_req[1]["EvChargingComplete"] == 0
    last_answer = max(t for t, _ in r.decoded("EvsePresentValues") if t < r.fault_at)
    budget = T.limit("current_demand_response")
    assert budget < stop_req[0] - last_answer <= budget + CYCLE + EPS
    assert "EVReady false" in r.result.cause


# ---- link faults: corrupt, wrong DLC, replay, duplicate, bus-off ----------------------------------------


def test_a_corrupted_current_request_is_clamped_to_the_limits() -> None:
    r = run(
        [{"type": "corrupt_signal", "message": "EvTargets", "signal": "EvTargetCurrent", "mode": "set",
          "value": 900, "at": AT_CD}],
        vehicle={"soc": 60, "target_soc": 62, "max_current": 110},
        charger={"max_current": 90},
    )  # fmt: skip
    assert_completed(r)
    asked = [v["EvTargetCurrent"] for t, v in r.decoded("EvTargets") if t >= r.fault_at]
    assert asked and min(asked) == pytest.approx(900)
    assert r.result.peak_current <= 90 + EPS
    assert r.current_after(r.fault_at) == pytest.approx(90, abs=0.1)


def test_a_corrupted_ev_maximum_caps_the_current() -> None:
    r = run(
        [{"type": "corrupt_signal", "message": "EvMaxLimits", "signal": "EvMaxCurrent", "mode": "set",
          "value": 45}],
    )  # fmt: skip
    assert_completed(r)
    assert r.result.peak_current <= 45 + EPS


@pytest.mark.parametrize(
    ("bit", "reason"),
    [(0, "ev_ress_temperature_inhibit"), (2, "ev_ress_malfunction"), (3, "ev_error_reserved")],
)
def test_a_flipped_error_code_bit_stops_as_that_error(bit: int, reason: str) -> None:
    r = run([{"type": "corrupt_signal", "message": "EvStatus", "signal": "EvErrorCode", "mode": "bitflip",
              "bit": bit, "at": AT_CD}])  # fmt: skip
    assert_stopped(r, reason)
    assert_error_stop(r, within=0.0)  # acted on in the frame that carried it


@pytest.mark.parametrize(
    ("message", "signal", "mode"),
    [
        ("EvTargets", "EvTargetCurrent", "not_available"),
        ("EvTargets", "EvTargetVoltage", "out_of_range"),
        ("EvStatus", "EvRequest", "not_available"),
        ("EvStatus", "EvReady", "not_available"),
        ("EvStatus", "EvReady", "out_of_range"),
        ("EvStatus", "EvSoc", "out_of_range"),
        ("EvStatus", "EvErrorCode", "not_available"),
    ],
)
def test_sna_or_out_of_range_where_a_value_is_needed_makes_the_frame_unusable(
    message: str, signal: str, mode: str
) -> None:
    r = run([{"type": "corrupt_signal", "message": message, "signal": signal, "mode": mode, "at": AT_CD}])
    assert_stopped(r, "invalid_frame")
    assert f"{message} (0x" in r.result.cause and signal in r.result.cause
    assert r.stop_at - r.fault_at >= RX - CYCLE - EPS
    assert_emergency(r, within=RX)
    # meanwhile the charger kept the last good values: never 0 A from an SNA target, never a jump
    before = r.current_after(r.fault_at - 2 * CYCLE)
    assert before > 10.0


def test_an_sna_field_the_stage_does_not_need_is_harmless() -> None:
    r = run([{"type": "corrupt_signal", "message": "EvBatteryInfo", "signal": "EvEnergyRequest",
              "mode": "not_available", "at": AT_CD}])  # fmt: skip
    assert_completed(r)


def test_a_stuck_alive_counter_is_a_hung_controller() -> None:
    r = run([{"type": "corrupt_signal", "message": "EvStatus", "signal": "EvAliveCounter", "mode": "set",
              "value": 7, "at": AT_CD}])  # fmt: skip
    assert_stopped(r, "alive_counter_frozen")
    assert_emergency(r, within=T.limit("alive_timeout"))


def test_a_wrong_dlc_frame_is_not_received() -> None:
    r = run([{"type": "wrong_dlc", "message": "EvTargets", "dlc": 5, "at": AT_CD}])
    assert_stopped(r, "invalid_frame")
    assert "DLC 5, the DBC says 8" in r.result.cause
    assert_emergency(r, within=RX)
    charger = r.session.charger
    assert isinstance(charger, CcsCharger) and charger.bad_frames >= 9


def test_stale_status_frames_are_caught_by_the_alive_counter_and_the_sequence() -> None:
    r = run([{"type": "replay_message", "message": "EvStatus", "age": 5, "at": {"stage": CD, "after": 1}}])
    assert_stopped(r, "sequence_error")
    assert "alive_counter_jump" in r.result.charger_faults
    assert r.shown(Stage.ERROR)[1]["EvseResponseCode"] == ResponseCode.FAILED_SEQUENCE_ERROR
    assert r.stop_at - r.fault_at <= CYCLE + EPS


def test_replayed_targets_from_the_same_stage_stay_within_the_limits() -> None:
    r = run([{"type": "replay_message", "message": "EvTargets", "age": 3, "at": AT_CD}])
    assert_completed(r)
    assert r.result.peak_current <= 125 + EPS


def test_duplicated_frames_are_harmless() -> None:
    r = run([{"type": "duplicate_message", "message": "EvStatus", "copies": 2, "at": AT_CD}])
    assert_completed(r)
    charger = r.session.charger
    assert isinstance(charger, CcsCharger)
    assert charger.alive.repeats >= 100  # counted, tolerated
    assert r.result.charger_faults == []


def test_bus_off_beyond_the_receive_timeout_is_an_emergency_stop_and_nothing_resumes() -> None:
    r = run([{"type": "bus_off", "duration": 1.5, "at": AT_CD}])
    assert_stopped(r, "can_timeout")
    assert "no vehicle frame for 1 s" in r.result.cause
    assert_emergency(r, within=RX)
    recovered = r.fault_at + 1.5
    after = [v for t, v in r.decoded("EvseStatus", Role.CHARGER, as_sent=True) if t >= recovered - EPS]
    assert all(v["EvseStage"] in (NUMBER[Stage.UNLOCK], NUMBER[Stage.DONE]) for v in after)
    assert r.current_after(recovered) <= T.CURRENT_OFF_A
    # the EV gave up on its side too (its 0.25 s CurrentDemand budget ran out first)
    assert r.session.vehicle_end is not None and "late" in r.session.vehicle_end.cause


def test_a_short_bus_off_breaks_the_current_demand_budget_of_the_vehicle() -> None:
    r = run([{"type": "bus_off", "duration": 0.5, "at": AT_CD}])
    assert_stopped(r, "ev_not_ready")
    assert "alive_counter_jump" in r.result.charger_faults  # the frames lost on the bus, flagged


# ---- firmware: supportedAppProtocol and the revision ------------------------------------------------------


def test_an_iso15118_only_vehicle_is_refused_at_session_setup() -> None:
    r = run([{"type": "firmware_mismatch", "version": "iso15118_20"}])
    assert_stopped(r, "no_common_protocol", "session_setup", 3)
    assert "iso15118_20" in r.result.cause and "DIN 70121 only" in r.result.cause
    status = [v for _, v in r.decoded("EvseStatus", Role.CHARGER)]
    assert all(v["EvseProtocol"] == Protocol.NOT_NEGOTIATED for v in status)
    assert not any(v["EvseStage"] == NUMBER[Stage.SESSION_SETUP] for v in status)
    refused = next(v for v in status if v["EvseStage"] == NUMBER[Stage.ERROR])
    assert refused["EvseResponseCode"] == ResponseCode.FAILED
    assert r.result.duration < 5.0 and r.result.energy_kwh == 0.0


@pytest.mark.parametrize("version", ["iso15118_2+din70121", "din70121", "din70121_2012"])
def test_a_vehicle_that_also_offers_din_charges_with_din(version: str) -> None:
    r = run([{"type": "firmware_mismatch", "version": version}])
    assert_completed(r)
    agreed = {v["EvseProtocol"] for t, v in r.decoded("EvseStatus", Role.CHARGER) if v["EvseStage"] == 11}
    assert agreed == {Protocol.DIN70121}


@pytest.mark.parametrize(("version", "completes"), [("din_ts70121_2024", True), ("din70121_2012", False)])
def test_each_revision_keeps_its_own_current_demand_budget(version: str, completes: bool) -> None:
    """A 0.3 s late CurrentDemandRes: within the 0.5 s of DIN TS 2024, beyond the 0.25 s of DIN 2012."""
    r = run([
        {"type": "firmware_mismatch", "version": version},
        {"type": "delay_message", "message": "EvsePresentValues", "delay": 0.3, "at": AT_CD},
    ])  # fmt: skip
    if completes:
        assert_completed(r)
    else:
        assert_stopped(r, "ev_not_ready")


# ---- worn pins -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pin", "mode", "reason", "stage"),
    [
        ("cp", "out_of_band", "cp_invalid", "plugged_in"),
        ("cp", "bouncing", "cp_state_a", "cp_b_pwm"),
        ("pp", "out_of_band", "pp_invalid", "plugged_in"),
        ("pp", "bouncing", "pp_invalid", "plugged_in"),
        ("diode", "out_of_band", "diode_fault", "cp_b_pwm"),
        ("diode", "bouncing", "diode_fault", "cp_b_pwm"),
    ],
)
def test_a_worn_pin_at_plug_in_stops_at_step_1(pin: str, mode: str, reason: str, stage: str) -> None:
    r = run(
        [{"type": "worn_pins", "pin": pin, "mode": mode, **({"period": 0.07} if mode == "bouncing" else {})}]
    )
    assert_stopped(r, reason, stage, 1)
    assert r.result.duration < 2.0 and r.result.energy_kwh == 0.0
    shown = {int(v["EvseStage"]) for _, v in r.decoded("EvseStatus", Role.CHARGER, as_sent=True)}
    assert shown <= {1, 2, 15, 16, 18, 19}  # never past physical connection detection


@pytest.mark.parametrize(
    ("pin", "mode", "reason"),
    [
        ("cp", "out_of_band", "cp_invalid"),
        ("cp", "bouncing", "cp_state_a"),
        ("pp", "out_of_band", "pp_lost"),
        ("pp", "bouncing", "pp_lost"),
        ("diode", "out_of_band", "diode_fault"),
        ("diode", "bouncing", "diode_fault"),
    ],
)
def test_a_worn_pin_while_charging_is_an_emergency_stop(pin: str, mode: str, reason: str) -> None:
    period = 0.07
    r = run([{"type": "worn_pins", "pin": pin, "mode": mode, "at": AT_CD,
              **({"period": period} if mode == "bouncing" else {})}])  # fmt: skip
    assert_stopped(r, reason)
    # read at the next cycle (a bounce: at the first cycle that sees the contact open)
    assert_emergency(r, within=(3 * period if mode == "bouncing" else CYCLE))


def test_an_invalid_pp_with_the_output_off_still_stops_through_error() -> None:
    bench = walk_to(Stage.CHARGE_PARAMETER_DISCOVERY)
    bench.harness.overrides[F.PINS["pp"].line] = F.PINS["pp"].bad
    bench.step_to(bench.now + CYCLE)
    assert bench.stage is Stage.ERROR and bench.charger.stop_code() == "pp_invalid"


# ---- plant faults ---------------------------------------------------------------------------------------


def test_insulation_dropping_before_the_cable_check_fails_it() -> None:
    r = run([{"type": "insulation_drop", "value": 30_000}])
    assert_stopped(r, "isolation_fault", "cable_check", 2)
    isolation = [v["EvseIsolationStatus"] for _, v in r.decoded("EvseStatus", Role.CHARGER)]
    assert IsolationStatus.FAULT in isolation and IsolationStatus.VALID not in isolation
    assert r.result.energy_kwh == 0.0


def test_insulation_dropping_while_charging_stops_through_the_imd() -> None:
    r = run([{"type": "insulation_drop", "value": 30_000, "at": AT_CD}])
    assert_stopped(r, "isolation_fault")
    assert_error_stop(r, within=CYCLE)
    assert r.shown(Stage.ERROR)[1]["EvseIsolationStatus"] == IsolationStatus.FAULT


def test_welded_contactors_end_the_session_with_a_welding_fault_not_a_hang() -> None:
    r = run([{"type": "contactor_welded", "at": AT_CD}])
    assert_stopped(r, "contactor_welded")
    assert "output_not_discharged" in r.result.charger_faults
    t_stop = next(
        t for t, v in r.decoded("EvStatus", Role.VEHICLE) if v["EvRequest"] == Request.POWER_DELIVERY_STOP
    )
    # WeldingDetection: output off, yet EVSEPresentVoltage stays at the battery's
    welding = [(t, v) for t, v in r.decoded("EvseStatus", Role.CHARGER) if v["EvseStage"] == 13]
    assert welding
    present = [
        float(v["EvsePresentVoltage"]) for t, v in r.decoded("EvsePresentValues") if t >= welding[0][0]
    ]
    assert min(present) > T.SAFE_V
    # the vehicle's welding check (2 s) reports it with its SessionStop
    report = next(v for t, v in r.decoded("EvStatus", Role.VEHICLE) if v["EvRequest"] == Request.SESSION_STOP)
    assert report["EvContactorState"] == ContactorState.ERROR
    # never unlocked; over within the welding check + the unlock wait (plus a few cycles), not the time limit
    assert r.session.harness.line("lock") == 1.0
    assert r.result.duration - t_stop <= 2 * T.limit("vehicle_welding") + T.limit("unlock_wait") + 1.0


def test_contactors_welded_before_the_session_are_found_at_cable_check_request() -> None:
    r = run([{"type": "contactor_welded"}])
    assert_stopped(r, "contactor_welded", "cable_check", 2)
    assert "CableCheckReq" in r.result.cause
    assert r.result.energy_kwh == 0.0 and r.result.duration < 20.0


def test_the_charger_checks_the_present_voltage_itself_when_the_ev_says_open() -> None:
    """An EV that does not judge its check (reports Open): the SECC sees the live inlet at SessionStop."""
    bench = charging(amps=60.0, settle=3.0)
    ev = bench.ev
    ev.set(EvTargetCurrent=0.0, EvChargingComplete=1)
    ev.request(Request.POWER_DELIVERY_STOP)
    bench.until_stage(Stage.POWER_DELIVERY_STOP, within=1.0)
    bench.run_until(lambda: bench.charger.power.current <= T.CURRENT_OFF_A, within=2.0)
    bench.s2(False)
    bench.contactors(False)
    bench.harness.welded = True  # commanded open, stuck closed
    ev.request(Request.WELDING_DETECTION)
    bench.until_stage(Stage.WELDING_DETECTION, within=1.0)
    bench.step_to(bench.now + 2.0)
    assert bench.samples[-1].voltage == pytest.approx(BATTERY_V)
    ev.request(Request.SESSION_STOP)
    ended = bench.finish()
    assert (ended.reason, ended.stage) == ("contactor_welded", "current_demand")
    assert bench.charger.evse.locked


# ---- battery faults -------------------------------------------------------------------------------------


def test_cell_over_voltage_stops_on_the_bms_error_code() -> None:
    r = run([{"type": "cell_over_voltage", "group": 5, "at": AT_CD}])
    assert_stopped(r, "ev_charging_voltage_out_of_range")
    codes = [v["EvErrorCode"] for t, v in r.decoded("EvStatus", Role.VEHICLE) if t >= r.fault_at]
    assert EvErrorCode.FAILED_CHARGING_VOLTAGE_OUT_OF_RANGE in codes
    # the BMS sees it at its next pack step (1 s), the charger in the frame that carries the flag
    assert_error_stop(r, within=1.0 + CYCLE)


def test_temperature_runaway_stops_on_the_bms_error_code() -> None:
    r = run([{"type": "temperature_runaway", "value": 30_000, "at": AT_CD}],
            vehicle={"soc": 40, "temperature": 40, "ambient": 40})  # fmt: skip
    assert_stopped(r, "ev_ress_temperature_inhibit")
    assert r.result.max_temperature >= 55.0
    assert r.result.duration < 600


def test_an_unbalanced_pack_completes_early() -> None:
    r = run([{"type": "cell_imbalance", "group": 2, "value": 30, "at": {"stage": CD, "after": 5}}],
            vehicle={"soc": 50, "target_soc": 80}, time_limit=3600)  # fmt: skip
    assert_completed(r)
    assert r.result.soc_end < 75.0
    final = next(
        v for t, v in r.decoded("EvStatus", Role.VEHICLE) if v["EvRequest"] == Request.POWER_DELIVERY_STOP
    )
    assert final["EvChargingComplete"] == 1 and final["EvReady"] == 1
    assert r.session.vehicle_end is not None and "charge cutoff" in r.session.vehicle_end.cause


# ---- charger faults -------------------------------------------------------------------------------------


def test_a_power_stage_fault_is_a_charger_malfunction() -> None:
    r = run([{"type": "power_stage_fault", "at": AT_CD}])
    assert_stopped(r, "charger_malfunction")
    assert r.result.origin == "charger"
    assert_error_stop(r, within=0.0, status=EvseStatusCode.MALFUNCTION)


def test_the_operator_stop_ramps_down_and_the_vehicle_ends_normally() -> None:
    r = run([{"type": "operator_stop", "at": AT_CD}])
    assert_stopped(r, "operator_stop")
    assert r.stop_at == pytest.approx(r.fault_at)
    t, v = r.shown(Stage.POWER_DELIVERY_STOP)
    assert t <= r.stop_at + CYCLE + EPS
    assert (v["EvseNotification"], v["EvseStatusCode"]) == (
        Notification.STOP_CHARGING,
        EvseStatusCode.SHUTDOWN,
    )
    assert r.current_after(r.stop_at + STOP_CURRENT) <= T.CURRENT_OFF_A
    assert r.stages("vehicle")[-4:] == ["power_delivery_stop", "welding_detection", "session_stop", "done"]
    assert r.stages()[-2:] == ["unlock", "done"]


def test_a_condition_triggered_operator_stop_fires_when_the_condition_first_holds() -> None:
    r = run(
        [{"type": "operator_stop", "at": {"condition": "soc > 61"}}], vehicle={"soc": 60, "target_soc": 80}
    )
    assert_stopped(r, "operator_stop")
    assert 61.0 < r.result.soc_end < 61.3


# ---- charger rules on the scripted bench -------------------------------------------------------------------


def test_an_unusable_target_keeps_the_last_good_one_until_the_receive_timeout() -> None:
    bench = charging(amps=80.0, settle=5.0)
    t0 = bench.now
    bench.ev.set(EvTargetCurrent=6553.5)  # SNA
    bench.step_to(t0 + RX - 2 * CYCLE)
    assert bench.stage is Stage.CURRENT_DEMAND
    assert bench.charger.power.current == pytest.approx(80.0, abs=0.5)
    bench.step_to(t0 + RX + CYCLE)
    assert bench.charger.stop_code() == "invalid_frame"
    assert bench.stage in (Stage.EMERGENCY_STOP, Stage.UNLOCK)


def test_the_offer_on_the_plc_link_decides_the_protocol() -> None:
    bench = walk_to(Stage.CP_B_PWM)
    bench.harness.set(APP_PROTOCOL_LINE, int(AppProtocol.ISO15118_2))
    bench.ev.request(Request.SESSION_SETUP)
    bench.step_to(bench.now + 2 * CYCLE)
    assert bench.charger.stop_code() == "no_common_protocol" and bench.stage is Stage.ERROR
    assert bench.charger.stop_stage is Stage.SESSION_SETUP
    assert bench.last("EvseStatus")["EvseResponseCode"] == ResponseCode.FAILED


def test_without_an_offer_on_the_link_din_is_assumed() -> None:
    bench = walk_to(Stage.SESSION_SETUP)
    assert bench.charger.protocol is Protocol.DIN70121


def test_a_welded_battery_on_the_inlet_at_cable_check_request_stops_before_the_test() -> None:
    bench = walk_to(Stage.CP_STATE_C)
    bench.harness.welded = True
    bench.harness.battery_voltage = BATTERY_V
    bench.until_stage(Stage.ERROR, within=1.0)
    assert bench.charger.stop_code() == "contactor_welded"
    assert bench.charger.stop_stage is Stage.CABLE_CHECK
    assert bench.charger.power.voltage < 1.0  # the insulation test never ramped


def test_pp_lost_only_with_the_output_live() -> None:
    bench = charging(amps=50.0, settle=2.0)
    bench.harness.overrides[F.PINS["pp"].line] = 0.0
    bench.step_to(bench.now + CYCLE)
    assert bench.charger.stop_code() == "pp_lost" and bench.stage in (Stage.EMERGENCY_STOP, Stage.UNLOCK)


# ---- the shipped catalogue ---------------------------------------------------------------------------------

CCS_SCENARIOS = sorted(scenarios_dir().glob("ccs_*.yaml"))


def test_at_least_twenty_ccs_scenarios_cover_every_catalogue_kind() -> None:
    assert len(CCS_SCENARIOS) >= 20
    kinds: set[str] = set()
    modes: set[tuple[str, str]] = set()
    for path in CCS_SCENARIOS:
        sc = load_scenario(path)
        assert sc.protocol == "ccs"
        text = path.read_text(encoding="utf-8")
        assert text.startswith("#"), f"{path.name}: no comment header"
        assert "seed:" in text, f"{path.name}: no seed"
        for f in sc.faults:
            kinds.add(f.type)
            if f.mode:
                modes.add((f.type, f.mode))
    assert kinds == set(FAULTS)
    assert {("corrupt_signal", m) for m in ("set", "bitflip", "out_of_range", "not_available")} <= modes
    assert {("worn_pins", "out_of_band"), ("worn_pins", "bouncing")} <= modes


def test_the_catalogue_has_a_condition_trigger_and_the_optional_checks() -> None:
    scs = [load_scenario(p) for p in CCS_SCENARIOS]
    assert any(f.at.condition for sc in scs for f in sc.faults)
    for check in ("max_current", "stop_within", "energy_min_kwh", "energy_max_kwh"):
        assert any(getattr(sc.expect, check) is not None for sc in scs), check
    drops = [f for sc in scs for f in sc.faults if f.type == "drop_message"]
    assert {f.count is not None for f in drops} == {True, False}  # once, and for good
    assert any(f.duration is not None for f in drops)  # for a duration
    assert any(f.duration is not None for sc in scs for f in sc.faults if f.type == "bus_off")
