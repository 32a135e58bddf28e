"""Real-time driver: runs the cores of a session on python-can buses against the wall clock.

Each side (charger, simulated vehicle) has its own bus handle and its own single-threaded loop:
``bus.recv(timeout=until the next deadline)``, then deliver the frame or fire the timer.  Deadlines
are absolute (``start + k * period``), so cyclic frames never drift.  All core and session work
happens under one lock, so the two loops never interleave inside a core; nothing blocks while
holding it.  Cadence statistics of the charger's cyclic frames are collected on the way.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import can

from ..errors import BusError
from ..frames import Frame
from ..protocols.base import Core, Role
from ..session.session import Session
from .canbus import to_frame, to_message

log = logging.getLogger(__name__)

_IDLE_POLL = 0.05  # s: longest wait when a core has no deadline (to notice a stop request)


@dataclass(frozen=True, slots=True)
class Cadence:
    """Period statistics of one cyclic frame as sent (ms)."""

    frame_id: int
    count: int
    mean_ms: float
    p99_error_ms: float
    max_error_ms: float
    late: int  # periods more than 10 % over nominal

    @staticmethod
    def from_times(frame_id: int, times: list[float], nominal: float) -> Cadence | None:
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
        )


class Endpoint:
    """One core on one bus handle."""

    def __init__(self, role: Role, core: Core, bus: can.BusABC) -> None:
        self.role = role
        self.core = core
        self.bus = bus
        self.error: BaseException | None = None
        self.sent_times: dict[int, list[float]] = {}


class RealtimeDriver:
    def __init__(
        self,
        session: Session,
        endpoints: list[Endpoint],
        *,
        clock: Callable[[], float] = time.monotonic,
        session_role: Role = Role.CHARGER,
        track_cadence: frozenset[int] = frozenset(),
    ) -> None:
        self.session = session
        self.endpoints = endpoints
        self.clock = clock
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.session_role = session_role
        self.track = track_cadence
        self.t0 = 0.0
        self.now = 0.0
        self._threads: list[threading.Thread] = []

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def _send(self, ep: Endpoint, frames: list[Frame], now: float) -> None:
        for frame in frames:
            for _, f in self.session.link(frame, ep.role, now):
                try:
                    ep.bus.send(to_message(f))
                except can.CanError as err:
                    raise BusError(f"CAN send failed on {ep.role.value} bus: {err}") from err
                if f.arbitration_id in self.track:
                    ep.sent_times.setdefault(f.arbitration_id, []).append(self.clock() - self.t0)

    def _loop(self, ep: Endpoint) -> None:
        core = ep.core
        try:
            while not self.stop_event.is_set():
                with self.lock:
                    deadline = core.next_deadline()
                    if ep.role is self.session_role:
                        sd = self.session.next_deadline()
                        if sd is not None:
                            deadline = sd if deadline is None else min(deadline, sd)
                now = self.elapsed()
                wait = _IDLE_POLL if deadline is None else min(_IDLE_POLL, max(0.0, deadline - now))
                try:
                    msg = ep.bus.recv(timeout=wait)
                except can.CanError as err:
                    raise BusError(f"CAN receive failed on {ep.role.value} bus: {err}") from err
                now = self.elapsed()
                with self.lock:
                    self.now = max(self.now, now)
                    self.session.end_time = self.now
                    if msg is not None and not msg.is_error_frame and not msg.is_remote_frame:
                        self._send(ep, core.receive(to_frame(msg, timestamp=now), now), now)
                    dl = core.next_deadline()
                    if dl is not None and dl <= now:
                        self._send(ep, core.on_timer(now), now)
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
        """Operator stop / Ctrl-C: the charger runs its stop sequence on the bus."""
        with self.lock:
            now = self.elapsed()
            self.session.charger.request_stop(now, reason)

    def finished(self, until: float) -> bool:
        with self.lock:
            done = self.session.done
        return done or self.elapsed() >= until or any(ep.error for ep in self.endpoints)

    def stop(self) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=2.0)
        for ep in self.endpoints:
            if ep.error is not None:
                if isinstance(ep.error, BusError):
                    raise ep.error
                raise BusError(f"{ep.role.value} loop failed: {ep.error}") from ep.error

    def cadence(self, nominal: float) -> list[Cadence]:
        out: list[Cadence] = []
        for ep in self.endpoints:
            for fid, times in sorted(ep.sent_times.items()):
                c = Cadence.from_times(fid, times, nominal)
                if c is not None:
                    out.append(c)
        return out
