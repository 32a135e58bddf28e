"""Field logs: decode, diagnose and replay real charging captures.

>>> d = diagnose_log("capture.csv")          # protocol auto-detected  # doctest: +SKIP
>>> d.outcome, d.failed_step, d.cause        # doctest: +SKIP

The diagnosis is built by passive observers (:mod:`.chademo`, :mod:`.gbt`) that run the emulator's own
tables (stage machine, steps, timing limits, stop reasons) on what the bus shows, so a diagnosis and an
emulation of the same session cannot disagree.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import UsageError
from . import chademo as _chademo
from . import checks
from . import gbt as _gbt
from .capture import Capture, Record, available_protocols, capture_from, detect_protocol, load_capture
from .model import COMPLETED, FAILED, PARTIAL, CaptureInfo, Deviation, Diagnosis, SessionVerdict, StageSpan


def diagnose(capture: Capture) -> Diagnosis:
    """Diagnose a loaded capture."""
    if capture.protocol == "chademo":
        sessions, observed = _chademo.observe(capture)
        names_from = "charger_sim.protocols.chademo.states (the emulator's stage table)"
        deviations = checks.chademo_deviations(capture, sessions)
    elif capture.protocol == "gbt":
        sessions, observed = _gbt.observe(capture)
        names_from = "charger_sim.protocols.gbt.states (the emulator's stage table)"
        deviations = checks.gbt_deviations(capture, sessions)
    else:
        raise UsageError(f"no {capture.protocol} observer yet: decode works, diagnose does not")
    deviations = (
        checks.dlc_deviations(capture)
        + checks.period_deviations(capture)
        + checks.range_deviations(capture)
        + deviations
        + [d for d in observed if d.kind != "note"]
        + checks.limit_deviations(sessions, capture.timestamps)
    )
    if capture.timestamps == "none":  # every frame at 0.000 s: a time says nothing
        deviations = [dataclasses.replace(d, time=None) for d in deviations]
    read = capture.read
    info = CaptureInfo(
        path=capture.path,
        format=read.format,
        frames=len(read.frames),
        protocol_frames=len(capture.records)
        + len(capture.tp_frames)
        - sum(1 for r in capture.records if r.tp),
        skipped_lines=read.skipped_lines,
        malformed_lines=read.malformed_lines,
        skipped_frames=read.skipped_frames,
        problems=read.problems,
        timestamps=capture.timestamps,
        duration=capture.duration,
    )
    diag = Diagnosis(
        capture.protocol,
        info,
        list(sessions),
        _chademo.primary_index(sessions),
        deviations,
        _notes(capture, sessions) + [d.text for d in observed if d.kind == "note"],
        names_from,
    )
    return diag


def _notes(capture: Capture, sessions: list[SessionVerdict]) -> list[str]:
    notes = []
    if capture.timestamps == "none":
        notes.append("all timestamps are identical: order only; durations, periods and limits not checked")
    elif capture.timestamps == "coarse":
        notes.append(
            "timestamps are coarse (a logger dropping frames): order is reliable, intervals are not; "
            "periods not checked"
        )
    if len(sessions) > 1:
        notes.append(
            f"{len(sessions)} sessions (charging attempts) in the capture; the verdict is for the one "
            "that got furthest"
        )
    if capture.foreign:
        shown = ", ".join(f"{k} ×{n}" for k, n in sorted(capture.foreign.items(), key=lambda kv: -kv[1])[:6])
        notes.append(f"frames outside {capture.protocol}: {shown}")
    gaps = []
    prev = None
    for r in capture.records:
        if prev is not None and r.time - prev >= 5.0:
            gaps.append((prev, r.time))
        prev = r.time
    if gaps and capture.timestamps != "none":
        shown = ", ".join(f"{b - a:.0f} s at {a:.1f} s" for a, b in gaps[:4])
        notes.append(f"nothing recorded for {shown}")
    return notes


def diagnose_log(path: Path | str, protocol: str = "auto", log_format: str | None = None) -> Diagnosis:
    """Read a capture file and diagnose it."""
    return diagnose(load_capture(path, protocol, log_format))


__all__ = [
    "COMPLETED",
    "FAILED",
    "PARTIAL",
    "Capture",
    "CaptureInfo",
    "Deviation",
    "Diagnosis",
    "Record",
    "SessionVerdict",
    "StageSpan",
    "available_protocols",
    "capture_from",
    "detect_protocol",
    "diagnose",
    "diagnose_log",
    "load_capture",
]
