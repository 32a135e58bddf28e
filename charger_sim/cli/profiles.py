"""``charger-sim profiles``: the shipped vehicle profiles and charger configurations, by name."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import ExitCode
from ..matrix import select
from ..protocols import registry
from ..scenario.profiles import Profile, charger_profiles, vehicle_profiles


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "profiles",
        help="list vehicle profiles and charger configurations (for scenarios and the matrix)",
        description="List the vehicle profiles (scenarios/vehicles/) and charger configurations "
        "(scenarios/chargers/) by name, with their protocol and what they are. Scenarios use them as "
        "`vehicle: {profile: NAME}` / `charger: {profile: NAME}`; `charger-sim matrix` pairs them.",
    )
    p.add_argument("--kind", choices=("vehicle", "charger"), help="only vehicles or only chargers")
    p.add_argument("--protocol", choices=registry.names(), help="only this protocol's profiles")
    p.add_argument("--long", action="store_true", help="add each profile's description and file")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(handler=handle)


def listed(kind: str | None, protocol: str | None) -> list[Profile]:
    out: list[Profile] = []
    if kind in (None, "vehicle"):
        out += select("vehicle", None, vehicle_profiles())
    if kind in (None, "charger"):
        out += select("charger", None, charger_profiles())
    return [p for p in out if protocol is None or p.protocol == protocol]


def handle(args: argparse.Namespace, console: Console) -> int:
    profiles = listed(args.kind, args.protocol)
    if args.json:
        rows = [
            {
                "kind": p.kind,
                "name": p.name,
                "protocol": p.protocol,
                "title": p.title,
                "description": p.description,
                "path": p.path,
            }
            for p in profiles
        ]
        console.print(
            json.dumps({"profiles": rows}, indent=2, ensure_ascii=False),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return int(ExitCode.OK)
    table = Table(
        title="Vehicle profiles and charger configurations",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    table.add_column("kind", style="bold", no_wrap=True)
    table.add_column("name", no_wrap=True, style="cyan")
    table.add_column("protocol", no_wrap=True)
    table.add_column("what", overflow="fold")
    for i, p in enumerate(profiles):
        what: Text | str = p.title
        if args.long:
            what = Text.assemble(
                p.title,
                "\n",
                Text(" ".join(p.description.split()), style="dim"),
                "\n",
                Text(p.path, style="dim italic"),
            )
        last_of_kind = i + 1 < len(profiles) and profiles[i + 1].kind != p.kind
        table.add_row(p.kind, p.name, p.protocol, what, end_section=last_of_kind or args.long)
    console.print(table)
    console.print(
        "use in a scenario: vehicle: {profile: NAME} / charger: {profile: NAME}; "
        "pair them all: charger-sim matrix",
        highlight=False,
        markup=False,
    )
    return int(ExitCode.OK)
