"""Run a scenario in simulated time (or hand it to the real-time driver) and judge the outcome."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from .. import __version__
from ..session.result import SessionResult
from ..session.session import Session
from .schema import Scenario

log = logging.getLogger(__name__)


def versions() -> dict[str, str]:
    import can
    import cantools

    return {"charger-sim": __version__, "python-can": can.__version__, "cantools": cantools.__version__}


def run_simulated(
    scenario: Scenario,
    *,
    log_path: Path | None = None,
    interface: str | None = None,
    channel: str | None = None,
) -> SessionResult:
    """Run ``scenario`` in simulated time.  ``interface='virtual'`` carries frames over python-can."""
    from ..drivers.simulated import SimulatedDriver, Wire

    session = Session(scenario)
    wire: Wire | None = None
    closers = []
    if interface is not None:
        from ..drivers.canbus import BusWire

        bw = BusWire.open(interface, channel, session.info.bitrate)
        wire = bw
        closers.append(bw.close)
    if log_path is not None:
        from ..drivers.trace import TraceWriter

        writer = TraceWriter(log_path)
        session.on_frame.append(writer.write)
        closers.append(writer.close)
    start = time.perf_counter()
    try:
        end = SimulatedDriver(session, wire).run(scenario.time_limit)
    finally:
        for close in closers:
            close()
    result = session.result(end)
    result.wall_seconds = time.perf_counter() - start
    result.versions = versions()
    return result


class Monitor:
    """Hook for the caller of :func:`run_realtime` (the CLI's live view); called ~10 times a second."""

    def update(self, session: Session, elapsed: float) -> None:  # pragma: no cover - interface
        pass


def run_realtime(
    scenario: Scenario,
    *,
    interface: str | None = None,
    channel: str | None = None,
    bitrate: int | None = None,
    log_path: Path | None = None,
    monitor: Monitor | None = None,
    bus_kwargs: dict[str, object] | None = None,
) -> tuple[SessionResult, bool]:
    """Run ``scenario`` at real speed on a python-can bus (default: a private ``virtual`` channel).

    Returns the result and whether the run was interrupted (Ctrl-C: the charger ran its stop
    sequence on the bus first).
    """
    from ..drivers.canbus import open_bus, unique_virtual_channel
    from ..drivers.realtime import Endpoint, RealtimeDriver
    from ..drivers.trace import TraceWriter
    from ..protocols.base import Role

    session = Session(scenario)
    iface = interface or "virtual"
    if iface == "virtual" and channel is None:
        channel = unique_virtual_channel()
    kwargs = dict(bus_kwargs or {})
    rate = bitrate or session.info.bitrate
    charger_bus = open_bus(iface, channel, rate, **kwargs)
    try:
        vehicle_bus = open_bus(iface, channel, rate, **kwargs)
    except Exception:
        charger_bus.shutdown()
        raise
    writer: TraceWriter | None = None
    if log_path is not None:
        writer = TraceWriter(log_path)
        session.on_frame.append(writer.write)
    cyclic_ids = frozenset(m.frame_id for m in session.codec.messages if "CHARGER" in m.senders)
    driver = RealtimeDriver(
        session,
        [
            Endpoint(Role.CHARGER, session.charger, charger_bus),
            Endpoint(Role.VEHICLE, session.vehicle, vehicle_bus),
        ],
        track_cadence=cyclic_ids,
    )
    interrupted = False
    start = time.perf_counter()
    driver.start()
    try:
        deadline = scenario.time_limit
        while not driver.finished(deadline):
            try:
                time.sleep(0.1)
                if monitor is not None:
                    with driver.lock:
                        monitor.update(session, driver.elapsed())
            except KeyboardInterrupt:
                if interrupted:
                    break  # second Ctrl-C: stop now
                interrupted = True
                log.warning("interrupted: running the charger's stop sequence")
                driver.request_stop("interrupted")
                deadline = min(deadline, driver.elapsed() + 20.0)
    finally:
        try:
            driver.stop()
        finally:
            charger_bus.shutdown()
            vehicle_bus.shutdown()
            if writer is not None:
                writer.close()
    result = session.result(driver.now)
    result.wall_seconds = time.perf_counter() - start
    result.versions = versions()
    result.cadence = driver.cadence(0.1)
    return result, interrupted
