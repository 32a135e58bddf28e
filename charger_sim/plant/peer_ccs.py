"""CCS bridge-profile peer plants: the pilot, proximity and DC link of a real EV or charger, inferred
from the bridge frames (``dbc/ccs.dbc``).  See :mod:`charger_sim.plant.peer` for the idea.

CCS defaults (README, "Two processes on one bus"):

charger role (the peer is a real EV)
  - the EV's CP load follows the state it reports in ``EvCpState`` (0x510): R2 for B, R2 || R3 for C
    (S2 closed) and D; before its first frame the EV loads CP with R2 (plugged in, state B); its
    diode and the extra resistance of its PP contact are the ``vehicle`` section's ``diode_ok`` and
    ``pp_contact_ohm`` (present, 0 Ohm by default): physical, not on the bus;
  - the EV's contactors follow ``EvContactorState`` (Open / Closed), and count as open when the EV
    has been silent for :data:`EV_SILENCE_S` and the output current is < 1 A;
  - the DC link: a pack model from the scenario's ``vehicle`` section takes the charger's output
    current; its voltage is shifted by a constant so that it equals the EV's pre-charge target
    (``EvTargetVoltage`` while ``EvRequest`` is PreCharge: the EV's battery voltage, §4 #8);
  - the insulation resistance is the ``vehicle`` section's (5 MOhm by default).

BMS role (the peer is a real charger)
  - the charger drives CP at +12 V from the start (state A/B1, no PWM); the PWM duty follows
    ``CpDuty`` (0x500; SNA = no PWM); a reported state F puts the source at -12 V, state E unpowers it;
    ``cp_state`` and ``pp_ohm`` are the charger's own readings (``CpState``, ``PpResistance``);
  - the DC link: ``EvsePresentVoltage`` and ``EvsePresentCurrent`` (0x503) are the output; the
    current drops to 0 once the charger has been silent for :data:`CHARGER_SILENCE_S`.
"""

from __future__ import annotations

import math

from ..bms.battery import Battery
from ..bms.monitor import PackMonitor
from ..codec import Codec, Value
from ..frames import Frame
from ..protocols.base import Role, Snapshot
from ..protocols.ccs.bridge import (
    CHARGER_FRAMES,
    VEHICLE_FRAMES,
    ContactorState,
    EvErrorCode,
    IsolationStatus,
    Request,
    ResponseCode,
    failed,
    number,
    truth,
)
from ..protocols.ccs.electrical import EV_LOAD_OHM, NO_PWM, OPEN_OHM, CpMode, CpState, ev_load_ohm
from ..protocols.ccs.states import NUMBER
from .harness import Harness
from .peer import PLANT_PERIOD, PeerPlant

CURRENT_OFF_A = 1.0  # A: the EV opens its contactors below this (§7)
EV_SILENCE_S = 1.0  # s without EV frames (the charger's receive timeout) before its contactors open
CHARGER_SILENCE_S = 2.0  # s without charger frames before its output counts as off
_STAGE_NAME = {n: s.value for s, n in NUMBER.items()}
_SOURCE: dict[int, CpMode] = {CpState.F: CpMode.FAULT, CpState.E: CpMode.UNPOWERED}  # reported -> source


def _name(enum_type: type[Request] | type[ResponseCode], value: Value | None) -> str:
    try:
        return enum_type(int(value or 0)).name.lower()
    except ValueError:
        return str(value)


def _cp_name(state: float) -> str:
    try:
        return CpState(int(state)).name
    except ValueError:
        return str(int(state))


