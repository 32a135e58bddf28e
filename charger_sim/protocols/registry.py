"""Protocols by name: their DBC, bit rate, configuration classes, core factories and tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..bms.battery import Battery
from ..codec import Codec
from ..errors import UsageError
from ..frames import Frame
from ..plant.harness import Harness
from .base import Core, Limit, Pin, StopReason


@dataclass(frozen=True)
class ProtocolInfo:
    name: str
    title: str
    dbc: str
    bitrate: int
    extended_ids: bool
    charger_config: type
    vehicle_config: type
    build_charger: Callable[[Any, Harness, Codec], Core]
    build_vehicle: Callable[[Any, Battery, Harness, Codec], Core]
    stop_reasons: Mapping[str, StopReason]
    stage_steps: Mapping[str, int]  # charger stages in order, with their handshake step
    stage_descriptions: Mapping[str, str]
    limits: Mapping[str, Limit]
    transitions: Sequence[Any]
    initial_stage: Any
    final_stage: Any
    # name of the DBC message a frame carries when its CAN ID alone does not say (GB/T transport),
    # so that link faults can drop multi-packet messages by name
    frame_message: Callable[[Frame], str | None] | None = None
    # fault catalogue mapping (charger_sim.faults): the lines a worn_pins fault can degrade, how a
    # firmware_mismatch changes the vehicle configuration (ValueError for an unknown version), and
    # one line per fault kind on how this protocol's frames and flags show it
    pins: Mapping[str, Pin] = dataclasses.field(default_factory=dict)
    apply_firmware: Callable[[Any, str], Any] | None = None
    fault_notes: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _tables(states: ModuleType, stops: ModuleType, timing: ModuleType) -> dict[str, Any]:
    """The ProtocolInfo fields every protocol fills the same way from its three table modules."""
    return {
        "stop_reasons": stops.REASONS,
        "stage_steps": {s.value: n for s, n in states.STEP.items()},
        "stage_descriptions": {s.value: d for s, d in states.DESCRIPTION.items()},
        "limits": timing.LIMITS,
        "transitions": states.TRANSITIONS,
        "initial_stage": states.Stage.IDLE,
        "final_stage": states.Stage.DONE,
    }


def _faults(module: ModuleType) -> dict[str, Any]:
    """The fault-catalogue fields of a protocol's ``faults`` module (PINS, apply_firmware, NOTES)."""
    return {
        "pins": getattr(module, "PINS", {}),
        "apply_firmware": getattr(module, "apply_firmware", None),
        "fault_notes": getattr(module, "NOTES", {}),
    }


def _chademo() -> ProtocolInfo:
    from .chademo import faults, states, stops, timing
    from .chademo.charger import ChademoCharger, ChademoChargerConfig
    from .chademo.vehicle import ChademoVehicle, ChademoVehicleConfig

    return ProtocolInfo(
        name="chademo",
        title="CHAdeMO 0.9 / 1.0 / 2.0",
        dbc="chademo",
        bitrate=500_000,
        extended_ids=False,
        charger_config=ChademoChargerConfig,
        vehicle_config=ChademoVehicleConfig,
        build_charger=lambda cfg, harness, codec: ChademoCharger(cfg, harness, codec),
        build_vehicle=lambda cfg, battery, harness, codec: ChademoVehicle(cfg, battery, harness, codec),
        **_tables(states, stops, timing),
        **_faults(faults),
    )


def _gbt() -> ProtocolInfo:
    from .gbt import faults, states, stops, timing
    from .gbt.bms import GbtBms
    from .gbt.charger import GbtCharger
    from .gbt.config import GbtBmsConfig, GbtChargerConfig
    from .gbt.messages import tp_message_name

    return ProtocolInfo(
        name="gbt",
        title="GB/T 27930-2015",
        dbc="gbt27930",
        bitrate=250_000,
        extended_ids=True,
        charger_config=GbtChargerConfig,
        vehicle_config=GbtBmsConfig,
        build_charger=lambda cfg, harness, codec: GbtCharger(cfg, harness, codec),
        build_vehicle=lambda cfg, battery, harness, codec: GbtBms(cfg, battery, harness, codec),
        **_tables(states, stops, timing),
        **_faults(faults),
        frame_message=tp_message_name,
    )


def _ccs() -> ProtocolInfo:
    from .ccs import faults, states, stops, timing
    from .ccs.charger import CcsCharger
    from .ccs.evse import CcsChargerConfig
    from .ccs.vehicle import CcsVehicle, CcsVehicleConfig

    return ProtocolInfo(
        name="ccs",
        title="CCS DIN SPEC 70121 (charger-sim CAN bridge profile)",
        dbc="ccs",
        bitrate=500_000,
        extended_ids=False,
        charger_config=CcsChargerConfig,
        vehicle_config=CcsVehicleConfig,
        build_charger=lambda cfg, harness, codec: CcsCharger(cfg, harness, codec),
        build_vehicle=lambda cfg, battery, harness, codec: CcsVehicle(cfg, battery, harness, codec),
        **_tables(states, stops, timing),
        **_faults(faults),
    )


_FACTORIES: dict[str, Callable[[], ProtocolInfo]] = {"chademo": _chademo, "gbt": _gbt, "ccs": _ccs}
_CACHE: dict[str, ProtocolInfo] = {}


def names() -> list[str]:
    return sorted(_FACTORIES)


def get(name: str) -> ProtocolInfo:
    key = name.lower().replace("-", "").replace("/", "")
    if key not in _FACTORIES:
        raise UsageError(f"unknown protocol {name!r}; expected one of: {', '.join(names())}")
    if key not in _CACHE:
        _CACHE[key] = _FACTORIES[key]()
    return _CACHE[key]
