"""How the fault catalogue (charger_sim.faults) maps onto GB/T 27930-2015's lines, frames and flags.

§ numbers refer to the GB/T fact sheet (``shared/protocols/gbt27930.md``); the connector lines and the
adhesion check come from GB/T 18487.1 annex B, which the sheet does not cover (values UNCERTAIN, see
``timing.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..base import Pin
from . import timing as T

WORN_CC1_V = 5.0  # a corroded CC1 contact: between the 4 V (connected) and 6 V (switch S open) bands
WORN_CC2_V = 7.5  # a corroded CC2 contact: above the vehicle's 6 V band

#: Lines of the GB/T 20234.3 connector a worn or corroded contact can degrade.  ``value`` is what the
#: reading side then sees; 0 (and every other flip of a bouncing contact) is an open contact.
PINS: dict[str, Pin] = {
    "cc1": Pin(
        "cc1",
        WORN_CC1_V,
        f"detection point 1, read by the charger (GB/T 18487.1): {T.CC1_CONNECTED_V:g} V fully connected, "
        f"6 V switch S open, 12 V unplugged; default bad reading {WORN_CC1_V:g} V. Before the start: no "
        "start (step 1); later: stop with cc1_fault (from recognition on CST 10 04 F0 F0: fault stop + "
        "charging connector fault)",
    ),
    "cc2": Pin(
        "cc2",
        WORN_CC2_V,
        f"detection point 2, read by the vehicle: {T.CC2_CONNECTED_V:g} V connected; default bad reading "
        f"{WORN_CC2_V:g} V. From recognition on the BMS stops with BST 00 00 10 F0 (CC2 voltage fault, "
        "byte 3 bits 5-6): bms_cc2_fault",
    ),
    "k3k4": Pin(
        "k3k4",
        0.0,
        "A+/A- low-voltage auxiliary power (K3/K4, 12 V) to the BMS: reads off, the BMS browns out and "
        "falls silent; the charger sees its receive timeouts (CEM), then re-handshakes nobody answers",
    ),
}

#: firmware_mismatch versions by name; anything else is 'major.minor' (BRM bytes 1-3, §4.1).
ALIASES: dict[str, str] = {"2015": "1.1", "2011": "1.0"}


def apply_firmware(config: Any, version: str) -> Any:
    """The BMS configuration announcing protocol ``version`` in its BRM.

    ``1.1`` (or ``2015``) is GB/T 27930-2015; ``1.0`` (or ``2011``) is the 2011 edition, whose BMS also
    has no BHM (§2, §6 step 1: the charger goes on after 5 s).  Any other ``major.minor`` is announced
    as is: the charger refuses a major other than 1 at recognition (protocol_incompatible).
    """
    text = str(version).strip()
    text = ALIASES.get(text, text)
    try:
        changed = dataclasses.replace(config, protocol_version=text)
    except ValueError as err:
        raise ValueError(
            f"unknown GB/T protocol version {version!r}: expected 1.1 (2015), 1.0 (2011) or 'major.minor' "
            f"as BRM bytes 1-3 carry it ({err})"
        ) from None
    if changed.protocol_version_raw() >> 8 == 1 and changed.protocol_version_raw() & 0xFF == 0:
        changed = dataclasses.replace(changed, send_bhm=False)  # a 2011 BMS does not know CHM/BHM
    return changed


NOTES: dict[str, str] = {
    "drop_message": "BCL (1 s) / BCS (5 s) lost while charging: CEM BCL/BCS timeout, re-handshake from "
    "CRM 0x00 (<= 3); BRM/BCP/BRO before: CEM 3921-3923; BSM is not timed out by 27930-2015 (the "
    "charger keeps its last state); CCS lost: the BMS's BEM, the charger re-handshakes (bem_received)",
    "delay_message": "late by more than the receive timeout (BCL 1 s, BCS 5 s): the CEM timeout path; "
    "less: the charger follows the older demand (within BCP/CML limits)",
    "corrupt_signal": "BCL discharge/not-available current, not-available voltage or a mode other than "
    "01/02: the BCL is unusable (not received), bcl_timeout after 1 s; numbers above the limits are "
    "clamped to min(BCL, BCP maximum, CML maximum); BSM 01 (and 10 'too low' for cell voltage/SOC) "
    "stop with a CST fault, 10 'untrusted' / 11 keep the previous state; BHM all ones: tested as no BHM",
    "wrong_dlc": "shorter than the standard length: unusable (not received), the receive timeout "
    "applies (BCL 1 s...); longer: tolerated (extra bytes ignored); CCS of 7 bytes is accepted (§10)",
    "replay_message": "no alive counter or sequence number outside the transport: stale BCL/BSM are "
    "accepted (the demand stays clamped to BCP/CML); multi-packet messages (BCS...): replayed TP.CM "
    "frames break the transfer, so the message's own timeout applies (BCS: bcs_timeout)",
    "duplicate_message": "harmless: every frame is idempotent (BST/CST once or ten times alike)",
    "bus_off": "both sides lose CAN: CEM BCL timeout after 1 s (the BMS: BEM CCS), output < 5 A, K1/K2 "
    "open; after recovery the re-handshake from CRM 0x00 charges on; if it lasts, BRM timeouts end "
    "the session after 3 re-handshakes",
    "firmware_mismatch": "BRM bytes 1-3: 1.1 (2015) charges; 1.0 (2011, no BHM) charges after the 5 s "
    "BHM wait; another major version: protocol_incompatible at recognition (step 4, CST fault stop)",
    "worn_pins": "cc1 (charger: no start at step 1, else cc1_fault), cc2 (BMS: BST CC2 fault), k3k4 "
    "(BMS loses its auxiliary power: receive timeouts)",
    "insulation_drop": "before charging: the insulation test fails below 100 ohm/V (insulation_fault, "
    "step 2, no CST); while charging: the BMS's BST insulation fault (bms_insulation_fault)",
    "contactor_welded": "the DC path stays closed: before the insulation test the output is live with "
    "K1/K2 open (contactor_welded, step 2); after charging the adhesion check finds the output still "
    "at the battery voltage: contactor_welded, connector kept locked, the session ends",
    "temperature_runaway": "BST battery over-temperature (byte 3 bits 1-2): bms_battery_over_temperature",
    "cell_over_voltage": "the BMS's protection: BST cell voltage reached (byte 1 bits 5-6): bms_cell_voltage",
    "cell_imbalance": "the leading cell limits the demand: CV mode BST at the BCP maximum cell voltage, CC "
    "mode BST once the demand tapers below the pack's end current: bms_cell_voltage, early",
    "power_stage_fault": "CST fault stop + other fault (10 00 F4 F0): charger_malfunction",
    "operator_stop": "CST manual stop (04 00 F0 F0), BST in reply, BSD/CSD: operator_stop",
}
