"""Simulated-time driver: jumps a virtual clock from deadline to deadline.

Deterministic (same scenario and seed give the same frames at the same times) and fast: a
40-minute session runs in well under a second.  Frames travel over a :class:`Wire`: the default
in-memory wire, or python-can's ``virtual`` interface (:class:`charger_sim.drivers.canbus.BusWire`).
"""

from __future__ import annotations

import heapq
import logging
from typing import Protocol

from ..errors import LocalProtocolError
from ..frames import Frame
from ..protocols.base import Role
from ..session.session import Session

log = logging.getLogger(__name__)

_MAX_STEPS_AT_ONE_TIME = 10_000


class Wire(Protocol):
    def carry(self, frame: Frame, sender: Role) -> Frame:
        """Put ``frame`` on the wire and return it as the other side receives it."""


class MemoryWire:
    """The built-in simulated wire: frames arrive unchanged."""

    def carry(self, frame: Frame, sender: Role) -> Frame:
        return frame


class SimulatedDriver:
    def __init__(self, session: Session, wire: Wire | None = None) -> None:
        self.session = session
        self.wire: Wire = wire or MemoryWire()
        self._pending: list[tuple[float, int, Role, Frame]] = []
        self._seq = 0
        self.now = 0.0

    def _send(self, sender: Role, frames: list[Frame], now: float) -> None:
        if not frames:
            return
        dest = Role.VEHICLE if sender is Role.CHARGER else Role.CHARGER
        peer = self.session.vehicle if dest is Role.VEHICLE else self.session.charger
        for frame in frames:
            for at, f in self.session.link(frame, sender, now):
                carried = self.wire.carry(f, sender)
                if at <= now and not self._pending:
                    # arrives at this instant, in send order: hand it over directly
                    self._send(dest, peer.receive(carried, now), now)
                else:
                    heapq.heappush(self._pending, (at, self._seq, dest, carried))
                    self._seq += 1

    def _deliver(self, now: float) -> None:
        pending = self._pending
        while pending and pending[0][0] <= now:
            _, _, dest, frame = heapq.heappop(pending)
            core = self.session.charger if dest is Role.CHARGER else self.session.vehicle
            self._send(dest, core.receive(frame, now), now)

    def run(self, until: float) -> float:
        """Run the session until it is done or ``until`` seconds of session time; return the end time."""
        s = self.session
        charger, vehicle = s.charger, s.vehicle
        for role, frame in s.start(0.0):
            self._send(role, [frame], 0.0)
        now = 0.0
        same_time_steps = 0
        while not s.done:
            candidates = [
                d
                for d in (charger.next_deadline(), vehicle.next_deadline(), s.next_deadline())
                if d is not None
            ]
            if self._pending:
                candidates.append(self._pending[0][0])
            if not candidates:
                break
            nxt = min(candidates)
            if nxt > until:
                now = until
                break
            if nxt <= now:
                same_time_steps += 1
                if same_time_steps > _MAX_STEPS_AT_ONE_TIME:
                    raise LocalProtocolError(
                        f"simulation stuck at t={now:.6f} s (a core keeps a past deadline)"
                    )
            else:
                same_time_steps = 0
                now = nxt
            s.end_time = now
            self._deliver(now)
            for role, core in ((Role.CHARGER, charger), (Role.VEHICLE, vehicle)):
                deadline = core.next_deadline()
                if deadline is not None and deadline <= now + 1e-9:
                    self._send(role, core.on_timer(now), now)
            self._deliver(now)  # frames sent at this instant arrive at this instant
            s.observe(now)
        self.now = now
        return now
