"""Scenario runs per second on all cores: the shipped catalogue (every protocol) times ``rounds``."""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from ..resources import scenarios_dir


def _run_one(path: str) -> tuple[str, bool, str]:
    from ..errors import ChargerSimError
    from ..scenario.loader import load_scenario
    from ..scenario.runner import run_simulated

    try:
        result = run_simulated(load_scenario(path))
    except ChargerSimError as err:
        return path, False, f"{type(err).__name__}: {err}"
    return path, result.passed, ""


def _init(dbc_dir: str | None) -> None:
    from .. import codec

    logging.getLogger("charger_sim").setLevel(logging.ERROR)
    if dbc_dir is not None:
        codec.set_dbc_dir(Path(dbc_dir))


def scenarios_per_second(rounds: int, workers: int | None = None, limit: int | None = None) -> dict[str, Any]:
    from .. import codec

    catalogue = sorted(str(p) for p in scenarios_dir().glob("*.yaml"))[:limit]
    jobs = catalogue * max(1, rounds)
    workers = workers or os.cpu_count() or 1
    dbc_dir = None if codec._DIRECTORY is None else str(codec._DIRECTORY)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init, initargs=(dbc_dir,)) as pool:
        pool.map(_run_one, catalogue[:workers])  # warm the workers (imports, DBC parsing) first
        start = time.perf_counter()
        results = pool.map(_run_one, jobs, chunksize=1)
        wall = time.perf_counter() - start
    failed = sorted({Path(p).name for p, ok, _ in results if not ok})
    return {
        "scenarios_per_s": round(len(results) / wall, 2) if wall > 0 else None,
        "runs": len(results),
        "catalogue": len(catalogue),
        "workers": workers,
        "wall_s": round(wall, 2),
        "not_as_expected": failed,
    }
