"""Hostile-vehicle fuzzing of the GB/T and CCS chargers: the protocol-aware vehicles get deep, the
protocol oracles hold on the real chargers and catch deliberately broken ones, counterexamples
replay; and the regressions of what the campaigns found."""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charger_sim.bms.battery import Battery
from charger_sim.codec import load_dbc
from charger_sim.errors import ExitCode
from charger_sim.frames import Frame
from charger_sim.fuzz import Case, Step, Target, replay, run_campaign
from charger_sim.fuzz.campaign import minimise
from charger_sim.fuzz.driven import Driven, raw_of
from charger_sim.fuzz.oracles import CurrentLimit
from charger_sim.fuzz.vehicles_ccs import PACKS as CCS_PACKS
from charger_sim.fuzz.vehicles_ccs import CcsHostile
from charger_sim.fuzz.vehicles_gbt import PACKS as GBT_PACKS
from charger_sim.fuzz.vehicles_gbt import GbtHostile, HostileBms
from charger_sim.protocols.base import Core
from charger_sim.protocols.ccs.charger import CcsCharger
from charger_sim.protocols.ccs.electrical import ev_load_ohm
from charger_sim.protocols.ccs.evse import CcsChargerConfig
from charger_sim.protocols.ccs.states import Stage as CS
from charger_sim.protocols.ccs.vehicle import CcsVehicle, CcsVehicleConfig
from charger_sim.protocols.gbt.charger import GbtCharger
from charger_sim.protocols.gbt.config import GbtBmsConfig
from charger_sim.protocols.gbt.messages import charge_current
from tests.ccs_bench import ScriptedEv
from tests.ccs_bench import charging as ccs_charging
from tests.test_fuzz import cli

