"""``charger-sim fuzz``: a hostile-vehicle campaign against a charger core, or replay of a case file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import ExitCode, UsageError
from ..protocols import registry


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "fuzz",
        help="fuzz a charger core with a hostile vehicle and check its safety invariants",
        description="Run many simulated-time sessions of a charger core against a hostile vehicle "
        "(random and mutated frames, fields out of range, floods, silence, reordering, control-line "
        "and plant faults; GB/T transport abuse; for GB/T and CCS the simulated vehicle core itself, "
        "misbehaving) and check the protocol's safety invariants after every step. The first "
        "counterexample is minimised into a replayable case file. Exit 0: no violation; 1: violations.",
    )
    p.add_argument(
        "--protocol", default="chademo", help=f"one of: {', '.join(registry.names())} (default chademo)"
    )
    p.add_argument(
        "--frames", type=int, default=100_000, metavar="N", help="frames to deliver (default 100000)"
    )
    p.add_argument("--seed", type=int, default=0, help="campaign seed (same seed, same campaign)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument(
        "--case-out", type=Path, metavar="FILE", help="write the minimised counterexample here (YAML)"
    )
    p.add_argument("--replay", type=Path, metavar="FILE", help="replay a case file instead of a campaign")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    from ..fuzz import Case, replay, run_campaign

    if args.replay is not None:
        case = Case.load(args.replay)
        registry.get(case.protocol)
        violations = replay(case)
        if args.json:
            console.print_json(
                json.dumps({"case": str(args.replay), "violations": [str(v) for v in violations]})
            )
        elif violations:
            for v in violations:
                console.print(f"[red]violation[/red] {v}", highlight=False)
        else:
            console.print(f"{args.replay}: no violation ({len(case.steps)} steps)")
        return int(ExitCode.VERDICT_FAILED if violations else ExitCode.OK)
    if args.frames <= 0:
        raise UsageError("--frames must be positive")
    if args.jobs <= 0:
        raise UsageError("--jobs must be positive")
    info = registry.get(args.protocol)
    report = run_campaign(info.name, args.frames, seed=args.seed, jobs=args.jobs)
    if report.first is not None and args.case_out is not None:
        report.first.write(args.case_out)
    payload = report.to_dict()
    if args.case_out is not None and report.first is not None:
        payload["counterexample_file"] = str(args.case_out)
    if args.json:
        console.print_json(json.dumps(payload))
    else:
        console.print(_table(payload))
        if report.first is not None:
            console.print(f"[red]first violation[/red]: {report.first_violation}", highlight=False)
            if args.case_out is None:
                console.print("minimised counterexample (save it and replay with --replay FILE):")
                console.print(report.first.to_yaml(), highlight=False, markup=False)
            else:
                console.print(f"minimised counterexample written to {args.case_out}")
    return int(ExitCode.VERDICT_FAILED if report.violations else ExitCode.OK)


def _table(p: dict[str, Any]) -> Table:
    table = Table(title=f"charger-sim fuzz — {p['protocol']} (oracle: {p['oracle']})", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "frames",
        "sessions",
        "timer_calls",
        "violations",
        "exceptions",
        "vehicle_exceptions",
        "frames_per_s",
        "wall_seconds",
    ):
        table.add_row(key.replace("_", " "), str(p[key]))
    for code, n in p["violations_by_invariant"].items():
        table.add_row(f"  {code}", str(n))
    reached = ", ".join(f"{k} {v}" for k, v in p["sessions_reaching_stage"].items())
    table.add_row("sessions reaching", reached)
    return table
