"""GB/T 27930-2015 charger core (sans-I/O): every phase with its timers from ``timing.py``.

Handshake (CHM/BHM, insulation test at a voltage derived from BHM), recognition (CRM 0x00 -> BRM ->
CRM 0xAA), configuration (BCP, CTS, CML, compatibility), BRO/CRO with pre-charge, charging (BCL, BCS,
BSM in; CCS every 50 ms following the demand in CV and CC, pause/resume), end (CST every 10 ms, BST,
BSD, CSD) and errors (CEM, re-handshake from CRM 0x00 up to 3 times).  Multi-packet messages come
through the J1939-21 transport; the charger answers every RTS with one CTS for all packets.
Section numbers (§) refer to the GB/T fact sheet.
"""

from __future__ import annotations

import logging

from ...codec import Value
from ...errors import DecodeError
from ...frames import Frame
from ...plant.power import Mode
from ..base import Role, StageChanged
from . import timing as T
from .charger_base import ChargerBase, _ohm
from .config import GbtChargerConfig
from .messages import NOT_AVAILABLE_V, TP_MESSAGES, UNTRUSTED, set_flags, version_text
from .states import TALKING, Stage
from .stops import BSM_STATES, BST_REASONS, REASONS
from .transport import MessageReceived

__all__ = ["GbtCharger", "GbtChargerConfig"]

log = logging.getLogger(__name__)

_BSM_NUMBERS = frozenset({"MaxCellVoltageNumber", "MaxTemperature", "MaxTempProbe", "MinTemperature"})
_BSM_NUMBERS |= {"MinTempProbe"}
_BSM_TOO_LOW = frozenset({"CellVoltageState", "SocState"})  # 10 = too low, not "untrusted"
# Stages where the charger supervises CC1 and stops on a fault (stop stages are ending anyway).
_CC1_SUPERVISED = frozenset({Stage.HANDSHAKE, Stage.INSULATION_TEST, *TALKING})
# BMS protocol versions this charger speaks (§4.1 BRM bytes 1-3, §2 compatibility, §11): major 1,
# i.e. V1.1 (2015) and V1.0 (2011, no BHM); a later minor of V1 is taken as backward compatible.
SUPPORTED_MAJOR = 1


