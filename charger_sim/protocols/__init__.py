"""Protocol cores: pure state machines for each charging protocol (charger and simulated vehicle)."""
