"""``charger-sim bench``: speed against the codec floor, real-time cadence, reaction, scale, memory.

:func:`run_bench` measures everything side by side in one run and returns one JSON-able dict with
the figures the issue asks for (``sim_speed_x`` per protocol, ``engine_vs_codec_ratio``,
``cadence_p99_ms``, ``send_periodic_p99_ms``, ``reaction_p99_ms``, ``scenarios_per_s``,
``concurrent_sessions``, ``peak_rss_mb``) plus the details behind each and the targets.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADLINE = (
    "sim_speed_x",
    "engine_vs_codec_ratio",
    "cadence_p99_ms",
    "send_periodic_p99_ms",
    "reaction_p99_ms",
    "scenarios_per_s",
    "concurrent_sessions",
    "peak_rss_mb",
)
TARGETS = {
    "sim_speed_x": 3600.0,  # >= (simulated seconds per wall second)
    "engine_vs_codec_ratio": 1.5,  # <=
    "cadence_p99_ms": 1.0,  # <= (and not worse than send_periodic)
}


@dataclass(frozen=True, slots=True)
class BenchParams:
    speed_runs: int = 3
    speed_time_limit: float | None = None  # cap the simulated sessions (quick runs)
    cadence_s: float = 30.0
    reaction_samples: int = 20
    reaction_concurrent: int = 4
    concurrency_levels: tuple[int, ...] = (1, 2, 4, 8, 12, 16, 24, 32)
    concurrency_s: float = 10.0
    scale_rounds: int = 3
    scale_limit: int | None = None  # first N scenarios of the catalogue only (tests)
    memory_s: float = 60.0
    protocols: tuple[str, ...] = field(default_factory=tuple)  # empty: every protocol with a basic scenario
    skip: frozenset[str] = (
        frozenset()
    )  # parts to leave out: speed, cadence, reaction, concurrency, scale, memory


QUICK = BenchParams(
    speed_runs=1,
    speed_time_limit=600.0,
    cadence_s=6.0,
    reaction_samples=4,
    reaction_concurrent=4,
    concurrency_levels=(1, 4, 8),
    concurrency_s=3.0,
    scale_rounds=1,
    memory_s=5.0,
)
FULL = BenchParams()


def run_bench(params: BenchParams = FULL, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure everything; ``progress(text)`` is told what runs now."""
    from .realtime import cadence_vs_send_periodic, concurrency, memory, reaction
    from .scale import scenarios_per_second
    from .speed import basic_scenarios, measure_speed

    say = progress or (lambda text: None)
    started = time.perf_counter()
    out: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
        },
        "params": {
            k: (sorted(v) if isinstance(v, (tuple, frozenset)) else v) for k, v in _asdict(params).items()
        },
        **{key: None for key in HEADLINE},  # every headline key is present; None = not measured
    }
    if "speed" not in params.skip:
        speed: dict[str, Any] = {}
        for name, path in basic_scenarios().items():
            if params.protocols and name not in params.protocols:
                continue
            say(f"simulated-time speed: {name}")
            r = measure_speed(name, path, runs=params.speed_runs, time_limit=params.speed_time_limit)
            speed[name] = {
                "scenario": r.scenario,
                "session_s": round(r.session_s, 1),
                "wall_s": round(r.wall_s, 3),
                "frames": r.frames,
                "sim_speed_x": round(r.speed_x),
                "engine_us_per_frame": round(r.engine_us_per_frame, 2),
                "cantools_us_per_frame": _round(r.cantools_us_per_frame, 2),
                "cantools_fast_us_per_frame": _round(r.cantools_fast_us_per_frame, 2),
                "cantools_frames": r.cantools_frames,
                "engine_vs_codec_ratio": _round(r.ratio, 3),
                "engine_vs_codec_ratio_fast": _round(r.ratio_fast, 3),
            }
        out["speed"] = speed
        out["sim_speed_x"] = {k: v["sim_speed_x"] for k, v in speed.items()}
        ratios = {
            k: v["engine_vs_codec_ratio"] for k, v in speed.items() if v["engine_vs_codec_ratio"] is not None
        }
        out["engine_vs_codec_ratio_by_protocol"] = ratios
        out["engine_vs_codec_ratio"] = max(ratios.values()) if ratios else None
        out["engine_vs_codec_ratio_fast_by_protocol"] = {
            k: v["engine_vs_codec_ratio_fast"] for k, v in speed.items()
        }
        out["frame_processing_us"] = {k: v["engine_us_per_frame"] for k, v in speed.items()}
    if "cadence" not in params.skip:
        say(f"real-time cadence vs send_periodic ({params.cadence_s:g} s)")
        cad = cadence_vs_send_periodic(params.cadence_s)
        out["cadence"] = cad
        out["cadence_p99_ms"] = _get(cad, "cadence", "p99_ms")
        out["send_periodic_p99_ms"] = _get(cad, "send_periodic", "p99_ms")
    if "reaction" not in params.skip:
        say(f"reaction: {params.reaction_samples} fault -> stop samples")
        rea = reaction(params.reaction_samples, params.reaction_concurrent)
        out["reaction"] = rea
        out["reaction_p50_ms"] = rea["p50_ms"]
        out["reaction_p99_ms"] = rea["p99_ms"]
    if "scale" not in params.skip:
        say(f"scenario runs per second on {os.cpu_count()} cores")
        sc = scenarios_per_second(params.scale_rounds, limit=params.scale_limit)
        out["scale"] = sc
        out["scenarios_per_s"] = sc["scenarios_per_s"]
    if "concurrency" not in params.skip:
        say("concurrent real-time sessions at the cadence target")
        con = concurrency(list(params.concurrency_levels), params.concurrency_s, TARGETS["cadence_p99_ms"])
        out["concurrency"] = con
        out["concurrent_sessions"] = con["concurrent_sessions"]
    if "memory" not in params.skip:
        say(f"peak RSS of a {params.memory_s:g} s real-time session with --log")
        with tempfile.TemporaryDirectory(prefix="charger-sim-bench-") as tmp:
            mem = memory(params.memory_s, Path(tmp) / "session.blf")
        out["memory"] = mem
        out["peak_rss_mb"] = mem["peak_rss_mb"]
    out["targets"] = _verdicts(out)
    out["wall_s"] = round(time.perf_counter() - started, 1)
    return out


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _asdict(params: BenchParams) -> dict[str, Any]:
    return {name: getattr(params, name) for name in params.__dataclass_fields__}


