"""Single-role sessions (``charger`` / ``bms``): peer plants, the two roles against each other in
simulated time and on python-can's virtual bus in real time, CLI loading and python-can config."""

from __future__ import annotations

import io
import math
import threading
from pathlib import Path

import pytest
from rich.console import Console

from charger_sim.cli.main import main
from charger_sim.cli.roles import load_role_scenario
from charger_sim.codec import load_dbc
from charger_sim.errors import ExitCode, ScenarioError, UsageError
from charger_sim.frames import Frame
from charger_sim.plant import peer, peer_ccs, peer_gbt
from charger_sim.plant.harness import Harness
from charger_sim.protocols.base import Role
from charger_sim.protocols.ccs.electrical import EV_LOAD_OHM, NO_PWM, CpMode, CpState
from charger_sim.protocols.gbt.transport import PGN_TP_CM, PGN_TP_DT, Rts, format_tp_cm, make_id
from charger_sim.resources import scenarios_dir
from charger_sim.scenario.loader import load_scenario
from charger_sim.scenario.runner import run_role
from tests.buses import (
    CYCLIC,
    FAST,
    FAST_CHADEMO,
    LOGGED,
    LONG,
    RecordingBus,
    assert_stop_sequence_of,
    fake_interfaces,
    read_log,
    run_pair,
    write,
)

__all__ = ["fake_interfaces"]  # the fixture, imported for its use below

SC = scenarios_dir()
CODEC = load_dbc("chademo")
GBT = load_dbc("gbt27930")
CCS = load_dbc("ccs")


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    code = main(list(argv), console=Console(file=buf, width=200, color_system=None))
    return code, buf.getvalue()


def f109(status: int, volts: int = 0, amps: int = 0) -> Frame:
    m = CODEC.message("ChargerStatus")
    return m.frame(
        {
            **{sig.name: 0 for sig in m.signals},
            "ProtocolNumberEVSE": 2,
            "PresentOutputVoltage": volts,
            "PresentOutputCurrent": amps,
            "StatusCharging": status & 1,
            "StatusChargerMalfunction": status >> 1 & 1,
            "StatusConnectorLocked": status >> 2 & 1,
            "StatusBatteryIncompatible": status >> 3 & 1,
            "StatusSystemMalfunction": status >> 4 & 1,
            "StatusStopControl": status >> 5 & 1,
            "RemainingTime10s": 0,
            "RemainingTimeMin": 0,
        },
        0.0,
    )


# ---- peer plants --------------------------------------------------------------------------------
def test_bms_role_closes_d2_only_after_the_chargers_insulation_test() -> None:
    h = Harness()
    plant = peer.ChademoRealCharger(h, CODEC)
    plant.start(0.0)
    assert h.is_on("d1") and not h.is_on("d2")
    plant.receive(f109(0x24, volts=0), 1.0)  # locked, test not started
    assert not h.is_on("d2")
    plant.receive(f109(0x24, volts=480), 2.0)  # test voltage
    assert not h.is_on("d2")
    plant.receive(f109(0x24, volts=15), 3.0)  # bled below 20 V: test done -> d2
    assert h.is_on("d2")
    plant.receive(f109(0x25, volts=380, amps=50), 4.0)
    assert (h.output_voltage, h.output_current) == (380, 50)
    plant.receive(f109(0x20, volts=5), 5.0)  # unlocked at the end: d2 open
    assert not h.is_on("d2") and h.is_on("d1")
    assert plant.next_deadline() == pytest.approx(5.0 + peer.CHARGER_SILENCE_S)
    plant.on_timer(5.0 + peer.CHARGER_SILENCE_S)  # charger silent: d1 open, the vehicle sleeps
    assert not h.is_on("d1")


def test_bms_role_d2_fallback_when_no_test_voltage_is_shown() -> None:
    h = Harness()
    plant = peer.ChademoRealCharger(h, CODEC)
    plant.start(0.0)
    plant.receive(f109(0x24), 1.0)
    plant.receive(f109(0x24), 1.0 + peer.LOCKED_D2_FALLBACK_S - 0.1)
    assert not h.is_on("d2")
    plant.receive(f109(0x24), 1.0 + peer.LOCKED_D2_FALLBACK_S)
    assert h.is_on("d2")


