"""Hostile-vehicle fuzzing: the CHAdeMO charger keeps its safety invariants; the fuzzer catches
deliberately broken chargers and minimises their counterexamples into replayable case files."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from charger_sim.cli.main import main
from charger_sim.codec import load_dbc
from charger_sim.errors import ExitCode, ScenarioError
from charger_sim.fuzz import Case, Step, Target, replay, run_campaign, run_session
from charger_sim.fuzz.campaign import minimise
from charger_sim.plant.harness import Harness
from charger_sim.protocols.chademo.charger import ChademoCharger
from charger_sim.protocols.chademo.states import Stage

CODEC = load_dbc("chademo")
M100, M101, M102 = (
    CODEC.message(n) for n in ("VehicleChargeLimits", "VehicleChargeTime", "VehicleChargeControl")
)
V102: dict[str, int] = {s.name: 0 for s in M102.signals} | {
    "ProtocolNumberEV": 2,
    "TargetBatteryVoltage": 410,
}


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    code = main(list(argv), console=Console(file=buf, width=200, color_system=None))
    return code, buf.getvalue()


def frames(t: float, **fields: int) -> list[Step]:
    """The vehicle's three frames at ``t`` (0x102 fields overridable)."""
    v100 = {
        "MinChargeCurrent": 6,
        "MinBatteryVoltage": 0,
        "MaxBatteryVoltage": 435,
        "ChargedRateRefConst": 100,
    }
    v101 = {"MaxChargeTime10s": 0xFF, "MaxChargeTimeMin": 90, "EstChargeTimeMin": 0, "RatedCapacity": 40.0}
    return [
        Step(t, "frame", frame_id=0x100, data=M100.encode(v100)),
        Step(t, "frame", frame_id=0x101, data=M101.encode(v101)),
        Step(t, "frame", frame_id=0x102, data=M102.encode({**V102, **fields})),
    ]


def charging_prefix(until: float = 11.0) -> list[Step]:
    """A polite Leaf from plug-in to charging at 100 A (no reaction needed: fixed times)."""
    steps: list[Step] = [Step(1.0, "line", name="k", value=1.0)]
    t = 0.2
    while t < until:
        fields = {"ContactorOpen": 1}
        if t >= 1.0:
            fields["ChargingEnabled"] = 1
        if t >= 7.0:
            fields["ContactorOpen"] = 0
        if t >= 9.0:
            fields["ChargeCurrentRequest"] = 100
        if abs(t - 7.0) < 1e-9:
            steps += [
                Step(t, "plant", name="battery_voltage", value=380.0),
                Step(t, "plant", name="contactors_closed", value=1.0),
            ]
        steps += frames(t, **fields)
        t = round(t + 0.1, 6)
    return steps


def run_steps(steps: list[Step], core_factory: Any = None, end_silence: float = 60.0) -> Target:
    target = Target("chademo", core_factory=core_factory)
    target.start()
    for step in steps:
        target.apply(step)
        if target.broken:
            break
    target.finish((steps[-1].t if steps else 0.0) + end_silence)
    return target


# --- the real charger ------------------------------------------------------------------------------


def test_polite_prefix_reaches_charging_and_ends_safely() -> None:
    target = Target("chademo")
    target.start()
    for step in charging_prefix():
        target.apply(step)
    core: Any = target.core
    assert core.stage is Stage.CHARGING and target.output_current() > 10
    target.finish(80.0)
    assert target.violations == []
    assert target.stage() == "done"  # silence -> can_timeout -> stop -> welding timeout -> unlock


def test_small_campaign_finds_no_violation() -> None:
    report = run_campaign("chademo", 15_000, seed=11)
    assert report.frames >= 15_000 and report.sessions > 5
    assert (report.violations, report.exceptions) == (0, 0), report.first_violation
    assert report.stages_reached["charging"] > 0  # the campaign gets deep, not only noise


