"""Simulated vehicle BMS: the shared battery-pack physics model (see :mod:`charger_sim.bms.battery`)."""

from charger_sim.bms.battery import CHEMISTRIES, Battery, Chemistry, PackSpec

__all__ = ["CHEMISTRIES", "Battery", "Chemistry", "PackSpec"]
