"""The CAN frame every core, driver and codec passes around."""

from __future__ import annotations

from dataclasses import dataclass

MAX_STD_ID = 0x7FF
MAX_EXT_ID = 0x1FFFFFFF


@dataclass(frozen=True, slots=True)
class Frame:
    """One classic CAN data frame.

    ``timestamp`` is session time in seconds (simulated or wall-clock, whatever the driver's clock
    says); cores never rely on it, they get ``now`` explicitly.
    """

    arbitration_id: int
    data: bytes
    is_extended_id: bool = False
    timestamp: float = 0.0

    def __post_init__(self) -> None:
        limit = MAX_EXT_ID if self.is_extended_id else MAX_STD_ID
        if not 0 <= self.arbitration_id <= limit:
            kind = "29-bit" if self.is_extended_id else "11-bit"
            raise ValueError(f"arbitration ID 0x{self.arbitration_id:X} does not fit a {kind} identifier")
        if not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) > 8:
            raise ValueError(f"classic CAN carries at most 8 data bytes, got {len(self.data)}")

    @property
    def dlc(self) -> int:
        return len(self.data)

    def id_text(self) -> str:
        return f"{self.arbitration_id:08X}" if self.is_extended_id else f"{self.arbitration_id:03X}"

    def __str__(self) -> str:
        return f"{self.timestamp:10.3f} {self.id_text()} [{self.dlc}] {self.data.hex(' ').upper()}"
