"""Record every frame of a session with python-can's writers (.asc, .blf, .log, .csv, .trc...)."""

from __future__ import annotations

import time
from pathlib import Path

import can

from ..errors import UsageError
from ..frames import Frame
from ..protocols.base import Role
from .canbus import to_message


class TraceWriter:
    """Writes frames as the bus saw them; the charger's own frames are marked as transmitted.

    Simulated-time sessions are written with timestamps ``start + session time`` so the file reads
    like a real capture.
    """

    def __init__(self, path: Path, *, epoch: float | None = None, relative: bool = True) -> None:
        self.path = Path(path)
        self.epoch = time.time() if epoch is None else epoch
        self.relative = relative
        try:
            self.writer = can.Logger(str(self.path))
        except ValueError as err:
            raise UsageError(f"--log {self.path}: {err}") from err
        except OSError as err:
            raise UsageError(f"--log {self.path}: cannot write ({err.strerror or err})") from err
        self.count = 0

    def write(self, frame: Frame, sender: Role) -> None:
        ts = self.epoch + frame.timestamp if self.relative else frame.timestamp
        msg = to_message(frame, timestamp=ts)
        msg.is_rx = sender is not Role.CHARGER
        msg.channel = 0
        self.writer.on_message_received(msg)
        self.count += 1

    def close(self) -> None:
        self.writer.stop()
