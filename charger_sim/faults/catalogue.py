"""The fault catalogue: one vocabulary for every protocol.

A scenario's ``faults:`` list names faults from :data:`FAULTS`.  Each kind acts on one layer:

* ``link``: the CAN link between the two sides (drop, delay, corrupt, wrong DLC, replay, duplicate,
  bus-off).  Messages are named as in the protocol's DBC; the link finds them by CAN ID (and, for
  GB/T's multi-packet messages, through the transport frames that carry them).
* ``battery``: the simulated vehicle's pack (heat, cell voltage, cell imbalance); the vehicle's BMS
  then reacts through its own protocol's flags.
* ``plant``: the cable, inlet and DC link (insulation, welded contactors, worn pins).
* ``vehicle``: the simulated vehicle's configuration (firmware announcing another protocol version).
* ``charger``: the charger itself (power-stage trip, operator stop button).

Each protocol maps the kinds to its own frames and lines (:attr:`ProtocolInfo.fault_notes`,
:attr:`ProtocolInfo.pins`, :attr:`ProtocolInfo.apply_firmware`); this module validates a fault
against a protocol and says, in one line, what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ScenarioError
from ..scenario.schema import FaultSpec

if TYPE_CHECKING:
    from ..codec import Codec
    from ..protocols.registry import ProtocolInfo

CORRUPT_MODES = ("set", "bitflip", "out_of_range", "not_available")
PIN_MODES = ("out_of_band", "bouncing")
DEFAULT_BOUNCE_PERIOD = 0.05  # s between flips of a bouncing contact


@dataclass(frozen=True, slots=True)
class FaultKind:
    name: str
    layer: str  # link | battery | plant | vehicle | charger
    summary: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return ("type", "at", "duration", *self.required, *self.optional)


FAULTS: dict[str, FaultKind] = {
    k.name: k
    for k in (
        FaultKind("drop_message", "link", "the link loses a message: every frame, or 'count' frames",
                  ("message",), ("count",)),
        FaultKind("delay_message", "link", "the link delivers a message 'delay' seconds late",
                  ("message", "delay")),
        FaultKind("corrupt_signal", "link",
                  "a signal arrives wrong: 'mode' set (to 'value'), bitflip ('bit'), out_of_range or "
                  "not_available (all ones)", ("message", "signal", "mode"), ("value", "bit")),
        FaultKind("wrong_dlc", "link", "a message arrives with 'dlc' data bytes (cut or padded with 0xFF)",
                  ("message", "dlc")),
        FaultKind("replay_message", "link",
                  "stale data: each frame of a message is replaced by the one sent 'age' seconds earlier",
                  ("message", "age")),
        FaultKind("duplicate_message", "link", "each frame of a message arrives 1 + 'copies' times",
                  ("message",), ("copies",)),
        FaultKind("bus_off", "link",
                  "the CAN bus goes bus-off: nothing passes either way; it recovers after 'duration'"),
        FaultKind("firmware_mismatch", "vehicle",
                  "the vehicle's firmware announces protocol 'version' (from plug-in)", ("version",)),
        FaultKind("worn_pins", "plant",
                  "a worn or corroded contact: 'pin' reads out of band ('value', default the protocol's "
                  "typical bad reading) or bounces every 'period' seconds", ("pin",),
                  ("mode", "value", "period")),
        FaultKind("insulation_drop", "plant", "the DC link's insulation resistance falls to 'value' ohm",
                  ("value",)),
        FaultKind("contactor_welded", "plant",
                  "the vehicle's main contactors weld shut: the battery stays on the DC link when they open"),
        FaultKind("temperature_runaway", "battery",
                  "a heat source of 'value' watts starts in the pack (or in cell 'group')", ("value",),
                  ("group",)),
        FaultKind("cell_over_voltage", "battery",
                  "a cell group (default 0) jumps above the chemistry's over-voltage limit (a failing cell)",
                  (), ("group",)),
        FaultKind("cell_imbalance", "battery",
                  "cell 'group' (default 0) runs 'value' SOC points ahead of the rest", ("value",),
                  ("group",)),
        FaultKind("power_stage_fault", "charger", "the charger's power stage trips (output off)"),
        FaultKind("operator_stop", "charger", "the operator presses the charger's stop button"),
    )
}


def _fail(where: str, key: str, text: str) -> ScenarioError:
    return ScenarioError(where, key, text)


def validate(spec: FaultSpec, info: ProtocolInfo, codec: Codec | None, where: str, key: str) -> None:
    """Check ``spec`` against its kind and the protocol (:class:`ScenarioError` naming the key)."""
    kind = FAULTS[spec.type]
    allowed = set(kind.keys)
    for name in FaultSpec.__dataclass_fields__:
        if name in ("type", "at", "duration"):
            continue
        if getattr(spec, name) is not None and name not in allowed:
            raise _fail(where, f"{key}.{name}", f"not a parameter of {spec.type}; "
                        f"it takes: {', '.join(k for k in kind.keys if k != 'type')}")
    for name in kind.required:
        if getattr(spec, name) is None:
            raise _fail(where, f"{key}.{name}", f"missing; {spec.type} needs it ({kind.summary})")
    if spec.duration is not None and spec.duration <= 0:
        raise _fail(where, f"{key}.duration", "expected a positive number of seconds (or 'forever')")
    for name in ("count", "copies"):
        v = getattr(spec, name)
        if v is not None and v < 1:
            raise _fail(where, f"{key}.{name}", "expected an integer >= 1")
    for name in ("delay", "age", "period"):
        v = getattr(spec, name)
        if v is not None and v <= 0:
            raise _fail(where, f"{key}.{name}", "expected a positive number of seconds")
    if spec.group is not None and spec.group < 0:
        raise _fail(where, f"{key}.group", "expected a cell group index >= 0")
    if kind.layer == "link" and spec.message is not None:
        _check_message(spec, info, codec, where, key)
    if spec.type == "firmware_mismatch":
        if spec.at.time != 0.0:
            raise _fail(where, f"{key}.at", "firmware_mismatch holds from plug-in: leave out 'at'")
        if info.apply_firmware is None:
            raise _fail(where, f"{key}.type", f"{info.title} has no protocol version to mismatch")
        try:
            info.apply_firmware(info.vehicle_config(), str(spec.version))
        except ValueError as err:
            raise _fail(where, f"{key}.version", str(err)) from err
    if spec.type == "worn_pins":
        if spec.pin not in info.pins:
            raise _fail(where, f"{key}.pin", f"unknown pin for {info.title}; expected one of: "
                        f"{', '.join(info.pins)}")
        mode = spec.mode or "out_of_band"
        if mode not in PIN_MODES:
            raise _fail(where, f"{key}.mode", f"expected one of: {', '.join(PIN_MODES)}")
        if mode == "bouncing" and spec.value is not None:
            raise _fail(where, f"{key}.value", "a bouncing contact flips between good and open: no 'value'")
    if spec.type in ("insulation_drop", "temperature_runaway") and spec.value is not None and spec.value < 0:
        raise _fail(where, f"{key}.value", "expected a number >= 0")


def _check_message(spec: FaultSpec, info: ProtocolInfo, codec: Codec | None, where: str, key: str) -> None:
    if codec is None:
        return
    names = [m.name for m in codec.messages]
    if spec.message not in names:
        raise _fail(where, f"{key}.message", f"no message {spec.message!r} in {info.dbc}.dbc; "
                    f"expected one of: {', '.join(names)}")
    msg = codec.message(str(spec.message))
    if spec.type == "wrong_dlc":
        assert spec.dlc is not None
        if not 0 <= spec.dlc <= 8:
            raise _fail(where, f"{key}.dlc", "expected 0..8 (classic CAN)")
        if msg.length > 8:
            raise _fail(where, f"{key}.message", f"{spec.message} is a multi-packet message "
                        f"({msg.length} bytes): wrong_dlc works on single-frame messages")
        if spec.dlc == msg.length:
            raise _fail(where, f"{key}.dlc", f"{spec.message} is {msg.length} bytes already")
    if spec.type != "corrupt_signal":
        return
    if msg.length > 8:
        raise _fail(where, f"{key}.message", f"{spec.message} is a multi-packet message "
                    f"({msg.length} bytes): corrupt_signal works on single-frame messages")
    signals = [s.name for s in msg.signals]
    if spec.signal not in signals:
        raise _fail(where, f"{key}.signal", f"no signal {spec.signal!r} in {spec.message}; "
                    f"expected one of: {', '.join(signals)}")
    if spec.mode not in CORRUPT_MODES:
        raise _fail(where, f"{key}.mode", f"expected one of: {', '.join(CORRUPT_MODES)}")
    sig = msg.signal(str(spec.signal))
    if spec.mode == "set" and spec.value is None:
        raise _fail(where, f"{key}.value", "missing; mode 'set' needs the value to send")
    if spec.mode != "set" and spec.value is not None:
        raise _fail(where, f"{key}.value", f"mode {spec.mode} takes no 'value'")
    if spec.mode == "set" and spec.value is not None:
        raw = round((spec.value - sig.offset) / sig.scale)
        lo, hi = sig.raw_bounds()
        if not lo <= raw <= hi:
            raise _fail(where, f"{key}.value", f"{spec.value:g} does not fit the {sig.length}-bit signal")
    if spec.bit is not None:
        if spec.mode != "bitflip":
            raise _fail(where, f"{key}.bit", "only mode 'bitflip' takes 'bit'")
        if not 0 <= spec.bit < sig.length:
            raise _fail(where, f"{key}.bit",
                        f"expected 0..{sig.length - 1} ({spec.signal} has {sig.length} bits)")


def describe_catalogue(info: ProtocolInfo | None = None) -> list[tuple[str, str, str, str]]:
    """(name, layer, summary, how the protocol maps it) rows, for ``charger-sim faults``."""
    rows = []
    for kind in FAULTS.values():
        note = "" if info is None else info.fault_notes.get(kind.name, "")
        if info is not None and kind.name == "worn_pins" and info.pins:
            note = note or "pins: " + ", ".join(info.pins)
        rows.append((kind.name, kind.layer, kind.summary, note))
    return rows
