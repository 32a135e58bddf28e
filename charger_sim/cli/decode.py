"""``charger-sim decode``: every protocol frame of a capture decoded through our DBCs."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from ..diagnose.capture import PROTOCOLS, load_capture
from ..diagnose.decode import rows, select
from ..errors import ExitCode
from ..logs import available_formats
from . import render_logs


def add_log_arguments(p: argparse.ArgumentParser) -> None:
    """LOG, --protocol and --format: shared by decode, diagnose and replay."""
    p.add_argument("log", type=Path, metavar="LOG", help="CAN capture (asc, blf, trc, csv, candump, ...)")
    p.add_argument(
        "--protocol",
        default="auto",
        choices=("auto", *PROTOCOLS),
        help="protocol of the capture (default: detected from the frames)",
    )
    p.add_argument(
        "--format",
        dest="log_format",
        metavar="F",
        choices=sorted(available_formats()),
        help="log format (default: detected from the content): " + ", ".join(sorted(available_formats())),
    )


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "decode",
        help="decode a CAN capture through the protocol's DBC",
        description="Print every protocol frame of a capture decoded through charger-sim's DBC; GB/T "
        "transport sessions are reassembled into their messages (BRM, BCP, BCS...). Reports how many lines "
        "the log reader skipped.",
    )
    add_log_arguments(p)
    p.add_argument(
        "--message",
        "-m",
        nargs="+",
        metavar="NAME",
        help="only these messages (DBC names, case-insensitive; TP = transport frames)",
    )
    p.add_argument("--all", action="store_true", help="also show protocol frames the DBC does not describe")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    capture = load_capture(args.log, args.protocol, args.log_format)
    shown = list(select(rows(capture, include_unknown=args.all), args.message))
    counts = Counter(r.kind for r in shown)
    if args.json:
        r = capture.read
        payload = {
            "path": capture.path,
            "format": r.format,
            "protocol": capture.protocol,
            "timestamps": capture.timestamps,
            "frames": len(r.frames),
            "skipped_lines": r.skipped_lines,
            "malformed_lines": r.malformed_lines,
            "skipped_frames": r.skipped_frames,
            "problems": list(r.problems),
            "rows": [row.to_dict() for row in shown],
        }
        console.print(json.dumps(payload), markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(render_logs.decoded_rows(shown), end="", soft_wrap=True, highlight=False)
        console.print(render_logs.capture_summary(capture, len(shown), dict(counts)))
    return int(ExitCode.OK)
