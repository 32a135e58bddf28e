"""``charger-sim replay``: the recorded vehicle side against charger-sim's charger, in simulated time."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from ..diagnose import load_capture
from ..diagnose.replay import replay
from ..errors import ExitCode
from . import render_logs
from .decode import add_log_arguments


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replay",
        help="replay a capture's vehicle side against charger-sim's charger",
        description="Play the recorded vehicle frames against charger-sim's charger core in simulated time "
        "(released in the recorded order, each held until our charger reaches the stage the recording shows "
        "at that moment) and report whether our charger walked the same stages as the recorded one.",
    )
    add_log_arguments(p)
    p.add_argument(
        "--as",
        dest="role",
        choices=("vehicle",),
        default="vehicle",
        help="which recorded side to play (vehicle: our charger plays the charger)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    result = replay(load_capture(args.log, args.protocol, args.log_format))
    if args.json:
        console.print(json.dumps(result, indent=2), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(render_logs.replay_report(result))
    return int(ExitCode.OK if result["matched"] else ExitCode.VERDICT_FAILED)