def test_charger_role_k_and_contactors_follow_0x102() -> None:
    sc = load_scenario(SC / "chademo_basic.yaml")
    from charger_sim.bms.battery import Battery

    h = Harness()
    battery = Battery(sc.vehicle.pack, soc=50.0, seed=1)
    plant = peer.ChademoRealVehicle(h, CODEC, battery, 5e6)
    m102 = CODEC.message("VehicleChargeControl")

    def f102(enabled: int, contactor_open: int) -> Frame:
        return m102.frame(
            {
                **{sig.name: 0 for sig in m102.signals},
                "ProtocolNumberEV": 2,
                "TargetBatteryVoltage": 410,
                "ChargingEnabled": enabled,
                "ContactorOpen": contactor_open,
                "ChargedRate": 50,
            },
            0.0,
        )

    plant.start(0.0)
    plant.receive(f102(1, 1), 0.1)
    assert h.is_on("k") and not h.contactors_closed
    h.set("d2", True)
    plant.receive(f102(1, 0), 0.2)
    assert h.contactors_closed
    assert h.battery_voltage == pytest.approx(battery.terminal_voltage(0.0))
    h.output_current = 60.0
    plant.receive(f102(0, 0), 0.3)  # the vehicle withdraws permission; current still flowing
    assert not h.is_on("k") and h.contactors_closed
    h.output_current = 3.0
    plant.on_timer(0.4)  # current <= 5 A: the vehicle opens its contactors for the welding check
    assert not h.contactors_closed


def test_roles_need_a_peer_plant() -> None:
    for protocol in ("chademo", "gbt", "ccs"):
        assert peer.supported(protocol, Role.CHARGER) and peer.supported(protocol, Role.VEHICLE)
    with pytest.raises(UsageError, match="not available"):
        peer.build("nope", Role.CHARGER, Harness(), CODEC, None, None)  # type: ignore[arg-type]


def frame(codec_name: str, message: str, at: float = 0.0, **values: float) -> Frame:
    """A frame of ``message`` with every signal 0 except ``values``."""
    m = {"gbt": GBT, "ccs": CCS}[codec_name].message(message)
    return m.frame({**{sig.name: 0 for sig in m.signals}, **values}, at)


def gbt_tp(message: str, values: dict[str, float], at: float) -> list[Frame]:
    """A multi-packet BMS message as the BMS sends it: RTS, then TP.DT (the charger's CTS not shown)."""
    m = GBT.message(message)
    payload = m.encode({**{sig.name: 0 for sig in m.signals}, **values})
    packets = (len(payload) + 6) // 7
    pgn = (m.frame_id >> 8) & 0x3FF00
    out = [
        Frame(make_id(PGN_TP_CM, 0x56, 0xF4), format_tp_cm(Rts(len(payload), packets, 0xFF, pgn)), True, at)
    ]
    for seq in range(1, packets + 1):
        chunk = payload[(seq - 1) * 7 : seq * 7].ljust(7, b"\xff")
        out.append(Frame(make_id(PGN_TP_DT, 0x56, 0xF4), bytes([seq]) + chunk, True, at))
    return out


def test_gbt_charger_role_contactors_follow_bro_and_the_end_of_the_session() -> None:
    from charger_sim.bms.battery import Battery

    sc = load_scenario(SC / "gbt_basic.yaml")
    h = Harness()
    battery = Battery(sc.vehicle.pack, soc=50.0, seed=1)
    plant = peer_gbt.GbtRealBms(h, GBT, battery, 5e6)
    plant.start(0.0)
    assert h.is_on("cc1") and not h.contactors_closed and h.insulation_resistance_ohm == 5e6
    model = battery.terminal_voltage(0.0)
    for f in gbt_tp("BCP", {"PresentBatteryVoltage": round(model + 7.0, 1), "SOC": 50.0}, 0.1):
        plant.receive(f, 0.1)  # the BMS's own battery voltage: the model is shifted onto it
    assert h.battery_voltage == pytest.approx(model + 7.0, abs=0.1) and plant.soc() == 50.0
    plant.receive(frame("gbt", "BRO", 0.2, BmsReady=0x00), 0.2)
    assert not h.contactors_closed
    plant.receive(frame("gbt", "BRO", 0.3, BmsReady=0xAA), 0.3)  # ready: contactors closed before
    assert h.contactors_closed and h.dc_link_voltage == pytest.approx(model + 7.0, abs=0.1)
    for f in gbt_tp("BCS", {"MeasuredVoltage": 380.0, "MeasuredCurrent": -100.0, "SOC": 61}, 0.4):
        plant.receive(f, 0.4)
    assert plant.snapshot().values["soc"] == 61 and plant.frames == 3 + 1 + 1 + 3  # TP frames count
    h.output_current = 100.0
    plant.receive(frame("gbt", "BST", 0.5, SocTargetReached=1), 0.5)  # ending, current still on
    assert h.contactors_closed
    h.output_current = 4.0
    plant.on_timer(0.6)  # <= 5 A: the BMS opens its contactors
    assert not h.contactors_closed and "stopping" in plant.snapshot().stage