_any_frame = st.builds(
    lambda fid, data, ext: Step(0.0, "frame", frame_id=fid, data=data, extended=ext),
    st.one_of(st.sampled_from([0x100, 0x101, 0x102, 0x108, 0x109]), st.integers(0, 0x7FF)),
    st.binary(max_size=8),
    st.just(False),
) | st.builds(
    lambda fid, data: Step(0.0, "frame", frame_id=fid, data=data, extended=True),
    st.integers(0, 0x1FFFFFFF),
    st.binary(max_size=8),
)
_valid_102 = st.builds(
    lambda req, en, fault, shift, contactor, stop: Step(
        0.0,
        "frame",
        frame_id=0x102,
        data=M102.encode(
            {
                **V102,
                "ChargeCurrentRequest": req,
                "ChargingEnabled": en,
                fault: 1,
                "ShiftPosition": shift,
                "ContactorOpen": contactor,
                "StopBeforeCharging": stop,
            }
        ),
    ),
    st.integers(0, 255),
    st.integers(0, 1),
    st.sampled_from(
        ["DynamicControlLegacy", "FaultOverVoltage", "FaultHighTemperature", "ChargingSystemFault"]
    ),
    st.integers(0, 1),
    st.integers(0, 1),
    st.integers(0, 1),
)
_harness = st.one_of(
    st.builds(lambda v: Step(0.0, "line", name="k", value=float(v)), st.integers(0, 1)),
    st.builds(
        lambda name, v: Step(0.0, "plant", name=name, value=v),
        st.sampled_from(["contactors_closed", "connected", "welded"]),
        st.sampled_from([0.0, 1.0]),
    ),
    st.builds(lambda v: Step(0.0, "plant", name="battery_voltage", value=v), st.floats(0, 1200)),
    st.builds(lambda name: Step(0.0, "operator", name=name), st.sampled_from(["stop", "power_fault"])),
)
_hostile = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.01, 0.1, 0.1, 0.5, 1.05, 3.0]),
        st.one_of(_any_frame, _valid_102, _harness),
    ),
    max_size=40,
)


def _timed(start: float, items: list[tuple[float, Step]]) -> list[Step]:
    out, t = [], start
    for dt, step in items:
        t = round(t + dt, 6)
        out.append(dataclasses.replace(step, t=t))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=_hostile)
def test_any_hostile_input_from_plug_in_keeps_the_invariants(items: list[tuple[float, Step]]) -> None:
    target = run_steps(_timed(0.0, items))
    assert target.violations == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=_hostile)
def test_any_hostile_input_while_charging_keeps_the_invariants(items: list[tuple[float, Step]]) -> None:
    prefix = charging_prefix()
    target = run_steps(prefix + _timed(prefix[-1].t, items))
    assert target.violations == []


# --- regressions found by the fuzzer ---------------------------------------------------------------


@pytest.mark.parametrize("stage_at", [3.0, 6.5, 8.0], ids=["insulation_test", "contactors", "precharge"])
def test_k_opening_before_charging_stops_the_charger(stage_at: float) -> None:
    """§8: k opening withdraws the permission in every stage after it was given (was: only charging)."""
    steps = [s for s in charging_prefix(until=stage_at)]
    steps.append(Step(stage_at, "line", name="k", value=0.0))
    target = Target("chademo")
    target.start()
    for step in steps:
        target.apply(step)
    core: Any = target.core
    before = core.stage
    target.run_until(stage_at + 0.1 + 1e-6)
    assert before in (Stage.INSULATION_TEST, Stage.CONTACTORS, Stage.PRECHARGE)
    assert core.stage in (Stage.STOPPING, Stage.WELDING_CHECK, Stage.SHUTDOWN)
    assert core.stop_reason.code == "vehicle_stop"
    assert target.violations == []


# --- the fuzzer catches broken chargers ------------------------------------------------------------


class IgnoresFaults(ChademoCharger):
    def _on_102(self, now: float) -> None:
        if self._ctl is not None and self._ctl.fault is not None:
            self._ctl = dataclasses.replace(self._ctl, fault=None)
        super()._on_102(now)


