"""``charger-sim bench``: the JSON shape only, with tiny parameters (the figures are not tested)."""

from __future__ import annotations

import io
import json

from rich.console import Console

from charger_sim.bench import HEADLINE, BenchParams, run_bench
from charger_sim.bench.realtime import PeriodStats, _reaction_of
from charger_sim.cli.bench import table
from charger_sim.cli.main import main
from charger_sim.errors import ExitCode

TINY = BenchParams(
    speed_runs=1,
    speed_time_limit=20.0,
    cadence_s=1.0,
    concurrency_levels=(1,),
    concurrency_s=1.0,
    memory_s=1.0,
    protocols=("chademo",),
    skip=frozenset({"reaction", "scale"}),
)


def test_bench_json_shape_with_tiny_parameters() -> None:
    result = run_bench(TINY)
    json.dumps(result)  # one JSON object
    for key in HEADLINE:
        assert key in result
    assert set(result["sim_speed_x"]) == {"chademo"} and result["sim_speed_x"]["chademo"] > 0
    assert isinstance(result["engine_vs_codec_ratio"], float)
    assert result["cadence_p99_ms"] is not None and result["send_periodic_p99_ms"] is not None
    assert isinstance(result["concurrent_sessions"], int)
    assert result["peak_rss_mb"] is None or result["peak_rss_mb"] > 0
    assert result["reaction_p99_ms"] is None and result["scenarios_per_s"] is None  # skipped
    buf = io.StringIO()
    Console(file=buf, width=160).print(table(result))
    assert "sim speed chademo" in buf.getvalue()


def test_period_stats_and_reaction_helpers() -> None:
    stats = PeriodStats.of([0.0, 0.1, 0.2011, 0.3, 0.4])
    assert stats is not None and stats.count == 5 and abs(stats.max_ms - 1.1) < 1e-6
    assert abs(stats.drift_ms) < 1e-6 and PeriodStats.of([0.0, 0.1]) is None
    fault = bytes([2, 0x9A, 1, 0, 0x08, 1, 50, 0])
    frames = [(0x109, 1.0, bytes(8)), (0x102, 1.05, fault), (0x109, 1.1, bytes([0, 0, 0, 0, 0, 0x25, 0, 0]))]
    assert abs((_reaction_of(frames) or 0.0) - 0.05) < 1e-9


def test_bench_cli_unknown_protocol() -> None:
    buf = io.StringIO()
    code = main(["bench", "--only", "speed", "--protocol", "nope"], console=Console(file=buf))
    assert code == ExitCode.USAGE and "nope" in buf.getvalue()