def _get(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or d.get(key) is None:
            return None
        d = d[key]
    return d


def _verdicts(out: dict[str, Any]) -> dict[str, Any]:
    verdicts: dict[str, Any] = {}
    speeds = out.get("sim_speed_x") or {}
    if speeds:
        verdicts["sim_speed_x"] = {
            "target": f">= {TARGETS['sim_speed_x']:g}",
            "met": {k: v >= TARGETS["sim_speed_x"] for k, v in speeds.items()},
        }
    ratio = out.get("engine_vs_codec_ratio")
    if ratio is not None:
        verdicts["engine_vs_codec_ratio"] = {
            "target": f"<= {TARGETS['engine_vs_codec_ratio']:g}",
            "met": ratio <= TARGETS["engine_vs_codec_ratio"],
        }
    ours, theirs = out.get("cadence_p99_ms"), out.get("send_periodic_p99_ms")
    if ours is not None:
        verdicts["cadence_p99_ms"] = {
            "target": f"<= {TARGETS['cadence_p99_ms']:g} and <= send_periodic",
            "met": ours <= TARGETS["cadence_p99_ms"] and (theirs is None or ours <= theirs),
        }
    mem = out.get("memory") or {}
    if mem.get("rss_growth_mb") is not None:
        verdicts["memory_flat"] = {"target": "growth <= 5 MB", "met": mem["rss_growth_mb"] <= 5.0}
    return verdicts
