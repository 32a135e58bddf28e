"""The simulated GB/T BMS against a scripted charger on an explicit clock: what it sends (from the
pack), its own timeouts (BEM) and the real-world charger deviations it tolerates (§10 of the sheet).
"""

from __future__ import annotations

import dataclasses

import pytest

from charger_sim.bms.battery import Battery, PackSpec
from charger_sim.codec import Value
from charger_sim.frames import Frame
from charger_sim.plant.harness import Harness
from charger_sim.protocols.gbt import BMS_ADDRESS, CHARGER_ADDRESS, TP_PGNS
from charger_sim.protocols.gbt.bms import GbtBms, VStage
from charger_sim.protocols.gbt.config import GbtBmsConfig
from charger_sim.protocols.gbt.messages import TP_MESSAGES
from charger_sim.protocols.gbt.timing import limit
from charger_sim.protocols.gbt.transport import PGN_TP_CM, MessageReceived, TransportEndpoint, split_id
from tests.gbt_helpers import CODEC, two_bit

EPS = 1e-9
PACK = PackSpec(chemistry="lfp", series=114, parallel=1, cell_capacity_ah=152.0, max_charge_current_a=250.0)


class BmsBench:
    """A GbtBms core and a scripted charger: single frames by hand, TP answered by a real endpoint."""

    def __init__(self, config: GbtBmsConfig | None = None, soc: float = 40.0) -> None:
        self.harness = Harness()
        self.battery = Battery(PACK, soc=soc, seed=1)
        self.bms = GbtBms(config or GbtBmsConfig(), self.battery, self.harness, CODEC)
        self.tp = TransportEndpoint(CHARGER_ADDRESS, accept_pgns=TP_PGNS)
        self.now = 0.0
        self.sent: list[Frame] = []  # BMS -> charger
        self.messages: list[tuple[float, str, bytes]] = []  # reassembled TP payloads
        self.schedule: dict[str, tuple[float, float, Frame | bytes]] = {}

    def start(self) -> None:
        self.bms.start(0.0)
        self.harness.set("k3k4", True)

    def charger_sends(self, name: str, data: bytes | None = None, **values: Value) -> None:
        frame = (
            Frame(CODEC.message(name).frame_id, data, True, self.now)
            if data is not None
            else CODEC.message(name).frame(values, self.now)
        )
        self._to_bms([frame])

    def every(self, name: str, period: float, data: bytes | None = None, **values: Value) -> None:
        frame = data if data is not None else CODEC.message(name).encode(values)
        self.schedule[name] = (period, self.now, frame)

    def quiet(self, *names: str) -> None:
        for n in names:
            self.schedule.pop(n, None)

    def _to_bms(self, frames: list[Frame]) -> None:
        for f in frames:
            self._from_bms(self.bms.receive(f, self.now))

    def _from_bms(self, frames: list[Frame]) -> None:
        for f in frames:
            self.sent.append(f)
            if split_id(f.arbitration_id)[1] in (PGN_TP_CM, 0xEB00):
                self._to_bms(self.tp.receive(f, self.now))
                for e in self.tp.drain_events():
                    if isinstance(e, MessageReceived):
                        self.messages.append((self.now, TP_MESSAGES[e.pgn], e.payload))

    def step_to(self, t: float) -> None:
        while True:
            times = [self.bms.next_deadline()] + [at for _, at, _ in self.schedule.values()]
            nxt = min((x for x in times if x is not None), default=None)
            if nxt is None or nxt > t + EPS:
                break
            self.now = max(self.now, nxt)
            for name, (period, at, data) in list(self.schedule.items()):
                if at <= self.now + EPS:
                    self.schedule[name] = (period, at + period, data)
                    payload = data if isinstance(data, bytes) else data.data
                    self.charger_sends(name, payload)
            d = self.bms.next_deadline()
            if d is not None and d <= self.now + EPS:
                self._from_bms(self.bms.on_timer(self.now))
        self.now = max(self.now, t)

    def frames(self, name: str) -> list[Frame]:
        can_id = CODEC.message(name).frame_id
        return [f for f in self.sent if f.arbitration_id == can_id]

    def data(self, name: str) -> list[str]:
        return [f.data.hex(" ").upper() for f in self.frames(name)]

    def payloads(self, name: str) -> list[bytes]:
        return [p for _, n, p in self.messages if n == name]

    # ---- scripted charger path ---------------------------------------------------------------
    def to_configuration(self) -> None:
        self.start()
        self.every("CHM", 0.25, ProtocolVersionMinor=1, ProtocolVersionMajor=1)
        self.step_to(1.0)
        self.quiet("CHM")
        crm = {
            "ChargerNumber": 1,
            "ChargerAreaCode1": 0xFF,
            "ChargerAreaCode2": 0xFF,
            "ChargerAreaCode3": 0xFF,
        }
        self.every("CRM", 0.25, RecognitionResult=0x00, **crm)
        self.step_to(1.5)
        self.every("CRM", 0.25, RecognitionResult=0xAA, **crm)
        self.step_to(1.8)
        self.quiet("CRM")

    def to_charging(self, cml: bytes = bytes.fromhex("4C1DDC05DC05A00F"), cts: bytes = b"\xff" * 7) -> None:
        self.to_configuration()
        self.every("CTS", 0.5, data=cts)
        self.every("CML", 0.25, data=cml)
        self.step_to(self.now + 2.0)
        assert self.bms.stage is VStage.READY, self.bms.stage
        self.quiet("CTS", "CML")
        self.harness.set("k1k2", True)
        self.every("CRO", 0.25, ChargerReady=0xAA)
        self.step_to(self.now + 0.1)
        self.quiet("CRO")


