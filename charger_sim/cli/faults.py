"""``charger-sim faults``: the fault catalogue, and how a protocol maps each kind to its frames."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import ExitCode
from ..faults import FAULTS, describe_catalogue
from ..protocols import registry


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "faults",
        help="list the fault catalogue (what a scenario's faults: list can inject)",
        description="List the fault kinds a scenario can inject, their parameters, and (with --protocol) "
        "how that protocol's frames, flags and lines show each one.",
    )
    p.add_argument("--protocol", choices=registry.names(), help="show this protocol's mapping and pins")
    p.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace, console: Console) -> int:
    info = registry.get(args.protocol) if args.protocol else None
    rows = describe_catalogue(info)
    if args.json:
        out = [
            {"type": name, "layer": layer, "summary": summary, "parameters": list(FAULTS[name].keys[1:]),
             "required": list(FAULTS[name].required), **({"mapping": note} if info else {})}
            for name, layer, summary, note in rows
        ]
        payload: dict[str, Any] = {"faults": out}
        if info is not None:
            payload["protocol"] = info.name
            payload["pins"] = {k: {"line": p.line, "bad": p.bad, "description": p.description}
                               for k, p in info.pins.items()}
        console.print_json(json.dumps(payload))
        return int(ExitCode.OK)
    title = "Fault catalogue" + (f" — {info.title}" if info else "")
    table = Table(title=title, show_lines=False)
    table.add_column("type", style="bold")
    table.add_column("layer")
    table.add_column("what it does")
    table.add_column("parameters")
    if info is not None:
        table.add_column(f"{info.name} mapping")
    for name, layer, summary, note in rows:
        kind = FAULTS[name]
        params = ", ".join([*(f"{k}*" for k in kind.required), *kind.optional, "at", "duration"])
        cells = [name, layer, summary, params] + ([note] if info is not None else [])
        table.add_row(*cells)
    console.print(table)
    console.print("* required.  at: {time: S} | {stage: NAME, after: S} | {soc_above: %} | "
                  "{condition: \"soc > 50\"} (default: from the start); duration: S or forever.",
                  highlight=False)
    if info is not None and info.pins:
        pins = Table(title=f"{info.title}: pins for worn_pins")
        pins.add_column("pin", style="bold")
        pins.add_column("reads when worn (default)")
        pins.add_column("description")
        for name, pin in info.pins.items():
            pins.add_row(name, f"{pin.bad:g}", pin.description)
        console.print(pins)
    return int(ExitCode.OK)
