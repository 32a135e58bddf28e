"""Simulated-time speed per protocol, and the engine's cost per frame against bare cantools.

For each protocol with a shipped ``<protocol>_basic.yaml`` scenario: the whole session in simulated
time (best of ``runs``), its simulated seconds per wall second, and its wall time per frame on the
wire.  The same session's frames are then decoded and re-encoded by cantools alone (the DBC's own
library), which is the floor the issue compares against: ``engine_vs_codec_ratio`` = engine cost
per frame / cantools cost per frame.  cantools is timed as our codec works: physical values
(``decode_choices=False``) and range-checked encoding (``strict=True``, cantools' default); its
unchecked fast path (``strict=False``) is reported beside it as ``..._fast``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..frames import Frame
from ..protocols import registry
from ..resources import scenarios_dir
from ..scenario.loader import load_scenario
from ..scenario.schema import Scenario

CODEC_SAMPLE = 20_000  # frames timed through cantools (evenly spread over the session)


@dataclass(frozen=True, slots=True)
class SpeedResult:
    protocol: str
    scenario: str
    session_s: float
    wall_s: float
    frames: int
    engine_us_per_frame: float
    cantools_us_per_frame: float | None
    cantools_fast_us_per_frame: float | None
    cantools_frames: int

    @property
    def speed_x(self) -> float:
        return self.session_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def ratio(self) -> float | None:
        if not self.cantools_us_per_frame:
            return None
        return self.engine_us_per_frame / self.cantools_us_per_frame

    @property
    def ratio_fast(self) -> float | None:
        if not self.cantools_fast_us_per_frame:
            return None
        return self.engine_us_per_frame / self.cantools_fast_us_per_frame


def basic_scenarios() -> dict[str, Path]:
    """``<protocol>_basic.yaml`` of every registered protocol that ships one."""
    out: dict[str, Path] = {}
    for name in registry.names():
        path = scenarios_dir() / f"{name}_basic.yaml"
        if path.is_file():
            out[name] = path
    return out


def _session(scenario: Scenario, frames: list[Frame] | None = None) -> tuple[float, float, int]:
    from ..drivers.simulated import SimulatedDriver
    from ..session.session import Session

    session = Session(scenario)
    if frames is not None:
        session.on_frame.append(lambda frame, role: frames.append(frame))
    start = time.perf_counter()
    end = SimulatedDriver(session).run(scenario.time_limit)
    wall = time.perf_counter() - start
    return end, wall, session.frames_on_wire


def cantools_cost(frames: list[Frame], dbc: Any, *, strict: bool = True) -> tuple[float | None, int]:
    """Microseconds per frame for cantools to decode then re-encode each frame (DBC frames only)."""
    by_id = {(m.frame_id, bool(m.is_extended_frame)): m for m in dbc.messages}
    step = max(1, len(frames) // CODEC_SAMPLE)
    work: list[tuple[Any, bytes]] = []
    for frame in frames[::step]:
        m = by_id.get((frame.arbitration_id, frame.is_extended_id))
        if m is None:
            continue
        try:  # an untimed pass keeps only what cantools can take (full-length frames)
            m.encode(m.decode(frame.data, decode_choices=False), strict=strict)
        except Exception:
            continue
        work.append((m, frame.data))
    if not work:
        return None, 0
    start = time.perf_counter()
    for m, data in work:
        m.encode(m.decode(data, decode_choices=False), strict=strict)
    elapsed = time.perf_counter() - start
    return elapsed / len(work) * 1e6, len(work)


def measure_speed(
    protocol: str, path: Path, *, runs: int = 3, time_limit: float | None = None
) -> SpeedResult:
    from ..codec import load_dbc

    scenario = load_scenario(path)
    if time_limit is not None:
        scenario = dataclasses.replace(scenario, time_limit=min(scenario.time_limit, time_limit))
    warm = dataclasses.replace(scenario, time_limit=min(scenario.time_limit, 30.0))
    _session(warm)  # untimed: DBC parsing, encoder generation, lazy imports
    best: tuple[float, float, int] | None = None
    for _ in range(max(1, runs)):
        result = _session(scenario)
        if best is None or result[1] < best[1]:
            best = result
    assert best is not None
    session_s, wall_s, frames = best
    recorded: list[Frame] = []
    _session(scenario, recorded)  # an extra run records the frames (the listener would skew timing)
    info = registry.get(protocol)
    db = load_dbc(info.dbc).db
    codec_us, codec_frames = cantools_cost(recorded, db)
    fast_us, _ = cantools_cost(recorded, db, strict=False)
    return SpeedResult(
        protocol=info.name,
        scenario=path.name,
        session_s=session_s,
        wall_s=wall_s,
        frames=frames,
        engine_us_per_frame=wall_s / frames * 1e6 if frames else 0.0,
        cantools_us_per_frame=codec_us,
        cantools_fast_us_per_frame=fast_us,
        cantools_frames=codec_frames,
    )
