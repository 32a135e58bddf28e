"""CCS bridge timing: ONE table, keyed by standard revision, that the cores and the tests use.

Sources: the project's CCS fact sheet (``shared/protocols/ccs-over-can.md``); § numbers refer to it.
Where the sheet records conflicting DIN values, the row keeps them in ``conflict`` and the value
used is stated per revision:

* ``din70121_2012`` (the default): DIN SPEC 70121:2012-12 as the schema-based stacks implement it.
* ``din_ts70121_2024``: DIN TS 70121:2024 as one conformance-oriented implementation cites it
  (CurrentDemand answered within 0.5 s instead of 0.25 s).

The charger is the SECC side: where the EVCC and the SECC have different budgets for the same phase,
the charger uses the SECC (shorter) value so it always acts before the vehicle gives up, and the
simulated vehicle uses the EVCC value (``vehicle_*`` rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..base import Limit

REVISIONS: dict[str, str] = {
    "din70121_2012": "DIN SPEC 70121:2012-12",
    "din_ts70121_2024": "DIN TS 70121:2024",
}
DEFAULT_REVISION = "din70121_2012"


@dataclass(frozen=True, slots=True)
class Timer:
    """One row: a value per revision, its source, and the disputed values if sources disagree."""

    name: str
    values: Mapping[str, float]
    source: str
    note: str = ""
    conflict: str = ""

    def seconds(self, revision: str = DEFAULT_REVISION) -> float:
        return self.values[revision]


def _row(
    name: str, seconds: float, source: str, note: str = "", *, conflict: str = "", **per_revision: float
) -> Timer:
    values = dict.fromkeys(REVISIONS, seconds)
    for revision, value in per_revision.items():
        if revision not in REVISIONS:
            raise ValueError(f"unknown revision {revision!r}")
        values[revision] = value
    return Timer(name, values, source, note, conflict)


TIMERS: tuple[Timer, ...] = (
    _row("cycle", 0.100, "§9", "every bridge frame, both directions, every 100 ms"),
    _row("rx_timeout", 1.0, "§9", "each vehicle frame; missing 1 s -> emergency stop (can_timeout)"),
    _row(
        "alive_timeout",
        1.0,
        "§9",
        "EvAliveCounter unchanged (or SNA) for 1 s = 10 frames: controller hung -> emergency stop",
    ),
    _row(
        "cp_detection",
        1.5,
        "§2, §6",
        "SECC CP-state detection (DIN): B at plug-in; C after CableCheckReq",
    ),
    _row(
        "communication_setup",
        18.0,
        "§6",
        "5 % PWM on -> SessionSetup (SLAC, SDP, TCP, supportedAppProtocol); the EVCC allows 20 s",
    ),
    _row(
        "sequence",
        60.0,
        "§6",
        "V2G_SECC_Sequence_Timeout: no next request this long after an answer; also the longest pause",
    ),
    _row(
        "ongoing",
        55.0,
        "§6",
        "EVSEProcessing = Ongoing (authorisation): the SECC finishes within 55 s of the EVCC's 60 s",
        conflict="60 s Ongoing loop for DIN (one source) is the EVCC's budget; ISO: SECC answers within 55 s",
    ),
    _row(
        "cable_check",
        38.0,
        "§6, §7",
        "CableCheckReq -> isolation result; the SECC finishes within 38 s (EVCC budget 40 s)",
        conflict="DIN sources give 40 s and 38 s; ISO 15118-20 splits them as EVCC 40 s / SECC 38 s",
    ),
    _row(
        "isolation_measure",
        1.0,
        "§7",
        "hold at the cable-check voltage while the IMD measures (charger-sim choice)",
    ),
    _row("precharge", 7.0, "§6", "first PreChargeReq -> PowerDelivery(ReadyToCharge = true)"),
    _row(
        "ready_to_charge",
        150.0,
        "§6",
        "plug-in -> PowerDelivery(ReadyToCharge = true)",
        conflict="150 s from plug-in vs 10 s from ChargeParameterDiscovery done (a third source: 250 s)",
    ),
    _row(
        "current_demand_response",
        0.25,
        "§6",
        "CurrentDemandRes budget: the charger answers every request in its next frame; "
        "the vehicle stops when EvsePresentValues is older than this",
        conflict="0.25 s (DIN 70121:2012, ISO 15118-2) vs 0.5 s (DIN TS 70121:2024, ISO 15118-20)",
        din_ts70121_2024=0.5,
    ),
    _row("message_response", 2.0, "§6", "EVCC timeout for most request/response pairs (PowerDelivery too)"),
    _row(
        "stop_current",
        0.3,
        "§2, §8",
        "output current <= 1 A after PowerDelivery(stop) or CP C -> B (the EV waits 300-450 ms)",
    ),
    _row(
        "unlock_wait",
        5.0,
        "§7",
        "output below 60 V to unlock; longer is noted as output_not_discharged (charger-sim choice)",
    ),
    # The simulated vehicle's own timers (EVCC side)
    _row("vehicle_rx_timeout", 1.0, "§9", "the vehicle stops when EvseStatus is missing 1 s"),
    _row("vehicle_cable_check", 40.0, "§6", "EVCC cable-check budget (the charger's is 38 s)"),
    _row("vehicle_precharge", 10.0, "§6", "EVCC pre-charge budget (ISO 15118-20 EVCC 10 s > SECC 7 s)"),
    _row(
        "vehicle_cp_b_delay", 0.35, "§2", "after PowerDeliveryRes(stop) the EV waits 300-450 ms, then C -> B"
    ),
    _row(
        "vehicle_precharge_stable", 0.5, "§7", "inlet within 20 V of the battery for 500 ms, then contactors"
    ),
    _row("vehicle_welding", 2.0, "§6", "open EV stacks: WeldingDetection 2 s per state, then SessionStop"),
)

TABLE: dict[str, Timer] = {row.name: row for row in TIMERS}


def limits(revision: str = DEFAULT_REVISION) -> dict[str, Limit]:
    """The table for one revision as :class:`Limit` rows (what the registry and the README show)."""
    if revision not in REVISIONS:
        raise ValueError(f"unknown revision {revision!r}; expected one of: {', '.join(REVISIONS)}")
    out: dict[str, Limit] = {}
    for row in TIMERS:
        note = row.note + (f" [conflict: {row.conflict}]" if row.conflict else "")
        out[row.name] = Limit(row.name, row.seconds(revision), row.source, note)
    return out


LIMITS: dict[str, Limit] = limits()


def limit(name: str, revision: str = DEFAULT_REVISION) -> float:
    return TABLE[name].seconds(revision)


def seconds(revision: str = DEFAULT_REVISION) -> dict[str, float]:
    """name -> seconds for one revision (what a core holds)."""
    return {name: row.seconds for name, row in limits(revision).items()}


# Electrical thresholds (same sources).
PRECHARGE_MATCH_V = 20.0  # §7: the EV closes its contactors when |inlet - battery| < 20 V
PRECHARGE_READY_V = 10.0  # §7: one module asks for pre-charge within 10 V (the charger's "Finished")
PRECHARGE_CURRENT_A = 2.0  # §7: pre-charge current limit, typically <= 2 A
CABLE_CHECK_CURRENT_A = 2.0  # §7: cable-check current limit
CABLE_CHECK_LOW_V = 500.0  # §7: EV max <= 500 V -> min(EV max + 50 V, 500 V, charger max)
CABLE_CHECK_MARGIN_V = 50.0
CABLE_CHECK_FACTOR = 1.1  # §7: EV max > 500 V -> min(1.1 x EV max, charger max)
SAFE_V = 60.0  # §7: cable-check end, welding detection and unlock below 60 V
CURRENT_OFF_A = 1.0  # §7: the EV opens its contactors once the current is < 1 A
INSULATION_FAULT_OHM_PER_V = 100.0  # §7: older criterion >= 100 ohm/V (50 kOhm at 500 V)
INSULATION_WARNING_OHM_PER_V = 500.0  # §7: warning band 100-500 ohm/V (uncertain)
CURRENT_SLEW_A_PER_S = 20.0  # §7: current ramp 20 A/s


def cable_check_voltage(ev_max_voltage: float, charger_max_voltage: float) -> float:
    """§7: the isolation test voltage (IEC 61851-23:2023 formula as implemented in an open EVSE)."""
    if ev_max_voltage <= CABLE_CHECK_LOW_V:
        return min(ev_max_voltage + CABLE_CHECK_MARGIN_V, CABLE_CHECK_LOW_V, charger_max_voltage)
    return min(CABLE_CHECK_FACTOR * ev_max_voltage, charger_max_voltage)
