"""The compatibility matrix as one self-contained HTML page (same style as the run report)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .meta import RunInfo, clock_text, short_protocol
from .style import page

if TYPE_CHECKING:
    from ..matrix import Matrix
    from ..scenario.profiles import Profile


def e(text: object) -> str:
    return escape(str(text), quote=True)


def _head(p: Profile) -> str:
    return (
        f'<th title="{e(p.title)}"><div>{e(p.name)}</div>'
        f'<div class="muted" style="font-weight:400">{e(short_protocol(p.protocol))}</div></th>'
    )


def grid(m: Matrix) -> str:
    from ..matrix import cell_text

    head = '<tr><th class="rowhead">vehicle \\ charger</th>' + "".join(_head(c) for c in m.chargers) + "</tr>"
    rows = []
    for v in m.vehicles:
        cells = []
        for c in m.chargers:
            row = m.cell(v.name, c.name)
            kind, headline, detail = cell_text(row)
            tip = f"{v.name} on {c.name}: {row.outcome}" + (f" — {row.cause}" if row.cause else "")
            cells.append(
                f'<td class="cell {kind}" title="{e(tip)}"><b>{e(headline)}</b>'
                + (f"<span>{e(detail)}</span>" if detail else "")
                + "</td>"
            )
        rows.append(
            f'<tr><th class="rowhead" title="{e(v.title)}">{e(v.name)}'
            f'<div class="muted" style="font-weight:400">{e(short_protocol(v.protocol))}</div></th>'
            + "".join(cells)
            + "</tr>"
        )
    return f'<div class="scroll"><table class="matrix">{head}{"".join(rows)}</table></div>'


def pair_table(m: Matrix) -> str:
    head = (
        "<tr><th>vehicle</th><th>charger</th><th>outcome</th><th class=num>step</th><th>cause</th>"
        "<th>stop reason</th><th>stage</th><th class=num>duration</th><th class=num>energy kWh</th></tr>"
    )
    rows = []
    for r in m.rows:
        if not r.compatible:
            continue
        badge = (
            '<span class="badge pass">completed</span>'
            if r.completed
            else f'<span class="badge fail">{e(r.outcome)}</span>'
        )
        step = "" if r.failed_step is None else f"{r.failed_step}"
        rows.append(
            f"<tr><td>{e(r.vehicle)}</td><td>{e(r.charger)}</td><td>{badge}</td>"
            f'<td class=num title="{e(r.step_name)}">{e(step)}</td><td>{e(r.cause)}</td>'
            f"<td><code>{e(r.stop_reason)}</code></td><td><code>{e(r.stage)}</code></td>"
            f"<td class=num>{e(clock_text(r.duration))}</td><td class=num>{r.energy_kwh:.2f}</td></tr>"
        )
    return f'<div class="scroll"><table>{head}{"".join(rows)}</table></div>'


def _profiles(title: str, profiles: tuple[Profile, ...]) -> str:
    rows = "".join(
        f"<tr><td><code>{e(p.name)}</code></td><td>{e(short_protocol(p.protocol))}</td><td>{e(p.title)}"
        f'<div class="muted">{e(p.description)}</div></td></tr>'
        for p in profiles
    )
    head = "<tr><th>name</th><th>protocol</th><th>what</th></tr>"
    return f"<div><h3>{e(title)}</h3><table>{head}{rows}</table></div>"


def matrix_html(m: Matrix, info: RunInfo, *, generated: str = "") -> str:
    run = [r for r in m.rows if r.compatible]
    ok = sum(1 for r in run if r.completed)
    incompatible = len(m.rows) - len(run)
    sub = (
        f"{len(m.vehicles)} vehicles × {len(m.chargers)} chargers · {len(run)} pairs run · {ok} completed · "
        f"{len(run) - ok} did not · {incompatible} incompatible connectors · {m.wall_seconds:.1f} s"
    )
    status = (
        f'<div class="status pass">{ok} OF {len(run)} CHARGE</div>'
        if ok == len(run)
        else f'<div class="status fail">{len(run) - ok} OF {len(run)} DO NOT CHARGE</div>'
    )
    versions = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in info.versions.items())
    settings = [f"seed {m.seed}"]
    settings.append("plug-in SOC: each vehicle's own" if m.soc is None else f"plug-in SOC {m.soc:g} %")
    if m.time_limit is not None:
        settings.append(f"time limit {m.time_limit:g} s")
    body = (
        f'<header class="top"><div><h1>Compatibility matrix</h1><div class="sub">{e(sub)}</div></div>'
        f"{status}</header>"
        '<section class="card"><h2>Vehicles × chargers</h2>'
        '<p class="muted">Each cell is a full session in simulated time, from the vehicle\'s plug-in SOC to '
        "its target. Green: charged to the end; red: stopped at the handshake step shown; grey: the "
        "connectors do not mate. Hover a cell for the cause.</p>"
        f"{grid(m)}</section>"
        f'<section class="card"><h2>Pairs that were run</h2>{pair_table(m)}</section>'
        '<section class="card"><h2>Profiles</h2><div class="grid2">'
        f"{_profiles('Vehicles', m.vehicles)}{_profiles('Chargers', m.chargers)}</div></section>"
        f'<section class="card"><h2>Run</h2><div class="grid2"><div><p>{e(", ".join(settings))}</p>'
        + (f"<p><b>Generated:</b> {e(generated)}</p>" if generated else "")
        + f'<p class="muted">Reproduce: <code>{e(reproduce(m))}</code></p></div>'
        f"<table>{versions}</table></div></section>"
    )
    return page(f"Compatibility matrix — {ok}/{len(run)} charge", body, script=False, wide=True)


def reproduce(m: Matrix) -> str:
    parts = [
        "charger-sim matrix",
        "--vehicles",
        ",".join(p.name for p in m.vehicles),
        "--chargers",
        ",".join(p.name for p in m.chargers),
        "--seed",
        str(m.seed),
    ]
    if m.soc is not None:
        parts += ["--soc", f"{m.soc:g}"]
    if m.time_limit is not None:
        parts += ["--time-limit", f"{m.time_limit:g}"]
    return " ".join(parts)
