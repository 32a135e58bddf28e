"""One charging session: both cores, the plant, fault injection and recording (no I/O)."""
