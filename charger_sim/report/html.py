"""The HTML report of a run: one self-contained file (inline CSS and SVG, no external resources).

A summary table links to one section per scenario: verdict banner (expected vs actual), where and
why the session stopped (handshake step, stage, cause in words, whose fault), the faults injected,
key figures, the stage bar over time (with a zoom on the handshake), charging curves (current,
voltage, power, SOC, hottest cell) and the stage timeline table, then the seed and versions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from ..protocols.base import HANDSHAKE_STEPS
from ..session.result import SessionResult
from . import svg
from .meta import (
    RunInfo,
    charging_began,
    clock_text,
    duration_text,
    short_protocol,
    stage_description,
    stop_began,
    where_stopped,
    whose,
)
from .style import page, step_legend


def e(text: object) -> str:
    return escape(str(text), quote=True)


def code(text: str) -> str:
    """A stage or reason code that may break after its underscores in a narrow column."""
    return "<code>" + e(text).replace("_", "_<wbr>") + "</code>"


def anchor(index: int, result: SessionResult) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", result.file_stem).strip("-") or "scenario"
    return f"sc-{index + 1}-{slug}"


def badge(passed: bool) -> str:
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _num(v: float, fmt: str = "{:.2f}") -> str:
    return fmt.format(v)


def summary_table(results: Sequence[SessionResult]) -> str:
    head = (
        "<tr><th>#</th><th>verdict</th><th>scenario</th><th>protocol</th><th>expected</th><th>outcome</th>"
        "<th>stage reached</th><th class=num>step</th><th>stop reason</th><th class=num>duration</th>"
        "<th class=num>energy kWh</th></tr>"
    )
    rows = []
    for i, r in enumerate(results):
        step = "" if r.failed_step is None else str(r.failed_step)
        rows.append(
            f"<tr><td class=num>{i + 1}</td><td>{badge(r.passed)}</td>"
            f'<td><a href="#{anchor(i, r)}">{e(r.scenario)}</a>'
            f'<div class="muted mono">{e(r.file_stem)}</div></td>'
            f"<td>{e(short_protocol(r.protocol))}</td>"
            f'<td class="exp">{e(r.expected)}</td><td>{e(r.outcome)}</td>'
            f'<td>{code(r.stage)}</td><td class=num title="{e(HANDSHAKE_STEPS.get(r.step, ""))}">'
            f"{e(step)}</td><td>{code(r.reason)}</td>"
            f"<td class=num>{e(clock_text(r.duration))}</td><td class=num>{_num(r.energy_kwh)}</td></tr>"
        )
    return f'<div class="scroll"><table class="summary">{head}{"".join(rows)}</table></div>'


def _banner(r: SessionResult) -> str:
    actual = f"{r.outcome} at {r.stage} (step {r.step}) with {r.reason}"
    if r.passed:
        return (
            '<div class="banner pass"><div class="big">PASSED</div><div>'
            f"<div><b>Expected</b> {e(r.expected)}</div><div><b>Actual</b> {e(actual)}</div></div></div>"
        )
    items = "".join(f"<li>{e(m)}</li>" for m in r.mismatches)
    return (
        '<div class="banner fail"><div class="big">FAILED</div><div>'
        f"<div><b>Expected</b> {e(r.expected)}</div><div><b>Actual</b> {e(actual)}</div>"
        f"<ul>{items}</ul></div></div>"
    )


def _where(r: SessionResult) -> str:
    began = stop_began(r)
    when = (
        f"the charger began its stop path at {began:.2f} s; the session ended at {r.duration:.2f} s"
        if began is not None and r.outcome != "unfinished"
        else f"session time {r.duration:.2f} s"
    )
    desc = stage_description(r.protocol, r.stage)
    title = "How it ended" if r.outcome == "completed" else "Where and why it stopped"
    return (
        f'<div class="box"><h4>{title}</h4>'
        f"<p><b>Step {r.step} — {e(HANDSHAKE_STEPS.get(r.step, '?'))}</b>, stage <code>{e(r.stage)}</code>"
        + (f' <span class="muted">({e(desc)})</span>' if desc else "")
        + f"</p><p><b>Cause:</b> {e(r.cause)}</p>"
        f"<p><b>Whose:</b> {e(whose(r))} · reason code <code>{e(r.reason)}</code></p>"
        f'<p class="muted">{e(where_stopped(r))}; {e(when)}</p></div>'
    )


def _faults(r: SessionResult) -> str:
    if r.faults:
        injected = "<ul>" + "".join(f"<li>{e(f)}</li>" for f in r.faults) + "</ul>"
    else:
        injected = '<p class="muted">none — the scenario injects no fault</p>'
    fired = ""
    if r.fault_times:
        fired = (
            "<p><b>Fired:</b></p><ul>"
            + "".join(f"<li>{t:.2f} s: {e(what)}</li>" for t, what in r.fault_times)
            + "</ul>"
        )
    raised = ""
    if r.charger_faults:
        raised = (
            "<p><b>Raised by the charger:</b></p><ul>"
            + "".join(f"<li>{e(f)}</li>" for f in r.charger_faults)
            + "</ul>"
        )
    return f'<div class="box"><h4>Faults injected</h4>{injected}{fired}{raised}</div>'


def _tiles(r: SessionResult) -> str:
    tiles = [
        ("Energy delivered", f"{r.energy_kwh:.2f} kWh"),
        ("Session time", duration_text(r.duration)),
        ("SOC", f"{r.soc_start:.1f} → {r.soc_end:.1f} %"),
        ("Peak current", f"{r.peak_current:.0f} A"),
        ("Max cell temperature", f"{r.max_temperature:.1f} °C"),
        ("Frames sent", f"{r.frames_sent:,}"),
        ("Frames received", f"{r.frames_received:,}"),
        ("Frames dropped", f"{r.frames_dropped:,}"),
    ]
    cells = "".join(
        f'<div class="tile"><div class="k">{k}</div><div class="v">{e(v)}</div></div>' for k, v in tiles
    )
    return f'<div class="tiles">{cells}</div>'


def _markers(r: SessionResult) -> list[svg.Marker]:
    out = [svg.Marker(t, f"fault: {what}") for t, what in r.fault_times]
    began = stop_began(r)
    if began is not None and r.outcome != "completed":
        out.append(svg.Marker(began, "charger stop path", "stop"))
    return out


def _stage_bars(r: SessionResult) -> str:
    end = max(r.duration, r.samples[-1].time if r.samples else 0.0)
    lanes = []
    for side in ("charger", "vehicle"):
        entries = [(x.time, x.stage, x.step, x.detail) for x in r.timeline if x.role == side]
        if entries:
            lanes.append((side, svg.bars_of(entries, end)))
    if not lanes:
        return '<p class="muted">no stage changes recorded</p>'
    marks = _markers(r)
    out = [svg.gantt(lanes, start=0.0, end=end, title="Stages over the whole session", markers=marks)]
    charging = charging_began(r)
    if charging is not None and charging < 0.4 * end:
        zoom_end = min(end, charging + max(5.0, 0.15 * charging))
        out.append(
            svg.gantt(
                lanes, start=0.0, end=zoom_end, title=f"Handshake: first {zoom_end:.0f} s", markers=marks
            )
        )
    steps = {x.step for x in r.timeline}
    return "".join(out) + step_legend(steps)


def _curves(r: SessionResult) -> str:
    if len(r.samples) < 2:
        return '<p class="muted">too few samples to plot</p>'
    s = r.samples
    dur = max(r.duration, s[-1].time)
    marks = _markers(r)

    def pts(attr: str) -> list[tuple[float, float]]:
        return [(x.time, float(getattr(x, attr))) for x in s]

    charts = [
        svg.line_chart(
            "Current",
            "A",
            [
                svg.Series("requested", pts("current_request"), "s2"),
                svg.Series("present", pts("present_current"), "s1"),
            ],
            duration=dur,
            markers=marks,
        ),
        svg.line_chart(
            "Voltage",
            "V",
            [
                svg.Series("target", pts("target_voltage"), "s2"),
                svg.Series("present", pts("present_voltage"), "s1"),
            ],
            duration=dur,
            markers=marks,
        ),
        svg.line_chart(
            "Power", "kW", [svg.Series("output", pts("power_kw"), "s3")], duration=dur, markers=marks
        ),
        svg.line_chart(
            "State of charge",
            "%",
            [svg.Series("SOC", pts("soc"), "s4")],
            duration=dur,
            zero=False,
            markers=marks,
        ),
        svg.line_chart(
            "Hottest cell group",
            "°C",
            [svg.Series("max cell temperature", pts("max_cell_temperature"), "s5")],
            duration=dur,
            zero=False,
            markers=marks,
        ),
        svg.line_chart(
            "Highest cell voltage",
            "V",
            [svg.Series("max cell voltage", pts("max_cell_voltage"), "s6")],
            duration=dur,
            zero=False,
            markers=marks,
        ),
    ]
    return '<div class="charts">' + "".join(charts) + "</div>"


def _timeline_table(r: SessionResult) -> str:
    rows = []
    for x in r.timeline:
        v = x.values
        if x.role == "charger":
            volts, amps, soc = v.get("present_voltage"), v.get("present_current"), v.get("soc")
        else:
            volts, amps, soc = v.get("battery_voltage"), v.get("request"), v.get("soc")

        def f(val: object, fmt: str = "{:.0f}") -> str:
            return fmt.format(val) if isinstance(val, (int, float)) and not isinstance(val, bool) else ""

        rows.append(
            f"<tr><td class=num>{x.time:.2f}</td><td class=side-{e(x.role)}>{e(x.role)}</td>"
            f"<td><code>{e(x.stage)}</code></td><td class=num>{x.step}</td>"
            f"<td class=num>{f(volts)}</td><td class=num>{f(amps)}</td><td class=num>{f(soc, '{:.1f}')}</td>"
            f'<td class="detail">{e(x.detail)}</td></tr>'
        )
    head = (
        "<tr><th class=num>time s</th><th>side</th><th>stage</th><th class=num>step</th>"
        "<th class=num>V</th><th class=num>A</th><th class=num>SOC %</th><th>detail</th></tr>"
    )
    return (
        f'<details class="more" open><summary>Stage timeline table ({len(r.timeline)} changes)</summary>'
        f'<table class="timeline">{head}{"".join(rows)}</table></details>'
    )


def scenario_section(index: int, r: SessionResult, info: RunInfo, *, open_: bool) -> str:
    opened = " open" if open_ else ""
    head = (
        f'<summary>{badge(r.passed)}<span class="name">{e(r.scenario)}</span>'
        f'<span class="muted">{e(short_protocol(r.protocol))} · {e(r.outcome)} · step {r.step} · '
        f"{e(r.reason)} · {e(duration_text(r.duration))} · {r.energy_kwh:.2f} kWh</span></summary>"
    )
    versions = ", ".join(f"{k} {v}" for k, v in info.versions.items())
    body = (
        _banner(r)
        + f'<div class="grid2">{_where(r)}{_faults(r)}</div>'
        + _tiles(r)
        + "<h3>Stage timeline</h3>"
        + _stage_bars(r)
        + "<h3>Charging curves</h3>"
        + _curves(r)
        + _timeline_table(r)
        + f'<div class="repro">Scenario file <code>{e(r.path)}</code> · seed <b>{r.seed}</b> · '
        "reproduce with "
        f"<code>{e(info.reproduce(r))}</code><br>{e(versions)} · "
        f"{r.wall_seconds:.2f} s wall time</div>"
    )
    return (
        f'<details class="scenario" id="{anchor(index, r)}"{opened}>{head}'
        f'<div class="body">{body}</div></details>'
    )


def html_report(
    results: Sequence[SessionResult], info: RunInfo, *, generated: str = "", title: str = "charger-sim report"
) -> str:
    """The whole report as one HTML document."""
    passed = sum(1 for r in results if r.passed)
    failed = len(results) - passed
    status = (
        f'<div class="status pass">ALL {len(results)} PASSED</div>'
        if failed == 0
        else f'<div class="status fail">{failed} OF {len(results)} FAILED</div>'
    )
    session_total = sum(r.duration for r in results)
    sub = (
        f"{len(results)} scenario{'s' if len(results) != 1 else ''} · {passed} passed · {failed} failed · "
        f"{duration_text(session_total)} of session time simulated in {info.wall_seconds:.1f} s"
    )
    seeds = ", ".join(f"{r.file_stem} {r.seed}" for r in results)
    overrides = []
    if info.seed_override is not None:
        overrides.append(f"--seed {info.seed_override}")
    if info.time_limit_override is not None:
        overrides.append(f"--time-limit {info.time_limit_override:g}")
    versions = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in info.versions.items())
    header = (
        f'<header class="top"><div><h1>{e(title)}</h1><div class="sub">{e(sub)}</div></div>{status}</header>'
    )
    summary = f'<section class="card"><h2>Scenarios</h2>{summary_table(results)}</section>'
    run = (
        '<section class="card"><h2>Run</h2><div class="grid2"><div>'
        f"<p><b>Seeds:</b> <span class=mono>{e(seeds)}</span></p>"
        f"<p><b>Overrides:</b> {e(', '.join(overrides) or 'none (each scenario its own seed)')}</p>"
        + (f"<p><b>Generated:</b> {e(generated)}</p>" if generated else "")
        + "<p class=muted>Same scenario, seed and versions: the same frames at the same times.</p>"
        f'</div><table class="versions">{versions}</table></div></section>'
    )
    tools = (
        '<div class="tools"><button type="button" onclick="setAll(true)">expand all</button>'
        '<button type="button" onclick="setAll(false)">collapse all</button></div>'
    )
    many = len(results) > 3
    sections = "".join(
        scenario_section(i, r, info, open_=not (many and r.passed)) for i, r in enumerate(results)
    )
    footer = f"<footer>charger-sim {e(info.versions.get('charger-sim', ''))} · {e(sub)}</footer>"
    doc_title = f"{title} — {passed}/{len(results)} passed"
    return page(doc_title, header + summary + run + tools + sections + footer)
