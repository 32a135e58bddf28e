"""The hostile CCS vehicle: the simulated EVCC (:class:`~charger_sim.protocols.ccs.vehicle.CcsVehicle`)
on a random pack and configuration, its bridge frames mutated, plus the bridge profile's own faults:
requests out of sequence, EVReady withdrawn, error codes, stop requests, a frozen or jumping alive
counter, targets above the EV's maxima, maxima changed or not available mid-session, the pilot
(S2 opened or closed, no EV load, the diode, CP shorted, worn CP / PP contacts), the plug, the
contactors, the battery voltage and the insulation.  § numbers refer to the CCS fact sheet.
"""

from __future__ import annotations

import math
import random

from ..bms.battery import Battery, PackSpec
from ..protocols.base import Core
from ..protocols.ccs.bridge import Request
from ..protocols.ccs.electrical import CP_PIN_LINE, PP_PIN_LINE, ev_load_ohm
from ..protocols.ccs.vehicle import CcsVehicle, CcsVehicleConfig
from .driven import HOLD_S, Driven
from .script import Step

# Packs of the CCS vehicle profiles (scenarios/vehicles/*.yaml, scenarios/ccs_basic.yaml).
PACKS = (
    PackSpec(chemistry="nmc", series=96, parallel=2, cell_capacity_ah=56.3, max_charge_current_a=125.0),
    PackSpec(
        chemistry="nmc", series=108, parallel=2, cell_capacity_ah=39.0, cell_resistance_ohm=0.0012,
        max_charge_current_a=300.0, thermal_mass_j_per_k=220_000.0, cooling_w_per_k=25.0,
    ),
    PackSpec(
        chemistry="nmc", series=192, parallel=2, cell_capacity_ah=55.6, cell_resistance_ohm=0.0012,
        max_charge_current_a=350.0, thermal_mass_j_per_k=300_000.0, cooling_w_per_k=40.0,
    ),
    PackSpec(chemistry="lfp", series=100, parallel=1, cell_capacity_ah=60.0, max_charge_current_a=80.0),
)  # fmt: skip
REQUESTS = tuple(int(r) for r in Request)


