"""The electrical side of a CCS connection: control pilot (IEC 61851-1) and proximity pilot.

Control pilot (§2 of the CCS fact sheet): the EVSE drives +-12 V through R1 = 1 kOhm, as a constant
level or a 1 kHz PWM.  The EV loads CP-PE through a diode and R2 = 2.74 kOhm, plus R3 switched in by
S2 for state C (1.3 kOhm) or D (270 Ohm).  The high level is what the receiver classifies:

    high = Vd + (12 - Vd) * R / (R1 + R)       (EV diode present, Vd = 0.7 V)
         = 12 * R / (R1 + R)                   (diode missing or shorted)

which gives the nominal 9 / 6 / 3 V of states B / C / D.  The low half of the PWM reads -12 V when the
diode blocks; with no diode it reads about minus the high level, which is the diode check.  State E
is CP shorted to PE (0 V), state F the EVSE driving a constant -12 V (unavailable).

Proximity pilot (§3): a resistor PP-PE in the plug codes the cable (Type 2) or the latch (Type 1).

Harness lines (:class:`~charger_sim.plant.harness.Harness`):

=================  ======  ===========================================================================
line               writer  meaning
=================  ======  ===========================================================================
``cp_mode``        EVSE    0 unpowered (0 V), 1 +12 V / PWM, 2 constant -12 V (state F)
``cp_duty``        EVSE    PWM duty in %, 100 = no PWM (constant +12 V: states A, B1, C1)
``cp_ev_ohm``      EV      EV load R2 or R2 || R3; ``inf`` = no EV load (not connected)
``cp_ev_diode``    EV      1 = EV diode present, 0 = missing / shorted
``cp_short``       fault   1 = CP shorted to PE (state E)
``pp_contact_ohm`` EV      extra series resistance of the inlet's PP contact (worn/corroded pin)
``cp_state``       EVSE    the measured state (:class:`CpState` value), written by the charger
``cp_voltage``     EVSE    the measured high level in V
``pp_ohm``         EVSE    the measured PP-PE resistance in Ohm (``inf`` = open)
``cp_pin``         fault   worn CP contact: the high level the EVSE reads (V); 0 = contact open
``pp_pin``         fault   worn PP contact: the PP-PE resistance the inlet reads (Ohm); 0 = open
=================  ======  ===========================================================================

The two ``*_pin`` lines are never driven: only a ``worn_pins`` fault sets them (as harness overrides).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from ...plant.harness import Harness

# ---- control pilot ---------------------------------------------------------------------------------
SOURCE_V = 12.0  # §2: +-12 V source
R1_OHM = 1000.0  # §2: EVSE series resistor
R2_OHM = 2740.0  # §2: EV, always present
R3_C_OHM = 1300.0  # §2: EV, switched in for state C
R3_D_OHM = 270.0  # §2: EV, switched in for state D
DIODE_DROP_V = 0.7  # EV diode forward drop (makes the nominal 9/6/3 V)
WINDOW_V = 1.0  # §2: receiver windows +-1 V around nominal (one simulator: +-1.1 V)
DIODE_OK_BELOW_V = -11.0  # §2: the low half must read about -12 V (the state F window)

NO_PWM = 100.0  # duty that means a constant level (no PWM: B1 / C1)
DIGITAL_DUTY = 5.0  # §2: 5 % = digital communication required (DC charging)
DIGITAL_BAND = (3.0, 7.0)  # §2: accepted as 5 %

# worn contacts (fault catalogue ``worn_pins``): the lines, and what a worn contact reads by default
CP_PIN_LINE = "cp_pin"
PP_PIN_LINE = "pp_pin"
WORN_CP_V = 7.5  # §2: between the B (8-10 V) and C (5-7 V) windows: Invalid
WORN_PP_OHM = 3000.0  # §3: above 2460 ohm (CCS2) and 960 ohm (CCS1), below open: Invalid


class CpState(enum.IntEnum):
    A = 0  # not connected, +12 V
    B = 1  # connected, not ready, +9 V
    C = 2  # ready / charging, +6 V
    D = 3  # ready, ventilation needed, +3 V
    E = 4  # CP shorted to PE / EVSE without power, 0 V
    F = 5  # EVSE fault / unavailable, -12 V
    INVALID = 14  # a level between the windows


NOMINAL_V: dict[CpState, float] = {
    CpState.A: 12.0,
    CpState.B: 9.0,
    CpState.C: 6.0,
    CpState.D: 3.0,
    CpState.E: 0.0,
    CpState.F: -12.0,
}


def parallel(a: float, b: float) -> float:
    return a * b / (a + b)


EV_LOAD_OHM: dict[CpState, float] = {
    CpState.A: math.inf,
    CpState.B: R2_OHM,  # 2.74 kOhm
    CpState.C: parallel(R2_OHM, R3_C_OHM),  # 882 Ohm
    CpState.D: parallel(R2_OHM, R3_D_OHM),  # 246 Ohm
}


def ev_load_ohm(s2_closed: bool, *, ventilation: bool = False) -> float:
    """The EV's CP load with switch S2 open (state B) or closed (state C, or D with ventilation)."""
    if not s2_closed:
        return EV_LOAD_OHM[CpState.B]
    return EV_LOAD_OHM[CpState.D if ventilation else CpState.C]