GBT = load_dbc("gbt27930")
CCS = load_dbc("ccs")
DEEP = {"gbt": "charging", "ccs": "current_demand"}
FAST = settings(
    max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


# ---- a polite vehicle to charging, recorded once per protocol ----------------------------------------
class PoliteGbt(GbtHostile):
    """The simulated BMS of the NCM car (BCP maximum 150 A) at 30 %, cooperative, never misbehaving."""

    def _pick_mood(self) -> tuple[str, float]:
        return "cooperative", 0.0

    def build(self, rng: random.Random) -> Core:
        pack = next(p for p in GBT_PACKS if p.chemistry == "nmc")
        bms = HostileBms(GbtBmsConfig(), Battery(pack, soc=30.0, seed=1), self.shadow, self.t.codec)
        self.bcp_max = float(bms.out.max_current)
        return bms


class PoliteCcs(CcsHostile):
    """The simulated EVCC of the 125 A hatchback at 30 %, cooperative, never misbehaving."""

    def _pick_mood(self) -> tuple[str, float]:
        return "cooperative", 0.0

    def build(self, rng: random.Random) -> Core:
        return CcsVehicle(
            CcsVehicleConfig(), Battery(CCS_PACKS[0], soc=30.0, seed=1), self.shadow, self.t.codec
        )


_POLITE: dict[str, type[Driven]] = {"gbt": PoliteGbt, "ccs": PoliteCcs}


@functools.cache
def charging_prefix(protocol: str) -> tuple[tuple[Step, ...], float]:
    """The steps of a polite vehicle from plug-in to 6 s into charging (replayed without it)."""
    target = Target(protocol)
    vehicle = _POLITE[protocol](target, random.Random(4))
    steps: list[Step] = []
    target.start()
    now, deep_at = 0.0, None
    while deep_at is None or now < deep_at + 6.0:
        target.run_until(now)
        for step in vehicle.tick(now):
            steps.append(step)
            target.apply(step)
        if deep_at is None and target.stage() == DEEP[protocol]:
            deep_at = now
        now += vehicle.next_period()
        assert now < 120.0, f"the polite {protocol} vehicle never got to {DEEP[protocol]}"
    assert target.violations == [] and target.output_current() > 60.0
    return tuple(steps), now


def run_after_prefix(protocol: str, extra: list[Step], core_factory: Any = None) -> Target:
    """The charging prefix, then ``extra`` (times relative to its end), then silence."""
    prefix, end = charging_prefix(protocol)
    target = Target(protocol, core_factory=core_factory)
    target.start()
    for step in (*prefix, *(dataclasses.replace(s, t=end + s.t) for s in extra)):
        target.apply(step)
        if target.broken:
            break
    last = end + (extra[-1].t if extra else 0.0)
    target.finish(last + target.oracle.silence)
    return target


def every(t0: float, t1: float, period: float, make: Any) -> list[Step]:
    n = round((t1 - t0) / period)
    return [make(round(t0 + k * period, 6)) for k in range(n)]


def gbt_frame(name: str, t: float, **values: Any) -> Step:
    m = GBT.message(name)
    return Step(t, "frame", frame_id=m.frame_id, data=m.encode(values), extended=True)


def gbt_flags(name: str, t: float, **on: int) -> Step:
    return gbt_frame(name, t, **{s.name: on.get(s.name, 0) for s in GBT.message(name).signals})


def ccs_frame(name: str, t: float, **values: Any) -> Step:
    m = CCS.message(name)
    return Step(t, "frame", frame_id=m.frame_id, data=m.encode(values))


def bcl(t: float, amps: float) -> Step:
    return gbt_frame("BCL", t, VoltageDemand=400.0, CurrentDemand=-amps, ChargeMode=2)


def ev_status(t: float, counter: int, **fields: int) -> Step:
    values = {
        "EvRequest": 11,
        "EvReady": 1,
        "EvChargingComplete": 0,
        "EvBulkChargingComplete": 0,
        "EvStopRequest": 0,
        "EvErrorCode": 0,
        "EvCpState": 2,
        "EvSoc": 50,
        "EvContactorState": 1,
        "EvAliveCounter": counter % 15,
    }
    return ccs_frame("EvStatus", t, **{**values, **fields})


def ev_cycle(t: float, k: int, target_a: float, max_a: float, **status: int) -> list[Step]:
    return [
        ev_status(t, k, **status),
        ccs_frame(
            "EvTargets",
            t,
            EvTargetVoltage=420.0,
            EvTargetCurrent=target_a,
            EvRemainingTimeToFullSoc=600,
            EvRemainingTimeToBulkSoc=600,
        ),
        ccs_frame("EvMaxLimits", t, EvMaxVoltage=420.0, EvMaxCurrent=max_a, EvMaxPower=6553.5),
        ccs_frame(
            "EvBatteryInfo", t, EvEnergyCapacity=40.5, EvEnergyRequest=12.1, EvFullSoc=100, EvBulkSoc=80
        ),
    ]


# ---- the real chargers -------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", ["gbt", "ccs"])
def test_small_campaign_gets_deep_without_violation(protocol: str) -> None:
    report = run_campaign(protocol, 8_000, seed=5)
    assert report.oracle == protocol and report.frames >= 8_000
    assert (report.violations, report.exceptions) == (0, 0), report.first_violation
    assert report.vehicle_exceptions == 0, report.first_vehicle_error
    assert report.stages_reached[DEEP[protocol]] >= max(1, report.sessions // 4)  # deep, not only noise


@pytest.mark.parametrize("protocol", ["gbt", "ccs"])
def test_the_polite_prefix_reaches_charging_and_ends_safely(protocol: str) -> None:
    target = run_after_prefix(protocol, [])
    assert target.violations == []
    assert target.stage() == "done"  # the vehicle falls silent: timeout, stop path, unlock


_gbt_any = st.builds(
    lambda fid, data: Step(0.0, "frame", frame_id=fid, data=data, extended=True),
    st.one_of(
        st.sampled_from([0x181056F4, 0x100956F4, 0x101956F4, 0x1CEC56F4, 0x1CEB56F4]),
        st.integers(0, 0x1FFFFFFF),
    ),
    st.binary(max_size=8),
)
_amps = st.floats(0, 400).map(lambda a: round(a, 1))
_gbt_valid = st.one_of(
    st.builds(lambda a: bcl(0.0, a), _amps),
    st.builds(lambda v: gbt_frame("BRO", 0.0, BmsReady=v), st.sampled_from([0x00, 0xAA, 0xFF])),
    st.builds(lambda f: gbt_flags("BST", 0.0, **{f: 1}), st.sampled_from(["SocTargetReached", "OtherFault"])),
    st.builds(lambda f: gbt_flags("BEM", 0.0, **{f: 1}), st.sampled_from(["TimeoutCcs", "TimeoutCst"])),
)


def _plant(name: str, value: float) -> Step:
    return Step(0.0, "plant", name=name, value=value)


_harness = st.one_of(
    st.builds(_plant, st.sampled_from(["contactors_closed", "connected"]), st.sampled_from([0.0, 1.0])),
    st.builds(_plant, st.just("battery_voltage"), st.floats(0, 1000)),
    st.builds(_plant, st.just("insulation_resistance_ohm"), st.sampled_from([0.0, 1e4, 1e6])),
    st.builds(lambda name: Step(0.0, "operator", name=name), st.sampled_from(["stop", "power_fault"])),
)
_ccs_any = st.builds(
    lambda fid, data: Step(0.0, "frame", frame_id=fid, data=data),
    st.one_of(st.sampled_from([0x510, 0x511, 0x512, 0x513]), st.integers(0, 0x7FF)),
    st.binary(max_size=8),
)


def _status(k: int, request: int, ready: int, error: int, stop: int) -> Step:
    return ev_status(0.0, k, EvRequest=request, EvReady=ready, EvErrorCode=error, EvStopRequest=stop)


_ccs_valid = st.one_of(
    st.builds(
        _status,
        st.integers(0, 14),
        st.sampled_from([11, 11, 12, 14, 6, 255]),
        st.integers(0, 3),
        st.sampled_from([0, 0, 4, 15]),
        st.integers(0, 1),
    ),
    st.builds(lambda a: ev_cycle(0.0, 0, a, 125.0)[1], st.floats(0, 600).map(lambda a: round(a, 1))),
    st.builds(lambda m: ev_cycle(0.0, 0, 50.0, m)[2], st.sampled_from([0.0, 10.0, 125.0, 6553.5])),
    st.builds(
        lambda ohm: Step(0.0, "line", name="cp_ev_ohm", value=ohm),
        st.sampled_from([ev_load_ohm(False), ev_load_ohm(True), float("inf")]),
    ),
    st.builds(lambda v: Step(0.0, "line", name="cp_short", value=v), st.sampled_from([0.0, 1.0])),
)
_DTS = st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.1, 0.3, 1.05])


