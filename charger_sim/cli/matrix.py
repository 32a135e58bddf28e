"""``charger-sim matrix``: every vehicle profile on every charger configuration, as one grid."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from .. import report
from ..errors import ExitCode, UsageError
from ..matrix import Matrix, MatrixRow, cell_text, kwh_text, parse_names, run_matrix, select
from ..report.matrix_html import matrix_html
from ..report.meta import RunInfo, short_protocol
from ..scenario.profiles import charger_profiles, vehicle_profiles

STYLES = {"ok": "green", "bad": "red", "warn": "yellow", "na": "dim"}


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "matrix",
        help="run every vehicle profile on every charger configuration (compatibility grid)",
        description="Pair vehicle profiles with charger configurations (default: all shipped ones), run "
        "each same-protocol pair as a full session in simulated time and show the grid: which "
        "combinations charge, and at which handshake step the others stop. Pairs whose connectors do "
        "not mate are shown as '—' without running. `charger-sim profiles` lists the names.",
    )
    p.add_argument("--vehicles", metavar="A,B,...", help="vehicle profiles, comma-separated (default: all)")
    p.add_argument(
        "--chargers", metavar="X,Y,...", help="charger configurations, comma-separated (default: all)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every pair's session (default 0)")
    p.add_argument(
        "--soc", type=float, metavar="PCT", help="plug-in SOC for every vehicle (default: each profile's)"
    )
    p.add_argument("--time-limit", type=float, metavar="S", help="session time limit per pair (default 8 h)")
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="run pairs on N processes (default 0: one per CPU; 1: one after the other)",
    )
    p.add_argument(
        "--json", type=Path, metavar="FILE", help="write one row per pair as JSON ('-' for stdout)"
    )
    p.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write the grid as a self-contained HTML page ('-' for stdout)",
    )
    p.set_defaults(handler=handle)


CELL = 18  # characters a full-layout cell wants ("completed 177 kWh")


def _label(name: str, protocol: str) -> Text:
    return Text.assemble(name, "\n", Text(short_protocol(protocol), style="dim"))


def grid(m: Matrix, width: int = 200) -> RenderableType:
    """Vehicles as rows, chargers as columns; a cell says how far the pair got.

    When the full grid (charger names as headings, two-line cells) is wider than ``width``, the
    chargers are numbered and listed under the grid, and cells keep one short line.
    """
    first = max([len("vehicle \\ charger"), *(len(v.name) for v in m.vehicles)])
    full = first + sum(max(len(c.name), CELL) + 2 for c in m.chargers) + 2
    compact = full > width
    table = Table(
        title="Compatibility matrix (vehicles × chargers)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        show_lines=not compact,
    )
    table.add_column("vehicle \\ charger", no_wrap=True)
    for i, c in enumerate(m.chargers):
        head = (
            Text.assemble(str(i + 1), "\n", Text(short_protocol(c.protocol), style="dim"))
            if compact
            else (_label(c.name, c.protocol))
        )
        table.add_column(head, justify="center", no_wrap=compact, overflow="fold")
    for v in m.vehicles:
        cells: list[Text] = []
        for c in m.chargers:
            row = m.cell(v.name, c.name)
            kind, headline, detail = cell_text(row)
            style = STYLES[kind]
            if compact:
                short = {"ok": kwh_text(row.energy_kwh), "bad": f"step {row.failed_step}"}.get(kind, headline)
                cells.append(Text(short if kind != "warn" else "unfin.", style=style))
                continue
            cell = Text(headline, style=style)
            if detail:
                cell.append("\n" + detail, style="dim")
            cells.append(cell)
        table.add_row(Text(v.name, style="bold") if compact else _label(v.name, v.protocol), *cells)
    if not compact:
        return table
    legend = Text("chargers: ", style="dim")
    legend.append("; ".join(f"{i + 1} {c.name}" for i, c in enumerate(m.chargers)))
    key = Text.assemble(
        ("N kWh", "green"),
        " charged to the end · ",
        ("step N", "red"),
        " stopped at that handshake step · ",
        ("—", "dim"),
        " connectors do not mate",
    )
    return Group(table, legend, key)


def problems(m: Matrix) -> list[Text]:
    """One line per same-protocol pair that did not charge to the end, with the cause in full."""
    out = []
    for r in m.rows:
        if not r.compatible or r.completed:
            continue
        where = f"step {r.failed_step} ({r.step_name}), stage {r.stage}"
        out.append(
            Text.assemble(
                Text(f"{r.vehicle} on {r.charger}: ", style="bold"),
                Text(f"{r.outcome} at {where} [{r.stop_reason}, {r.origin}]: ", style="red"),
                r.cause,
            )
        )
    return out


def summary(m: Matrix) -> Text:
    run = [r for r in m.rows if r.compatible]
    ok = sum(1 for r in run if r.completed)
    return Text.assemble(
        Text(
            f"{ok} of {len(run)} pairs charged to the end", style="bold green" if ok == len(run) else "bold"
        ),
        f"; {len(m.rows) - len(run)} pairs do not mate (different connector); "
        f"{m.wall_seconds:.1f} s wall time",
    )


def handle(args: argparse.Namespace, console: Console) -> int:
    vehicles = select("vehicle", parse_names(args.vehicles), vehicle_profiles())
    chargers = select("charger", parse_names(args.chargers), charger_profiles())
    if args.soc is not None and not 0 <= args.soc <= 100:
        raise UsageError("--soc must be a percentage in [0, 100]")
    if args.time_limit is not None and args.time_limit <= 0:
        raise UsageError("--time-limit must be positive")
    if args.jobs < 0:
        raise UsageError("--jobs must be 0 (one per CPU) or more")
    if str(args.json) == "-" and str(args.html) == "-":
        raise UsageError("only one report can go to stdout; --json and --html both say '-'")
    quiet = "-" in (str(args.json), str(args.html))
    pairs = sum(1 for v in vehicles for c in chargers if v.protocol == c.protocol)

    if console.is_terminal and not quiet:
        done: list[MatrixRow] = []
        with console.status(f"running {pairs} vehicle/charger pairs in simulated time") as status:

            def progress(row: MatrixRow) -> None:
                if row.compatible:
                    done.append(row)
                    status.update(f"{len(done)}/{pairs} pairs run — last: {row.vehicle} on {row.charger}")

            m = run_matrix(
                vehicles,
                chargers,
                seed=args.seed,
                soc=args.soc,
                time_limit=args.time_limit,
                jobs=args.jobs,
                on_done=progress,
            )
    else:
        m = run_matrix(
            vehicles, chargers, seed=args.seed, soc=args.soc, time_limit=args.time_limit, jobs=args.jobs
        )
    info = RunInfo(
        seed_override=args.seed,
        time_limit_override=args.time_limit,
        wall_seconds=m.wall_seconds,
        command="charger-sim matrix",
    )
    if not quiet:
        console.print(grid(m, console.width))
        console.print()
        for line in problems(m):
            console.print(line, soft_wrap=True)
        console.print(summary(m), highlight=False)
    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    for flag, path in (("json", args.json), ("html", args.html)):
        if path is None:
            continue
        if flag == "json":
            text = json.dumps(m.to_dict(info), indent=2, ensure_ascii=False) + "\n"
        else:
            text = matrix_html(m, info, generated=generated)
        if str(path) == "-":
            console.file.write(text)
            console.file.flush()
        else:
            report.write_text(path, text, f"--{flag}")
            if not quiet:
                console.print(f"{flag} report written to {path}", highlight=False)
    return int(ExitCode.OK)
