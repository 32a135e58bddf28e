"""python-can glue: Frame <-> can.Message, opening buses with clear errors, a bus-backed wire."""

from __future__ import annotations

import itertools
import logging
import os
from typing import Any

import can

from ..errors import BusError
from ..frames import Frame
from ..protocols.base import Role

log = logging.getLogger(__name__)

_unique = itertools.count()


def to_message(frame: Frame, *, timestamp: float | None = None) -> can.Message:
    return can.Message(
        arbitration_id=frame.arbitration_id,
        data=frame.data,
        is_extended_id=frame.is_extended_id,
        timestamp=frame.timestamp if timestamp is None else timestamp,
        check=True,
    )


def to_frame(msg: can.Message, *, timestamp: float | None = None) -> Frame:
    return Frame(
        msg.arbitration_id,
        bytes(msg.data),
        bool(msg.is_extended_id),
        msg.timestamp if timestamp is None else timestamp,
    )


def unique_virtual_channel(prefix: str = "charger-sim") -> str:
    """python-can virtual channels are process-wide by name: give each session its own."""
    return f"{prefix}-{os.getpid()}-{next(_unique)}"


def open_bus(interface: str | None, channel: str | None, bitrate: int | None, **kwargs: Any) -> can.BusABC:
    """Open a python-can bus; any failure becomes one clear :class:`BusError`."""
    config: dict[str, Any] = dict(kwargs)
    if interface is not None:
        config["interface"] = interface
    if channel is not None:
        config["channel"] = channel
    if bitrate is not None and interface not in ("virtual",):
        config["bitrate"] = bitrate
    try:
        return can.Bus(**config)
    except (can.CanError, OSError, ValueError, ImportError, NotImplementedError) as err:
        where = f"{interface or '(configured interface)'}:{channel or '(default channel)'}"
        raise BusError(f"cannot open CAN bus {where}: {err}") from err


class BusWire:
    """Carry simulated-time frames through a real python-can bus pair (one handle per side)."""

    def __init__(self, charger_bus: can.BusABC, vehicle_bus: can.BusABC) -> None:
        self.buses = {Role.CHARGER: charger_bus, Role.VEHICLE: vehicle_bus}

    @classmethod
    def open(cls, interface: str, channel: str | None, bitrate: int) -> BusWire:
        if interface == "virtual":
            channel = channel or unique_virtual_channel()
            extra: dict[str, Any] = {"preserve_timestamps": True}
        else:
            extra = {}
        a = open_bus(interface, channel, bitrate, **extra)
        b = open_bus(interface, channel, bitrate, **extra)
        return cls(a, b)

    def carry(self, frame: Frame, sender: Role) -> Frame:
        other = Role.VEHICLE if sender is Role.CHARGER else Role.CHARGER
        try:
            self.buses[sender].send(to_message(frame))
            msg = self.buses[other].recv(timeout=1.0)
        except can.CanError as err:
            raise BusError(f"CAN bus failed: {err}") from err
        if msg is None:
            raise BusError("frame sent but not received on the other bus handle")
        return to_frame(msg, timestamp=frame.timestamp)

    def close(self) -> None:
        for bus in self.buses.values():
            bus.shutdown()
