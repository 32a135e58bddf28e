"""GB/T 27930 peer plants: the lines and DC link of a real BMS or charger, inferred from its frames.

See :mod:`charger_sim.plant.peer` for the idea.  GB/T defaults (README, "Two processes on one bus"):

charger role (the peer is a real BMS)
  - ``cc1`` (detection point 1: vehicle plug) is on from the start;
  - the BMS's contactors count as closed from BRO 0xAA (a BMS closes them before it says ready,
    §6 step 5) until the BMS ends (BST, BEM, BSD, a new BRM, BRO back to 0x00, or
    :data:`BMS_SILENCE_S` without any BMS frame) *and* the output current is <= 5 A;
  - the DC link: a pack model from the scenario's ``vehicle`` section takes the charger's output
    current; its voltage is shifted by a constant so that it equals the battery voltage the BMS
    reports in BCP (so the charger's pre-charge check against BCP holds for any real pack);
  - the insulation resistance is the ``vehicle`` section's (5 MOhm by default);
  - multi-packet BMS messages (BRM, BCP, BCS...) are reassembled by listening to the BMS's RTS and
    TP.DT frames (the local charger answers the RTS): BCS gives the SOC shown and recorded.

BMS role (the peer is a real charger)
  - ``k3k4`` (auxiliary power) comes on with the charger's first frame (CHM comes with it, §6 step 1)
    and goes off once the charger, having been heard, stays silent: :data:`CHARGER_SILENCE_S` after
    CSD (the end of a session), :data:`CHARGER_HOLD_S` otherwise (a re-handshake may keep it
    silent for the 5 s CEM hold, §8);
  - ``k1k2`` (the charger's DC relays) and the DC link: CCS's output voltage and current (every
    50 ms) are the output; the current drops to 0 at CST or CEM (the charger brings it <= 5 A within
    100 ms, §7), when CCS stops for :data:`CCS_STALE_S`, and when the charger falls silent.
"""

from __future__ import annotations

from ..bms.battery import Battery
from ..bms.monitor import PackMonitor
from ..codec import Codec, Value
from ..errors import DbcError, DecodeError
from ..frames import Frame
from ..protocols.base import Role, Snapshot
from ..protocols.gbt import BMS_ADDRESS, CHARGER_ADDRESS
from ..protocols.gbt.messages import BMS_TX, CHARGER_TX, TP_MESSAGES, Router, charge_current, set_flags
from ..protocols.gbt.transport import PGN_TP_CM, PGN_TP_DT, Abort, Rts, parse_tp_cm, split_id
from .harness import Harness
from .peer import PLANT_PERIOD, PeerPlant

STOP_CURRENT_A = 5.0  # A: current considered stopped (§6 step 9, §8)
BMS_SILENCE_S = 1.0  # s without BMS frames (the BCL watchdog) before its contactors count as opening
CHARGER_SILENCE_S = 2.0  # s of charger silence after CSD before k3k4 counts as off
CHARGER_HOLD_S = 6.0  # s of charger silence otherwise (longer than the 5 s CEM hold of §8)
CCS_STALE_S = 0.5  # s without CCS (sent every 50 ms while charging) before the output counts as off

_BMS_STAGE = {  # last BMS message -> what the BMS is doing
    "BHM": "handshake",
    "BRM": "recognition",
    "BCP": "configuration",
    "BCL": "charging",
    "BCS": "charging",
    "BSM": "charging",
    "BST": "stopping",
    "BSD": "statistics",
    "BEM": "error",
}
_CHARGER_STAGE = {
    "CHM": "handshake / insulation test",
    "CRM": "recognition",
    "CTS": "configuration",
    "CML": "configuration",
    "CRO": "ready",
    "CCS": "charging",
    "CST": "stopping",
    "CSD": "statistics",
    "CEM": "error",
}


class TpListener:
    """Passive J1939-21 reassembly of the peer's multi-packet messages (RTS + TP.DT only: the CTS and
    EndOfMsgAck come from the local core, which a peer plant does not see)."""

    def __init__(self) -> None:
        self._rts: Rts | None = None
        self._packets: dict[int, bytes] = {}

    def feed(self, frame: Frame) -> tuple[int, bytes] | None:
        """One TP.CM or TP.DT frame; returns (PGN, payload) when a message is complete."""
        pgn = split_id(frame.arbitration_id)[1]
        if pgn == PGN_TP_CM:
            try:
                cm = parse_tp_cm(frame.data)
            except ValueError:
                return None
            if isinstance(cm, Rts):
                self._rts, self._packets = cm, {}
            elif isinstance(cm, Abort):
                self._rts = None
            return None
        rts = self._rts
        if pgn != PGN_TP_DT or rts is None or not frame.data:
            return None
        self._packets[frame.data[0]] = bytes(frame.data[1:8])
        if any(seq not in self._packets for seq in range(1, rts.packets + 1)):
            return None
        self._rts = None
        payload = b"".join(self._packets[seq] for seq in range(1, rts.packets + 1))
        return rts.pgn, payload[: rts.size]


