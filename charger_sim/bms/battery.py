"""Battery-pack physics shared by every simulated vehicle (CHAdeMO, GB/T, CCS).

A pack is ``series`` groups of ``parallel`` cells.  Each group has its own capacity, resistance,
SOC and temperature; the spread is drawn once from ``random.Random(seed)``.  Pure and deterministic:
no clocks, threads, I/O or CAN; time only advances through :meth:`Battery.step`.  ``current_a`` is
the current flowing *into* the pack (positive = charging).

* OCV: per-chemistry table of (SOC %, cell volts), linearly interpolated; outside 0..100 % the
  end segments are extrapolated linearly (so an overcharged group keeps rising in voltage).
* Cell voltage of a group under current: ``ocv(soc) + current * R_group``.
* Coulomb counting per group with the group's own capacity (no efficiency loss).
* Thermal: one lumped node per group with ``thermal_mass / series`` and ``cooling / series``,
  heated by ``I² R_group`` plus any injected heat, integrated exactly (exponential solution of
  the linear ODE over a step), so it is unconditionally stable for any ``dt``.
* No conduction between groups: the group temperature spread comes from the resistance spread.
"""

from __future__ import annotations

import bisect
import math
import operator
import random
from dataclasses import dataclass
from functools import reduce
from itertools import repeat

__all__ = [
    "CHEMISTRIES", "CV_MARGIN_V", "PROTECTIONS", "PROTECTION_CELL_OVER_VOLTAGE",
    "PROTECTION_CELL_UNDER_VOLTAGE", "PROTECTION_OVER_TEMPERATURE", "Battery", "Chemistry", "PackSpec",
]

PROTECTION_CELL_OVER_VOLTAGE = "cell_over_voltage"
PROTECTION_CELL_UNDER_VOLTAGE = "cell_under_voltage"
PROTECTION_OVER_TEMPERATURE = "over_temperature"
PROTECTIONS = frozenset(
    (PROTECTION_CELL_OVER_VOLTAGE, PROTECTION_CELL_UNDER_VOLTAGE, PROTECTION_OVER_TEMPERATURE)
)

#: The CV solution keeps the highest cell this far below ``charge_cutoff_v`` so that rounding can
#: never push ``max_cell_voltage(charge_current_limit())`` above the cutoff.
CV_MARGIN_V = 1e-9

_SPREAD_CLIP_SIGMA = 3.0  # random draws are clipped to ±3 sigma
_MAX_REL_SPREAD = 0.3  # keeps every clipped factor (1 ± 3·spread) strictly positive


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    _finite(name, value)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>=' if allow_zero else '>'} 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Chemistry:
    """Cell chemistry: OCV curve and voltage limits of one cell."""

    name: str
    ocv: tuple[tuple[float, float], ...]  # (soc_percent 0..100, cell open-circuit volts)
    charge_cutoff_v: float  # CV limit the BMS charges up to
    over_voltage_v: float  # protection trip
    under_voltage_v: float  # protection trip
    nominal_v: float

    def __post_init__(self) -> None:
        if len(self.ocv) < 2:
            raise ValueError(f"chemistry {self.name!r}: OCV table needs at least two points")
        for soc, volts in self.ocv:
            _finite(f"chemistry {self.name!r} OCV SOC", soc)
            _positive(f"chemistry {self.name!r} OCV voltage", volts)
        if self.ocv[0][0] != 0.0 or self.ocv[-1][0] != 100.0:
            raise ValueError(f"chemistry {self.name!r}: OCV table must span SOC 0..100 %")
        for (s0, v0), (s1, v1) in zip(self.ocv, self.ocv[1:], strict=False):
            if not (s1 > s0 and v1 > v0):
                raise ValueError(
                    f"chemistry {self.name!r}: OCV table must be strictly increasing in SOC and voltage "
                    f"(({s0}, {v0}) -> ({s1}, {v1}))"
                )
        for field in ("charge_cutoff_v", "over_voltage_v", "under_voltage_v", "nominal_v"):
            _positive(f"chemistry {self.name!r} {field}", getattr(self, field))
        if not self.under_voltage_v < self.nominal_v < self.charge_cutoff_v < self.over_voltage_v:
            raise ValueError(f"chemistry {self.name!r}: need under_voltage_v < nominal_v < charge_cutoff_v "
                             "< over_voltage_v")

    def cell_ocv(self, soc: float) -> float:
        """Cell open-circuit voltage at ``soc`` percent (linear; end segments extrapolated)."""
        socs, volts = _ocv_arrays(self)
        i = min(max(bisect.bisect_left(socs, soc), 1), len(socs) - 1)
        s0, s1, v0, v1 = socs[i - 1], socs[i], volts[i - 1], volts[i]
        if soc in (s0, s1):
            return v0 if soc == s0 else v1
        return v0 + (soc - s0) * (v1 - v0) / (s1 - s0)


