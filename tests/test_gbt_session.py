"""Full GB/T 27930 sessions: charger core <-> simulated BMS in simulated time, and the frames on the
wire compared with the field logs (``../shared/field-logs/gbt27930``, skipped when absent).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from charger_sim.cli.main import main
from charger_sim.codec import Value, load_dbc
from charger_sim.drivers.simulated import SimulatedDriver
from charger_sim.errors import ExitCode
from charger_sim.frames import Frame
from charger_sim.plant.harness import Harness
from charger_sim.protocols.base import Role
from charger_sim.protocols.gbt.charger import GbtCharger
from charger_sim.protocols.gbt.config import GbtChargerConfig
from charger_sim.protocols.gbt.states import Stage
from charger_sim.protocols.gbt.timing import limit
from charger_sim.protocols.gbt.transport import PGN_TP_CM, split_id
from charger_sim.resources import scenarios_dir
from charger_sim.scenario.loader import load_scenario, parse_scenario
from charger_sim.scenario.runner import run_simulated
from charger_sim.session.session import Session

CODEC = load_dbc("gbt27930")
SC = scenarios_dir()
FIELD_LOGS = Path(__file__).resolve().parents[1].parent / "shared" / "field-logs" / "gbt27930"
CAPTURE_A = FIELD_LOGS / "sut4nd0_candump-2023-12-25_220841.log"
LFP = {
    "chemistry": "lfp",
    "series": 114,
    "parallel": 1,
    "cell_capacity_ah": 152,
    "cell_resistance_ohm": 0.0004,
    "max_charge_current_a": 250,
    "thermal_mass_j_per_k": 400000,
    "cooling_w_per_k": 60,
}
BASIC = {
    "protocol": "gbt",
    "seed": 7,
    "vehicle": {"pack": LFP, "soc": 60, "target_soc": 70},
    "charger": {"max_current": 250, "max_power": 75000},
    "expect": {"outcome": "completed"},
}
ALL_STAGES = [
    "handshake",
    "insulation_test",
    "recognition",
    "configuration",
    "precharge",
    "contactors",
    "charging",
    "stopping",
    "statistics",
    "shutdown",
    "done",
]


@dataclass
class Run:
    session: Session
    end: float
    frames: list[tuple[Role, Frame]]

    def named(self, name: str) -> list[Frame]:
        can_id = CODEC.message(name).frame_id
        return [f for _, f in self.frames if f.arbitration_id == can_id]

    def data(self, name: str) -> list[str]:
        return [f.data.hex(" ").upper() for f in self.named(name)]

    def decoded(self, name: str) -> list[tuple[float, dict[str, Value]]]:
        codec = CODEC.message(name)
        return [(f.timestamp, codec.decode(f.data, allow_truncated=True)) for f in self.named(name)]

    def stages(self, role: str = "charger") -> list[str]:
        out: list[str] = []
        for e in self.session.timeline:
            if e.role == role and (not out or out[-1] != e.stage):
                out.append(e.stage)
        return out

    def tp_cm(self, sender: Role) -> list[str]:
        return [
            f.data.hex(" ").upper()
            for role, f in self.frames
            if role is sender and split_id(f.arbitration_id)[1] == PGN_TP_CM
        ]


def run(spec: dict[str, object], until: float = 7200.0) -> Run:
    session = Session(parse_scenario(spec, "test.yaml"))
    frames: list[tuple[Role, Frame]] = []
    session.on_frame.append(lambda f, role: frames.append((role, f)))
    end = SimulatedDriver(session).run(until)
    return Run(session, end, frames)


def scenario(name: str) -> Run:
    session = Session(load_scenario(SC / f"{name}.yaml"))
    frames: list[tuple[Role, Frame]] = []
    session.on_frame.append(lambda f, role: frames.append((role, f)))
    end = SimulatedDriver(session).run(session.scenario.time_limit)
    return Run(session, end, frames)


def gaps(frames: list[Frame]) -> set[float]:
    return {round(b.timestamp - a.timestamp, 6) for a, b in itertools.pairwise(frames)}


@pytest.fixture(scope="module")
def basic() -> Run:
    return run(BASIC)


# --- a complete session -----------------------------------------------------------------------------


def test_completes_all_five_phases(basic: Run) -> None:
    res = basic.session.result(basic.end)
    assert res.outcome == "completed" and res.reason == "bms_soc_target" and res.passed
    assert basic.stages() == ALL_STAGES
    assert basic.stages("vehicle") == [
        "handshake",
        "recognition",
        "configuration",
        "ready",
        "charging",
        "stopping",
        "statistics",
        "done",
    ]
    assert 70.0 <= res.soc_end < 70.5
    assert res.energy_kwh == pytest.approx(basic.session.battery.energy_in_wh / 1000, rel=0.02)
    assert res.frames_sent > 0 and res.frames_received > res.frames_sent  # BMS: TP + BCL at 50 ms


def test_every_message_in_session_order(basic: Run) -> None:
    order: list[str] = []
    names = {m.frame_id: m.name for m in CODEC.messages}
    for _, f in basic.frames:
        name = names.get(f.arbitration_id, "TP")
        if name not in order:
            order.append(name)
    handshake = ["CHM", "BHM", "CRM", "TP", "CTS", "CML", "BRO", "CRO"]
    assert order == [*handshake, "BCL", "BSM", "CCS", "BST", "CST", "BSD", "CSD"]


def test_ccs_every_50_ms_following_the_cc_demand(basic: Run) -> None:
    ccs = basic.named("CCS")
    assert gaps(ccs) == {limit("ccs_period")}
    assert gaps(basic.named("BCL")) == {limit("bms_bcl_period")}
    demand, checked, at_demand = 0.0, 0, 0
    slew_step = GbtChargerConfig().current_slew_a_per_s * limit("ccs_period")
    bcl, ccs_codec = CODEC.message("BCL"), CODEC.message("CCS")
    for _, f in basic.frames:
        if f.arbitration_id == bcl.frame_id:
            values = bcl.decode(f.data)
            assert values["ChargeMode"] == 2
            demand = -float(values["CurrentDemand"])
        elif f.arbitration_id == ccs_codec.frame_id:
            state = ccs_codec.decode(f.data)
            out, volts = -float(state["OutputCurrent"]), float(state["OutputVoltage"])
            assert state["ChargePermit"] == 1
            assert out <= demand + slew_step + 0.1  # never above the demand (one slew step to follow)
            target = min(demand, 75000.0 / volts)  # the demand, within the charger's power
            checked += 1
            at_demand += abs(out - target) < 1.0
    assert checked > 1000 and at_demand > 0.8 * checked


def test_cv_session_holds_the_voltage_demand() -> None:
    spec = {
        "protocol": "gbt",
        "seed": 3,
        "vehicle": {"soc": 60, "target_soc": 63, "charge_mode": "cv", "cv_voltage": 384.0},
        "charger": {"max_current": 125},
        "expect": {"outcome": "completed"},
    }
    r = run(spec)
    assert r.session.result(r.end).outcome == "completed"
    ccs = r.decoded("CCS")
    t0 = ccs[0][0]
    settled = [(t, v) for t, v in ccs if t > t0 + 20.0 and v["ChargePermit"] == 1]
    volts = [float(v["OutputVoltage"]) for _, v in settled]
    amps = [-float(v["OutputCurrent"]) for _, v in settled]
    assert settled and max(abs(v - 384.0) for v in volts) < 1.0
    assert max(amps) < 125.0 and amps[-1] < amps[0]  # the current tapers as the battery fills
    assert {v["ChargeMode"] for _, v in r.decoded("BCL")} == {1}


def test_end_phase_bst_cst_every_10_ms_then_bsd_csd(basic: Run) -> None:
    assert set(basic.data("BST")) == {"01 00 00 F0"}  # SOC target reached, reserved bits 1
    assert set(basic.data("CST")) == {"40 00 F0 F0"}  # answering the BST
    assert gaps(basic.named("BST")) == {limit("bms_bst_period")}
    assert gaps(basic.named("CST")) == {limit("cst_period")}
    assert basic.named("CST")[0].timestamp == basic.named("BST")[0].timestamp
    assert gaps(basic.named("BSD")) == {limit("bms_bsd_period")}
    assert gaps(basic.named("CSD")) == {limit("csd_period")}
    assert len(basic.named("CSD")) == round(limit("csd_hold") / limit("csd_period"))
    stop = basic.named("CST")[0].timestamp
    low = next(s for s in basic.session.samples if s.time >= stop + limit("stop_current"))
    assert low.present_current <= 5.0
    assert basic.frames[-1][1].arbitration_id != CODEC.message("CST").frame_id


def test_transport_sessions_look_like_the_field_logs(basic: Run) -> None:
    bms, charger = basic.tp_cm(Role.VEHICLE), basic.tp_cm(Role.CHARGER)
    assert bms[:2] == ["10 31 00 07 FF 00 02 00", "10 0D 00 02 FF 00 06 00"]  # BRM 49 B, BCP 13 B
    assert charger[:4] == [
        "11 07 01 FF FF 00 02 00",
        "13 31 00 07 FF 00 02 00",
        "11 02 01 FF FF 00 06 00",
        "13 0D 00 02 FF 00 06 00",
    ]
    assert set(bms[2:]) == {"10 09 00 02 FF 00 11 00"}  # BCS every 250 ms
    assert set(charger[4:]) == {"11 02 01 FF FF 00 11 00", "13 09 00 02 FF 00 11 00"}
    rts_times = [f.timestamp for r, f in basic.frames if r is Role.VEHICLE and f.data[:1] == b"\x10"]
    assert gaps([Frame(0, b"", False, t) for t in rts_times[2:]]) == {limit("bms_bcs_period")}
    if CAPTURE_A.is_file():  # the same TP.CM frames as capture A
        log = list(read_capture(CAPTURE_A))
        real = {d.hex(" ").upper() for i, d in log if i in (0x1CEC56F4, 0x1CECF456)}
        assert real == set(bms) | set(charger)


def test_deterministic_frames() -> None:
    spec = {**BASIC, "vehicle": {"pack": LFP, "soc": 70, "target_soc": 71}}
    a, b = run(spec), run(spec)
    assert [(r, f.timestamp, f.arbitration_id, f.data) for r, f in a.frames] == [
        (r, f.timestamp, f.arbitration_id, f.data) for r, f in b.frames
    ]


def test_frames_decode_with_an_independent_dbc(basic: Run) -> None:
    """The frames on the bus decode to the same values with a GB/T DBC written independently of ours
    (straight from the sheet's byte tables: byte n = start (n-1)*8, current offset -400 A)."""
    import cantools

    independent = cantools.database.load_string(
        """VERSION ""
BS_:
BU_: C B
BO_ 2551379030 ccs: 8 C
 SG_ u : 0|16@1+ (0.1,0) [0|6553.5] "V" B
 SG_ i : 16|16@1+ (0.1,-400) [-400|6153.5] "A" B
 SG_ minutes : 32|16@1+ (1,0) [0|65535] "" B
 SG_ permit : 48|2@1+ (1,0) [0|3] "" B
BO_ 2551207668 bcl: 5 B
 SG_ u : 0|16@1+ (0.1,0) [0|6553.5] "V" C
 SG_ i : 16|16@1+ (0.1,-400) [-400|6153.5] "A" C
 SG_ mode : 32|8@1+ (1,0) [0|255] "" C
BO_ 2550723670 cml: 8 C
 SG_ umax : 0|16@1+ (0.1,0) [0|6553.5] "V" B
 SG_ umin : 16|16@1+ (0.1,0) [0|6553.5] "V" B
 SG_ imax : 32|16@1+ (0.1,-400) [-400|6153.5] "A" B
 SG_ imin : 48|16@1+ (0.1,-400) [-400|6153.5] "A" B
BO_ 2551404276 bsm: 7 B
 SG_ tmax : 8|8@1+ (1,-50) [-50|205] "C" C
 SG_ permit : 52|2@1+ (1,0) [0|3] "" C
BO_ 2417685590 cst: 4 C
 SG_ bms_stopped : 6|2@1+ (1,0) [0|3] "" B
 SG_ manual : 2|2@1+ (1,0) [0|3] "" B
""",
        database_format="dbc",
    )
    pairs = (("CCS", "ccs"), ("BCL", "bcl"), ("CML", "cml"), ("BSM", "bsm"), ("CST", "cst"))
    checks = {
        "ccs": {
            "u": "OutputVoltage",
            "i": "OutputCurrent",
            "minutes": "ChargeTime",
            "permit": "ChargePermit",
        },
        "bcl": {"u": "VoltageDemand", "i": "CurrentDemand", "mode": "ChargeMode"},
        "cml": {"umax": "MaxOutputVoltage", "umin": "MinOutputVoltage", "imax": "MaxOutputCurrent"},
        "bsm": {"tmax": "MaxTemperature", "permit": "ChargePermit"},
        "cst": {"bms_stopped": "BmsStopped", "manual": "ManualStop"},
    }
    count = 0
    for ours_name, theirs_name in pairs:
        theirs, codec = independent.get_message_by_name(theirs_name), CODEC.message(ours_name)
        for frame in basic.named(ours_name)[::7]:  # every 7th frame: all kinds, a quicker test
            ours = codec.decode(frame.data, allow_truncated=True)
            decoded = theirs.decode(frame.data, decode_choices=False)
            for their_signal, our_signal in checks[theirs_name].items():
                assert decoded[their_signal] == pytest.approx(ours[our_signal]), (ours_name, frame)
            count += 1
    assert count > 500


# --- the fault scenarios end on their named paths with the right bits ------------------------------


def test_required_gbt_scenarios_exist() -> None:
    names = {p.stem for p in SC.glob("*.yaml")}
    assert {
        "gbt_basic",
        "gbt_no_brm",
        "gbt_incompatible",
        "gbt_bro_not_ready",
        "gbt_bcl_loss",
        "gbt_cell_over_voltage",
        "gbt_pause_resume",
    } <= names


def test_no_brm_scenario_cem_and_three_rehandshakes() -> None:
    r = scenario("gbt_no_brm")
    assert set(r.data("CEM")) == {"FD F0 C0 FC"}  # the sheet's CEM for a BRM timeout
    assert r.stages().count("recognition") == 4 and r.stages().count("error") == 4
    assert not r.tp_cm(Role.VEHICLE)  # the BMS never started a BRM transfer
    assert {d[:2] for d in r.data("CRM")} == {"00"}


def test_incompatible_scenario_cst_bits() -> None:
    r = scenario("gbt_incompatible")
    assert set(r.data("CST")) == {"10 40 F0 F0"}
    assert set(r.data("BST")) == {"40 00 00 F0"}
    assert not r.named("CML") and not r.named("CRO")


def test_bro_not_ready_scenario_cem_bits() -> None:
    r = scenario("gbt_bro_not_ready")
    assert set(r.data("CEM")) == {"FC F4 C0 FC"}
    assert {d for d in r.data("BRO")} == {"00"}
    assert r.stages().count("configuration") == 4


def test_bcl_loss_scenario_cem_bits_and_safe_stop() -> None:
    r = scenario("gbt_bcl_loss")
    assert set(r.data("CEM")) == {"FC F0 C4 FC"}
    first_cem = r.named("CEM")[0].timestamp
    after = [s for s in r.session.samples if s.time >= first_cem + limit("stop_current")]
    assert after and all(s.present_current <= 5.0 for s in after)
    assert r.session.frames_dropped > 0
    assert r.stages().count("charging") == 4


def test_cell_over_voltage_scenario_bst_bits() -> None:
    r = scenario("gbt_cell_over_voltage")
    assert set(r.data("BST")) == {"10 00 00 F0"}  # cell voltage reached (byte 1 bits 5-6)
    assert set(r.data("CST")) == {"40 00 F0 F0"}
    assert r.session.battery.max_cell_voltage(0.0) < 4.25  # stopped before the protection trip


def test_pause_scenario_ccs_permit_and_current() -> None:
    r = scenario("gbt_pause_resume")
    paused = [(t, v) for t, v in r.decoded("CCS") if v["ChargePermit"] == 0]
    assert paused
    t0, t1 = paused[0][0], paused[-1][0]
    assert t1 - t0 == pytest.approx(60.0, abs=0.5)
    assert {v["ChargePermit"] for t, v in r.decoded("BSM") if t0 + 0.3 < t < t1 - 0.3} == {0}
    assert -float(paused[-1][1]["OutputCurrent"]) == 0.0
    assert r.session.result(r.end).outcome == "completed"


def test_dropping_a_multi_packet_message_by_name() -> None:
    spec = {
        **BASIC,
        "faults": [{"type": "drop_message", "message": "BCS", "at": {"stage": "charging", "after": 30}}],
        "expect": {"outcome": "stopped", "reason": "bcs_timeout"},
    }
    r = run(spec, until=600.0)
    res = r.session.result(r.end)
    assert res.passed, res.mismatches
    assert "FC F0 C1 FC" in r.data("CEM")


def test_operator_stop_cst_manual_answered_by_bst() -> None:
    spec = {
        **BASIC,
        "faults": [{"type": "operator_stop", "at": {"stage": "charging", "after": 20}}],
        "expect": {"outcome": "stopped", "reason": "operator_stop"},
    }
    r = run(spec)
    assert r.session.result(r.end).passed
    assert set(r.data("CST")) == {"04 00 F0 F0"} and set(r.data("BST")) == {"40 00 00 F0"}  # capture A


def test_over_python_can_virtual_bus() -> None:
    pytest.importorskip("can")
    res = run_simulated(load_scenario(SC / "gbt_incompatible.yaml"), interface="virtual")
    assert res.passed and res.reason == "battery_incompatible"


def test_cli_prints_the_gbt_timeline() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=200, color_system=None)
    code = main(["run", str(SC / "gbt_incompatible.yaml")], console=console)
    out = buf.getvalue()
    assert code == ExitCode.OK
    assert "Stage timeline" in out and "configuration" in out and "CST 10 40 F0 F0" in out
    assert "step 4: parameter negotiation" in out and "BCP maximum charge voltage" in out