class CcsHostile(Driven):
    """A CCS vehicle that walks DIN 70121 far enough to reach current demand, then misbehaves."""

    vehicle_lines = ("cp_ev_ohm", "cp_ev_diode", "pp_contact_ohm")
    deep_stages = frozenset({"current_demand"})
    packs: tuple[PackSpec, ...] = PACKS

    def build(self, rng: random.Random) -> Core:
        cfg = self.t.config
        polite = self.mood == "cooperative"
        packs = list(self.packs)
        fitting = [p for p in packs if cfg.min_voltage < p.max_voltage + 10.0 <= cfg.max_voltage]
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
        config = CcsVehicleConfig(
            revision=cfg.revision,
            target_soc=min(100.0, rng.choice((80.0, 90.0, 100.0, soc + rng.uniform(0.05, 2.0)))),
            max_current=None if rng.random() < 0.7 else float(rng.randint(1, 500)),
            max_power_kw=None if rng.random() < 0.7 else float(rng.randint(10, 350)),
            link_delay=rng.choice((0.5, 2.5, 2.5, 6.0)),
            link_fails=not polite and rng.random() < 0.02,
            cp_c_delay=rng.choice((0.0, 0.2, 0.2, 1.0)),
            switches_to_c=polite or rng.random() < 0.97,
            ventilation=rng.random() < 0.05,
            diode_ok=polite or rng.random() < 0.98,
            precharge_current=rng.choice((2.0, 2.0, 1.0, 0.5)),
            stop_reaction=rng.choice((0.0, 0.2, 0.2, 0.45)),
            cp_b_at_soc=None if rng.random() < 0.9 else soc + rng.uniform(0.0, 1.0),
            resume_after_s=rng.choice((None, 1.0, 5.0)),
            insulation_resistance_ohm=5.0e6 if polite or rng.random() < 0.95 else rng.choice((1e3, 2e4, 6e4)),
        )
        return CcsVehicle(config, battery, self.shadow, self.t.codec)

    def protocol_mutation(self, now: float) -> list[Step]:
        rng = self.rng
        x = rng.random()
        secs = rng.choice(HOLD_S)
        if x < 0.4:
            return self.status_fault(now, secs)
        if x < 0.6:
            return self.limit_fault(now, secs)
        if x < 0.8:
            return self.pilot_fault(now, secs)
        return self.plant_fault(now)

    def status_fault(self, now: float, secs: float) -> list[Step]:
        """EvStatus: requests, readiness, errors, stop requests, the alive counter (§4, §5, §9)."""
        rng = self.rng
        field, raw = rng.choice(
            (
                ("EvRequest", rng.choice((*REQUESTS, rng.getrandbits(8)))),
                ("EvReady", rng.choice((0, 0, 2, 3))),
                ("EvErrorCode", rng.randint(1, 15)),
                ("EvStopRequest", rng.choice((1, 1, 2, 3))),
                ("EvChargingComplete", rng.choice((1, 2, 3))),
                ("EvAliveCounter", rng.randint(0, 15)),  # frozen (or SNA) for a while; a jump after
                ("EvCpState", rng.randint(0, 15)),
                ("EvContactorState", rng.randint(0, 3)),
            )
        )
        self.hold(
            "EvStatus",
            field,
            raw,
            secs if field != "EvAliveCounter" else rng.choice((0.3, 0.95, 1.5, 3.0)),
            now,
        )
        return []

    def limit_fault(self, now: float, secs: float) -> list[Step]:
        """Targets above the maxima, maxima lowered, raised or not available (SNA) mid-session."""
        rng = self.rng
        core = self.core
        ev_max = core._max_current() if isinstance(core, CcsVehicle) else 125.0
        x = rng.random()
        if x < 0.45:
            amps = rng.choice((ev_max + rng.uniform(0.1, 200.0), rng.uniform(0.0, 1200.0), 6553.5, 0.0))
            self.hold_value("EvTargets", "EvTargetCurrent", min(amps, 6553.5), secs, now)
        elif x < 0.8:
            amps = rng.choice((rng.uniform(0.0, ev_max), 0.0, ev_max * 2.0, 6553.5))
            self.hold_value("EvMaxLimits", "EvMaxCurrent", min(amps, 6553.5), secs, now)
        else:
            signal = rng.choice(("EvTargetVoltage", "EvMaxVoltage", "EvMaxPower"))
            message = "EvTargets" if signal == "EvTargetVoltage" else "EvMaxLimits"
            self.hold_value(message, signal, rng.choice((0.0, rng.uniform(0.0, 1500.0), 6553.5)), secs, now)
        return []

    def pilot_fault(self, now: float, secs: float) -> list[Step]:
        """CP and PP (§2, §3): S2 stuck, no EV load, no diode, CP shorted, worn contacts."""
        rng = self.rng
        x = rng.random()
        if x < 0.45:
            ohm = rng.choice(
                (ev_load_ohm(False), ev_load_ohm(True), ev_load_ohm(True, ventilation=True), math.inf)
            )
            self.force("line:cp_ev_ohm", ohm if rng.random() < 0.85 else rng.uniform(0.0, 5000.0), secs, now)
            return []
        if x < 0.55:
            self.force("line:cp_ev_diode", 0.0, secs, now)
            return []
        if x < 0.7:
            self.force("line:pp_contact_ohm", rng.choice((0.0, 200.0, 1000.0, 3000.0, math.inf)), secs, now)
            return []
        if x < 0.8:
            return self.pulse("line", "cp_short", 1.0, 0.0, rng.choice((0.05, 0.15, 1.0)), now)
        if x < 0.9:
            volts = rng.choice((0.0, 4.5, 9.0, 6.0, 12.0))
            return self.pulse("line", CP_PIN_LINE, volts, math.nan, rng.choice((0.05, 0.15, 1.0)), now)
        return self.pulse(
            "line", PP_PIN_LINE, rng.choice((0.0, 100.0, 5000.0)), math.nan, rng.choice((0.05, 1.0)), now
        )
