"""PackMonitor: the BMS's integration of its pack, shared by every vehicle core."""

from __future__ import annotations

import pytest

from charger_sim.bms.battery import Battery, PackSpec
from charger_sim.bms.monitor import PackMonitor


def pack() -> Battery:
    return Battery(PackSpec(capacity_spread=0, resistance_spread=0, soc_spread=0), soc=50.0, seed=1)


def test_steps_once_per_period_and_conserves_charge() -> None:
    b = pack()
    m = PackMonitor(b, step=1.0)
    t = 0.0
    m.update(0.0, t)
    for i in range(1, 21):  # 2 s at 100 ms, current ramping 0 -> 95 A
        t = i * 0.1
        m.update(5.0 * i, t)
    expected_ah = sum(5.0 * i * 0.1 for i in range(1, 21)) / 3600.0
    assert b.charge_ah == pytest.approx(expected_ah, rel=1e-9)
    assert b.elapsed_s == pytest.approx(2.0)


def test_flushes_when_current_stops_and_refreshes_limit() -> None:
    b = pack()
    m = PackMonitor(b, step=10.0)
    m.update(0.0, 0.0)
    m.update(100.0, 0.5)
    assert b.elapsed_s == 0.0  # accumulating
    m.update(0.0, 0.6)
    assert b.elapsed_s == pytest.approx(0.6)
    assert m.limit == pytest.approx(b.charge_current_limit())


def test_rejects_bad_step() -> None:
    with pytest.raises(ValueError):
        PackMonitor(pack(), step=0)
