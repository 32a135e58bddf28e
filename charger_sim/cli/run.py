"""``charger-sim run``: run scenario files, in simulated time (default) or in real time on a bus."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import can.cli
from rich.console import Console
from rich.live import Live

from ..errors import ExitCode, ScenarioError, UsageError
from ..protocols import registry
from ..resources import scenarios_dir
from ..scenario.loader import load_scenario
from ..scenario.runner import BusLost, Monitor, run_realtime, run_simulated
from ..scenario.schema import Scenario
from ..session.result import SessionResult
from ..session.session import Session
from . import render


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run scenario files (simulated time by default)",
        description="Run one or more scenario files (or folders of them) and judge each outcome against "
        "the scenario's expectation. Simulated time by default; --realtime or a real interface "
        "(-i socketcan ...) runs at real speed on the bus.",
    )
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario YAML file or folder of them")
    p.add_argument(
        "--realtime", action="store_true", help="run at real speed with a live view (100 ms cadence)"
    )
    p.add_argument(
        "--log", type=Path, metavar="FILE", help="record every frame (.asc, .blf, .log, .csv, .trc)"
    )
    p.add_argument("--seed", type=int, help="override the scenarios' seed")
    p.add_argument("--time-limit", type=float, metavar="S", help="override the scenarios' session time limit")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON ('-' for stdout)")
    p.add_argument("--no-timeline", action="store_true", help="print only the summary and the verdict")
    can.cli.add_bus_arguments(p, group_title="bus (python-can; default: built-in simulated bus)")
    p.set_defaults(handler=handle)


def _shipped(raw: str) -> Path | None:
    """A scenario shipped with charger-sim, by name (``chademo_basic``) or as ``scenarios/NAME.yaml``."""
    folder = scenarios_dir()
    name = Path(raw)
    if name.parts and name.parts[0] == "scenarios":
        name = Path(*name.parts[1:]) if len(name.parts) > 1 else Path(".")
    for candidate in (folder / name, folder / f"{name}.yaml"):
        if candidate.exists():
            return candidate
    return None


def expand(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            path = _shipped(raw) or path
        if path.is_dir():
            found = sorted(p for p in path.glob("*.yaml") if p.is_file())
            if not found:
                raise ScenarioError(raw, "", "folder holds no *.yaml scenario files")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise ScenarioError(raw, "", "no such file or folder")
    return out


def _override(sc: Scenario, seed: int | None, limit: float | None) -> Scenario:
    import dataclasses

    changes: dict[str, Any] = {}
    if seed is not None:
        changes["seed"] = seed
    if limit is not None:
        if limit <= 0:
            raise UsageError("--time-limit must be positive")
        changes["time_limit"] = limit
    return dataclasses.replace(sc, **changes) if changes else sc


class _LiveMonitor(Monitor):
    def __init__(self, live: Live, title: str) -> None:
        self.live = live
        self.title = title

    def update(self, session: Session, elapsed: float) -> None:
        self.live.update(
            render.live_view(self.title, session.charger.snapshot(), session.vehicle.snapshot(), elapsed)
        )


def handle(args: argparse.Namespace, console: Console) -> int:
    interface: str | None = getattr(args, "interface", None)
    channel: str | None = getattr(args, "channel", None)
    bitrate: int | None = getattr(args, "bitrate", None)
    bus_kwargs = bus_kwargs_of(args)
    realtime = args.realtime or (interface is not None and interface != "virtual")
    scenarios = [_override(load_scenario(p), args.seed, args.time_limit) for p in expand(args.scenarios)]
    if args.log is not None and len(scenarios) > 1:
        raise UsageError("--log records one session: give one scenario")
    results: list[SessionResult] = []
    interrupted = False
    for sc in scenarios:
        info = registry.get(sc.protocol)
        check_bitrate(info, bitrate)
        check_bitrate(info, bitrate_of_timing(getattr(args, "timing", None)), "--timing")
        show_timeline = len(scenarios) == 1 and not args.no_timeline
        if realtime:
            title = f"{sc.name} — {info.title} on {interface or 'virtual'}:{channel or '(private channel)'}"
            try:
                with Live(console=console, refresh_per_second=10, transient=False) as live:
                    result, interrupted = run_realtime(
                        sc,
                        interface=interface,
                        channel=channel,
                        bitrate=bitrate,
                        log_path=args.log,
                        monitor=_LiveMonitor(live, title),
                        bus_kwargs=bus_kwargs,
                    )
            except BusLost as lost:
                print_report(console, lost.result, args.log, show_timeline=show_timeline)
                raise
        else:
            result = run_simulated(sc, log_path=args.log, interface=interface, channel=channel)
        results.append(result)
        print_report(console, result, args.log, show_timeline=show_timeline)
        if interrupted:
            break
    if len(results) > 1:
        console.print(render.suite_table(results))
    if args.json is not None:
        payload = json.dumps({"results": [r.to_dict() for r in results]}, indent=2)
        if str(args.json) == "-":
            console.print_json(payload)
        else:
            args.json.write_text(payload + "\n", encoding="utf-8")
    if interrupted:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK if all(r.passed for r in results) else ExitCode.VERDICT_FAILED)


def check_bitrate(info: registry.ProtocolInfo, bitrate: int | None, source: str = "-b") -> None:
    """Refuse a configured bit rate that contradicts the protocol's (CHAdeMO 500 k, GB/T 250 k)."""
    if bitrate is not None and int(bitrate) != info.bitrate:
        raise UsageError(
            f"{info.title} runs at {info.bitrate // 1000} kbit/s; {source} {bitrate} contradicts it"
        )


def bus_kwargs_of(args: argparse.Namespace) -> dict[str, Any]:
    """python-can keyword arguments from the bus flags beyond -i/-c/-b (--bus-kwargs, --filter, --timing)."""
    kwargs: dict[str, Any] = dict(getattr(args, "bus_kwargs", None) or {})
    for dest in ("can_filters", "timing"):
        value = getattr(args, dest, None)
        if value:
            kwargs[dest] = value
    if getattr(args, "fd", False):
        kwargs["fd"] = True
        if getattr(args, "data_bitrate", None):
            kwargs["data_bitrate"] = args.data_bitrate
    return kwargs


def bitrate_of_timing(timing: object) -> int | None:
    """The nominal bit rate of a ``--timing`` (can.BitTiming / BitTimingFd), if any."""
    rate = getattr(timing, "nom_bitrate", None) or getattr(timing, "bitrate", None)
    return int(rate) if rate else None


def print_report(
    console: Console, result: SessionResult, log: Path | None, *, show_timeline: bool = True
) -> None:
    """The session report, cadence and bus statistics of a real-time run, and where the log went."""
    console.print(render.session_report(result, show_timeline=show_timeline))
    if result.cadence:
        console.print(render.cadence_table(result.cadence))
    for line in result.bus_events:
        console.print(f"[yellow]{line}[/yellow]", highlight=False)
    if log is not None:
        console.print(f"frames recorded to {log}")
    console.print()
