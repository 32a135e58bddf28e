"""The CCS-over-CAN bridge profile's codings: DIN enumerations, request numbers, SNA, alive counters.

Frame layouts live in ``dbc/ccs.dbc``; this module holds what the cores need to speak them.  Section
numbers refer to the project's CCS fact sheet (``shared/protocols/ccs-over-can.md``).  Numeric DIN
values are those of the schema-generated codecs (§5).
"""

from __future__ import annotations

import enum

from ...codec import MessageCodec, Value

CHARGER_FRAMES = ("EvseStatus", "EvseMaxLimits", "EvseMinLimits", "EvsePresentValues")
VEHICLE_FRAMES = ("EvStatus", "EvTargets", "EvMaxLimits", "EvBatteryInfo")

ALIVE_MODULO = 15  # counters run 0..14 and wrap (chargebyte convention, §9)
ALIVE_SNA = 15


class Request(enum.IntEnum):
    """``EvRequest``: the DIN request the EV is making (§4).  The charger answers request ``n`` with
    ``EvseStage = n``; the message pairs the bridge folds together share one number."""

    NONE = 0  # link (SLAC, SDP, TCP) not up yet
    SESSION_SETUP = 3  # supportedAppProtocol + SessionSetup (§4 #1-2)
    SERVICE_DISCOVERY = 4  # ServiceDiscovery + ServicePaymentSelection (§4 #3-4)
    CONTRACT_AUTHENTICATION = 5  # §4 #5
    CHARGE_PARAMETER_DISCOVERY = 6  # §4 #6
    CABLE_CHECK = 8  # §4 #7
    PRECHARGE = 9  # §4 #8
    POWER_DELIVERY_START = 10  # PowerDelivery(ReadyToChargeState = true), §4 #9
    CURRENT_DEMAND = 11  # §4 #10
    POWER_DELIVERY_STOP = 12  # PowerDelivery(ReadyToChargeState = false), §4 #11
    WELDING_DETECTION = 13  # §4 #12
    SESSION_STOP = 14  # §4 #13
    SNA = 255


class Protocol(enum.IntEnum):
    NOT_NEGOTIATED = 0
    DIN70121 = 1
    ISO15118_2 = 2
    ISO15118_20 = 3
    SNA = 7


class AppProtocol(enum.IntFlag):
    """Application protocols an EVCC offers in supportedAppProtocolReq (§1, §4 #1).  The request
    travels on the PLC link (the CP wire), not on CAN: the simulated EV puts its offer on the harness
    line :data:`APP_PROTOCOL_LINE` when its link comes up, and the charger reads it when it answers
    request 3.  A charger that never sees the line assumes DIN 70121 (the bridge's request 3 is
    "supportedAppProtocol (DIN namespace) + SessionSetup")."""

    DIN70121 = 1  # urn:din:70121:2012:MsgDef
    ISO15118_2 = 2  # urn:iso:15118:2:2013:MsgDef
    ISO15118_20 = 4  # urn:iso:std:iso:15118:-20:DC


APP_PROTOCOL_LINE = "ev_app_protocols"
APP_PROTOCOL_NAMES: dict[str, AppProtocol] = {
    "din70121": AppProtocol.DIN70121,
    "iso15118_2": AppProtocol.ISO15118_2,
    "iso15118_20": AppProtocol.ISO15118_20,
}


def app_protocols(text: str) -> AppProtocol:
    """``din70121``, ``iso15118_2+din70121``...: the offer as flags (ValueError for an unknown name)."""
    offer = AppProtocol(0)
    for part in text.split("+"):
        name = part.strip().lower()
        if name not in APP_PROTOCOL_NAMES:
            raise ValueError(
                f"unknown application protocol {part.strip()!r}; expected {' / '.join(APP_PROTOCOL_NAMES)} "
                "(several joined with '+')"
            )
        offer |= APP_PROTOCOL_NAMES[name]
    return offer


def app_protocol_text(offer: AppProtocol) -> str:
    return " + ".join(n for n, f in APP_PROTOCOL_NAMES.items() if offer & f) or "nothing"


class ResponseCode(enum.IntEnum):
    OK = 0
    OK_NEW_SESSION_ESTABLISHED = 1
    OK_OLD_SESSION_JOINED = 2
    OK_CERTIFICATE_EXPIRES_SOON = 3
    FAILED = 4
    FAILED_SEQUENCE_ERROR = 5
    FAILED_SERVICE_ID_INVALID = 6
    FAILED_UNKNOWN_SESSION = 7
    FAILED_SERVICE_SELECTION_INVALID = 8
    FAILED_PAYMENT_SELECTION_INVALID = 9
    FAILED_CERTIFICATE_EXPIRED = 10
    FAILED_SIGNATURE_ERROR = 11
    FAILED_NO_CERTIFICATE_AVAILABLE = 12
    FAILED_CERT_CHAIN_ERROR = 13
    FAILED_CHALLENGE_INVALID = 14
    FAILED_CONTRACT_CANCELED = 15
    FAILED_WRONG_CHARGE_PARAMETER = 16
    FAILED_POWER_DELIVERY_NOT_APPLIED = 17
    FAILED_TARIFF_SELECTION_INVALID = 18
    FAILED_CHARGING_PROFILE_INVALID = 19
    FAILED_EVSE_PRESENT_VOLTAGE_TO_LOW = 20
    FAILED_METERING_SIGNATURE_NOT_VALID = 21
    FAILED_WRONG_ENERGY_TRANSFER_TYPE = 22
    SNA = 31

    @property
    def failed(self) -> bool:
        return ResponseCode.FAILED <= self < ResponseCode.SNA


