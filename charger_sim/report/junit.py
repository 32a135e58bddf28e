"""JUnit XML (the shape Jenkins, GitLab, GitHub and Azure test reports read): one testcase per scenario.

``<testsuites>`` / ``<testsuite name="charger-sim">`` with tests/failures/errors/skipped/time, run
properties (seeds, versions), and per scenario ``<testcase classname=PROTOCOL name=SCENARIO time=..>``
holding a ``<failure message=...>`` with the verdict's mismatches when the outcome differed from the
expectation, and ``<system-out>`` with the verdict, the summary and the stage timeline.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from ..session.result import SessionResult
from .meta import RunInfo, step_text, where_stopped, whose


def _t(seconds: float) -> str:
    return f"{seconds:.3f}"


def _clean(text: str) -> str:
    """XML 1.0 cannot carry most control characters, even escaped."""
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)


def verdict_text(r: SessionResult) -> str:
    head = "PASS" if r.passed else "FAIL"
    what = f"{where_stopped(r)} [{r.reason}, {r.origin}]: {r.cause}"
    if r.passed:
        return f"{head} {what} — as expected ({r.expected})"
    return f"{head} {what} — expected {r.expected}: " + "; ".join(r.mismatches)


def session_text(r: SessionResult, info: RunInfo) -> str:
    """The plain-text account of one session (JUnit system-out)."""
    lines = [
        verdict_text(r),
        f"cause: {r.cause} (whose: {whose(r)}; reason {r.reason}; {step_text(r.step)})",
        f"scenario file: {r.path}   seed: {r.seed}   reproduce: {info.reproduce(r)}",
        f"energy {r.energy_kwh:.2f} kWh, peak current {r.peak_current:.0f} A, "
        f"SOC {r.soc_start:.1f} % -> {r.soc_end:.1f} %, max cell temperature {r.max_temperature:.1f} °C, "
        f"session time {r.duration:.1f} s",
        f"frames: {r.frames_sent} sent, {r.frames_received} received, {r.frames_dropped} dropped by faults",
    ]
    if r.faults:
        lines.append("faults injected: " + "; ".join(r.faults))
    for t, what in r.fault_times:
        lines.append(f"fault fired at {t:.3f} s: {what}")
    if r.charger_faults:
        lines.append("faults raised by the charger: " + "; ".join(r.charger_faults))
    lines.append("")
    lines.append("stage timeline:")
    lines.append(f"{'time s':>10}  {'side':<8} {'stage':<28} step  detail")
    for e in r.timeline:
        lines.append(f"{e.time:10.2f}  {e.role:<8} {e.stage:<28} {e.step:>4}  {e.detail}")
    return _clean("\n".join(lines) + "\n")


def junit_xml(results: Sequence[SessionResult], info: RunInfo, *, suite_name: str = "charger-sim") -> str:
    failures = sum(1 for r in results if not r.passed)
    total_time = sum(r.wall_seconds for r in results)
    counts = {
        "tests": str(len(results)),
        "failures": str(failures),
        "errors": "0",
        "skipped": "0",
        "time": _t(total_time),
    }
    root = ET.Element("testsuites", {"name": suite_name, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": suite_name, **counts})
    props = ET.SubElement(suite, "properties")
    prop_values = [("seeds", " ".join(str(r.seed) for r in results))]
    if info.seed_override is not None:
        prop_values.append(("seed_override", str(info.seed_override)))
    if info.time_limit_override is not None:
        prop_values.append(("time_limit_override", f"{info.time_limit_override:g}"))
    prop_values += [(f"version.{name}", value) for name, value in info.versions.items()]
    for name, value in prop_values:
        ET.SubElement(props, "property", {"name": name, "value": _clean(value)})
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": r.protocol, "name": _clean(r.scenario), "time": _t(r.wall_seconds)},
        )
        if not r.passed:
            failure = ET.SubElement(
                case,
                "failure",
                {"message": _clean("; ".join(r.mismatches) or "outcome differs"), "type": "VerdictMismatch"},
            )
            failure.text = _clean(verdict_text(r))
        out = ET.SubElement(case, "system-out")
        out.text = session_text(r, info)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
