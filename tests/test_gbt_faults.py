"""The fault catalogue on GB/T 27930-2015: every kind ends on its protocol-true stop path.

Whole sessions (charger core + simulated BMS) in simulated time, and a few scripted-BMS benches.
Each test checks the stop reason and step, the flags and frames on the wire (CST / BST / CEM / BEM
bytes as the fact sheet lays them out, §4.4) and the reaction time against the timing table.
"""

from __future__ import annotations

from typing import Any

import pytest

from charger_sim.errors import ScenarioError
from charger_sim.faults import FAULTS, describe_catalogue
from charger_sim.protocols import registry
from charger_sim.protocols.gbt import faults as gbt_faults
from charger_sim.protocols.gbt import timing as T
from charger_sim.protocols.gbt.bms_frames import BmsFrames
from charger_sim.protocols.gbt.config import GbtBmsConfig, GbtChargerConfig
from charger_sim.protocols.gbt.messages import bcl_problem
from charger_sim.protocols.gbt.states import Stage
from charger_sim.protocols.gbt.stops import REASONS
from charger_sim.scenario.loader import parse_scenario
from tests.gbt_helpers import CODEC, GbtBench, SessionRun, charging, run_session

LFP = {  # capture A's car (§9): 114 LFP cells, 152 Ah, 364.8 V
    "chemistry": "lfp",
    "series": 114,
    "parallel": 1,
    "cell_capacity_ah": 152,
    "cell_resistance_ohm": 0.0004,
    "max_charge_current_a": 250,
    "thermal_mass_j_per_k": 400000,
    "cooling_w_per_k": 60,
}
BASE: dict[str, Any] = {
    "protocol": "gbt",
    "seed": 7,
    "time_limit": 900,
    "vehicle": {"pack": LFP, "soc": 60, "target_soc": 63},
    "charger": {"max_current": 250, "max_power": 75000},
    "expect": {"outcome": "stopped"},
}
CHARGING = {"stage": "charging", "after": 20}
POLL = T.limit("ccs_period")  # the charger samples its lines with every CCS cycle while charging
STOP = T.limit("stop_current")
CST_FAULT_OTHER = "10 00 F4 F0"  # fault stop + other fault
CST_CONNECTOR = "10 04 F0 F0"  # fault stop + charging connector fault
CST_BMS_STOPPED = "40 00 F0 F0"
CEM_BCL = "FC F0 C4 FC"
CEM_BRM = "FD F0 C0 FC"


def run(*faults: dict[str, Any], until: float | None = None, **top: Any) -> SessionRun:
    spec = {**BASE, **top, "faults": list(faults)}
    return run_session(spec, until)


def verdict(r: SessionRun) -> tuple[str, str, str, int]:
    res = r.result
    return res.outcome, res.reason, res.stage, res.step


def assert_safe_stop(r: SessionRun, began: float) -> None:
    """Current flowing when the stop began, <= 5 A within the §7 limit, and the session ended."""
    assert r.current_from(began - 0.2) > T.STOP_CURRENT_A  # (it was charging)
    assert any(began <= t <= began + STOP + 1e-9 for t, _ in r.trace)  # observed within the limit
    assert r.current_from(began + STOP) <= T.STOP_CURRENT_A
    assert r.result.outcome != "unfinished" and r.end < r.session.scenario.time_limit


# ---- the catalogue mapping ----------------------------------------------------------------------------


def test_gbt_registers_pins_firmware_and_a_note_for_every_kind() -> None:
    info = registry.get("gbt")
    assert set(info.pins) == {"cc1", "cc2", "k3k4"}
    assert info.apply_firmware is gbt_faults.apply_firmware
    assert set(info.fault_notes) == set(FAULTS)
    assert all(row[3] for row in describe_catalogue(info))


def test_new_stop_reasons_carry_their_cst_fields() -> None:
    from charger_sim.protocols.gbt.stops import cst_bits

    assert cst_bits("cc1_fault") == ("FaultStop", "ChargingConnectorFault")
    assert cst_bits("contactor_welded") == ("FaultStop", "OtherFault")
    assert cst_bits("protocol_incompatible") == ("FaultStop", "OtherFault")
    assert not REASONS["contactor_welded"].normal and REASONS["cc1_fault"].origin.value == "vehicle"