def test_gbt_charger_role_a_silent_bms_opens_its_contactors() -> None:
    from charger_sim.bms.battery import Battery

    h = Harness()
    battery = Battery(load_scenario(SC / "gbt_basic.yaml").vehicle.pack, soc=50.0)
    plant = peer_gbt.GbtRealBms(h, GBT, battery, 5e6)
    plant.start(0.0)
    plant.receive(frame("gbt", "BRO", 0.1, BmsReady=0xAA), 0.1)
    plant.on_timer(0.1 + peer_gbt.BMS_SILENCE_S - 0.05)
    assert h.contactors_closed
    plant.on_timer(0.1 + peer_gbt.BMS_SILENCE_S + 0.05)
    assert not h.contactors_closed


def test_gbt_bms_role_aux_power_and_output_follow_the_chargers_frames() -> None:
    h = Harness()
    plant = peer_gbt.GbtRealCharger(h, GBT)
    plant.start(0.0)
    assert not h.is_on("k3k4") and plant.next_deadline() is None
    plant.receive(frame("gbt", "CHM", 1.0, ProtocolVersionMinor=1, ProtocolVersionMajor=1), 1.0)
    assert h.is_on("k3k4")  # auxiliary power comes with CHM
    plant.receive(frame("gbt", "CCS", 2.0, OutputVoltage=380.0, OutputCurrent=-120.0, ChargePermit=1), 2.0)
    assert (h.output_voltage, h.output_current, h.is_on("k1k2")) == (380.0, 120.0, True)
    plant.on_timer(2.0 + peer_gbt.CCS_STALE_S)  # CCS stopped coming: no output
    assert h.output_current == 0.0 and not h.is_on("k1k2")
    plant.receive(frame("gbt", "CCS", 3.0, OutputVoltage=380.0, OutputCurrent=-120.0, ChargePermit=1), 3.0)
    plant.receive(frame("gbt", "CST", 3.1, BmsStopped=1), 3.1)
    assert h.output_current == 0.0 and h.is_on("k3k4")
    # silent without CSD: k3k4 stays on through a re-handshake's 5 s CEM hold
    assert plant.next_deadline() == pytest.approx(3.1 + peer_gbt.CHARGER_HOLD_S)
    plant.receive(frame("gbt", "CSD", 4.0), 4.0)
    assert plant.next_deadline() == pytest.approx(4.0 + peer_gbt.CHARGER_SILENCE_S)
    plant.on_timer(4.0 + peer_gbt.CHARGER_SILENCE_S)  # the session is over: auxiliary power off
    assert not h.is_on("k3k4") and plant.next_deadline() is None
    assert "finished" in plant.snapshot().stage


def test_ccs_charger_role_pilot_load_and_contactors_follow_0x510() -> None:
    from charger_sim.bms.battery import Battery

    sc = load_scenario(SC / "ccs_basic.yaml")
    h = Harness()
    battery = Battery(sc.vehicle.pack, soc=50.0, seed=1)
    plant = peer_ccs.CcsRealVehicle(h, CCS, battery, 5e6, pp_contact_ohm=12.0)
    plant.start(0.0)
    assert h.line("cp_ev_ohm") == EV_LOAD_OHM[CpState.B] and h.line("pp_contact_ohm") == 12.0

    def status(request: int, cp: CpState, contactors: int) -> Frame:
        return frame("ccs", "EvStatus", 0.0, EvRequest=request, EvCpState=cp, EvContactorState=contactors,
                     EvSoc=50, EvReady=1)  # fmt: skip

    plant.receive(status(8, CpState.C, 0), 0.1)  # S2 closed: state C load
    assert h.line("cp_ev_ohm") == EV_LOAD_OHM[CpState.C]
    plant.receive(status(9, CpState.C, 0), 0.2)
    target = round(battery.terminal_voltage(0.0) + 4.0, 1)
    plant.receive(frame("ccs", "EvTargets", 0.2, EvTargetVoltage=target, EvTargetCurrent=2.0), 0.2)
    plant.receive(status(10, CpState.C, 1), 0.3)  # contactors closed: the battery on the link
    assert h.contactors_closed and h.dc_link_voltage == pytest.approx(target, abs=0.1)
    plant.receive(status(12, CpState.B, 0), 0.4)
    assert not h.contactors_closed and h.line("cp_ev_ohm") == EV_LOAD_OHM[CpState.B]
    assert plant.snapshot().stage == "real vehicle: power_delivery_stop"


