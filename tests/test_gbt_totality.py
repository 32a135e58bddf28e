"""Totality: every BMS input in every charger stage is handled (h2 ``test_state_machines`` style), and
every charger input in every stage of the simulated BMS, against an explicit table.

The charger is brought to each stage it can be in, then fed every BMS message with normal, edge,
untrusted and malformed contents (short frames, wrong PGN in TP, unexpected TP.DT) and run on for a
while.  Nothing may raise (an invalid transition would be a :class:`LocalProtocolError`), and the
stage must stay one of the table's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from charger_sim.bms.battery import Battery, PackSpec
from charger_sim.frames import Frame
from charger_sim.plant.harness import Harness
from charger_sim.protocols.base import SessionEnded
from charger_sim.protocols.gbt import CHARGER_ADDRESS, TP_PGNS
from charger_sim.protocols.gbt.bms import V_TRANSITIONS, GbtBms, VStage
from charger_sim.protocols.gbt.config import GbtBmsConfig
from charger_sim.protocols.gbt.states import Stage
from charger_sim.protocols.gbt.timing import limit
from charger_sim.protocols.gbt.transport import TransportEndpoint
from tests.gbt_helpers import (
    CODEC,
    GbtBench,
    charger_ready,
    charging,
    configuring,
    handshaking,
    precharging,
    recognising,
    two_bit,
)


def _stopping() -> GbtBench:
    bench = charging(settle=1.0)
    bench.request_stop()
    return bench


def _statistics() -> GbtBench:
    bench = _stopping()
    bench.quiet("BCL", "BCS", "BSM")
    bench.send("BST", **two_bit("BST", ChargerStopped=1))
    bench.open_contactors()
    bench.send("BSD")
    return bench


def _error() -> GbtBench:
    bench = recognising()
    bench.step_to(bench.now + limit("brm") + 0.01)
    return bench


def _contactors() -> GbtBench:
    bench = precharging()
    bench.run_until(lambda: bench.stage is Stage.CONTACTORS, within=limit("precharge"))
    return bench


def _done() -> GbtBench:
    bench = _statistics()
    bench.finish()
    return bench


def _insulation() -> GbtBench:
    bench = handshaking()
    bench.step_to(0.1)
    return bench


BUILDERS: dict[str, Callable[[], GbtBench]] = {
    "idle": GbtBench,
    "handshake": lambda: handshaking(bhm=False),
    "insulation_test": _insulation,
    "recognition": recognising,
    "configuration": configuring,
    "precharge": precharging,
    "contactors": _contactors,
    "charging_before_bcl": charger_ready,
    "charging": lambda: charging(settle=1.0),
    "stopping": _stopping,
    "statistics": _statistics,
    "error": _error,
    "done": _done,
}


def _inputs() -> list[tuple[str, Callable[[GbtBench], None]]]:
    def single(name: str, **fields: int | float) -> Callable[[GbtBench], None]:
        return lambda bench: bench.send(name, **fields)

    def raw(can_id: int, data: str) -> Callable[[GbtBench], None]:
        return lambda bench: bench.deliver(Frame(can_id, bytes.fromhex(data), True, bench.now))

    def tp(name: str, payload: bytes) -> Callable[[GbtBench], None]:
        def go(bench: GbtBench) -> None:
            bench.bms.payloads[name] = payload
            bench.send(name)

        return go

    return [
        ("BHM", single("BHM")),
        ("BRO 00", single("BRO", BmsReady=0x00)),
        ("BRO AA", single("BRO", BmsReady=0xAA)),
        ("BRO FF", single("BRO", BmsReady=0xFF)),
        ("BCL CC", single("BCL", ChargeMode=2, CurrentDemand=-50.0)),
        ("BCL CV", single("BCL", ChargeMode=1, VoltageDemand=380.0)),
        ("BCL discharge", single("BCL", CurrentDemand=100.0)),
        ("BSM normal", single("BSM", ChargePermit=1)),
        ("BSM pause", single("BSM", ChargePermit=0)),
        ("BSM untrusted", single("BSM", OverTemperature=2, ChargePermit=2)),
        ("BSM fault", single("BSM", Insulation=1)),
        ("BST soc", single("BST", **two_bit("BST", SocTargetReached=1))),
        ("BST fault", single("BST", **two_bit("BST", BatteryOverTemp=1))),
        ("BST untrusted", single("BST", **two_bit("BST", InsulationFault=2))),
        ("BST reply", single("BST", **two_bit("BST", ChargerStopped=1))),
        ("BSD", single("BSD")),
        ("BEM", single("BEM", **two_bit("BEM", TimeoutCcs=1))),
        ("BEM untrusted", single("BEM", **two_bit("BEM", TimeoutCro=2))),
        ("BRM 49", tp("BRM", bytes(range(49)))),
        ("BRM 41", tp("BRM", bytes(range(41)))),
        ("BCP", tp("BCP", bytes.fromhex("7201DA052A02A510730803C60E"))),
        ("BCP short", tp("BCP", bytes(9))),
        ("BCS", tp("BCS", bytes.fromhex("C50EA00F4C614D0000"))),
        ("BMV", tp("BMV", bytes(192))),
        ("BSP", tp("BSP", bytes(16))),
        ("short BSM", raw(CODEC.message("BSM").frame_id, "1E36")),
        ("empty BCL", raw(CODEC.message("BCL").frame_id, "")),
        ("RTS other PGN", raw(0x1CEC56F4, "10 10 00 03 FF 00 30 00")),
        ("stray TP.DT", raw(0x1CEB56F4, "01 02 03 04 05 06 07 08")),
        ("TP abort", raw(0x1CEC56F4, "FF FF FF FF FF 00 11 00")),
        ("foreign node", raw(0x0070F4B5, "00 11 22 33")),  # capture A's foreign node
        ("priority 6 BEM", raw(0x181E56F4, "F0 F0 F1 FC")),  # open code's wrong priority
    ]


INPUTS = _inputs()


@pytest.mark.parametrize("where", list(BUILDERS))
def test_every_bms_input_is_handled_in_every_stage(where: str) -> None:
    for label, feed in INPUTS:
        bench = BUILDERS[where]()
        if where != "idle":
            bench.step_to(bench.now)
        feed(bench)
        bench.step_to(bench.now + 2.0)
        assert bench.stage in Stage, (where, label)
        ends = [e for e in bench.events if type(e).__name__ == "SessionEnded"]
        assert len(ends) <= 1, (where, label)


# ---- the simulated BMS (explicit table, CHAdeMO totality style) --------------------------------------
# Every BMS stage x every charger input: the stage one BMS cycle later must be one the table allows,
# the table names every pair, and every allowed outcome is reachable through V_TRANSITIONS.

BMS_EVENTS = (
    "chm",  # CHM (V1.1)
    "crm_00",  # CRM 0x00: recognise me
    "crm_aa",  # CRM 0xAA: recognised
    "cml",  # CML (and CTS): the charger's limits
    "cro_00",  # CRO 0x00: charger not ready
    "cro_aa",  # CRO 0xAA: charger ready
    "ccs",  # CCS, permit 01
    "cst",  # CST manual stop
    "csd",  # CSD statistics
    "cem",  # CEM with a timeout flag
    "tp_cts",  # a TP.CM CTS for BCP the BMS may not be sending
    "tp_abort",  # a TP.CM Abort for BRM
    "malformed",  # CRM with 2 data bytes, a 3-byte CST
    "foreign",  # a standard-ID frame, a CRM to another BMS, a CRM from another charger
    "aux_toggle",  # K3/K4 (auxiliary power) switched on (off when on); seen at the BMS's next tick
    "stop",  # the BMS is told to stop (bms role: Ctrl-C)
    "deadline",  # the clock jumps to the BMS's next deadline
    "silence",  # 1.05 s without charger frames
    "long_silence",  # 31 s without charger frames (past every BMS receive timeout)
)
V = VStage
V_STOP = {V.STOPPING, V.STATISTICS}


def _brow(
    stage: VStage, default: set[VStage], **special: set[VStage]
) -> dict[tuple[VStage, str], set[VStage]]:
    unknown = set(special) - set(BMS_EVENTS)
    assert not unknown, unknown
    return {(stage, e): special.get(e, default) for e in BMS_EVENTS}


# §6, §7, §8: what each (stage, input) leads to within one BMS cycle (100 ms).
_TALKING_STOPS: dict[str, set[VStage]] = {"cst": V_STOP, "cem": {V.ERROR}, "stop": {V.STOPPING}}
BMS_TABLE: dict[tuple[VStage, str], set[VStage]] = {
    # asleep until the auxiliary power comes on: CAN is ignored
    **_brow(V.ASLEEP, {V.ASLEEP}, aux_toggle={V.HANDSHAKE}),
    # BHM until CRM 0x00; the BMS times CRM out after 30 s (BEM); aux power off ends everything
    **_brow(V.HANDSHAKE, {V.HANDSHAKE}, crm_00={V.RECOGNITION}, aux_toggle={V.DONE}, long_silence={V.ERROR}),
    # BRM until CRM 0xAA (5 s, BEM); from here CST stops and CEM is an error
    **_brow(
        V.RECOGNITION,
        {V.RECOGNITION},
        crm_aa={V.CONFIGURATION},
        aux_toggle={V.DONE},
        long_silence={V.ERROR},
        **_TALKING_STOPS,
    ),
    # BCP until CTS/CML (5 s, BEM); BRO 0xAA follows after its delay (1.25 s: beyond one cycle)
    **_brow(
        V.CONFIGURATION, {V.CONFIGURATION}, aux_toggle={V.DONE}, long_silence={V.ERROR}, **_TALKING_STOPS
    ),
    # BRO 0xAA until CRO 0xAA (CRO 5 s, CRO 0xAA 60 s: BEM)
    **_brow(
        V.READY, {V.READY}, cro_aa={V.CHARGING}, aux_toggle={V.DONE}, long_silence={V.ERROR}, **_TALKING_STOPS
    ),
    # BCL/BCS/BSM; CCS missing 1 s is a BEM, and no new CRM 30 s later ends the session
    **_brow(
        V.CHARGING,
        {V.CHARGING},
        aux_toggle={V.DONE},
        silence={V.ERROR},
        long_silence={V.DONE},
        **_TALKING_STOPS,
    ),
    # BST until CST (5 s, BEM) and the contactors are open, then BSD (here at once: no current flows)
    **_brow(V.STOPPING, {V.STOPPING}, cst=V_STOP, aux_toggle={V.DONE}, long_silence={V.ERROR}),
    # BSD until CSD (10 s after BST, BEM) and the auxiliary power goes off
    **_brow(V.STATISTICS, {V.STATISTICS}, aux_toggle={V.DONE}, long_silence={V.ERROR}),
    # after BEM / CEM: a new CRM 0x00 starts recognition again; none within 30 s ends the session
    **_brow(V.ERROR, {V.ERROR}, crm_00={V.RECOGNITION}, aux_toggle={V.DONE}, long_silence={V.DONE}),
    **_brow(V.DONE, {V.DONE}),
}

_BMS_CYCLE = 0.1
_BMS_SLOWEST = limit("bms_bcp_period")  # its slowest message: it looks at K3/K4 on every tick
_PACK = PackSpec(chemistry="lfp", series=114, parallel=1, cell_capacity_ah=152.0, max_charge_current_a=250.0)
_CRM = {"ChargerNumber": 1, "ChargerAreaCode1": 0xFF, "ChargerAreaCode2": 0xFF, "ChargerAreaCode3": 0xFF}


class BmsRig:
    """The BMS core and a scripted charger (single frames by hand, TP answered by a real endpoint)."""

    def __init__(self) -> None:
        self.harness = Harness()
        self.bms = GbtBms(GbtBmsConfig(), Battery(_PACK, soc=40.0, seed=1), self.harness, CODEC)
        self.tp = TransportEndpoint(CHARGER_ADDRESS, accept_pgns=TP_PGNS)
        self.now = 0.0
        self.bms.start(0.0)

    @property
    def stage(self) -> VStage:
        return self.bms.stage

    def send(self, name: str, **values: int | float) -> None:
        self.deliver(CODEC.message(name).frame(values, self.now))

    def deliver(self, frame: Frame) -> None:
        self._from_bms(self.bms.receive(frame, self.now))

    def _from_bms(self, frames: list[Frame]) -> None:
        for f in frames:  # the charger's transport answers the BMS's RTS / TP.DT at once
            for answer in self.tp.receive(f, self.now):
                self._from_bms(self.bms.receive(answer, self.now))
        self.tp.drain_events()

    def run(self, until: float) -> None:
        """The BMS alone (no charger frames but the transport's answers) up to ``until``."""
        while (nxt := self.bms.next_deadline()) is not None and nxt <= until + 1e-9:
            self.now = max(self.now, nxt)
            self._from_bms(self.bms.on_timer(self.now))
        self.now = max(self.now, until)


def reach_bms(stage: VStage) -> BmsRig:
    rig = BmsRig()
    if stage is V.ASLEEP:
        return rig
    rig.harness.set("k3k4", True)
    rig.run(0.1)
    if stage is V.HANDSHAKE:
        return rig
    if stage is V.DONE:
        rig.harness.set("k3k4", False)
        rig.run(rig.now + _BMS_SLOWEST)
        return rig
    rig.send("CRM", RecognitionResult=0x00, **_CRM)
    rig.run(rig.now + 0.1)
    if stage is V.RECOGNITION:
        return rig
    rig.send("CRM", RecognitionResult=0xAA, **_CRM)
    rig.run(rig.now + 0.1)
    if stage is V.CONFIGURATION:
        return rig
    rig.deliver(Frame(CODEC.message("CML").frame_id, bytes.fromhex("4C1DDC05DC05A00F"), True, rig.now))
    rig.run(rig.now + rig.bms.config.bro_delay + 0.05)
    if stage is V.READY:
        return rig
    rig.harness.set("k1k2", True)
    rig.send("CRO", ChargerReady=0xAA)
    rig.run(rig.now + 0.1)
    if stage is V.CHARGING:
        return rig
    if stage is V.ERROR:
        rig.send("CEM", **two_bit("CEM", TimeoutBcl=1))
        return rig
    rig.bms.request_stop(rig.now)
    rig.run(rig.now + 0.05)
    if stage is V.STOPPING:
        return rig
    rig.send("CST", **two_bit("CST", ManualStop=1))
    rig.run(rig.now + 0.2)
    return rig


def apply_bms_event(rig: BmsRig, event: str) -> None:
    now = rig.now
    if event == "chm":
        rig.send("CHM", ProtocolVersionMinor=1, ProtocolVersionMajor=1)
    elif event in ("crm_00", "crm_aa"):
        rig.send("CRM", RecognitionResult=0x00 if event == "crm_00" else 0xAA, **_CRM)
    elif event == "cml":
        rig.deliver(Frame(CODEC.message("CML").frame_id, bytes.fromhex("4C1DDC05DC05A00F"), True, now))
        rig.deliver(Frame(CODEC.message("CTS").frame_id, b"\xff" * 7, True, now))
    elif event in ("cro_00", "cro_aa"):
        rig.send("CRO", ChargerReady=0x00 if event == "cro_00" else 0xAA)
    elif event == "ccs":
        rig.send("CCS", OutputVoltage=378.0, OutputCurrent=-20.0, ChargeTime=0, ChargePermit=1)
    elif event == "cst":
        rig.send("CST", **two_bit("CST", ManualStop=1))
    elif event == "csd":
        rig.send("CSD", ChargeTime=1, OutputEnergy=1.0, ChargerNumber=1)
    elif event == "cem":
        rig.send("CEM", **two_bit("CEM", TimeoutBcs=1))
    elif event == "tp_cts":
        rig.deliver(Frame(0x1CECF456, bytes.fromhex("1102 01FFFF 000600"), True, now))
    elif event == "tp_abort":
        rig.deliver(Frame(0x1CECF456, bytes.fromhex("FFFF FFFFFF 000200"), True, now))
    elif event == "malformed":
        rig.deliver(Frame(CODEC.message("CRM").frame_id, b"\x00\x01", True, now))
        rig.deliver(Frame(CODEC.message("CST").frame_id, b"\x04\x00\xf0", True, now))
    elif event == "foreign":
        rig.deliver(Frame(0x100, bytes(8), False, now))
        rig.deliver(Frame(0x1801F556, bytes(8), True, now))  # CRM to address 0xF5
        rig.deliver(Frame(0x1801F457, bytes(8), True, now))  # CRM from another charger (0x57)
    elif event == "aux_toggle":
        rig.harness.set("k3k4", not rig.harness.is_on("k3k4"))
        rig.run(now + _BMS_SLOWEST)
    elif event == "stop":
        rig.bms.request_stop(now)
    elif event == "deadline":
        nxt = rig.bms.next_deadline()
        if nxt is not None:
            rig.run(nxt)
    elif event in ("silence", "long_silence"):
        rig.run(now + (1.05 if event == "silence" else 31.0))
    rig.run(rig.now + _BMS_CYCLE)


def test_bms_table_names_every_pair() -> None:
    assert set(BMS_TABLE) == set(itertools.product(VStage, BMS_EVENTS))


def test_bms_table_only_uses_transitions_of_the_state_table() -> None:
    edges = {(src, row.dest) for row in V_TRANSITIONS for src in row.sources}
    reach = {s: {s} for s in VStage}
    for _ in VStage:
        for s in VStage:
            reach[s] |= {d for (a, d) in edges if a in reach[s]}
    for (stage, event), allowed in BMS_TABLE.items():
        assert allowed <= reach[stage], (stage, event, allowed - reach[stage])


@pytest.mark.parametrize("stage", list(VStage), ids=lambda s: s.value)
def test_every_bms_stage_handles_every_event(stage: VStage) -> None:
    for event in BMS_EVENTS:
        rig = reach_bms(stage)
        assert rig.stage is stage
        apply_bms_event(rig, event)  # an escaping exception fails here
        allowed = BMS_TABLE[(stage, event)]
        assert rig.stage in allowed, f"{stage.value} + {event} -> {rig.stage.value}, allowed {allowed}"
        ends = [e for e in rig.bms.drain_events() if isinstance(e, SessionEnded)]
        assert len(ends) == (1 if rig.stage is V.DONE and stage is not V.DONE else 0) or stage is V.DONE


def test_bms_gives_up_without_a_new_crm_after_its_error() -> None:
    """§7: no new CRM within 30 s of the BEM / CEM ends the BMS's session (the deadline was armed but
    nothing handled it: the BMS sat in error for good; found by the totality table)."""
    rig = reach_bms(V.ERROR)
    rig.run(rig.now + limit("bms_new_crm") - 0.5)
    assert rig.stage is V.ERROR
    rig.run(rig.now + 1.0)
    assert rig.stage is V.DONE and not rig.harness.contactors_closed
    ends = [e for e in rig.bms.drain_events() if isinstance(e, SessionEnded)]
    assert len(ends) == 1 and "no new handshake" in ends[0].cause