_OCV_ARRAYS: dict[tuple[tuple[float, float], ...], tuple[list[float], list[float]]] = {}
_OCV_SEGMENTS: dict[tuple[tuple[float, float], ...], list[tuple[float, float, float, float]]] = {}
_OCV_BY_CHEMISTRY: dict[int, tuple[Chemistry, list[float], list[tuple[float, float, float, float]]]] = {}


def _ocv_many(chem: Chemistry, socs_in: list[float]) -> list[float]:
    """``cell_ocv`` for many cells at once (the hot path of :meth:`Battery.step`)."""
    tables = _OCV_BY_CHEMISTRY.get(id(chem))
    if tables is None or tables[0] is not chem:  # (hashing the OCV table on every step is slow)
        tables = _OCV_BY_CHEMISTRY[id(chem)] = (chem, _ocv_arrays(chem)[0], _ocv_segments(chem))
    _, socs, seg = tables
    bl = bisect.bisect_left
    lo = bl(socs, min(socs_in))
    if lo == bl(socs, max(socs_in)):  # every cell on one segment (the usual case): same arithmetic
        s0, v0, dv, ds = seg[lo]
        return [v0 + (x - s0) * dv / ds for x in socs_in]
    return [v0 + (x - s0) * dv / ds for x in socs_in for s0, v0, dv, ds in (seg[bl(socs, x)],)]


def _ocv_segments(chem: Chemistry) -> list[tuple[float, float, float, float]]:
    """(s0, v0, v1 - v0, s1 - s0) of the segment used for each ``bisect_left`` result 0..n."""
    segments = _OCV_SEGMENTS.get(chem.ocv)
    if segments is None:
        socs, volts = _ocv_arrays(chem)
        last = len(socs) - 1
        segments = []
        for i in range(len(socs) + 1):
            k = 1 if i < 1 else (last if i > last else i)
            segments.append((socs[k - 1], volts[k - 1], volts[k] - volts[k - 1], socs[k] - socs[k - 1]))
        _OCV_SEGMENTS[chem.ocv] = segments
    return segments


def _ocv_arrays(chem: Chemistry) -> tuple[list[float], list[float]]:
    """The OCV table as two sorted lists for bisection (built once per table)."""
    arrays = _OCV_ARRAYS.get(chem.ocv)
    if arrays is None:
        arrays = ([p[0] for p in chem.ocv], [p[1] for p in chem.ocv])
        _OCV_ARRAYS[chem.ocv] = arrays
    return arrays