def test_ccs_bms_role_pilot_and_output_follow_0x500_and_0x503() -> None:
    h = Harness()
    plant = peer_ccs.CcsRealCharger(h, CCS)
    plant.start(0.0)
    assert h.line("cp_mode") == CpMode.NORMAL and h.line("cp_duty") == NO_PWM
    plant.receive(frame("ccs", "EvseStatus", 0.1, EvseStage=2, CpState=CpState.B, CpDuty=5.0,
                        PpResistance=1500, EvseAliveCounter=1), 0.1)  # fmt: skip
    assert h.line("cp_duty") == 5.0 and h.line("pp_ohm") == 1500 and h.line("cp_state") == CpState.B
    plant.receive(
        frame("ccs", "EvsePresentValues", 0.2, EvsePresentVoltage=390.0, EvsePresentCurrent=80.0), 0.2
    )
    assert (h.output_voltage, h.output_current) == (390.0, 80.0)
    plant.receive(frame("ccs", "EvseStatus", 0.3, CpState=CpState.F, CpDuty=102.3, PpResistance=4094), 0.3)
    assert h.line("cp_mode") == CpMode.FAULT and h.line("cp_duty") == NO_PWM and h.line("pp_ohm") == math.inf
    assert plant.next_deadline() == pytest.approx(0.3 + peer_ccs.CHARGER_SILENCE_S)
    plant.on_timer(0.3 + peer_ccs.CHARGER_SILENCE_S)  # the charger went quiet: no output
    assert h.output_current == 0.0 and plant.next_deadline() is None
    assert "finished" in plant.snapshot().stage


# ---- both roles against each other, simulated time -----------------------------------------------
def test_two_roles_complete_a_session_in_simulated_time(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, FAST_CHADEMO))
    charger, vehicle, _, _ = run_pair(sc, sc)
    assert charger.passed and charger.outcome == "completed" and charger.reason == "vehicle_stop"
    assert vehicle.passed and vehicle.outcome == "completed" and vehicle.reason == "target_soc"
    stages = [e.stage for e in charger.timeline]
    assert stages == [
        "wake_up",
        "negotiation",
        "insulation_test",
        "contactors",
        "precharge",
        "charging",
        "stopping",
        "welding_check",
        "shutdown",
        "done",
    ]
    assert charger.charger_faults == []  # no welding-check timeout, no discharge fault
    assert vehicle.soc_end >= 80.0 and charger.energy_kwh > 0


@pytest.mark.parametrize(
    ("name", "stage", "reason"),
    [
        ("chademo_no_permission", "negotiation", "no_permission"),
        ("chademo_insulation_fault", "insulation_test", "insulation_fault"),
        ("chademo_basic", "charging", "vehicle_stop"),
    ],
)
def test_roles_reach_the_same_charger_verdict_as_run(
    name: str, stage: str, reason: str, tmp_path: Path
) -> None:
    text = (SC / f"{name}.yaml").read_text().replace("soc: 20\n", "soc: 79.9\n")
    sc = load_scenario(write(tmp_path, text))
    charger, _, _, _ = run_pair(sc, sc)
    assert (charger.stage, charger.reason) == (stage, reason) and charger.passed


