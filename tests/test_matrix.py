"""The compatibility matrix (vehicles x chargers) and the ``profiles`` / ``matrix`` commands."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import pytest
from rich.console import Console

from charger_sim.cli.main import main
from charger_sim.errors import ExitCode, UsageError
from charger_sim.matrix import Matrix, cell_text, parse_names, run_matrix, select
from charger_sim.scenario.profiles import charger_profiles, vehicle_profiles
from tests.test_report import check

VEHICLES = vehicle_profiles()
CHARGERS = charger_profiles()


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    code = main(list(argv), console=Console(file=buf, width=220, color_system=None))
    return code, buf.getvalue()


@pytest.fixture(scope="module")
def small() -> Matrix:
    """Two CHAdeMO cars and a GB/T bus on a CHAdeMO unit and a 500 V GB/T pile (fast pairs only)."""
    vs = select("vehicle", ["leaf_40", "outlander_phev", "gbt_lfp_bus"], VEHICLES)
    cs = select("charger", ["chademo_50kw", "gbt_30kw_500v"], CHARGERS)
    return run_matrix(vs, cs, seed=2, soc=70)


def test_pairs_run_or_are_refused_at_the_connector(small: Matrix) -> None:
    assert len(small.rows) == 6
    leaf = small.cell("leaf_40", "chademo_50kw")
    assert leaf.outcome == "completed" and leaf.failed_step is None and leaf.energy_kwh > 1
    assert leaf.soc_start == pytest.approx(70) and leaf.seed == 2
    cross = small.cell("leaf_40", "gbt_30kw_500v")
    assert (cross.outcome, cross.failed_step) == ("incompatible", 1)
    assert cross.cause == "the vehicle's CHAdeMO inlet does not take a GB/T connector"
    assert small.cell("gbt_lfp_bus", "chademo_50kw").cause == (
        "the vehicle's GB/T inlet does not take a CHAdeMO connector"
    )
    bus = small.cell("gbt_lfp_bus", "gbt_30kw_500v")  # 695 V pack, 500 V pile: refused at BCP/CML
    assert (bus.outcome, bus.failed_step, bus.stop_reason) == ("stopped", 4, "battery_incompatible")
    assert "exceeds" in bus.cause and bus.energy_kwh == 0


def test_cells_say_how_far_a_pair_got(small: Matrix) -> None:
    kind, head, _ = cell_text(small.cell("leaf_40", "chademo_50kw"))
    assert kind == "ok" and head.startswith("completed ") and head.endswith(" kWh")
    assert cell_text(small.cell("gbt_lfp_bus", "gbt_30kw_500v"))[:2] == (
        "bad",
        "step 4: battery incompatible",
    )
    assert cell_text(small.cell("leaf_40", "gbt_30kw_500v"))[:2] == ("na", "—")


def test_matrix_json_has_one_row_per_pair(small: Matrix) -> None:
    data = small.to_dict()
    assert len(data["pairs"]) == 6 and data["summary"]["incompatible"] == 3
    for row in data["pairs"]:
        assert {"vehicle", "charger", "outcome", "failed_step", "cause"} <= set(row)
    assert {"charger-sim", "python", "cantools", "python-can", "transitions"} <= set(data["versions"])
    json.dumps(data)


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UsageError) as err:
        select("vehicle", ["leaf_40", "tesla_roadster"], VEHICLES)
    assert "tesla_roadster" in str(err.value) and "leaf_62" in str(err.value)
    assert parse_names(" leaf_40, leaf_62 ,") == ["leaf_40", "leaf_62"] and parse_names("all") is None
    code, out = cli("matrix", "--chargers", "chademo_50kw,nope")
    assert code == ExitCode.USAGE and "nope" in out and "gbt_60kw_750v" in out


def test_default_order_groups_protocols() -> None:
    names = [p.protocol for p in select("vehicle", None, VEHICLES)]
    assert len(set(names)) == 3
    groups = [names[0]] + [b for a, b in itertools.pairwise(names) if a != b]
    assert len(groups) == len(set(groups))  # each protocol in one block


def test_matrix_command_grid_json_and_html(tmp_path: Path) -> None:
    j, h = tmp_path / "m.json", tmp_path / "m.html"
    code, out = cli(
        "matrix",
        "--vehicles",
        "outlander_phev,gbt_lfp_bus",
        "--chargers",
        "chademo_50kw,gbt_30kw_500v",
        "--soc",
        "75",
        "--json",
        str(j),
        "--html",
        str(h),
        "-j",
        "1",
    )
    assert code == ExitCode.OK
    assert "Compatibility matrix" in out and "completed" in out and "—" in out
    assert "step 4: battery incompatible" in out
    assert "gbt_lfp_bus on gbt_30kw_500v: stopped at step 4" in out  # the cause in full under the grid
    rows = json.loads(j.read_text())["pairs"]
    assert [(r["vehicle"], r["charger"], r["outcome"]) for r in rows] == [
        ("outlander_phev", "chademo_50kw", "completed"),
        ("outlander_phev", "gbt_30kw_500v", "incompatible"),
        ("gbt_lfp_bus", "chademo_50kw", "incompatible"),
        ("gbt_lfp_bus", "gbt_30kw_500v", "stopped"),
    ]
    page = h.read_text()
    c = check(page)
    assert "http" not in page.lower() and not c.external
    assert page.count('class="cell ok"') == 1 and page.count('class="cell bad"') == 1
    assert page.count('class="cell na"') == 2 and "battery incompatible" in page


def test_matrix_json_to_stdout_is_only_json() -> None:
    code, out = cli(
        "matrix", "--vehicles", "gbt_lfp_bus,leaf_40", "--chargers", "gbt_30kw_500v", "--json", "-"
    )
    assert code == ExitCode.OK
    assert [r["outcome"] for r in json.loads(out)["pairs"]] == ["stopped", "incompatible"]


def test_profiles_command_lists_every_profile() -> None:
    code, out = cli("profiles")
    assert code == ExitCode.OK
    for p in [*VEHICLES.values(), *CHARGERS.values()]:
        assert p.name in out and p.title in out
    code, out = cli("profiles", "--kind", "charger", "--protocol", "gbt", "--json")
    rows = json.loads(out)["profiles"]
    assert code == ExitCode.OK and rows
    assert {r["kind"] for r in rows} == {"charger"} and {r["protocol"] for r in rows} == {"gbt"}
    assert {r["name"] for r in rows} == {n for n, p in CHARGERS.items() if p.protocol == "gbt"}
