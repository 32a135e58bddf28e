"""The charger's hardware in a CCS session, as the SECC drives and reads it: power stage, pilot
generator and reader, proximity reading, output relays, connector lock, insulation monitor.

Protocol decisions live in :mod:`.charger`; this module only moves and measures.  § numbers refer to
the CCS fact sheet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...plant.harness import Harness
from ...plant.power import PowerStage, PowerStageSpec
from . import timing as T
from .bridge import IsolationStatus
from .electrical import (
    DEFAULT_PP_OHM,
    NO_PWM,
    Connector,
    CpMode,
    PilotReading,
    PpCode,
    measure_pp,
    pp_decode,
    read_pilot,
)


@dataclass(frozen=True, slots=True)
class CcsChargerConfig:
    revision: str = T.DEFAULT_REVISION  # timing table column (timing.REVISIONS)
    connector: str = "ccs2"  # ccs2 (Type 2 PP codes) | ccs1 (Type 1)
    pp_resistor_ohm: float | None = None  # the plug's PP resistor; default 1.5 kOhm (ccs2) / 150 Ohm (ccs1)
    max_voltage: float = 500.0
    max_current: float = 125.0
    max_power: float = 50_000.0  # W
    min_voltage: float = 150.0
    min_current: float = 0.0
    current_regulation_tolerance: float | None = 5.0  # A, optional (None = SNA)
    peak_current_ripple: float = 2.0  # A
    energy_to_deliver_kwh: float | None = None  # optional (None = SNA)
    authorize: bool = True  # False: ContractAuthentication stays Ongoing (no RFID presented)
    authorization_delay: float = 1.0  # s from ContractAuthenticationReq to Finished
    cable_check_voltage: float | None = None  # default: the §7 formula
    insulation_threshold_ohm_per_v: float = T.INSULATION_FAULT_OHM_PER_V
    insulation_warning_ohm_per_v: float = T.INSULATION_WARNING_OHM_PER_V
    lock_time: float = 0.5  # s for the connector lock actuator
    current_slew_a_per_s: float = T.CURRENT_SLEW_A_PER_S
    notification_max_delay: int = 2  # s, DC_EVSEStatus.NotificationMaxDelay

    def __post_init__(self) -> None:
        if self.revision not in T.REVISIONS:
            raise ValueError(f"revision must be one of: {', '.join(T.REVISIONS)}")
        if self.connector not in {c.value for c in Connector}:
            raise ValueError("connector must be ccs2 or ccs1")
        if not 0 < self.max_voltage <= 1500:
            raise ValueError("max_voltage must be in (0, 1500] V")
        if not 0 < self.max_current <= 1000:
            raise ValueError("max_current must be in (0, 1000] A")
        if not 0 < self.max_power <= 1_000_000:
            raise ValueError("max_power must be in (0, 1000000] W")
        if not 0 <= self.min_voltage < self.max_voltage:
            raise ValueError("min_voltage must be in [0, max_voltage) V")
        if not 0 <= self.min_current < self.max_current:
            raise ValueError("min_current must be in [0, max_current) A")
        if self.authorization_delay < 0 or self.lock_time < 0:
            raise ValueError("authorization_delay and lock_time must not be negative")
        if not 0 < self.insulation_threshold_ohm_per_v <= self.insulation_warning_ohm_per_v:
            raise ValueError("need 0 < insulation_threshold_ohm_per_v <= insulation_warning_ohm_per_v")
        if not 0 <= self.notification_max_delay <= 254:
            raise ValueError("notification_max_delay must be 0..254 s")
        if self.pp_resistor_ohm is not None and self.pp_resistor_ohm < 0:
            raise ValueError("pp_resistor_ohm must not be negative")

    @property
    def plug_ohm(self) -> float:
        if self.pp_resistor_ohm is not None:
            return self.pp_resistor_ohm
        return DEFAULT_PP_OHM[Connector(self.connector)]

    def power_spec(self) -> PowerStageSpec:
        return PowerStageSpec(
            max_voltage=self.max_voltage,
            max_current=self.max_current,
            max_power=self.max_power,
            min_voltage=self.min_voltage,
            current_slew_a_per_s=self.current_slew_a_per_s,
            # current <= 1 A within the stop limit (§2, §8) from any setpoint, with a 20 % margin
            stop_slew_a_per_s=max(600.0, self.max_current / (0.8 * T.limit("stop_current", self.revision))),
        )


class Evse:
    """Power stage, pilot, plug, relays, lock and IMD of one charger, on the shared harness."""

    def __init__(self, config: CcsChargerConfig, harness: Harness) -> None:
        self.config = config
        self.harness = harness
        self.connector = Connector(config.connector)
        self.power = PowerStage(config.power_spec())
        self.duty = NO_PWM
        self.relays = False
        self.locked = False
        harness.set("cp_mode", CpMode.NORMAL)  # powered: +12 V on CP (state A until an EV loads it)
        harness.set("cp_duty", NO_PWM)
        self.pilot: PilotReading = read_pilot(harness)
        self.pp_ohm = math.inf
        self.pp_code = PpCode.NOT_CONNECTED

    # ---- measuring -----------------------------------------------------------------------------
    def measure(self) -> None:
        """Read CP (state, levels, diode) and PP; publish the readings as harness lines."""
        h = self.harness
        self.pilot = read_pilot(h)
        self.pp_ohm = measure_pp(h, self.config.plug_ohm)
        self.pp_code = pp_decode(self.pp_ohm, self.connector)
        h.set("cp_state", int(self.pilot.state))
        h.set("cp_voltage", self.pilot.high_v)
        h.set("pp_ohm", self.pp_ohm)

    def inlet_voltage(self) -> float:
        """The cable / inlet voltage: the battery's once the vehicle's contactors are closed (or welded
        shut: then the inlet stays live whatever the relays and the vehicle's command do)."""
        battery = self.harness.dc_link_voltage
        return self.power.voltage if battery is None else battery

    def dc_link(self) -> float | None:
        """The battery voltage the power stage sees: only through closed output relays."""
        return self.harness.dc_link_voltage if self.relays else None

    def isolation_level(self, volts: float) -> IsolationStatus:
        """§7: the IMD's verdict on the harness insulation at ``volts`` (ohm/V criterion)."""
        ohm = self.harness.insulation_resistance_ohm
        if ohm < self.config.insulation_threshold_ohm_per_v * volts:
            return IsolationStatus.FAULT
        if ohm < self.config.insulation_warning_ohm_per_v * volts:
            return IsolationStatus.WARNING
        return IsolationStatus.VALID

    def pp_text(self) -> str:
        ohm = "open" if math.isinf(self.pp_ohm) else f"{self.pp_ohm:.0f} ohm"
        return f"{ohm} ({self.pp_code.name})"

    # ---- driving -------------------------------------------------------------------------------
    def advance(self, now: float) -> None:
        """Move the power stage to ``now`` (a new setpoint applies from then on)."""
        self.power.advance(now, self.dc_link())

    def publish(self) -> None:
        """Output current and cable voltage onto the DC link."""
        self.harness.output_current = self.power.current if self.dc_link() is not None else 0.0
        self.harness.output_voltage = self.inlet_voltage()

    def set_duty(self, duty: float) -> None:
        self.duty = duty
        self.harness.set("cp_duty", duty)
        self.measure()  # what the pilot reads from now on

    def set_relays(self, closed: bool) -> None:
        self.relays = closed
        self.harness.set("relays", closed)

    def set_lock(self, locked: bool) -> None:
        self.locked = locked
        self.harness.set("lock", locked)


def ohm_text(r: float | None) -> str:
    if r is None:
        return "?"
    if math.isinf(r):
        return "open circuit"
    return f"{r / 1e6:.2f} MOhm" if r >= 1e6 else f"{r / 1e3:.1f} kOhm"