@pytest.mark.parametrize(
    ("version", "raw", "bhm"),
    [("1.1", 0x000101, True), ("2015", 0x000101, True), ("1.0", 0x000100, False), ("2011", 0x000100, False),
     ("V1.0", 0x000100, False), ("2.0", 0x000200, True), ("1.2", 0x000102, True)],
)
def test_firmware_versions_map_to_brm_bytes(version: str, raw: int, bhm: bool) -> None:
    cfg = gbt_faults.apply_firmware(GbtBmsConfig(), version)
    assert (cfg.protocol_version_raw(), cfg.send_bhm) == (raw, bhm)


@pytest.mark.parametrize("version", ["banana", "1", "1.256", "70000.1", ""])
def test_unknown_firmware_versions_are_refused_naming_the_key(version: str) -> None:
    with pytest.raises(ValueError, match="GB/T protocol version"):
        gbt_faults.apply_firmware(GbtBmsConfig(), version)
    spec = {**BASE, "faults": [{"type": "firmware_mismatch", "version": version}]}
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.version"):
        parse_scenario(spec, "bad.yaml")


def test_brm_carries_the_configured_protocol_version() -> None:
    from charger_sim.bms.battery import Battery, PackSpec

    battery = Battery(PackSpec(), soc=50.0)
    assert BmsFrames(GbtBmsConfig(), battery, CODEC).brm()[:3] == bytes.fromhex("010100")  # §4.1 V1.1
    v10 = BmsFrames(GbtBmsConfig(protocol_version="1.0"), battery, CODEC)
    assert v10.brm()[:3] == bytes.fromhex("000100")


@pytest.mark.parametrize("pin", ["cc1", "cc2", "k3k4"])
def test_every_pin_has_an_effect(pin: str) -> None:
    r = run({"type": "worn_pins", "pin": pin, "at": CHARGING})
    assert r.result.outcome == "stopped" and r.result.reason != "bms_soc_target", pin
    assert r.entered("stopping") or r.entered("error")


# ---- link: drop, delay -----------------------------------------------------------------------------


