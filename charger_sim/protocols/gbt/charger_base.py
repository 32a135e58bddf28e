"""State, output frames and the stop / error / shutdown paths of the GB/T charger core.

:class:`ChargerBase` holds everything the charger knows and sends; :class:`.charger.GbtCharger` adds
the inputs (BMS frames, timers) and the normal path through the stages.  Section numbers (§) refer
to the GB/T fact sheet.
"""

from __future__ import annotations

import abc
import logging
import math

from ...codec import Codec, Value, load_dbc
from ...errors import Origin
from ...frames import Frame
from ...plant.harness import Harness
from ...plant.power import Mode, PowerStage
from ..base import Core, Cyclic, Deadlines, FaultRaised, Outcome, Role, SessionEnded, Snapshot, StageChanged
from ..machine import StageMachine
from . import BMS_ADDRESS, CHARGER_ADDRESS, TP_PGNS
from . import timing as T
from .config import GbtChargerConfig
from .messages import CHARGER_TX, Router, bcl_problem, charge_current, cts_values, flags
from .states import STEP, TALKING, TRANSITIONS, Stage
from .stops import CEM_BIT, REASONS, cst_bits
from .transport import TransportEndpoint

log = logging.getLogger(__name__)

RX_MESSAGES = ("BHM", "BRO", "BCL", "BSM", "BST", "BSD", "BEM")
# Timeouts cancelled whenever the charger leaves the normal path.
WATCHDOGS = (
    *("bhm", "insulation", "insulation_measure", "brm", "bcp", "bro", "bro_ready", "precharge"),
    *("relay", "bcl", "bcs", "pause", "charge_time", "ramp"),
)


