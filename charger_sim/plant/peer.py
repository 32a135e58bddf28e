"""Stand-ins for the hardware a real peer drives, for single-role runs (``charger`` / ``bms`` commands).

In a two-core session both sides share one :class:`~charger_sim.plant.harness.Harness`: the charger
closes d1/d2, the simulated vehicle closes k and its contactors, and the DC link is physical.  When
the peer is a real device on the bus, none of that is observable: only its CAN frames are.  A *peer
plant* watches the peer's frames and keeps the harness the local core reads consistent with them.
It is sans-I/O like the cores: ``receive(frame, now)``, ``on_timer(now)``, ``next_deadline()``.

This module holds the base class, the CHAdeMO plants and the registry; the GB/T and CCS plants are
in :mod:`.peer_gbt` and :mod:`.peer_ccs`, each documenting its inferences.

CHAdeMO defaults (documented in the README, "Two processes on one bus"):

charger role (the peer is a real vehicle/BMS)
  - ``k`` follows 102.5.0 (charging enabled): a BMS grants permission on the wire and on k together;
  - the vehicle's contactors count as closed while d2 is closed and 102.5.3 (contactors open) is 0,
    and as open again once the vehicle has withdrawn 102.5.0 and the output current is <= 5 A (it
    opens them then for the welding check, §7 step 12, before it sets 102.5.3);
  - the DC link: a pack model from the scenario's ``vehicle`` section (default pack otherwise) takes
    the charger's output current, and its terminal voltage is the link voltage the charger regulates
    into and reports in 0x109 (so a simulated BMS on the other end sees a consistent voltage; for a
    real car, describe its pack in the ``vehicle`` section);
  - the insulation resistance is the ``vehicle`` section's (5 MOhm by default).

BMS role (the peer is a real charger)
  - d1 is closed from the start (plugged in, charger started) and opens once the charger, having
    been heard, stays silent for :data:`CHARGER_SILENCE_S` (it ends its session by going quiet);
  - d2 closes when the charger has locked the connector (109.5.2) and finished its insulation test
    (output seen above :data:`TEST_SEEN_V`, then below 20 V), or after the connector has been locked
    for :data:`LOCKED_D2_FALLBACK_S` without a visible test; it opens when the connector unlocks;
  - the DC link: the charger's reported output current (109.3) flows into the simulated pack while
    the vehicle's contactors are closed; its reported voltage (109.1) is the output voltage.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

from ..bms.battery import Battery
from ..bms.monitor import PackMonitor
from ..codec import Codec, Value
from ..errors import DecodeError, UsageError
from ..frames import Frame
from ..protocols.base import Role, Snapshot
from .harness import Harness

CHARGER_SILENCE_S = 2.0  # s without charger frames (after it was heard) before d1 counts as open
TEST_SEEN_V = 50.0  # V: an insulation-test voltage on the charger output
BLEED_DONE_V = 20.0  # V: the output bled after the test (CHAdeMO §7 step 6)
LOCKED_D2_FALLBACK_S = 15.0  # s locked without a visible test before d2 counts as closed
PLANT_PERIOD = 0.1  # s between pack-model steps
STOP_CURRENT_A = 5.0  # A: current considered stopped (CHAdeMO §7 step 11)
DEFAULT_INSULATION_OHM = 5.0e6  # vehicle + cable when the vehicle configuration has none


class PeerPlant(abc.ABC):
    """The harness side of a real peer, inferred from its frames."""

    role: Role  # the LOCAL role this plant serves

    def __init__(self, harness: Harness, codec: Codec) -> None:
        self.harness = harness
        self.codec = codec
        self.peer: dict[int, dict[str, Value]] = {}
        self.first_heard: float | None = None
        self.last_heard: float | None = None
        self.frames = 0

    @property
    def peer_seen(self) -> bool:
        return self.first_heard is not None

    @abc.abstractmethod
    def start(self, now: float) -> None:
        """The session starts (before the local core's start)."""

    @abc.abstractmethod
    def receive(self, frame: Frame, now: float) -> None:
        """A peer frame arrived (called before the local core sees it)."""

    @abc.abstractmethod
    def on_timer(self, now: float) -> None: ...

    @abc.abstractmethod
    def next_deadline(self) -> float | None: ...

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """The peer as seen on the bus, in the shape of the local view of that role."""

    def _heard(self, now: float) -> None:
        """A valid peer frame arrived at ``now``."""
        self.first_heard = now if self.first_heard is None else self.first_heard
        self.last_heard = now
        self.frames += 1

    def _silent_for(self, seconds: float, now: float) -> bool:
        """The peer was heard, and has been silent for ``seconds`` at ``now``."""
        return self.last_heard is not None and now + 1e-9 >= self.last_heard + seconds

    def _decode(self, frame: Frame, now: float) -> dict[str, Value] | None:
        msg = self.codec.by_id(frame.arbitration_id, frame.is_extended_id)
        if msg is None:
            return None
        try:
            values = msg.decode(frame.data)
        except DecodeError:
            return None
        self.peer[frame.arbitration_id] = values
        self._heard(now)
        return values

    def _v(self, frame_id: int, signal: str, default: Value = 0) -> Value:
        values = self.peer.get(frame_id)
        return default if values is None else values.get(signal, default)


class ChademoRealVehicle(PeerPlant):
    """For the charger role: the vehicle's k line, contactors and battery, inferred from 0x100-0x102."""

    role = Role.CHARGER

    def __init__(
        self, harness: Harness, codec: Codec, battery: Battery, insulation_resistance_ohm: float
    ) -> None:
        super().__init__(harness, codec)
        self.battery = battery
        self.pack = PackMonitor(battery)
        self.harness.insulation_resistance_ohm = insulation_resistance_ohm
        self.harness.battery_voltage = battery.terminal_voltage(0.0)
        self.withdrawn = False  # 102.5.0 went 1 -> 0: the vehicle is ending the session
        self._enabled = False
        self._next = 0.0

    def start(self, now: float) -> None:
        self._next = now
        self.harness.set("proximity", True)

    def receive(self, frame: Frame, now: float) -> None:
        if frame.is_extended_id or frame.arbitration_id not in (0x100, 0x101, 0x102, 0x110):
            return
        values = self._decode(frame, now)
        if values is None or frame.arbitration_id != 0x102:
            return
        enabled = bool(values.get("ChargingEnabled", 0))
        self.withdrawn = self.withdrawn or (self._enabled and not enabled)
        self._enabled = enabled
        self.harness.set("k", enabled)
        self._update_contactors()

    def _update_contactors(self) -> None:
        h = self.harness
        closed = h.is_on("d2") and 0x102 in self.peer and not self._v(0x102, "ContactorOpen", 1)
        if self.withdrawn and h.output_current <= STOP_CURRENT_A:
            closed = False
        h.contactors_closed = bool(closed)

    def on_timer(self, now: float) -> None:
        if now + 1e-9 < self._next:
            return
        self._next = now + PLANT_PERIOD
        self._update_contactors()
        h = self.harness
        current = h.output_current if h.contactors_closed else 0.0
        self.pack.update(current, now)
        h.battery_voltage = self.battery.terminal_voltage(current)

    def next_deadline(self) -> float | None:
        return self._next

    def snapshot(self) -> Snapshot:
        enabled = bool(self._v(0x102, "ChargingEnabled"))
        if not self.peer_seen:
            stage = "silent"
        elif self._v(0x102, "ChargeCurrentRequest"):
            stage = "requesting current"
        else:
            stage = "charge enabled" if enabled else "not enabled"
        return Snapshot(
            stage=f"real vehicle: {stage}",
            step=0,
            values={
                "soc": float(self._v(0x102, "ChargedRate")),
                "request": float(self._v(0x102, "ChargeCurrentRequest")),
                "battery_voltage": self.harness.battery_voltage,
                "contactors_closed": self.harness.contactors_closed,
                "frames_received": self.frames,
            },
        )


class ChademoRealCharger(PeerPlant):
    """For the BMS role: the charger's d1/d2 and DC output, inferred from 0x108/0x109."""

    role = Role.VEHICLE

    def __init__(self, harness: Harness, codec: Codec) -> None:
        super().__init__(harness, codec)
        self.test_seen = False
        self.test_done = False
        self.locked_since: float | None = None

    def start(self, now: float) -> None:
        self.harness.set("d1", True)

    def receive(self, frame: Frame, now: float) -> None:
        if frame.is_extended_id or frame.arbitration_id not in (0x108, 0x109, 0x118):
            return
        values = self._decode(frame, now)
        if values is None or frame.arbitration_id != 0x109:
            return
        h = self.harness
        volts = float(values.get("PresentOutputVoltage", 0))
        h.output_voltage = volts
        h.output_current = float(values.get("PresentOutputCurrent", 0))
        locked = bool(values.get("StatusConnectorLocked", 0))
        if not h.is_on("d2"):
            if volts >= TEST_SEEN_V:
                self.test_seen = True
            elif self.test_seen and volts < BLEED_DONE_V:
                self.test_done = True
        if locked:
            self.locked_since = now if self.locked_since is None else self.locked_since
            if not h.is_on("d2") and (self.test_done or now - self.locked_since >= LOCKED_D2_FALLBACK_S):
                h.set("d2", True)
        else:
            self.locked_since = None
            if h.is_on("d2"):
                h.set("d2", False)

    def on_timer(self, now: float) -> None:
        if self.last_heard is not None and now + 1e-9 >= self.last_heard + CHARGER_SILENCE_S:
            h = self.harness
            h.set("d2", False)
            h.set("d1", False)
            h.output_current = 0.0

    def next_deadline(self) -> float | None:
        if self.last_heard is None or not self.harness.is_on("d1"):
            return None
        return self.last_heard + CHARGER_SILENCE_S

    def snapshot(self) -> Snapshot:
        f = self.peer.get(0x109, {})
        status = (
            int(f.get("StatusCharging", 0))
            | int(f.get("StatusChargerMalfunction", 0)) << 1
            | int(f.get("StatusConnectorLocked", 0)) << 2
            | int(f.get("StatusBatteryIncompatible", 0)) << 3
            | int(f.get("StatusSystemMalfunction", 0)) << 4
            | int(f.get("StatusStopControl", 0)) << 5
        )
        volts = float(f.get("PresentOutputVoltage", 0))
        amps = float(f.get("PresentOutputCurrent", 0))
        if not self.peer_seen:
            stage = "silent"
        elif not self.harness.is_on("d1"):
            stage = "finished (silent)"
        elif f.get("StatusCharging", 0):
            stage = "charging"
        elif f.get("StatusStopControl", 0):
            stage = "stopped / not charging"
        else:
            stage = "ready"
        faults = [
            name
            for name, sig in (
                ("charger_malfunction", "StatusChargerMalfunction"),
                ("battery_incompatible", "StatusBatteryIncompatible"),
                ("system_malfunction", "StatusSystemMalfunction"),
            )
            if f.get(sig, 0)
        ]
        return Snapshot(
            stage=f"real charger: {stage}",
            step=0,
            values={
                "status": f"0x{status:02X}" if f else "-",
                "present_voltage": volts,
                "present_current": amps,
                "power_kw": volts * amps / 1000.0,
                "available_voltage": float(self._v(0x108, "AvailableOutputVoltage")),
                "available_current": float(self._v(0x108, "AvailableOutputCurrent")),
                "d1": self.harness.is_on("d1"),
                "d2": self.harness.is_on("d2"),
                "frames_received": self.frames,
                "last_fault": ", ".join(faults),
            },
        )


# factory(harness, codec, battery, vehicle): ``battery`` is the pack model of the scenario's vehicle
# section, ``vehicle`` that section's protocol configuration (insulation resistance, PP contact...)
Factory = Callable[[Harness, Codec, Battery, object], PeerPlant]


def insulation_of(vehicle: object) -> float:
    """The vehicle configuration's insulation resistance (cable + vehicle), 5 MOhm by default."""
    return float(getattr(vehicle, "insulation_resistance_ohm", DEFAULT_INSULATION_OHM))


def _chademo_vehicle(h: Harness, c: Codec, battery: Battery, vehicle: object) -> PeerPlant:
    return ChademoRealVehicle(h, c, battery, insulation_of(vehicle))


def _chademo_charger(h: Harness, c: Codec, battery: Battery, vehicle: object) -> PeerPlant:
    return ChademoRealCharger(h, c)


def _gbt_bms(h: Harness, c: Codec, battery: Battery, vehicle: object) -> PeerPlant:
    from .peer_gbt import GbtRealBms

    return GbtRealBms(h, c, battery, insulation_of(vehicle))


def _gbt_charger(h: Harness, c: Codec, battery: Battery, vehicle: object) -> PeerPlant:
    from .peer_gbt import GbtRealCharger

    return GbtRealCharger(h, c)


def _ccs_vehicle(h: Harness, c: Codec, battery: Battery, vehicle: object) -> PeerPlant:
    from .peer_ccs import CcsRealVehicle

    return CcsRealVehicle(
        h,
        c,
        battery,
        insulation_of(vehicle),
        pp_contact_ohm=float(getattr(vehicle, "pp_contact_ohm", 0.0)),
        diode_ok=bool(getattr(vehicle, "diode_ok", True)),
    )


def _ccs_charger(h: Harness, c: Codec, battery: Battery, vehicle: object) -> PeerPlant:
    from .peer_ccs import CcsRealCharger

    return CcsRealCharger(h, c)


# (protocol, local role) -> factory; the GB/T and CCS plants live in peer_gbt.py / peer_ccs.py
# (imported when used: they import this module's base class)
_PLANTS: dict[tuple[str, Role], Factory] = {
    ("chademo", Role.CHARGER): _chademo_vehicle,
    ("chademo", Role.VEHICLE): _chademo_charger,
    ("gbt", Role.CHARGER): _gbt_bms,
    ("gbt", Role.VEHICLE): _gbt_charger,
    ("ccs", Role.CHARGER): _ccs_vehicle,
    ("ccs", Role.VEHICLE): _ccs_charger,
}


def register(protocol: str, role: Role, factory: Factory) -> None:
    """Add (or replace) the peer plant of ``protocol`` for the local ``role``."""
    _PLANTS[(protocol, role)] = factory


def supported(protocol: str, role: Role) -> bool:
    return (protocol, role) in _PLANTS


def build(
    protocol: str, role: Role, harness: Harness, codec: Codec, battery: Battery, vehicle: object
) -> PeerPlant:
    """The peer plant for the local ``role``; ``vehicle`` is the scenario's vehicle configuration."""
    try:
        factory = _PLANTS[(protocol, role)]
    except KeyError:
        raise UsageError(
            f"the {role.value} role is not available for {protocol} yet (no model of a real peer's lines)"
        ) from None
    return factory(harness, codec, battery, vehicle)