class _CcsPeer(PeerPlant):
    def __init__(self, harness: Harness, codec: Codec, names: tuple[str, ...]) -> None:
        super().__init__(harness, codec)
        self._msg = {name: codec.message(name) for name in names}
        self._ids = {m.frame_id: name for name, m in self._msg.items()}

    def _frame(self, frame: Frame, now: float) -> tuple[str, dict[str, Value]] | None:
        name = self._ids.get(frame.arbitration_id)
        if name is None or frame.is_extended_id:
            return None
        values = self._decode(frame, now)
        return None if values is None else (name, values)

    def _n(self, message: str, signal: str) -> float | None:
        """A numeric signal of the peer's last ``message``, None if SNA or never received."""
        codec = self._msg[message]
        return number(codec, self.peer.get(codec.frame_id), signal)


class CcsRealVehicle(_CcsPeer):
    """For the charger role: the EV's CP load, contactors and battery, inferred from 0x510/0x511."""

    role = Role.CHARGER

    def __init__(
        self,
        harness: Harness,
        codec: Codec,
        battery: Battery,
        insulation_resistance_ohm: float,
        *,
        pp_contact_ohm: float = 0.0,
        diode_ok: bool = True,
    ) -> None:
        super().__init__(harness, codec, VEHICLE_FRAMES)
        self.pp_contact_ohm = pp_contact_ohm
        self.diode_ok = diode_ok
        self.battery = battery
        self.pack = PackMonitor(battery)
        self.offset = 0.0  # V: the EV's pre-charge target minus the model's battery voltage
        self._next = 0.0
        harness.insulation_resistance_ohm = insulation_resistance_ohm
        harness.battery_voltage = battery.terminal_voltage(0.0)

    def start(self, now: float) -> None:
        self._next = now
        h = self.harness
        h.set("cp_ev_ohm", ev_load_ohm(False))
        h.set("cp_ev_diode", 1.0 if self.diode_ok else 0.0)
        h.set("pp_contact_ohm", self.pp_contact_ohm)

    def receive(self, frame: Frame, now: float) -> None:
        got = self._frame(frame, now)
        if got is None:
            return
        name, values = got
        h = self.harness
        if name == "EvStatus":
            state = int(values.get("EvCpState", CpState.INVALID))
            if state in (CpState.B, CpState.C, CpState.D):
                h.set("cp_ev_ohm", EV_LOAD_OHM[CpState(state)])
            contactors = int(values.get("EvContactorState", ContactorState.SNA))
            if contactors == ContactorState.CLOSED and not h.contactors_closed:
                h.contactors_closed = True
                h.battery_voltage = self.battery.terminal_voltage(0.0) + self.offset
            elif contactors == ContactorState.OPEN:
                h.contactors_closed = False
        elif name == "EvTargets" and not h.contactors_closed and self._request() == Request.PRECHARGE:
            target = self._n("EvTargets", "EvTargetVoltage")
            if target:
                self.offset = target - self.battery.terminal_voltage(0.0)
                h.battery_voltage = target

    def _request(self) -> int:
        return int(self._v(self._msg["EvStatus"].frame_id, "EvRequest", Request.NONE))

    def on_timer(self, now: float) -> None:
        if now + 1e-9 < self._next:
            return
        self._next = now + PLANT_PERIOD
        h = self.harness
        if h.contactors_closed and self._silent_for(EV_SILENCE_S, now) and h.output_current < CURRENT_OFF_A:
            h.contactors_closed = False
        current = h.output_current if h.contactors_closed else 0.0
        self.pack.update(current, now)
        h.battery_voltage = self.battery.terminal_voltage(current) + self.offset

    def next_deadline(self) -> float | None:
        return self._next

    def snapshot(self) -> Snapshot:
        status = self._msg["EvStatus"].frame_id
        stage = _name(Request, self._request()) if self.peer_seen else "silent"
        error = int(self._v(status, "EvErrorCode", EvErrorCode.NO_ERROR))
        faults = [] if error in (EvErrorCode.NO_ERROR, EvErrorCode.SNA) else [EvErrorCode(error).name]
        if truth(self._v(status, "EvStopRequest", 3)):
            faults.append("stop_request")
        return Snapshot(
            stage=f"real vehicle: {stage}",
            step=0,
            values={
                "soc": self._n("EvStatus", "EvSoc") or 0.0,
                "request": self._n("EvTargets", "EvTargetCurrent") or 0.0,
                "battery_voltage": self.harness.battery_voltage,
                "contactors_closed": self.harness.contactors_closed,
                "frames_received": self.frames,
                "last_fault": ", ".join(faults),
            },
        )


