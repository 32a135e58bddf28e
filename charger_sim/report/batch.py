"""Run many scenarios in simulated time, in order or spread over worker processes.

Each session is independent and deterministic, so running them in parallel changes nothing but the
wall time: results come back in the order given.  Workers are started with ``spawn`` (no fork of a
threaded parent) and load DBC files from the parent's DBC folder (``--dbc-dir``).  If worker
processes cannot be started (a sandbox without semaphores), the batch runs in this process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ..codec import current_dbc_dir, set_dbc_dir
from ..errors import ChargerSimError, ExitCode, Origin
from ..scenario.runner import run_simulated
from ..scenario.schema import Scenario
from ..session.result import SessionResult

log = logging.getLogger(__name__)

OnDone = Callable[[int, SessionResult], None]


class WorkerError(ChargerSimError):
    """A charger-sim error raised inside a worker process, carried back with its origin and exit code."""

    def __init__(self, message: str, origin: str, exit_code: int) -> None:
        super().__init__(message)
        self.origin = Origin(origin)
        self.exit_code = ExitCode(exit_code)


@dataclass(frozen=True, slots=True)
class _Failed:
    message: str
    origin: str
    exit_code: int


AUTO_MIN = 4  # fewer sessions than this run in this process unless -j asks (starting workers costs ~1 s)


def auto_jobs(jobs: int | None, count: int) -> int:
    """``jobs`` processes (0 or None: one per CPU for 4 sessions or more), never more than sessions."""
    if not jobs or jobs <= 0:
        jobs = (os.cpu_count() or 1) if count >= AUTO_MIN else 1
    return max(1, min(jobs, count))


def _init_worker(dbc_dir: str) -> None:
    set_dbc_dir(Path(dbc_dir))


def _run_one(scenario: Scenario) -> SessionResult | _Failed:
    try:
        return run_simulated(scenario)
    except ChargerSimError as err:  # custom __init__s do not survive pickling: send the words back
        return _Failed(str(err), err.origin.value, int(err.exit_code))


def _unwrap(item: SessionResult | _Failed) -> SessionResult:
    if isinstance(item, _Failed):
        raise WorkerError(item.message, item.origin, item.exit_code)
    return item


def run_batch(
    scenarios: Sequence[Scenario], *, jobs: int = 1, on_done: OnDone | None = None
) -> list[SessionResult]:
    """Run every scenario in simulated time; ``on_done(index, result)`` as each one finishes.

    ``jobs``: worker processes (1: this process; 0: one per CPU).
    """
    workers = 1 if jobs == 1 else auto_jobs(jobs, len(scenarios))
    pool = _pool(workers) if workers > 1 else None
    if pool is None:
        out: list[SessionResult] = []
        for i, sc in enumerate(scenarios):
            result = run_simulated(sc)
            out.append(result)
            if on_done is not None:
                on_done(i, result)
        return out
    results: dict[int, SessionResult] = {}
    with pool:
        try:
            futures: dict[Future[SessionResult | _Failed], int] = {
                pool.submit(_run_one, sc): i for i, sc in enumerate(scenarios)
            }
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = _unwrap(fut.result())
                if on_done is not None:
                    on_done(i, results[i])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[i] for i in range(len(scenarios))]


def _pool(workers: int) -> ProcessPoolExecutor | None:
    """A pool of spawned workers, or None when this platform cannot start one."""
    import multiprocessing

    try:
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(str(current_dbc_dir()),)
        )
    except (OSError, ImportError, NotImplementedError) as err:
        log.warning("cannot start worker processes (%s); running in this process", err)
        return None