def _timed(items: list[tuple[float, Step]]) -> list[Step]:
    out, t = [], 0.0
    for dt, step in items:
        t = round(t + dt, 6)
        out.append(dataclasses.replace(step, t=t))
    return out


@FAST
@given(items=st.lists(st.tuples(_DTS, st.one_of(_gbt_any, _gbt_valid, _harness)), max_size=30))
def test_gbt_any_hostile_input_while_charging_keeps_the_invariants(items: list[tuple[float, Step]]) -> None:
    assert run_after_prefix("gbt", _timed(items)).violations == []


@FAST
@given(items=st.lists(st.tuples(_DTS, st.one_of(_ccs_any, _ccs_valid, _harness)), max_size=30))
def test_ccs_any_hostile_input_while_charging_keeps_the_invariants(items: list[tuple[float, Step]]) -> None:
    assert run_after_prefix("ccs", _timed(items)).violations == []


# ---- the oracles catch broken chargers ---------------------------------------------------------------
class NoBcpCap(GbtCharger):
    """Caps the BCL demand at its own maximum only (not at the BCP maximum charge current)."""

    def _on_message(self, name: str, data: bytes, now: float) -> None:
        super()._on_message(name, data, now)
        if name == "BCL" and self.bms.get("BCL") is not None:
            demand = charge_current(self.bms["BCL"]["CurrentDemand"])
            self._demand = (min(demand, self.config.max_current), *self._demand[1:])


class DeafToBst(GbtCharger):
    def _on_bst(self, values: Any, now: float) -> None:
        return None


class NoBclWatchdog(GbtCharger):
    def _on_deadline(self, name: str, now: float) -> None:
        if name != "bcl":
            super()._on_deadline(name, now)


class IgnoresBro00(GbtCharger):
    def _on_bro(self, ready: int, now: float) -> None:
        if ready != 0x00:
            super()._on_bro(ready, now)


class IgnoresEvMax(CcsCharger):
    def _follow(self, now: float) -> None:
        self.evse.advance(now)
        self.power.set_current(min(self._ev("EvTargets", "EvTargetCurrent") or 0.0, self.config.max_current))


class DeafToEvErrors(CcsCharger):
    def _ev_refuses(self, now: float) -> bool:
        return False


class NoRxTimeout(CcsCharger):
    def _on_deadline(self, name: str, now: float) -> None:
        if not name.startswith("rx:"):
            super()._on_deadline(name, now)


class NoPause(CcsCharger):
    def _current_demand_step(self, now: float) -> None:
        self._follow(now)


