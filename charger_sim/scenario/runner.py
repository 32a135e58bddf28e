"""Run a scenario in simulated time (or hand it to the real-time driver) and judge the outcome."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import BusError
from ..protocols.base import Role
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
    """Hook for the caller of :func:`run_realtime` / :func:`run_role` (the CLI's live view).

    Called ~10 times a second with the session (a :class:`Session`, or a ``LoneSession`` in a
    single-role run) under the driver's lock.
    """

    def update(self, session: Any, elapsed: float) -> None:  # pragma: no cover - interface
        pass


CHARGER_SAFE = "the charger stopped safely (current to zero, contactors/relays open)"


class BusLost(BusError):
    """The bus failed mid-session.  The stop sequence was completed offline and the log closed;
    ``result`` is the session up to then (the CLI prints it before the one-line error)."""

    def __init__(self, message: str, result: SessionResult) -> None:
        super().__init__(message)
        self.result = result


def _filters(codec: Any, sender_is_charger: bool) -> list[dict[str, Any]]:
    """Acceptance filters for the frames a side receives: those the *other* side sends."""
    from ..drivers.canbus import protocol_filters

    ids = [
        (m.frame_id, m.is_extended)
        for m in codec.messages
        if ("CHARGER" in m.senders) == sender_is_charger and m.senders
    ]
    return protocol_filters(ids)


def _periods(codec: Any) -> dict[int, float]:
    return {m.frame_id: m.cycle_time / 1000.0 for m in codec.messages if m.cycle_time}


def _conclude(
    driver: Any,
    session: Any,
    end: Any,
    start: float,
    log_path: Path | None,
    who: str,
) -> tuple[SessionResult, bool]:
    """Build the result of a real-time run; a failed bus raises :class:`BusLost` with it."""
    from ..errors import ChargerSimError

    result = session.result(driver.now)
    result.wall_seconds = time.perf_counter() - start
    result.versions = versions()
    result.cadence = driver.cadence(0.1)
    result.bus_events = driver.bus_events()
    failure = end.failure
    if failure is None:
        return result, end.interrupted
    if isinstance(failure, BusError):
        where = f"; {log_path} is complete" if log_path is not None else ""
        raise BusLost(f"{failure}; {who}{where}", result) from failure
    if isinstance(failure, ChargerSimError):
        raise failure
    raise RuntimeError(f"real-time loop failed: {type(failure).__name__}: {failure}") from failure


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

    Returns the result and whether the run was interrupted (Ctrl-C or SIGTERM: the charger ran its
    stop sequence on the bus first).  A bus failure raises :class:`BusLost` after a safe stop.
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
    with contextlib.ExitStack() as resources:
        charger_bus = open_bus(iface, channel, rate, kernel_filters=_filters(session.codec, False), **kwargs)
        resources.callback(charger_bus.shutdown)
        vehicle_bus = open_bus(iface, channel, rate, kernel_filters=_filters(session.codec, True), **kwargs)
        resources.callback(vehicle_bus.shutdown)
        if log_path is not None:
            writer = TraceWriter(log_path)
            resources.callback(writer.close)
            session.on_frame.append(writer.write)
        cyclic_ids = frozenset(m.frame_id for m in session.codec.messages if "CHARGER" in m.senders)
        driver = RealtimeDriver(
            session,
            [
                Endpoint(Role.CHARGER, session.charger, charger_bus),
                Endpoint(Role.VEHICLE, session.vehicle, vehicle_bus),
            ],
            track_cadence=cyclic_ids,
            periods=_periods(session.codec),
        )
        tick = None if monitor is None else (lambda elapsed: monitor.update(session, elapsed))
        start = time.perf_counter()
        end = driver.supervise(scenario.time_limit, tick=tick)
    return _conclude(driver, session, end, start, log_path, CHARGER_SAFE)


def run_role(
    scenario: Scenario,
    role: Role,
    *,
    interface: str | None = None,
    channel: str | None = None,
    bitrate: int | None = None,
    log_path: Path | None = None,
    monitor: Monitor | None = None,
    bus_kwargs: dict[str, object] | None = None,
) -> tuple[SessionResult, bool]:
    """Run one side of ``scenario`` (``role``) in real time against a real peer on the bus.

    ``interface=None`` lets python-can's configuration choose the bus (``CAN_INTERFACE``...).  The
    bus gets kernel filters for the peer's frames on SocketCAN (unless ``bus_kwargs`` has its own
    ``can_filters``).  Returns the result and whether it was interrupted; a failed bus raises
    :class:`BusLost` after the stop sequence.
    """
    from ..drivers.canbus import open_bus
    from ..drivers.realtime import Endpoint, RealtimeDriver
    from ..drivers.trace import TraceWriter
    from ..session.lone import LoneSession

    session = LoneSession(scenario, role)
    kwargs = dict(bus_kwargs or {})
    filters = _filters(session.codec, role is not Role.CHARGER)
    with contextlib.ExitStack() as resources:
        bus = open_bus(interface, channel, bitrate or session.info.bitrate, kernel_filters=filters, **kwargs)
        resources.callback(bus.shutdown)
        if log_path is not None:
            writer = TraceWriter(log_path)
            resources.callback(writer.close)
            session.on_frame.append(writer.write)
        own = frozenset(session.own_messages())
        peer = frozenset(session.peer_messages())
        driver = RealtimeDriver(
            session,
            [
                Endpoint(
                    role,
                    session.core,
                    bus,
                    plant=session.plant,
                    on_peer_frame=session.heard,
                    track_received=peer,
                )
            ],
            session_role=role,
            track_cadence=own,
            periods=_periods(session.codec),
        )
        tick = None if monitor is None else (lambda elapsed: monitor.update(session, elapsed))
        start = time.perf_counter()
        end = driver.supervise(scenario.time_limit, tick=tick)
    who = CHARGER_SAFE if role is Role.CHARGER else "the simulated BMS stopped charging (contactors open)"
    return _conclude(driver, session, end, start, log_path, who)
