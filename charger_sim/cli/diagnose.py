"""``charger-sim diagnose``: the session as it happened, against the protocol's limits, and a verdict."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from ..diagnose import diagnose_log
from ..errors import ExitCode
from . import render_logs
from .decode import add_log_arguments


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "diagnose",
        help="diagnose a charging capture: stage timeline, limits, verdict, deviations",
        description="Rebuild the stage timeline of a captured charging session (both sides), check stage "
        "durations against the protocol limits and give a verdict: completed, failed at handshake step N "
        "with the cause, or partial (the capture starts or ends mid-session). Flags protocol deviations.",
    )
    add_log_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.add_argument("--all-sessions", action="store_true", help="show the timeline of every session")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    diag = diagnose_log(args.log, args.protocol, args.log_format)
    if args.json:
        console.print(json.dumps(diag.to_dict(), indent=2), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(render_logs.diagnosis_report(diag, all_sessions=args.all_sessions))
    return int(ExitCode.OK)
