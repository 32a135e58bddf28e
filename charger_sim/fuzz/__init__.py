"""Hostile-vehicle fuzzing of the charger cores (``charger-sim fuzz``).

:func:`run_campaign` runs many recorded sessions of a charger core against a hostile vehicle
(:mod:`.vehicles`: CHAdeMO scripted; :mod:`.vehicles_gbt`, :mod:`.vehicles_ccs`: the simulated BMS /
EVCC driven on a shadow harness by :mod:`.driven`, their output mutated), checking the protocol's
safety invariants (:mod:`.oracles`, :mod:`.oracles_gbt`, :mod:`.oracles_ccs`) after every step
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