# --- the BMS side of a real capture drives our charger -------------------------------------------------


def read_capture(path: Path) -> Iterator[tuple[int, bytes]]:
    for ts_id in read_timed(path):
        yield ts_id[1], ts_id[2]


def read_timed(path: Path) -> list[tuple[float, int, bytes]]:
    can = pytest.importorskip("can")
    if not path.is_file():
        pytest.skip(f"field log {path} not available")
    with can.CanutilsLogReader(str(path)) as reader:
        return [(m.timestamp, m.arbitration_id, bytes(m.data)) for m in reader if m.is_extended_id]


@pytest.mark.fieldlogs
def test_capture_a_bms_frames_drive_the_charger_to_charging() -> None:
    """Replay the BMS's frames of capture A into our charger, started so that its insulation test
    ends when the real charger's did: BRM and BCP arrive through our transport (our CTS and
    EndOfMsgAck are the real charger's bytes), BRO 0xAA leads to pre-charge, BCL to CCS."""
    log = read_timed(CAPTURE_A)
    t_first = log[0][0]
    bms = [(t - t_first, i, d) for t, i, d in log if i & 0xFF == 0xF4 and (i >> 8) & 0xFF == 0x56]
    harness = Harness()
    charger = GbtCharger(GbtChargerConfig(max_voltage=950.0, min_voltage=38.0), harness, CODEC)
    crm_real = next(t - t_first for t, i, _ in log if i == 0x1801F456)  # 16.50 s after the first frame
    sent: list[Frame] = []
    start = crm_real - 7.6  # our handshake: BHM -> 426.1 V test -> measure -> bleed ~7.6 s
    charger.start(start)
    harness.battery_voltage = 378.2
    now = start
    for t, can_id, data in bms:
        if t < start:
            continue
        while (d := charger.next_deadline()) is not None and d <= t:
            now = d
            sent += charger.on_timer(now)
        now = t
        if can_id == 0x100956F4 and data == b"\xaa":
            harness.contactors_closed = True  # BRO 0xAA: the battery is on the connector
        sent += charger.receive(Frame(can_id, data, True, now), now)
        if charger.stage is Stage.ERROR:
            break
    stages = [e.stage for e in charger.drain_events() if hasattr(e, "stage")]
    for stage in ("recognition", "configuration", "precharge", "contactors", "charging"):
        assert stage in stages
    cm = [f.data.hex(" ").upper() for f in sent if f.arbitration_id == 0x1CECF456]
    assert cm[:4] == [
        "11 07 01 FF FF 00 02 00",
        "13 31 00 07 FF 00 02 00",
        "11 02 01 FF FF 00 06 00",
        "13 0D 00 02 FF 00 06 00",
    ]
    brm = charger.bms["BRM"]
    assert bytes(int(brm[f"Vin{i + 1:02d}"]) for i in range(17)) == b"L1NSPGH98NA196202"
    ccs = [CODEC.message("CCS").decode(f.data) for f in sent if f.arbitration_id == 0x1812F456]
    assert ccs and max(-float(v["OutputCurrent"]) for v in ccs) == pytest.approx(35.8, abs=0.1)