WALKS = {
    "gbt": (
        ["handshake", "insulation_test", "recognition", "configuration", "precharge", "contactors",
         "charging", "stopping", "statistics", "shutdown", "done"],
        ["handshake", "recognition", "configuration", "ready", "charging", "stopping", "statistics", "done"],
    ),
    "ccs": (
        ["plugged_in", "cp_b_pwm", "session_setup", "service_discovery", "authorization",
         "charge_parameter_discovery", "cp_state_c", "cable_check", "precharge", "power_delivery_start",
         "current_demand", "power_delivery_stop", "welding_detection", "session_stop", "unlock", "done"],
        ["link_setup", "session_setup", "service_discovery", "authorization", "charge_parameter_discovery",
         "cable_check", "precharge", "power_delivery_start", "current_demand", "power_delivery_stop",
         "welding_detection", "session_stop", "done"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("protocol", ["gbt", "ccs"])
def test_gbt_and_ccs_roles_complete_a_session_in_simulated_time(protocol: str, tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, FAST[protocol]))
    charger, vehicle, a, b = run_pair(sc, sc)
    assert charger.passed and charger.outcome == "completed", charger.mismatches
    assert vehicle.passed and vehicle.outcome == "completed" and vehicle.reason == "target_soc"
    assert charger.reason == {"gbt": "bms_soc_target", "ccs": "vehicle_stop"}[protocol]
    assert [e.stage for e in charger.timeline] == WALKS[protocol][0]
    assert [e.stage for e in vehicle.timeline] == WALKS[protocol][1]
    assert charger.charger_faults == [] and charger.energy_kwh > 0 and vehicle.soc_end >= 80.0
    assert 79.9 < charger.soc_start <= charger.soc_end  # the SOC the real BMS reports (BCS / EvSoc)
    assert a.done and b.done and not a.harness.contactors_closed and not b.harness.contactors_closed


@pytest.mark.parametrize(
    "name",
    [
        "gbt_bro_not_ready",
        "gbt_incompatible",
        "gbt_no_brm",
        "gbt_cell_over_voltage",
        "gbt_pause_resume",
        "ccs_cp_state_b",
        "ccs_ev_error",
        "ccs_isolation_fault",
        "ccs_pause_resume",
        "ccs_pp_invalid",
        "ccs_precharge_timeout",
    ],
)
def test_gbt_and_ccs_roles_reach_the_same_verdict_as_run(name: str) -> None:
    """Each shipped stop path (the scenario's expect is what ``run`` gives): the same with the two roles."""
    sc = load_scenario(SC / f"{name}.yaml")
    charger, vehicle, _, _ = run_pair(sc, sc, until=sc.time_limit)
    assert charger.passed, charger.mismatches
    assert vehicle.outcome == sc.expect.outcome and vehicle.passed


@pytest.mark.parametrize("protocol", ["chademo", "gbt", "ccs"])
@pytest.mark.parametrize("role", [Role.CHARGER, Role.VEHICLE])
def test_ctrl_c_in_either_role_runs_the_stop_path(protocol: str, role: Role, tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, LONG[protocol]))
    charger, vehicle, a, b = run_pair(sc, sc, interrupt=(role, 20.0))
    assert a.done and b.done and 20.0 < charger.duration < 30.0 and 20.0 < vehicle.duration < 30.0
    assert charger.stage in ("charging", "current_demand") and vehicle.outcome == "stopped"
    if role is Role.CHARGER:  # the charger's stop sequence; the vehicle follows it
        assert (charger.outcome, charger.reason, charger.origin) == ("stopped", "interrupted", "operator")
    else:  # the vehicle ends charging: a normal vehicle stop for the charger
        assert charger.outcome == "completed" and charger.origin == "vehicle"
        assert vehicle.reason == "interrupted" and "Ctrl-C" in vehicle.cause


def test_role_refuses_scenarios_with_faults() -> None:
    with pytest.raises(ScenarioError, match="charger-sim run"):
        run_pair(load_scenario(SC / "chademo_can_loss.yaml"), load_scenario(SC / "chademo_can_loss.yaml"))


# ---- both roles on python-can's virtual bus, real time ------------------------------------------------
def test_two_roles_on_the_virtual_bus_in_real_time(tmp_path: Path) -> None:
    """Every protocol at once (six real-time sessions, three virtual channels): ~13 s of wall time."""
    results: dict[tuple[str, Role], object] = {}
    scenarios = {p: load_scenario(write(tmp_path, FAST[p], f"{p}.yaml")) for p in CYCLIC}

    def play(protocol: str, role: Role) -> None:
        log = tmp_path / f"{protocol}-{role.value}.asc"
        channel = f"roles-{protocol}-{id(tmp_path)}"
        try:
            results[(protocol, role)] = run_role(
                scenarios[protocol], role, interface="virtual", channel=channel, log_path=log
            )
        except BaseException as err:  # reported by the assertions below
            results[(protocol, role)] = err

    pairs = [(p, r) for p in CYCLIC for r in (Role.VEHICLE, Role.CHARGER)]
    threads = [threading.Thread(target=play, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    for protocol, role in pairs:
        got = results[(protocol, role)]
        assert isinstance(got, tuple), (protocol, role, got)
        result, interrupted = got
        assert result.passed and result.outcome == "completed" and not interrupted, result.mismatches
        vehicle_id, vehicle_ms, charger_id, charger_ms = CYCLIC[protocol]
        rows = {(c.frame_id, c.direction): c.mean_ms for c in result.cadence}
        own, peer_id = (charger_id, vehicle_id) if role is Role.CHARGER else (vehicle_id, charger_id)
        periods = {charger_id: charger_ms, vehicle_id: vehicle_ms}
        for key in ((own, "sent"), (peer_id, "received")):  # mean period: loose (one stall moves
            # the mean of ~35 GB/T frames by 5 %), it catches a wrong period
            assert 0.85 * periods[key[0]] < rows[key] < 1.15 * periods[key[0]], (protocol, role, rows)
        msgs = read_log(tmp_path / f"{protocol}-{role.value}.asc")
        assert LOGGED[protocol] <= {m.arbitration_id for m in msgs}, (protocol, role)
        assert any(m.is_rx for m in msgs) and any(not m.is_rx for m in msgs)
        assert_stop_sequence_of(protocol, msgs)


# ---- CLI: files, python-can configuration ------------------------------------------------------------
def test_role_loads_a_bare_charger_or_vehicle_section(tmp_path: Path) -> None:
    c = load_role_scenario(str(write(tmp_path, "max_current: 100\n", "c.yaml")), Role.CHARGER, None)
    assert c.protocol == "chademo" and c.charger.max_current == 100
    v = load_role_scenario(str(write(tmp_path, "soc: 55\ntarget_soc: 70\n", "v.yaml")), Role.VEHICLE, None)
    assert v.vehicle.soc == 55 and v.vehicle.behaviour.target_soc == 70
    shipped = load_role_scenario("chademo_basic", Role.VEHICLE, "chademo")
    assert shipped.vehicle.soc == 20
    with pytest.raises(ScenarioError, match="max_current"):
        load_role_scenario(str(write(tmp_path, "max_current: 900\n", "bad.yaml")), Role.CHARGER, None)


def test_role_without_interface_or_python_can_config_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("CAN_INTERFACE", "CAN_CHANNEL", "CAN_BITRATE", "CAN_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    code, out = cli("charger", "--no-timeline")
    assert code == ExitCode.USAGE
    assert "no CAN interface given" in out and "CAN_INTERFACE" in out and len(out.strip().splitlines()) == 1


def test_role_uses_python_can_environment(
    fake_interfaces: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_interfaces({"pcan": "RecordingBus"})  # type: ignore[operator]
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("CAN_INTERFACE", "pcan")
    monkeypatch.setenv("CAN_CHANNEL", "PCAN_USBBUS2")
    code, out = cli("bms", "--no-timeline")
    assert code == ExitCode.BUS and "adapter unplugged" in out  # the fake adapter's only trick
    opened = RecordingBus.opened[-1]
    assert opened["channel"] == "PCAN_USBBUS2" and opened["bitrate"] == 500_000
    monkeypatch.setenv("CAN_BITRATE", "250000")
    code, out = cli("bms", "--no-timeline")
    assert code == ExitCode.USAGE and "python-can configuration: bitrate 250000 contradicts" in out


def test_role_uses_a_python_can_config_file(
    fake_interfaces: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_interfaces({"kvaser": "RecordingBus"})  # type: ignore[operator]
    for var in ("CAN_INTERFACE", "CAN_CHANNEL", "CAN_BITRATE", "CAN_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".canrc").write_text("[default]\ninterface = kvaser\nchannel = 1\n")
    code, _ = cli("charger", "--no-timeline")
    assert code == ExitCode.BUS and RecordingBus.opened[-1]["channel"] == 1