class _GbtPeer(PeerPlant):
    """Routing and decoding of the peer's GB/T frames by PGN (any priority), TP reassembled."""

    def __init__(self, harness: Harness, codec: Codec, own: int, peer: int, names: tuple[str, ...]) -> None:
        super().__init__(harness, codec)
        self._router = Router(codec, own, peer, names)
        self._tp = TpListener()
        self.messages: dict[str, dict[str, Value]] = {}
        self.last = ""  # the peer's last message (its stage, roughly)

    def _message(self, frame: Frame, now: float) -> tuple[str, dict[str, Value]] | None:
        route = self._router.route(frame)
        if route is None:
            return None
        if route.tp:
            self._heard(now)
            done = self._tp.feed(frame)
            if done is None or done[0] not in TP_MESSAGES:
                return None
            name, data = TP_MESSAGES[done[0]], done[1]
            truncated = True
        else:
            assert route.codec is not None
            name, data = route.codec.name, frame.data
            truncated = name == "CCS"  # real chargers send it 7 bytes long (§10)
        try:
            values = self.codec.message(name).decode(data, allow_truncated=truncated)
        except (DecodeError, DbcError):
            return None
        if not route.tp:
            self._heard(now)
        self.messages[name] = values
        self.last = name
        return name, values

    def _m(self, name: str, signal: str, default: Value = 0) -> Value:
        values = self.messages.get(name)
        return default if values is None else values.get(signal, default)


class GbtRealBms(_GbtPeer):
    """For the charger role: the BMS's contactors and battery, inferred from BRO/BST/BEM/BSD."""

    role = Role.CHARGER

    def __init__(
        self, harness: Harness, codec: Codec, battery: Battery, insulation_resistance_ohm: float
    ) -> None:
        super().__init__(harness, codec, CHARGER_ADDRESS, BMS_ADDRESS, BMS_TX)
        self.battery = battery
        self.pack = PackMonitor(battery)
        self.offset = 0.0  # V: BCP's battery voltage minus the model's
        self.ending = False  # the BMS is ending (or restarting) the session: contactors open at <= 5 A
        self._next = 0.0
        harness.insulation_resistance_ohm = insulation_resistance_ohm
        harness.battery_voltage = battery.terminal_voltage(0.0)

    def start(self, now: float) -> None:
        self._next = now
        self.harness.set("cc1", True)

    def receive(self, frame: Frame, now: float) -> None:
        got = self._message(frame, now)
        if got is None:
            return
        name, values = got
        h = self.harness
        if name == "BRO":
            if int(values.get("BmsReady", 0)) == 0xAA:
                if not h.contactors_closed:
                    h.contactors_closed = True
                    h.battery_voltage = self.battery.terminal_voltage(0.0) + self.offset
                self.ending = False
            elif h.contactors_closed:
                self.ending = True
        elif name == "BCP":
            present = float(values.get("PresentBatteryVoltage", 0.0))
            if present > 0 and not h.contactors_closed:
                self.offset = present - self.battery.terminal_voltage(0.0)
                h.battery_voltage = present
        elif name in ("BST", "BSD", "BRM") or (name == "BEM" and set_flags(values)):
            self.ending = True
        self._open_when_stopped()

    def _open_when_stopped(self) -> None:
        h = self.harness
        if h.contactors_closed and self.ending and h.output_current <= STOP_CURRENT_A:
            h.contactors_closed = False

    def on_timer(self, now: float) -> None:
        if now + 1e-9 < self._next:
            return
        self._next = now + PLANT_PERIOD
        h = self.harness
        if h.contactors_closed and self._silent_for(BMS_SILENCE_S, now):
            self.ending = True
        self._open_when_stopped()
        current = h.output_current if h.contactors_closed else 0.0
        self.pack.update(current, now)
        h.battery_voltage = self.battery.terminal_voltage(current) + self.offset

    def next_deadline(self) -> float | None:
        return self._next

    def soc(self) -> float:
        """The BMS's own SOC: BCS while charging, BCP's before."""
        if "BCS" in self.messages:
            return float(self._m("BCS", "SOC"))
        return float(self._m("BCP", "SOC"))

    def snapshot(self) -> Snapshot:
        if not self.peer_seen:
            stage = "silent"
        elif self.last == "BRO":
            stage = "ready (BRO 0xAA)" if int(self._m("BRO", "BmsReady")) == 0xAA else "not ready (BRO 0x00)"
        else:
            stage = _BMS_STAGE.get(self.last, self.last)
        stops = set_flags(self.messages.get("BST", {})) + set_flags(self.messages.get("BEM", {}))
        return Snapshot(
            stage=f"real BMS: {stage}",
            step=0,
            values={
                "soc": self.soc(),
                "request": charge_current(self._m("BCL", "CurrentDemand", 0.0)),
                "battery_voltage": self.harness.battery_voltage,
                "contactors_closed": self.harness.contactors_closed,
                "frames_received": self.frames,
                "last_fault": ", ".join(stops),
            },
        )