# Published-shape OCV curves (rest voltage after relaxation, ~25 °C).
_NMC = Chemistry(
    name="nmc",
    ocv=(
        (0.0, 3.00), (2.0, 3.25), (5.0, 3.42), (10.0, 3.53), (15.0, 3.61), (20.0, 3.67),
        (30.0, 3.74), (40.0, 3.80), (50.0, 3.86), (60.0, 3.93), (70.0, 4.00), (80.0, 4.05),
        (90.0, 4.09), (95.0, 4.13), (98.0, 4.16), (100.0, 4.20),
    ),
    charge_cutoff_v=4.15,
    over_voltage_v=4.25,
    under_voltage_v=2.8,
    nominal_v=3.65,
)
_LFP = Chemistry(
    name="lfp",
    ocv=(
        (0.0, 2.50), (2.0, 2.90), (5.0, 3.10), (10.0, 3.20), (20.0, 3.25), (30.0, 3.27),
        (40.0, 3.285), (50.0, 3.29), (60.0, 3.30), (70.0, 3.31), (80.0, 3.32), (90.0, 3.33),
        (95.0, 3.35), (98.0, 3.45), (100.0, 3.65),
    ),
    charge_cutoff_v=3.60,
    over_voltage_v=3.75,
    under_voltage_v=2.5,
    nominal_v=3.2,
)
_LMO = Chemistry(  # LMO/LNO blend of the early (24 kWh) Nissan Leaf
    name="lmo",
    ocv=(
        (0.0, 3.00), (5.0, 3.45), (10.0, 3.58), (20.0, 3.68), (30.0, 3.74), (40.0, 3.79),
        (50.0, 3.84), (60.0, 3.89), (70.0, 3.95), (80.0, 4.01), (90.0, 4.07), (95.0, 4.10),
        (100.0, 4.15),
    ),
    charge_cutoff_v=4.12,
    over_voltage_v=4.22,
    under_voltage_v=2.8,
    nominal_v=3.75,
)
CHEMISTRIES: dict[str, Chemistry] = {c.name: c for c in (_NMC, _LFP, _LMO)}


@dataclass(frozen=True, slots=True)
class PackSpec:
    """Static description of a pack.  Defaults: a 96s2p 56.3 Ah NMC pack (~40 kWh)."""

    chemistry: str = "nmc"
    series: int = 96
    parallel: int = 2
    cell_capacity_ah: float = 56.3
    cell_resistance_ohm: float = 0.0015  # one cell's DC internal resistance
    max_charge_current_a: float = 125.0  # the BMS's own limit
    taper_start_soc: float = 80.0  # above this the request tapers linearly ...
    taper_end_current_a: float = 10.0  # ... down to this at 100 % SOC
    derate_low_c: float = 15.0  # below: linear derating to 0 A at min_charge_temperature_c
    derate_high_c: float = 35.0  # above: linear derating to 0 A at over_temperature_c
    over_temperature_c: float = 55.0  # protection trip
    thermal_mass_j_per_k: float = 150_000.0  # whole pack
    cooling_w_per_k: float = 15.0  # whole pack, to ambient
    capacity_spread: float = 0.01  # 1-sigma relative cell capacity spread
    resistance_spread: float = 0.05  # 1-sigma relative cell resistance spread
    soc_spread: float = 0.5  # 1-sigma initial group SOC spread, percentage points
    min_charge_temperature_c: float = 0.0  # at or below this the BMS requests 0 A

    def __post_init__(self) -> None:
        if self.chemistry not in CHEMISTRIES:
            raise ValueError(f"unknown chemistry {self.chemistry!r}; known: {', '.join(sorted(CHEMISTRIES))}")
        for name in ("series", "parallel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("cell_capacity_ah", "cell_resistance_ohm", "max_charge_current_a",
                     "thermal_mass_j_per_k"):
            _positive(name, getattr(self, name))
        for name in ("taper_end_current_a", "cooling_w_per_k", "capacity_spread", "resistance_spread",
                     "soc_spread"):
            _positive(name, getattr(self, name), allow_zero=True)
        for name in ("taper_start_soc", "derate_low_c", "derate_high_c", "over_temperature_c",
                     "min_charge_temperature_c"):
            _finite(name, getattr(self, name))
        if not 0.0 <= self.taper_start_soc <= 100.0:
            raise ValueError(f"taper_start_soc must be within 0..100 %, got {self.taper_start_soc!r}")
        if self.taper_end_current_a > self.max_charge_current_a:
            raise ValueError(
                f"taper_end_current_a ({self.taper_end_current_a}) must not exceed "
                f"max_charge_current_a ({self.max_charge_current_a})"
            )
        t = (self.min_charge_temperature_c, self.derate_low_c, self.derate_high_c, self.over_temperature_c)
        if not t[0] < t[1] <= t[2] < t[3]:
            raise ValueError(
                "need min_charge_temperature_c < derate_low_c <= derate_high_c < over_temperature_c, "
                f"got {' / '.join(map(str, t))}"
            )
        for name in ("capacity_spread", "resistance_spread"):
            if getattr(self, name) >= _MAX_REL_SPREAD:
                raise ValueError(f"{name} must be < {_MAX_REL_SPREAD}, got {getattr(self, name)!r}")
        if self.soc_spread > 20.0:
            raise ValueError(f"soc_spread must be <= 20 percentage points, got {self.soc_spread!r}")

    @property
    def cell_chemistry(self) -> Chemistry:
        return CHEMISTRIES[self.chemistry]

    @property
    def capacity_ah(self) -> float:
        return self.parallel * self.cell_capacity_ah

    @property
    def nominal_voltage(self) -> float:
        return self.series * self.cell_chemistry.nominal_v

    @property
    def capacity_kwh(self) -> float:
        return self.capacity_ah * self.nominal_voltage / 1000.0

    @property
    def max_voltage(self) -> float:
        """Pack voltage with every group at the charge cutoff (``series * charge_cutoff_v``)."""
        return self.series * self.cell_chemistry.charge_cutoff_v

    @property
    def min_voltage(self) -> float:
        """Pack voltage with every group at the under-voltage trip (``series * under_voltage_v``)."""
        return self.series * self.cell_chemistry.under_voltage_v

    @property
    def pack_resistance_ohm(self) -> float:
        return self.series * self.cell_resistance_ohm / self.parallel


