"""State, helpers, stop paths and output frames of the CCS bridge charger core.

:class:`ChargerBase` holds everything the charger knows and sends and how it stops (ramp down, error,
emergency stop, unlock); :class:`.charger_checks.ChargerChecks` adds what it watches on the vehicle's
frames and lines, and :class:`.charger.CcsCharger` the inputs and the DIN 70121 sequence.  § numbers
refer to the CCS fact sheet (``shared/protocols/ccs-over-can.md``).
"""

from __future__ import annotations

import logging

from ...codec import Codec, Value, load_dbc
from ...errors import Origin
from ...frames import Frame
from ...plant.harness import Harness
from ...plant.power import Mode
from ..base import Core, Cyclic, Deadlines, Outcome, Role, SessionEnded, Snapshot, StageChanged, StopReason
from ..machine import StageMachine
from . import timing as T
from .bridge import (
    VEHICLE_FRAMES,
    AliveCheck,
    EvseStatusCode,
    IsolationStatus,
    Notification,
    Processing,
    Protocol,
    Request,
    ResponseCode,
    next_alive,
    number,
    truth,
)
from .charger_frames import ChargerFrames
from .electrical import NO_PWM, CpState
from .evse import CcsChargerConfig, Evse
from .states import ACTIVE, ENDING, NUMBER, POWER, STEP, TRANSITIONS, Stage
from .stops import EMERGENCY, REASONS, RESPONSE

log = logging.getLogger(__name__)

# Stages whose vehicle frames are supervised (receive timeout, alive counter, pilot).
SUPERVISED = frozenset((*ACTIVE, *ENDING, Stage.ERROR))
C_LIKE = (CpState.C, CpState.D)  # D (ventilation) is accepted as ready, like C


