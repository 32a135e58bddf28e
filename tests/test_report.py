"""Reports: JSON keys, JUnit XML that CI servers read, the self-contained HTML page, determinism."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from charger_sim.drivers.simulated import SimulatedDriver
from charger_sim.protocols.base import Role
from charger_sim.report import RunInfo, html_report, junit_xml, suite_dict, suite_json, without_wall_time
from charger_sim.report.batch import run_batch
from charger_sim.report.svg import decimate, nice_range, simplify
from charger_sim.resources import scenarios_dir
from charger_sim.scenario.loader import load_scenario, parse_scenario
from charger_sim.scenario.runner import run_simulated
from charger_sim.session.result import SessionResult
from charger_sim.session.session import Session

SC = scenarios_dir()
VERSION_KEYS = {"charger-sim", "python", "cantools", "python-can", "transitions"}

WRONG = {  # a vehicle that never grants permission, in a scenario that expects a full charge
    "name": "expects a charge <from a car that says no>",
    "protocol": "chademo",
    "seed": 11,
    "vehicle": {"grant_permission": False},
    "expect": {"outcome": "completed"},
}


@pytest.fixture(scope="module")
def results() -> list[SessionResult]:
    """Three shipped scenarios (one charges, two stop on purpose) and one whose expectation fails."""
    scenarios = [
        load_scenario(SC / "chademo_can_loss.yaml"),
        load_scenario(SC / "gbt_incompatible.yaml"),
        load_scenario(SC / "chademo_no_permission.yaml"),
        parse_scenario(WRONG, "wrong.yaml"),
    ]
    return run_batch(scenarios)


# ---- JSON ---------------------------------------------------------------------------------------


def test_json_holds_what_reproduces_a_run(results: list[SessionResult]) -> None:
    data = json.loads(suite_json(results, RunInfo(seed_override=None)))
    assert set(data["versions"]) >= VERSION_KEYS
    assert data["seeds"] == [r.seed for r in results]
    assert data["summary"] == {
        "scenarios": 4,
        "passed": 3,
        "failed": 1,
        "session_seconds": pytest.approx(sum(r.duration for r in results), abs=0.01),
        "energy_kwh": pytest.approx(sum(r.energy_kwh for r in results), abs=0.01),
    }
    keys = {"name", "protocol", "expected", "outcome", "failed_step", "stop_reason", "passed", "seed"}
    for row in data["results"]:
        assert keys <= set(row)
        assert row["reproduce"].endswith(f"--seed {row['seed']}")
    can_loss, incompatible, _, wrong = data["results"]
    assert (can_loss["outcome"], can_loss["failed_step"], can_loss["stop_reason"]) == (
        "stopped",
        7,
        "can_timeout",
    )
    assert can_loss["faults_injected"] and can_loss["passed"] is True
    assert (incompatible["protocol"], incompatible["failed_step"]) == ("gbt", 4)
    assert wrong["passed"] is False and wrong["expected"] == "completed"
    assert wrong["failed_step"] == 4 and wrong["mismatches"]


def test_a_completed_session_has_no_failed_step() -> None:
    r = run_simulated(load_scenario(SC / "chademo_no_permission.yaml"))
    assert r.to_dict()["failed_step"] == 4
    done = run_simulated(
        parse_scenario({"protocol": "chademo", "vehicle": {"soc": 78, "target_soc": 80}}, "short.yaml")
    )
    assert done.outcome == "completed" and done.to_dict()["failed_step"] is None and done.step == 7


# ---- JUnit --------------------------------------------------------------------------------------


def test_junit_is_the_shape_ci_servers_read(results: list[SessionResult]) -> None:
    root = ET.fromstring(junit_xml(results, RunInfo()))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "0")
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "0")
    assert float(suite.get("time", "-1")) >= 0
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert {f"version.{k}" for k in VERSION_KEYS} <= set(props)
    assert props["seeds"] == " ".join(str(r.seed) for r in results)
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [(r.protocol, r.scenario) for r in results]
    for case, r in zip(cases, results, strict=True):
        float(case.get("time", "x"))
        failure = case.find("failure")
        assert (failure is None) == r.passed
        out = case.findtext("system-out") or ""
        assert "stage timeline:" in out and r.stage in out
    failure = cases[3].find("failure")
    assert failure is not None and "expected completed" in (failure.get("message") or "")
    assert "step 4: parameter negotiation" in (failure.text or "")


# ---- HTML ---------------------------------------------------------------------------------------

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base", "embed"}
SVG_LEAVES = {"line", "rect", "polyline", "path", "circle"}  # written <x .../> or <x ...></x>


class Checker(HTMLParser):
    """Tag balance, ids, links, polylines and anything that would load from elsewhere."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.polylines: list[int] = []
        self.sections: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"] or "")
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        if tag == "details" and "scenario" in (a.get("class") or ""):
            self.sections.append(a.get("id") or "")
        if tag == "polyline":
            self.polylines.append(len((a.get("points") or "").split()))
        for key in ("src", "href", "xlink:href"):
            value = a.get(key) or ""
            if value and not value.startswith("#"):
                self.external.append(f"{tag} {key}={value}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check(page: str) -> Checker:
    c = Checker()
    c.feed(page)
    c.close()
    assert not c.errors, c.errors[:5]
    assert not c.stack, c.stack
    return c


def test_html_is_one_well_formed_self_contained_page(results: list[SessionResult]) -> None:
    page = html_report(results, RunInfo(seed_override=None, wall_seconds=1.5), generated="now")
    c = check(page)
    assert page.startswith("<!DOCTYPE html>")
    assert "http" not in page.lower()  # no external resource, not even an xmlns
    assert not c.external and "@import" not in page and "url(" not in page
    assert len(c.sections) == len(results) and len(set(c.sections)) == len(results)
    assert sorted(h[1:] for h in c.links) == sorted(c.sections)  # the summary links every section
    assert len(c.ids) == len(set(c.ids))
    text = " ".join(c.text)
    for r in results:
        assert r.scenario in text and r.cause in text
    # escaped, not interpreted: the scenario name with <...> stays text
    assert "&lt;from a car that says no&gt;" in page and "<from a car" not in page
    assert "FAILED" in text and "PASSED" in text
    assert "outcome stopped (no_permission), expected completed" in text
    assert "step 7 — continuous monitoring".lower() in text.lower()
    assert "drop message (VehicleChargeControl)" in text  # the fault injected
    assert "stage timeline table" in text.lower() and "Handshake: first" in text
    for version in ("python-can", "cantools", "transitions"):
        assert version in text


def test_html_plots_the_curves_with_axes(results: list[SessionResult]) -> None:
    page = html_report(results[:1], RunInfo())
    c = check(page)
    assert len(c.polylines) >= 7 and all(n >= 2 for n in c.polylines)
    for title in ("Current", "Voltage", "Power", "State of charge", "Hottest cell group"):
        assert f">{title} <tspan" in page
    for unit in ("(A)", "(V)", "(kW)", "(%)", "(°C)"):
        assert unit in page
    assert "session time (s)" in page and 'class="tick"' in page
    assert 'class="gantt"' in page and "<title>charging (step 7)" in page


def test_a_long_session_is_decimated_for_the_plots() -> None:
    r = run_simulated(load_scenario(SC / "chademo_basic.yaml"))
    assert len(r.samples) > 2000
    page = html_report([r], RunInfo())
    c = check(page)
    assert max(c.polylines) <= 602
    assert len(page) < 200_000
    assert "session time (min)" in page


def test_decimation_keeps_spikes_and_simplify_keeps_corners() -> None:
    points = [(float(t), 10.0) for t in range(3000)]
    points[1234] = (1234.0, 99.0)
    out = decimate(points, 100)
    assert len(out) <= 202 and (1234.0, 99.0) in out and out[0] == points[0] and out[-1] == points[-1]
    flat = simplify([(float(x), 5.0) for x in range(100)] + [(100.0, 50.0)])
    assert flat == [(0.0, 5.0), (99.0, 5.0), (100.0, 50.0)]


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 123, (0, 125, 25)),
        (24.6, 38.2, (20, 40, 5)),
        (0, 0, (-1, 1, 0.5)),
        (3.85, 3.99, (3.85, 4.0, 0.05)),
        (50, 53.6, (50, 54, 1)),
    ],
)
def test_nice_axis_ranges(lo: float, hi: float, expected: tuple[float, float, float]) -> None:
    assert nice_range(lo, hi) == pytest.approx(expected)


