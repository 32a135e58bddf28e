"""Passive GB/T 27930 observer: stage walk, failures and verdict from a capture.

It runs the GB/T charger core's own tables: the stage machine is ``StageMachine`` over
``protocols.gbt.states.TRANSITIONS`` (stage names and steps are the emulator's), limits come from
``protocols.gbt.timing.LIMITS`` and stop reasons from ``protocols.gbt.stops`` (``REASONS``, the BST
field priority ``BST_REASONS``, the CST fields per reason ``CST_BITS``, the CEM flag per timeout
``CEM_BIT``).  What the emulator decides internally the observer reads off the bus:

* CHM -> handshake; BHM -> insulation test; CRM 0x00 -> recognition (CRM 0xAA stays in it);
  CTS/CML -> configuration; BRO 0xAA -> precharge; CRO 0xAA -> contactors (K1/K2, not on the bus)
  and charging;
* BST (not an answer to CST) or CST -> stopping, the reason from their fields; BSD -> statistics;
  the end of CSD -> shutdown and done;
* BEM or CEM during recognition..charging -> error (the stage the timeout happened in is where the
  session failed), explained with the transport sessions behind it (an RTS the charger never answered
  with a CTS); CRM again -> the re-handshake;
* the charger going silent during the handshake or insulation test -> abort (insulation test failed
  or did not complete).
"""

from __future__ import annotations

import re

from ..codec import Value
from ..protocols.base import StopReason
from ..protocols.gbt import timing as T
from ..protocols.gbt.bms_states import V_STEP, V_TRANSITIONS, VStage
from ..protocols.gbt.messages import TP_MESSAGES
from ..protocols.gbt.states import DESCRIPTION, STEP, TALKING, TRANSITIONS, Stage
from ..protocols.gbt.stops import BSM_STATES, BST_REASONS, CEM_BIT, CST_BITS, REASONS
from ..protocols.machine import StageMachine
from .capture import Capture, Record
from .model import CHARGER, COMPLETED, FAILED, PARTIAL, VEHICLE, Deviation, Event, SessionVerdict, StageSpan
from .tp import ABORTED, NO_CTS, TpProblem

WALK_ORDER: tuple[Stage, ...] = (
    Stage.IDLE,
    Stage.HANDSHAKE,
    Stage.INSULATION_TEST,
    Stage.RECOGNITION,
    Stage.CONFIGURATION,
    Stage.PRECHARGE,
    Stage.CONTACTORS,
    Stage.CHARGING,
    Stage.STOPPING,
    Stage.STATISTICS,
    Stage.ERROR,
    Stage.SHUTDOWN,
    Stage.DONE,
)
RANK = {s: i for i, s in enumerate(WALK_ORDER)}
FORWARD = WALK_ORDER[: RANK[Stage.CHARGING] + 1]
EARLY = (Stage.HANDSHAKE, Stage.INSULATION_TEST)
FLAG_SET = 1  # 2-bit fields: 01 = reached / fault / timeout

# Which timing-table row bounds each stage (values come from protocols.gbt.timing.LIMITS).
STAGE_LIMIT = {
    Stage.HANDSHAKE: "bhm",
    Stage.INSULATION_TEST: "insulation",
    Stage.RECOGNITION: "brm",
    Stage.CONFIGURATION: "bro_ready",
    Stage.PRECHARGE: "precharge",
    Stage.STOPPING: "bsd",
    Stage.STATISTICS: "csd_hold",
    Stage.ERROR: "retry_giveup",
    Stage.SHUTDOWN: "unlock_wait",
}

# BEM flags in an operator's words (the BMS timed out waiting for the charger); DBC signal names.
BEM_WORDS = {
    "TimeoutCrm00": "BMS timed out waiting for the charger's recognition (CRM 0x00)",
    "TimeoutCrmAA": "BMS timed out waiting for the charger to confirm recognition (CRM 0xAA)",
    "TimeoutCtsCml": "BMS timed out waiting for the charger's time sync and limits (CTS/CML)",
    "TimeoutCro": "BMS timed out waiting for the charger's ready (CRO)",
    "TimeoutCcs": "BMS stopped hearing the charger's state (CCS)",
    "TimeoutCst": "BMS timed out waiting for the charger's stop (CST)",
    "TimeoutCsd": "BMS timed out waiting for the charger's statistics (CSD)",
}
CEM_REASON = {field: code for code, field in CEM_BIT.items()}
# A CST names its reason through its fields; several reasons share fields, the stage tells them apart.
_CST_BY_FIELDS: dict[tuple[str, ...], list[str]] = {}
for _code, _fields in CST_BITS.items():
    _CST_BY_FIELDS.setdefault(tuple(sorted(_fields)), []).append(_code)