class ChargerBase(Core):
    """The charger's state, outputs and stop paths; see :class:`.charger.CcsCharger`."""

    role = Role.CHARGER

    def __init__(self, config: CcsChargerConfig, harness: Harness, codec: Codec | None = None) -> None:
        super().__init__()
        self.config = config
        self.harness = harness
        self.codec = codec or load_dbc("ccs")
        self.t = T.seconds(config.revision)
        self._status_msg = self.codec.message("EvseStatus")
        self._rx = {self.codec.message(n).frame_id: self.codec.message(n) for n in VEHICLE_FRAMES}
        self._msg = {m.name: m for m in self._rx.values()}
        self._frames = ChargerFrames(self.codec, config)
        self.sm = StageMachine(Stage, TRANSITIONS, Stage.IDLE)
        self.stage: Stage = Stage.IDLE  # mirrors self.sm
        self.stage_since = 0.0
        self._sent_stage: Stage | None = None  # the stage the last EvseStatus carried
        self.evse = Evse(config, harness)
        self.power = self.evse.power  # the session reads ``charger.power``
        self.deadlines = Deadlines()
        self.cyclic: Cyclic | None = None
        self.ev: dict[str, dict[str, Value]] = {}
        self.request = int(Request.NONE)
        self.alive = AliveCheck()
        self._alive_armed = False
        self._advanced_at = 0.0  # last EvStatus whose counter advanced
        self._status_at = 0.0  # last EvStatus at all
        self.counter = 0
        self._b_since: float | None = None
        # what the answers say
        self.protocol = Protocol.NOT_NEGOTIATED
        self.response = ResponseCode.SNA
        self.processing = Processing.SNA
        self.status_code = EvseStatusCode.NOT_READY
        self.notification = Notification.NONE
        self.isolation = IsolationStatus.SNA
        self.cable_phase = ""
        self.test_voltage = 0.0
        self.isolation_ohm: float | None = None
        # bookkeeping
        self.stop_reason: StopReason | None = None
        self.stop_stage: Stage | None = None
        self.stop_detail = ""
        self.faults: list[str] = []
        self.charge_start: float | None = None
        self.frames_sent = 0
        self.frames_received = 0
        self.bad_frames = 0
        self._rx_at: dict[str, float] = {}  # last usable frame of each vehicle message
        self._bad: dict[str, str] = {}  # why a vehicle message's frames are unusable since its last good one
        self._rx_armed = False  # the first usable frame arms the receive timeout of all four

    def _go(self, trigger: str, now: float, detail: str = "") -> None:
        stage: Stage = self.sm.fire(trigger)
        self.stage = stage
        self.stage_since = now
        self.deadlines.cancel("sequence")
        log.debug("%.3f charger %s -> %s", now, trigger, stage.value)
        self.emit(StageChanged(now, Role.CHARGER, stage.value, STEP[stage], detail))

    def _ev(self, message: str, signal: str) -> float | None:
        return number(self._msg[message], self.ev.get(message), signal)

    def _flag(self, signal: str) -> bool | None:
        values = self.ev.get("EvStatus")
        return None if values is None else truth(values.get(signal))

    def _answer(
        self,
        now: float,
        response: ResponseCode = ResponseCode.OK,
        *,
        ongoing: bool = False,
        wait: bool = True,
    ) -> None:
        """Set the answer to the current request.  A finished answer that leaves the next step to the
        vehicle (``wait``) starts the sequence timer (V2G_SECC_Sequence_Timeout)."""
        self.response = response
        self.processing = Processing.ONGOING if ongoing else Processing.FINISHED
        if wait and not ongoing:
            self.deadlines.set("sequence", now + self.t["sequence"])

    def _shown(self) -> bool:
        """The current stage (and its answer) has gone out in at least one EvseStatus frame."""
        return self._sent_stage is self.stage

    def _enter_power_delivery_stop(self, trigger: str, now: float, detail: str) -> None:
        self._go(trigger, now, detail)
        self.evse.advance(now)
        self.power.set_current(0.0, stopping=True)
        self.deadlines.set("stop_current", now + self.t["stop_current"])
        self._answer(now)

    def _end_supervision(self) -> None:
        for name in list(VEHICLE_FRAMES):
            self.deadlines.cancel(f"rx:{name}")
        self.deadlines.cancel(
            "alive",
            "sequence",
            "ongoing",
            "authorized",
            "cp_detection",
            "communication_setup",
            "ready_to_charge",
            "cable_check",
            "isolation_measure",
            "precharge",
            "pause",
            "lock",
        )

    def _enter_unlock(self, trigger: str, now: float, detail: str) -> None:
        self.evse.set_duty(NO_PWM)
        self.evse.advance(now)
        self.power.set_off()
        self.evse.set_relays(False)
        self._go(trigger, now, detail)
        self.deadlines.set("unlock_wait", now + self.t["unlock_wait"])

    def _ramp_down_step(self, now: float) -> None:
        if self.power.current > T.CURRENT_OFF_A:
            return
        self.deadlines.cancel("stop_current")
        if self.power.mode is not Mode.OFF:
            self.power.set_off()
        if not self._shown():
            return
        if self.stage is Stage.EMERGENCY_STOP or (
            self.stage is Stage.ERROR and self.stop_stage in (Stage.PLUGGED_IN, Stage.CP_B_PWM)
        ):
            self._enter_unlock("release", now, f"output off after {self.stop_code()}")
        elif self.stage is Stage.ERROR:
            self.evse.set_relays(False)

    def stop_code(self) -> str:
        return self.stop_reason.code if self.stop_reason is not None else ""

    def _record_stop(self, code: str, now: float) -> None:
        if self.stop_reason is not None:
            if code not in self.faults and code != self.stop_reason.code:
                self.faults.append(code)
            return
        self.stop_reason = REASONS[code]
        # a C -> B drop is a stop begun in the current demand loop, even if the EV ends it from the pause
        paused_drop = code == "cp_state_b" and self.stage is Stage.PAUSED
        self.stop_stage = Stage.CURRENT_DEMAND if paused_drop else self.stage
        log.info("%.3f charger stop in %s: %s", now, self.stage.value, code)

    def _stop(self, code: str, now: float) -> None:
        """Begin the stop for ``code``: ramp down (normal, power flowing), error or emergency stop."""
        self._record_stop(code, now)
        reason = REASONS[code]
        stage = self.stage
        self.evse.advance(now)  # the ramp starts now, not at the last tick
        if code in EMERGENCY and self.sm.can("emergency"):
            self._end_supervision()
            self.status_code = EvseStatusCode.EMERGENCY_SHUTDOWN
            self.notification = Notification.STOP_CHARGING
            self.evse.set_duty(NO_PWM)
            self.power.set_off()
            self._go("emergency", now, self._cause(reason.cause))
            self.response, self.processing = ResponseCode.FAILED, Processing.FINISHED
            self.deadlines.set("stop_current", now + self.t["stop_current"])
            self._ramp_down_step(now)
            return
        if stage in ENDING or stage in (Stage.ERROR, Stage.EMERGENCY_STOP, Stage.SESSION_STOP):
            return  # already on the way out: noted only
        self.notification = Notification.STOP_CHARGING
        self.status_code = (
            EvseStatusCode.MALFUNCTION if reason.origin is Origin.CHARGER else EvseStatusCode.SHUTDOWN
        )
        if reason.normal and stage in POWER:
            self._enter_power_delivery_stop("ramp_down", now, self._cause(reason.cause))
            return
        if self.sm.can("error"):
            if self.power.mode is Mode.CURRENT:
                self.power.set_current(0.0, stopping=True)
            else:
                self.power.set_off()
            self._go("error", now, self._cause(reason.cause))
            self._answer(now, ResponseCode.OK if reason.normal else RESPONSE.get(code, ResponseCode.FAILED))
            if code == "isolation_fault":
                self.isolation = IsolationStatus.FAULT
            self.deadlines.set("stop_current", now + self.t["stop_current"])
            self._ramp_down_step(now)

    def _cause(self, cause: str) -> str:
        return cause + (f": {self.stop_detail}" if self.stop_detail else "")

    def _note_shutdown_fault(self, code: str, now: float) -> None:
        """The output stays live: never unlock a live connector; the session ends locked (§7)."""
        self.faults.append(code)
        if self.stop_reason is not None and self.stop_reason.normal:
            self.stop_reason = REASONS[code]
        self.status_code = EvseStatusCode.MALFUNCTION
        self._go("give_up", now, f"output stays at {self.evse.inlet_voltage():.0f} V: connector stays locked")
        self._finish(now)

    def _finish(self, now: float) -> None:
        reason = self.stop_reason or REASONS["operator_stop"]
        stage = self.stop_stage or Stage.IDLE
        completed = reason.normal and self.charge_start is not None and reason.origin is Origin.VEHICLE
        self.emit(
            SessionEnded(
                now,
                Role.CHARGER,
                Outcome.COMPLETED if completed else Outcome.STOPPED,
                reason.code,
                self._cause(reason.cause),
                stage.value,
                STEP[stage],
                reason.origin,
            )
        )
        self.deadlines.clear()
        self.finished = self.cyclic is None

    def target_current(self) -> float | None:
        return self._ev("EvTargets", "EvTargetCurrent")

    def _cycle_frames(self, now: float) -> list[Frame]:
        out = self._frames.build(self, now)
        self.counter = next_alive(self.counter)
        self._sent_stage = self.stage
        self.frames_sent += len(out)
        return out

    @staticmethod
    def _request_name(r: int) -> str:
        try:
            return Request(r).name
        except ValueError:
            return str(r)

    def snapshot(self) -> Snapshot:
        stage = self.stage
        volts, amps = self.evse.inlet_voltage(), self.power.current
        status = self._status_msg
        return Snapshot(
            stage=stage.value,
            step=STEP[stage],
            values={
                "status": status.describe("EvseStatusCode", int(self.status_code)),
                "evse_stage": NUMBER[stage],
                "ev_request": self.request,
                "response": status.describe("EvseResponseCode", int(self.response)),
                "processing": self.processing.name.lower(),
                "cp_state": self.evse.pilot.label,
                "cp_voltage": round(self.evse.pilot.high_v, 2),
                "cp_duty": self.evse.duty,
                "pp_ohm": self.evse.pp_ohm,
                "pp_code": self.evse.pp_code.name,
                "isolation": self.isolation.name.lower(),
                "locked": self.evse.locked,
                "relays": self.evse.relays,
                "target_voltage": self._ev("EvTargets", "EvTargetVoltage") or 0.0,
                "current_request": self._ev("EvTargets", "EvTargetCurrent") or 0.0,
                "present_voltage": volts,
                "present_current": amps,
                "power_kw": volts * amps / 1000.0,
                "energy_kwh": self.power.energy_wh / 1000.0,
                "soc": self._ev("EvStatus", "EvSoc") or 0.0,
                "frames_sent": self.frames_sent,
                "frames_received": self.frames_received,
                "last_fault": self.faults[-1]
                if self.faults
                else (self.stop_reason.code if self.stop_reason and not self.stop_reason.normal else ""),
            },
        )