class EvseStatusCode(enum.IntEnum):
    NOT_READY = 0
    READY = 1
    SHUTDOWN = 2
    UTILITY_INTERRUPT_EVENT = 3
    ISOLATION_MONITORING_ACTIVE = 4
    EMERGENCY_SHUTDOWN = 5
    MALFUNCTION = 6
    RESERVED_8 = 7
    RESERVED_9 = 8
    RESERVED_A = 9
    RESERVED_B = 10
    RESERVED_C = 11
    SNA = 15


class IsolationStatus(enum.IntEnum):
    INVALID = 0
    VALID = 1
    WARNING = 2
    FAULT = 3
    NO_IMD = 4  # ISO 15118-2 only
    CHECKING = 5  # chargebyte convention (§9); this profile reports Invalid while measuring
    SNA = 15


class Notification(enum.IntEnum):
    NONE = 0
    STOP_CHARGING = 1
    RENEGOTIATION = 2
    SNA = 3


class Processing(enum.IntEnum):
    FINISHED = 0
    ONGOING = 1
    INVALID = 2
    SNA = 3


class EvErrorCode(enum.IntEnum):
    NO_ERROR = 0
    FAILED_RESS_TEMPERATURE_INHIBIT = 1
    FAILED_EV_SHIFT_POSITION = 2
    FAILED_CHARGER_CONNECTOR_LOCK_FAULT = 3
    FAILED_EV_RESS_MALFUNCTION = 4
    FAILED_CHARGING_CURRENT_DIFFERENTIAL = 5
    FAILED_CHARGING_VOLTAGE_OUT_OF_RANGE = 6
    RESERVED_A = 7
    RESERVED_B = 8
    RESERVED_C = 9
    FAILED_CHARGING_SYSTEM_INCOMPATIBILITY = 10
    NO_DATA = 11
    SNA = 15


class Bool2(enum.IntEnum):
    """Every flag of the profile: two bits with Invalid and SNA (§9)."""

    FALSE = 0
    TRUE = 1
    INVALID = 2
    SNA = 3

    @classmethod
    def of(cls, flag: bool | None) -> Bool2:
        if flag is None:
            return cls.SNA
        return cls.TRUE if flag else cls.FALSE


class ContactorState(enum.IntEnum):
    OPEN = 0
    CLOSED = 1
    ERROR = 2
    SNA = 3


def failed(code: Value | None) -> bool:
    """A FAILED* ResponseCode (4..22): the answer ends the session (§5)."""
    return code is not None and ResponseCode.FAILED <= code <= ResponseCode.FAILED_WRONG_ENERGY_TRANSFER_TYPE


def truth(value: Value | None) -> bool | None:
    """A 2-bit boolean as True/False, or None for Invalid, SNA or a missing frame."""
    if value == Bool2.TRUE:
        return True
    if value == Bool2.FALSE:
        return False
    return None


_BOUNDS: dict[tuple[int, str], tuple[Value, float]] = {}


def _bounds(message: MessageCodec, signal: str) -> tuple[Value, float]:
    """(SNA value, largest value below SNA) of a signal, computed once."""
    key = (id(message), signal)
    found = _BOUNDS.get(key)
    if found is None:
        spec = message.signal(signal)
        found = _BOUNDS[key] = (spec.from_raw(spec.mask), float(spec.from_raw(spec.mask - 1)))
    return found


def sna(message: MessageCodec, signal: str) -> Value:
    """The physical value of the all-ones raw field (what an SNA field decodes to)."""
    return _bounds(message, signal)[0]


def number(message: MessageCodec, values: dict[str, Value] | None, signal: str) -> float | None:
    """A numeric signal's value, or None when the frame never came or the field is SNA."""
    if values is None:
        return None
    value = values.get(signal)
    if value is None or value == _bounds(message, signal)[0]:
        return None
    return float(value)


def or_sna(message: MessageCodec, signal: str, value: float | None) -> Value:
    """``value`` clamped into the signal's range below SNA, or the SNA value when None."""
    sna_value, top = _bounds(message, signal)
    if value is None:
        return sna_value
    return min(max(value, 0.0), top)


def next_alive(counter: int) -> int:
    return (counter + 1) % ALIVE_MODULO


class AliveCheck:
    """Receiver side of a 4-bit alive counter: stuck (no change) and jumps (more than one frame lost).

    ``update`` returns True when the counter advanced (the caller re-arms its freeze deadline).
    """

    __slots__ = ("jumps", "last", "repeats")

    MAX_STEP = 2  # one lost frame is tolerated; a bigger step is a jump

    def __init__(self) -> None:
        self.last: int | None = None
        self.jumps = 0
        self.repeats = 0

    def update(self, counter: int) -> bool:
        if counter >= ALIVE_SNA:
            self.repeats += 1
            return False
        last, self.last = self.last, counter
        if last is None:
            return True
        step = (counter - last) % ALIVE_MODULO
        if step == 0:
            self.repeats += 1
            return False
        if step > self.MAX_STEP:
            self.jumps += 1
        return True
