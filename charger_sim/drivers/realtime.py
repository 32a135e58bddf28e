"""Real-time driver: runs the cores of a session on python-can buses against the wall clock.

Each side (charger, simulated vehicle) has its own bus handle and its own single-threaded loop:
``bus.recv(timeout=until the next deadline)``, then deliver the frame or fire the timer.  Deadlines
are absolute (``start + k * period``), so cyclic frames never drift.  Timed waits wake up late by a
varying amount (scheduler, virtual machines), so a loop waits only until ``_SPIN_MARGIN`` before a
deadline and polls the bus for the last stretch, with short sleeps and then without, until the clock
reaches the deadline itself (wake early, then spin).  All core and session work
happens under one lock, so the two loops never interleave inside a core; nothing blocks while
holding it.  A single-role run (``charger`` / ``bms`` commands) has one endpoint, whose peer plant
(:mod:`charger_sim.plant.peer`) stands in for the real peer's hardware lines.

:meth:`RealtimeDriver.supervise` is the main thread's part: live-view callbacks, Ctrl-C (SIGINT) and
SIGTERM turned into the charger's stop sequence on the bus, and — when the bus fails (interface
down, bus-off) — the stop sequence completed offline at once, since nothing can be sent any more.
Cadence statistics of the cyclic frames, as sent and as received, are collected on the way.
"""

from __future__ import annotations

import itertools
import logging
import signal
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, Protocol

import can

from ..errors import BusError, ChargerSimError
from ..frames import Frame
from ..plant.peer import PeerPlant
from ..protocols.base import Core, Role
from .canbus import describe_error_frame, is_bus_off, to_frame, to_message

log = logging.getLogger(__name__)

_IDLE_POLL = 0.05  # s: longest wait when a core has no deadline (to notice a stop request)
_SPIN_MARGIN = 0.0015  # s: a timed wait ends this long before a deadline ...
_SPIN_SLEEP = 0.0001  # s: ... then the loop polls the bus with short sleeps (letting other threads run)
_SPIN_BUSY = 0.0002  # s: ... and without sleeping for this last stretch (holding the GIL that long)
_OFFLINE_LIMIT = 60.0  # s of session time the offline stop sequence may take
_MAX_STEPS_AT_ONE_TIME = 10_000


