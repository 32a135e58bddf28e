"""GB/T 27930-2015 safety invariants, checked on every step of a fuzzing session (§ = GB/T fact sheet).

* The output current never rises above min(BCL demand, BCP maximum charge current, charger maximum)
  (one CCS cycle to react, 0.1 A = one bit of the current fields), and above it only falls, at the
  charger's ramp at least.
* No current (> 5 A) unless the insulation test passed, the BMS said BRO 0xAA (and has not gone back to
  0x00), K1/K2 are closed and the charger is charging (or ramping down within the stop limit).
* Every BST with a reason, BEM, abnormal BSM state, BRO 0xAA -> 0x00, operator stop and power fault
  puts the charger on the stop path (stopping, statistics, error, shutdown, done) at once; a BCL
  missing 1 s, a first BRO missing 5 s and every stage past its limit (timing.py) too; on the stop
  path the current is <= 5 A within 100 ms and K1/K2 open.
* After the BMS falls silent, long enough for every wait and re-handshake (125 s with three):
  done, no current, K1/K2 and the auxiliary power off.

The oracle reads frames as the charger receives them (same routing by PGN, same DBC) and keeps its
own view.  Two things only the charger knows are read from it: the BCP it negotiated (a multi-packet
message; the transport is covered by its own tests and by the TP abuse of the hostile vehicle) and
its stage.  A frame only obliges the charger when it is clearly valid (the charger may ignore or
distrust anything less), so stricter chargers never fail these checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import DecodeError
from ..frames import Frame
from ..protocols.gbt import BMS_ADDRESS, CHARGER_ADDRESS
from ..protocols.gbt import timing as GT
from ..protocols.gbt.messages import Router, charge_current
from ..protocols.gbt.states import TALKING
from ..protocols.gbt.states import Stage as GS
from ..protocols.gbt.stops import BSM_STATES
from .oracles import EPS, CurrentLimit, Oracle
from .script import Step

if TYPE_CHECKING:
    from .target import Target

TOLERANCE_A = 0.1  # one bit of the 0.1 A/bit current fields
_NOT_AVAILABLE_V = 6553.5  # a 0.1 V field with every bit set
STOP_PATH = frozenset({GS.STOPPING, GS.STATISTICS, GS.ERROR, GS.SHUTDOWN, GS.DONE})
_READY_STAGES = frozenset({GS.CONFIGURATION, GS.PRECHARGE, GS.CONTACTORS, GS.CHARGING})
_BRO_DROP = frozenset({GS.PRECHARGE, GS.CONTACTORS, GS.CHARGING})
_BEFORE_BMS = frozenset({GS.HANDSHAKE, GS.INSULATION_TEST})
# Longest each stage may last (§6, §7, §8: timing.py); recognition: BRM then BCP, 5 s each.
_DWELL = {
    GS.HANDSHAKE: GT.limit("bhm"),
    GS.INSULATION_TEST: GT.limit("insulation"),
    GS.RECOGNITION: GT.limit("brm") + GT.limit("bcp"),
    GS.CONFIGURATION: GT.limit("bro_ready"),
    GS.PRECHARGE: GT.limit("precharge"),
    GS.CONTACTORS: GT.limit("relay_settle"),
    GS.STOPPING: GT.limit("bsd"),
    GS.STATISTICS: GT.limit("csd_hold"),
    GS.ERROR: GT.limit("retry_giveup"),
}
_STOP_CURRENT = GT.limit("stop_current")
_CYCLE = GT.limit("ccs_period")


def _silence(rehandshakes: int) -> float:
    """The longest a charger may take to give up on a silent BMS (§7, §8): the longest wait of one
    stage (BRO 0xAA, pre-charge: 60 s), then per handshake BRM (5 s) and the CEM hold (<= 10 s), then
    the unlock."""
    wait = max(GT.limit("bro_ready"), GT.limit("precharge"), GT.limit("bhm") + GT.limit("insulation"))
    per_try = GT.limit("brm") + GT.limit("retry_giveup")
    return wait + (rehandshakes + 1) * per_try + GT.limit("unlock_wait")


class GbtOracle(Oracle):
    """GB/T 27930-2015: BCL/BCP/CML ceiling, BRO, insulation, K1/K2, stop paths, BCL and stage limits."""

    name = "gbt"
    silence = _silence(10)  # the longest any configuration may need (an instance has its own)

    def __init__(self, target: Target) -> None:
        super().__init__(target)
        codec = target.codec
        self.router = Router(codec, CHARGER_ADDRESS, BMS_ADDRESS, ("BRO", "BCL", "BSM", "BST", "BEM"))
        cfg = target.config
        self.silence = _silence(int(cfg.max_rehandshakes))
        self.charger_max = float(cfg.max_current)
        self.limit = CurrentLimit(_CYCLE, float(cfg.current_slew_a_per_s), TOLERANCE_A)
        self.demand = 0.0  # A, last valid BCL
        self.bcp_max: float | None = None  # A, the BCP the charger negotiated
        self.stage: Any = getattr(self.core, "stage", GS.IDLE)
        self.entered = 0.0
        self.insulation_passed = False
        self.ready = False
        self.ready_lost: float | None = None
        self.last_bcl: float | None = None
        self.bro_seen = False
        self.obligations: list[tuple[float, str]] = []
        self.stop_from: float | None = None  # entered the stop path from a stage that may carry current

    # ---- inputs ----------------------------------------------------------------------------------
    def before(self, step: Step, now: float) -> None:
        core: Any = self.core
        stage = core.stage
        if step.kind == "operator":
            if stage in TALKING or stage in _BEFORE_BMS:
                self.obligations.append((now, f"operator {step.name}"))
            return
        if step.kind != "frame" or not step.extended or stage is GS.DONE:
            return
        route = self.router.route(Frame(step.frame_id, step.data, True, now))
        if route is None or route.codec is None:
            return
        try:
            values = route.codec.decode(step.data)
        except DecodeError:
            return
        name = route.codec.name
        if name == "BCL":
            self._on_bcl(values, now)
        elif name == "BRO":
            self._on_bro(int(values["BmsReady"]), stage, now)
        elif name == "BST" and stage in TALKING:
            reasons = [k for k, v in values.items() if v == 1 and k != "ChargerStopped"]
            if reasons:
                self.obligations.append((now, f"BST {', '.join(reasons)}"))
        elif name == "BEM" and stage in TALKING:
            flags = [k for k, v in values.items() if v == 1]
            if flags:
                self.obligations.append((now, f"BEM {', '.join(flags)}"))
        elif name == "BSM" and stage is GS.CHARGING:
            bad = [field for field, _, _ in BSM_STATES if int(values[field]) == 1]
            if bad:
                self.obligations.append((now, f"BSM {', '.join(bad)} abnormal"))

    def _on_bcl(self, values: dict[str, Any], now: float) -> None:
        current, mode = float(values["CurrentDemand"]), int(values["ChargeMode"])
        if current > 0.0 or mode not in (1, 2) or float(values["VoltageDemand"]) >= _NOT_AVAILABLE_V:
            return  # not a usable demand: the charger may ignore it (its watchdog runs on)
        self.demand = charge_current(current)
        core: Any = self.core
        if core.stage is GS.CHARGING:
            self.last_bcl = now

    def _on_bro(self, ready: int, stage: Any, now: float) -> None:
        if stage is GS.CONFIGURATION:
            self.bro_seen = True
        if ready == 0xAA and stage in _READY_STAGES:
            self.ready, self.ready_lost = True, None
        elif ready == 0x00 and self.ready:
            self.ready = False
            self.ready_lost = now
            if stage in _BRO_DROP:
                self.obligations.append((now, "BRO went from 0xAA back to 0x00"))

    # ---- after every step and timer call ---------------------------------------------------------------
    def check(self, now: float) -> None:
        t = self.t
        core: Any = self.core
        stage = core.stage
        if stage is not self.stage:
            self._entered(self.stage, stage, now)
        current = t.output_current()
        k1k2 = t.harness.is_on("k1k2")
        # -- the ceiling: BCL demand, BCP maximum, charger maximum -----------------------------------
        ceiling = min(self.demand, self.charger_max)
        if self.bcp_max is not None:
            ceiling = min(ceiling, self.bcp_max)
        self.limit.set(ceiling, now)
        broken = self.limit.check(current, now)
        if broken:
            what = "rose above" if broken == "rose" else "stayed above"
            t.violate(
                "above_request",
                f"output {what} {current:.1f} A: BCL {self.demand:g} A, BCP {self.bcp_max} A, "
                f"charger {self.charger_max:g} A",
            )
        if current > self.charger_max + TOLERANCE_A:
            t.violate("above_charger_max", f"output {current:.1f} A > charger maximum {self.charger_max:g} A")
        # -- no current without the insulation test, BRO 0xAA, K1/K2 and charging ---------------------
        if current > GT.STOP_CURRENT_A:
            if not self.insulation_passed:
                t.violate("current_without_insulation_test", f"{current:.1f} A, insulation test not passed")
            if not k1k2:
                t.violate("current_with_relays_open", f"{current:.1f} A with K1/K2 open")
            lost = self.ready_lost
            if not self.ready and (lost is None or now > lost + _STOP_CURRENT + EPS):
                t.violate("current_without_ready", f"{current:.1f} A without BRO 0xAA")
            if stage is not GS.CHARGING and stage not in STOP_PATH:
                t.violate("current_outside_charging", f"{current:.1f} A in {stage.value}")
        # -- on the stop path: current <= 5 A within the stop limit, then K1/K2 open -----------------
        if stage in STOP_PATH and self.stop_from is not None and now > self.stop_from + _STOP_CURRENT + EPS:
            if current > GT.STOP_CURRENT_A:
                t.violate("stop_current_slow", f"{current:.1f} A {now - self.stop_from:.3f} s into the stop")
                self.stop_from = None
            elif k1k2 and now > self.stop_from + _STOP_CURRENT + _CYCLE + EPS:
                t.violate("relays_not_opened", f"K1/K2 closed at {current:.1f} A on the stop path")
                self.stop_from = None
        # -- every stop obligation met at once; the BCL watchdog; stage limits ----------------------------
        if self.obligations:
            if stage in STOP_PATH:
                self.obligations.clear()
            else:
                due, why = self.obligations[0]
                if now > due + EPS:
                    t.violate("no_stop", f"{why} at {due:.3f} s, still {stage.value}")
                    self.obligations.clear()
        if stage is GS.CHARGING:
            ref = max(self.entered, self.last_bcl or 0.0)
            if now > ref + GT.limit("bcl") + EPS:
                t.violate("bcl_timeout_missed", f"no BCL since {ref:.3f} s, still charging")
                self.last_bcl = now
        if stage is GS.CONFIGURATION and not self.bro_seen and now > self.entered + GT.limit("bro") + EPS:
            t.violate("stage_timeout_missed", f"no BRO {now - self.entered:.3f} s into configuration")
            self.bro_seen = True
        limit = _DWELL.get(stage)
        if limit is not None and now > self.entered + limit + EPS:
            t.violate("stage_timeout_missed", f"{stage.value} for {now - self.entered:.3f} s > {limit:g} s")
            self.entered = now

    def _entered(self, old: Any, stage: Any, now: float) -> None:
        t, core = self.t, self.core
        if old is GS.DONE:
            t.violate("left_done", f"left done for {stage.value}")
        if old is GS.INSULATION_TEST and stage is GS.RECOGNITION:
            self.insulation_passed = True
        if stage is GS.RECOGNITION:  # (re-)handshake: the BMS must be ready again
            self.ready, self.ready_lost, self.bcp_max = False, None, None
        if stage is GS.CONFIGURATION:
            self.bro_seen = False
            bcp = getattr(core, "bms", {}).get("BCP")
            self.bcp_max = None if bcp is None else charge_current(bcp["MaxChargeCurrent"])
        if stage in STOP_PATH and old not in STOP_PATH:
            self.stop_from = now
        self.stage, self.entered = stage, now

    def final(self, now: float) -> None:
        core: Any = self.core
        h = self.t.harness
        if self.t.output_current() > EPS or h.is_on("k1k2") or h.is_on("k3k4"):
            self.t.violate(
                "not_safe_at_end", f"{core.stage.value}: current, K1/K2 or auxiliary power on after silence"
            )
        if core.stage is not GS.DONE or not core.finished:
            self.t.violate("not_terminal", f"{core.stage.value} after {self.silence:g} s of silence")
