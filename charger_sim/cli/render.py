"""rich renderables for sessions: stage timeline, summary, verdict, suite table, live view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..protocols.base import HANDSHAKE_STEPS, Snapshot
from ..report.meta import clock_text, duration_text
from ..session.result import SessionResult


def _num(values: dict[str, float | int | str | bool], key: str, fmt: str = "{:.0f}") -> str:
    v = values.get(key)
    if v is None or isinstance(v, (str, bool)):
        return "" if v is None else str(v)
    return fmt.format(v)


def timeline(result: SessionResult) -> Table:
    table = Table(title="Stage timeline", title_justify="left", expand=False)
    table.add_column("time s", justify="right")
    table.add_column("side")
    table.add_column("stage")
    table.add_column("step", justify="right")
    table.add_column("status")
    table.add_column("V", justify="right")
    table.add_column("A", justify="right")
    table.add_column("SOC %", justify="right")
    table.add_column("detail")
    for e in result.timeline:
        v = e.values
        if e.role == "charger":
            volts, amps, soc = _num(v, "present_voltage"), _num(v, "present_current"), _num(v, "soc")
            status = str(v.get("status", ""))
        else:
            volts, amps, soc = _num(v, "battery_voltage"), _num(v, "request"), _num(v, "soc", "{:.1f}")
            status = ""
        style = "cyan" if e.role == "charger" else "magenta"
        table.add_row(
            f"{e.time:.2f}",
            Text(e.role, style=style),
            e.stage,
            str(e.step),
            status,
            volts,
            amps,
            soc,
            e.detail,
        )
    return table


def summary(result: SessionResult) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    minutes, seconds = divmod(result.duration, 60)
    table.add_row("Energy delivered", f"{result.energy_kwh:.2f} kWh")
    table.add_row("Peak current", f"{result.peak_current:.0f} A")
    table.add_row("SOC", f"{result.soc_start:.1f} % -> {result.soc_end:.1f} %")
    table.add_row(
        "Duration", f"{int(minutes)} min {seconds:04.1f} s session time ({result.wall_seconds:.2f} s wall)"
    )
    table.add_row("Max cell temperature", f"{result.max_temperature:.1f} °C")
    table.add_row(
        "Frames",
        f"{result.frames_sent} sent, {result.frames_received} received by the charger"
        + (f", {result.frames_dropped} dropped by faults" if result.frames_dropped else ""),
    )
    if result.faults:
        table.add_row("Faults injected", "; ".join(result.faults))
    return table


def verdict(result: SessionResult) -> Text:
    where = f"{result.stage} (step {result.step}: {HANDSHAKE_STEPS.get(result.step, '?')})"
    if result.outcome == "completed":
        what = f"completed: {result.cause}"
    elif result.outcome == "unfinished":
        what = f"unfinished at {where}: {result.cause}"
    else:
        what = f"stopped at {where} [{result.reason}, {result.origin}]: {result.cause}"
    if result.passed:
        head = Text("PASS ", style="bold green")
        tail = Text(f"{what} — as expected ({result.expected})")
    else:
        head = Text("FAIL ", style="bold red")
        tail = Text(f"{what} — expected {result.expected}: " + "; ".join(result.mismatches))
    return Text.assemble(head, tail)


def session_report(result: SessionResult, *, show_timeline: bool = True) -> RenderableType:
    title = f"{result.scenario} — {result.protocol}, seed {result.seed} ({result.path})"
    parts: list[RenderableType] = []
    if show_timeline:
        parts.append(timeline(result))
    parts.append(Panel(summary(result), title="Summary", title_align="left", expand=False))
    parts.append(verdict(result))
    return Group(Text(title, style="bold"), *parts)


def _suite_rows(r: SessionResult) -> dict[str, str]:
    return {
        "scenario": r.file_stem,
        "name": r.scenario,
        "protocol": r.protocol,
        "outcome": r.outcome,
        "stage reached": r.stage,
        "step": "" if r.failed_step is None else str(r.failed_step),
        "stop reason": r.reason,
        "duration": clock_text(r.duration),
        "kWh": f"{r.energy_kwh:.2f}",
        "verdict": "PASS" if r.passed else "FAIL",
    }


_RIGHT = frozenset({"step", "duration", "kWh"})


def _width(columns: Sequence[str], rows: Sequence[dict[str, str]]) -> int:
    """Characters a one-line-per-scenario table needs (two spaces between columns)."""
    return sum(max(len(c), *(len(r[c]) for r in rows)) for c in columns) + 2 * (len(columns) - 1)


def _two_line_widths(rows: Sequence[dict[str, str]], width: int) -> list[int]:
    """Column widths (padding included) of the two-line layout that fit ``width``: the verdict and the
    figures never fold, the text columns share the rest."""

    def longest(*keys: str) -> int:
        return max([len(r[k]) for r in rows for k in keys] or [1])

    figures = max(8, longest("duration", "kWh"))
    stage = min(max(13, longest("stage reached")), 16)
    outcome = min(max(11, longest("outcome", "stop reason")), 22)
    room = width - 4 - figures - 5 * 1 - 4  # verdict, figures, right padding of 5 columns, 4 dividers
    scenario = max(12, min(longest("scenario", "protocol"), room - stage - outcome))
    spare = room - scenario - stage - outcome
    if spare < 0:  # very narrow: the text columns share what is left
        outcome = max(8, outcome + spare // 2)
        stage = max(8, room - scenario - outcome)
    return [size + 1 for size in (4, scenario, outcome, stage, figures)]


def suite_table(results: Sequence[SessionResult], *, width: int = 200) -> Table:
    """One row per scenario: what happened, where a failed session stopped, and the verdict.

    The scenario is its file name (what ``charger-sim run`` takes).  When one line per scenario fits
    ``width`` the table has a column per item (plus the scenario's name if that fits too); on a
    narrow terminal each row takes two lines (protocol, stop reason and step under their headings).
    """
    passed = sum(1 for r in results if r.passed)
    rows = [_suite_rows(r) for r in results]
    flat = ["scenario", "protocol", "outcome", "stage reached", "step", "stop reason", "duration", "kWh",
            "verdict"]
    two_line = bool(rows) and _width(flat, rows) > width
    if not two_line and _width(["name", *flat], rows) <= width:
        flat.insert(1, "name")
    table = Table(
        title=f"Scenario results: {passed} of {len(results)} as expected",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
        show_lines=two_line,
    )
    if two_line:
        for col, just, size in zip(
            ("", "scenario\nprotocol", "outcome\nstop reason", "stage reached\nstep", "duration\nkWh"),
            ("left", "left", "left", "left", "right"),
            _two_line_widths(rows, width),
            strict=True,
        ):
            table.add_column(col, justify=just, overflow="fold", width=size)  # type: ignore[arg-type]
    else:
        for col in flat:
            table.add_column(col, justify="right" if col in _RIGHT else "left", overflow="fold",
                             no_wrap=col not in ("name", "stage reached", "stop reason", "scenario"))
    for r, row in zip(results, rows, strict=True):
        outcome = Text(row["outcome"], style="green" if r.outcome == "completed" else "yellow")
        verdict_cell = Text(row["verdict"], style="bold green" if r.passed else "bold red")
        if two_line:
            step = f"step {row['step']}" if row["step"] else ""
            table.add_row(
                verdict_cell,
                Text.assemble(row["scenario"], "\n", Text(row["protocol"], style="dim")),
                Text.assemble(outcome, "\n", Text(row["stop reason"], style="dim")),
                Text.assemble(row["stage reached"], "\n", Text(step, style="dim")),
                Text.assemble(row["duration"], "\n", Text(row["kWh"], style="dim")),
            )
            continue
        cells: list[RenderableType] = []
        for col in flat:
            cells.append(outcome if col == "outcome" else verdict_cell if col == "verdict" else row[col])
        table.add_row(*cells)
    return table


def suite_failures(results: Sequence[SessionResult]) -> list[RenderableType]:
    """The verdict of every scenario whose outcome differed from its expectation."""
    return [
        Text.assemble(Text(f"{r.file_stem}: ", style="bold"), verdict(r))
        for r in results
        if not r.passed
    ]


def suite_totals(results: Sequence[SessionResult], wall: float) -> Text:
    failed = sum(1 for r in results if not r.passed)
    session = sum(r.duration for r in results)
    head = (
        Text(f"{len(results)} scenarios passed", style="bold green")
        if not failed
        else Text(f"{failed} of {len(results)} scenarios failed", style="bold red")
    )
    return Text.assemble(
        head, f" — {duration_text(session)} of session time in {wall:.1f} s wall time"
    )


def live_view(title: str, charger: Snapshot, vehicle: Snapshot, elapsed: float) -> RenderableType:
    c, v = charger.values, vehicle.values
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Stage", f"{charger.stage} (step {charger.step})", "Vehicle", f"{vehicle.stage}")
    table.add_row(
        "Status 0x109", str(c.get("status", "")), "SOC", f"{float(v.get('soc', c.get('soc', 0))):.1f} %"
    )
    table.add_row("Target V", _num(c, "target_voltage"), "Present V", _num(c, "present_voltage", "{:.1f}"))
    table.add_row("Request A", _num(c, "current_request"), "Present A", _num(c, "present_current", "{:.1f}"))
    table.add_row("Power", _num(c, "power_kw", "{:.1f} kW"), "Energy", _num(c, "energy_kwh", "{:.3f} kWh"))
    table.add_row("Frames sent", _num(c, "frames_sent"), "Frames received", _num(c, "frames_received"))
    table.add_row("Last fault", str(c.get("last_fault", "") or "-"), "Elapsed", f"{elapsed:.1f} s")
    return Panel(table, title=title, title_align="left", expand=False)


def cadence_table(rows: Sequence[Any]) -> Table:
    """Cadence statistics (``drivers.realtime.Cadence`` rows): cyclic frames as sent and received."""
    table = Table(title="Cadence of the cyclic frames", title_justify="left")
    for col in (
        "frame",
        "as",
        "count",
        "nominal ms",
        "mean period ms",
        "p99 |error| ms",
        "max |error| ms",
        "late (>110 %)",
    ):
        table.add_column(col, justify="right")
    for c in rows:
        table.add_row(
            f"0x{c.frame_id:03X}",
            c.direction,
            str(c.count),
            f"{c.nominal_ms:g}",
            f"{c.mean_ms:.2f}",
            f"{c.p99_error_ms:.2f}",
            f"{c.max_error_ms:.2f}",
            str(c.late),
        )
    return table


_LOCAL_ROWS = {
    "charger": (
        ("Status 0x109", "status", "{}"),
        ("Target V", "target_voltage", "{:.0f}"),
        ("Request A", "current_request", "{:.0f}"),
        ("Present V", "present_voltage", "{:.1f}"),
        ("Present A", "present_current", "{:.1f}"),
        ("Power", "power_kw", "{:.1f} kW"),
        ("Energy", "energy_kwh", "{:.3f} kWh"),
        ("Frames sent", "frames_sent", "{}"),
        ("Last fault", "last_fault", "{}"),
    ),
    "vehicle": (
        ("SOC", "soc", "{:.1f} %"),
        ("Battery V", "battery_voltage", "{:.1f}"),
        ("Request A", "request", "{:.0f}"),
        ("Contactors", "contactors_closed", "{}"),
        ("Temperature", "temperature", "{:.1f} °C"),
        ("Frames sent", "frames_sent", "{}"),
    ),
}
_REMOTE_ROWS = {
    "charger": (  # the local side is the charger: the remote is a vehicle
        ("SOC (0x102)", "soc", "{:.0f} %"),
        ("Request A", "request", "{:.0f}"),
        ("Battery V (model)", "battery_voltage", "{:.1f}"),
        ("Contactors", "contactors_closed", "{}"),
        ("Frames received", "frames_received", "{}"),
    ),
    "vehicle": (
        ("Status 0x109", "status", "{}"),
        ("Present V", "present_voltage", "{:.1f}"),
        ("Present A", "present_current", "{:.1f}"),
        ("Power", "power_kw", "{:.1f} kW"),
        ("d1 / d2 (inferred)", "d1", "{}"),
        ("Frames received", "frames_received", "{}"),
        ("Fault flags", "last_fault", "{}"),
    ),
}


def role_view(title: str, role: str, local: Snapshot, remote: Snapshot, elapsed: float) -> RenderableType:
    """Live view of a single-role run: the simulated side and the real peer as seen on the bus."""

    def cells(
        rows: tuple[tuple[str, str, str], ...], values: dict[str, float | int | str | bool]
    ) -> list[tuple[str, str]]:
        out = []
        for label, key, fmt in rows:
            v = values.get(key)
            if key == "d1":
                text = f"{'on' if values.get('d1') else 'off'} / {'on' if values.get('d2') else 'off'}"
            elif v is None or v == "":
                text = "-"
            elif isinstance(v, bool):
                text = "closed" if v else "open"
            else:
                text = fmt.format(v)
            out.append((label, text))
        return out

    left = [("Stage", f"{local.stage} (step {local.step})"), *cells(_LOCAL_ROWS[role], local.values)]
    right = [("Peer", remote.stage), *cells(_REMOTE_ROWS[role], remote.values)]
    right.append(("Elapsed", f"{elapsed:.1f} s"))
    table = Table.grid(padding=(0, 2))
    for style in ("bold", None, "bold", None):
        table.add_column(style=style)
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ("", "")
        b = right[i] if i < len(right) else ("", "")
        table.add_row(a[0], a[1], b[0], b[1])
    return Panel(table, title=title, title_align="left", expand=False)