class CpMode(enum.IntEnum):
    UNPOWERED = 0  # EVSE without power: 0 V (reads as E)
    NORMAL = 1  # +12 V, constant or PWM
    FAULT = 2  # constant -12 V: state F


def cp_levels(
    mode: CpMode, ev_ohm: float, diode: bool, *, short: bool = False, connected: bool = True
) -> tuple[float, float]:
    """(high, low) CP levels in volts for the EVSE source ``mode`` and the EV load."""
    if short:
        return 0.0, 0.0
    if mode is CpMode.UNPOWERED:
        return 0.0, 0.0
    if mode is CpMode.FAULT:
        return -SOURCE_V, -SOURCE_V
    if not connected or math.isinf(ev_ohm):
        return SOURCE_V, -SOURCE_V
    share = ev_ohm / (R1_OHM + ev_ohm)
    if diode:
        return DIODE_DROP_V + (SOURCE_V - DIODE_DROP_V) * share, -SOURCE_V
    return SOURCE_V * share, -SOURCE_V * share


def classify(high_v: float) -> CpState:
    """The state whose receiver window holds ``high_v`` (§2), else INVALID."""
    for state, nominal in NOMINAL_V.items():
        if abs(high_v - nominal) <= WINDOW_V + 1e-9:
            return state
    return CpState.INVALID


def diode_ok(low_v: float) -> bool:
    """§2 diode check on the low half of the PWM."""
    return low_v <= DIODE_OK_BELOW_V


def duty_meaning(duty: float) -> str:
    """§2: what a duty cycle tells the EV."""
    if duty >= NO_PWM:
        return "no PWM: no current offered, no communication"
    if DIGITAL_BAND[0] <= duty <= DIGITAL_BAND[1]:
        return "digital communication required"
    if 8.0 <= duty <= 97.0:
        return f"AC current limit {ac_current_limit(duty):g} A"
    return "not allowed (0 A)"


def ac_current_limit(duty: float) -> float:
    """§2: the AC current a duty cycle offers (A); 0 outside 8-97 %."""
    if 8.0 <= duty < 10.0:
        return 6.0  # 8-10 %: the 10 % value (6 A)
    if 10.0 <= duty <= 85.0:
        return round(0.6 * duty, 3)
    if 85.0 < duty <= 96.0:
        return round((duty - 64.0) * 2.5, 3)
    if 96.0 < duty <= 97.0:
        return 80.0
    return 0.0


@dataclass(frozen=True, slots=True)
class PilotReading:
    high_v: float
    low_v: float
    duty: float  # %, 100 = no PWM
    state: CpState
    diode_ok: bool | None  # None while no PWM runs (no low half to look at)

    @property
    def pwm(self) -> bool:
        return self.duty < NO_PWM

    @property
    def label(self) -> str:
        """State with its PWM suffix: B1 / B2, C1 / C2."""
        name = self.state.name
        if self.state in (CpState.B, CpState.C, CpState.D):
            name += "2" if self.pwm else "1"
        return name


