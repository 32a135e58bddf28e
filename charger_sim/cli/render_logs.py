"""rich renderables for field logs: decoded frames, the diagnosis report, the replay report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..diagnose.capture import Capture
from ..diagnose.decode import TRANSPORT, UNKNOWN, Row
from ..diagnose.model import COMPLETED, FAILED, CaptureInfo, Diagnosis, SessionVerdict, StageSpan
from ..protocols.base import HANDSHAKE_STEPS

SIDE_STYLE = {"charger": "cyan", "vehicle": "magenta"}
OUTCOME_STYLE = {COMPLETED: "bold green", FAILED: "bold red"}
TITLES = {"chademo": "CHAdeMO", "gbt": "GB/T 27930", "ccs": "CCS"}


def _t(value: float | None, fmt: str = "{:.3f}") -> str:
    return "—" if value is None else fmt.format(value)


# ------------------------------------------------------------------------------------- decode


def decoded_rows(rows: Iterable[Row]) -> Text:
    out = Text(no_wrap=False)
    for row in rows:
        style = SIDE_STYLE.get(row.side, "")
        out.append(f"{row.time:11.3f} ")
        out.append(f"{row.side or '?':7} ", style=style)
        out.append(f"{row.id_text:>8} [{row.dlc}] ")
        name_style = "dim" if row.kind in (TRANSPORT, UNKNOWN) else "bold"
        out.append(f"{row.name:<26} ", style=name_style)
        if row.kind == "message":
            out.append("(reassembled) ", style="green")
        out.append(row.signals)
        if row.problem:
            out.append(f"  ! {row.problem}", style="yellow")
        out.append("\n")
    return out


def capture_summary(capture: Capture, shown: int, counts: dict[str, int]) -> Text:
    r = capture.read
    parts = [
        f"{len(r.frames)} frames read from {capture.path} ({r.format}); "
        f"protocol {TITLES.get(capture.protocol, capture.protocol)}; timestamps {capture.timestamps}",
        f"{shown} rows shown: {counts.get('frame', 0)} frames decoded, "
        f"{counts.get('tp', 0)} transport frames, "
        f"{counts.get('message', 0)} reassembled messages, {counts.get('unknown', 0)} protocol frames not in "
        f"the DBC; {sum(capture.foreign.values())} frames of other nodes",
        f"skipped lines: {r.skipped_lines} non-frame, {r.malformed_lines} malformed; "
        f"{r.skipped_frames} non-data frames (error/remote/FD); {r.time_corrections} timestamps corrected",
    ]
    text = Text("\n".join(parts), style="dim")
    for problem in r.problems[:10]:
        text.append(f"\n  {problem}", style="yellow")
    return text


# ------------------------------------------------------------------------------------- diagnose


def _verdict_text(s: SessionVerdict) -> Text:
    where = f"step {s.step} ({HANDSHAKE_STEPS.get(s.step, '?')}), stage {s.stage}"
    head = Text(s.outcome.upper(), style=OUTCOME_STYLE.get(s.outcome, "bold yellow"))
    if s.outcome == COMPLETED:
        body = f": {s.cause}" + (f" [{s.reason}]" if s.reason else "")
    elif s.outcome == FAILED:
        body = f" at {where} [{s.reason}, {s.origin}]: {s.cause}"
    else:
        body = f" ({where}): {s.cause}"
    return Text.assemble("Verdict: ", head, body)


def _frame_no(index: int | None) -> str:
    return "—" if index is None else f"#{index}"


def _span_row(table: Table, span: StageSpan, by_frame: bool) -> None:
    dur = span.duration
    limit = "" if span.limit_s is None else f"{span.limit_s:g}"
    over = Text("over", style="red") if span.over_limit and not by_frame else Text("")
    table.add_row(
        Text(span.side, style=SIDE_STYLE.get(span.side, "")),
        span.stage + (" *" if span.inferred else ""),
        str(span.step),
        _frame_no(span.start_frame) if by_frame else _t(span.start),
        _frame_no(span.end_frame) if by_frame else _t(span.end),
        "" if by_frame else _t(dur, "{:.2f}"),
        limit,
        over,
        span.detail,
    )


def stage_table(s: SessionVerdict, title: str, *, by_frame: bool = False) -> Table:
    """Both sides' stages, interleaved in time (by capture frame when the timestamps are unusable)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    unit = "frame" if by_frame else "s"
    for col, just in (
        ("side", "left"),
        ("stage", "left"),
        ("step", "right"),
        (f"start {unit}", "right"),
        (f"end {unit}", "right"),
        ("dur. s", "right"),
        ("limit s", "right"),
        ("", "left"),
    ):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("detail", overflow="fold", min_width=16)

    def order(x: StageSpan) -> tuple[float, bool]:
        if by_frame:
            return (float(x.start_frame) if x.start_frame is not None else float("-inf"), x.side != "charger")
        return (x.start if x.start is not None else float("-inf"), x.side != "charger")

    for span in sorted([*s.stages, *s.vehicle_stages], key=order):
        _span_row(table, span, by_frame)
    return table


