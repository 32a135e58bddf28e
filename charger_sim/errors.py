"""One exception tree saying whose fault it was.

Every error charger-sim raises on purpose derives from :class:`ChargerSimError` and carries an
``origin`` (whose fault: the local charger, the remote vehicle/BMS, the scenario file, a DBC file,
the CAN bus, or the user) and an ``exit_code`` the CLI maps it to.  Libraries raise and log; only the
CLI prints.
"""

from __future__ import annotations

import enum


class Origin(str, enum.Enum):
    """Whose fault an error or a stop was."""

    CHARGER = "charger"  # the local side: our charger (or its simulated power stage)
    VEHICLE = "vehicle"  # the remote side: vehicle / BMS
    LINK = "link"  # the CAN link: timeouts, lost frames, bus errors
    OPERATOR = "operator"  # user / operator action (stop button, time limit)
    SCENARIO = "scenario"  # a scenario file
    DBC = "dbc"  # a DBC file
    BUS = "bus"  # the CAN interface / adapter
    USER = "user"  # command-line usage


class ExitCode(enum.IntEnum):
    """Process exit codes, one per error class (documented in the README)."""

    OK = 0
    VERDICT_FAILED = 1  # a session's outcome differed from the scenario's expectation
    USAGE = 2  # bad command line (argparse uses 2 as well)
    SCENARIO = 3  # unreadable or invalid scenario file
    DBC = 4  # missing or invalid DBC file, encode/decode failure
    BUS = 5  # CAN interface could not be opened or failed during the session
    LOG_FORMAT = 6  # unreadable CAN log file
    PROTOCOL = 7  # a protocol error escaped a session (should not happen; reported, not hidden)
    INTERNAL = 70  # a bug in charger-sim (EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C


class ChargerSimError(Exception):
    """Base of every error charger-sim raises on purpose."""

    origin: Origin = Origin.CHARGER
    exit_code: ExitCode = ExitCode.INTERNAL


class UsageError(ChargerSimError):
    """The command line asks for something that cannot be done."""

    origin = Origin.USER
    exit_code = ExitCode.USAGE


class ScenarioError(ChargerSimError):
    """A scenario file is unreadable or invalid.

    ``str()`` gives one line: ``file: key.path: what was expected``.
    """

    origin = Origin.SCENARIO
    exit_code = ExitCode.SCENARIO

    def __init__(self, path: str, key: str, message: str) -> None:
        self.path = path
        self.key = key
        self.message = message
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {message}")


class DbcError(ChargerSimError):
    """A DBC file is missing or invalid, or a frame cannot be encoded/decoded with it."""

    origin = Origin.DBC
    exit_code = ExitCode.DBC


class EncodeError(DbcError):
    """A value does not fit the signal it is encoded into (out of range, unknown signal)."""


class DecodeError(DbcError):
    """Frame bytes do not fit the message they are decoded as (wrong length, unknown ID)."""


class BusError(ChargerSimError):
    """The CAN interface could not be opened or failed while in use."""

    origin = Origin.BUS
    exit_code = ExitCode.BUS


class LogFormatError(ChargerSimError):
    """A CAN log file line cannot be read.  ``str()`` names file:line and what was expected."""

    origin = Origin.USER
    exit_code = ExitCode.LOG_FORMAT


class ProtocolError(ChargerSimError):
    """A protocol rule was broken.  Cores turn these into a safe stop; they rarely escape."""

    exit_code = ExitCode.PROTOCOL


class LocalProtocolError(ProtocolError):
    """Our own side broke the protocol (a charger-sim bug or a misconfiguration)."""

    origin = Origin.CHARGER


class RemoteProtocolError(ProtocolError):
    """The remote side (vehicle/BMS) broke the protocol."""

    origin = Origin.VEHICLE
