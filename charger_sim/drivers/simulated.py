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
    """Runs a session on a virtual clock, jumping from deadline to deadline.

    Each step at time ``now``: frames due by ``now`` are delivered, the charger then the vehicle get
    ``on_timer`` if their deadline has come, frames sent at this instant arrive at this instant, and
    the session observes.  The hot loop keeps each core's ``next_deadline()`` until the core is
    called again (cores are pure: their deadline changes only through their own input methods, and
    the session's fault engine, which may call the charger, runs in ``observe``).
    """

    def __init__(self, session: Session, wire: Wire | None = None) -> None:
        self.session = session
        self.wire: Wire = wire or MemoryWire()
        self._pending: list[tuple[float, int, Role, Frame]] = []
        self._seq = 0
        self.now = 0.0
        # cores called since their deadline was last asked (cleared by _deadlines)
        self._dirty_charger = True
        self._dirty_vehicle = True

    def _send(self, sender: Role, frames: list[Frame], now: float) -> None:
        """Put ``frames`` on the wire; each arrives at once (in send order) unless a fault delays it."""
        s = self.session
        link = s.link
        carry = None if type(self.wire) is MemoryWire else self.wire.carry
        pending = self._pending
        if sender is Role.CHARGER:
            dest, receive = Role.VEHICLE, s.vehicle.receive
            self._dirty_vehicle = True
        else:
            dest, receive = Role.CHARGER, s.charger.receive
            self._dirty_charger = True
        for frame in frames:
            delivered = link(frame, sender, now)
            if len(delivered) == 1 and carry is None and not pending:
                at, f = delivered[0]
                if at <= now:  # arrives at this instant, in send order: hand it over directly
                    answer = receive(f, now)
                    if answer:
                        self._send(dest, answer, now)
                    continue
            for at, f in delivered:
                if carry is not None:
                    f = carry(f, sender)
                if at <= now and not pending:
                    answer = receive(f, now)
                    if answer:
                        self._send(dest, answer, now)
                else:
                    heapq.heappush(pending, (at, self._seq, dest, f))
                    self._seq += 1

    def _deliver(self, now: float) -> None:
        pending = self._pending
        s = self.session
        while pending and pending[0][0] <= now:
            _, _, dest, frame = heapq.heappop(pending)
            if dest is Role.CHARGER:
                self._dirty_charger = True
                answer = s.charger.receive(frame, now)
            else:
                self._dirty_vehicle = True
                answer = s.vehicle.receive(frame, now)
            if answer:
                self._send(dest, answer, now)

    def run(self, until: float) -> float:
        """Run the session until it is done or ``until`` seconds of session time; return the end time."""
        s = self.session
        charger, vehicle = s.charger, s.vehicle
        charger_deadline, vehicle_deadline = charger.next_deadline, vehicle.next_deadline
        session_deadline, observe = s.next_deadline, s.observe
        charger_timer, vehicle_timer = charger.on_timer, vehicle.on_timer
        send, deliver, pending = self._send, self._deliver, self._pending
        CHARGER, VEHICLE = Role.CHARGER, Role.VEHICLE
        # Without scenario faults, observe() only records: it never calls into the cores.
        observe_calls_cores = bool(s.scenario.faults)
        for role, frame in s.start(0.0):
            send(role, [frame], 0.0)
        now = 0.0
        same_time_steps = 0
        dc: float | None = None
        dv: float | None = None
        self._dirty_charger = self._dirty_vehicle = True
        while not s.done:
            if self._dirty_charger:
                dc = charger_deadline()
                self._dirty_charger = False
            if self._dirty_vehicle:
                dv = vehicle_deadline()
                self._dirty_vehicle = False
            nxt = session_deadline()
            if dc is not None and (nxt is None or dc < nxt):
                nxt = dc
            if dv is not None and (nxt is None or dv < nxt):
                nxt = dv
            if pending and (nxt is None or pending[0][0] < nxt):
                nxt = pending[0][0]
            if nxt is None:
                break
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
            if pending:
                deliver(now)
            due = now + 1e-9
            if self._dirty_charger:
                dc = charger_deadline()
                self._dirty_charger = False
            if dc is not None and dc <= due:
                self._dirty_charger = True
                out = charger_timer(now)
                if out:
                    send(CHARGER, out, now)
            if self._dirty_vehicle:
                dv = vehicle_deadline()
                self._dirty_vehicle = False
            if dv is not None and dv <= due:
                self._dirty_vehicle = True
                out = vehicle_timer(now)
                if out:
                    send(VEHICLE, out, now)
            if pending:
                deliver(now)  # frames sent at this instant arrive at this instant
            observe(now)
            if observe_calls_cores:
                self._dirty_charger = self._dirty_vehicle = True
        self.now = now
        return now
