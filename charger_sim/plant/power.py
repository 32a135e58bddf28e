"""Charger power stage model: voltage source for insulation test / pre-charge, current source when
the battery is on the DC link, exponential bleed when off.  Advanced analytically to any ``now``."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Mode(str, enum.Enum):
    OFF = "off"  # output disabled; output capacitance bleeds through the discharge resistor
    VOLTAGE = "voltage"  # regulate a voltage (insulation test, pre-charge), no load current
    CURRENT = "current"  # regulate a current into the battery (charging)


@dataclass(frozen=True, slots=True)
class PowerStageSpec:
    max_voltage: float = 500.0
    max_current: float = 125.0
    max_power: float = 62_500.0
    min_voltage: float = 50.0
    voltage_ramp_v_per_s: float = 200.0  # insulation test / pre-charge ramp
    current_slew_a_per_s: float = 20.0  # CHAdeMO T12 +-20 A/s
    stop_slew_a_per_s: float = 600.0  # ramp-down on a stop: 255 A -> 0 in < 0.45 s
    bleed_tau_s: float = 0.25  # discharge resistor time constant: 500 V -> < 20 V in 0.8 s

    def __post_init__(self) -> None:
        for name in (
            "max_voltage",
            "max_current",
            "max_power",
            "voltage_ramp_v_per_s",
            "current_slew_a_per_s",
            "stop_slew_a_per_s",
            "bleed_tau_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


class PowerStage:
    """State: mode, output voltage and current; ``advance(now, dc_link)`` moves it to ``now``."""

    def __init__(self, spec: PowerStageSpec) -> None:
        self.spec = spec
        self.mode = Mode.OFF
        self.voltage = 0.0
        self.current = 0.0
        self.voltage_target = 0.0
        self.current_target = 0.0
        self.slew = spec.current_slew_a_per_s
        self.energy_wh = 0.0
        self.peak_current = 0.0
        self.faulted = False  # an injected power-stage fault: output forced off
        self._t = 0.0

    def set_off(self) -> None:
        self.mode = Mode.OFF
        self.current_target = 0.0

    def set_voltage(self, target: float) -> None:
        self.mode = Mode.VOLTAGE
        self.voltage_target = min(max(target, 0.0), self.spec.max_voltage)
        self.current_target = 0.0

    def set_current(self, target: float, *, stopping: bool = False) -> None:
        self.mode = Mode.CURRENT
        spec = self.spec
        limit = spec.max_current
        if self.voltage > 1.0:
            by_power = spec.max_power / self.voltage
            if by_power < limit:  # min(limit, by_power)
                limit = by_power
        if target < 0.0:  # max(target, 0.0)
            target = 0.0
        self.current_target = limit if limit < target else target  # min(target, limit)
        self.slew = spec.stop_slew_a_per_s if stopping else spec.current_slew_a_per_s

    def reset_clock(self, now: float) -> None:
        self._t = now

    def advance(self, now: float, dc_link: float | None) -> None:
        """Move to ``now``.  ``dc_link`` is the battery voltage if the battery is connected."""
        dt = now - self._t
        if dt <= 0:
            return
        self._t = now
        v0, i0 = self.voltage, self.current
        if self.faulted:
            self.mode = Mode.OFF
        if dc_link is not None:
            # The battery holds the DC link; a current source pushes current into it.
            if self.mode is Mode.CURRENT:  # min(i + step, max(i - step, target)), without the calls
                step = self.slew * dt
                target = self.current_target
                low = i0 - step
                if target > low:
                    low = target
                high = i0 + step
                self.current = low if low < high else high
            else:
                self.current = max(0.0, self.current - self.spec.stop_slew_a_per_s * dt)
            self.voltage = dc_link
        else:
            self.current = 0.0
            if self.mode is Mode.VOLTAGE:
                step = self.spec.voltage_ramp_v_per_s * dt
                if self.voltage < self.voltage_target:
                    self.voltage = min(self.voltage_target, self.voltage + step)
                else:
                    self.voltage = max(
                        self.voltage_target, self.voltage * math.exp(-dt / self.spec.bleed_tau_s)
                    )
            else:
                self.voltage *= math.exp(-dt / self.spec.bleed_tau_s)
                if self.voltage < 0.05:
                    self.voltage = 0.0
        self.energy_wh += 0.5 * (v0 * i0 + self.voltage * self.current) * dt / 3600.0
        if self.current > self.peak_current:
            self.peak_current = self.current

    def time_to_voltage_below(self, volts: float) -> float:
        """Seconds of bleeding (mode OFF, no battery) until the output is below ``volts``."""
        if self.voltage <= volts:
            return 0.0
        return self.spec.bleed_tau_s * math.log(self.voltage / max(volts, 1e-3))
