"""GB/T 27930-2015 (DC charging over CAN, charger <-> BMS): addresses, the J1939-21 transport and the
cores.

Message layouts live in ``dbc/gbt27930.dbc`` (``load_dbc("gbt27930")``); messages longer than 8 bytes
(BRM, BCP, BCS, BMV, BMT, BSP) travel through :mod:`.transport`.  :mod:`.charger` (with
:mod:`.charger_base`) is the charger core, :mod:`.bms` (with :mod:`.bms_frames`, :mod:`.bms_states`)
the simulated BMS; :mod:`.states`, :mod:`.timing` and :mod:`.stops` are the tables both follow and
:mod:`.config` the scenario keys.
"""

from __future__ import annotations

from typing import Final

from .transport import (
    AbortReason,
    MessageReceived,
    TpEvent,
    TpTiming,
    TransferDone,
    TransferFailed,
    TransportEndpoint,
    make_id,
    split_id,
)

CHARGER_ADDRESS: Final = 0x56
BMS_ADDRESS: Final = 0xF4

# PGNs a GB/T charger accepts an RTS for (fact sheet section 5): BRM, BCP, BCS, BMV, BMT, BSP.
TP_PGNS: Final = frozenset({0x0200, 0x0600, 0x1100, 0x1500, 0x1600, 0x1700})

__all__ = [
    "BMS_ADDRESS",
    "CHARGER_ADDRESS",
    "TP_PGNS",
    "AbortReason",
    "MessageReceived",
    "TpEvent",
    "TpTiming",
    "TransferDone",
    "TransferFailed",
    "TransportEndpoint",
    "make_id",
    "split_id",
]
