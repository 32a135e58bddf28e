"""The hostile GB/T vehicle: the simulated BMS (:class:`~charger_sim.protocols.gbt.bms.GbtBms`) on a
random pack and configuration, its frames and multi-packet payloads mutated, plus GB/T's own faults:
J1939-21 transport abuse (RTS for foreign PGNs, wrong sizes and packet counts, TP.DT out of order,
out of window, duplicated or without a session, aborts, CTS / EndOfMsgAck / BAM from the wrong side),
injected BST / BEM / BRO / BHM / BSD, BCL demands above the BCP maximum, BSM states and pauses, and
the plant (contactors opening under load or welded, battery voltage jumps, insulation, the plug).
Section numbers (§) refer to the GB/T fact sheet.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ..bms.battery import Battery, PackSpec
from ..codec import Value
from ..frames import Frame
from ..protocols.base import Core
from ..protocols.gbt import BMS_ADDRESS, CHARGER_ADDRESS
from ..protocols.gbt.bms import GbtBms
from ..protocols.gbt.config import GbtBmsConfig
from ..protocols.gbt.messages import TP_PGN, flags
from ..protocols.gbt.transport import BYTES_PER_PACKET, PGN_TP_CM, PGN_TP_DT, make_id, packet_count
from .driven import HOLD_S, Driven, raw_of
from .script import Step
from .vehicles import patch_raw, random_value

if TYPE_CHECKING:
    from .target import Target

CC1_CONNECTED_V = 4.0  # GB/T 18487.1: CC1 with the plug fully in
TP_CM = make_id(PGN_TP_CM, CHARGER_ADDRESS, BMS_ADDRESS)
TP_DT = make_id(PGN_TP_DT, CHARGER_ADDRESS, BMS_ADDRESS)
# PGNs an RTS may name: the six the charger accepts, and others it must refuse (BCL, BRO, unknown)
RTS_PGNS = (0x0200, 0x0600, 0x1100, 0x1500, 0x1600, 0x1700, 0x1000, 0x0900, 0x3000, 0xEB00)
RTS_SIZES = (0, 1, 8, 9, 13, 41, 49, 255, 1785, 1786, 0xFFFF)

# Packs of the GB/T vehicle profiles (scenarios/vehicles/gbt_*.yaml, scenarios/gbt_basic.yaml).
PACKS = (
    PackSpec(
        chemistry="lfp", series=114, parallel=1, cell_capacity_ah=152.0, cell_resistance_ohm=0.0004,
        max_charge_current_a=250.0, thermal_mass_j_per_k=400_000.0, cooling_w_per_k=60.0,
    ),
    PackSpec(
        chemistry="nmc", series=96, parallel=1, cell_capacity_ah=168.0, cell_resistance_ohm=0.0008,
        max_charge_current_a=150.0, thermal_mass_j_per_k=220_000.0, cooling_w_per_k=20.0,
    ),
    PackSpec(
        chemistry="lfp", series=192, parallel=2, cell_capacity_ah=230.0, cell_resistance_ohm=0.0005,
        max_charge_current_a=250.0, thermal_mass_j_per_k=2_500_000.0, cooling_w_per_k=400.0,
    ),
    PackSpec(
        chemistry="lfp", series=108, parallel=1, cell_capacity_ah=115.0, max_charge_current_a=100.0,
        thermal_mass_j_per_k=200_000.0, cooling_w_per_k=15.0,
    ),
)  # fmt: skip


def bcp_max_voltage(pack: PackSpec) -> float:
    """The BMS's BCP maximum total voltage for ``pack`` (as :class:`.bms_frames.BmsFrames` has it)."""
    return pack.series * round(pack.cell_chemistry.charge_cutoff_v + 0.02, 2)


