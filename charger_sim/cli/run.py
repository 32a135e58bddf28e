"""``charger-sim run``: run scenario files, in simulated time (default) or in real time on a bus."""

from __future__ import annotations

import argparse
import datetime
import glob
import io
import time
from pathlib import Path
from typing import Any

import can.cli
from rich.console import Console
from rich.live import Live

from .. import report
from ..errors import ExitCode, ScenarioError, UsageError
from ..protocols import registry
from ..report.batch import run_batch
from ..report.meta import RunInfo
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
    p.add_argument(
        "scenarios",
        nargs="+",
        metavar="SCENARIO",
        help="scenario YAML file, folder (its *.yaml files, not sub-folders), glob ('scenarios/gbt_*.yaml') "
        "or shipped scenario name",
    )
    p.add_argument(
        "--realtime", action="store_true", help="run at real speed with a live view (100 ms cadence)"
    )
    p.add_argument(
        "--log", type=Path, metavar="FILE", help="record every frame (.asc, .blf, .log, .csv, .trc)"
    )
    p.add_argument("--seed", type=int, help="override the scenarios' seed")
    p.add_argument("--time-limit", type=float, metavar="S", help="override the scenarios' session time limit")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON ('-' for stdout)")
    p.add_argument(
        "--junit", type=Path, metavar="FILE", help="write a JUnit XML report for CI ('-' for stdout)"
    )
    p.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write a self-contained HTML report: verdicts, stage bars, charging curves ('-' for stdout)",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="run a suite's sessions on N processes (default 0: one per CPU for 4 sessions or more; "
        "1: one after the other); same results either way",
    )
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


GLOB_CHARS = frozenset("*?[")


def _shipped_glob(raw: str) -> list[Path]:
    """Shipped scenarios matching a pattern (``gbt_*``, ``scenarios/gbt_*.yaml``)."""
    name = Path(raw)
    if name.parts and name.parts[0] == "scenarios":
        name = Path(*name.parts[1:]) if len(name.parts) > 1 else Path("*")
    pattern = str(name) if str(name).endswith((".yaml", ".yml")) else f"{name}.yaml"
    return sorted(scenarios_dir().glob(pattern))


def _folder(path: Path, raw: str) -> list[Path]:
    """A folder's scenario files: its own *.yaml, not the profiles in vehicles/ and chargers/."""
    found = sorted(p for p in path.glob("*.yaml") if p.is_file())
    if not found:
        raise ScenarioError(raw, "", "folder holds no *.yaml scenario files")
    return found


