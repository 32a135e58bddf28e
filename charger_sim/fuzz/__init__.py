"""Hostile-vehicle fuzzing of the charger cores (``charger-sim fuzz``).

:func:`run_campaign` runs many recorded sessions of a charger core against a hostile vehicle
(:mod:`.vehicles`), checking the protocol's safety invariants (:mod:`.oracles`) after every step
(:mod:`.target`); the first counterexample is minimised into a replayable case file (:mod:`.script`).
"""

from .campaign import Report, minimise, replay, run_campaign, run_session
from .script import Case, Step
from .target import Target, Violation

__all__ = [
    "Case",
    "Report",
    "Step",
    "Target",
    "Violation",
    "minimise",
    "replay",
    "run_campaign",
    "run_session",
]
