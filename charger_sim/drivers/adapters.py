"""The CAN adapters charger-sim documents and tests, by python-can interface name.

Any python-can interface works (``-i NAME``); these are the ones checked against python-can's own
interface registry in the tests (no hardware needed) and shown in ``--help``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Adapter:
    interface: str  # python-can interface name (-i)
    hardware: str
    channel: str  # example channel (-c)
    notes: str
    sets_bitrate: bool = True  # False: the bit rate is the OS interface's (ip link ... bitrate)
    hint: str = ""  # what to install when the bus cannot be opened


ADAPTERS: tuple[Adapter, ...] = (
    Adapter(
        "socketcan",
        "Linux SocketCAN: vcan0, can0 (any adapter with a kernel driver, incl. gs_usb/candleLight)",
        "vcan0",
        "bit rate set on the interface: ip link set can0 type can bitrate 500000",
        sets_bitrate=False,
        hint="needs a Linux kernel with SocketCAN and the interface up; without kernel CAN support "
        "run inside .ci/vcan_uml.sh",
    ),
    Adapter(
        "pcan",
        "PEAK PCAN-USB (PCAN-Basic library)",
        "PCAN_USBBUS1",
        "Windows/macOS/Linux driver",
        hint="install PEAK's PCAN-Basic library and driver; is the adapter plugged in?",
    ),
    Adapter(
        "kvaser",
        "Kvaser Leaf/USBcan (CANlib)",
        "0",
        "Kvaser CANlib installed",
        hint="install Kvaser CANlib (linuxcan on Linux); is the adapter plugged in?",
    ),
    Adapter(
        "slcan",
        "CANable / LAWICEL serial-line CAN (slcan firmware)",
        "/dev/ttyACM0",
        "USB serial",
        hint="pip install pyserial; check the serial port name and permissions",
    ),
    Adapter(
        "gs_usb",
        "candleLight / CANable (gs_usb firmware) through libusb",
        "0",
        "pip install pyusb",
        hint="pip install pyusb (and libusb); on Linux the gs_usb kernel driver also offers it as "
        "socketcan can0",
    ),
    Adapter("virtual", "python-can in-process virtual bus (tests, demos)", "any-name", "one process only"),
)


def hint(interface: str) -> str:
    """What to check when ``interface`` cannot be opened (empty if nothing useful to say)."""
    for a in ADAPTERS:
        if a.interface == interface:
            return a.hint
    return ""


def adapters_epilog() -> str:
    lines = ["adapters (python-can interface names; the bit rate defaults to the protocol's):"]
    for a in ADAPTERS:
        lines.append(f"  -i {a.interface:<9} -c {a.channel:<13} {a.hardware}")
    lines.append("  (CHAdeMO runs at 500 kbit/s, GB/T 27930 at 250 kbit/s; a contradicting -b is refused)")
    return "\n".join(lines)
