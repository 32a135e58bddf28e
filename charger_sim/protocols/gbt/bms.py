"""Simulated GB/T 27930-2015 BMS (sans-I/O) on the shared battery model.

BRM identity, BCP limits from the pack, BCL demand following the charge curve (CC) or a voltage
setpoint (CV), BCS/BSM from the pack state, optional BMV/BMT cell data, BST reasons (SOC target,
cell voltage, over-temperature, insulation...), BEM on its own receive timeouts.  Timings default to
capture A of the fact sheet (§9); quirks seen in the field are options.  Everything it reports comes
from the pack model and the charger's output on the DC link.
"""

from __future__ import annotations

import logging
import math

from ...bms.battery import PROTECTION_CELL_OVER_VOLTAGE, Battery
from ...bms.monitor import PackMonitor
from ...codec import Codec, Value, load_dbc
from ...errors import DecodeError, Origin
from ...frames import Frame
from ...plant.harness import Harness
from ..base import Core, Cyclic, Deadlines, Outcome, Role, SessionEnded, Snapshot, StageChanged
from ..machine import StageMachine
from . import BMS_ADDRESS, CHARGER_ADDRESS
from . import timing as T
from .bms_frames import BmsFrames
from .bms_states import (
    ASLEEP_OR_DONE,
    BEM_FLAG,
    BEM_STAGES,
    HOUSEKEEPING_PERIOD,
    V_STEP,
    V_TALKING,
    V_TRANSITIONS,
    VStage,
)
from .config import GbtBmsConfig
from .messages import UNTRUSTED, Router, charge_current, set_flags
from .transport import TransferDone, TransferFailed, TransportEndpoint

__all__ = ["V_STEP", "V_TRANSITIONS", "GbtBms", "GbtBmsConfig", "VStage"]

log = logging.getLogger(__name__)

_RX = ("CHM", "CRM", "CTS", "CML", "CRO", "CCS", "CST", "CSD", "CEM")