class GbtRealCharger(_GbtPeer):
    """For the BMS role: the charger's auxiliary power K3/K4, relays K1/K2 and output, from its frames."""

    role = Role.VEHICLE

    def __init__(self, harness: Harness, codec: Codec) -> None:
        super().__init__(harness, codec, BMS_ADDRESS, CHARGER_ADDRESS, CHARGER_TX)
        self.csd_seen = False
        self.ccs_at: float | None = None  # last CCS

    def start(self, now: float) -> None:
        self.harness.set("k3k4", False)  # until the charger is heard

    def receive(self, frame: Frame, now: float) -> None:
        got = self._message(frame, now)
        if self.last_heard == now and not self.csd_seen:
            self.harness.set("k3k4", True)
        if got is None:
            return
        name, values = got
        h = self.harness
        if name == "CCS":
            self.ccs_at = now
            h.set("k1k2", True)
            h.output_voltage = float(values.get("OutputVoltage", 0.0))
            h.output_current = charge_current(values.get("OutputCurrent", -400.0))
        elif name in ("CST", "CEM", "CSD"):
            self.csd_seen = self.csd_seen or name == "CSD"
            self._output_off()

    def _output_off(self) -> None:
        h = self.harness
        h.output_current = 0.0
        h.set("k1k2", False)
        self.ccs_at = None

    def _silence_limit(self) -> float:
        return CHARGER_SILENCE_S if self.csd_seen else CHARGER_HOLD_S

    def on_timer(self, now: float) -> None:
        if self.ccs_at is not None and now + 1e-9 >= self.ccs_at + CCS_STALE_S:
            self._output_off()
        if self.harness.is_on("k3k4") and self._silent_for(self._silence_limit(), now):
            self._output_off()
            self.harness.set("k3k4", False)

    def next_deadline(self) -> float | None:
        due: list[float] = []
        if self.ccs_at is not None:
            due.append(self.ccs_at + CCS_STALE_S)
        if self.last_heard is not None and self.harness.is_on("k3k4"):
            due.append(self.last_heard + self._silence_limit())
        return min(due, default=None)

    def snapshot(self) -> Snapshot:
        h = self.harness
        volts = float(self._m("CCS", "OutputVoltage", 0.0)) if h.is_on("k1k2") else 0.0
        amps = h.output_current
        if not self.peer_seen:
            stage = "silent"
        elif not h.is_on("k3k4"):
            stage = "finished (silent)"
        elif self.last == "CRM":
            stage = f"recognition (CRM 0x{int(self._m('CRM', 'RecognitionResult')):02X})"
        elif self.last == "CRO":
            stage = f"ready (CRO 0x{int(self._m('CRO', 'ChargerReady')):02X})"
        else:
            stage = _CHARGER_STAGE.get(self.last, self.last)
        faults = set_flags(self.messages.get("CST", {})) + set_flags(self.messages.get("CEM", {}))
        return Snapshot(
            stage=f"real charger: {stage}",
            step=0,
            values={
                "status": self.last or "-",
                "present_voltage": volts,
                "present_current": amps,
                "power_kw": volts * amps / 1000.0,
                "available_voltage": float(self._m("CML", "MaxOutputVoltage", 0.0)),
                "available_current": charge_current(self._m("CML", "MaxOutputCurrent", -400.0)),
                "k3k4": h.is_on("k3k4"),
                "k1k2": h.is_on("k1k2"),
                "frames_received": self.frames,
                "last_fault": ", ".join(faults),
            },
        )