class DriverSession(Protocol):
    """What the driver needs of a session (two-core :class:`Session` or single-role ``LoneSession``)."""

    end_time: float | None

    def start(self, now: float) -> list[tuple[Role, Frame]]: ...

    def link(self, frame: Frame, sender: Role, now: float) -> list[tuple[float, Frame]]: ...

    def next_deadline(self) -> float | None: ...

    def observe(self, now: float) -> None: ...

    def request_stop(self, now: float, reason: str) -> None: ...

    @property
    def done(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Cadence:
    """Period statistics of one cyclic frame (ms), as sent by us or as received from the peer."""

    frame_id: int
    count: int
    mean_ms: float
    p99_error_ms: float
    max_error_ms: float
    late: int  # periods more than 10 % over nominal
    nominal_ms: float = 100.0
    direction: str = "sent"  # "sent" | "received"

    @staticmethod
    def from_times(
        frame_id: int, times: list[float], nominal: float, direction: str = "sent"
    ) -> Cadence | None:
        if len(times) < 3:
            return None
        periods = [b - a for a, b in itertools.pairwise(times)]
        errors = sorted(abs(p - nominal) * 1000 for p in periods)
        p99 = errors[min(len(errors) - 1, int(0.99 * len(errors)))]
        return Cadence(
            frame_id,
            len(times),
            statistics.fmean(periods) * 1000,
            p99,
            errors[-1],
            sum(1 for p in periods if p > nominal * 1.1),
            nominal * 1000,
            direction,
        )


class Endpoint:
    """One core on one bus handle (with the peer plant of a single-role run)."""

    def __init__(
        self,
        role: Role,
        core: Core,
        bus: can.BusABC,
        *,
        plant: PeerPlant | None = None,
        on_peer_frame: Callable[[Frame, float], None] | None = None,
        track_received: frozenset[int] = frozenset(),
    ) -> None:
        self.role = role
        self.core = core
        self.bus = bus
        self.plant = plant
        self.on_peer_frame = on_peer_frame
        self.track_received = track_received
        self.error: BaseException | None = None
        self.sent_times: dict[int, list[float]] = {}
        self.received_times: dict[int, list[float]] = {}
        self.error_frames = 0
        self.error_kinds: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How :meth:`RealtimeDriver.supervise` ended."""

    interrupted: bool
    failure: BaseException | None


class RealtimeDriver:
    def __init__(
        self,
        session: DriverSession,
        endpoints: list[Endpoint],
        *,
        clock: Callable[[], float] = time.monotonic,
        session_role: Role = Role.CHARGER,
        track_cadence: frozenset[int] = frozenset(),
        periods: dict[int, float] | None = None,
    ) -> None:
        self.session = session
        self.endpoints = endpoints
        self.clock = clock
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.session_role = session_role
        self.track = track_cadence
        self.periods = dict(periods or {})
        self.t0 = 0.0
        self.now = 0.0
        self.offline_from: float | None = None
        self._threads: list[threading.Thread] = []

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def _send(self, ep: Endpoint, frames: list[Frame], now: float) -> None:
        for frame in frames:
            for _, f in self.session.link(frame, ep.role, now):
                try:
                    ep.bus.send(to_message(f))
                except (can.CanError, OSError) as err:
                    raise BusError(f"CAN send failed on the {ep.role.value} bus: {err}") from err
                if f.arbitration_id in self.track:
                    ep.sent_times.setdefault(f.arbitration_id, []).append(self.clock() - self.t0)

    def _error_frame(self, ep: Endpoint, msg: can.Message) -> None:
        ep.error_frames += 1
        kind = describe_error_frame(msg)
        if kind not in ep.error_kinds:
            log.warning("%s bus: error frame (%s)", ep.role.value, kind)
        ep.error_kinds[kind] = ep.error_kinds.get(kind, 0) + 1
        if is_bus_off(msg):
            raise BusError(f"the {ep.role.value} bus went bus-off (CAN controller error frame)")

    def _receive(self, ep: Endpoint, msg: can.Message, now: float) -> None:
        frame = to_frame(msg, timestamp=now)
        if frame.arbitration_id in ep.track_received:
            stamp = msg.timestamp or (self.clock() - self.t0)
            ep.received_times.setdefault(frame.arbitration_id, []).append(stamp)
        if ep.plant is not None:
            ep.plant.receive(frame, now)
        if ep.on_peer_frame is not None:
            ep.on_peer_frame(frame, now)
        self._send(ep, ep.core.receive(frame, now), now)

    def _deadline(self, ep: Endpoint) -> float | None:
        candidates = [ep.core.next_deadline()]
        if ep.plant is not None:
            candidates.append(ep.plant.next_deadline())
        if ep.role is self.session_role:
            candidates.append(self.session.next_deadline())
        present = [d for d in candidates if d is not None]
        return min(present) if present else None

    def _timers(self, ep: Endpoint, now: float, send: bool = True) -> None:
        if ep.plant is not None:
            pd = ep.plant.next_deadline()
            if pd is not None and pd <= now + 1e-9:
                ep.plant.on_timer(now)
        dl = ep.core.next_deadline()
        if dl is not None and dl <= now + 1e-9:
            out = ep.core.on_timer(now)
            if send:
                self._send(ep, out, now)

    def _recv(self, ep: Endpoint, timeout: float) -> can.Message | None:
        try:
            return ep.bus.recv(timeout=timeout)
        except (can.CanError, OSError) as err:
            raise BusError(f"CAN receive failed on the {ep.role.value} bus: {err}") from err

    def _spin(self, ep: Endpoint, deadline: float) -> can.Message | None:
        """The last stretch before ``deadline``: poll the bus until a frame comes or the clock gets there.

        Short sleeps between polls, then a busy poll for the last ``_SPIN_BUSY``.  (``sleep(0)`` would
        not do: it hands the GIL back at once, and a thread waiting for it waits a switch interval.)
        """
        clock, t0, stop = self.clock, self.t0, self.stop_event
        while not stop.is_set():
            msg = self._recv(ep, 0.0)
            if msg is not None:
                return msg
            remaining = deadline - (clock() - t0)
            if remaining <= 0.0:
                break
            if remaining > _SPIN_BUSY:
                time.sleep(_SPIN_SLEEP)
        return None

    def _loop(self, ep: Endpoint) -> None:
        try:
            while not self.stop_event.is_set():
                with self.lock:
                    deadline = self._deadline(ep)
                now = self.elapsed()
                if deadline is None:
                    msg = self._recv(ep, _IDLE_POLL)
                elif deadline - now > _SPIN_MARGIN:  # wake up early: a timed wait may end late
                    msg = self._recv(ep, min(_IDLE_POLL, deadline - now - _SPIN_MARGIN))
                else:
                    msg = self._spin(ep, deadline)
                now = self.elapsed()
                with self.lock:
                    self.now = max(self.now, now)
                    self.session.end_time = self.now
                    if msg is not None:
                        if msg.is_error_frame:
                            self._error_frame(ep, msg)
                        elif not msg.is_remote_frame:
                            self._receive(ep, msg, now)
                    self._timers(ep, now)
                    self.session.observe(now)
        except BaseException as err:  # handed to the main thread, which reports it
            ep.error = err
            self.stop_event.set()

    def start(self) -> None:
        self.t0 = self.clock()
        with self.lock:
            for role, frame in self.session.start(0.0):
                ep = next(e for e in self.endpoints if e.role is role)
                self._send(ep, [frame], 0.0)
        for ep in self.endpoints:
            t = threading.Thread(
                target=self._loop, args=(ep,), name=f"charger-sim-{ep.role.value}", daemon=True
            )
            self._threads.append(t)
            t.start()

    def request_stop(self, reason: str) -> None:
        """Operator stop / Ctrl-C: the charger (or the lone BMS) runs its stop sequence on the bus."""
        with self.lock:
            self.session.request_stop(self.elapsed(), reason)

    @property
    def failure(self) -> BaseException | None:
        return next((ep.error for ep in self.endpoints if ep.error is not None), None)

    def finished(self, until: float) -> bool:
        with self.lock:
            done = self.session.done
        return done or self.elapsed() >= until or self.failure is not None

    def stop(self) -> None:
        """Stop the loops (the buses stay open: the caller shuts them down)."""
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=2.0)

    def finish_offline(self, reason: str, limit: float = _OFFLINE_LIMIT) -> None:
        """The bus is gone: stop, then run the cores' stop paths to their end without it.

        Nothing can be sent any more, so there is no reason to wait in real time: the deadlines are
        stepped through at once (current to zero, contactors/relays open, unlock), frames produced
        on the way are dropped (they never reached the bus, so they are not in the log either).
        """
        with self.lock:
            now = self.now
            self.offline_from = now
            self.session.request_stop(now, reason)
            end = now + limit
            same = 0
            while not self.session.done:
                cands = [d for d in (self._deadline(ep) for ep in self.endpoints) if d is not None]
                if not cands:
                    break
                nxt = min(cands)
                if nxt > end:
                    now = end
                    break
                if nxt <= now:
                    same += 1
                    if same > _MAX_STEPS_AT_ONE_TIME:
                        break
                else:
                    same = 0
                    now = nxt
                self.session.end_time = now
                for ep in self.endpoints:
                    self._timers(ep, now, send=False)
                self.session.observe(now)
            self.now = now
            self.session.end_time = now

    def supervise(
        self,
        until: float,
        *,
        tick: Callable[[float], None] | None = None,
        grace: float = 20.0,
        bus_reason: str = "bus_error",
    ) -> RunEnd:
        """Run until the session is done, ``until`` s have passed, Ctrl-C, or the bus fails.

        ``tick(elapsed)`` is called ~10 times a second under the lock (the live view).  The first
        SIGINT/SIGTERM asks for the stop sequence (bounded by ``grace`` s); a second one ends at once.
        """
        signals = [0]

        def on_signal(signum: int, frame: FrameType | None) -> None:
            signals[0] += 1

        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        interrupted = False
        deadline = until
        try:
            self.start()
            while not self.finished(deadline):
                time.sleep(0.1)
                if tick is not None:
                    with self.lock:
                        tick(self.elapsed())
                if signals[0] and not interrupted:
                    interrupted = True
                    log.warning("interrupted: running the stop sequence")
                    self.request_stop("interrupted")
                    deadline = min(deadline, self.elapsed() + grace)
                if signals[0] > 1:
                    break  # second Ctrl-C: stop now
        finally:
            self.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        failure = self.failure
        if failure is not None:
            log.warning("bus failed: %s; completing the stop sequence offline", failure)
            try:
                self.finish_offline(bus_reason if isinstance(failure, BusError) else "charger_malfunction")
            except ChargerSimError as err:  # keep the first failure; report this one in the log
                log.error("offline stop sequence failed: %s", err)
        if tick is not None:
            with self.lock:
                tick(self.elapsed() if failure is None else self.now)
        return RunEnd(interrupted or (signals[0] > 0), failure)

    def cadence(self, nominal: float = 0.1) -> list[Cadence]:
        out: list[Cadence] = []
        for ep in self.endpoints:
            for direction, table in (("sent", ep.sent_times), ("received", ep.received_times)):
                for fid, times in sorted(table.items()):
                    c = Cadence.from_times(fid, times, self.periods.get(fid, nominal), direction)
                    if c is not None:
                        out.append(c)
        return out

    def bus_events(self) -> list[str]:
        """One line per endpoint that saw error frames."""
        out: list[str] = []
        for ep in self.endpoints:
            if ep.error_frames:
                kinds = ", ".join(f"{k} x{n}" for k, n in sorted(ep.error_kinds.items()))
                out.append(f"{ep.role.value} bus: {ep.error_frames} error frames ({kinds})")
        return out