# --- BMS options end to end ---------------------------------------------------------------------


def test_cell_data_bmv_bmt_through_the_transport() -> None:
    r = run({**BASIC, "vehicle": {"pack": LFP, "soc": 60, "target_soc": 61, "cell_data": True}})
    bms = r.tp_cm(Role.VEHICLE)
    assert "10 E4 00 21 FF 00 15 00" in bms  # BMV: 114 cells x 2 bytes = 228 bytes, 33 packets
    assert "10 10 00 03 FF 00 16 00" in bms  # BMT: 16 probes
    assert "13 E4 00 21 FF 00 15 00" in r.tp_cm(Role.CHARGER)  # received completely
    bmv = r.session.charger.bms["BMV"]  # type: ignore[attr-defined]
    assert len([k for k in bmv if k.startswith("CellVoltage")]) == 114
    assert 3.0 < float(bmv["CellVoltage001"]) < 3.7


def test_a_bms_transport_window_smaller_than_the_message_is_honoured() -> None:
    r = run({**BASIC, "vehicle": {"pack": LFP, "soc": 60, "target_soc": 61, "tp_window": 2}})
    assert r.tp_cm(Role.VEHICLE)[0] == "10 31 00 07 02 00 02 00"
    assert r.tp_cm(Role.CHARGER)[:5] == [
        "11 02 01 FF FF 00 02 00",
        "11 02 03 FF FF 00 02 00",
        "11 02 05 FF FF 00 02 00",
        "11 01 07 FF FF 00 02 00",
        "13 31 00 07 FF 00 02 00",
    ]
    assert r.session.result(r.end).outcome == "completed"


def test_a_bms_without_bhm_is_tested_at_the_chargers_maximum() -> None:
    r = run({**BASIC, "vehicle": {"pack": LFP, "soc": 60, "target_soc": 61, "send_bhm": False}})
    assert not r.named("BHM")
    insulation = next(e for e in r.session.timeline if e.stage == "insulation_test")
    assert insulation.time == pytest.approx(limit("bhm")) and "no BHM" in insulation.detail
    passed = next(e for e in r.session.timeline if e.stage == "recognition" and e.role == "charger")
    assert "at 750 V" in passed.detail
    assert r.session.result(r.end).outcome == "completed"
