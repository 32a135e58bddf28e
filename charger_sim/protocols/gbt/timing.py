"""GB/T 27930-2015 timing limits and electrical thresholds: the one table the cores and the tests use.

Sources: the project's GB/T fact sheet (``shared/protocols/gbt27930.md``), which transcribes the
standard's tables, an open charger SDK and real captures; section numbers (§) refer to it.  Rows
whose value the sheet does not give say "assumed" in their note.  The J1939-21 transport timers
(T1-T4, Th) live in :class:`.transport.TpTiming`.
"""

from __future__ import annotations

from ..base import Limit

_ROWS = (
    # --- charger transmit periods (§3) ---
    Limit("chm_period", 0.250, "§3", "CHM charger handshake"),
    Limit("crm_period", 0.250, "§3", "CRM charger recognition"),
    Limit("cts_period", 0.500, "§3", "CTS time sync (content optional: all 0xFF by default)"),
    Limit("cml_period", 0.250, "§3", "CML charger limits"),
    Limit("cro_period", 0.250, "§3", "CRO charger ready"),
    Limit("ccs_period", 0.050, "§3", "CCS charger state (real chargers: ~69 ms, §10)"),
    Limit("cst_period", 0.010, "§3", "CST charger stop (real: ~14 ms, §10)"),
    Limit("csd_period", 0.250, "§3", "CSD charger statistics (real: ~333 ms, §10)"),
    Limit("cem_period", 0.250, "§3", "CEM charger error"),
    # --- charger receive timeouts and waits (§6, §7, §8) ---
    Limit("bhm", 5.0, "§6 step 1, §7", "no value in the standard (implementations 5-10 s); then go on"),
    Limit("insulation", 15.0, "§6 step 2", "insulation test budget (one SDK: 15 s + margin)"),
    Limit("insulation_settle", 5.0, "§6 step 2", "assumed IMD measuring time (capture A: CHM/BHM 16.25 s)"),
    Limit("brm", 5.0, "§6 step 3, §7", "BRM after the first CRM 0x00; CEM SPN 3921"),
    Limit("bcp", 5.0, "§6 step 4, §7", "BCP after CRM 0xAA; CEM SPN 3922"),
    Limit("bro", 5.0, "§6 step 5, §7", "first BRO after CTS + CML start; CEM SPN 3923"),
    Limit("bro_ready", 60.0, "§6 step 5, §7", "BRO 0xAA after CTS + CML start; CEM SPN 3923"),
    Limit("precharge", 60.0, "§6 step 6", "battery voltage seen and output matched (BMS: CRO 0xAA 60 s)"),
    Limit("relay_settle", 0.05, "§6 step 6", "K1/K2 closed before CRO 0xAA (assumed relay time)"),
    Limit("first_bcl", 1.0, "§6 step 7", "first BCL after CRO 0xAA; CEM SPN 3925"),
    Limit("bcl", 1.0, "§7", "BCL watchdog while charging: stop immediately; CEM SPN 3925"),
    Limit("bcs", 5.0, "§7", "BCS watchdog while charging; CEM SPN 3924"),
    Limit("pause", 600.0, "§4.3, §7", "BSM charge permit 00 (pause) longer than 10 min: stop"),
    Limit("stop_current", 0.1, "§7", "output <= 5 A after CST (GB/T 18487.1, UNCERTAIN)"),
    Limit("bst", 5.0, "§6 step 9, §7", "BST after CST; CEM SPN 3926, no re-handshake"),
    Limit("bsd", 10.0, "§6 step 10, §7", "BSD after CST; CEM SPN 3927, no re-handshake"),
    Limit("csd_hold", 1.0, "§6 step 10", "CSD every 250 ms for ~1 s (capture A)"),
    Limit("retry_hold", 5.0, "§8", "CEM for ~5 s, output < 5 A, K1/K2 open, then CRM 0x00 (one SDK: 5.2 s)"),
    Limit("retry_giveup", 10.0, "§8", "retry preconditions not met within 10 s: the timeout is final"),
    Limit("unlock_wait", 5.0, "§6 step 11", "assumed: give up waiting for the output to fall < 60 V"),
    # --- simulated BMS: transmit periods (§3) and receive timeouts (§7) ---
    Limit("bms_bhm_period", 0.250, "§3", "BHM"),
    Limit("bms_brm_period", 0.250, "§3", "BRM (TP) until CRM 0xAA"),
    Limit("bms_bcp_period", 0.500, "§3", "BCP (TP) until CML"),
    Limit("bms_bro_period", 0.250, "§3", "BRO"),
    Limit("bms_bcl_period", 0.050, "§3", "BCL"),
    Limit("bms_bcs_period", 0.250, "§3", "BCS (TP)"),
    Limit("bms_bsm_period", 0.250, "§3", "BSM"),
    Limit("bms_cell_data_period", 10.0, "§3", "BMV / BMT (TP, optional)"),
    Limit("bms_bst_period", 0.010, "§3", "BST"),
    Limit("bms_bsd_period", 0.250, "§3", "BSD"),
    Limit("bms_bem_period", 0.250, "§3", "BEM"),
    Limit("bms_crm", 30.0, "§7", "BMS: CRM 0x00 after the first CHM; BEM SPN 3901"),
    Limit("bms_crm_aa", 5.0, "§7", "BMS: CRM 0xAA after the first BRM; BEM SPN 3902"),
    Limit("bms_cts_cml", 5.0, "§7", "BMS: CTS/CML after the first BCP; BEM SPN 3903"),
    Limit("bms_cro", 5.0, "§7", "BMS: CRO after BRO 0xAA; BEM SPN 3904"),
    Limit("bms_cro_aa", 60.0, "§7", "BMS: CRO 0xAA after BRO 0xAA; BEM SPN 3904"),
    Limit("bms_ccs", 1.0, "§7", "BMS: CCS watchdog from its first BCL; BEM SPN 3905"),
    Limit("bms_cst", 5.0, "§7", "BMS: CST after its BST; BEM SPN 3906"),
    Limit("bms_csd", 10.0, "§7", "BMS: CSD after its BST; BEM SPN 3907"),
    Limit("bms_stop_current", 10.0, "§7", "BMS opens its contactors anyway 10 s after BST"),
    Limit("bms_new_crm", 30.0, "§7", "BMS: a new CRM after its BEM"),
)