def read_pilot(harness: Harness, *, ev_side: bool = False) -> PilotReading:
    """The CP as a receiver on the wire sees it now: the EVSE's (default) or the EV's (``ev_side``).

    Both read the same wire, except through a worn CP contact (line ``cp_pin``): open, the EVSE sees
    no EV load (+12 V, state A) and the EV sees no pilot at all (0 V, no PWM); a corroded contact
    makes both read the level it forces.
    """
    mode = CpMode(int(harness.line("cp_mode", CpMode.UNPOWERED)))
    duty = harness.line("cp_duty", NO_PWM)
    ev_ohm = harness.line("cp_ev_ohm", math.inf)
    diode = harness.line("cp_ev_diode", 1.0) != 0.0
    short = harness.is_on("cp_short")
    pin = harness.line(CP_PIN_LINE, math.nan)
    if pin == 0.0 and ev_side:
        return PilotReading(0.0, 0.0, NO_PWM, classify(0.0), None)
    if pin == 0.0:
        ev_ohm = math.inf
    high, low = cp_levels(mode, ev_ohm, diode, short=short, connected=harness.connected)
    if not math.isnan(pin) and pin != 0.0 and not short and mode is CpMode.NORMAL:
        high = pin  # a corroded contact: the level it forces (the diode check still sees the low half)
    state = classify(high)
    pwm = duty < NO_PWM and mode is CpMode.NORMAL
    return PilotReading(high, low if pwm else high, duty, state, diode_ok(low) if pwm else None)


# ---- proximity pilot -------------------------------------------------------------------------------
OPEN_OHM = 4094.0  # at or above: open circuit (PpResistance saturates here)


class Connector(str, enum.Enum):
    CCS2 = "ccs2"  # Type 2 based (Europe)
    CCS1 = "ccs1"  # Type 1 / J1772 based (North America)


class PpCode(enum.IntEnum):
    NOT_CONNECTED = 0
    TYPE2_13A = 1
    TYPE2_20A = 2
    TYPE2_32A = 3
    TYPE2_63A = 4
    TYPE1_LATCHED = 5
    TYPE1_BUTTON_PRESSED = 6
    INVALID = 14


PP_NOMINAL_OHM: dict[PpCode, float] = {
    PpCode.TYPE2_13A: 1500.0,  # DC plugs commonly read as 1.5 kOhm (§3: uncertain for all DC cables)
    PpCode.TYPE2_20A: 680.0,
    PpCode.TYPE2_32A: 220.0,
    PpCode.TYPE2_63A: 100.0,
    PpCode.TYPE1_LATCHED: 150.0,
    PpCode.TYPE1_BUTTON_PRESSED: 480.0,  # 150 + 330 Ohm
}

CABLE_RATING_A: dict[PpCode, float] = {
    PpCode.TYPE2_13A: 13.0,
    PpCode.TYPE2_20A: 20.0,
    PpCode.TYPE2_32A: 32.0,
    PpCode.TYPE2_63A: 63.0,
}

# (low, high, code): low <= R < high.  Type 2 windows from one open simulator (§3); the Type 1
# windows are charger-sim's choice (geometric midpoints around 150 / 480 Ohm, no source gives them).
PP_WINDOWS: dict[Connector, tuple[tuple[float, float, PpCode], ...]] = {
    Connector.CCS2: (
        (80.0, 140.0, PpCode.TYPE2_63A),
        (140.0, 308.0, PpCode.TYPE2_32A),
        (308.0, 936.0, PpCode.TYPE2_20A),
        (936.0, 2460.0, PpCode.TYPE2_13A),
    ),
    Connector.CCS1: (
        (75.0, 268.0, PpCode.TYPE1_LATCHED),
        (268.0, 960.0, PpCode.TYPE1_BUTTON_PRESSED),
    ),
}

DEFAULT_PP_OHM: dict[Connector, float] = {
    Connector.CCS2: PP_NOMINAL_OHM[PpCode.TYPE2_13A],
    Connector.CCS1: PP_NOMINAL_OHM[PpCode.TYPE1_LATCHED],
}


def pp_decode(ohm: float, connector: Connector) -> PpCode:
    """§3: the code of a PP-PE resistance for ``connector``."""
    if ohm >= OPEN_OHM:
        return PpCode.NOT_CONNECTED
    for low, high, code in PP_WINDOWS[connector]:
        if low <= ohm < high:
            return code
    return PpCode.INVALID


def pp_ok(code: PpCode) -> bool:
    """A plug that may carry DC current: a Type 2 cable code or a latched Type 1 plug."""
    return code in CABLE_RATING_A or code is PpCode.TYPE1_LATCHED


def measure_pp(harness: Harness, plug_ohm: float) -> float:
    """PP-PE as the inlet sees it: the plug's resistor plus the contact resistance, open if unplugged
    or through an open PP contact; a worn contact (line ``pp_pin``) reads what it forces."""
    pin = harness.line(PP_PIN_LINE, math.nan)
    if not harness.connected or pin == 0.0:
        return math.inf
    if not math.isnan(pin):
        return pin
    return plug_ohm + harness.line("pp_contact_ohm", 0.0)
