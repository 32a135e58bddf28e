"""Hostile vehicles: what the fuzzer puts on the bus and the harness, one 100 ms tick at a time.

Every frame is built from the DBC (valid values through the codec, out-of-range fields patched in
at the raw bit level), so the attacks follow the DBC as it is.  :class:`Hostile` is protocol
independent (random and mutated vehicle messages, floods, silence, reordering); a protocol adds a
*cooperative* script so sessions get deep (permission, insulation test, contactors, charging) before
the mutations hit: :class:`ChademoHostile`; GB/T and CCS drive their simulated vehicle cores instead
(:mod:`.vehicles_gbt`, :mod:`.vehicles_ccs`, on :mod:`.driven`).  A session's mood decides how often it
misbehaves.  :func:`charger_config` draws each session's charger configuration.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from ..codec import MessageCodec, SignalSpec, Value
from ..protocols.chademo.states import Stage as CS
from .script import Step

if TYPE_CHECKING:
    from .target import Target

MOODS = (("cooperative", 0.55, 0.01), ("hostile", 0.35, 0.12), ("chaos", 0.10, 0.6))


def random_value(spec: SignalSpec, rng: random.Random) -> Value:
    """A physical value inside the signal's DBC range."""
    lo_raw, hi_raw = spec.raw_bounds()
    if spec.minimum is not None:
        lo_raw = max(lo_raw, int(-(-(spec.minimum - spec.offset) // spec.scale)))
    if spec.maximum is not None:
        hi_raw = min(hi_raw, int((spec.maximum - spec.offset) // spec.scale))
    raw = rng.randint(lo_raw, max(lo_raw, hi_raw))
    return spec.from_raw(raw & spec.mask)


def out_of_range_raw(spec: SignalSpec, rng: random.Random) -> int:
    """A raw field value outside the DBC range when the bits allow one, else any raw value."""
    lo_raw, hi_raw = spec.raw_bounds()
    top = None if spec.maximum is None else round((spec.maximum - spec.offset) / spec.scale)
    bottom = None if spec.minimum is None else round((spec.minimum - spec.offset) / spec.scale)
    if top is not None and top < hi_raw:
        return rng.randint(top + 1, hi_raw) & spec.mask
    if bottom is not None and bottom > lo_raw:
        return rng.randint(lo_raw, bottom - 1) & spec.mask
    return rng.randint(lo_raw, hi_raw) & spec.mask


def patch_raw(data: bytes, spec: SignalSpec, raw: int) -> bytes:
    word = int.from_bytes(data, "little")
    word &= ~(spec.mask << spec.start)
    word |= (raw & spec.mask) << spec.start
    return word.to_bytes(len(data), "little")


class Hostile:
    """A vehicle side built from the DBC only: the messages the charger does not send."""

    lengths: tuple[float, ...] = (2.0, 8.0, 20.0, 20.0, 30.0, 45.0, 45.0, 90.0)  # s before the silence

    def __init__(self, target: Target, rng: random.Random) -> None:
        self.t = target
        self.rng = rng
        self.mood, self.p_mutate = self._pick_mood()
        self.messages: list[MessageCodec] = [
            m for m in target.codec.messages if "CHARGER" not in m.senders and m.length <= 8
        ]
        self.values: dict[int, dict[str, Value]] = {
            m.frame_id: {s.name: random_value(s, rng) for s in m.signals} for m in self.messages
        }
        self.period = 0.1
        self.silent_until = 0.0
        self.stale: list[Step] = []
        self.extended_ids = bool(target.info.extended_ids)

    def _pick_mood(self) -> tuple[str, float]:
        x = self.rng.random()
        for name, weight, p in MOODS:
            if x < weight:
                return name, p
            x -= weight
        return MOODS[-1][0], MOODS[-1][2]

    # ---- building frames -------------------------------------------------------------------------
    def frame(self, m: MessageCodec, now: float) -> Step:
        return Step(
            now, "frame", frame_id=m.frame_id, data=m.encode(self.values[m.frame_id]), extended=m.is_extended
        )

    def cycle_frames(self, now: float) -> list[Step]:
        return [self.frame(m, now) for m in self.messages]

    def next_period(self) -> float:
        if self.mood == "cooperative" or self.rng.random() < 0.8:
            return self.period
        return self.rng.choice((0.01, 0.05, 0.09, 0.11, 0.15, 0.225, 0.5))

    # ---- one tick ----------------------------------------------------------------------------------
    def tick(self, now: float) -> list[Step]:
        steps: list[Step] = []
        if self.mood == "chaos" or self.rng.random() < self.p_mutate:
            steps += self.mutation(now)
        if now >= self.silent_until:
            frames = self.cycle_frames(now)
            if self.rng.random() < self.p_mutate:
                self.rng.shuffle(frames)  # reordering
            steps += frames
            if frames and self.rng.random() < 0.2:
                self.stale = frames
        return steps

    def mutation(self, now: float) -> list[Step]:
        rng = self.rng
        kind = rng.random()
        if kind < 0.25:
            return [self.random_frame(now) for _ in range(rng.randint(1, 3))]
        if kind < 0.45:
            return [self.bad_field(now)]
        if kind < 0.55:
            return [self.truncated(now)]
        if kind < 0.62:
            burst = [self.random_frame(now) if rng.random() < 0.5 else self.valid(now) for _ in range(10)]
            return burst * rng.randint(1, 5)  # flood
        if kind < 0.72:
            self.silent_until = now + rng.choice((0.15, 0.3, 0.6, 0.95, 1.05, 1.5, 3.0, 10.0))
            return []
        if kind < 0.8 and self.stale:
            return list(reversed(self.stale))  # old frames again, out of order
        if kind < 0.9:
            m = rng.choice(self.messages)
            s = rng.choice(m.signals)
            self.values[m.frame_id][s.name] = random_value(s, rng)
            return []
        return [self.valid(now, extended=not self.extended_ids)]  # right ID, wrong ID format

    def valid(self, now: float, *, extended: bool | None = None) -> Step:
        m = self.rng.choice(self.messages)
        step = self.frame(m, now)
        if extended is not None and extended != m.is_extended and (m.frame_id <= 0x7FF or extended):
            return Step(now, "frame", frame_id=step.frame_id, data=step.data, extended=extended)
        return step

    def random_frame(self, now: float) -> Step:
        rng = self.rng
        dlc = rng.randint(0, 8)
        data = bytes(rng.getrandbits(8) for _ in range(dlc))
        x = rng.random()
        if x < 0.5 and self.messages:
            m = rng.choice(self.messages)
            return Step(now, "frame", frame_id=m.frame_id, data=data, extended=m.is_extended)
        if x < 0.8:
            return Step(now, "frame", frame_id=rng.randint(0, 0x7FF), data=data)
        return Step(now, "frame", frame_id=rng.getrandbits(29), data=data, extended=True)

    def bad_field(self, now: float) -> Step:
        """A valid frame with exactly one field outside its DBC range."""
        m = self.rng.choice(self.messages)
        step = self.frame(m, now)
        spec = self.rng.choice(m.signals)
        data = patch_raw(step.data, spec, out_of_range_raw(spec, self.rng))
        return Step(now, "frame", frame_id=step.frame_id, data=data, extended=step.extended)

    def truncated(self, now: float) -> Step:
        step = self.valid(now)
        n = self.rng.randint(0, max(0, len(step.data) - 1))
        return Step(now, "frame", frame_id=step.frame_id, data=step.data[:n], extended=step.extended)


class ChademoHostile(Hostile):
    """A CHAdeMO vehicle that follows §7 well enough to reach charging, then misbehaves at random."""

    def __init__(self, target: Target, rng: random.Random) -> None:
        super().__init__(target, rng)
        self.messages = [
            target.codec.message(n)
            for n in ("VehicleChargeLimits", "VehicleChargeTime", "VehicleChargeControl")
        ]
        polite = self.mood == "cooperative"
        proto = rng.choice((1, 2, 2, 2, 3) if polite else (0, 1, 2, 2, 2, 3))
        target_v = rng.choice((410, 410, 360, 177, rng.randint(0, 1000)))
        if polite:  # compatible with the charger, so the session gets to charging
            max_v = float(getattr(target.config, "max_voltage", 500.0))
            target_v = int(min(rng.choice((410, 410, 360, 177)), max_v, max(60.0, max_v - 10.0)))
        self.values = {
            0x100: {
                "MinChargeCurrent": 6,
                "MinBatteryVoltage": 0,
                "MaxBatteryVoltage": min(1000, target_v + rng.choice((25, 25, 0, -50, 300)))
                if target_v > 50
                else 435,
                "ChargedRateRefConst": 100,
            },
            0x101: {
                "MaxChargeTime10s": rng.choice((0xFF, 0xFF, 0, 6, 30)),
                "MaxChargeTimeMin": rng.choice((90, 0, 1, 3)),
                "EstChargeTimeMin": 0,
                "RatedCapacity": 40.0,
            },
            0x102: {
                "ProtocolNumberEV": proto,
                "TargetBatteryVoltage": target_v,
                "ChargeCurrentRequest": 0,
                "FaultOverVoltage": 0,
                "FaultUnderVoltage": 0,
                "FaultCurrentDeviation": 0,
                "FaultHighTemperature": 0,
                "FaultVoltageDeviation": 0,
                "ChargingEnabled": 0,
                "ShiftPosition": 0,
                "ChargingSystemFault": 0,
                "ContactorOpen": 1 if proto >= 2 else 0,
                "StopBeforeCharging": 0,
                "DynamicControlLegacy": 0,
                "DischargeCompatible": 0,
                "ChargedRate": 50,
            },
        }
        self.period = 0.225 if rng.random() < 0.05 else 0.1
        self.wake_at = rng.choice((0.0, 0.2, 0.2, 1.0) if polite else (0.0, 0.2, 1.0, rng.uniform(0.0, 10.0)))
        self.permit_at = self.wake_at + rng.choice(
            (0.5, 3.2) if polite else (0.5, 3.2, rng.uniform(0.0, 10.0))
        )
        self.never_permits = not polite and rng.random() < 0.1
        self.contactor_delay = rng.choice((0.3, 1.2, 1.2, rng.uniform(0.0, 5.0)))
        self.request_delay = rng.choice((0.2, 1.7, 1.7, rng.uniform(0.0, 5.0)))
        self.battery_v = rng.uniform(150.0, 480.0)
        self.d2_at: float | None = None
        self.closed_at: float | None = None
        self.permitted = False
        self.stopping_seen = False
        self.welded = rng.random() < 0.03
        self.charged = False

    def set(self, **values: Value) -> None:
        for name, value in values.items():
            for table in self.values.values():
                if name in table:
                    table[name] = value

    def tick(self, now: float) -> list[Step]:
        steps = self.cooperate(now)
        if now < self.wake_at:
            return steps + (self.mutation(now) if self.mood == "chaos" else [])
        core: Any = self.t.core
        if self.mood == "cooperative" and core.stage is not CS.CHARGING and not self.charged:
            return steps + self.cycle_frames(now)  # get deep first: misbehave once charging
        self.charged = True
        return steps + super().tick(now)

    def cooperate(self, now: float) -> list[Step]:
        """The protocol as a well-behaved Leaf would walk it (§7, §9)."""
        core: Any = self.t.core
        h = self.t.harness
        stage = core.stage
        steps: list[Step] = []
        if not self.permitted and not self.never_permits and now >= self.permit_at:
            self.permitted = True
            self.set(ChargingEnabled=1)
            steps.append(Step(now, "line", name="k", value=1.0))
        if h.is_on("d2") and self.d2_at is None:
            self.d2_at = now
        if self.d2_at is not None and self.closed_at is None and now >= self.d2_at + self.contactor_delay:
            self.closed_at = now
            steps.append(Step(now, "plant", name="battery_voltage", value=self.battery_v))
            steps.append(Step(now, "plant", name="contactors_closed", value=1.0))
            if self.welded:
                steps.append(Step(now, "plant", name="welded", value=1.0))
            self.set(ContactorOpen=0)
        if (
            self.closed_at is not None
            and stage is CS.PRECHARGE
            and now >= self.closed_at + self.request_delay
            and not self.values[0x102]["ChargeCurrentRequest"]
        ):
            self.set(ChargeCurrentRequest=self.rng.choice((2, 50, 125, 255, self.rng.randint(1, 255))))
        if stage is CS.CHARGING and self.rng.random() < 0.05:
            self.set(ChargeCurrentRequest=self.rng.randint(0, 255))
        if stage in (CS.STOPPING, CS.WELDING_CHECK) and not self.stopping_seen:
            self.stopping_seen = True
            self.set(ChargingEnabled=0, ChargeCurrentRequest=0)
        if self.stopping_seen and h.contactors_closed and self.t.output_current() <= 5.0:
            steps.append(Step(now, "plant", name="contactors_closed", value=0.0))
            steps.append(Step(now, "line", name="k", value=0.0))
            self.set(ContactorOpen=1)
        # the vehicle-side battery follows the charge a little (a jump now and then is a mutation)
        if h.contactors_closed and self.rng.random() < 0.02:
            self.battery_v = min(1000.0, self.battery_v + self.rng.uniform(-2.0, 5.0))
            steps.append(Step(now, "plant", name="battery_voltage", value=self.battery_v))
        return steps

    def mutation(self, now: float) -> list[Step]:
        rng = self.rng
        if rng.random() < 0.4:
            return super().mutation(now)
        x = rng.random()
        if x < 0.25:  # a fault flag, a stop request, a shift lever
            name = rng.choice(
                (
                    "FaultOverVoltage",
                    "FaultUnderVoltage",
                    "FaultCurrentDeviation",
                    "FaultHighTemperature",
                    "FaultVoltageDeviation",
                    "ShiftPosition",
                    "ChargingSystemFault",
                    "StopBeforeCharging",
                    "ChargingEnabled",
                    "ContactorOpen",
                )
            )
            self.set(**{name: 1 - int(self.values[0x102][name])})
            return []
        if x < 0.4:
            return [Step(now, "line", name="k", value=float(rng.random() < 0.5))]
        if x < 0.6:
            field = rng.choice(
                ("contactors_closed", "battery_voltage", "insulation_resistance_ohm", "connected")
            )
            value = {
                "contactors_closed": float(rng.random() < 0.5),
                "battery_voltage": rng.choice((0.0, 50.0, 399.0, 600.0, 1200.0, rng.uniform(0, 1000))),
                "insulation_resistance_ohm": rng.choice((0.0, 1e3, 4.9e4, 5e4, 1e6, 5e6)),
                "connected": float(rng.random() < 0.8),
            }[field]
            return [Step(now, "plant", name=field, value=value)]
        if x < 0.7:
            return [Step(now, "operator", name=rng.choice(("stop", "power_fault")))]
        if x < 0.85:
            self.set(ChargeCurrentRequest=rng.randint(0, 255))
            return []
        self.set(TargetBatteryVoltage=rng.randint(0, 1000), ProtocolNumberEV=rng.randint(0, 3))
        return []


HOSTILES: dict[str, type[Hostile]] = {"chademo": ChademoHostile}


def charger_config(protocol: str, rng: random.Random) -> dict[str, Any]:
    """Random charger configuration overrides for a session (valid for the protocol's config class)."""
    if protocol == "gbt":
        return _gbt_config(rng)
    if protocol == "ccs":
        return _ccs_config(rng)
    if protocol != "chademo" or rng.random() < 0.4:
        return {}
    cfg: dict[str, Any] = {
        "max_current": float(rng.choice((125, 200, 255, rng.randint(1, 255)))),
        "max_voltage": float(rng.choice((500, 500, 1000, rng.randint(100, 1000)))),
        "protocol_number": rng.choice((1, 2, 2, 3, 0)),
        "welding_detection": rng.random() < 0.9,
        "lock_before_insulation": rng.random() < 0.8,
        "honour_stop_before_charging": rng.random() < 0.8,
        "dynamic_control": rng.random() < 0.1,
    }
    if rng.random() < 0.3:
        cfg["insulation_test_voltage"] = float(rng.randint(20, 600))
    if rng.random() < 0.2:
        cfg["max_charge_time_s"] = float(rng.choice((5, 30, 120, 600)))
    if rng.random() < 0.2:
        cfg["max_power"] = float(rng.choice((1000, 20000, 62500, 150000)))
    return cfg


def _gbt_config(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.3:
        return {}
    max_v = float(rng.choice((500, 750, 750, 950, rng.randint(200, 1000))))
    cfg: dict[str, Any] = {
        "max_voltage": max_v,
        "min_voltage": float(min(rng.choice((50, 150, 150, 200)), max_v - 50)),
        "max_current": float(rng.choice((80, 125, 250, 250, 400, rng.randint(1, 400)))),
        "max_power": float(rng.choice((30_000, 60_000, 120_000, 250_000))),
        "ccs_length": rng.choice((8, 8, 7)),
        "tp_window": rng.choice((None, None, None, 1, 2, 7)),
        "max_rehandshakes": rng.choice((3, 3, 0, 1)),
    }
    if rng.random() < 0.2:
        cfg["cts_time"] = "2024-05-01T12:00:00"
    if rng.random() < 0.2:
        cfg["insulation_test_voltage"] = float(rng.randint(50, 1000))
    if rng.random() < 0.1:
        cfg["max_charge_time_s"] = float(rng.choice((5, 30, 120)))
    return cfg


def _ccs_config(rng: random.Random) -> dict[str, Any]:
    from ..protocols.ccs.timing import REVISIONS

    if rng.random() < 0.3:
        return {}
    max_v = float(rng.choice((500, 500, 920, 1000, rng.randint(200, 1500))))
    cfg: dict[str, Any] = {
        "revision": rng.choice(sorted(REVISIONS)),
        "connector": rng.choice(("ccs2", "ccs2", "ccs1")),
        "max_voltage": max_v,
        "min_voltage": float(min(rng.choice((50, 150, 150, 200)), max_v - 50)),
        "max_current": float(rng.choice((125, 200, 500, rng.randint(1, 1000)))),
        "max_power": float(rng.choice((50_000, 150_000, 350_000))),
        "authorization_delay": rng.choice((0.0, 1.0, 1.0, 5.0)),
        "lock_time": rng.choice((0.1, 0.5, 0.5, 2.0)),
        "authorize": rng.random() < 0.97,
    }
    if rng.random() < 0.2:
        cfg["cable_check_voltage"] = float(rng.randint(50, 1000))
    if rng.random() < 0.2:
        cfg["current_regulation_tolerance"] = None
    return cfg


def hostile_for(protocol: str) -> type[Hostile]:
    if protocol == "gbt":
        from .vehicles_gbt import GbtHostile

        return GbtHostile
    if protocol == "ccs":
        from .vehicles_ccs import CcsHostile

        return CcsHostile
    return HOSTILES.get(protocol, Hostile)