def _walk(label: str, walk: Sequence[tuple[float, str]], limit: int = 24) -> Text:
    items = [w for _t, w in walk]
    shown = " → ".join(items[:limit]) + (f" → … (+{len(items) - limit})" if len(items) > limit else "")
    return Text.assemble((f"{label}: ", "bold"), shown or "—")


def _info_line(info: CaptureInfo, protocol: str) -> Text:
    return Text(
        f"{info.path} — {TITLES.get(protocol, protocol)} capture ({info.format}, {info.frames} frames, "
        f"{info.protocol_frames} of the protocol; skipped lines: {info.skipped_lines} non-frame, "
        f"{info.malformed_lines} malformed; timestamps {info.timestamps}; {info.duration:.2f} s)",
        style="bold",
    )


def diagnosis_report(d: Diagnosis, *, all_sessions: bool = False) -> RenderableType:
    parts: list[RenderableType] = [_info_line(d.capture, d.protocol)]
    main = d.main
    if main is None:
        parts.append(Text("no session found in the capture", style="yellow"))
        return Group(*parts)
    parts.append(_verdict_text(main))
    shown = d.sessions if all_sessions else [main]
    for s in shown:
        by_frame = d.capture.timestamps == "none"
        span = "in frame order (no timestamps)" if by_frame else f"{s.start:.2f}–{s.end:.2f} s"
        title = (
            f"Stage timeline — session {s.index + 1} of {len(d.sessions)}, {span} "
            "(* = inferred from later evidence)"
        )
        parts.append(stage_table(s, title, by_frame=by_frame))
        side_names = ("charger 0x109.5", "vehicle 0x102.5") if d.protocol == "chademo" else ("charger", "BMS")
        parts.append(_walk(f"Walk ({side_names[0]})", s.charger_walk))
        parts.append(_walk(f"Walk ({side_names[1]})", s.vehicle_walk))
    if len(d.sessions) > 1:
        table = Table(
            title="Sessions in the capture", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
        )
        for col in ("#", "start s", "end s", "outcome", "step", "stage", "reason"):
            table.add_column(col, no_wrap=True)
        table.add_column("cause", overflow="fold", min_width=16)
        for s in d.sessions:
            mark = " (verdict)" if s is main else ""
            table.add_row(
                str(s.index + 1) + mark,
                f"{s.start:.2f}",
                f"{s.end:.2f}",
                Text(s.outcome, style=OUTCOME_STYLE.get(s.outcome, "yellow")),
                str(s.step),
                s.stage,
                s.reason,
                s.cause,
            )
        parts.append(table)
    if d.deviations:
        dev = Text("Protocol deviations:", style="bold")
        for x in d.deviations:
            dev.append(f"\n  - [{x.kind}] {x}")
        parts.append(dev)
    else:
        parts.append(Text("Protocol deviations: none seen", style="bold"))
    if d.notes:
        notes = Text("Notes:", style="bold")
        for n in d.notes:
            notes.append(f"\n  - {n}", style="dim")
        parts.append(notes)
    return Group(*parts)


# ------------------------------------------------------------------------------------- replay


def replay_report(result: dict[str, object]) -> RenderableType:
    matched = bool(result.get("matched"))
    head = Text("MATCHED" if matched else "DIVERGED", style="bold green" if matched else "bold red")
    if matched and result.get("status_matched") is False:
        head = Text("MATCHED (stages; the status walk differs)", style="bold yellow")
    parts: list[RenderableType] = [
        Text(
            f"Replay of {result.get('path')} — recorded vehicle side against charger-sim's "
            f"{TITLES.get(str(result.get('protocol')), '')} charger (simulated time)",
            style="bold",
        ),
        Text.assemble(
            "Result: ", head, f" — {result.get('divergence') or 'our charger walked the recorded stages'}"
        ),
    ]
    table = Table(title="Walks", title_justify="left")
    table.add_column("")
    table.add_column("recorded charger")
    table.add_column("our charger")
    table.add_row(
        "status 0x109.5",
        " → ".join(_strs(result.get("recorded_walk"))),
        " → ".join(_strs(result.get("charger_walk"))),
    )
    table.add_row(
        "stages",
        " → ".join(_strs(result.get("recorded_stages"))),
        " → ".join(_strs(result.get("charger_stages"))),
    )
    parts.append(table)
    cfg = result.get("charger_config")
    if isinstance(cfg, dict):
        parts.append(
            Text(
                "Our charger, configured from the recorded 0x108/0x109: "
                + ", ".join(f"{k}={v}" for k, v in cfg.items()),
                style="dim",
            )
        )
    for note in _strs(result.get("notes")):
        parts.append(Text(f"- {note}", style="dim"))
    return Group(*parts)


def _strs(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
