"""Passive CHAdeMO observer: the charger's stage walk, stop reason and verdict from a capture.

It runs the emulator's own tables, with no transmission: the stage machine is ``StageMachine`` over
``protocols.chademo.states.TRANSITIONS`` (so only transitions the emulator can make are ever reported),
stage steps come from ``states.STEP``, limits from ``timing.LIMITS``, stop causes from ``stops.REASONS``
and the vehicle fault flags from the charger core's own flag table.  What the emulator decides from
its control lines (k, d2) the observer decides from what the bus shows of them:

* permission: the vehicle has 102.5.0 = 1 *and* the charger shows it acted on it (connector locked,
  insulation-test voltage on its output, or the charging flag);
* d2 closed (insulation passed): the output bled below 20 V after the test, the lock bit came on after
  the test (chargers that lock late), or the vehicle closed its contactors (102.5.3 1 -> 0);
* contactors closed: 102.5.3 = 0 after d2 (protocol >= 2) or the fixed wait (protocol <= 1);
* charging: 109.5.0 set; stop: the stop / error bits of 109.5, or the vehicle's own stop before
  charging (102.5.0 1 -> 0, 102.5.4), exactly the emulator's rules;
* stop reasons: 109.5.3 -> battery incompatible; a 102 fault flag -> that fault; a 0x102 silence of
  T11 -> CAN timeout; 109.5.4 otherwise by stage (T1 no permission, T3 contactors, T4 first request,
  CAN loss while charging); 109.5.1 -> insulation fault / timeout, threshold voltage or power stage;
  a plain stop -> the vehicle's stop if it dropped 102.5.0 first, else the charger's time limit or
  the operator.

A capture can hold several sessions (re-plug attempts): a new one starts when the charger comes
back after its session ended.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..codec import Value
from ..protocols.chademo import supervision as S
from ..protocols.chademo import timing as T
from ..protocols.chademo.charger import _FAULT_BITS as FAULT_BITS
from ..protocols.chademo.states import DESCRIPTION, STEP, TRANSITIONS, Stage
from ..protocols.chademo.stops import REASONS
from ..protocols.chademo.vehicle import VStage
from ..protocols.machine import StageMachine
from .capture import Capture, Record
from .chademo_tables import (
    BEFORE_CHARGING,
    CHARGING,
    EARLY_SHARE,
    EPS,
    FRESH,
    INCOMPATIBLE,
    LOCKED,
    MALFUNCTION,
    PRE_STOP,
    RANK,
    STAGE_LIMIT,
    STAGE_LIMIT_P1,
    STAGE_TIMEOUT,
    STOP,
    STOP_PHASE,
    SYSTEM,
    TIMEOUT_LIMITS,
    WALK_ORDER,
    Session,
    ms_text,
    reason,
    status_of,
)
from .chademo_verdict import VerdictMixin
from .model import CHARGER, FAILED, VEHICLE, Deviation, Event, SessionVerdict, StageSpan


class ChademoObserver(VerdictMixin):
    """Feed :class:`Record` s in capture order, then :meth:`finish` for one verdict per session."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.sessions: list[Session] = []
        self.s: Session | None = None
        self.v100: dict[str, Value] = {}
        self.v101: dict[str, Value] = {}
        self.v102: dict[str, Value] = {}
        self.c108: dict[str, Value] = {}
        self.c109: dict[str, Value] = {}
        self.status = -1
        self.vstatus: tuple[int, int] | None = None
        self.last_enabled = 0
        self.last_open: int | None = None
        self.last_102: float | None = None
        self.last_any: float | None = None
        self.gaps: list[tuple[float, float]] = []  # capture gaps (nothing recorded)
        self.loss_since: float | None = None  # 0x102 missing while the charger kept talking
        self.ev_protocol: int | None = None
        self.deviations: list[Deviation] = []
        self.notes: list[str] = []
        self.evse_protocol: int | None = None

    # ------------------------------------------------------------------------------ helpers
    @property
    def protocol(self) -> int:
        """Effective protocol number P = min(EV, EVSE) (§6.2); 2 until both are known."""
        known = [p for p in (self.ev_protocol, self.evse_protocol) if p is not None]
        return min(known) if known else 2

    def _limit_name(self, stage: Stage) -> str | None:
        if self.protocol <= 1 and stage in STAGE_LIMIT_P1:
            return STAGE_LIMIT_P1[stage]
        return STAGE_LIMIT.get(stage)

    def _go(
        self, trigger: str, rec: Record | None, time: float | None, detail: str = "", inferred: bool = False
    ) -> None:
        s = self.s
        assert s is not None
        stage: Stage = s.sm.fire(trigger)
        s.stage = stage
        if s.v.stages:
            last = s.v.stages[-1]
            last.end = time if time is not None else last.start
            last.end_frame = rec.index if rec is not None else last.start_frame
        name = self._limit_name(stage)
        s.v.stages.append(
            StageSpan(
                stage.value,
                STEP[stage],
                CHARGER,
                time,
                None,
                rec.index if rec is not None else None,
                None,
                detail or DESCRIPTION[stage],
                name,
                T.LIMITS[name].seconds if name else None,
                inferred,
            )
        )
        s.stage_at = time
        if stage in PRE_STOP:
            s.v.progress = max(s.v.progress, RANK[stage])

    def _advance(self, target: Stage, rec: Record, detail: str, inferred: bool = False) -> None:
        """Walk the table's forward path to ``target`` (every hop at this record's time)."""
        s = self.s
        assert s is not None
        while RANK[s.stage] < RANK[target] and s.stage in (Stage.IDLE, *PRE_STOP):
            nxt = WALK_ORDER[RANK[s.stage] + 1]
            row = next(r for r in TRANSITIONS if s.stage in r.sources and r.dest is nxt)
            self._on_enter(nxt, rec)
            hop_inferred = inferred or nxt is not target
            self._go(row.trigger, rec, rec.time, detail if nxt is target else "", hop_inferred)

    def _on_enter(self, stage: Stage, rec: Record) -> None:
        s = self.s
        assert s is not None
        if stage is Stage.INSULATION_TEST:
            s.permitted_at = rec.time
            s.lock_at_permission = bool(self.status >= 0 and self.status & LOCKED)
        elif stage is Stage.CONTACTORS:
            s.d2_at = rec.time
        elif stage is Stage.PRECHARGE:
            s.contactors_were_closed = True

    def _event(self, rec: Record, side: str, text: str) -> None:
        assert self.s is not None
        self.s.v.events.append(Event(rec.time, side, text, rec.index))

    # ------------------------------------------------------------------------------- feeding
    def feed(self, rec: Record) -> None:
        if self.last_any is not None and rec.time - self.last_any >= T.limit("can_loss"):
            self.gaps.append((self.last_any, rec.time))
        self.last_any = rec.time
        if rec.message is None:
            return
        name = rec.message.name
        if rec.side == CHARGER and name == "ChargerStatus":
            self._on_109(rec)
        elif rec.side == CHARGER and name == "ChargerCapability":
            self.c108 = rec.values
            self._touch_charger(rec)
        elif rec.side == VEHICLE:
            if self.s is None:
                self._new_session(rec)
            if name == "VehicleChargeLimits":
                self.v100 = rec.values
            elif name == "VehicleChargeTime":
                self.v101 = rec.values
            elif name == "VehicleChargeControl":
                self._on_102(rec)
            self._timers(rec)

    def _new_session(self, rec: Record) -> None:
        s = Session(len(self.sessions), rec)
        self.sessions.append(s)
        self.s = s
        s.sm = StageMachine(Stage, TRANSITIONS, Stage.IDLE)
        self._go("start", rec, None, "d1 closed (not visible on the bus)", inferred=True)
        self.status = -1

    def _touch_charger(self, rec: Record) -> None:
        if self.s is None:
            self._new_session(rec)
        s = self.s
        assert s is not None
        if s.stage is Stage.DONE:
            silent = s.last_charger is None or rec.time - s.last_charger >= T.limit("can_loss")
            if silent:
                self._new_session(rec)
                s = self.s
                assert s is not None
        if s.stage is Stage.WAKE_UP:
            self._go("vehicle_seen", rec, rec.time, "0x108/0x109 start: the charger saw the vehicle")
        s.last_charger = rec.time
        s.charger_frames += 1
        s.v.end = rec.time

    # ------------------------------------------------------------------------------ 0x109
    def _on_109(self, rec: Record) -> None:
        values = rec.values
        st = status_of(values)
        s0 = self.s
        if (
            s0 is not None
            and s0.stage is Stage.DONE
            and st & (LOCKED | CHARGING)
            and not self.status & LOCKED
        ):
            self._new_session(rec)  # the charger starts again after its session ended
        self._touch_charger(rec)
        s = self.s
        assert s is not None
        self.evse_protocol = int(values.get("ProtocolNumberEVSE", 2))
        if st != self.status:
            s.v.charger_walk.append((rec.time, f"0x{st:02X}"))
            self._event(
                rec,
                CHARGER,
                f"0x109 status 0x{self.status:02X} -> 0x{st:02X}"
                if self.status >= 0
                else f"0x109 status 0x{st:02X}",
            )
        prev, self.status = self.status, st
        self.c109 = values
        volts = float(values.get("PresentOutputVoltage", 0))
        amps = float(values.get("PresentOutputCurrent", 0))
        if (
            self.last_102 is not None
            and self.loss_since is None
            and self._silence(self.last_102, rec.time) >= T.limit("can_loss")
        ):
            self.loss_since = self.last_102
        stage = s.stage
        if stage is Stage.CHARGING:
            s.peak_charging_v = max(s.peak_charging_v, volts)
            s.peak_charging_a = max(s.peak_charging_a, amps)
        if stage in PRE_STOP:
            self._progress_from_charger(rec, st, prev, volts)
            stage = s.stage
            if s.pending is not None and (
                st & (SYSTEM | MALFUNCTION | INCOMPATIBLE)
                or (stage is Stage.CHARGING and (st & STOP or not st & CHARGING))
            ):
                code, at, why = s.pending
                s.pending = None
                self._stop(code, rec, f"{why}; charger stopped in {ms_text(rec.time - at)}")
            elif st & (INCOMPATIBLE | SYSTEM | MALFUNCTION):
                self._stop(self._error_reason(st, volts, rec), rec)
            elif stage is Stage.CHARGING and (st & STOP or not st & CHARGING):
                self._stop(self._plain_reason(), rec)
        if s.stage in STOP_PHASE:
            self._stop_phase(rec, st, prev, volts, amps)

    def _silence(self, a: float, b: float) -> float:
        """Seconds between ``a`` and ``b`` not inside a capture gap (nothing recorded at all)."""
        covered = sum(max(0.0, min(b, gb) - max(a, ga)) for ga, gb in self.gaps)
        return (b - a) - covered

    def _charger_alive(self, now: float, within: float | None = None) -> bool:
        """The charger's last frame is recent (default: within T11; ``within`` for fresh status)."""
        s = self.s
        limit = T.limit("can_loss") if within is None else within
        return s is not None and s.last_charger is not None and self._silence(s.last_charger, now) < limit

    def _progress_from_charger(self, rec: Record, st: int, prev: int, volts: float) -> None:
        s = self.s
        assert s is not None
        if s.stage is Stage.NEGOTIATION:
            enabled = bool(self.v102.get("ChargingEnabled"))
            how = "connector locked" if st & LOCKED else "insulation-test voltage on the output"
            if enabled and (st & (LOCKED | CHARGING) or volts > T.OUTPUT_SAFE_V):
                self._advance(Stage.INSULATION_TEST, rec, f"k + 102.5.0 = 1 acted on: {how}")
            elif prev >= 0 and not prev & (LOCKED | CHARGING) and (st & LOCKED or volts > T.OUTPUT_SAFE_V):
                # the charger acted on k although no 102.5.0 = 1 was captured (a logger dropping frames)
                self._advance(Stage.INSULATION_TEST, rec, f"charger acted on k: {how} (102.5.0 = 1 not seen)")
        if s.stage is Stage.INSULATION_TEST:
            s.peak_v = max(s.peak_v, volts)
            test = (
                f"insulation test at {s.peak_v:.0f} V"
                if s.peak_v > T.BLEED_DONE_V
                else "no test voltage seen"
            )
            if s.peak_v > T.BLEED_DONE_V and volts < T.BLEED_DONE_V:
                self._advance(Stage.CONTACTORS, rec, f"{test}, bled below 20 V: d2 closed")
            elif st & LOCKED and prev >= 0 and not prev & LOCKED and not s.lock_at_permission:
                self._advance(Stage.CONTACTORS, rec, f"{test}, connector locked: d2 closed")
        if s.stage is Stage.CONTACTORS and self.protocol <= 1 and s.d2_at is not None:
            due = s.d2_at + T.limit("contactors_fixed_wait")
            if rec.time + EPS >= due:
                s.contactors_were_closed = True
                self._go("contactors_closed", rec, due, "protocol <= 1: fixed wait after d2")
        if st & CHARGING and not st & STOP and s.stage in (Stage.NEGOTIATION, *BEFORE_CHARGING):
            if RANK[s.stage] < RANK[Stage.PRECHARGE]:
                if not self.v102.get("ChargingEnabled") and s.stage is Stage.NEGOTIATION:
                    return  # charging flag without permission: a deviation, not progress
                self._advance(Stage.PRECHARGE, rec, "", inferred=True)
            req = self.v102.get("ChargeCurrentRequest", 0)
            s.charging_flag_at = rec.time
            self._go(
                "current_requested",
                rec,
                rec.time,
                f"0x05: charging (request {req} A)" if req else "0x05 before any current request",
            )

    def _error_reason(self, st: int, volts: float, rec: Record) -> str:
        s = self.s
        assert s is not None
        stage = s.stage
        if st & INCOMPATIBLE:
            target, avail = (
                self.v102.get("TargetBatteryVoltage", 0),
                self.c108.get("AvailableOutputVoltage", 0),
            )
            if target and avail and target > avail:
                s.stop_detail = f"vehicle target {target} V is above the charger's available {avail} V"
            return "battery_incompatible"
        fault = self._vehicle_fault()
        if fault:
            return fault
        if self.loss_since is not None:
            s.stop_detail = f"no 0x102 for {ms_text(rec.time - self.loss_since)}"
            return "can_timeout"
        if st & SYSTEM and stage in (Stage.CONTACTORS, Stage.PRECHARGE) and self._too_early(rec.time):
            timeout = T.limit(TIMEOUT_LIMITS[STAGE_TIMEOUT[stage]])
            s.stop_detail = (
                f"109.5.4 after only {rec.time - self._waiting_since():.1f} s, well before its timeout "
                f"({timeout:g} s): the charger lost the vehicle's 0x102 (the capture still shows them, so "
                "the loss is between the capture point and the charger)"
            )
            return "can_timeout"
        implausible = self._implausible() if stage is Stage.CHARGING else ""
        if st & SYSTEM and implausible:  # the emulator's rule (protocols.chademo.charger_checks)
            s.stop_detail = implausible
            return "implausible_request"
        if st & SYSTEM:
            if stage is Stage.NEGOTIATION:
                if self.v102.get("ChargingEnabled"):
                    s.stop_detail = "102.5.0 was set but the charger saw no k (the analog permission line)"
                return "no_permission"
            return {
                Stage.WAKE_UP: "vehicle_not_awake",
                Stage.CONTACTORS: "contactor_timeout",
                Stage.PRECHARGE: "no_current_request",
            }.get(stage, "can_timeout")
        if stage is Stage.INSULATION_TEST:
            if s.permitted_at is not None and rec.time - s.permitted_at + EPS >= T.limit("insulation"):
                return "insulation_timeout"
            return "insulation_fault"
        if stage is Stage.CHARGING:
            threshold = float(self.c108.get("ThresholdVoltage", 0) or 0)
            if threshold and volts >= threshold:
                return "threshold_voltage"
            target = float(self.v102.get("TargetBatteryVoltage", 0) or 0)
            if target and s.peak_charging_v > target:
                s.stop_detail = (
                    f"output rose to {s.peak_charging_v:.0f} V, past the vehicle's target "
                    f"{target:.0f} V, at <= {s.peak_charging_a:.0f} A (battery apparently not "
                    "connected)"
                )
        return "charger_malfunction"

    def _waiting_since(self) -> float:
        """When the charger's current wait began: d2 for the contactors, the vehicle's contactor closure
        (or the precharge stage, whichever came first) for the first request."""
        s = self.s
        assert s is not None
        start = s.stage_at if s.stage_at is not None else 0.0
        if s.stage is Stage.PRECHARGE:
            closed = next(
                (x.start for x in s.v.vehicle_stages if x.stage == VStage.CONTACTORS_CLOSED.value), None
            )
            if closed is not None:
                start = min(start, closed)
        return start

    def _too_early(self, now: float) -> bool:
        """A 109.5.4 stop far earlier than the stage's timeout cannot be that timeout (good timestamps)."""
        s = self.s
        assert s is not None
        if self.capture.timestamps != "good" or s.stage not in STAGE_TIMEOUT:
            return False
        if s.stage is Stage.CONTACTORS and self.protocol <= 1:
            return False
        limit = T.limit(TIMEOUT_LIMITS[STAGE_TIMEOUT[s.stage]])
        return now - self._waiting_since() < EARLY_SHARE * limit

    def _implausible(self) -> str:
        """The last 0x102 asks for more than 0x108 offers (§5.3/§5.5), in the emulator's words, or ''."""
        avail_a, avail_v = self.c108.get("AvailableOutputCurrent"), self.c108.get("AvailableOutputVoltage")
        req, target = self.v102.get("ChargeCurrentRequest", 0), self.v102.get("TargetBatteryVoltage", 0)
        return S.implausible(float(req), float(target), float(avail_a or 255), float(avail_v or 1000)) or ""

    def _vehicle_fault(self) -> str:
        return next((code for signal, code in FAULT_BITS if self.v102.get(signal)), "")

    def _plain_reason(self) -> str:
        s = self.s
        assert s is not None
        fault = self._vehicle_fault()
        if fault:
            return fault
        if not self.v102.get("ChargingEnabled"):
            return "vehicle_stop"
        rem10, remmin = self.c109.get("RemainingTime10s", 0xFF), self.c109.get("RemainingTimeMin", 0)
        if (rem10 == 0xFF and remmin == 0) or (rem10 == 0 and remmin == 0 and self.v101):
            return "charge_time_limit"
        s.stop_detail = "the charger ended charging while the vehicle still asked for current"
        return "operator_stop"

    # ------------------------------------------------------------------------------ stops
    def _stop(self, code: str, rec: Record, detail: str = "", at: float | None = None) -> None:
        s = self.s
        assert s is not None
        if s.stage not in PRE_STOP:
            return
        s.stop = reason(code)
        s.stop_stage = s.stage
        s.stop_time = rec.time if at is None else at
        s.status_at_stop = max(self.status, 0)
        if detail:
            s.stop_detail = f"{s.stop_detail}; {detail}" if s.stop_detail else detail
        self._go("stop", rec, s.stop_time, s.stop.cause)
        self._event(rec, CHARGER, f"stop: {code}")

    def _stop_phase(self, rec: Record, st: int, prev: int, volts: float, amps: float) -> None:
        s = self.s
        assert s is not None
        if s.stage is Stage.STOPPING and amps <= T.STOP_CURRENT_A and not st & CHARGING:
            s.stop_current_at = s.stop_current_at or rec.time
            if s.contactors_were_closed:
                self._go("current_stopped", rec, rec.time, "output current <= 5 A, 109.5.0 cleared")
            else:
                self._go("no_welding_check", rec, rec.time, "contactors never closed")
        if s.stage is Stage.WELDING_CHECK:
            if st & SYSTEM and not s.status_at_stop & SYSTEM:
                self._shutdown_fault("welding_check_timeout")
            due = (s.stage_at or 0.0) + T.limit("welding_fixed_wait")
            if self.protocol <= 1 and s.stage_at is not None and rec.time + EPS >= due:
                self._go("welding_checked", rec, due, "protocol <= 1: fixed wait")
            elif prev >= 0 and prev & LOCKED and not st & LOCKED:
                self._go("welding_checked", rec, rec.time, "connector unlocked")
        if s.stage is Stage.SHUTDOWN:
            if st & MALFUNCTION and not s.status_at_stop & MALFUNCTION and st & LOCKED:
                self._shutdown_fault("output_not_discharged")
            unlocked = prev >= 0 and prev & LOCKED and not st & LOCKED
            never_locked = (
                not st & LOCKED
                and volts <= T.OUTPUT_SAFE_V
                and s.stage_at is not None
                and rec.time + EPS >= s.stage_at + T.limit("d2_to_d1") - T.limit("cycle")
            )
            if unlocked or never_locked:
                self._go("unlocked", rec, rec.time, "output <= 10 V, connector unlocked")

    def _shutdown_fault(self, code: str) -> None:
        s = self.s
        assert s is not None
        s.shutdown_fault = code
        if s.stop is not None and s.stop.normal:
            s.stop = REASONS[code]

    # ------------------------------------------------------------------------------ 0x102
    def _on_102(self, rec: Record) -> None:
        s = self.s
        assert s is not None
        if len(rec.data) < 8:  # §2: DLC 8; the charger cannot use a short 0x102 (as not received)
            return
        v = rec.values
        self.ev_protocol = int(v.get("ProtocolNumberEV", 2))
        enabled = int(v.get("ChargingEnabled", 0))
        was_enabled, self.last_enabled = self.last_enabled, enabled
        open_flag = int(v.get("ContactorOpen", 0))
        was_open, self.last_open = self.last_open, open_flag
        if open_flag:
            s.contactor_flag_seen = True
        self.v102 = v
        self.last_102 = rec.time
        self.loss_since = None
        b5, b4 = rec.data[5] if len(rec.data) > 5 else 0, rec.data[4] if len(rec.data) > 4 else 0
        code = (b5, b4)
        if code != self.vstatus:
            text = f"0x{b5:02X}" + (f" (faults 0x{b4:02X})" if b4 & 0x1F else "")
            s.v.vehicle_walk.append((rec.time, text))
            self._event(rec, VEHICLE, f"0x102 status {text}, request {v.get('ChargeCurrentRequest', 0)} A")
            self.vstatus = code
        if enabled and s.first_enabled is None:
            s.first_enabled = rec.time
        self._vehicle_stage(rec, enabled, open_flag, was_open)
        stage = s.stage
        if stage not in PRE_STOP:
            blind = s.stop is not None and s.stop.code == "can_timeout"  # the charger did not see 0x102
            if stage is Stage.WELDING_CHECK and self.protocol >= 2 and open_flag and not blind:
                self._go("welding_checked", rec, rec.time, "vehicle contactors open (102.5.3 = 1)")
            return
        fault = next((c for sig, c in FAULT_BITS if v.get(sig)), "")
        if fault and s.pending is None and stage is not Stage.WAKE_UP:
            s.pending = (fault, rec.time, f"vehicle flag at {rec.time:.3f} s")
            return
        if stage is Stage.NEGOTIATION:
            if (
                enabled
                and self._charger_alive(rec.time, FRESH)
                and (
                    self.status & LOCKED or float(self.c109.get("PresentOutputVoltage", 0)) > T.OUTPUT_SAFE_V
                )
            ):
                self._advance(Stage.INSULATION_TEST, rec, "k + 102.5.0 = 1 acted on")
            stage = s.stage
        if stage in BEFORE_CHARGING:
            if was_enabled and not enabled:
                self._stop("vehicle_stop", rec, "before charging started")
                return
            if v.get("StopBeforeCharging"):
                self._stop("vehicle_stop_before_charging", rec)
                return
        if stage is Stage.INSULATION_TEST and enabled and was_open == 1 and open_flag == 0:
            self._advance(Stage.PRECHARGE, rec, "vehicle contactors closed (102.5.3 1 -> 0)", inferred=True)
        elif stage is Stage.CONTACTORS and self.protocol >= 2 and not open_flag:
            self._advance(Stage.PRECHARGE, rec, "vehicle contactors closed (102.5.3 = 0)")
        req = int(v.get("ChargeCurrentRequest", 0))
        if req > 0 and enabled and s.first_request is None and RANK[s.stage] >= RANK[Stage.INSULATION_TEST]:
            s.first_request = rec.time
            if RANK[s.stage] < RANK[Stage.PRECHARGE]:
                self._advance(Stage.PRECHARGE, rec, "", inferred=True)
        if s.stage is Stage.CHARGING and was_enabled and not enabled and s.pending is None:
            s.pending = ("vehicle_stop", rec.time, f"102.5.0 -> 0 at {rec.time:.3f} s")

    def _timers(self, rec: Record) -> None:
        """Things decided by waiting: pending vehicle stops the charger never showed, silent chargers."""
        s = self.s
        if s is None:
            return
        if s.pending is not None and rec.time - s.pending[1] >= T.limit("can_loss") and s.stage in PRE_STOP:
            code, at, why = s.pending
            s.pending = None
            self._stop(code, rec, f"{why}; the charger showed no reaction", at=at)
        if (
            s.stage in (*PRE_STOP, *STOP_PHASE)
            and s.last_charger is not None
            and not self._charger_alive(rec.time)
        ):
            self._charger_silent(rec)

    def _charger_silent(self, rec: Record) -> None:
        s = self.s
        assert s is not None and s.last_charger is not None
        if s.stage in STOP_PHASE:
            while s.stage is not Stage.DONE:
                trig = {
                    Stage.STOPPING: "current_stopped" if s.contactors_were_closed else "no_welding_check",
                    Stage.WELDING_CHECK: "welding_checked",
                    Stage.SHUTDOWN: "unlocked",
                }[s.stage]
                self._go(trig, rec, s.last_charger, "charger stopped transmitting", inferred=True)
            return
        s.silent = True
        after = s.last_charger - s.v.start
        if s.stage is Stage.NEGOTIATION and (s.first_enabled is None or s.first_enabled > s.last_charger):
            self._stop(
                "no_permission",
                rec,
                f"the charger stopped transmitting {after:.2f} s into the session",
                at=s.last_charger,
            )
        else:
            self._stop(
                "charger_silent", rec, f"last charger frame at {s.last_charger:.3f} s", at=s.last_charger
            )


def observe(capture: Capture) -> tuple[list[SessionVerdict], list[Deviation]]:
    """All sessions of a CHAdeMO capture, and the deviations only the observer can see."""
    obs = ChademoObserver(capture)
    for rec in capture.records:
        obs.feed(rec)
    sessions = obs.finish()
    return sessions, obs.deviations + [Deviation("note", n) for n in obs.notes]


def primary_index(sessions: Sequence[SessionVerdict]) -> int:
    """The session that got furthest (ties: a failed one, then the first)."""
    if not sessions:
        return 0
    return max(range(len(sessions)), key=lambda i: (sessions[i].progress, sessions[i].outcome == FAILED, -i))