class GbtBms(Core):
    """The vehicle side: a BMS at address 0xF4 on the battery model, battery on the DC link."""

    role = Role.VEHICLE

    def __init__(
        self, config: GbtBmsConfig, battery: Battery, harness: Harness, codec: Codec | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.battery = battery
        self.harness = harness
        self.codec = codec or load_dbc("gbt27930")
        self._router = Router(self.codec, BMS_ADDRESS, CHARGER_ADDRESS, _RX)
        self.tp = TransportEndpoint(BMS_ADDRESS, rts_max_packets=config.tp_window)
        self._tp_queue: list[tuple[int, bytes]] = []
        self.sm = StageMachine(VStage, V_TRANSITIONS, VStage.ASLEEP)
        self.stage: VStage = VStage.ASLEEP
        self.deadlines = Deadlines()
        self.cyclic: dict[str, Cyclic] = {}
        self._next: tuple[float | None] | None = None  # next_deadline() cache; None = stale
        self.charger: dict[str, dict[str, Value]] = {}
        if config.cell_imbalance:
            battery.inject_cell_offset(0, config.cell_imbalance)
        harness.insulation_resistance_ohm = config.insulation_resistance_ohm
        self.pack = PackMonitor(battery)
        self.out = BmsFrames(config, battery, self.codec)
        self.request = 0.0  # A, BCL current demand (positive)
        self.bro = 0x00
        self.permit = 1  # BSM charge permit
        self.ccs_permit = 1  # last trusted CCS permit
        self.states: dict[str, int] = {}  # BSM abnormal states raised
        self.bst_fields: tuple[str, ...] = ()
        self.bem_fields: set[str] = set()
        self.cst_seen = False
        self.csd_seen = False
        self.paused_once = False
        self.stop_cause = ""
        self.frames_sent = 0
        self.frames_received = 0
        self._checked_at = -1.0  # battery.elapsed_s at the last charging check
        self._bst_since = 0.0

    # ---- helpers ---------------------------------------------------------------------------
    def _go(self, trigger: str, now: float, detail: str = "") -> None:
        stage: VStage = self.sm.fire(trigger)
        self.stage = stage
        self.emit(StageChanged(now, Role.VEHICLE, stage.value, V_STEP[stage], detail))

    def _send_every(self, name: str, period: str, at: float) -> None:
        self.cyclic[name] = Cyclic(T.limit(period), at)

    def _quiet(self, *names: str) -> None:
        for name in names or tuple(self.cyclic):
            self.cyclic.pop(name, None)

    def _current(self) -> float:
        """A into the pack: through the vehicle contactors and the charger's K1/K2."""
        return self.harness.output_current if self.harness.contactors_closed else 0.0

    # ---- inputs ----------------------------------------------------------------------------
    def start(self, now: float) -> list[Frame]:
        """Plugged in (CC2): the BMS sleeps until the charger's auxiliary power comes on."""
        self._next = None
        self.harness.set("cc2", T.CC2_CONNECTED_V)  # detection point 2: the plug is in (GB/T 18487.1)
        self.harness.battery_voltage = self.battery.terminal_voltage(0.0)
        self.deadlines.set("poll_aux", now)
        return []

    def receive(self, frame: Frame, now: float) -> list[Frame]:
        self._next = None
        route = self._router.route(frame)
        if route is None or self.stage in (VStage.ASLEEP, VStage.DONE):
            return []
        self.frames_received += 1
        if route.tp:
            out = self.tp.receive(frame, now) + self._tp_events(now)
            self.frames_sent += len(out)
            return out
        assert route.codec is not None
        name = route.codec.name
        if name == "CCS" and len(frame.data) < 7:  # 7 bytes tolerated (§10); shorter: no ChargePermit
            return []
        try:
            values = route.codec.decode(frame.data, allow_truncated=name == "CCS")
        except DecodeError:
            return []
        self._on_message(route.codec.name, values, now)
        self._keep_ticking(now)
        return []

    def _keep_ticking(self, now: float) -> None:
        """Without a cyclic frame the BMS still watches its contactors and the auxiliary power."""
        if not self.cyclic and "housekeeping" not in self.deadlines and self.stage not in ASLEEP_OR_DONE:
            self.deadlines.set("housekeeping", now + HOUSEKEEPING_PERIOD)

    def on_timer(self, now: float) -> list[Frame]:
        self._next = None
        out: list[Frame] = []
        tp_due = self.tp.next_deadline()
        if tp_due is not None and tp_due <= now + 1e-9:
            out += self.tp.on_timer(now) + self._tp_events(now)
        for name in self.deadlines.due(now):
            self._on_deadline(name, now)
        if self.stage not in ASLEEP_OR_DONE:
            self._tick(now)
        for name, cyc in list(self.cyclic.items()):
            if now + 1e-9 >= cyc.next_at and self.cyclic.get(name) is cyc:
                out += self._transmit(name, now)
                cyc.advance(now)
        self.frames_sent += len(out)
        self._keep_ticking(now)
        return out

    def next_deadline(self) -> float | None:
        # cached: asked several times per simulated step; every input method clears it
        cached = self._next
        if cached is None:
            nxt = self.deadlines.next()
            for cyc in self.cyclic.values():
                if nxt is None or cyc.next_at < nxt:
                    nxt = cyc.next_at
            tp = self.tp.next_deadline()
            if tp is not None and (nxt is None or tp < nxt):
                nxt = tp
            cached = self._next = (nxt,)
        return cached[0]

    def request_stop(self, now: float, reason: str = "operator_stop") -> list[Frame]:
        """The driver (or Ctrl-C in the ``bms`` role) ends charging: BST without a reason (§6 step 9)."""
        self._next = None
        if self.stage in V_TALKING:
            cause = "interrupted (Ctrl-C)" if reason == "interrupted" else reason.replace("_", " ")
            self._stop((), now, cause)
        return []

    # ---- transport: one outgoing session at a time, newest payload per message -----------------
    def _tp_send(self, pgn: int, payload: bytes, now: float) -> list[Frame]:
        if self.tp.sending_to(CHARGER_ADDRESS):
            self._tp_queue = [(p, d) for p, d in self._tp_queue if p != pgn] + [(pgn, payload)]
            return []
        return self.tp.send(pgn, payload, CHARGER_ADDRESS, now)

    def _tp_events(self, now: float) -> list[Frame]:
        out: list[Frame] = []
        for event in self.tp.drain_events():
            idle = not self.tp.sending_to(CHARGER_ADDRESS)
            if isinstance(event, TransferDone | TransferFailed) and self._tp_queue and idle:
                pgn, payload = self._tp_queue.pop(0)
                out += self.tp.send(pgn, payload, CHARGER_ADDRESS, now)
        return out

    # ---- charger messages --------------------------------------------------------------------
    def _on_message(self, name: str, values: dict[str, Value], now: float) -> None:
        self.charger[name] = values
        stage = self.stage
        if name == "CRM":
            result = int(values["RecognitionResult"])
            if result == 0x00 and stage in (VStage.HANDSHAKE, VStage.ERROR):
                self._recognition(now)
            elif result == 0xAA and stage is VStage.RECOGNITION and "BRM" in self.cyclic:
                self._configuration(now)
        elif name in ("CML", "CTS"):
            if stage is VStage.CONFIGURATION and "BCP" in self.cyclic:
                self.deadlines.cancel("bms_cts_cml")
                self._quiet("BCP")
                self.bro = 0x00
                self._send_every("BRO", "bms_bro_period", now)
                if self.config.bro_ready:
                    self.deadlines.set("bro_ready", now + self.config.bro_delay)
        elif name == "CRO":
            if stage is VStage.READY:
                self.deadlines.cancel("bms_cro")
                if int(values["ChargerReady"]) == 0xAA:
                    self._charging(now)
        elif name == "CCS":
            if stage is VStage.CHARGING:
                self.deadlines.set("bms_ccs", now + T.limit("bms_ccs"))
                permit = int(values.get("ChargePermit", 1))
                if permit < UNTRUSTED:  # 10 untrusted / 11 unused: keep the previous state
                    self.ccs_permit = permit
        elif name == "CST":
            self.cst_seen = True
            self.deadlines.cancel("bms_cst")
            if stage in V_TALKING:
                self._stop(("ChargerStopped",), now, "charger stopped (CST): BST in reply")
        elif name == "CSD":
            self.csd_seen = True
            self.deadlines.cancel("bms_csd")
        elif name == "CEM" and stage in V_TALKING and set_flags(values):
            self._error(now, "CEM " + ", ".join(set_flags(values)))

    # ---- stages ------------------------------------------------------------------------------
    def _recognition(self, now: float) -> None:
        self._quiet()
        self.deadlines.cancel("bms_crm", "bms_new_crm")
        self.bem_fields = set()
        self.cst_seen = self.csd_seen = False
        self._go("crm", now, "CRM 0x00 received")
        if self.config.answer_brm:
            self._send_every("BRM", "bms_brm_period", now + self.config.brm_delay)
            self.deadlines.set("bms_crm_aa", now + self.config.brm_delay + T.limit("bms_crm_aa"))

    def _configuration(self, now: float) -> None:
        self._quiet("BRM")
        self.deadlines.cancel("bms_crm_aa")
        self._go("recognised", now, "CRM 0xAA received")
        self._send_every("BCP", "bms_bcp_period", now)
        self.deadlines.set("bms_cts_cml", now + T.limit("bms_cts_cml"))

    def _ready(self, now: float) -> None:
        self.harness.contactors_closed = True
        self.bro = 0xAA
        self._send_every("BRO", "bms_bro_period", now)
        self._go("ready", now, "contactors closed, BRO 0xAA")
        self.deadlines.set("bms_cro", now + T.limit("bms_cro"))
        self.deadlines.set("bms_cro_aa", now + T.limit("bms_cro_aa"))

    def _charging(self, now: float) -> None:
        self.deadlines.cancel("bms_cro", "bms_cro_aa")
        self._quiet("BRO")
        self._go("charge", now, "CRO 0xAA received")
        start = now + self.config.bcl_delay
        for name, period in (("BCL", "bms_bcl_period"), ("BCS", "bms_bcs_period"), ("BSM", "bms_bsm_period")):
            self._send_every(name, period, start)
        if self.config.cell_data:
            self._send_every("BMV", "bms_cell_data_period", start)
        self.deadlines.set("bms_ccs", start + T.limit("bms_ccs"))
        self._update_request()

    def _stop(self, fields: tuple[str, ...], now: float, cause: str) -> None:
        """BST every 10 ms (§6 step 9): own reason, or ``ChargerStopped`` in reply to CST."""
        self.deadlines.cancel("bms_cro", "bms_cro_aa", "bms_ccs", "bms_cts_cml", "bms_crm_aa", "resume")
        self._quiet()
        self.request = 0.0
        self.bst_fields = fields
        self.stop_cause = self.stop_cause or cause
        self._send_every("BST", "bms_bst_period", now)
        self._bst_since = now
        self._go("stop", now, cause)
        if not self.cst_seen:
            self.deadlines.set("bms_cst", now + T.limit("bms_cst"))
        self.deadlines.set("bms_csd", now + T.limit("bms_csd"))
        self.deadlines.set("bms_stop_current", now + T.limit("bms_stop_current"))

    def _error(self, now: float, cause: str, bem: str | None = None) -> None:
        """Own receive timeout (BEM) or the charger's CEM: stop, open up, wait for a new CRM (§8)."""
        self.deadlines.clear()
        self._quiet()
        self.request = 0.0
        self.stop_cause = cause
        if bem is not None:
            self.bem_fields = {bem}
            self._send_every("BEM", "bms_bem_period", now)
        self._go("error", now, cause)
        self.deadlines.set("bms_new_crm", now + T.limit("bms_new_crm"))

    # ---- deadlines ---------------------------------------------------------------------------
    def _on_deadline(self, name: str, now: float) -> None:
        stage = self.stage
        if name == "poll_aux":
            if self.harness.is_on("k3k4"):
                self.deadlines.set("wake", now + self.config.wake_delay)
            else:
                self.deadlines.set("poll_aux", now + 0.05)
        elif name == "wake" and stage is VStage.ASLEEP:
            self._go("wake", now, "auxiliary power on")
            if self.config.send_bhm:
                self._send_every("BHM", "bms_bhm_period", now)
            self.deadlines.set("bms_crm", now + T.limit("bms_crm"))
        elif name == "bro_ready" and stage is VStage.CONFIGURATION:
            self._ready(now)
        elif name == "resume" and stage is VStage.CHARGING:
            self.permit = 1
        elif name in BEM_FLAG and stage in BEM_STAGES[name]:
            self._error(now, f"{name.removeprefix('bms_').upper()} timeout: BEM", BEM_FLAG[name])
        elif name == "bms_stop_current" and stage is VStage.STOPPING:
            self.harness.contactors_closed = False  # give up waiting for the current to fall
        elif name == "bms_new_crm" and stage is VStage.ERROR:  # §7: no new CRM 30 s after the BEM
            self.stop_cause = f"{self.stop_cause}; no new handshake (CRM) within {T.limit(name):g} s"
            self._sleep(now)  # the BMS gives up: contactors open, session over

    # ---- periodic work -----------------------------------------------------------------------
    def _tick(self, now: float) -> None:
        current = self._current()
        self.pack.update(current, now)
        self.harness.battery_voltage = self.battery.terminal_voltage(current)
        if not self.harness.is_on("k3k4"):
            self._sleep(now)
            return
        if self.stage in V_TALKING:
            cc2 = self.harness.line("cc2", T.CC2_CONNECTED_V)
            cc2 = T.CC2_CONNECTED_V if cc2 == 1.0 and "cc2" not in self.harness.overrides else cc2
            if abs(cc2 - T.CC2_CONNECTED_V) > T.LINE_BAND_V:  # plug not (fully) in: BST CC2 fault
                self._stop(("Cc2VoltageFault",), now, f"detection point 2 (CC2) reads {cc2:.1f} V, not 6 V")
        stage = self.stage
        if stage is VStage.CHARGING:
            self._charging_tick(current, now)
        elif stage in (VStage.STOPPING, VStage.ERROR) and current <= T.STOP_CURRENT_A:
            self.harness.contactors_closed = False
        if (
            stage is VStage.STOPPING
            and self.cst_seen
            and not self.harness.contactors_closed
            and now + 1e-9 >= self._bst_since + self.config.bst_hold
        ):
            self._quiet("BST")
            self._go("statistics", now, "CST seen and current <= 5 A: contactors open, BSD")
            self._send_every("BSD", "bms_bsd_period", now)

    def _charging_tick(self, current: float, now: float) -> None:
        """After each pack-model step (1 s): protections, stop conditions, pause, the BCL demand."""
        cfg, battery = self.config, self.battery
        if battery.elapsed_s == self._checked_at:
            return  # nothing the BMS measures has moved since the last check
        self._checked_at = battery.elapsed_s
        tripped = self.pack.tripped
        if "over_temperature" in tripped:
            self.states["OverTemperature"] = 1
            self._stop(("BatteryOverTemp",), now, "battery protection: over-temperature")
        elif tripped & {PROTECTION_CELL_OVER_VOLTAGE, "cell_under_voltage"}:
            high = PROTECTION_CELL_OVER_VOLTAGE in tripped
            self.states["CellVoltageState"] = 1 if high else 2
            fields = ("CellVoltageSetpointReached",) if high else ("AbnormalVoltage",)
            self._stop(fields, now, f"battery protection: cell {'over' if high else 'under'}-voltage")
        elif self.harness.insulation_resistance_ohm < T.INSULATION_OHM_PER_V * self.harness.battery_voltage:
            self.states["Insulation"] = 1
            self._stop(("InsulationFault",), now, "insulation fault on the DC link")
        elif battery.soc >= cfg.target_soc:
            self._stop(("SocTargetReached",), now, f"target SOC {cfg.target_soc:g} % reached")
        elif self.harness.battery_voltage >= self.out.max_total_voltage and current > 0:
            self._stop(("TotalVoltageSetpointReached",), now, "total-voltage setpoint reached")
        elif cfg.charge_mode == "cc" and self._cell_limited():
            end = battery.spec.taper_end_current_a
            cause = f"the highest cell is at its charge voltage: demand below {end:g} A before the target"
            self._stop(("CellVoltageSetpointReached",), now, cause)
        else:
            if cfg.pause_at_soc is not None and not self.paused_once and battery.soc >= cfg.pause_at_soc:
                self.paused_once = True
                self.permit = 0
                self.deadlines.set("resume", now + cfg.pause_duration)
            self._update_request()

    def _cell_limited(self) -> bool:
        """CC mode: the highest cell's voltage limit (not SOC or temperature) holds the demand below the
        pack's end-of-charge current: charging on would only trickle (a cell far ahead of the rest)."""
        battery = self.battery
        end = battery.spec.taper_end_current_a
        return self.pack.limit < end and battery.cv_current_limit() <= self.pack.limit + 1e-6

    def _check_cells(self, now: float) -> None:
        """Every BSM cycle: the highest cell against the BCP maximum (§4.2)."""
        if self.stage is VStage.CHARGING and self.out.max_cell(self._current()) >= self.out.max_cell_voltage:
            self.states["CellVoltageState"] = 1
            self._stop(("CellVoltageSetpointReached",), now, "a cell reached the BCP maximum cell voltage")

    def _update_request(self) -> None:
        cml = charge_current(self.charger.get("CML", {}).get("MaxOutputCurrent", -400.0)) or 400.0
        if self.config.charge_mode == "cv":
            b = self.battery
            allowed = min(b.taper_current_limit(), b.spec.max_charge_current_a * b.temperature_derating())
        else:
            allowed = self.pack.limit
        self.request = max(0.0, math.floor(min(allowed, self.out.max_current, cml) * 10.0) / 10.0)

    def _sleep(self, now: float) -> None:
        self.harness.contactors_closed = False
        self._quiet()
        self.deadlines.clear()
        self._go("sleep", now, "auxiliary power off")
        soc_reached = self.battery.soc >= self.config.target_soc
        self.emit(
            SessionEnded(
                now,
                Role.VEHICLE,
                Outcome.COMPLETED if soc_reached else Outcome.STOPPED,
                "target_soc" if soc_reached else "stopped",
                self.stop_cause or "auxiliary power off",
                VStage.DONE.value,
                7,
                Origin.VEHICLE,
            )
        )
        self.finished = True

    # ---- frames out --------------------------------------------------------------------------
    def _transmit(self, name: str, now: float) -> list[Frame]:
        out = self.out
        if name == "BCL":  # every 50 ms: first
            mode = 1 if self.config.charge_mode == "cv" else 2
            volts = out.cv_voltage if mode == 1 else out.max_total_voltage
            values = {"VoltageDemand": volts, "CurrentDemand": -self.request, "ChargeMode": mode}
            return [out.single("BCL", values, now)]
        current = self._current()
        if name == "BCS":
            return self._tp_send(0x1100, out.bcs(current, self.request), now)
        if name == "BSM":
            self._check_cells(now)
            if self.stage is not VStage.CHARGING:
                return []
            return [out.bsm(self.states, self.permit, now)]
        if name == "BST":
            return [out.flags("BST", self.bst_fields, now)]
        if name == "BRM":
            return self._tp_send(0x0200, out.brm(), now)
        if name == "BCP":
            return self._tp_send(0x0600, out.bcp(current), now)
        if name == "BMV":
            return self._tp_send(0x1500, out.bmv(current), now) + self._tp_send(0x1600, out.bmt(), now)
        if name == "BHM":
            return [out.single("BHM", {"MaxPermissibleChargeVoltage": out.max_total_voltage}, now)]
        if name == "BRO":
            return [out.single("BRO", {"BmsReady": self.bro}, now)]
        if name == "BEM":
            return [out.flags("BEM", tuple(self.bem_fields), now)]
        return [out.bsd(current, now)]  # BSD

    # ---- views -------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        current = self._current()
        return Snapshot(
            stage=self.stage.value,
            step=V_STEP[self.stage],
            values={
                "soc": self.battery.soc,
                "battery_voltage": self.battery.terminal_voltage(current),
                "max_cell_voltage": self.battery.max_cell_voltage(current),
                "temperature": self.battery.temperature_c,
                "request": self.request,
                "permit": self.permit,
                "contactors_closed": self.harness.contactors_closed,
                "frames_sent": self.frames_sent,
            },
        )