class HostileBms(GbtBms):
    """The simulated BMS, whose multi-packet payloads the hostile vehicle may rewrite on the way out."""

    payload_hook: GbtHostile | None = None

    def _tp_send(self, pgn: int, payload: bytes, now: float) -> list[Frame]:
        if self.payload_hook is not None:
            payload = self.payload_hook.payload(pgn, payload, now)
        return super()._tp_send(pgn, payload, now)


class GbtHostile(Driven):
    """A GB/T BMS that follows §6 well enough to reach charging, misbehaving as its mood says."""

    vehicle_lines = ("cc2",)
    deep_stages = frozenset({"charging"})
    packs: tuple[PackSpec, ...] = PACKS

    def __init__(self, target: Target, rng: random.Random) -> None:
        self.payload_faults: dict[int, float] = {}  # PGN -> until: its payloads get a wrong field
        self.bcp_fault: tuple[str, int] | None = None  # (field, raw) in every BCP of the session
        super().__init__(target, rng)

    def build(self, rng: random.Random) -> Core:
        cfg = self.t.config
        polite = self.mood == "cooperative"
        packs = list(self.packs)
        fitting = [
            p
            for p in packs
            if cfg.min_voltage <= 0.9 * p.max_voltage and bcp_max_voltage(p) <= cfg.max_voltage
        ]
        if fitting and (polite or rng.random() < 0.85):
            packs = fitting
        pack = rng.choice(packs)
        soc = rng.uniform(5.0, 92.0)
        battery = Battery(
            pack,
            soc=soc,
            temperature_c=rng.choice((25.0, 25.0, 25.0, 10.0, 40.0, 54.5)),
            seed=rng.getrandbits(16),
        )
        config = GbtBmsConfig(
            target_soc=min(100.0, rng.choice((80.0, 90.0, 100.0, soc + rng.uniform(0.05, 2.0)))),
            charge_mode=rng.choice(("cc", "cc", "cv")),
            max_current=None if rng.random() < 0.7 else float(rng.randint(1, 400)),
            brm_length=rng.choice((49, 49, 41)),
            send_bhm=polite or rng.random() < 0.9,
            bro_ready=polite or rng.random() < 0.97,
            answer_brm=polite or rng.random() < 0.97,
            bro_delay=rng.choice((0.0, 1.25, 1.25, 3.0)),
            pause_at_soc=None if rng.random() < 0.85 else soc + rng.uniform(0.0, 1.0),
            pause_duration=rng.choice((1.0, 5.0, 30.0)),
            cell_data=rng.random() < 0.2,
            tp_window=rng.choice((255, 255, 255, 7, 2, 1)),
            reserved_bits_zero=rng.random() < 0.3,
            insulation_resistance_ohm=5.0e6 if polite or rng.random() < 0.95 else rng.choice((1e3, 2e4, 6e4)),
            bcl_delay=rng.choice((0.026, 0.026, 0.0, 0.5)),
        )
        bms = HostileBms(config, battery, self.shadow, self.t.codec)
        bms.payload_hook = self
        self.bcp_max = float(bms.out.max_current)
        if rng.random() < 0.1:  # a BMS whose BCP is wrong all session: the charger must still cap
            self.bcp_fault = self._bcp_fault(rng)
        return bms

    def _bcp_fault(self, rng: random.Random) -> tuple[str, int]:
        """A BCP field rewritten for the whole session (most often the maximum charge current:
        below the demand, 0 A, or positive, i.e. no charge current at all)."""
        spec = self.t.codec.message("BCP").signal("MaxChargeCurrent")
        if rng.random() < 0.75:
            amps = rng.choice((0.0, 0.0, -1.0, -rng.uniform(0.1, self.bcp_max), rng.uniform(0.1, 500.0)))
            return spec.name, raw_of(spec, amps) if amps <= 0 else rng.randint(
                raw_of(spec, 0.0) + 1, spec.mask
            )
        spec = rng.choice(self.t.codec.message("BCP").signals)
        return spec.name, rng.getrandbits(spec.length)

    # ---- payload faults (through HostileBms) ----------------------------------------------------
    def payload(self, pgn: int, payload: bytes, now: float) -> bytes:
        if pgn == 0x0600 and self.bcp_fault is not None:  # every BCP of the session says so
            field, fixed = self.bcp_fault
            payload = patch_raw(payload, self.t.codec.message("BCP").signal(field), fixed)
        until = self.payload_faults.get(pgn)
        if until is None or until <= now:
            return payload
        rng = self.rng
        name = {v: k for k, v in TP_PGN.items()}.get(pgn)
        m = self.t.codec.message(name) if name else None
        if m is not None and rng.random() < 0.7:
            fits = [s for s in m.signals if s.start + s.length <= 8 * len(payload)]
            if fits:
                spec = rng.choice(fits)
                if spec.name == "MaxChargeCurrent" or rng.random() < 0.3:  # BCP below the BCL demand
                    spec = m.signal("MaxChargeCurrent") if name == "BCP" else spec
                raw = (
                    raw_of(spec, float(random_value(spec, rng)))
                    if rng.random() < 0.7
                    else rng.getrandbits(spec.length)
                )
                return patch_raw(payload, spec, raw)
        i = rng.randrange(len(payload))
        return payload[:i] + bytes([rng.getrandbits(8)]) + payload[i + 1 :]

    # ---- GB/T faults ------------------------------------------------------------------------------
    def protocol_mutation(self, now: float) -> list[Step]:
        rng = self.rng
        x = rng.random()
        if x < 0.25:
            return self.tp_abuse(now)
        if x < 0.5:
            return self.message_fault(now)
        if x < 0.58:
            self.payload_faults[rng.choice((0x0600, 0x0600, 0x0200, 0x1100))] = now + rng.choice(HOLD_S)
            return []
        if x < 0.82:
            return self.plant_fault(now)
        if x < 0.9:  # CC1 (detection point 1) out of its 4 V band for a while (GB/T 18487.1)
            return self.pulse(
                "line", "cc1", rng.choice((0.0, 6.0, 12.0)), CC1_CONNECTED_V, rng.choice(HOLD_S), now
            )
        return [Step(now, "operator", name=rng.choice(("stop", "power_fault")))]

    def message_frame(self, name: str, values: dict[str, Value], now: float) -> Step:
        m = self.t.codec.message(name)
        return Step(now, "frame", frame_id=m.frame_id, data=m.encode(values), extended=True)

    def flag_frame(self, name: str, now: float) -> Step:
        """BST / BEM with random 2-bit fields (mostly 00, some 01 reasons, untrusted, unused)."""
        m = self.t.codec.message(name)
        data = m.encode(flags(m))
        for spec in m.signals:
            if self.rng.random() < 0.2:
                data = patch_raw(data, spec, self.rng.choice((1, 1, 2, 3)))
        return Step(now, "frame", frame_id=m.frame_id, data=data, extended=True)

    def message_fault(self, now: float) -> list[Step]:
        rng = self.rng
        x = rng.random()
        secs = rng.choice(HOLD_S)
        if x < 0.25:  # a demand the charger must cap: above BCP, above its own maximum, discharge
            amps = rng.choice((self.bcp_max + rng.uniform(0.1, 100.0), rng.uniform(0.0, 400.0), 400.0, -50.0))
            self.hold_value("BCL", "CurrentDemand", -min(amps, 400.0), secs, now)
            if rng.random() < 0.3:
                self.hold("BCL", "ChargeMode", rng.choice((0, 1, 2, 3, 0xFF)), secs, now)
            return []
        if x < 0.4:  # BSM: a state abnormal, untrusted or unused; or a pause (permit 00)
            field = rng.choice(
                ("CellVoltageState", "SocState", "OverCurrent", "OverTemperature", "Insulation",
                 "OutputConnector", "ChargePermit", "ChargePermit")
            )  # fmt: skip
            self.hold(
                "BSM",
                field,
                rng.choice((0, 1, 2, 3)) if field != "ChargePermit" else rng.choice((0, 0, 2, 3)),
                secs,
                now,
            )
            return []
        if x < 0.55:
            burst = [self.flag_frame("BST", now) for _ in range(rng.randint(1, 5))]
            return self.spread(burst, now, 0.01)
        if x < 0.65:
            return [self.flag_frame("BEM", now)]
        if x < 0.8:
            ready = rng.choice((0x00, 0x00, 0xAA, 0xFF, rng.getrandbits(8)))
            return self.spread(
                [self.message_frame("BRO", {"BmsReady": ready}, now)] * rng.randint(1, 4), now, 0.25
            )
        if x < 0.9:
            return [
                self.message_frame(
                    "BHM", {"MaxPermissibleChargeVoltage": round(rng.uniform(0.0, 1200.0), 1)}, now
                )
            ]
        m = self.t.codec.message("BSD")
        return [self.message_frame("BSD", {s.name: random_value(s, rng) for s in m.signals}, now)]

    def tp_abuse(self, now: float) -> list[Step]:
        """J1939-21 connection mode misused from the BMS side (§5)."""
        rng = self.rng
        pgn = rng.choice(RTS_PGNS)
        pgn_bytes = pgn.to_bytes(3, "little")

        def cm(*head: int, length: int = 8) -> Step:
            data = (bytes(head) + b"\xff" * 5)[:5] + pgn_bytes
            return Step(now, "frame", frame_id=TP_CM, data=data[:length], extended=True)

        def dt(seq: int, length: int = 8) -> Step:
            data = bytes([seq & 0xFF]) + bytes(rng.getrandbits(8) for _ in range(BYTES_PER_PACKET))
            return Step(now, "frame", frame_id=TP_DT, data=data[:length], extended=True)

        x = rng.random()
        if x < 0.3:  # an RTS whose size, packet count or PGN is wrong (or right), then its DTs shuffled
            size = rng.choice(RTS_SIZES)
            packets = rng.choice((0, 1, 2, 7, 255, packet_count(size) & 0xFF, packet_count(size) & 0xFF))
            window = rng.choice((0, 1, 2, 0xFF))
            steps = [cm(0x10, size & 0xFF, size >> 8 & 0xFF, packets, window)]
            seqs = list(range(1, min(packets, 12) + 1))
            if rng.random() < 0.5:
                rng.shuffle(seqs)
            if rng.random() < 0.3:
                seqs += [rng.choice((0, 1, packets + 1, 255))]
            steps += [dt(s) for s in seqs]
            return self.spread(steps, now, rng.choice((0.0005, 0.002, 0.01, 0.3)))
        if x < 0.5:  # TP.DT with no session, a bad sequence number or a short payload
            return [
                dt(rng.choice((0, 1, 2, 7, 200, 255)), rng.randint(0, 8)) for _ in range(rng.randint(1, 4))
            ]
        if x < 0.65:  # the BMS aborts (its own transfer or another PGN)
            return [cm(0xFF, rng.choice((1, 3, 5, 0xFF)), 0xFF, 0xFF, 0xFF)]
        if x < 0.8:  # the charger's messages from the BMS side: CTS, EndOfMsgAck, BAM
            return [
                cm(
                    rng.choice((0x11, 0x13, 0x20)),
                    rng.getrandbits(8),
                    rng.getrandbits(8),
                    rng.getrandbits(8),
                    0xFF,
                )
            ]
        if x < 0.9:  # TP.CM shorter than 8 bytes, unknown control bytes
            return [cm(rng.choice((0x10, 0x11, 0x42, 0xFF)), 13, 0, 2, 0xFF, length=rng.randint(0, 7))]
        burst = [cm(0x10, 13, 0, 2, 0xFF) for _ in range(rng.randint(2, 10))]  # RTS flood
        return self.spread(burst, now, 0.001)
