"""Totality: every BMS input in every charger stage is handled (h2 ``test_state_machines`` style).

The charger is brought to each stage it can be in, then fed every BMS message with normal, edge,
untrusted and malformed contents (short frames, wrong PGN in TP, unexpected TP.DT) and run on for a
while.  Nothing may raise (an invalid transition would be a :class:`LocalProtocolError`), and the
stage must stay one of the table's.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from charger_sim.frames import Frame
from charger_sim.protocols.gbt.states import Stage
from charger_sim.protocols.gbt.timing import limit
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
