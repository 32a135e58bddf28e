"""Safety invariants checked on every step of a fuzzing session, per protocol.

:class:`Oracle` holds the checks every charger core must pass (nothing escapes, never above its own
maximum current, no current without the vehicle's contactors closed, a safe terminal state after
the vehicle falls silent).  A protocol adds its own knowledge in a subclass registered in
:data:`ORACLES`: what the vehicle requests, what grants permission, which inputs oblige the charger
to stop and how fast, how long each stage may last.  Protocols without one get the generic checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import DecodeError
from ..protocols.chademo import timing as CT
from ..protocols.chademo.states import Stage as CS
from .script import Step

if TYPE_CHECKING:
    from .target import Target

EPS = 1e-6
SILENCE_TO_SAFE_S = 60.0  # after the vehicle falls silent, the charger must be safe within this


class Oracle:
    """Generic invariants (any charger core)."""

    name = "generic"
    silence = SILENCE_TO_SAFE_S  # s of vehicle silence after which the charger must be safe and done

    def __init__(self, target: Target) -> None:
        self.t = target
        self.core = target.core
        self.max_current = float(getattr(target.config, "max_current", 0.0) or 0.0)

    def before(self, step: Step, now: float) -> None:
        """Called before ``step`` is applied (the core has not seen it yet)."""

    def check(self, now: float) -> None:
        current = self.t.output_current()
        if self.max_current and current > self.max_current + EPS:
            self.t.violate(
                "above_charger_max", f"output {current:.3f} A > charger maximum {self.max_current:g} A"
            )

    def final(self, now: float) -> None:
        """The vehicle has been silent for a while: the charger must be in a terminal safe state."""
        current = self.t.output_current()
        if current > EPS:
            self.t.violate(
                "not_safe_at_end", f"still {current:.3f} A after {SILENCE_TO_SAFE_S:g} s of silence"
            )
        final = self.t.info.final_stage
        stage = getattr(self.core, "stage", None)
        if final is not None and stage is not None and stage != final and not self.core.finished:
            self.t.violate("not_terminal", f"stage {self.t.stage()} after {SILENCE_TO_SAFE_S:g} s of silence")


# ---- CHAdeMO ---------------------------------------------------------------------------------------
_ACTIVE = frozenset(
    {CS.WAKE_UP, CS.NEGOTIATION, CS.INSULATION_TEST, CS.CONTACTORS, CS.PRECHARGE, CS.CHARGING}
)
_RELAYS = frozenset({CS.INSULATION_TEST, CS.CONTACTORS, CS.PRECHARGE, CS.CHARGING})
_STOP_PATH = frozenset({CS.STOPPING, CS.WELDING_CHECK, CS.SHUTDOWN, CS.DONE})
_D2_STAGES = frozenset({CS.CONTACTORS, CS.PRECHARGE, CS.CHARGING, CS.STOPPING, CS.WELDING_CHECK})
_FAULTS = (
    "FaultOverVoltage",
    "FaultUnderVoltage",
    "FaultCurrentDeviation",
    "FaultHighTemperature",
    "FaultVoltageDeviation",
    "ShiftPosition",
    "ChargingSystemFault",
)
_CYCLE = CT.limit("cycle")
# Longest a stage may last (from entering it) before the charger must have moved on (§7).
_DWELL = {
    CS.INSULATION_TEST: CT.limit("insulation"),
    CS.CONTACTORS: max(CT.limit("contactors"), CT.limit("contactors_fixed_wait")),
    CS.PRECHARGE: CT.limit("first_request"),
    CS.STOPPING: CT.limit("stop_current") + _CYCLE,
    CS.WELDING_CHECK: max(CT.limit("welding"), CT.limit("welding_fixed_wait")),
}
# Longest from the start (d1 closed) for the stages whose limit counts from there (T1).
_FROM_START = {CS.WAKE_UP: CT.limit("vehicle_can"), CS.NEGOTIATION: CT.limit("permission")}


class ChademoOracle(Oracle):
    """CHAdeMO §7/§8: request, permission (k + 102.5.0), insulation, d2, stop paths, T1-T7, T11."""

    name = "chademo"

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        self.m102 = target.codec.message("VehicleChargeControl")
        self.request = 0.0
        self.request_checked = 0.0  # the request in force up to this step (the physics ran under it)
        self.enabled = 0
        self.prev_current = 0.0
        self.permission_lost: float | None = None
        self.obligations: list[tuple[float, str]] = []
        self.last_102: float | None = None
        self.stage: Any = getattr(self.core, "stage", CS.IDLE)
        self.entered = 0.0
        self.started: float | None = None
        self.negotiation_at: float | None = None

    def before(self, step: Step, now: float) -> None:
        core: Any = self.core
        stage = core.stage
        if step.kind == "frame":
            if step.extended or step.frame_id != 0x102 or stage is CS.DONE or core.finished:
                return
            try:
                v = self.m102.decode(step.data)
            except DecodeError:
                return
            self.last_102 = now
            self.request = float(v["ChargeCurrentRequest"])
            fault = next((name for name in _FAULTS if v[name]), None)
            if fault is not None and stage in _ACTIVE:
                self.obligations.append((now, f"vehicle fault flag {fault}"))
                return  # the charger stops before looking at 102.5.0
            enabled = int(v["ChargingEnabled"])
            if self.enabled and not enabled:
                if stage in _RELAYS:
                    self.obligations.append((now, "102.5.0 went to 0"))
                self._lost(now)
            self.enabled = enabled
        elif step.kind == "line" and step.name == "k" and not step.value:
            if self.t.harness.is_on("k") and stage in _RELAYS:
                self.obligations.append((now + _CYCLE, "k opened"))
            self._lost(now)
        elif step.kind == "line" and step.name == "k":
            # k sampled every cycle: a glitch that closes again before the charger looks is no stop
            self.obligations = [o for o in self.obligations if o[1] != "k opened"]
        elif step.kind == "operator" and stage in _ACTIVE:
            self.obligations.append((now, f"operator {step.name}"))

    def _lost(self, now: float) -> None:
        if self.permission_lost is None:
            self.permission_lost = now

    def check(self, now: float) -> None:
        super().check(now)
        t = self.t
        core: Any = self.core
        stage = core.stage
        if stage is not self.stage:
            if self.stage is CS.DONE:
                t.violate("left_done", f"left done for {stage.value}")
            if stage is CS.WAKE_UP and self.started is None:
                self.started = self.entered = now
            if stage is CS.NEGOTIATION:
                self.negotiation_at = now
            self.stage, self.entered = stage, now
        harness = t.harness
        current = t.output_current()
        # -- current: never driven above the request (it may only fall towards it) ----------------
        ceiling = max(self.request, self.request_checked)
        if current > ceiling + EPS and current > self.prev_current + EPS:
            t.violate("above_request", f"output rose to {current:.3f} A above the request {ceiling:g} A")
        self.request_checked = self.request
        # -- no current without permission, insulation test, contactors and d2 --------------------
        if current > CT.STOP_CURRENT_A:
            if core.insulation_phase != "done":
                t.violate("current_without_insulation_test", f"{current:.1f} A, insulation test not passed")
            if not harness.is_on("d2"):
                t.violate("current_with_d2_open", f"{current:.1f} A with d2 open")
            permitted = harness.is_on("k") and self.enabled
            if permitted:
                self.permission_lost = None
            grace = CT.limit("stop_current") + _CYCLE
            if not permitted and (self.permission_lost is None or now > self.permission_lost + grace + EPS):
                t.violate("current_without_permission", f"{current:.1f} A without k and 102.5.0")
        self.prev_current = current
        # -- d2 only while the contactors may be closed; done means everything open ---------------
        if harness.is_on("d2") and stage not in _D2_STAGES:
            t.violate("d2_closed_outside_sequence", f"d2 closed in {stage.value}")
        if stage is CS.DONE and (harness.is_on("d1") or current > EPS):
            t.violate("done_not_safe", "done with d1 closed or current flowing")
        # -- every stop obligation met in time ------------------------------------------------------
        if self.obligations:
            if stage in _STOP_PATH:
                self.obligations.clear()
            else:
                for due, why in self.obligations:
                    if now > due + EPS:
                        t.violate("no_stop", f"{why} at {due:.3f} s, still {stage.value}")
                        self.obligations.clear()
                        break
        if stage in _ACTIVE and stage is not CS.WAKE_UP:
            ref = max(x for x in (self.last_102, self.negotiation_at, 0.0) if x is not None)
            if now > ref + CT.limit("can_loss") + EPS:
                t.violate("can_loss_missed", f"no 0x102 since {ref:.3f} s, still {stage.value}")
                self.last_102 = now  # report once per silence
        # -- every stage within its limit (T1-T4, T6, T7) -------------------------------------------
        limit = _DWELL.get(stage)
        late = limit is not None and now > self.entered + limit + EPS
        if late and (stage is not CS.STOPPING or current > CT.STOP_CURRENT_A):
            t.violate("stage_timeout_missed", f"{stage.value} for {now - self.entered:.3f} s > {limit:g} s")
            self.entered = now
        start_limit = _FROM_START.get(stage)
        if start_limit is not None and self.started is not None and now > self.started + start_limit + EPS:
            t.violate("stage_timeout_missed", f"{stage.value} {now - self.started:.3f} s after d1")
            self.started = now
        if stage is CS.SHUTDOWN and harness.is_on("d1") and now > self.entered + CT.limit("d2_to_d1") + EPS:
            t.violate("d1_not_opened", f"d1 still closed {now - self.entered:.3f} s into shutdown")
            self.entered = now

    def final(self, now: float) -> None:
        core: Any = self.core
        h = self.t.harness
        stage = core.stage
        if self.t.output_current() > EPS or h.is_on("d2") or h.is_on("d1"):
            self.t.violate("not_safe_at_end", f"{stage.value}: current, d1 or d2 still on after silence")
        held = h.dc_link_voltage is not None  # a battery still on the output keeps it charged
        if stage is CS.SHUTDOWN and held:
            return  # safe: relays open, connector stays locked while the output is live
        if stage is not CS.DONE or not core.finished:
            self.t.violate("not_terminal", f"{stage.value} after {SILENCE_TO_SAFE_S:g} s of silence")


# ---- shared by the protocol oracles ----------------------------------------------------------------
class CurrentLimit:
    """The output current against a ceiling that moves (vehicle request, vehicle and charger maxima).

    The charger answers a new ceiling within ``latency`` (its regulation cycle), so the ceiling in force
    is the highest of those set during the last ``latency`` seconds.  Above it the current may only
    fall, at least at ``slew`` A/s (the ramp the charger uses), until it is at or below the ceiling:
    ``check`` names the broken rule ("" when none).
    """

    def __init__(self, latency: float, slew: float, tolerance: float) -> None:
        self.latency = latency
        self.slew = slew
        self.tolerance = tolerance
        self.ceiling = 0.0
        self.history: list[tuple[float, float]] = [(0.0, 0.0)]  # (since, ceiling), oldest first
        self.prev_current = 0.0
        self.over_since: float | None = None
        self.budget = 0.0

    def set(self, ceiling: float, now: float) -> None:
        if ceiling == self.ceiling:
            return
        if ceiling < self.ceiling:
            self.over_since = None  # a new, lower ceiling: a new ramp-down budget
        self.ceiling = ceiling
        self.history.append((now, ceiling))

    def check(self, current: float, now: float) -> str:
        history = self.history
        while len(history) > 1 and history[1][0] + self.latency < now - EPS:
            history.pop(0)  # superseded more than one reaction time ago
        in_force = max(c for _, c in history)
        prev, self.prev_current = self.prev_current, current
        if current <= self.ceiling + self.tolerance:
            self.over_since = None
            return ""
        if current > in_force + self.tolerance and current > prev + EPS:
            return "rose"
        if self.over_since is None:
            self.over_since = now
            self.budget = self.latency + (current - self.ceiling) / self.slew + self.latency
        elif now > self.over_since + self.budget + EPS:
            self.over_since = now  # report once per ramp
            return "stayed"
        return ""


ORACLES: dict[str, type[Oracle]] = {"chademo": ChademoOracle}


def oracle_for(protocol: str) -> type[Oracle]:
    if protocol == "gbt":
        from .oracles_gbt import GbtOracle

        return GbtOracle
    if protocol == "ccs":
        from .oracles_ccs import CcsOracle

        return CcsOracle
    return ORACLES.get(protocol, Oracle)
