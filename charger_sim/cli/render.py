"""rich renderables for sessions: stage timeline, summary, verdict, suite table, live view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..protocols.base import HANDSHAKE_STEPS, Snapshot
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


def verdict(result: SessionResult) -> RenderableType:
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


def suite_table(results: Sequence[SessionResult]) -> Table:
    table = Table(title="Scenario results", title_justify="left")
    for col, just in (
        ("scenario", "left"),
        ("protocol", "left"),
        ("outcome", "left"),
        ("stage reached", "left"),
        ("step", "right"),
        ("stop reason", "left"),
        ("duration s", "right"),
        ("energy kWh", "right"),
        ("verdict", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in results:
        table.add_row(
            r.scenario,
            r.protocol,
            r.outcome,
            r.stage,
            str(r.step),
            r.reason,
            f"{r.duration:.1f}",
            f"{r.energy_kwh:.2f}",
            Text("PASS", style="green") if r.passed else Text("FAIL", style="red"),
        )
    return table


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