class ChargerBase(Core):
    """The charger's state and outputs (address 0x56, BMS 0xF4); see :class:`.charger.GbtCharger`."""

    role = Role.CHARGER

    def __init__(self, config: GbtChargerConfig, harness: Harness, codec: Codec | None = None) -> None:
        super().__init__()
        self.config = config
        self.harness = harness
        self.codec = codec or load_dbc("gbt27930")
        self._tx = {n: self.codec.message(n) for n in CHARGER_TX}
        self._router = Router(self.codec, CHARGER_ADDRESS, BMS_ADDRESS, RX_MESSAGES)
        self._bcl = self.codec.message("BCL")
        self._bcl_raw = b""  # data of the last BCL decoded
        self._demand = (0.0, 0.0, False)  # BCL current (A, positive), voltage (V), CV mode
        self.tp = TransportEndpoint(
            CHARGER_ADDRESS, max_packets_per_cts=config.tp_window, accept_pgns=TP_PGNS
        )
        self._cts_base = config.cts_base()
        self.sm = StageMachine(Stage, TRANSITIONS, Stage.IDLE)
        self.stage: Stage = Stage.IDLE  # mirrors self.sm (plain attribute: read on every frame)
        self.power = PowerStage(config.power_spec())
        self.deadlines = Deadlines()
        self.cyclic: dict[str, Cyclic] = {}
        self._next: tuple[float | None] | None = None  # next_deadline() cache; None = stale
        self.bms: dict[str, dict[str, Value]] = {}  # last decoded values per BMS message
        self.bsm_state: dict[str, int] = {}  # trusted BSM 2-bit states (untrusted values keep these)
        self.crm = 0x00
        self.cro = 0x00
        self.cst_fields: tuple[str, ...] = ()
        self.cem_fields: set[str] = set()
        self.paused = False
        self.bst_seen = False
        self.bcl_seen = False
        self.bhm_voltage: float | None = None
        self.insulation_phase = ""
        self.insulation_voltage = 0.0
        self.insulation_result_ohm: float | None = None
        self.retries = 0
        self.stop_reason = REASONS["operator_stop"]
        self.stopping = False  # a stop or error path began (stop_reason is meaningful)
        self.stop_detail = ""
        self.stop_stage: Stage | None = None
        self.faults: list[str] = []
        self.charge_start: float | None = None
        self.charge_seconds = 0.0  # accumulated over re-handshakes (CCS/CSD charge time)
        self._charging_since: float | None = None
        self.frames_sent = 0
        self.frames_received = 0
        self.bad_frames = 0
        self._give_up = False
        self._retry_due = False
        self._last_cst = b""
        self._last_cem = b""
        # fault catalogue: why the last BCL was unusable, the first receive timeout of the session,
        # when the charger started, the output voltage when K1/K2 opened (adhesion check)
        self._bcl_bad = ""
        self._first_fault: tuple[str, Stage] | None = None
        self._started = 0.0
        self._v_at_open: float | None = None

    # ---- helpers ---------------------------------------------------------------------------
    def _go(self, trigger: str, now: float, detail: str = "") -> None:
        stage: Stage = self.sm.fire(trigger)
        self.stage = stage
        log.debug("%.3f charger %s -> %s", now, trigger, stage.value)
        self.emit(StageChanged(now, Role.CHARGER, stage.value, STEP[stage], detail))

    def _send_every(self, name: str, period: str, now: float) -> None:
        self.cyclic[name] = Cyclic(T.limit(period), now)

    def _quiet(self, *names: str) -> None:
        for name in names or tuple(self.cyclic):
            self.cyclic.pop(name, None)

    def _dc_link(self) -> float | None:
        """The battery voltage on the output: through the charger's own DC relays K1/K2, or through
        welded ones (the plant's ``welded``: the DC path stays closed when the relays open)."""
        h = self.harness
        return h.dc_link_voltage if h.is_on("k1k2") or h.welded else None

    def _cc1_volts(self) -> float:
        """Detection point 1 as the charger reads it (GB/T 18487.1 annex B): 4 V fully connected.

        A plant that drives the line as a logic level (``Harness.set("cc1", True)``) means connected;
        without a ``cc1`` line the plug state (``Harness.connected``) decides.
        """
        h = self.harness
        if "cc1" in h.overrides:
            return h.overrides["cc1"]
        v = h.lines.get("cc1")
        if v is None or v == 1.0:
            return T.CC1_CONNECTED_V if h.connected else 12.0
        return v

    def _cc1_ok(self) -> bool:
        return abs(self._cc1_volts() - T.CC1_CONNECTED_V) <= T.LINE_BAND_V

    def _b(self, name: str, signal: str, default: Value = 0) -> Value:
        values = self.bms.get(name)
        return default if values is None else values.get(signal, default)

    def _ramp_check(self, now: float, seconds: float) -> None:
        self.deadlines.set("ramp", now + max(seconds, 0.0) + 1e-6)

    @abc.abstractmethod
    def _tick(self, now: float) -> None:
        """Periodic work of the current stage (the power stage moved to ``now`` first)."""

    def _regulate(self, now: float) -> None:
        """The output setpoint from BCL (§6 step 8): CC follows the current demand, never above the
        voltage demand; CV regulates the voltage demand with the current demand as ceiling."""
        power = self.power
        power.advance(now, self._dc_link())  # (a no-op when _tick already moved it to ``now``)
        if self.paused or not self.bcl_seen or power.faulted:
            power.set_current(0.0)
            return
        i_dem, v_dem, cv = self._demand
        v = power.voltage
        if cv or v > v_dem:
            target = min(max(power.current + T.CV_GAIN_A_PER_V * (v_dem - v), 0.0), i_dem)
        else:
            target = i_dem
        power.set_current(target)

    def _take_bcl(self, values: dict[str, Value], data: bytes) -> bool:
        """A new BCL: the demand within min(BCL, BCP maximum, CML maximum), or unusable (§4.3, §7):
        an unusable BCL counts as not received (the BCL watchdog keeps running).  True if taken."""
        problem = bcl_problem(values)
        if problem:
            self._bcl_bad = problem
            self.bad_frames += 1
            return False
        self._bcl_bad = ""
        self.bms["BCL"] = values
        self._bcl_raw = data
        cfg = self.config
        i_max, v_max = cfg.max_current, cfg.max_voltage
        bcp = self.bms.get("BCP")
        if bcp is not None:
            i_bcp, v_bcp = charge_current(bcp["MaxChargeCurrent"]), float(bcp["MaxTotalChargeVoltage"])
            i_max = min(i_max, i_bcp)  # a BCP of 0 A (or a discharge current) allows no charge current
            v_max = min(v_max, v_bcp) if v_bcp > 0.0 else v_max
        self._demand = (
            min(charge_current(values["CurrentDemand"]), i_max),
            min(float(values["VoltageDemand"]), v_max),
            int(values["ChargeMode"]) == 1,
        )
        return True

    # ---- stage entries shared by the normal and the error path ------------------------------
    def _enter_recognition(self, now: float) -> None:
        for name in ("BRM", "BCP", "BRO", "BCL", "BCS", "BST", "BSD", "BEM"):
            self.bms.pop(name, None)
        self.bsm_state.clear()
        self._bcl_raw = b""
        self._bcl_bad = ""
        self.crm = 0x00
        self.cro = 0x00
        self.bcl_seen = self.bst_seen = self.paused = False
        self._send_every("CRM", "crm_period", now)
        self.deadlines.set("brm", now + T.limit("brm"))

    # ---- stop and error paths ----------------------------------------------------------------
    def _leave_normal_path(self, code: str, now: float) -> None:
        self.stop_reason = REASONS[code]
        self.stop_stage = self.stage
        self.stopping = True
        self.deadlines.cancel(*WATCHDOGS)
        self._quiet()
        if self._charging_since is not None:
            self.charge_seconds += now - self._charging_since
            self._charging_since = None
        self.power.advance(now, self._dc_link())
        if self.power.mode is Mode.CURRENT:
            self.power.set_current(0.0, stopping=True)
            self.deadlines.set("stop_current", now + T.limit("stop_current"))
            # wake up when the ramp is below 5 A, to open K1/K2 right then
            down = (self.power.current - T.STOP_CURRENT_A) / self.power.spec.stop_slew_a_per_s
            self._ramp_check(now, down)
        else:
            self.power.set_off()
        log.info("%.3f charger leaves the normal path in %s: %s", now, self.stage.value, code)

    def _begin_stop(self, code: str, now: float) -> None:
        """Orderly end through CST (§6 step 9)."""
        self._leave_normal_path(code, now)
        self.cst_fields = cst_bits(code)
        self._last_cst = self._tx["CST"].encode(flags(self._tx["CST"], self.cst_fields))
        self._send_every("CST", "cst_period", now)
        self._go("stop", now, self.stop_reason.cause)
        if not self.bst_seen:
            self.deadlines.set("bst", now + T.limit("bst"))
        self.deadlines.set("bsd", now + T.limit("bsd"))
        self._tick(now)

    def _enter_error(self, code: str, now: float) -> None:
        """Receive timeout (or BEM): CEM, output down, K1/K2 open, then re-handshake (§8)."""
        self._leave_normal_path(code, now)
        self.faults.append(code)
        if self._first_fault is None:
            self._first_fault = (code, self.stop_stage or self.stage)
        reason = self.stop_reason
        self.emit(FaultRaised(now, Role.CHARGER, code, reason.cause, reason.origin))
        self.cem_fields = {CEM_BIT[code]} if code in CEM_BIT else set()
        self._last_cem = self._tx["CEM"].encode(flags(self._tx["CEM"], self.cem_fields))
        if self.cem_fields:
            self._send_every("CEM", "cem_period", now)
        left = self.config.max_rehandshakes - self.retries
        self._go("timeout", now, f"{reason.cause}; {left} re-handshake(s) left")
        self._retry_due = False
        self.deadlines.set("retry_hold", now + T.limit("retry_hold"))
        self.deadlines.set("retry_giveup", now + T.limit("retry_giveup"))
        self._tick(now)

    def _retry_or_give_up(self, now: float) -> None:
        power = self.power
        ready = not self.harness.is_on("k1k2") and power.current <= T.STOP_CURRENT_A
        ready = ready and power.voltage <= T.OUTPUT_SAFE_V  # (welded relays: the timeout is final)
        if not (ready or self._give_up):
            return  # wait for the preconditions (until retry_giveup)
        self.deadlines.cancel("retry_hold", "retry_giveup")
        self._retry_due = False
        self._quiet("CEM")
        self.cem_fields = set()
        if self._give_up or self.retries >= self.config.max_rehandshakes or not ready:
            end_phase = self.stop_reason.code in ("bst_timeout", "bsd_timeout")
            if self.retries and not end_phase:
                tried = f"{self.retries} re-handshake(s) did not help"
                first = self._first_fault
                if first is not None and first[0] != self.stop_reason.code:
                    tried += f" (the first timeout: {first[0]} in {first[1].value})"
                self.stop_detail = f"{self.stop_detail}; {tried}" if self.stop_detail else tried
            self._go("give_up", now, "no further re-handshake")
            self._enter_shutdown(now)
            return
        self.retries += 1
        self.stopping = False
        self.stop_detail = ""
        self._go("retry", now, f"re-handshake {self.retries} of {self.config.max_rehandshakes}: CRM 0x00")
        self._enter_recognition(now)

    def _abort(self, code: str, now: float) -> None:
        """Stop before the BMS is recognised: no CST, straight to shutdown."""
        self._leave_normal_path(code, now)
        self._go("abort", now, self.stop_reason.cause)
        self._enter_shutdown(now)

    def _statistics(self, now: float) -> None:
        self.deadlines.cancel("bst", "bsd")
        self._quiet("CST", "CEM")
        self._go("statistics", now, "BSD received")
        self._send_every("CSD", "csd_period", now)
        self.deadlines.set("csd_hold", now + T.limit("csd_hold"))

    def _end_fault(self, code: str, now: float) -> None:
        """BST or BSD missing in the end phase: CEM with its flag, no re-handshake (§8)."""
        self._note_shutdown_fault(code)
        self.emit(FaultRaised(now, Role.CHARGER, code, REASONS[code].cause, REASONS[code].origin))
        self.cem_fields.add(CEM_BIT[code])
        self._last_cem = self._tx["CEM"].encode(flags(self._tx["CEM"], self.cem_fields))
        if "CEM" not in self.cyclic:
            self._send_every("CEM", "cem_period", now)

    def _note_shutdown_fault(self, code: str) -> None:
        self.faults.append(code)
        if self.stop_reason.normal:
            self.stop_reason = REASONS[code]

    def _enter_shutdown(self, now: float) -> None:
        self.deadlines.cancel(*WATCHDOGS, "bst", "bsd", "csd_hold")
        self._quiet()
        self.power.advance(now, self._dc_link())
        if self.power.current <= T.STOP_CURRENT_A:
            self._open_k1k2()
        self.harness.set("k3k4", False)  # auxiliary power off (kept until BSD, GB/T 18487.1-2023)
        self.deadlines.set("unlock_wait", now + T.limit("unlock_wait"))
        self._ramp_check(now, self.power.time_to_voltage_below(T.OUTPUT_SAFE_V))
        self._tick(now)

    def _cc1_fault(self, now: float) -> None:
        """Line supervision (GB/T 18487.1 annex B): CC1 left its 4 V band.  Before recognition no CST;
        from recognition on a CST fault stop (connector fault), current <= 5 A within 100 ms (§7)."""
        self.stop_detail = f"CC1 reads {self._cc1_volts():.1f} V"
        if self.stage in TALKING:
            self._begin_stop("cc1_fault", now)
            return
        self._leave_normal_path("cc1_fault", now)
        if now <= self._started + 1e-9:  # at the start instant: the plug was never confirmed (step 1)
            self.stop_stage = Stage.IDLE
        self._go("abort", now, self.stop_reason.cause)
        self._enter_shutdown(now)

    def _open_k1k2(self) -> None:
        """K1/K2 open, output off; the output voltage then is what the adhesion check compares with."""
        if self.harness.is_on("k1k2"):
            self._v_at_open = self.power.voltage
        self.harness.set("k1k2", False)
        self.power.set_off()

    def _adhesion_check(self, now: float) -> None:
        """Shutdown: the output never fell below 60 V.  Still at the battery voltage it had when K1/K2
        opened: the DC contactors are welded (GB/T 18487.1); else the discharge failed.  Either way the
        connector stays locked (live pins) and the session ends."""
        self.power.advance(now, self._dc_link())
        volts = self.power.voltage
        ref = self._v_at_open
        welded = ref is not None and ref > T.OUTPUT_SAFE_V and volts >= T.WELDED_HOLD * ref
        code = "contactor_welded" if welded else "output_not_discharged"
        was = self.stop_reason.code
        self._note_shutdown_fault(code)
        self.emit(FaultRaised(now, Role.CHARGER, code, REASONS[code].cause, REASONS[code].origin))
        detail = f"{volts:.0f} V on the output {T.limit('unlock_wait'):g} s into the shutdown"
        if self.stop_reason.code != was:
            self.stop_detail = f"{detail} (the stop: {was}); connector kept locked"
        self._go("kept_locked", now, f"{detail}: {code}, connector kept locked")
        self._finish(now)

    def _finish(self, now: float) -> None:
        reason = self.stop_reason
        stage = self.stop_stage or Stage.IDLE
        completed = reason.normal and self.charge_start is not None and reason.origin is Origin.VEHICLE
        cause = reason.cause + (f": {self.stop_detail}" if self.stop_detail else "")
        outcome = Outcome.COMPLETED if completed else Outcome.STOPPED
        where, step = stage.value, STEP[stage]
        self.emit(SessionEnded(now, Role.CHARGER, outcome, reason.code, cause, where, step, reason.origin))
        self.deadlines.clear()
        self._quiet()
        self.finished = True

    # ---- frames out --------------------------------------------------------------------------
    def _charge_minutes(self, now: float) -> int:
        seconds = self.charge_seconds + (now - self._charging_since if self._charging_since else 0.0)
        return min(600, int(seconds // 60))

    def _frame(self, name: str, now: float) -> Frame:
        cfg = self.config
        codec = self._tx[name]
        values: dict[str, Value]
        if name == "CCS":
            self._regulate(now)
            values = {
                "OutputVoltage": round(self.power.voltage, 1),
                "OutputCurrent": -round(self.power.current, 1),
                "ChargeTime": self._charge_minutes(now),
                "ChargePermit": 0 if self.paused else 1,
            }
            frame = codec.frame(values, now)
            if cfg.ccs_length == 7:
                frame = Frame(frame.arbitration_id, frame.data[:7], True, now)
            return frame
        if name == "CHM":
            values = {"ProtocolVersionMinor": 1, "ProtocolVersionMajor": 1}  # V1.1: 01 01 00
        elif name == "CRM":
            area = cfg.area_code.encode("ascii").ljust(3, b"\xff") if cfg.area_code else b"\xff\xff\xff"
            values = {
                "RecognitionResult": self.crm,
                "ChargerNumber": cfg.charger_number,
                "ChargerAreaCode1": area[0],
                "ChargerAreaCode2": area[1],
                "ChargerAreaCode3": area[2],
            }
        elif name == "CTS":
            values = cts_values(self._cts_base, now)
        elif name == "CML":
            values = {
                "MaxOutputVoltage": cfg.max_voltage,
                "MinOutputVoltage": cfg.min_voltage,
                "MaxOutputCurrent": -cfg.max_current,
                "MinOutputCurrent": -cfg.min_current,
            }
        elif name == "CRO":
            values = {"ChargerReady": self.cro}
        elif name == "CST":
            frame = codec.frame(flags(codec, self.cst_fields), now)
            self._last_cst = frame.data
            return frame
        elif name == "CEM":
            frame = codec.frame(flags(codec, self.cem_fields), now)
            self._last_cem = frame.data
            return frame
        else:  # CSD
            values = {
                "ChargeTime": self._charge_minutes(now),
                "OutputEnergy": min(6553.5, round(self.power.energy_wh / 1000.0, 1)),
                "ChargerNumber": cfg.charger_number,
            }
        return codec.frame(values, now)

    # ---- views -------------------------------------------------------------------------------
    def _status(self) -> str:
        stage = self.stage
        if stage is Stage.HANDSHAKE:
            return "CHM"
        if stage is Stage.INSULATION_TEST:
            return f"CHM, insulation {self.insulation_phase}"
        if stage is Stage.RECOGNITION:
            return f"CRM 0x{self.crm:02X}"
        if stage is Stage.CONFIGURATION:
            return "CTS+CML"
        if stage in (Stage.PRECHARGE, Stage.CONTACTORS) or (stage is Stage.CHARGING and not self.bcl_seen):
            return f"CRO 0x{self.cro:02X}"
        if stage is Stage.CHARGING:
            return "CCS pause" if self.paused else "CCS allow"
        if stage is Stage.STOPPING:
            text = f"CST {self._last_cst.hex(' ').upper()}"
            return text + (f", CEM {self._last_cem.hex(' ').upper()}" if "CEM" in self.cyclic else "")
        if stage is Stage.STATISTICS:
            return "CSD"
        if stage is Stage.ERROR:
            return f"CEM {self._last_cem.hex(' ').upper()}" if self._last_cem else "BEM received"
        return "off" if stage is not Stage.IDLE else "plugged"

    def snapshot(self) -> Snapshot:
        stage = self.stage
        last_fault = self.faults[-1] if self.faults else ""
        if not last_fault and self.stopping and not self.stop_reason.normal:
            last_fault = self.stop_reason.code
        return Snapshot(
            stage=stage.value,
            step=STEP[stage],
            values={
                "status": self._status(),
                "k1k2": self.harness.is_on("k1k2"),
                "k3k4": self.harness.is_on("k3k4"),
                "lock": self.harness.is_on("lock"),
                "target_voltage": float(self._b("BCL", "VoltageDemand")),
                "current_request": charge_current(self._b("BCL", "CurrentDemand")),
                "present_voltage": self.power.voltage,
                "present_current": self.power.current,
                "power_kw": self.power.voltage * self.power.current / 1000.0,
                "energy_kwh": self.power.energy_wh / 1000.0,
                "soc": float(self._b("BCS", "SOC")),
                "frames_sent": self.frames_sent,
                "frames_received": self.frames_received,
                "retries": self.retries,
                "last_fault": last_fault,
            },
        )


def _ohm(r: float | None) -> str:
    if r is None:
        return "?"
    if math.isinf(r):
        return "open circuit"
    return f"{r / 1e6:.2f} MOhm" if r >= 1e6 else f"{r / 1e3:.1f} kOhm"
