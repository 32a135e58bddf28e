"""CHAdeMO 0.9 / 1.0.x / 2.0 (charger core and simulated vehicle core)."""
