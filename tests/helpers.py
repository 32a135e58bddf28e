"""Scripted-vehicle bench for the CHAdeMO charger core (h11 ``ConnectionPair`` style).

Only the charger core runs; the vehicle is a script: hand-built 0x100/0x101/0x102 frames (encoded
through the DBC, every field overridable) sent every 100 ms while the vehicle is "alive", plus the
control line k and the DC-link values the test sets on the :class:`Harness`.  The clock is explicit:
:meth:`Bench.step_to` visits every charger deadline and every vehicle transmission up to a time and
records what the charger sent, the events it queued and a sample of its output after each instant.
No sleeps, no wall clock, no simulated vehicle core.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from charger_sim.codec import Value, load_dbc
from charger_sim.frames import Frame
from charger_sim.plant.harness import Harness
from charger_sim.protocols.base import Event, SessionEnded, StageChanged
from charger_sim.protocols.chademo.charger import ChademoCharger, ChademoChargerConfig
from charger_sim.protocols.chademo.states import Stage
from charger_sim.protocols.chademo.timing import LIMITS, limit
from tests.clocked import EPS, Clocked

CODEC = load_dbc("chademo")
CYCLE = limit("cycle")

VEHICLE_MESSAGES = {
    0x100: "VehicleChargeLimits",
    0x101: "VehicleChargeTime",
    0x102: "VehicleChargeControl",
}

# 0x109 byte 5 (§5.5)
CHARGING = 0x01
CHARGER_MALFUNCTION = 0x02
LOCKED = 0x04
INCOMPATIBLE = 0x08
SYSTEM_MALFUNCTION = 0x10
STOP_CONTROL = 0x20

_STATUS_SIGNALS = (
    ("StatusCharging", CHARGING),
    ("StatusChargerMalfunction", CHARGER_MALFUNCTION),
    ("StatusConnectorLocked", LOCKED),
    ("StatusBatteryIncompatible", INCOMPATIBLE),
    ("StatusSystemMalfunction", SYSTEM_MALFUNCTION),
    ("StatusStopControl", STOP_CONTROL),
)

T = TypeVar("T")


def status_byte(values: dict[str, Value]) -> int:
    """109.5 rebuilt from the decoded 0x109 signals."""
    return sum(bit for name, bit in _STATUS_SIGNALS if values[name])


def collapse(seq: Iterable[T]) -> list[T]:
    """Consecutive duplicates removed: the walk a status byte takes."""
    out: list[T] = []
    for item in seq:
        if not out or out[-1] != item:
            out.append(item)
    return out


class ScriptedVehicle:
    """The vehicle's frames, built through the DBC from a dict of signal values per message.

    Defaults are Leaf-like (protocol 2, target 410 V, max 435 V, 0x102 status 0x08: contactors open,
    charging not yet enabled).  ``ScriptedVehicle(ChargingEnabled=1)`` or ``vehicle.set(...)`` overrides
    any signal by name; ``send_ids`` says which of the three frames are sent each cycle.
    """

    def __init__(self, **fields: Value) -> None:
        self.values: dict[int, dict[str, Value]] = {
            0x100: {
                "MinChargeCurrent": 6,
                "MinBatteryVoltage": 0,
                "MaxBatteryVoltage": 435,
                "ChargedRateRefConst": 100,
            },
            0x101: {
                "MaxChargeTime10s": 0xFF,
                "MaxChargeTimeMin": 90,
                "EstChargeTimeMin": 0,
                "RatedCapacity": 40.0,
            },
            0x102: {
                "ProtocolNumberEV": 2,
                "TargetBatteryVoltage": 410,
                "ChargeCurrentRequest": 0,
                "FaultOverVoltage": 0,
                "FaultUnderVoltage": 0,
                "FaultCurrentDeviation": 0,
                "FaultHighTemperature": 0,
                "FaultVoltageDeviation": 0,
                "ChargingEnabled": 0,
                "ShiftPosition": 0,
                "ChargingSystemFault": 0,
                "ContactorOpen": 1,
                "StopBeforeCharging": 0,
                "DynamicControlLegacy": 0,
                "DischargeCompatible": 0,
                "ChargedRate": 50,
            },
        }
        self.send_ids: set[int] = set(VEHICLE_MESSAGES)
        self.set(**fields)

    def set(self, **fields: Value) -> None:
        for name, value in fields.items():
            for values in self.values.values():
                if name in values:
                    values[name] = value
                    break
            else:
                raise KeyError(f"no vehicle signal {name!r}")

    def get(self, name: str) -> Value:
        for values in self.values.values():
            if name in values:
                return values[name]
        raise KeyError(name)

    def frame(self, frame_id: int, now: float) -> Frame:
        return CODEC.message(VEHICLE_MESSAGES[frame_id]).frame(self.values[frame_id], now)

    def frames(self, now: float) -> list[Frame]:
        return [self.frame(i, now) for i in sorted(self.send_ids)]


@dataclass(frozen=True, slots=True)
class Sample:
    """The charger after one instant of the bench clock."""

    time: float
    stage: str
    current: float
    voltage: float
    d1: bool
    d2: bool
    status: int


class Bench(Clocked):
    """One charger core and one scripted vehicle on an explicit clock."""

    def __init__(
        self,
        config: ChademoChargerConfig | None = None,
        vehicle: ScriptedVehicle | None = None,
        *,
        contactors_need_d2: bool = True,
    ) -> None:
        self.harness = Harness()
        self.config = config or ChademoChargerConfig()
        self.charger = ChademoCharger(self.config, self.harness, CODEC)
        self.vehicle = vehicle or ScriptedVehicle()
        # The vehicle's contactor coils are energised through d2: when the charger opens d2 the
        # contactors drop out whatever the vehicle script says.
        self.contactors_need_d2 = contactors_need_d2
        self.now = 0.0
        self.alive = False
        self._tx_t0 = 0.0
        self._tx_k = 0
        self.sent: list[Frame] = []  # charger -> vehicle
        self.delivered: list[Frame] = []  # vehicle -> charger
        self.events: list[Event] = []
        self.samples: list[Sample] = []

    # ---- clock -------------------------------------------------------------------------------
    def start(self, at: float = 0.0) -> None:
        self.now = at
        self._collect(self.charger.start(at))
        self._after_instant()

    def wake(self, at: float | None = None) -> None:
        """The vehicle starts sending its frames at ``at`` (default now), then every 100 ms."""
        self.alive = True
        self._tx_t0 = self.now if at is None else at
        self._tx_k = 0

    def silence(self) -> None:
        self.alive = False

    @property
    def next_tx(self) -> float | None:
        return self._tx_t0 + self._tx_k * CYCLE if self.alive else None

    def next_instant(self) -> float | None:
        times = [t for t in (self.next_tx, self.charger.next_deadline()) if t is not None]
        return min(times) if times else None

    def step(self) -> float | None:
        """Run the next instant (vehicle frames first, then the charger's timer); its time or None."""
        t = self.next_instant()
        if t is None:
            return None
        t = max(t, self.now)
        self.now = t
        tx = self.next_tx
        if tx is not None and tx <= t + EPS:
            self._tx_k += 1
            for frame in self.vehicle.frames(t):
                self.deliver(frame)
        for _ in range(10):
            deadline = self.charger.next_deadline()
            if deadline is None or deadline > t + EPS:
                break
            self._collect(self.charger.on_timer(t))
        else:  # pragma: no cover - a core that keeps asking for the same instant
            raise AssertionError(f"charger deadline stuck at {t}")
        self._after_instant()
        return t

    # ---- vehicle -> charger --------------------------------------------------------------------
    def deliver(self, frame: Frame) -> None:
        """Hand one frame to the charger now."""
        self.delivered.append(frame)
        self._collect(self.charger.receive(frame, self.now))

    def request_stop(self, reason: str = "operator_stop") -> None:
        """Operator stop now."""
        self._collect(self.charger.request_stop(self.now, reason))
        self._after_instant()

    def _collect(self, frames: list[Frame]) -> None:
        self.sent.extend(frames)

    def _after_instant(self) -> None:
        if self.contactors_need_d2 and not self.harness.is_on("d2"):
            self.harness.contactors_closed = False
        self.events.extend(self.charger.drain_events())
        snap = self.charger.snapshot().values
        self.samples.append(
            Sample(
                self.now,
                self.stage.value,
                float(snap["present_current"]),
                float(snap["present_voltage"]),
                bool(snap["d1"]),
                bool(snap["d2"]),
                int(str(snap["status"]), 16),
            )
        )

    # ---- views -------------------------------------------------------------------------------
    @property
    def stage(self) -> Stage:
        return self.charger.stage

    def snapshot_stage(self) -> str:
        """The stage as the core's snapshot reports it (a call: not narrowed by type checkers)."""
        return self.charger.snapshot().stage

    def frames(self, frame_id: int) -> list[Frame]:
        return [f for f in self.sent if f.arbitration_id == frame_id]

    def decoded(self, frame_id: int) -> list[tuple[float, dict[str, Value]]]:
        codec = CODEC.by_id(frame_id)
        assert codec is not None
        return [(f.timestamp, codec.decode(f.data)) for f in self.frames(frame_id)]

    def statuses(self) -> list[tuple[float, int]]:
        """(time, 109.5) of every 0x109 the charger sent."""
        return [(t, status_byte(v)) for t, v in self.decoded(0x109)]

    def status_walk(self) -> list[int]:
        return collapse(s for _, s in self.statuses())

    def stage_changes(self) -> list[tuple[float, str]]:
        return [(e.time, e.stage) for e in self.events if isinstance(e, StageChanged)]

    def stage_time(self, stage: Stage) -> float:
        """Time the charger (last) entered ``stage``."""
        times = [t for t, s in self.stage_changes() if s == stage.value]
        assert times, f"charger never entered {stage.value}"
        return times[-1]

    def ended(self) -> SessionEnded:
        ends = [e for e in self.events if isinstance(e, SessionEnded)]
        assert len(ends) == 1, f"expected one SessionEnded, got {ends}"
        return ends[0]

    def samples_between(self, t0: float, t1: float) -> list[Sample]:
        return [s for s in self.samples if t0 - EPS <= s.time <= t1 + EPS]

    # ---- scripted handshake ------------------------------------------------------------------
    def grant_permission(self) -> None:
        """The vehicle closes k and sets 102.5.0."""
        self.harness.set("k", True)
        self.vehicle.set(ChargingEnabled=1)

    def close_contactors(self, battery_voltage: float = 380.0) -> None:
        """The vehicle closes its contactors (battery on the DC link) and clears 102.5.3."""
        self.harness.battery_voltage = battery_voltage
        self.harness.contactors_closed = True
        self.vehicle.set(ContactorOpen=0)

    def open_contactors(self) -> None:
        """The vehicle's welding check is done: contactors open, 102.5.3 set."""
        self.harness.contactors_closed = False
        self.vehicle.set(ContactorOpen=1)


def negotiating(
    config: ChademoChargerConfig | None = None, vehicle: ScriptedVehicle | None = None, **kw: Any
) -> Bench:
    """Charger started at 0 s, vehicle awake from 0.2 s: in negotiation."""
    bench = Bench(config, vehicle, **kw)
    bench.start(0.0)
    bench.wake(0.2)
    bench.until_stage(Stage.NEGOTIATION, within=1.0)
    return bench


def at_contactors(
    config: ChademoChargerConfig | None = None, vehicle: ScriptedVehicle | None = None, **kw: Any
) -> Bench:
    """Permission granted, insulation test passed, d2 closed: waiting for the vehicle's contactors."""
    bench = negotiating(config, vehicle, **kw)
    bench.grant_permission()
    bench.until_stage(Stage.CONTACTORS, within=LIMITS["insulation"].seconds + 1.0)
    return bench


def at_precharge(
    config: ChademoChargerConfig | None = None,
    vehicle: ScriptedVehicle | None = None,
    battery_voltage: float = 380.0,
    **kw: Any,
) -> Bench:
    bench = at_contactors(config, vehicle, **kw)
    bench.close_contactors(battery_voltage)
    bench.until_stage(Stage.PRECHARGE, within=limit("contactors"))
    return bench


def charging(
    config: ChademoChargerConfig | None = None,
    vehicle: ScriptedVehicle | None = None,
    request: int = 100,
    battery_voltage: float = 380.0,
    settle: float = 0.0,
    **kw: Any,
) -> Bench:
    """A bench in CHARGING with ``request`` A asked, then ``settle`` seconds of charging."""
    bench = at_precharge(config, vehicle, battery_voltage, **kw)
    bench.vehicle.set(ChargeCurrentRequest=request)
    bench.until_stage(Stage.CHARGING, within=1.0)
    bench.step_to(bench.now + settle)
    return bench