class CcsRealCharger(_CcsPeer):
    """For the BMS role: the charger's CP source and PWM and its DC output, inferred from 0x500/0x503."""

    role = Role.VEHICLE

    def __init__(self, harness: Harness, codec: Codec) -> None:
        super().__init__(harness, codec, CHARGER_FRAMES)
        self.gone = False  # silent for CHARGER_SILENCE_S after it was heard

    def start(self, now: float) -> None:
        self.harness.set("cp_mode", CpMode.NORMAL)  # a powered charger: +12 V, no PWM yet
        self.harness.set("cp_duty", NO_PWM)

    def receive(self, frame: Frame, now: float) -> None:
        got = self._frame(frame, now)
        if got is None:
            return
        name, values = got
        h = self.harness
        self.gone = False
        if name == "EvseStatus":
            duty = self._n("EvseStatus", "CpDuty")
            h.set("cp_duty", NO_PWM if duty is None or duty >= NO_PWM else duty)
            state = int(values.get("CpState", CpState.INVALID))
            mode = _SOURCE.get(state, CpMode.NORMAL)
            h.set("cp_mode", mode)
            h.set("cp_state", state)
            pp = self._n("EvseStatus", "PpResistance")
            if pp is not None:
                h.set("pp_ohm", math.inf if pp >= OPEN_OHM else pp)
        elif name == "EvsePresentValues":
            h.output_voltage = self._n("EvsePresentValues", "EvsePresentVoltage") or 0.0
            h.output_current = self._n("EvsePresentValues", "EvsePresentCurrent") or 0.0

    def on_timer(self, now: float) -> None:
        if not self.gone and self._silent_for(CHARGER_SILENCE_S, now):
            self.gone = True
            self.harness.output_current = 0.0
            self.harness.set("cp_duty", NO_PWM)

    def next_deadline(self) -> float | None:
        if self.last_heard is None or self.gone:
            return None
        return self.last_heard + CHARGER_SILENCE_S

    def snapshot(self) -> Snapshot:
        status = self._msg["EvseStatus"].frame_id
        volts = self._n("EvsePresentValues", "EvsePresentVoltage") or 0.0
        amps = self.harness.output_current
        if not self.peer_seen:
            stage = "silent"
        elif self.gone:
            stage = "finished (silent)"
        else:
            number_ = int(self._v(status, "EvseStage", 255))
            stage = _STAGE_NAME.get(number_, str(number_))
        faults = []
        code = self._v(status, "EvseResponseCode", ResponseCode.SNA)
        if failed(code):
            faults.append(_name(ResponseCode, code))
        if int(self._v(status, "EvseIsolationStatus", IsolationStatus.SNA)) == IsolationStatus.FAULT:
            faults.append("isolation_fault")
        duty = self.harness.lines.get("cp_duty", NO_PWM)
        return Snapshot(
            stage=f"real charger: {stage}",
            step=0,
            values={
                "status": f"CP {_cp_name(self.harness.lines.get('cp_state', CpState.INVALID))}, "
                f"{'no PWM' if duty >= NO_PWM else f'{duty:g} %'}",
                "present_voltage": volts,
                "present_current": amps,
                "power_kw": volts * amps / 1000.0,
                "available_voltage": self._n("EvseMaxLimits", "EvseMaxVoltage") or 0.0,
                "available_current": self._n("EvseMaxLimits", "EvseMaxCurrent") or 0.0,
                "frames_received": self.frames,
                "last_fault": ", ".join(faults),
            },
        )