def ccs(volts: float = 378.0, amps: float = 20.0, permit: int = 1) -> bytes:
    return CODEC.message("CCS").encode(
        {"OutputVoltage": volts, "OutputCurrent": -amps, "ChargeTime": 0, "ChargePermit": permit}
    )


# --- what the BMS sends -----------------------------------------------------------------------------


def test_bhm_then_brm_identity_from_the_pack() -> None:
    bench = BmsBench()
    bench.to_configuration()
    assert bench.frames("BHM")[0].timestamp == pytest.approx(bench.bms.config.wake_delay)  # aux on at 0 s
    brm = bench.payloads("BRM")[0]  # repeated every 250 ms until CRM 0xAA
    assert len(brm) == 49
    decoded = CODEC.message("BRM").decode(brm)
    assert CODEC.message("BRM").describe("BatteryType", decoded["BatteryType"]) == "LFP"
    assert decoded["RatedCapacity"] == pytest.approx(152.0)
    assert decoded["RatedTotalVoltage"] == pytest.approx(114 * 3.2, abs=0.05)
    assert bytes(int(decoded[f"Vin{i + 1:02d}"]) for i in range(17)) == b"LCSIMGBT000000001"
    assert brm[23] == 0xFF and brm[46:49] == b"\xff\xff\xff"  # reserved bytes sent as 1s
    rts = [f.data.hex(" ").upper() for f in bench.sent if f.arbitration_id == 0x1CEC56F4]
    assert rts[0] == "10 31 00 07 FF 00 02 00"  # capture A's RTS for a 49-byte BRM


def test_brm_of_41_bytes_when_configured() -> None:
    bench = BmsBench(GbtBmsConfig(brm_length=41))
    bench.to_configuration()
    brm = bench.payloads("BRM")[0]  # repeated every 250 ms until CRM 0xAA
    assert len(brm) == 41
    rts = [f.data.hex(" ").upper() for f in bench.sent if f.arbitration_id == 0x1CEC56F4]
    assert rts[0] == "10 29 00 06 FF 00 02 00"


def test_bcp_from_the_pack() -> None:
    bench = BmsBench(soc=40.0)
    bench.to_configuration()
    bcp = CODEC.message("BCP").decode(bench.payloads("BCP")[0])
    assert bcp["MaxCellVoltage"] == pytest.approx(3.62)  # LFP cutoff 3.60 + 0.02
    assert bcp["MaxTotalChargeVoltage"] == pytest.approx(114 * 3.62, abs=0.05)
    assert bcp["MaxChargeCurrent"] == pytest.approx(-250.0)
    assert bcp["SOC"] == pytest.approx(40.0, abs=0.1)
    assert bcp["PresentBatteryVoltage"] == pytest.approx(bench.battery.ocv(), abs=0.06)
    assert bcp["NominalEnergy"] == pytest.approx(PACK.capacity_kwh, abs=0.06)


def test_bro_00_then_contactors_then_bro_aa_after_the_delay() -> None:
    bench = BmsBench()
    bench.to_configuration()
    bench.every("CML", 0.25, data=bytes.fromhex("4C1DDC05DC05A00F"))
    t0 = bench.now
    bench.step_to(t0 + 2.0)
    bro = [(f.timestamp - t0, f.data[0]) for f in bench.frames("BRO")]
    first_aa = next(t for t, v in bro if v == 0xAA)
    assert first_aa == pytest.approx(bench.bms.config.bro_delay, abs=1e-6)
    assert {v for t, v in bro if t < first_aa} == {0x00}
    assert bench.harness.contactors_closed


# --- receivers tolerate real deviations (§10) ------------------------------------------------------