class GbtCharger(ChargerBase):
    """The charger side of one GB/T 27930-2015 session: inputs and the normal path (§6)."""

    # ---- inputs ----------------------------------------------------------------------------
    def start(self, now: float) -> list[Frame]:
        """Operator start with the plug confirmed (CC1): lock, auxiliary power, CHM (§6 step 1)."""
        self._next = None
        self.power.reset_clock(now)
        self._started = now
        if not self._cc1_ok():  # plug not fully connected (GB/T 18487.1 annex B): no start
            self.stop_reason, self.stop_stage = REASONS["cc1_fault"], Stage.IDLE
            self.stop_detail = f"CC1 reads {self._cc1_volts():.1f} V at the start"
            self._go("abandon", now, "plug not confirmed (CC1)")
            self._finish(now)
            return []
        self.harness.set("lock", True)
        self.harness.set("k3k4", True)
        self._go("start", now, "connector locked, auxiliary power on")
        self._send_every("CHM", "chm_period", now)
        self.deadlines.set("bhm", now + T.limit("bhm"))
        return []

    def receive(self, frame: Frame, now: float) -> list[Frame]:
        self._next = None
        route = self._router.route(frame)
        if route is None or self.stage is Stage.DONE:
            return []
        self.frames_received += 1
        if route.tp:
            out = self.tp.receive(frame, now)
            for event in self.tp.drain_events():
                if isinstance(event, MessageReceived) and event.pgn in TP_MESSAGES:
                    self._on_message(TP_MESSAGES[event.pgn], event.payload, now)
            self.frames_sent += len(out)
            return out
        if route.codec is self._bcl and frame.data == self._bcl_raw:
            self._bcl_bad = ""
            if self.stage is Stage.CHARGING:  # hot path: the same demand again, every 50 ms
                self._on_bcl(now)
            return []
        assert route.codec is not None
        self._on_message(route.codec.name, frame.data, now)
        return []

    def on_timer(self, now: float) -> list[Frame]:
        self._next = None
        out: list[Frame] = []
        tp_due = self.tp.next_deadline()
        if tp_due is not None and tp_due <= now + 1e-9:
            out += self.tp.on_timer(now)
            self.tp.drain_events()  # failed transfers: the message's own timeout covers them
        for name in self.deadlines.due(now):
            self._on_deadline(name, now)
        self._tick(now)
        for name, cyc in list(self.cyclic.items()):
            if now + 1e-9 >= cyc.next_at and self.cyclic.get(name) is cyc:
                out.append(self._frame(name, now))
                cyc.advance(now)
        self.frames_sent += len(out)
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
        self._next = None
        stage = self.stage
        if stage in TALKING:
            self._begin_stop(reason, now)
        elif stage in (Stage.HANDSHAKE, Stage.INSULATION_TEST):
            self._abort(reason, now)
        elif stage is Stage.ERROR:
            self._give_up = True  # no further re-handshake
        elif stage is Stage.IDLE:
            self.stop_reason, self.stop_stage = REASONS[reason], Stage.IDLE
            self._go("abandon", now, "stopped before start")
            self._finish(now)
        return []

    def inject_power_fault(self, now: float) -> None:
        self._next = None
        self.power.faulted = True
        if self.stage in TALKING:
            self._begin_stop("charger_malfunction", now)
        elif self.stage in (Stage.HANDSHAKE, Stage.INSULATION_TEST):
            self._abort("charger_malfunction", now)

    # ---- BMS messages ------------------------------------------------------------------------
    def _decode(self, name: str, data: bytes) -> dict[str, Value] | None:
        codec = self.codec.message(name)
        try:
            # short TP payloads (41-byte BRM, fewer BMV cells) leave out what is not there
            return codec.decode(data, allow_truncated=name in ("BRM", "BMV", "BMT", "BSP"))
        except DecodeError as err:
            self.bad_frames += 1
            log.info("ignored BMS message: %s", err)
            if name == "BCL":
                self._bcl_bad = f"{len(data)} data byte(s), {codec.length} expected"
            return None

    def _on_message(self, name: str, data: bytes, now: float) -> None:
        values = self._decode(name, data)
        if values is None:
            return
        if name == "BSM":
            self._on_bsm(values, now)
            return
        if name == "BCL":
            if self._take_bcl(values, data) and self.stage is Stage.CHARGING:
                self._on_bcl(now)
            return
        self.bms[name] = values
        stage = self.stage
        if name == "BCS":
            if stage is Stage.CHARGING and self.bcl_seen:
                self.deadlines.set("bcs", now + T.limit("bcs"))
        elif name == "BST":
            self._on_bst(values, now)
        elif name == "BRO":
            self._on_bro(int(values["BmsReady"]), now)
        elif name == "BHM":
            if stage is Stage.HANDSHAKE:
                volts = float(values["MaxPermissibleChargeVoltage"])
                if volts >= NOT_AVAILABLE_V:  # not provided: test as without BHM
                    self._bms_seen(now, "BHM without a voltage (FF FF): testing at the charger's maximum")
                else:
                    self.bhm_voltage = volts
                    self._bms_seen(now, f"BHM {volts:g} V")
        elif name == "BRM":
            if stage is Stage.RECOGNITION and self.crm == 0x00 and len(data) >= 8:
                self.deadlines.cancel("brm")
                raw = int(values["BmsProtocolVersion"])
                if raw >> 8 != SUPPORTED_MAJOR:
                    self.stop_detail = (
                        f"BRM announces {version_text(raw)} ({data[:3].hex(' ').upper()}); this charger "
                        "speaks V1.1 (GB/T 27930-2015) and V1.0 (2011)"
                    )
                    self._begin_stop("protocol_incompatible", now)
                    return
                self.crm = 0xAA
                self._send_every("CRM", "crm_period", now)  # CRM 0xAA right after EndOfMsgAck
                self.deadlines.set("bcp", now + T.limit("bcp"))
        elif name == "BCP":
            if stage is Stage.RECOGNITION and self.crm == 0xAA:
                self._on_bcp(now)
        elif name == "BSD":
            if stage is Stage.STOPPING:
                self._statistics(now)
        elif name == "BEM" and stage in TALKING and set_flags(values):
            self.stop_detail = "BEM " + ", ".join(set_flags(values))
            self._enter_error("bem_received", now)

    def _on_bsm(self, values: dict[str, Value], now: float) -> None:
        for name, value in values.items():
            v = int(value)
            # numbers always; 2-bit states 00/01 (and 10 = "too low" for cell voltage and SOC);
            # untrusted (10) and unused (11) values keep the previous state (§1, §8)
            if name in _BSM_NUMBERS or v < UNTRUSTED or (v == UNTRUSTED and name in _BSM_TOO_LOW):
                self.bsm_state[name] = v
        self.bms["BSM"] = dict(self.bsm_state)
        if self.stage is not Stage.CHARGING:
            return
        for field, code, abnormal in BSM_STATES:
            if self.bsm_state.get(field, 0) in abnormal:
                self._begin_stop(code, now)
                return
        permit = self.bsm_state.get("ChargePermit", 1)
        if permit == 0 and not self.paused:
            self.paused = True
            self.deadlines.set("pause", now + T.limit("pause"))
            self._regulate(now)
            self.emit(StageChanged(now, Role.CHARGER, Stage.CHARGING.value, 7, "paused by BSM (permit 00)"))
        elif permit == 1 and self.paused:
            self.paused = False
            self.deadlines.cancel("pause")
            self._regulate(now)
            self.emit(StageChanged(now, Role.CHARGER, Stage.CHARGING.value, 7, "resumed by BSM (permit 01)"))

    def _on_bst(self, values: dict[str, Value], now: float) -> None:
        if self.stage is Stage.STOPPING:
            self.bst_seen = True
            self.deadlines.cancel("bst")
            return
        if self.stage not in TALKING:
            return
        on = set_flags(values)
        code = next((reason for field, reason in BST_REASONS if field in on), "bms_stop")
        if "ChargerStopped" in on and code == "bms_stop":
            return  # a late answer to an earlier CST
        self.bst_seen = True
        self._begin_stop(code, now)

    def _on_bro(self, ready: int, now: float) -> None:
        stage = self.stage
        if stage is Stage.CONFIGURATION:
            self.deadlines.cancel("bro")
            if ready == 0xAA:
                self.deadlines.cancel("bro_ready")
                self._enter_precharge(now)
        elif stage in (Stage.PRECHARGE, Stage.CONTACTORS, Stage.CHARGING) and ready == 0x00:
            self.stop_detail = "BRO went back from 0xAA to 0x00"
            self._enter_error("bro_timeout", now)

    def _on_bcp(self, now: float) -> None:
        self.deadlines.cancel("bcp")
        self._quiet("CRM")
        self._go("parameters", now, "BCP received")
        cfg = self.config
        bcp_max = float(self._b("BCP", "MaxTotalChargeVoltage"))
        present = float(self._b("BCP", "PresentBatteryVoltage"))
        problem = ""
        if bcp_max > cfg.max_voltage:
            problem = f"BCP maximum charge voltage {bcp_max:g} V exceeds CML {cfg.max_voltage:g} V"
        elif bcp_max < cfg.min_voltage:
            problem = f"BCP maximum charge voltage {bcp_max:g} V is below CML minimum {cfg.min_voltage:g} V"
        elif not cfg.min_voltage <= present <= cfg.max_voltage:
            problem = f"battery at {present:g} V is outside CML {cfg.min_voltage:g}-{cfg.max_voltage:g} V"
        if problem:
            self.stop_detail = problem
            self._begin_stop("battery_incompatible", now)
            return
        self._send_every("CTS", "cts_period", now)
        self._send_every("CML", "cml_period", now)
        self.deadlines.set("bro", now + T.limit("bro"))
        self.deadlines.set("bro_ready", now + T.limit("bro_ready"))

    def _on_bcl(self, now: float) -> None:
        self.deadlines.set("bcl", now + T.limit("bcl"))
        if self.bcl_seen:
            return
        self.bcl_seen = True  # first BCL: stop CRO, start CCS (§6 step 8)
        self._quiet("CRO")
        self.charge_start = now if self.charge_start is None else self.charge_start
        self._charging_since = now
        self.deadlines.set("bcs", now + T.limit("bcs"))
        if self.config.max_charge_time_s is not None and "charge_time" not in self.deadlines:
            remaining = self.config.max_charge_time_s - self.charge_seconds
            self.deadlines.set("charge_time", now + max(0.0, remaining))
        self._regulate(now)
        self._send_every("CCS", "ccs_period", now)

    # ---- stage entries -----------------------------------------------------------------------
    def _bms_seen(self, now: float, detail: str) -> None:
        self.deadlines.cancel("bhm")
        self._go("bms_seen", now, detail)
        self.power.advance(now, self._dc_link())
        if self.power.voltage > T.PRE_TEST_MAX_V:  # K1/K2 still open: a live output means welded relays
            self._v_at_open = self.power.voltage
            self.stop_detail = (
                f"{self.power.voltage:.0f} V on the output before the insulation test "
                f"(at most {T.PRE_TEST_MAX_V:g} V)"
            )
            self._abort("contactor_welded", now)
            return
        cfg = self.config
        test_v = cfg.max_voltage if self.bhm_voltage is None else min(self.bhm_voltage, cfg.max_voltage)
        if cfg.insulation_test_voltage is not None:
            test_v = min(test_v, cfg.insulation_test_voltage)
        self.insulation_voltage = test_v
        self.harness.set("k1k2", True)
        self.insulation_phase = "ramp"
        self.power.advance(now, self._dc_link())
        self.power.set_voltage(test_v)
        self.deadlines.set("insulation", now + T.limit("insulation"))
        self._ramp_check(now, (test_v - self.power.voltage) / self.power.spec.voltage_ramp_v_per_s)

    def _insulation_step(self, now: float) -> None:
        if self.insulation_phase == "ramp" and self.power.voltage >= self.insulation_voltage - 1.0:
            self.insulation_phase = "measure"
            self.deadlines.cancel("ramp")
            self.deadlines.set("insulation_measure", now + T.limit("insulation_settle"))
        elif self.insulation_phase == "bleed" and self.power.voltage < T.BLEED_DONE_V:
            self.insulation_phase = "done"
            self.deadlines.cancel("insulation", "ramp")
            self.harness.set("k1k2", False)
            self._quiet("CHM")
            r = self.insulation_result_ohm
            self._go("insulation_passed", now, f"insulation {_ohm(r)} at {self.insulation_voltage:g} V")
            self._enter_recognition(now)

    def _insulation_measured(self, now: float) -> None:
        r = self.harness.insulation_resistance_ohm
        self.insulation_result_ohm = r
        threshold = self.config.insulation_threshold_ohm_per_v * self.insulation_voltage
        if r < threshold:
            self.stop_detail = (
                f"insulation resistance {_ohm(r)} below {_ohm(threshold)} "
                f"({self.config.insulation_threshold_ohm_per_v:g} ohm/V at {self.insulation_voltage:g} V)"
            )
            self._abort("insulation_fault", now)
            return
        self.insulation_phase = "bleed"
        self.power.set_off()
        self._ramp_check(now, self.power.time_to_voltage_below(T.BLEED_DONE_V))

    def _enter_precharge(self, now: float) -> None:
        self._quiet("CTS", "CML")
        self._go("bms_ready", now, "BRO 0xAA")
        self.cro = 0x00
        self._send_every("CRO", "cro_period", now)
        self.deadlines.set("precharge", now + T.limit("precharge"))
        self._precharge_step(now)

    def _precharge_step(self, now: float) -> None:
        """Battery voltage at the connector checked against BCP, output brought 1-10 V below it."""
        vbat = self.harness.dc_link_voltage
        if vbat is None:
            return  # the BMS has not closed its contactors yet: next tick
        if self.power.mode is not Mode.VOLTAGE:
            expected = float(self._b("BCP", "PresentBatteryVoltage"))
            if expected and abs(vbat - expected) > T.BATTERY_VOLTAGE_TOLERANCE * expected:
                self.stop_detail = f"{vbat:.1f} V at the connector, BCP says {expected:g} V"
                self._begin_stop("battery_voltage_mismatch", now)
                return
            target = vbat - T.PRECHARGE_TARGET_BELOW_V
            self.power.advance(now, None)
            self.power.set_voltage(target)
            self._ramp_check(now, (target - self.power.voltage) / self.power.spec.voltage_ramp_v_per_s)
            return
        low, high = vbat - T.PRECHARGE_BELOW_V[1], vbat - T.PRECHARGE_BELOW_V[0]
        if low <= self.power.voltage <= high:
            self.deadlines.cancel("precharge", "ramp")
            self.harness.set("k1k2", True)
            detail = f"output {self.power.voltage:.1f} V, battery {vbat:.1f} V: K1/K2 closed"
            self._go("precharged", now, detail)
            self.deadlines.set("relay", now + T.limit("relay_settle"))
        else:  # the battery moved: aim again
            self.power.set_voltage(vbat - T.PRECHARGE_TARGET_BELOW_V)
            self._ramp_check(now, abs(self.power.voltage - vbat) / self.power.spec.voltage_ramp_v_per_s)

    def _charger_ready(self, now: float) -> None:
        self.power.advance(now, self._dc_link())
        self.power.set_current(0.0)
        self.cro = 0xAA
        self._send_every("CRO", "cro_period", now)
        self._go("charger_ready", now, "CRO 0xAA")
        self.deadlines.set("bcl", now + T.limit("first_bcl"))

    # ---- periodic work -----------------------------------------------------------------------
    def _tick(self, now: float) -> None:
        power, harness = self.power, self.harness
        power.advance(now, self._dc_link())
        stage = self.stage
        if stage is Stage.CHARGING:  # every 50 ms: nothing to decide here, the CCS frame regulates
            if not self._cc1_ok():
                self._cc1_fault(now)
                return
            harness.output_current = power.current if harness.is_on("k1k2") else 0.0
            harness.output_voltage = power.voltage
            return
        if stage in _CC1_SUPERVISED and not self._cc1_ok():
            self._cc1_fault(now)
            return
        if stage is Stage.INSULATION_TEST:
            self._insulation_step(now)
        elif stage is Stage.PRECHARGE:
            self._precharge_step(now)
        elif stage in (Stage.STOPPING, Stage.ERROR, Stage.STATISTICS, Stage.SHUTDOWN):
            if self.harness.is_on("k1k2") and self.power.current <= T.STOP_CURRENT_A:
                self.deadlines.cancel("stop_current")
                self._open_k1k2()
                self._ramp_check(now, self.power.time_to_voltage_below(T.OUTPUT_SAFE_V))
            if stage is Stage.ERROR and self._retry_due:
                self._retry_or_give_up(now)
            elif (
                stage is Stage.SHUTDOWN
                and not self.harness.is_on("k1k2")
                and self.power.voltage <= T.OUTPUT_SAFE_V
            ):
                self.harness.set("lock", False)
                self.deadlines.cancel("unlock_wait", "ramp")
                self._go("unlocked", now, f"output {self.power.voltage:.0f} V, connector unlocked")
                self._finish(now)
        self.harness.output_current = self.power.current if self.harness.is_on("k1k2") else 0.0
        self.harness.output_voltage = self.power.voltage

    # ---- deadlines ---------------------------------------------------------------------------
    def _on_deadline(self, name: str, now: float) -> None:
        stage = self.stage
        if name == "ramp":
            return  # only wakes _tick at the moment a ramp or bleed should be done
        if name == "bhm" and stage is Stage.HANDSHAKE:
            self._bms_seen(now, "no BHM: continuing without it (2011-era BMS)")
        elif name == "insulation" and stage is Stage.INSULATION_TEST:
            self._abort("insulation_timeout", now)
        elif name == "insulation_measure" and stage is Stage.INSULATION_TEST:
            self._insulation_measured(now)
        elif name in ("brm", "bcp", "bro", "bro_ready", "bcl", "bcs") and stage in TALKING:
            code = "bro_timeout" if name == "bro_ready" else f"{name}_timeout"
            if name == "bcl" and not self.bcl_seen:
                self.stop_detail = "no BCL within 1 s of CRO 0xAA"
            if name == "bcl" and self._bcl_bad:
                unusable = f"BCL arrived but was unusable: {self._bcl_bad}"
                self.stop_detail = f"{self.stop_detail}; {unusable}" if self.stop_detail else unusable
            self._enter_error(code, now)
        elif name == "precharge" and stage is Stage.PRECHARGE:
            none = self.harness.dc_link_voltage is None
            self._begin_stop("no_battery_voltage" if none else "precharge_timeout", now)
        elif name == "relay" and stage is Stage.CONTACTORS:
            self._charger_ready(now)
        elif name == "pause" and stage is Stage.CHARGING:
            self._begin_stop("pause_timeout", now)
        elif name == "charge_time" and stage is Stage.CHARGING:
            self._begin_stop("charge_time_limit", now)
        elif name == "stop_current":
            self.power.advance(now, self._dc_link())
            if self.power.current > T.STOP_CURRENT_A:
                self.faults.append("stop_current_slow")
                log.warning("current still %.1f A after %.1f s", self.power.current, T.limit("stop_current"))
        elif name == "bst" and stage is Stage.STOPPING:
            self._end_fault("bst_timeout", now)
        elif name == "bsd" and stage is Stage.STOPPING:
            self._end_fault("bsd_timeout", now)
            self._quiet("CST")
            self._give_up = True  # the CEM hold of §8, then shutdown: no re-handshake in the end phase
            self._go("end_timeout", now, "no BSD: CEM, no re-handshake")
            self.deadlines.set("retry_hold", now + T.limit("retry_hold"))
            self.deadlines.set("retry_giveup", now + T.limit("retry_giveup"))
        elif name == "csd_hold" and stage is Stage.STATISTICS:
            self._go("statistics_sent", now, "CSD sent")
            self._enter_shutdown(now)
        elif name == "retry_hold" and stage is Stage.ERROR:
            self._retry_due = True
        elif name == "retry_giveup" and stage is Stage.ERROR:
            self._give_up = True
            self._retry_or_give_up(now)
        elif name == "unlock_wait" and stage is Stage.SHUTDOWN:
            self._adhesion_check(now)