def test_one_lost_bcl_is_harmless() -> None:
    r = run({"type": "drop_message", "message": "BCL", "count": 1, "at": CHARGING},
            expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target") and not r.named("CEM")
    assert r.session.frames_dropped == 1


def test_bcl_lost_for_3_s_cem_within_1_s_then_rehandshake_and_charge_on() -> None:
    r = run({"type": "drop_message", "message": "BCL", "duration": 3, "at": CHARGING},
            expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target")
    assert set(r.data("CEM")) == {CEM_BCL}  # §4.4: BCL timeout, SPN 3925
    error = r.entered("error")[0]
    assert 0 < error - r.fault_at <= T.limit("bcl") + T.limit("bms_bcl_period") + 1e-6
    retry = r.entered("recognition")[1]
    assert retry == pytest.approx(error + T.limit("retry_hold"))  # §8: CEM ~5 s, then CRM 0x00
    assert max(i for t, i in r.trace if error + STOP <= t < retry) <= T.STOP_CURRENT_A
    assert r.stages().count("charging") == 2 and r.stages().count("recognition") == 2  # from CRM 0x00


def test_bsm_is_not_timed_out_by_the_charger() -> None:
    """27930-2015 has no CEM flag for BSM (§4.4): the charger keeps its last state and charges on."""
    r = run({"type": "drop_message", "message": "BSM", "at": CHARGING}, expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target") and not r.named("CEM")


def test_bcl_late_by_more_than_1_s_is_a_bcl_timeout() -> None:
    r = run({"type": "delay_message", "message": "BCL", "delay": 2.0, "at": CHARGING})
    assert verdict(r) == ("stopped", "bcl_timeout", "charging", 7)
    assert set(r.data("CEM")) == {CEM_BCL}
    assert r.entered("error")[0] - r.fault_at <= T.limit("bcl") + T.limit("bms_bcl_period") + 1e-6


def test_bcl_late_by_less_than_the_timeout_is_harmless() -> None:
    r = run({"type": "delay_message", "message": "BCL", "delay": 0.3, "at": CHARGING},
            expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target") and not r.named("CEM")


# ---- link: corrupt -------------------------------------------------------------------------------


def test_a_bcl_asking_more_than_bcp_allows_is_clamped() -> None:
    r = run({"type": "corrupt_signal", "message": "BCL", "signal": "CurrentDemand", "mode": "set",
             "value": -400, "at": CHARGING},
            vehicle={"pack": LFP, "soc": 60, "target_soc": 62, "max_current": 100},
            expect={"outcome": "completed"})
    assert r.result.outcome == "completed"
    assert r.session.charger.power.peak_current <= 100.0 + 1e-6  # min(BCL, BCP 100 A, CML 250 A)
    assert 99.0 <= r.current_from(0.0) <= 100.0 + 1e-6


@pytest.mark.parametrize(
    ("signal", "mode", "value", "why"),
    [
        ("CurrentDemand", "not_available", None, "+6153.5 A is not a charge current"),
        ("CurrentDemand", "set", 50.0, "+50.0 A is not a charge current"),
        ("VoltageDemand", "out_of_range", None, "voltage demand not available"),
        ("ChargeMode", "set", 7.0, "charge mode 0x07"),
    ],
)
def test_an_unusable_bcl_counts_as_not_received(
    signal: str, mode: str, value: float | None, why: str
) -> None:
    fault: dict[str, Any] = {"type": "corrupt_signal", "message": "BCL", "signal": signal, "mode": mode,
                             "at": CHARGING}
    if value is not None:
        fault["value"] = value
    r = run(fault)
    assert verdict(r) == ("stopped", "bcl_timeout", "charging", 7)
    assert why in r.result.cause and "unusable" in r.result.cause
    assert set(r.data("CEM")) == {CEM_BCL}
    first_error = r.entered("error")[0]
    assert first_error - r.fault_at <= T.limit("bcl") + T.limit("bms_bcl_period") + 1e-6
    assert_safe_stop(r, first_error)
    assert r.session.charger.power.peak_current <= 250.0


def test_a_bitflip_raising_a_bsm_state_stops_with_a_cst_fault() -> None:
    r = run({"type": "corrupt_signal", "message": "BSM", "signal": "CellVoltageState", "mode": "bitflip",
             "bit": 0, "at": CHARGING})
    assert verdict(r) == ("stopped", "bsm_cell_voltage", "charging", 7)
    assert set(r.data("CST")) == {CST_FAULT_OTHER}
    began = r.entered("stopping")[0]
    assert began - r.fault_at <= T.limit("bms_bsm_period") + 1e-6
    assert_safe_stop(r, began)


@pytest.mark.parametrize("value", [2, 3])  # 10 untrusted, 11 unused: keep the previous state (§1)
def test_untrusted_bsm_states_keep_the_previous_state(value: int) -> None:
    r = run({"type": "corrupt_signal", "message": "BSM", "signal": "OverTemperature", "mode": "set",
             "value": value, "at": CHARGING}, expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target")


def test_bro_out_of_range_reads_invalid_and_the_bms_times_out_cro() -> None:
    """BRO 0xFF is 'invalid' (§4.2): never ready; the BMS gives up on CRO after 5 s (BEM)."""
    r = run({"type": "corrupt_signal", "message": "BRO", "signal": "BmsReady", "mode": "out_of_range"})
    assert verdict(r) == ("stopped", "bem_received", "configuration", 4)
    assert not r.named("CRO") and "TimeoutCro" in r.result.cause
    assert r.stages().count("configuration") == 4  # the first try and 3 re-handshakes


def test_a_bhm_without_a_voltage_is_tested_as_no_bhm() -> None:
    r = run({"type": "corrupt_signal", "message": "BHM", "signal": "MaxPermissibleChargeVoltage",
             "mode": "not_available"}, expect={"outcome": "completed"})
    entry = next(e for e in r.session.timeline if e.role == "charger" and e.stage == "insulation_test")
    assert "without a voltage" in entry.detail
    assert r.session.charger.insulation_voltage == 750.0  # the charger's own maximum


def test_unit_bcl_validity() -> None:
    ok = {"VoltageDemand": 400.0, "CurrentDemand": -100.0, "ChargeMode": 2}
    assert bcl_problem(ok) == ""
    assert bcl_problem({**ok, "CurrentDemand": -400.0}) == ""  # the largest charge demand
    assert "not a charge current" in bcl_problem({**ok, "CurrentDemand": 0.1})
    assert "not available" in bcl_problem({**ok, "VoltageDemand": 6553.5})
    assert "charge mode" in bcl_problem({**ok, "ChargeMode": 0})


# ---- link: wrong DLC, replay, duplicate, bus-off ---------------------------------------------------


def test_a_short_bcl_is_unusable() -> None:
    r = run({"type": "wrong_dlc", "message": "BCL", "dlc": 3, "at": CHARGING})
    assert verdict(r) == ("stopped", "bcl_timeout", "charging", 7)
    assert "3 data byte(s), 5 expected" in r.result.cause


def test_a_padded_bcl_is_tolerated() -> None:
    r = run({"type": "wrong_dlc", "message": "BCL", "dlc": 8, "at": CHARGING},
            expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target")


def test_a_ccs_without_its_permit_byte_makes_the_bms_time_out() -> None:
    r = run({"type": "wrong_dlc", "message": "CCS", "dlc": 6, "at": CHARGING})
    assert verdict(r) == ("stopped", "bem_received", "charging", 7)
    bem = {v["TimeoutCcs"] for _, v in r.decoded("BEM")}
    assert bem == {1}  # BEM SPN 3905
    assert r.entered("error")[0] - r.fault_at <= T.limit("bms_ccs") + POLL + 1e-6


def test_replayed_bcl_is_accepted_within_the_limits() -> None:
    r = run({"type": "replay_message", "message": "BCL", "age": 30, "at": CHARGING},
            expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target") and not r.named("CEM")
    assert r.session.charger.power.peak_current <= 250.0


@pytest.mark.parametrize("message", ["BCL", "BSM", "BST"])
def test_duplicates_are_harmless(message: str) -> None:
    r = run({"type": "duplicate_message", "message": message, "copies": 2}, expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target")


def test_bus_off_for_3_s_cem_then_the_rehandshake_charges_on() -> None:
    r = run({"type": "bus_off", "duration": 3, "at": CHARGING}, expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target")
    error = r.entered("error")[0]
    assert error - r.fault_at <= T.limit("bcl") + 1e-6  # the last BCL before the bus went quiet
    assert r.stages().count("charging") == 2
    assert r.session.charger.faults == ["bcl_timeout"]


def test_bus_off_for_good_ends_the_session_naming_the_first_timeout() -> None:
    r = run({"type": "bus_off", "at": CHARGING})
    assert verdict(r) == ("stopped", "brm_timeout", "recognition", 4)
    assert "the first timeout: bcl_timeout in charging" in r.result.cause
    assert r.session.charger.faults == ["bcl_timeout", "brm_timeout", "brm_timeout", "brm_timeout"]
    assert not r.session.harness.is_on("k3k4") and not r.session.harness.is_on("lock")


# ---- vehicle firmware ----------------------------------------------------------------------------


def test_a_2011_bms_charges_after_the_bhm_wait() -> None:
    r = run({"type": "firmware_mismatch", "version": "1.0"}, expect={"outcome": "completed"})
    assert verdict(r)[:2] == ("completed", "bms_soc_target")
    assert not r.named("BHM") and r.entered("insulation_test")[0] == pytest.approx(T.limit("bhm"))


def test_an_unknown_major_version_is_refused_at_recognition() -> None:
    r = run({"type": "firmware_mismatch", "version": "2.0"})
    assert verdict(r) == ("stopped", "protocol_incompatible", "recognition", 4)
    assert "V2.0 (00 02 00)" in r.result.cause
    assert set(r.data("CST")) == {CST_FAULT_OTHER}
    assert {d[:2] for d in r.data("CRM")} == {"00"}  # never recognised
    assert not r.named("CML") and not r.named("CRO")


# ---- plant: worn pins ----------------------------------------------------------------------------


def test_a_worn_cc1_from_plug_in_means_no_start() -> None:
    r = run({"type": "worn_pins", "pin": "cc1"})
    assert verdict(r) == ("stopped", "cc1_fault", "idle", 1)
    assert "CC1 reads 5.0 V" in r.result.cause
    assert not r.named("CHM") and not r.session.harness.is_on("lock") and not r.session.harness.is_on("k3k4")


@pytest.mark.parametrize("mode", ["out_of_band", "bouncing"])
def test_cc1_lost_while_charging_is_an_emergency_stop(mode: str) -> None:
    r = run({"type": "worn_pins", "pin": "cc1", "mode": mode, "at": CHARGING})
    assert verdict(r) == ("stopped", "cc1_fault", "charging", 7)
    assert set(r.data("CST")) == {CST_CONNECTOR}
    began = r.entered("stopping")[0]
    assert began - r.fault_at <= POLL + 1e-6
    assert_safe_stop(r, began)


def test_cc1_lost_during_the_insulation_test_aborts_without_cst() -> None:
    r = run({"type": "worn_pins", "pin": "cc1", "at": {"stage": "insulation_test", "after": 1}})
    assert verdict(r) == ("stopped", "cc1_fault", "insulation_test", 2)
    assert not r.named("CST") and not r.named("CRM")


def test_unit_cc1_supervision_at_the_start() -> None:
    for value, starts in ((4.0, True), (True, True), (6.0, False), (12.0, False), (0.0, False)):
        bench = GbtBench()
        bench.harness.set("cc1", value)
        bench.start(0.0)
        assert (bench.stage is Stage.HANDSHAKE) is starts, value
        if not starts:
            assert bench.ended().reason == "cc1_fault" and bench.ended().step == 1
    unplugged = GbtBench()
    unplugged.harness.connected = False
    unplugged.start(0.0)
    assert unplugged.ended().reason == "cc1_fault"


def test_unit_cc1_out_of_band_while_charging_is_seen_on_the_next_ccs_cycle() -> None:
    bench = charging(GbtChargerConfig(), current=100.0, settle=5.0)
    t0 = bench.now
    bench.harness.overrides["cc1"] = 6.0  # switch S opened
    bench.step_to(t0 + POLL)
    assert bench.stage is Stage.STOPPING
    assert bench.data("CST")[-1] == CST_CONNECTOR


@pytest.mark.parametrize("mode", ["out_of_band", "bouncing"])
def test_cc2_fault_makes_the_bms_stop_with_bst_cc2(mode: str) -> None:
    r = run({"type": "worn_pins", "pin": "cc2", "mode": mode, "at": CHARGING})
    assert verdict(r) == ("stopped", "bms_cc2_fault", "charging", 7)
    assert {d[:8] for d in r.data("BST")} == {"00 00 10"}  # byte 3 bits 5-6 (§4.4)
    assert set(r.data("CST")) == {CST_BMS_STOPPED}
    began = r.entered("stopping")[0]
    assert began - r.fault_at <= T.limit("bms_bcl_period") + 1e-6
    assert_safe_stop(r, began)


def test_cc2_fault_from_plug_in_stops_at_recognition() -> None:
    r = run({"type": "worn_pins", "pin": "cc2"})
    assert verdict(r) == ("stopped", "bms_cc2_fault", "recognition", 4)


def test_aux_power_lost_the_bms_falls_silent() -> None:
    r = run({"type": "worn_pins", "pin": "k3k4", "mode": "bouncing", "period": 0.2, "at": CHARGING})
    assert r.session.charger.faults[0] == "bcl_timeout"
    assert verdict(r) == ("stopped", "brm_timeout", "recognition", 4)
    assert r.entered("error")[0] - r.fault_at <= T.limit("bcl") + 1e-6


# ---- plant: insulation, welded contactors -------------------------------------------------------------


def test_insulation_drop_before_charging_fails_the_insulation_test() -> None:
    r = run({"type": "insulation_drop", "value": 20000})
    assert verdict(r) == ("stopped", "insulation_fault", "insulation_test", 2)
    assert not r.named("CST") and not r.named("CRM")
    assert "20.0 kOhm" in r.result.cause


def test_insulation_drop_while_charging_the_bms_stops() -> None:
    r = run({"type": "insulation_drop", "value": 20000, "at": CHARGING})
    assert verdict(r) == ("stopped", "bms_insulation_fault", "charging", 7)
    assert {d[:8] for d in r.data("BST")} == {"00 01 00"}  # byte 2 bits 1-2
    began = r.entered("stopping")[0]
    assert began - r.fault_at <= 1.0 + T.limit("bms_bcl_period")  # the BMS's 1 s pack step
    assert_safe_stop(r, began)


def test_welded_contactors_found_by_the_adhesion_check_the_session_ends_locked() -> None:
    r = run({"type": "contactor_welded", "at": CHARGING})
    assert verdict(r) == ("stopped", "contactor_welded", "charging", 7)
    assert "the stop: bms_soc_target" in r.result.cause and "kept locked" in r.result.cause
    assert set(r.data("CST")) == {CST_BMS_STOPPED} and r.named("CSD")  # the end phase as usual
    shutdown = r.entered("shutdown")[0]
    assert r.entered("done")[0] == pytest.approx(shutdown + T.limit("unlock_wait"))
    h = r.session.harness
    assert h.is_on("lock") and not h.is_on("k1k2") and not h.is_on("k3k4")
    assert r.session.charger.power.voltage > T.OUTPUT_SAFE_V
    assert r.end < BASE["time_limit"]


def test_welded_contactors_before_the_insulation_test() -> None:
    r = run({"type": "contactor_welded"})
    assert verdict(r) == ("stopped", "contactor_welded", "insulation_test", 2)
    assert "before the insulation test" in r.result.cause
    assert not r.named("CRM") and r.session.harness.is_on("lock")


def test_an_output_that_bleeds_normally_is_unlocked() -> None:
    r = run(expect={"outcome": "completed"})
    assert not r.session.harness.is_on("lock") and "contactor_welded" not in r.session.charger.faults


# ---- battery faults --------------------------------------------------------------------------------


def test_cell_over_voltage_bms_protection_bst() -> None:
    r = run({"type": "cell_over_voltage", "group": 5, "at": CHARGING})
    assert verdict(r) == ("stopped", "bms_cell_voltage", "charging", 7)
    assert {d[:8] for d in r.data("BST")} == {"10 00 00"}
    began = r.entered("stopping")[0]
    assert began - r.fault_at <= 1.0 + T.limit("bms_bcl_period")
    assert_safe_stop(r, began)


def test_temperature_runaway_bms_over_temperature_bst() -> None:
    r = run({"type": "temperature_runaway", "value": 60000, "group": 3, "at": CHARGING})
    assert verdict(r) == ("stopped", "bms_battery_over_temperature", "charging", 7)
    assert {d[:8] for d in r.data("BST")} == {"00 00 01"}  # byte 3 bits 1-2
    assert r.result.max_temperature >= 55.0
    assert_safe_stop(r, r.entered("stopping")[0])


def test_cell_imbalance_in_cc_mode_ends_early_on_the_leading_cell() -> None:
    r = run({"type": "cell_imbalance", "value": 35, "at": CHARGING},
            vehicle={"pack": LFP, "soc": 60, "target_soc": 90})
    assert verdict(r) == ("stopped", "bms_cell_voltage", "charging", 7)
    assert r.session.battery.soc < 90.0
    assert {d[:8] for d in r.data("BST")} == {"10 00 00"}


# ---- charger faults --------------------------------------------------------------------------------


def test_power_stage_fault_cst_fault_stop() -> None:
    r = run({"type": "power_stage_fault", "at": CHARGING})
    assert verdict(r) == ("stopped", "charger_malfunction", "charging", 7)
    assert set(r.data("CST")) == {CST_FAULT_OTHER}
    assert r.entered("stopping")[0] == pytest.approx(r.fault_at)
    assert_safe_stop(r, r.fault_at)


def test_operator_stop_cst_manual_and_a_normal_end() -> None:
    r = run({"type": "operator_stop", "at": CHARGING})
    assert verdict(r) == ("stopped", "operator_stop", "charging", 7)
    assert set(r.data("CST")) == {"04 00 F0 F0"} and {d[:8] for d in r.data("BST")} == {"40 00 00"}
    assert r.named("CSD") and not r.session.harness.is_on("lock")


# ---- never an exception, never more current than allowed -------------------------------------------


@pytest.mark.parametrize(
    ("message", "signal"),
    [("BCL", "VoltageDemand"), ("BCL", "CurrentDemand"), ("BCL", "ChargeMode"), ("BSM", "ChargePermit"),
     ("BSM", "MaxTemperature"), ("BRO", "BmsReady"), ("BHM", "MaxPermissibleChargeVoltage"),
     ("CCS", "ChargePermit"), ("CML", "MaxOutputCurrent"), ("CRO", "ChargerReady")],
)
@pytest.mark.parametrize("mode", ["not_available", "out_of_range", "bitflip"])
def test_corrupt_signals_never_crash_nor_exceed_the_limits(message: str, signal: str, mode: str) -> None:
    fault: dict[str, Any] = {"type": "corrupt_signal", "message": message, "signal": signal, "mode": mode}
    if mode == "bitflip":
        fault["bit"] = 1
    r = run(fault, vehicle={"pack": LFP, "soc": 60, "target_soc": 62, "max_current": 120}, time_limit=400)
    assert r.result.outcome in ("completed", "stopped"), r.result.cause
    assert r.session.charger.power.peak_current <= 120.0 + 1e-6