@pytest.mark.parametrize(
    "cts", [b"\xff" * 7, bytes.fromhex("1A061414150000"), bytes.fromhex("00000809071514")]
)
def test_cts_all_ones_or_not_bcd_is_accepted(cts: bytes) -> None:
    bench = BmsBench()
    bench.to_charging(cts=cts)
    assert bench.bms.stage is VStage.CHARGING


@pytest.mark.parametrize("length", [7, 8])
def test_ccs_of_7_or_8_bytes_feeds_the_ccs_watchdog(length: int) -> None:
    bench = BmsBench()
    bench.to_charging()
    bench.every("CCS", 0.05, data=ccs()[:length])
    bench.step_to(bench.now + 3.0)
    assert bench.bms.stage is VStage.CHARGING
    assert not bench.frames("BEM")
    assert bench.bms.ccs_permit == 1


def test_untrusted_ccs_permit_keeps_the_previous_state() -> None:
    bench = BmsBench()
    bench.to_charging()
    bench.every("CCS", 0.05, data=ccs(permit=0))
    bench.step_to(bench.now + 0.2)
    assert bench.bms.ccs_permit == 0
    bench.every("CCS", 0.05, data=ccs(permit=2))
    bench.step_to(bench.now + 0.2)
    assert bench.bms.ccs_permit == 0


# --- the BMS's own timeouts (BEM) ----------------------------------------------------------------


def test_ccs_missing_for_1_s_raises_bem_ccs() -> None:
    bench = BmsBench()
    bench.to_charging()
    first_bcl = bench.frames("BCL")[0].timestamp
    bench.step_to(first_bcl + limit("bms_ccs") - 0.005)
    assert not bench.frames("BEM")
    bench.step_to(first_bcl + limit("bms_ccs") + 0.005)
    assert bench.bms.stage is VStage.ERROR
    assert bench.data("BEM")[0] == "F0 F0 F1 FC"


def test_cts_cml_missing_raises_bem_like_capture_c() -> None:
    bench = BmsBench()
    bench.to_configuration()
    bench.step_to(bench.now + limit("bms_cts_cml") + 0.3)
    assert bench.data("BEM")[0] == "F0 F1 F0 FC"  # capture C


def test_cem_stops_the_bms_and_a_new_crm_restarts_it() -> None:
    bench = BmsBench()
    bench.to_charging()
    bench.every("CCS", 0.05, data=ccs())
    bench.step_to(bench.now + 1.0)
    bench.quiet("CCS")
    bench.charger_sends("CEM", **two_bit("CEM", TimeoutBcl=1))
    assert bench.bms.stage is VStage.ERROR
    bench.step_to(bench.now + 0.3)
    assert not bench.harness.contactors_closed  # no current: opened at once
    crm = {"ChargerNumber": 1, "ChargerAreaCode1": 0xFF, "ChargerAreaCode2": 0xFF, "ChargerAreaCode3": 0xFF}
    bench.charger_sends("CRM", RecognitionResult=0x00, **crm)
    assert bench.bms.stage is VStage.RECOGNITION


def test_cst_is_answered_with_bst_charger_stopped_then_bsd() -> None:
    bench = BmsBench(GbtBmsConfig(reserved_bits_zero=True))
    bench.to_charging()
    bench.every("CCS", 0.05, data=ccs())
    bench.step_to(bench.now + 1.0)
    assert bench.data("BSM")[0][-2:] in ("10", "11")  # byte 7 reserved bits as 0 (capture A quirk)
    bench.quiet("CCS")
    bench.harness.set("k1k2", False)
    bench.charger_sends("CST", data=bytes.fromhex("0400F0F0"))
    bench.step_to(bench.now + 0.5)
    assert set(bench.data("BST")) == {"40 00 00 00"}  # capture A, with the quirk
    assert len(bench.frames("BST")) == pytest.approx(bench.bms.config.bst_hold / 0.01, abs=1)
    assert bench.frames("BSD") and bench.bms.stage is VStage.STATISTICS


def test_aux_power_off_puts_the_bms_to_sleep_from_any_stage() -> None:
    bench = BmsBench(GbtBmsConfig(answer_brm=False))
    bench.to_configuration()  # no BRM: the BMS sends nothing at all in recognition
    assert bench.bms.stage is VStage.RECOGNITION and not bench.payloads("BRM")
    bench.harness.set("k3k4", False)
    bench.step_to(bench.now + 0.2)
    assert bench.bms.stage is VStage.DONE and bench.bms.finished


def test_config_rejects_bad_values() -> None:
    for bad in ({"brm_length": 45}, {"charge_mode": "boost"}, {"vin": "short"}, {"tp_window": 0}):
        with pytest.raises(ValueError):
            dataclasses.replace(GbtBmsConfig(), **bad)  # type: ignore[arg-type]
    assert BMS_ADDRESS == 0xF4
