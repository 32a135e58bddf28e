"""``charger-sim charger`` and ``charger-sim bms``: one side of a session on a real bus.

``charger`` plays the charger against a real vehicle/BMS (what a BMS engineer points at a real BMS);
``bms`` plays the simulated vehicle against a real charger (what a station engineer points at a real
charger).  Run one of each in two terminals on the same bus for a complete two-process session.
The peer's hardware lines cannot be seen on the bus; :mod:`charger_sim.plant.peer` (CHAdeMO),
:mod:`~charger_sim.plant.peer_gbt` and :mod:`~charger_sim.plant.peer_ccs` say how they are inferred.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path
from typing import Any

import can.cli
import yaml
from rich.console import Console
from rich.live import Live

from ..drivers.adapters import adapters_epilog
from ..drivers.canbus import bus_config
from ..errors import ExitCode, ScenarioError, UsageError
from ..protocols import registry
from ..protocols.base import Role
from ..scenario.loader import TOP_KEYS, parse_scenario
from ..scenario.runner import BusLost, Monitor, run_role
from ..scenario.schema import Scenario
from . import render
from .run import _override, _shipped, bitrate_of_timing, bus_kwargs_of, check_bitrate, print_report

DEFAULT_PROTOCOL = "chademo"


def add_parser(sub: Any) -> None:
    """Register both role commands (``charger`` and ``bms``)."""
    _add(
        sub,
        "charger",
        Role.CHARGER,
        help="play the charger against a real vehicle/BMS on a bus",
        description="Play the charger side in real time against a real vehicle/BMS (or a "
        "'charger-sim bms' in another process) on a CAN bus. Shows the live view, obeys "
        "python-can's bus flags and configuration, records with --log; Ctrl-C runs the stop "
        "sequence on the bus.",
    )
    _add(
        sub,
        "bms",
        Role.VEHICLE,
        help="play the simulated vehicle/BMS against a real charger on a bus",
        description="Play the simulated vehicle (BMS and battery) in real time against a real charger "
        "(or a 'charger-sim charger' in another process) on a CAN bus. Shows the live view, obeys "
        "python-can's bus flags and configuration, records with --log; Ctrl-C makes the vehicle "
        "end charging (CHAdeMO 102.5.0 -> 0, GB/T BST, CCS PowerDelivery(stop)) and waits for the "
        "charger to wind down.",
    )


def _add(sub: Any, name: str, role: Role, *, help: str, description: str) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=adapters_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--protocol",
        help=f"protocol ({', '.join(registry.names())}); default: the file's, else {DEFAULT_PROTOCOL}",
    )
    if role is Role.CHARGER:
        p.add_argument(
            "--config",
            metavar="FILE",
            help="charger settings: a scenario file (its charger, vehicle-pack and expect sections) "
            "or a YAML mapping of charger settings (max_current: 125 ...)",
        )
    else:
        p.add_argument(
            "--vehicle",
            metavar="FILE",
            help="the simulated vehicle: a scenario file (its vehicle section) or a YAML mapping of "
            "vehicle settings (pack, soc, target_soc ...)",
        )
    p.add_argument(
        "--log", type=Path, metavar="FILE", help="record every frame (.asc, .blf, .log, .csv, .trc)"
    )
    p.add_argument("--seed", type=int, help="override the seed (cell spread of the pack)")
    p.add_argument("--time-limit", type=float, metavar="S", help="give up after S seconds (default 7200)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the result as JSON ('-' for stdout)")
    p.add_argument("--no-timeline", action="store_true", help="print only the summary and the verdict")
    can.cli.add_bus_arguments(
        p, group_title="bus (python-can; without -i: python-can's configuration, e.g. CAN_INTERFACE)"
    )
    p.set_defaults(handler=partial(handle, role))


def load_role_scenario(path: str | None, role: Role, protocol: str | None) -> Scenario:
    """A scenario from ``path`` (a scenario file, or a bare charger/vehicle section), or defaults."""
    section = "charger" if role is Role.CHARGER else "vehicle"
    if path is None:
        name = protocol or DEFAULT_PROTOCOL
        return parse_scenario({"protocol": name}, "(defaults)", default_name=f"{section} defaults")
    p = Path(path)
    if not p.exists():
        p = _shipped(path) or p
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as err:
        raise ScenarioError(path, "", f"cannot read file ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(path, where, f"not valid YAML: {getattr(err, 'problem', None) or err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(path, "", "expected a mapping (a scenario, or charger/vehicle settings)")
    if not set(data) & set(TOP_KEYS):  # a bare section: wrap it in a scenario
        data = {"protocol": protocol or DEFAULT_PROTOCOL, section: data}
    elif protocol is not None and "protocol" not in data:
        data = {**data, "protocol": protocol}
    sc = parse_scenario(data, str(path), default_name=p.stem)
    if protocol is not None and registry.get(protocol).name != sc.protocol:
        raise UsageError(f"--protocol {protocol} contradicts {path} (protocol: {sc.protocol})")
    return sc


class _RoleMonitor(Monitor):
    def __init__(self, live: Live, title: str, role: Role) -> None:
        self.live = live
        self.title = title
        self.role = role

    def update(self, session: Any, elapsed: float) -> None:
        local = session.core.snapshot()
        remote = session.plant.snapshot()
        self.live.update(render.role_view(self.title, self.role.value, local, remote, elapsed))


def handle(role: Role, args: argparse.Namespace, console: Console) -> int:
    source = args.config if role is Role.CHARGER else args.vehicle
    sc = _override(load_role_scenario(source, role, args.protocol), args.seed, args.time_limit)
    info = registry.get(sc.protocol)
    interface: str | None = getattr(args, "interface", None)
    channel: str | None = getattr(args, "channel", None)
    bitrate: int | None = getattr(args, "bitrate", None)
    check_bitrate(info, bitrate)
    check_bitrate(info, bitrate_of_timing(getattr(args, "timing", None)), "--timing")
    if interface is None:  # python-can's configuration decides; its bit rate must fit too
        config = bus_config({"channel": channel, "bitrate": bitrate})
        if bitrate is None and config.get("bitrate") is not None:
            check_bitrate(info, int(config["bitrate"]), "python-can configuration: bitrate")
        interface_shown = f"{config['interface']} (python-can configuration)"
        channel = channel if channel is not None else config.get("channel")
    else:
        interface_shown = interface
    what = "charger" if role is Role.CHARGER else "simulated BMS"
    title = f"{sc.name} — {what}, {info.title} on {interface_shown}:{channel or '(default channel)'}"
    try:
        with Live(console=console, refresh_per_second=10, transient=False) as live:
            result, interrupted = run_role(
                sc,
                role,
                interface=interface,
                channel=channel,
                bitrate=bitrate,
                log_path=args.log,
                monitor=_RoleMonitor(live, title, role),
                bus_kwargs=bus_kwargs_of(args),
            )
    except BusLost as lost:
        if not console.is_terminal:
            console.line()
        print_report(console, lost.result, args.log, show_timeline=not args.no_timeline)
        raise
    if not console.is_terminal:
        console.line()  # the live view's last frame ends without a newline off a terminal
    print_report(console, result, args.log, show_timeline=not args.no_timeline)
    if args.json is not None:
        payload = json.dumps({"results": [result.to_dict()]}, indent=2)
        if str(args.json) == "-":
            console.print_json(payload)
        else:
            args.json.write_text(payload + "\n", encoding="utf-8")
    if interrupted:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK if result.passed else ExitCode.VERDICT_FAILED)