def expand(paths: list[str]) -> list[Path]:
    """Scenario files from files, folders, globs (expanded here too when quoted) and shipped names.

    Order is kept (folders and globs sorted); a file named twice runs once.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists() and GLOB_CHARS & set(raw):
            matches = [Path(m) for m in sorted(glob.glob(raw))] or _shipped_glob(raw)
            files: list[Path] = []
            for m in matches:
                if m.is_dir():
                    files.extend(_folder(m, str(m)))
                elif m.is_file() and m.suffix in (".yaml", ".yml"):
                    files.append(m)
            if not files:
                raise ScenarioError(raw, "", "no scenario file matches this pattern")
            out.extend(files)
            continue
        if not path.exists():
            path = _shipped(raw) or path
        if path.is_dir():
            out.extend(_folder(path, raw))
        elif path.is_file():
            out.append(path)
        else:
            raise ScenarioError(raw, "", "no such file or folder")
    unique: dict[Path, Path] = {}
    for p in out:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


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


def _report_targets(args: argparse.Namespace) -> list[tuple[str, Path]]:
    targets = [(flag, getattr(args, flag, None)) for flag in ("json", "junit", "html")]
    chosen = [(flag, path) for flag, path in targets if path is not None]
    to_stdout = [flag for flag, path in chosen if str(path) == "-"]
    if len(to_stdout) > 1:
        raise UsageError(f"only one report can go to stdout; --{' and --'.join(to_stdout)} both say '-'")
    return chosen


def handle(args: argparse.Namespace, console: Console) -> int:
    interface: str | None = getattr(args, "interface", None)
    channel: str | None = getattr(args, "channel", None)
    bitrate: int | None = getattr(args, "bitrate", None)
    bus_kwargs = bus_kwargs_of(args)
    realtime = args.realtime or (interface is not None and interface != "virtual")
    scenarios = [_override(load_scenario(p), args.seed, args.time_limit) for p in expand(args.scenarios)]
    if args.log is not None and len(scenarios) > 1:
        raise UsageError("--log records one session: give one scenario")
    jobs: int = getattr(args, "jobs", 0) or 0
    if jobs < 0:
        raise UsageError("--jobs must be 0 (one per CPU) or more")
    targets = _report_targets(args)
    for sc in scenarios:  # refuse a contradicting bit rate before anything runs
        info = registry.get(sc.protocol)
        check_bitrate(info, bitrate)
        check_bitrate(info, bitrate_of_timing(getattr(args, "timing", None)), "--timing")
    # a report on stdout ('-') is the whole of stdout: the human report is left out
    out = Console(file=io.StringIO()) if any(str(p) == "-" for _, p in targets) else console
    suite = len(scenarios) > 1
    show_timeline = not suite and not args.no_timeline
    start = time.perf_counter()
    interrupted = False
    if realtime or interface is not None or args.log is not None:
        results: list[SessionResult] = []
        for sc in scenarios:
            if realtime:
                result, interrupted = _run_live(sc, args, out, interface, channel, bitrate, bus_kwargs, suite)
            else:
                result = run_simulated(sc, log_path=args.log, interface=interface, channel=channel)
            results.append(result)
            if suite:
                out.print(render.verdict(result), soft_wrap=True)
            else:
                print_report(out, result, args.log, show_timeline=show_timeline)
            if interrupted:
                break
    else:
        results = _run_batch(scenarios, jobs, out)
        if not suite:
            print_report(out, results[0], None, show_timeline=show_timeline)
    wall = time.perf_counter() - start
    run_info = RunInfo(seed_override=args.seed, time_limit_override=args.time_limit, wall_seconds=wall)
    for r in results:
        r.versions = dict(run_info.versions)
    if suite:
        out.print(render.suite_table(results, width=out.width))
        out.print()
        for line in render.suite_failures(results):
            out.print(line, soft_wrap=True)
        out.print(render.suite_totals(results, wall), highlight=False)
    _write_reports(console, targets, results, run_info)
    if interrupted:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.OK if all(r.passed for r in results) else ExitCode.VERDICT_FAILED)


def _run_live(
    sc: Scenario,
    args: argparse.Namespace,
    console: Console,
    interface: str | None,
    channel: str | None,
    bitrate: int | None,
    bus_kwargs: dict[str, Any],
    suite: bool,
) -> tuple[SessionResult, bool]:
    info = registry.get(sc.protocol)
    title = f"{sc.name} — {info.title} on {interface or 'virtual'}:{channel or '(private channel)'}"
    try:
        with Live(console=console, refresh_per_second=10, transient=False) as live:
            return run_realtime(
                sc,
                interface=interface,
                channel=channel,
                bitrate=bitrate,
                log_path=args.log,
                monitor=_LiveMonitor(live, title),
                bus_kwargs=bus_kwargs,
            )
    except BusLost as lost:
        print_report(console, lost.result, args.log, show_timeline=not suite and not args.no_timeline)
        raise


def _run_batch(scenarios: list[Scenario], jobs: int, console: Console) -> list[SessionResult]:
    """Simulated time, in worker processes for a suite; a spinner on a terminal says how far it got."""
    if len(scenarios) == 1 or not console.is_terminal:
        return run_batch(scenarios, jobs=jobs)
    done: list[SessionResult] = []
    with console.status(f"running {len(scenarios)} scenarios in simulated time") as status:

        def progress(_: int, result: SessionResult) -> None:
            done.append(result)
            failed = sum(1 for r in done if not r.passed)
            status.update(
                f"{len(done)}/{len(scenarios)} scenarios run ({failed} failed) — last: {result.file_stem}"
            )

        return run_batch(scenarios, jobs=jobs, on_done=progress)


def _write_reports(
    console: Console, targets: list[tuple[str, Path]], results: list[SessionResult], info: RunInfo
) -> None:
    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    for flag, path in targets:
        if flag == "json":
            text = report.suite_json(results, info)
        elif flag == "junit":
            text = report.junit_xml(results, info)
        else:
            text = report.html_report(results, info, generated=generated)
        if str(path) == "-":
            console.file.write(text)
            console.file.flush()
        else:
            report.write_text(path, text, f"--{flag}")
            if not any(str(p) == "-" for _, p in targets):
                console.print(f"{flag} report written to {path}", highlight=False)


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