OBSERVED = {
    r.code: r
    for r in (
        StopReason("charger_stop", REASONS["operator_stop"].origin, "charger stopped (CST without a reason)"),
        StopReason("charger_silent", REASONS["charger_malfunction"].origin, "charger stopped transmitting"),
    )
}


def reason(code: str) -> StopReason:
    return REASONS.get(code) or OBSERVED[code]


def _set(values: dict[str, Value]) -> list[str]:
    return [name for name, v in values.items() if v == FLAG_SET]


class GbtObserver:
    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.v = SessionVerdict(index=0, start=0.0, end=capture.duration)
        self.sm = StageMachine(Stage, TRANSITIONS, Stage.IDLE)
        self.stage = Stage.IDLE
        self.failures: list[tuple[Stage, StopReason, str]] = []  # (stage it happened in, reason, cause)
        self.tp_pending: list[TpProblem] = []  # transfer problems not yet explained by a BEM/CEM
        self.stop: StopReason | None = None
        self.stop_stage: Stage | None = None
        self.stop_detail = ""
        self.seen: dict[str, float] = {}
        self.last_data: dict[str, bytes] = {}
        self.charged = False
        self.bsm_abnormal = ""
        self.last_charger: float | None = None
        self.last_charger_index = 0
        self.last_crm: float | None = None
        self.error_by = ""
        self.vsm = StageMachine(VStage, V_TRANSITIONS, VStage.ASLEEP)

    # --------------------------------------------------------------------------- helpers
    def _go(self, trigger: str, time: float, index: int, detail: str = "", inferred: bool = False) -> None:
        stage: Stage = self.sm.fire(trigger)
        self.stage = stage
        if self.v.stages:
            self.v.stages[-1].end, self.v.stages[-1].end_frame = time, index
        name = STAGE_LIMIT.get(stage)
        self.v.stages.append(
            StageSpan(
                stage.value,
                STEP[stage],
                CHARGER,
                time,
                None,
                index,
                None,
                detail or DESCRIPTION[stage],
                name,
                T.LIMITS[name].seconds if name else None,
                inferred,
            )
        )
        if stage in FORWARD:
            self.v.progress = max(self.v.progress, RANK[stage])

    def _advance(self, target: Stage, rec: Record, detail: str) -> None:
        """Walk the table's forward path to ``target`` (hops at this record's time are inferred)."""
        while self.stage in FORWARD and RANK[self.stage] < RANK[target]:
            nxt = FORWARD[RANK[self.stage] + 1]
            row = next(r for r in TRANSITIONS if self.stage in r.sources and r.dest is nxt)
            self._go(row.trigger, rec.time, rec.index, detail if nxt is target else "", nxt is not target)

    def _event(self, time: float, side: str, text: str, index: int | None = None) -> None:
        self.v.events.append(Event(time, side, text, index))

    def _walk(self, rec: Record, side: str, text: str) -> None:
        walk = self.v.charger_walk if side == CHARGER else self.v.vehicle_walk
        if not walk or walk[-1][1] != text:
            walk.append((rec.time, text))

    # --------------------------------------------------------------------------- feeding
    def feed(self, item: Record | TpProblem) -> None:
        if isinstance(item, TpProblem):
            self._on_tp_problem(item)
            return
        rec = item
        if rec.tp is None and rec.name in ("TP.CM", "TP.DT"):
            self._on_tp_frame(rec)
            return
        if rec.message is None:
            return
        name = rec.message.name
        side = CHARGER if rec.side == CHARGER else VEHICLE
        if side == CHARGER:
            self.last_charger, self.last_charger_index = rec.time, rec.index
        elif (
            self.stage in EARLY
            and self.last_charger is not None
            and rec.time - self.last_charger >= T.limit("bcl")
            and self.capture.timestamps != "none"
        ):
            self._charger_silent(rec)
        first = name not in self.seen
        self.seen.setdefault(name, rec.time)
        stateful = name in ("CRM", "BRO", "CRO", "CST", "BST", "BEM", "CEM")
        if first or (stateful and self.last_data.get(name) != rec.data):
            shown = f"{name} {rec.data.hex(' ').upper()}" if stateful else name
            self._walk(rec, side, shown)
            self._event(rec.time, side, shown + (" (via TP)" if rec.tp is not None else ""), rec.index)
        self.last_data[name] = rec.data
        self._bms_stage(rec, name)
        handler = getattr(self, f"_on_{name.lower()}", None)
        if handler is not None:
            handler(rec, rec.values)

    def _bms_stage(self, rec: Record, name: str) -> None:
        """The BMS's stage through the BMS core's own table (``V_TRANSITIONS``), moved by what it sends
        and by the charger frames it reacts to."""
        result = int(rec.values.get("RecognitionResult", rec.values.get("ChargerReady", 0)) or 0)
        trigger = {
            ("BHM", VEHICLE): "wake",
            ("BRM", VEHICLE): "crm",
            ("BCP", VEHICLE): "recognised",
            ("BST", VEHICLE): "stop",
            ("BSD", VEHICLE): "statistics",
            ("BEM", VEHICLE): "error",
            ("CEM", CHARGER): "error",
        }.get((name, rec.side or ""))
        if name == "BRO" and int(rec.values.get("BmsReady", 0)) == 0xAA:
            trigger = "ready"
        elif name == "CRM":
            trigger = "crm" if result == 0x00 else "recognised"
        elif (name == "CRO" and result == 0xAA) or name == "BCL":
            trigger = "charge"
        if self.vsm.stage is VStage.ASLEEP and trigger not in (None, "wake"):
            self._vgo("wake", rec, "BMS awake")
        if trigger is not None and self.vsm.can(trigger):
            self._vgo(trigger, rec, name)

    def _vgo(self, trigger: str, rec: Record | None, detail: str, time: float | None = None) -> None:
        stage: VStage = self.vsm.fire(trigger)
        at = rec.time if rec is not None else (time or 0.0)
        index = rec.index if rec is not None else None
        spans = self.v.vehicle_stages
        if spans and spans[-1].stage == stage.value:
            return
        if spans:
            spans[-1].end, spans[-1].end_frame = at, index
        spans.append(StageSpan(stage.value, V_STEP[stage], VEHICLE, at, None, index, detail=detail))

    def _on_chm(self, rec: Record, v: dict[str, Value]) -> None:
        if self.stage is Stage.IDLE:
            self._go("start", rec.time, rec.index, "CHM: connector locked, auxiliary power on")

    def _on_bhm(self, rec: Record, v: dict[str, Value]) -> None:
        if self.stage in (Stage.IDLE, Stage.HANDSHAKE):
            volts = v.get("MaxPermissibleChargeVoltage", 0)
            self._advance(Stage.INSULATION_TEST, rec, f"BHM {volts} V: insulation test")

    def _on_tp_frame(self, rec: Record) -> None:
        """A BMS RTS while in error: the BMS starts the exchange again (the re-handshake)."""
        if rec.side != VEHICLE or rec.name != "TP.CM" or rec.data[:1] != b"\x10":
            return
        name = TP_MESSAGES.get(int.from_bytes(rec.data[5:8], "little"), "a message")
        if name in ("BRM", "BCP"):
            self._bms_stage(rec, name)
        if self.stage is Stage.ERROR:
            self._go("retry", rec.time, rec.index, f"BMS sends {name} again (RTS): re-handshake")

    def _on_crm(self, rec: Record, v: dict[str, Value]) -> None:
        result = int(v.get("RecognitionResult", 0))
        if self.stage is Stage.ERROR:
            paused = (
                self.last_crm is not None
                and self.capture.timestamps != "none"
                and rec.time - self.last_crm >= T.limit("cem_period") * 2
            )
            self.last_crm = rec.time
            if self.error_by == "CEM" or paused:
                self._go("retry", rec.time, rec.index, f"CRM 0x{result:02X} again: re-handshake")
            return  # CRM repeated while the BMS is in error: not a new exchange yet
        self.last_crm = rec.time
        if RANK[self.stage] < RANK[Stage.RECOGNITION] and self.stage in FORWARD:
            self._advance(Stage.RECOGNITION, rec, "CRM 0x00: insulation test passed")
        if result == 0xAA and self.stage is Stage.RECOGNITION and "crm_aa" not in self.seen:
            self.seen["crm_aa"] = rec.time
            got = "BRM received" if "BRM" in self.seen else "although no BRM was received"
            self._event(rec.time, CHARGER, f"CRM 0xAA: BMS recognised ({got})", rec.index)

    def _on_bcp(self, rec: Record, v: dict[str, Value]) -> None:
        if self.stage is Stage.RECOGNITION and "crm_aa" in self.seen:
            self._advance(Stage.CONFIGURATION, rec, "BCP received (via TP)")

    def _on_cts(self, rec: Record, v: dict[str, Value]) -> None:
        if self.stage is Stage.ERROR:
            self._go("retry", rec.time, rec.index, "re-handshake (CRM not captured)", inferred=True)
        if self.stage in FORWARD and RANK[self.stage] < RANK[Stage.CONFIGURATION]:
            got = "BCP received" if "BCP" in self.seen else "no BCP was received"
            self._advance(Stage.CONFIGURATION, rec, f"CTS/CML ({got})")

    _on_cml = _on_cts

    def _on_bro(self, rec: Record, v: dict[str, Value]) -> None:
        if (
            int(v.get("BmsReady", 0)) == 0xAA
            and self.stage in FORWARD
            and RANK[self.stage] < RANK[Stage.PRECHARGE]
        ):
            self._advance(Stage.PRECHARGE, rec, "BRO 0xAA: vehicle ready, CRO 0x00")

    def _on_cro(self, rec: Record, v: dict[str, Value]) -> None:
        if (
            int(v.get("ChargerReady", 0)) == 0xAA
            and self.stage in FORWARD
            and RANK[self.stage] < RANK[Stage.CHARGING]
        ):
            self._advance(Stage.CHARGING, rec, "CRO 0xAA: charger ready, output on")

    def _on_bcl(self, rec: Record, v: dict[str, Value]) -> None:
        if self.stage in FORWARD and RANK[self.stage] < RANK[Stage.CHARGING]:
            self.v.starts_mid_session = self.v.starts_mid_session or "CRO" not in self.seen
            self._advance(Stage.CHARGING, rec, "BCL: charging demand")

    def _on_ccs(self, rec: Record, v: dict[str, Value]) -> None:
        self._on_bcl(rec, v)
        if float(v.get("OutputCurrent", 0) or 0) < -1.0:
            self.charged = True

    def _on_bsm(self, rec: Record, v: dict[str, Value]) -> None:
        for field, code, abnormal in BSM_STATES:
            if int(v.get(field, 0)) in abnormal:
                self.bsm_abnormal = code
                return

    def _on_cst(self, rec: Record, v: dict[str, Value]) -> None:
        on = sorted(_set(v))
        if self.stage not in TALKING:
            return
        if on == ["BmsStopped"]:
            code = "bms_stop"  # answers a BST the capture did not show
        else:
            candidates = _CST_BY_FIELDS.get(tuple(on), [])
            if self.bsm_abnormal and "FaultStop" in on:
                code = self.bsm_abnormal
            elif len(candidates) == 1:
                code = candidates[0]
            elif candidates:
                by_stage = {
                    "battery_incompatible": Stage.CONFIGURATION,
                    "precharge_timeout": Stage.PRECHARGE,
                    "battery_voltage_mismatch": Stage.PRECHARGE,
                    "no_battery_voltage": Stage.PRECHARGE,
                }
                code = next((c for c in candidates if by_stage.get(c) is self.stage), candidates[0])
                if code == "interrupted":
                    code = "operator_stop"
            else:
                code = "charger_stop"
        self._stop(code, rec, f"CST {rec.data.hex(' ').upper()}")

    def _on_bst(self, rec: Record, v: dict[str, Value]) -> None:
        on = _set(v)
        if self.stage not in TALKING:
            return
        code = next((r for field, r in BST_REASONS if field in on), "bms_stop")
        if "ChargerStopped" in on and code == "bms_stop":
            return  # a late answer to an earlier CST
        self._stop(code, rec, f"BST {rec.data.hex(' ').upper()}")

    def _stop(self, code: str, rec: Record, detail: str) -> None:
        self.stop, self.stop_stage, self.stop_detail = reason(code), self.stage, detail
        if not self.stop.normal or (not self.charged and RANK[self.stage] < RANK[Stage.CHARGING]):
            self.failures.append((self.stage, self.stop, f"{self.stop.cause} ({detail})"))
        self._go("stop", rec.time, rec.index, self.stop.cause)

    def _on_bsd(self, rec: Record, v: dict[str, Value]) -> None:
        if self.stage is Stage.STOPPING:
            self._go("statistics", rec.time, rec.index, "BSD received: CSD every 250 ms")

    def _on_bem(self, rec: Record, v: dict[str, Value]) -> None:
        words = [BEM_WORDS.get(f, f) for f in _set(v)]
        if words:
            self._failure(rec, "bem_received", " and ".join(words), "BEM", "BMS")

    def _on_cem(self, rec: Record, v: dict[str, Value]) -> None:
        fields = _set(v)
        codes = [CEM_REASON[f] for f in fields if f in CEM_REASON]
        if not codes:
            return
        if self.stage is Stage.STOPPING and codes[0] == "bsd_timeout":
            self._go("end_timeout", rec.time, rec.index, "no BSD: CEM, no re-handshake")
            return
        self._failure(rec, codes[0], " and ".join(REASONS[c].cause for c in codes), "CEM", "charger")

    def _failure(self, rec: Record, code: str, words: str, what: str, who: str) -> None:
        if self.stage is Stage.ERROR:
            return  # the error frame repeated every 250 ms: the same episode
        text = f"{words} ({what} {rec.data.hex(' ').upper()})"
        transfers = [p for p in self.tp_pending if p.index <= rec.index]
        if transfers:
            tp = transfers[-1]
            name = TP_MESSAGES.get(tp.pgn, f"PGN 0x{tp.pgn:04X}")
            count = sum(1 for p in transfers if p.pgn == tp.pgn and p.kind == tp.kind)
            times = f", {count} attempts" if count > 1 else ""
            if tp.kind == NO_CTS:
                lead = f"charger never answered the BMS's {name} transfer request (RTS without CTS{times})"
            else:
                lead = f"the {name} transfer failed ({tp.text}{times})"
            text = f"{lead} — {who} aborted with {what}: {text}"
            self.tp_pending = [p for p in self.tp_pending if p.index > rec.index]
        stage = self.stage
        if stage in TALKING:
            self.error_by = what
            self._go("timeout", rec.time, rec.index, text)
        self.failures.append((stage, reason(code), text))
        self._event(rec.time, VEHICLE if what == "BEM" else CHARGER, text, rec.index)

    def _on_tp_problem(self, p: TpProblem) -> None:
        if p.kind in (NO_CTS, ABORTED):
            self.tp_pending.append(p)
            name = TP_MESSAGES.get(p.pgn, f"PGN 0x{p.pgn:04X}")
            self._event(p.time, VEHICLE if p.source != 0x56 else CHARGER, f"TP {name}: {p.text}", p.index)

    def _charger_silent(self, rec: Record) -> None:
        """The charger stopped during the handshake / insulation test while the BMS kept talking."""
        assert self.last_charger is not None
        start = next((s.start for s in self.v.stages if s.stage == Stage.INSULATION_TEST.value), None)
        code = "insulation_fault"
        if start is not None and self.last_charger - start + 1e-6 >= T.limit("insulation"):
            code = "insulation_timeout"
        if self.stage is Stage.HANDSHAKE:
            code = "charger_silent"
        self.stop, self.stop_stage = reason(code), self.stage
        self.stop_detail = f"the charger stopped transmitting at {self.last_charger:.3f} s before recognition"
        self.failures.append((self.stage, self.stop, f"{self.stop.cause}: {self.stop_detail}"))
        self._go("abort", self.last_charger, self.last_charger_index, self.stop.cause, inferred=True)

    # --------------------------------------------------------------------------- verdict
    def finish(self) -> SessionVerdict:
        v = self.v
        end_recs = [r for r in self.capture.records if r.side == CHARGER and r.name in ("CSD", "BSD", "CST")]
        if self.stage is Stage.STATISTICS and end_recs:
            last = end_recs[-1]
            self._go("statistics_sent", last.time, last.index, "CSD sent", inferred=True)
        charger_recs = [r for r in self.capture.records if r.side == CHARGER]
        if self.stage is Stage.ERROR and charger_recs and charger_recs[-1].name == "CEM":
            last = charger_recs[-1]
            self._go("give_up", last.time, last.index, "no further re-handshake (CEM, then silence)", True)
            end_recs = [last]
        if self.stage is Stage.SHUTDOWN and end_recs:
            last = end_recs[-1]
            self._go("unlocked", last.time, last.index, "charger silent: session over", inferred=True)
        if self.stage is Stage.DONE and self.vsm.can("sleep"):
            last_bms = max((r.time for r in self.capture.records if r.side == VEHICLE), default=v.end)
            self._vgo("sleep", None, "auxiliary power off", last_bms)
        if v.stages and v.stages[-1].end is None and self.stage is not Stage.DONE:
            v.stages[-1].end = v.end
        if v.vehicle_stages and v.vehicle_stages[-1].end is None:
            v.vehicle_stages[-1].end = v.end
        v.charged = self.charged or ("BCL" in self.seen and "CCS" in self.seen)
        if v.stages and "CHM" not in self.seen and v.stages[0].stage != Stage.HANDSHAKE.value:
            v.starts_mid_session = True
        done = self.stage is Stage.DONE
        normal_end = self.stop is not None and self.stop.normal and v.charged
        if self.failures and not (normal_end and done):
            stage, r, text = self.failures[0]
            later: list[str] = []
            for _stage, _r, other in self.failures[1:]:
                key = _unnumbered(other)
                if key != _unnumbered(text) and all(_unnumbered(x) != key for x in later):
                    later.append(other)
            v.outcome, v.stage, v.step, v.reason, v.origin = (
                FAILED,
                stage.value,
                STEP[stage],
                r.code,
                r.origin.value,
            )
            v.cause = text + (f"; then: {'; '.join(later)}" if later else "")
        elif self.stop is not None and self.stop_stage is not None:
            r = self.stop
            v.stage, v.step, v.reason, v.origin = (
                self.stop_stage.value,
                STEP[self.stop_stage],
                r.code,
                r.origin.value,
            )
            v.cause = f"{r.cause} ({self.stop_detail})" if self.stop_detail else r.cause
            v.outcome = COMPLETED if done and not v.starts_mid_session else PARTIAL
            v.ends_mid_session = not done
            if not done:
                missing = [m for m in ("BST", "BSD", "CSD") if m not in self.seen]
                v.cause = f"capture ends during the end phase ({', '.join(missing)} not captured); {v.cause}"
        else:
            v.outcome, v.ends_mid_session = PARTIAL, True
            v.stage, v.step = self.stage.value, STEP[self.stage]
            v.cause = f"capture ends mid-session at {self.stage.value} ({DESCRIPTION[self.stage]})"
        if v.starts_mid_session and v.outcome != FAILED:
            v.outcome = PARTIAL
            v.cause = f"capture starts mid-session; {v.cause}"
        return v


def _unnumbered(text: str) -> str:
    return re.sub(r", \d+ attempts", "", text)


def observe(capture: Capture) -> tuple[list[SessionVerdict], list[Deviation]]:
    obs = GbtObserver(capture)
    items: list[tuple[int, int, Record | TpProblem]] = [(r.index, 1, r) for r in capture.records]
    items += [(p.index, 0, p) for p in capture.tp_problems]
    items += [(r.index, 2, r) for r in capture.tp_frames]
    for _i, _k, item in sorted(items, key=lambda x: (x[0], x[1])):
        obs.feed(item)
    return [obs.finish()], []
