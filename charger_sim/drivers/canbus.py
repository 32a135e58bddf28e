"""python-can glue: Frame <-> can.Message, opening buses with clear errors, a bus-backed wire."""

from __future__ import annotations

import itertools
import logging
import os
from typing import Any

import can

from ..errors import BusError, UsageError
from ..frames import MAX_EXT_ID, MAX_STD_ID, Frame
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


def open_bus(
    interface: str | None,
    channel: str | None,
    bitrate: int | None,
    *,
    kernel_filters: list[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> can.BusABC:
    """Open a python-can bus; any failure becomes one clear :class:`BusError`.

    With ``interface=None`` python-can's own configuration decides (``can.rc``, the ``CAN_INTERFACE``
    / ``CAN_CHANNEL`` / ``CAN_BITRATE`` environment, ``~/.canrc``...): see :func:`bus_config`.
    ``kernel_filters`` are installed on SocketCAN only (``CAN_RAW_FILTER``: the kernel drops other
    IDs, error frames still arrive); elsewhere python-can would filter in software and drop error
    frames with the rest, so those buses get no filters unless ``can_filters`` is given explicitly.
    """
    config: dict[str, Any] = dict(kwargs)
    if interface is not None:
        config["interface"] = interface
    if channel is not None:
        config["channel"] = channel
    if bitrate is not None and interface not in ("virtual",):
        config["bitrate"] = bitrate
    if interface is None:
        config = bus_config(config)
        if config.get("interface") == "virtual":
            config.pop("bitrate", None)
    if kernel_filters and config.get("interface") == "socketcan" and "can_filters" not in config:
        config["can_filters"] = kernel_filters
    try:
        return can.Bus(**config)
    except Exception as err:  # backends raise anything when a driver or device is missing
        from .adapters import hint

        iface = config.get("interface") or "(configured interface)"
        chan = config.get("channel")
        where = f"{iface}:{chan if chan is not None else '(default channel)'}"
        what = str(err) if isinstance(err, (can.CanError, OSError)) else f"{type(err).__name__}: {err}"
        extra = hint(str(iface))
        raise BusError(f"cannot open CAN bus {where}: {what}" + (f" ({extra})" if extra else "")) from err


NO_INTERFACE = (
    "no CAN interface given: pass -i/--interface (socketcan, pcan, kvaser, slcan, gs_usb, virtual...) "
    "and -c/--channel, or configure python-can (CAN_INTERFACE/CAN_CHANNEL environment variables, "
    "~/.canrc or can.ini)"
)


def bus_config(given: dict[str, Any] | None = None) -> dict[str, Any]:
    """python-can's effective bus configuration: ``given`` on top of can.rc, environment, config files.

    Raises :class:`UsageError` when nothing names an interface.
    """
    from can.util import load_config

    given = {k: v for k, v in (given or {}).items() if v is not None}
    try:
        config = dict(load_config(config=given))
    except NotImplementedError as err:  # CanInterfaceNotImplementedError: unknown or missing interface
        if not given.get("interface") and "None" in str(err):
            raise UsageError(NO_INTERFACE) from err
        raise UsageError(f"python-can configuration: {err}") from err
    except (ValueError, TypeError) as err:
        raise UsageError(f"python-can configuration: {err}") from err
    if not config.get("interface"):
        raise UsageError(NO_INTERFACE)
    return {k: v for k, v in config.items() if v is not None}


def protocol_filters(peer_ids: list[tuple[int, bool]]) -> list[dict[str, Any]]:
    """Kernel/driver acceptance filters for the frames of the peer (python-can ``can_filters``).

    29-bit peers whose IDs all share a J1939 source address (low byte) are filtered by that address,
    so transport-protocol frames (TP.CM/TP.DT) pass too; otherwise each ID is matched exactly.
    """
    if not peer_ids:
        return []
    extended = [i for i, ext in peer_ids if ext]
    if extended and len(extended) == len(peer_ids) and len({i & 0xFF for i in extended}) == 1:
        return [{"can_id": extended[0] & 0xFF, "can_mask": 0xFF, "extended": True}]
    return [
        {"can_id": i, "can_mask": MAX_EXT_ID if ext else MAX_STD_ID, "extended": ext}
        for i, ext in sorted(set(peer_ids))
    ]


# SocketCAN error-frame classes (linux/can/error.h), as python-can reports them in arbitration_id
_ERROR_CLASSES = (
    (0x001, "TX timeout"),
    (0x002, "arbitration lost"),
    (0x004, "controller problem"),
    (0x008, "protocol violation"),
    (0x010, "transceiver status"),
    (0x020, "no ACK on transmission"),
    (0x040, "bus-off"),
    (0x080, "bus error"),
    (0x100, "controller restarted"),
)
CAN_ERR_BUSOFF = 0x040


def describe_error_frame(msg: can.Message) -> str:
    names = [name for bit, name in _ERROR_CLASSES if msg.arbitration_id & bit]
    return "/".join(names) or f"error frame 0x{msg.arbitration_id:X}"


def is_bus_off(msg: can.Message) -> bool:
    return bool(msg.is_error_frame and msg.arbitration_id & CAN_ERR_BUSOFF)


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
