"""Drivers own the clock and the bus: a simulated one (virtual clock) and a real-time one (python-can)."""
