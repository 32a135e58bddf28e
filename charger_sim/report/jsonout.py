"""The JSON report of a run: every session's verdict, plus what it takes to reproduce the run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..session.result import SessionResult
from .meta import RunInfo

# keys whose values depend on the machine's speed, not on the session (left out when comparing runs)
WALL_KEYS = frozenset({"wall_seconds"})


def suite_dict(results: Sequence[SessionResult], info: RunInfo) -> dict[str, Any]:
    passed = sum(1 for r in results if r.passed)
    return {
        "tool": "charger-sim",
        "versions": dict(info.versions),
        "seeds": [r.seed for r in results],
        "overrides": {"seed": info.seed_override, "time_limit": info.time_limit_override},
        "summary": {
            "scenarios": len(results),
            "passed": passed,
            "failed": len(results) - passed,
            "session_seconds": round(sum(r.duration for r in results), 3),
            "energy_kwh": round(sum(r.energy_kwh for r in results), 3),
        },
        "wall_seconds": round(info.wall_seconds, 3),
        "results": [{**r.to_dict(), "reproduce": info.reproduce(r)} for r in results],
    }


def suite_json(results: Sequence[SessionResult], info: RunInfo) -> str:
    return json.dumps(suite_dict(results, info), indent=2, ensure_ascii=False) + "\n"


def without_wall_time(data: Any) -> Any:
    """``data`` with every wall-clock key removed (what must match between two runs)."""
    if isinstance(data, dict):
        return {k: without_wall_time(v) for k, v in data.items() if k not in WALL_KEYS}
    if isinstance(data, list):
        return [without_wall_time(v) for v in data]
    return data
