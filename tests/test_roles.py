"""Single-role sessions (``charger`` / ``bms``): peer plants, the two roles against each other in
simulated time and on python-can's virtual bus in real time, CLI loading and python-can config."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from rich.console import Console

from charger_sim.cli.main import main
from charger_sim.cli.roles import load_role_scenario
from charger_sim.codec import load_dbc
from charger_sim.errors import ExitCode, ScenarioError, UsageError
from charger_sim.frames import Frame
from charger_sim.plant import peer
from charger_sim.plant.harness import Harness
from charger_sim.protocols.base import Role
from charger_sim.resources import scenarios_dir
from charger_sim.scenario.loader import load_scenario
from charger_sim.scenario.runner import run_role
from tests.buses import FAST_CHADEMO, RecordingBus, fake_interfaces, read_log, run_pair, write

__all__ = ["fake_interfaces"]  # the fixture, imported for its use below

SC = scenarios_dir()
CODEC = load_dbc("chademo")


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
    assert peer.supported("chademo", Role.CHARGER) and peer.supported("chademo", Role.VEHICLE)
    with pytest.raises(UsageError, match="not available"):
        peer.build("nope", Role.CHARGER, Harness(), CODEC, None, 0.0)  # type: ignore[arg-type]


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


def test_role_refuses_scenarios_with_faults() -> None:
    with pytest.raises(ScenarioError, match="charger-sim run"):
        run_pair(load_scenario(SC / "chademo_can_loss.yaml"), load_scenario(SC / "chademo_can_loss.yaml"))


# ---- both roles on python-can's virtual bus, real time ------------------------------------------------
def test_two_roles_on_the_virtual_bus_in_real_time(tmp_path: Path) -> None:
    sc = load_scenario(write(tmp_path, FAST_CHADEMO))
    channel = f"roles-{id(tmp_path)}"
    results: dict[Role, object] = {}

    def play(role: Role) -> None:
        try:
            results[role] = run_role(
                sc, role, interface="virtual", channel=channel, log_path=tmp_path / f"{role.value}.asc"
            )
        except BaseException as err:  # reported by the assertions below
            results[role] = err

    threads = [threading.Thread(target=play, args=(r,)) for r in (Role.VEHICLE, Role.CHARGER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    for role in (Role.CHARGER, Role.VEHICLE):
        got = results[role]
        assert isinstance(got, tuple), got
        result, interrupted = got
        assert result.passed and result.outcome == "completed" and not interrupted, result.mismatches
        rows = {(c.frame_id, c.direction) for c in result.cadence}
        if role is Role.CHARGER:
            assert {(0x109, "sent"), (0x102, "received")} <= rows
        else:
            assert {(0x102, "sent"), (0x109, "received")} <= rows
        for c in result.cadence:
            assert 90.0 < c.mean_ms < 110.0, c
    msgs = read_log(tmp_path / "charger.asc")
    assert {0x100, 0x101, 0x102, 0x108, 0x109} <= {m.arbitration_id for m in msgs}
    assert any(m.is_rx for m in msgs) and any(not m.is_rx for m in msgs)


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