LIMITS: dict[str, Limit] = {row.name: row for row in _ROWS}

# Electrical thresholds and counts.
STOP_CURRENT_A = 5.0  # §6 step 9, §8: current considered stopped
OUTPUT_SAFE_V = 60.0  # GB/T 18487.1 (not in the sheet): unlock below 60 V DC
BLEED_DONE_V = 60.0  # same threshold after the insulation test (assumed)
INSULATION_OHM_PER_V = 100.0  # GB/T 18487.1 / IEC 61851-23 insulation fault threshold
BATTERY_VOLTAGE_TOLERANCE = 0.05  # §6: measured voltage within +-5 % of BCP (UNCERTAIN)
PRECHARGE_BELOW_V = (1.0, 10.0)  # §6: output 1-10 V below the battery before K1/K2 (UNCERTAIN)
PRECHARGE_TARGET_BELOW_V = 5.0  # aim in the middle of that window
MAX_REHANDSHAKES = 3  # §8: then the session ends (operator must re-plug)
CURRENT_SLEW_A_PER_S = 20.0  # assumed (as CHAdeMO T12); resume after a pause uses it too (§4.3)
CV_GAIN_A_PER_V = 2.0  # charger's voltage loop: A of setpoint change per V of error, per CCS cycle
# Connector lines and the adhesion check (GB/T 18487.1 annex B, not in the sheet: UNCERTAIN).  CC1 is
# read by the charger: 12 V unplugged, 6 V plugged with switch S open, 4 V fully connected; CC2 by the
# vehicle: 12 V unplugged, 6 V connected.  Each state is a +-0.8 V band.
CC1_CONNECTED_V = 4.0
CC2_CONNECTED_V = 6.0
LINE_BAND_V = 0.8
PRE_TEST_MAX_V = 10.0  # output with K1/K2 open before the insulation test; more: relays welded
WELDED_HOLD = 0.9  # output still at >= 90 % of the battery voltage with K1/K2 open: relays welded


def limit(name: str) -> float:
    return LIMITS[name].seconds