class OverDelivers(ChademoCharger):
    def _on_102(self, now: float) -> None:
        super()._on_102(now)
        if self.stage is Stage.CHARGING:
            self.power.set_current(self.config.max_current)


class DeafToCanLoss(ChademoCharger):
    def _on_deadline(self, name: str, now: float) -> None:
        if name != "can_loss":
            super()._on_deadline(name, now)


class CrashesOnShortFrames(ChademoCharger):
    def receive(self, frame: Any, now: float) -> list[Any]:
        if frame.arbitration_id == 0x102 and len(frame.data) == 3:
            raise KeyError("boom")
        return super().receive(frame, now)


def _factory(cls: type[ChademoCharger]) -> Any:
    return lambda config, harness, codec: cls(config, harness, codec)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (IgnoresFaults, "no_stop"),
        (OverDelivers, "above_request"),
        (DeafToCanLoss, "can_loss_missed"),
        (CrashesOnShortFrames, "exception:KeyError"),
    ],
)
def test_broken_chargers_are_caught(cls: type[ChademoCharger], code: str) -> None:
    for seed in range(300):
        outcome = run_session("chademo", seed, core_factory=_factory(cls))
        if any(v.code == code for v in outcome.violations):
            return
    pytest.fail(f"{cls.__name__} not caught by {code}")


def test_counterexample_is_minimised_and_replays(tmp_path: Path) -> None:
    factory = _factory(CrashesOnShortFrames)
    steps = [*charging_prefix(until=2.0), Step(2.0, "frame", frame_id=0x102, data=b"\x01\x02\x03")]
    steps += charging_prefix(until=4.0)[len(steps) :]
    case = Case("chademo", {}, steps, 10.0)
    assert any(v.code == "exception:KeyError" for v in replay(case, core_factory=factory))
    small = minimise(case, "exception:KeyError", core_factory=factory, budget=20.0)
    assert [(s.frame_id, s.data) for s in small.steps] == [(0x102, b"\x01\x02\x03")]
    path = tmp_path / "case.fuzz.yaml"
    small.write(path)
    again = Case.load(path)
    assert again.steps == small.steps
    assert [v.code for v in replay(again, core_factory=factory)] == ["exception:KeyError"]
    assert replay(again) == []  # the real charger ignores the short frame


# --- CLI -------------------------------------------------------------------------------------------


def test_fuzz_json_shape() -> None:
    code, out = cli("fuzz", "--protocol", "chademo", "--frames", "2000", "--seed", "3", "--json")
    assert code == ExitCode.OK
    report = json.loads(out)
    for key in ("frames", "sessions", "violations", "exceptions", "counterexample", "first_violation"):
        assert key in report
    assert report["frames"] >= 2000 and report["violations"] == 0 and report["counterexample"] is None


def test_fuzz_replay_and_bad_case_files(tmp_path: Path) -> None:
    good = tmp_path / "ok.yaml"
    Case("chademo", {}, charging_prefix(until=2.0), 5.0).write(good)
    assert cli("fuzz", "--replay", str(good))[0] == ExitCode.OK
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: charger-sim fuzz case\nprotocol: chademo\nsteps:\n  - {t: 1, frame: XYZ}\n")
    code, out = cli("fuzz", "--replay", str(bad))
    assert code == ExitCode.SCENARIO and "steps[0].frame" in out and "Traceback" not in out
    with pytest.raises(ScenarioError, match="kind"):
        (tmp_path / "x.yaml").write_text("protocol: chademo\n")
        Case.load(tmp_path / "x.yaml")
    assert cli("fuzz", "--protocol", "nope", "--frames", "10")[0] == ExitCode.USAGE


def test_target_counts_frames_and_keeps_a_harness() -> None:
    target = Target("chademo")
    assert isinstance(target.harness, Harness) and target.frames_in == 0