# ---- determinism --------------------------------------------------------------------------------


def _traced(path: Path, seed: int) -> tuple[list[str], str]:
    """Every frame the link delivered (sender, time, ID, bytes) and the JSON report without wall time."""
    sc = dataclasses.replace(load_scenario(path), seed=seed)
    session = Session(sc)
    trace: list[str] = []
    session.on_frame.append(lambda frame, sender: trace.append(f"{sender.value} {frame}"))
    end = SimulatedDriver(session, None).run(sc.time_limit)
    result = session.result(end)
    report = json.dumps(without_wall_time(suite_dict([result], RunInfo(seed_override=seed))), indent=2)
    return trace, report


@pytest.mark.parametrize("name", ["chademo_can_loss", "gbt_bcl_loss", "ccs_can_loss"])
def test_same_seed_same_frames_and_same_report(name: str) -> None:
    path = SC / f"{name}.yaml"
    trace1, report1 = _traced(path, 4242)
    trace2, report2 = _traced(path, 4242)
    assert len(trace1) > 1000
    assert "\n".join(trace1).encode() == "\n".join(trace2).encode()
    assert report1.encode() == report2.encode()
    assert {line.split()[0] for line in trace1} == {Role.CHARGER.value, Role.VEHICLE.value}
    assert json.loads(report1)["seeds"] == [4242]


def test_worker_processes_give_the_same_results() -> None:
    scenarios = [
        load_scenario(SC / "chademo_no_permission.yaml"),
        load_scenario(SC / "gbt_incompatible.yaml"),
    ]
    here = run_batch(scenarios, jobs=1)
    spread = run_batch(scenarios, jobs=2)
    info = RunInfo()
    assert without_wall_time(suite_dict(here, info)) == without_wall_time(suite_dict(spread, info))
