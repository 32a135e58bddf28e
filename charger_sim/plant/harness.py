"""The cable and connector between charger and vehicle: control lines and the DC link."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class Harness:
    """What one side drives and the other side measures, outside the CAN bus.

    ``lines`` holds the protocol's control lines by name (CHAdeMO: ``d1``, ``d2``, ``k``,
    ``proximity``; GB/T: ``cc1``, ``k3k4`` (auxiliary power), ``k1k2`` (charger DC relays); CCS:
    ``cp_state``, ``cp_duty``, ``pp_ohm``).  The DC link values are physical: the charger writes its
    output current/voltage, the vehicle writes its contactor state and battery terminal voltage, and
    the insulation resistance is the cable + vehicle model that an insulation test measures.
    """

    lines: dict[str, float] = field(default_factory=dict)
    output_current: float = 0.0  # A into the vehicle, from the charger power stage
    output_voltage: float = 0.0  # V at the charger output terminals
    contactors_closed: bool = False  # vehicle main contactors (battery on the DC link)
    battery_voltage: float = 0.0  # V at the battery terminals (vehicle side of the contactors)
    insulation_resistance_ohm: float = math.inf  # DC+/DC- to PE, cable and vehicle together
    connected: bool = True  # plug in the inlet
    # faults: what a worn contact makes the other side read instead of the driven value, and
    # main contactors welded shut (the battery stays on the DC link when they open)
    overrides: dict[str, float] = field(default_factory=dict)
    welded: bool = False

    def line(self, name: str, default: float = 0.0) -> float:
        if self.overrides and name in self.overrides:
            return self.overrides[name]
        return self.lines.get(name, default)

    def is_on(self, name: str) -> bool:
        return self.line(name) != 0.0

    def set(self, name: str, value: float | bool) -> None:
        self.lines[name] = float(value)

    @property
    def dc_link_voltage(self) -> float | None:
        """The battery voltage when the battery is on the DC link, else None."""
        closed = self.contactors_closed or self.welded
        return self.battery_voltage if closed and self.connected else None
