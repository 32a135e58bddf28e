"""The CHAdeMO observer's vehicle-stage tracking and its verdict per session (a mixin of
:class:`.chademo.ChademoObserver`): outcome, stage and step of the stop, the cause in an operator's
words with the limit that expired, partial captures."""

from __future__ import annotations

from ..protocols.chademo import timing as T
from ..protocols.chademo.charger import _FAULT_BITS as FAULT_BITS
from ..protocols.chademo.states import DESCRIPTION, STEP, Stage
from ..protocols.chademo.vehicle import V_STEP, VStage
from .capture import Capture, Record
from .chademo_tables import (
    CHARGING,
    EPS,
    LOCKED,
    PRE_STOP,
    RANK,
    STOP_PHASE,
    TIMEOUT_LIMITS,
    Session,
)
from .model import COMPLETED, FAILED, PARTIAL, VEHICLE, Deviation, SessionVerdict, StageSpan


class VerdictMixin:
    """Needs the observer's state (declared here for the type checker)."""

    capture: Capture
    sessions: list[Session]
    s: Session | None
    deviations: list[Deviation]
    notes: list[str]
    status: int

    @property
    def protocol(self) -> int:
        raise NotImplementedError

    def _stop(self, code: str, rec: Record, detail: str = "", at: float | None = None) -> None:
        raise NotImplementedError

    def _vehicle_stage(self, rec: Record, enabled: int, open_flag: int, was_open: int | None) -> None:
        s = self.s
        assert s is not None
        cur = s.vstage or VStage.AWAKE
        req = int(rec.values.get("ChargeCurrentRequest", 0))
        faults = any(rec.values.get(sig) for sig, _ in FAULT_BITS)
        opened = bool(open_flag) and was_open == 0
        new: VStage
        if cur in (VStage.STOPPING, VStage.WELDING_CHECK):
            new = VStage.WELDING_CHECK if opened else cur
        elif opened and (faults or not enabled) and cur in (VStage.CONTACTORS_CLOSED, VStage.CHARGING):
            new = VStage.WELDING_CHECK  # stopped and opened its contactors in one frame
        elif ((faults or not enabled) and cur in (VStage.CONTACTORS_CLOSED, VStage.CHARGING)) or (
            (faults or not enabled) and cur is VStage.PERMITTED and s.stage in (*STOP_PHASE, Stage.DONE)
        ):
            new = VStage.STOPPING
        elif (enabled and cur is VStage.CHARGING) or (req > 0 and enabled):
            new = VStage.CHARGING
        elif enabled and not open_flag and (was_open == 1 or cur is VStage.CONTACTORS_CLOSED):
            new = VStage.CONTACTORS_CLOSED
        elif enabled:
            new = VStage.PERMITTED
        elif self.status >= 0:
            new = VStage.READY
        else:
            new = VStage.AWAKE
        if new is s.vstage:
            return
        spans = s.v.vehicle_stages
        if spans:
            spans[-1].end = rec.time
            spans[-1].end_frame = rec.index
        spans.append(StageSpan(new.value, V_STEP[new], VEHICLE, rec.time, None, rec.index))
        s.vstage = new

    # ------------------------------------------------------------------------------ verdict
    def finish(self) -> list[SessionVerdict]:
        end = self.capture.duration
        for s in self.sessions:
            self.s = s
            self._verdict(s, end if s is self.sessions[-1] else s.v.end)
        return [s.v for s in self.sessions]

    def _verdict(self, s: Session, end: float) -> None:
        v = s.v
        mid = self._starts_mid(s)
        if (
            v.progress >= RANK[Stage.PRECHARGE]
            and self.protocol <= 1
            and not s.contactor_flag_seen
            and not mid
        ):
            self.notes.append(
                f"session {s.v.index + 1}: the vehicle never set 102.5.3 (contactor open); with "
                f"protocol {self.protocol} (0.9) the charger uses fixed waits instead"
            )
        if (
            s.stop is not None
            and s.stop.code in TIMEOUT_LIMITS
            and s.stop_stage is not None
            and self.capture.timestamps != "none"
            and not s.silent
            and s.stop_time is not None
        ):
            span = next((x for x in reversed(v.stages) if x.stage == s.stop_stage.value), None)
            since, began = "after its first frame", span.start if span is not None else None
            if s.stop.code == "no_current_request":
                closed = next(
                    (x.start for x in v.vehicle_stages if x.stage == VStage.CONTACTORS_CLOSED.value), None
                )
                if closed is not None and (began is None or closed <= began + EPS):
                    since, began = "after the vehicle closed its contactors", closed
                else:
                    since = (
                        "after the fixed wait that follows d2 (protocol <= 1)"
                        if self.protocol <= 1
                        else "in precharge"
                    )
            elif s.stop_stage is not Stage.NEGOTIATION:
                since = f"into {s.stop_stage.value}"
            if began is not None:
                row = T.LIMITS[TIMEOUT_LIMITS[s.stop.code]]
                gave_up = f"the charger gave up {s.stop_time - began:.1f} s {since}"
                s.stop_detail = (f"{s.stop_detail}; " if s.stop_detail else "") + (
                    f"{gave_up} ({row.source}: {row.seconds:g} s)"
                )
        if v.progress >= RANK[Stage.PRECHARGE] and self.protocol >= 2 and not s.contactor_flag_seen:
            self.deviations.append(
                Deviation(
                    "sequence",
                    f"session {s.v.index}: vehicle never set 102.5.3 (contactor open) although both "
                    "sides run protocol >= 2: the contactor handshake (1 -> 0 after d2, 0 -> 1 after the "
                    "welding check) cannot work",
                    s.v.start,
                    VEHICLE,
                )
            )
        last = self.capture.records[-1] if self.capture.records else None
        if s.pending is not None and last is not None and s.stage in PRE_STOP:
            code, at, why = s.pending
            s.pending = None
            self._stop(code, last, f"{why}; the charger showed no reaction before the capture ended", at=at)
        if s.charger_frames == 0 and last is not None and s.stage in PRE_STOP:
            self._stop("charger_absent", last, "d1 never closed, or the charger is not on this bus")
        if v.stages and v.stages[-1].end is None and s.stage is not Stage.DONE:
            v.stages[-1].end = end
        v.end = max(v.end, end if s is self.sessions[-1] else v.end)
        if v.vehicle_stages and v.vehicle_stages[-1].end is None:
            v.vehicle_stages[-1].end = v.end
        if s.stage is Stage.DONE and v.vehicle_stages and v.vehicle_stages[-1].stage != VStage.DONE.value:
            last_vehicle = max(
                (
                    r.time
                    for r in self.capture.records
                    if r.side == VEHICLE and s.v.start <= r.time <= v.end + 1e-9
                ),
                default=v.end,
            )
            v.vehicle_stages[-1].end = last_vehicle
            v.vehicle_stages.append(
                StageSpan(
                    VStage.DONE.value,
                    V_STEP[VStage.DONE],
                    VEHICLE,
                    last_vehicle,
                    last_vehicle,
                    detail="session over",
                )
            )
        v.charged = s.charging_flag_at is not None
        v.starts_mid_session = self._starts_mid(s)
        if s.stop is not None and s.stop_stage is not None:
            r = s.stop
            v.stage, v.step, v.reason, v.origin = (
                s.stop_stage.value,
                STEP[s.stop_stage],
                r.code,
                r.origin.value,
            )
            v.cause = r.cause + (f": {s.stop_detail}" if s.stop_detail else "")
            if r.normal and v.charged:
                done = s.stage is Stage.DONE
                v.outcome = COMPLETED if done and not v.starts_mid_session else PARTIAL
                v.ends_mid_session = not done
                if not done:
                    v.cause = f"capture ends during the stop sequence ({s.stage.value}); {v.cause}"
            else:
                v.outcome = FAILED
        else:
            v.outcome = PARTIAL
            v.ends_mid_session = True
            v.stage, v.step, v.reason, v.origin = s.stage.value, STEP[s.stage], "", ""
            v.cause = f"capture ends mid-session at {s.stage.value} ({DESCRIPTION[s.stage]})"
        if v.starts_mid_session:
            v.cause = f"capture starts mid-session; {v.cause}"

    def _starts_mid(self, s: Session) -> bool:
        first_walk = s.v.charger_walk[0][1] if s.v.charger_walk else ""
        vwalk = s.v.vehicle_walk
        if not first_walk or not vwalk:
            return False
        st = int(first_walk, 16)
        first_v = s.v.vehicle_stages[0] if s.v.vehicle_stages else None
        vehicle_busy = first_v is not None and first_v.stage in (
            VStage.CHARGING.value,
            VStage.CONTACTORS_CLOSED.value,
        )
        return bool(vehicle_busy and st & (CHARGING | LOCKED))