class Battery:
    """A pack in motion: per-group SOC and temperature, advanced by :meth:`step`."""

    def __init__(self, spec: PackSpec, *, soc: float, temperature_c: float = 25.0, ambient_c: float = 25.0,
                 seed: int = 0) -> None:
        _finite("soc", soc)
        if not 0.0 <= soc <= 100.0:
            raise ValueError(f"initial soc must be within 0..100 %, got {soc!r}")
        _finite("temperature_c", temperature_c)
        _finite("ambient_c", ambient_c)
        self.spec = spec
        self._chem = spec.cell_chemistry
        rng = random.Random(seed)

        def factor(sigma: float) -> float:
            draw = rng.gauss(0.0, 1.0)
            return 1.0 + sigma * max(-_SPREAD_CLIP_SIGMA, min(_SPREAD_CLIP_SIGMA, draw))

        n, p = spec.series, spec.parallel
        # Draw order is part of the determinism contract: capacities, resistances, then SOC offsets.
        cap_factors = [[factor(spec.capacity_spread) for _ in range(p)] for _ in range(n)]
        res_factors = [[factor(spec.resistance_spread) for _ in range(p)] for _ in range(n)]
        offsets = [spec.soc_spread * (factor(1.0) - 1.0) for _ in range(n)]
        self._capacity_ah = [spec.cell_capacity_ah * sum(f) for f in cap_factors]
        self._resistance_ohm = [spec.cell_resistance_ohm / sum(1.0 / x for x in f) for f in res_factors]
        self._soc = self._initial_socs(soc, offsets)
        self._ocv = [self._chem.cell_ocv(x) for x in self._soc]  # cache, refreshed whenever _soc changes
        self._ocv_sum: float | None = None
        self._soc_mean: float | None = None
        self._soc_report: float | None = None  # cache of ``soc`` (clamped mean)
        self._temp_c = [float(temperature_c)] * n
        self._temp_hot: float | None = None  # cache of ``temperature_c``
        self._temp_cold: float | None = None  # cache of ``min_temperature_c``
        self._cell_max: tuple[float, float] | None = None  # (current, max cell voltage) cache
        self._ambient_c = float(ambient_c)
        self._extra_heat_w = [0.0] * n
        self._sum_resistance = math.fsum(self._resistance_ohm)
        self.energy_in_wh = 0.0  # ∫ V·I dt while charging
        self.energy_out_wh = 0.0  # ∫ V·|I| dt while discharging
        self.charge_ah = 0.0  # net charge that entered the pack
        self.heat_j = 0.0  # Joule heat generated (I²R only, not injected heat)
        self.elapsed_s = 0.0
        # Per-step work that only depends on the current (repeated while charging at a constant
        # current): (gain, capacities, [gain / capacity]) and (i², ambient, cooling, resistances,
        # [steady temperature], I²R sum).  Each is checked against all it came from, so the reuse
        # gives the very same floats.
        self._gain_memo: tuple[float, list[float], list[float]] | None = None
        self._heat_memo: tuple[float, float, float, list[float], list[float], float] | None = None
        self._max_resistance = max(self._resistance_ohm)

    @staticmethod
    def _initial_socs(soc: float, offsets: list[float]) -> list[float]:
        """Centre the offsets on ``soc`` and squeeze them so every group lies in 0..100 %."""
        mean = math.fsum(offsets) / len(offsets)
        centred = [o - mean for o in offsets]
        hi, lo = max(centred), min(centred)
        scale = 1.0
        if soc + hi > 100.0:  # implies hi > 0
            scale = (100.0 - soc) / hi
        if soc + lo < 0.0:  # implies lo < 0
            scale = min(scale, soc / -lo)
        return [min(100.0, max(0.0, soc + scale * o)) for o in centred]

    @property
    def soc(self) -> float:
        """Pack SOC in % as the BMS reports it: the mean of the group SOCs, clamped to 0..100."""
        report = self._soc_report
        if report is None:
            if self._soc_mean is None:
                self._soc_mean = math.fsum(self._soc) / len(self._soc)
            report = self._soc_report = min(100.0, max(0.0, self._soc_mean))
        return report

    @property
    def min_soc(self) -> float:
        return min(100.0, max(0.0, min(self._soc)))

    @property
    def max_soc(self) -> float:
        return min(100.0, max(0.0, max(self._soc)))

    @property
    def group_socs(self) -> tuple[float, ...]:
        """Raw per-group SOC in % (not clamped: an over-charged group reads above 100)."""
        return tuple(self._soc)

    @property
    def group_capacities_ah(self) -> tuple[float, ...]:
        return tuple(self._capacity_ah)

    @property
    def group_resistances_ohm(self) -> tuple[float, ...]:
        return tuple(self._resistance_ohm)

    @property
    def group_temperatures_c(self) -> tuple[float, ...]:
        return tuple(self._temp_c)

    @property
    def temperature_c(self) -> float:
        """Pack temperature as reported: the hottest group."""
        hot = self._temp_hot
        if hot is None:
            hot = self._temp_hot = max(self._temp_c)
        return hot

    @property
    def min_temperature_c(self) -> float:
        cold = self._temp_cold
        if cold is None:
            cold = self._temp_cold = min(self._temp_c)
        return cold

    @property
    def ambient_c(self) -> float:
        return self._ambient_c

    @ambient_c.setter
    def ambient_c(self, value: float) -> None:
        _finite("ambient_c", value)
        self._ambient_c = float(value)

    def ocv(self) -> float:
        """Pack open-circuit voltage: the sum of the group OCVs."""
        if self._ocv_sum is None:
            self._ocv_sum = math.fsum(self._ocv)
        return self._ocv_sum

    def terminal_voltage(self, current_a: float) -> float:
        """Pack voltage with ``current_a`` flowing in: OCV + I · ΣR_group."""
        return self.ocv() + current_a * self._sum_resistance

    def cell_voltages(self, current_a: float) -> list[float]:
        """One voltage per series group, including its own I·R."""
        return list(map(operator.add, self._ocv, map(operator.mul, repeat(current_a), self._resistance_ohm)))

    def max_cell_voltage(self, current_a: float) -> float:
        cached = self._cell_max
        if cached is not None and cached[0] == current_a:
            return cached[1]
        volts = max(self.cell_voltages(current_a))
        self._cell_max = (current_a, volts)
        return volts

    def min_cell_voltage(self, current_a: float) -> float:
        return min(self.cell_voltages(current_a))

    def temperature_derating(self) -> float:
        """Fraction 0..1 of the current allowed by temperature.

        Full between ``derate_low_c`` and ``derate_high_c``; linear down to 0 at
        ``min_charge_temperature_c`` (judged on the coldest group) and at ``over_temperature_c``
        (judged on the hottest group).
        """
        s = self.spec
        cold, hot = self.min_temperature_c, self.temperature_c
        factor = 1.0
        if cold < s.derate_low_c:
            span = s.derate_low_c - s.min_charge_temperature_c
            factor = min(factor, (cold - s.min_charge_temperature_c) / span)
        if hot > s.derate_high_c:
            factor = min(factor, (s.over_temperature_c - hot) / (s.over_temperature_c - s.derate_high_c))
        return min(1.0, max(0.0, factor))

    def taper_current_limit(self) -> float:
        """SOC taper: full up to ``taper_start_soc``, then linear to ``taper_end_current_a`` at 100 %."""
        s = self.spec
        soc = self.soc
        if soc <= s.taper_start_soc:
            return s.max_charge_current_a
        frac = (soc - s.taper_start_soc) / (100.0 - s.taper_start_soc)
        return s.max_charge_current_a + frac * (s.taper_end_current_a - s.max_charge_current_a)

    def cv_current_limit(self) -> float:
        """Largest current keeping every group at or below ``charge_cutoff_v`` (minus CV_MARGIN_V)."""
        cutoff = self._chem.charge_cutoff_v - CV_MARGIN_V
        # min over the groups of (cutoff - v) / r, evaluated in C
        limit: float = min(
            map(operator.truediv, map(operator.sub, repeat(cutoff), self._ocv), self._resistance_ohm)
        )
        return max(0.0, limit)

    def charge_current_limit(self) -> float:
        """Current the BMS requests now: min(taper, temperature derating, CV limit), never negative."""
        limit = min(self.taper_current_limit(), self.spec.max_charge_current_a * self.temperature_derating())
        # The CV limit only matters when it may be the smallest.  A lower bound on it (highest OCV,
        # largest resistance; rounding is monotonic) skips the per-group pass far from the cutoff.
        bound = (self._chem.charge_cutoff_v - CV_MARGIN_V - max(self._ocv)) / self._max_resistance
        if bound < limit or self._max_resistance != max(self._resistance_ohm):
            limit = min(limit, self.cv_current_limit())
        return max(0.0, limit)

    def protections(self, current_a: float) -> frozenset[str]:
        """The protections tripped right now with ``current_a`` flowing in."""
        tripped: set[str] = set()
        volts = self.cell_voltages(current_a)
        highest = max(volts)
        self._cell_max = (current_a, highest)
        if highest > self._chem.over_voltage_v:
            tripped.add(PROTECTION_CELL_OVER_VOLTAGE)
        if min(volts) < self._chem.under_voltage_v:
            tripped.add(PROTECTION_CELL_UNDER_VOLTAGE)
        if self.temperature_c >= self.spec.over_temperature_c:
            tripped.add(PROTECTION_OVER_TEMPERATURE)
        return frozenset(tripped)

    def step(self, current_a: float, dt: float) -> None:
        """Advance ``dt`` seconds with ``current_a`` flowing into the pack (positive = charging)."""
        _finite("current_a", current_a)
        _positive("dt", dt, allow_zero=True)
        if dt == 0.0:
            return
        v_before = self.terminal_voltage(current_a)
        ah = current_a * dt / 3600.0
        gain = 100.0 * ah  # per group: s + 100 * ah / capacity
        memo = self._gain_memo
        if memo is None or memo[0] != gain or gain == 0.0 or memo[1] != self._capacity_ah:
            memo = self._gain_memo = (gain, list(self._capacity_ah), [gain / c for c in self._capacity_ah])
        self._soc = list(map(operator.add, self._soc, memo[2]))
        self._ocv = _ocv_many(self._chem, self._soc)
        self._invalidate()

        n = self.spec.series
        mass = self.spec.thermal_mass_j_per_k / n
        cooling = self.spec.cooling_w_per_k / n
        decay = math.exp(-cooling * dt / mass)
        i2 = current_a * current_a
        ambient = self._ambient_c
        heat_memo = self._heat_memo
        if (
            heat_memo is None
            or heat_memo[0] != i2
            or heat_memo[1] != ambient
            or heat_memo[2] != cooling
            or heat_memo[3] != self._resistance_ohm
        ):
            r_now = list(self._resistance_ohm)
            # I² R summed in group order, one addition at a time (sum() may round differently)
            joule = reduce(operator.add, map(operator.mul, repeat(i2), r_now), 0.0)
            steady = [ambient + i2 * r / cooling for r in r_now] if cooling > 0.0 else []
            heat_memo = self._heat_memo = (i2, ambient, cooling, r_now, steady, joule)
        joule_w = heat_memo[5]
        heat = zip(self._resistance_ohm, self._extra_heat_w, self._temp_c, strict=False)
        if cooling > 0.0:  # each group relaxes exactly towards its steady temperature
            if not any(self._extra_heat_w):  # no injected heat: i2 * r + 0.0 is i2 * r
                steady = heat_memo[4]
                self._temp_c = [st + (t - st) * decay for st, t in zip(steady, self._temp_c, strict=False)]
            else:
                self._temp_c = [
                    (st := ambient + (i2 * r + x) / cooling) + (t - st) * decay for r, x, t in heat
                ]
        else:
            self._temp_c = [t + (i2 * r + x) * dt / mass for r, x, t in heat]

        # Trapezoidal rule over the step: exact for a linear OCV segment.
        energy_wh = 0.5 * (v_before + self.terminal_voltage(current_a)) * current_a * dt / 3600.0
        if current_a > 0.0:
            self.energy_in_wh += energy_wh
        elif current_a < 0.0:
            self.energy_out_wh -= energy_wh
        self.charge_ah += ah
        self.heat_j += joule_w * dt
        self.elapsed_s += dt

    def inject_cell_offset(self, index: int, soc_points: float) -> None:
        """Imbalance: shift group ``index``'s SOC by ``soc_points`` percentage points."""
        self._check_index(index)
        _finite("soc_points", soc_points)
        self._soc[index] += soc_points
        self._ocv[index] = self._chem.cell_ocv(self._soc[index])
        self._invalidate()

    def _invalidate(self) -> None:
        """Forget the values cached from the group SOCs, OCVs and temperatures."""
        self._ocv_sum = None
        self._soc_mean = None
        self._soc_report = None
        self._temp_hot = None
        self._temp_cold = None
        self._cell_max = None

    def add_heat(self, watts: float, *, index: int | None = None) -> None:
        """Extra heat applied in every later step until set back to 0 (replaces, does not add up).

        Without ``index`` the heat is spread evenly over the pack (and any per-group heat is
        replaced); with ``index`` it goes into that one group only (a local runaway).
        """
        _finite("watts", watts)
        if index is None:
            self._extra_heat_w = [watts / self.spec.series] * self.spec.series
        else:
            self._check_index(index)
            self._extra_heat_w[index] = float(watts)

    def _check_index(self, index: int) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.spec.series:
            raise IndexError(f"cell group index must be an int in 0..{self.spec.series - 1}, got {index!r}")

    def force_cell_ocv(self, index: int, volts: float) -> None:
        """A failing cell: group ``index``'s open-circuit voltage jumps to ``volts`` (its SOC follows)."""
        self._check_index(index)
        _positive("volts", volts)
        lo, hi = -100.0, 400.0  # SOC search range; the OCV curve is extrapolated linearly beyond 0..100
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            if self._chem.cell_ocv(mid) < volts:
                lo = mid
            else:
                hi = mid
        self._soc[index] = hi
        self._ocv[index] = self._chem.cell_ocv(hi)
        self._invalidate()
