"""``charger-sim bench``: the issue's benchmark figures, as a table or one JSON object."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import ExitCode, UsageError
from ..protocols import registry

PARTS = ("speed", "cadence", "reaction", "concurrency", "scale", "memory")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="measure simulated-time speed, real-time cadence, reaction, scale and memory",
        description="Benchmarks, side by side in one run: simulated seconds per wall second per "
        "protocol and the engine's cost per frame against bare cantools encode+decode; on python-can's "
        "virtual bus the 100 ms cadence against python-can's send_periodic, the fault -> stop reaction, "
        "the concurrent sessions one process holds at the cadence target and the peak RSS of a long "
        "session with --log; scenario runs per second on all cores. Not a pass/fail test: the targets "
        "are reported next to the figures.",
    )
    p.add_argument("--quick", action="store_true", help="short runs (~1 min instead of ~4 min)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        metavar="PART",
        help=f"run only these parts ({', '.join(PARTS)})",
    )
    p.add_argument("--protocol", action="append", metavar="NAME", help="speed of these protocols only")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    from ..bench import FULL, QUICK, run_bench

    params = QUICK if args.quick else FULL
    if args.only:
        params = dataclasses.replace(params, skip=frozenset(PARTS) - set(args.only))
    if args.protocol:
        names = tuple(registry.get(n).name for n in args.protocol)
        params = dataclasses.replace(params, protocols=names)
    if params.skip == frozenset(PARTS):
        raise UsageError("nothing to measure")
    progress = None if args.json else (lambda text: console.print(f"[dim]… {text}[/dim]"))
    result = run_bench(params, progress)
    if args.json:
        console.print_json(json.dumps(result))
    else:
        console.print(table(result))
    return int(ExitCode.OK)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}{unit}"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def table(r: dict[str, Any]) -> Table:
    t = Table(
        title=f"charger-sim bench ({r['machine']['cpus']} CPUs, Python {r['machine']['python']})",
        title_justify="left",
    )
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("target / reference")
    targets = r.get("targets", {})
    for name, s in (r.get("speed") or {}).items():
        met = targets.get("sim_speed_x", {}).get("met", {}).get(name)
        t.add_row(
            f"sim speed {name} ({s['scenario']})",
            f"{s['sim_speed_x']:,} x",
            f">= 3,600 x {'ok' if met else 'NOT MET'}",
        )
        t.add_row(
            f"  engine / cantools per frame ({name})",
            f"{_fmt(s['engine_us_per_frame'])} / {_fmt(s['cantools_us_per_frame'])} us",
            f"ratio {_fmt(s['engine_vs_codec_ratio'])} (<= 1.5); "
            f"{_fmt(s['engine_vs_codec_ratio_fast'])} vs unchecked cantools",
        )
    cad = r.get("cadence") or {}
    for key, label in (("cadence", "cadence 0x109 (ours)"), ("send_periodic", "send_periodic same frame")):
        s = cad.get(key)
        if s:
            t.add_row(
                f"{label} p50 / p99 / max",
                f"{s['p50_ms']:.3f} / {s['p99_ms']:.3f} / {s['max_ms']:.3f} ms",
                f"drift {s['drift_ms']:+.2f} ms over {s['count']} frames",
            )
    if "cadence_p99_ms" in targets:
        t.add_row(
            "  cadence target",
            "ok" if targets["cadence_p99_ms"]["met"] else "NOT MET",
            targets["cadence_p99_ms"]["target"],
        )
    rea = r.get("reaction")
    if rea:
        t.add_row(
            "reaction fault -> stop frame p50 / p99",
            f"{_fmt(rea['p50_ms'])} / {_fmt(rea['p99_ms'])} ms",
            f"{rea['samples']} sessions: fault 0x102 -> first 0x109 with 109.5.5",
        )
    sc = r.get("scale")
    if sc:
        t.add_row(
            "scenario runs per second",
            _fmt(sc["scenarios_per_s"]),
            f"{sc['runs']} runs of {sc['catalogue']} scenarios on {sc['workers']} workers",
        )
    con = r.get("concurrency")
    if con:
        steps = ", ".join(f"{s['sessions']}: {_fmt(s['worst_p99_ms'])}" for s in con["steps"])
        t.add_row(
            "concurrent real-time sessions", str(con["concurrent_sessions"]), f"p99 ms by sessions: {steps}"
        )
    mem = r.get("memory")
    if mem:
        t.add_row(
            "peak RSS, session with --log",
            _fmt(mem["peak_rss_mb"], " MB"),
            f"growth {_fmt(mem.get('rss_growth_mb'), ' MB')} over {mem.get('duration_s')} s",
        )
    t.add_row("bench wall time", _fmt(r.get("wall_s"), " s"), "")
    return t