class SlowStop(CcsCharger):
    """Ramps down at 20 A/s on every stop (the bug the CCS campaign found: 600 A/s from 500 A)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.power.spec = dataclasses.replace(self.power.spec, stop_slew_a_per_s=20.0)


def _ccs_cycles(t0: float, t1: float, target_a: float, max_a: float, **status: int) -> list[Step]:
    out: list[Step] = []
    for k in range(round((t1 - t0) / 0.1)):
        out += ev_cycle(round(t0 + 0.1 * k, 6), k + 3, target_a, max_a, **status)
    return out


_BROKEN: list[tuple[str, Any, str, list[Step]]] = [
    # the NCM car's BCP says 150 A; the BMS now asks 200 A
    ("gbt", NoBcpCap, "above_request", every(0.0, 4.0, 0.05, lambda t: bcl(t, 200.0))),
    ("gbt", DeafToBst, "no_stop", [gbt_flags("BST", 0.01, SocTargetReached=1)]),
    ("gbt", NoBclWatchdog, "bcl_timeout_missed", []),
    ("gbt", IgnoresBro00, "no_stop", [gbt_frame("BRO", 0.01, BmsReady=0x00)]),
    # the EV lowers its maximum to 20 A while asking 100 A: the broken charger settles at 100 A
    ("ccs", IgnoresEvMax, "above_request", _ccs_cycles(0.0, 7.0, 100.0, 20.0)),
    ("ccs", DeafToEvErrors, "no_stop", _ccs_cycles(0.0, 0.5, 50.0, 125.0, EvErrorCode=4)),
    ("ccs", NoRxTimeout, "can_timeout_missed", []),
    ("ccs", NoPause, "no_stop", [Step(0.01, "line", name="cp_ev_ohm", value=ev_load_ohm(False))]),
    ("ccs", SlowStop, "stop_current_slow", [Step(0.01, "operator", name="stop")]),
]


@pytest.mark.parametrize(
    ("protocol", "cls", "code", "steps"), _BROKEN, ids=[f"{c.__name__}-{code}" for _, c, code, _ in _BROKEN]
)
def test_broken_chargers_are_caught(protocol: str, cls: Any, code: str, steps: list[Step]) -> None:
    assert run_after_prefix(protocol, steps).violations == []  # the real charger passes the same input
    target = run_after_prefix(protocol, steps, core_factory=lambda c, h, k: cls(c, h, k))
    assert code in {v.code for v in target.violations}, [str(v) for v in target.violations]


class CrashesOnShortBhm(GbtCharger):
    def receive(self, frame: Frame, now: float) -> list[Frame]:
        if frame.arbitration_id == GBT.message("BHM").frame_id and len(frame.data) == 1:
            raise KeyError("boom")
        return super().receive(frame, now)


def test_gbt_counterexample_is_minimised_and_replays(tmp_path: Path) -> None:
    factory = lambda c, h, k: CrashesOnShortBhm(c, h, k)  # noqa: E731
    bhm = GBT.message("BHM")
    good = bhm.encode({"MaxPermissibleChargeVoltage": 426.1})
    steps = [
        Step(0.02, "frame", frame_id=bhm.frame_id, data=good, extended=True),
        Step(0.02, "plant", name="insulation_resistance_ohm", value=5e6),
        Step(0.3, "frame", frame_id=0x1CEB56F4, data=b"\x01" * 8, extended=True),
        Step(0.4, "frame", frame_id=bhm.frame_id, data=b"\xa5", extended=True),
        Step(0.5, "frame", frame_id=0x181056F4, data=b"", extended=True),
    ]
    case = Case("gbt", {}, steps, 10.0)
    assert [v.code for v in replay(case, core_factory=factory)] == ["exception:KeyError"]
    small = minimise(case, "exception:KeyError", core_factory=factory, budget=20.0)
    assert [(s.frame_id, s.data) for s in small.steps] == [(bhm.frame_id, b"\xa5")]
    path = tmp_path / "case.fuzz.yaml"
    small.write(path)
    again = Case.load(path)
    assert again.steps == small.steps and again.protocol == "gbt"
    assert [v.code for v in replay(again, core_factory=factory)] == ["exception:KeyError"]
    assert replay(again) == []  # the real charger ignores the short BHM


def test_fuzz_json_shape_for_gbt_and_ccs() -> None:
    for protocol in ("gbt", "ccs"):
        code, out = cli("fuzz", "--protocol", protocol, "--frames", "1500", "--seed", "3", "--json")
        report = json.loads(out)
        assert code == ExitCode.OK, report["first_violation"]
        for key in ("frames", "sessions", "violations", "exceptions", "counterexample", "vehicle_exceptions"):
            assert key in report
        assert report["oracle"] == protocol and report["violations"] == 0 and report["counterexample"] is None


# ---- the oracles' own rules ---------------------------------------------------------------------------
def test_current_limit_allows_one_reaction_time_and_a_ramp_down() -> None:
    limit = CurrentLimit(latency=0.1, slew=20.0, tolerance=0.1)
    limit.set(50.0, 0.0)
    assert limit.check(10.0, 0.0) == ""
    limit.set(10.0, 1.0)  # the ceiling drops: it may still rise for one reaction time ...
    assert limit.check(11.0, 1.1) == ""
    assert limit.check(12.0, 1.2) == "rose"  # ... not longer
    limit = CurrentLimit(latency=0.1, slew=20.0, tolerance=0.1)
    limit.set(100.0, 0.0)
    assert limit.check(100.0, 0.0) == ""
    limit.set(50.0, 1.0)  # 50 A above: 2.5 s of ramp plus two reaction times
    assert limit.check(90.0, 1.5) == ""
    assert limit.check(60.0, 3.6) == ""
    assert limit.check(55.0, 3.8) == "stayed"
    limit.set(20.0, 5.0)
    limit.set(80.0, 5.0)  # superseded at the same instant: in force for one reaction time
    assert limit.check(56.0, 5.1) == ""


# ---- regressions found by the campaigns ------------------------------------------------------------------
@pytest.mark.parametrize("stop", ["operator", "cp_b"])
def test_ccs_high_current_stops_within_the_stop_limit(stop: str) -> None:
    """§2, §8: <= 1 A within 300 ms of a stop from any current (was: a 600 A/s ramp, 0.67 s from 400 A)."""
    config = CcsChargerConfig(max_voltage=920.0, max_current=500.0, max_power=350_000.0)
    bench = ccs_charging(amps=400.0, settle=21.0, config=config, ev=ScriptedEv(EvMaxCurrent=500.0))
    assert bench.charger.power.current > 390.0
    if stop == "operator":
        bench.request_stop()
    else:
        bench.s2(False)
    start = bench.now
    bench.run_until(lambda: bench.stage in (CS.POWER_DELIVERY_STOP, CS.PAUSED), within=0.2)
    bench.step_to(start + 0.1 + 0.3)  # CP is sampled every cycle, then 300 ms
    assert bench.charger.power.current <= 1.0


def test_ccs_targets_without_a_voltage_are_no_request() -> None:
    """§4, §9: an EvTargets frame whose target voltage is SNA carries no CurrentDemandReq; a charger
    keeping the last good targets is right (the oracle took its current as the request: fixed)."""
    steps = _ccs_cycles(0.0, 1.0, 100.0, 125.0)
    sna_volts = CCS.message("EvTargets").encode(
        {
            "EvTargetVoltage": 6553.5,
            "EvTargetCurrent": 99.9,
            "EvRemainingTimeToFullSoc": 600,
            "EvRemainingTimeToBulkSoc": 600,
        }
    )
    steps = [s if s.frame_id != 0x511 else dataclasses.replace(s, data=sna_volts) for s in steps]
    assert run_after_prefix("ccs", steps).violations == []


@pytest.mark.parametrize("amps", [0.0, 100.0], ids=["0A", "discharge"])
def test_gbt_bcp_without_a_charge_current_allows_none(amps: float) -> None:
    """§4.2: BCP's maximum charge current caps the output; 0 A (or a discharge current) allows none
    (was: taken as "no BCP limit", so the charger followed the BCL demand, 150 A here)."""
    spec = GBT.message("BCP").signal("MaxChargeCurrent")

    class ZeroBcp(PoliteGbt):
        def build(self, rng: random.Random) -> Core:
            bms = super().build(rng)
            assert isinstance(bms, HostileBms)
            bms.payload_hook = self
            self.bcp_fault = (spec.name, raw_of(spec, amps))
            return bms

    target = Target("gbt")
    vehicle = ZeroBcp(target, random.Random(4))
    target.start()
    now = 0.0
    while now < 25.0:
        target.run_until(now)
        for step in vehicle.tick(now):
            target.apply(step)
        now += vehicle.next_period()
    assert target.stage() == "charging" and target.output_current() == 0.0
    assert target.violations == []
