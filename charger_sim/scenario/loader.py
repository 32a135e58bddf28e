"""Read and validate scenario YAML files; every problem is one line: file, key path, expectation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..bms.battery import PackSpec
from ..codec import load_dbc
from ..errors import ScenarioError, UsageError
from ..protocols import registry
from .fields import build, coerce
from .profiles import resolve
from .schema import START, Expectation, FaultSpec, Scenario, Trigger, VehicleSetup

TOP_KEYS = ("name", "description", "protocol", "seed", "time_limit", "charger", "vehicle", "faults", "expect")
VEHICLE_KEYS = frozenset({"pack", "soc", "temperature", "ambient"})


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    where = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(where, "", f"cannot read file ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise ScenarioError(where, f"byte {err.start}", "not a YAML text file (not UTF-8)") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ScenarioError(where, line, f"not valid YAML: {problem}") from err
    return parse_scenario(data, where, default_name=p.stem)


def parse_scenario(data: Any, where: str, default_name: str = "scenario") -> Scenario:
    if not isinstance(data, Mapping):
        raise ScenarioError(where, "", "expected a mapping of scenario keys at the top level")
    for key in data:
        if key not in TOP_KEYS:
            raise ScenarioError(where, str(key), f"unknown key; expected one of: {', '.join(TOP_KEYS)}")
    if "protocol" not in data:
        raise ScenarioError(where, "protocol", f"missing; expected one of: {', '.join(registry.names())}")
    protocol = coerce(data["protocol"], str, where, "protocol")
    try:
        info = registry.get(protocol)
    except UsageError as err:
        raise ScenarioError(where, "protocol", str(err)) from err
    name = coerce(data.get("name", default_name), str, where, "name")
    seed = coerce(data.get("seed", 0), int, where, "seed")
    time_limit = coerce(data.get("time_limit", 7200.0), float, where, "time_limit")
    if time_limit <= 0:
        raise ScenarioError(where, "time_limit", "expected a positive number of seconds")
    charger_data = resolve(data.get("charger"), "charger", info.name, where)
    charger: Any = build(info.charger_config, charger_data, where, "charger")
    vehicle = _vehicle(resolve(data.get("vehicle"), "vehicle", info.name, where), where, info.vehicle_config)
    faults = _faults(data.get("faults"), where, info, vehicle)
    expect = build(Expectation, data.get("expect"), where, "expect")
    if expect.stage is not None and expect.stage not in info.stage_steps:
        raise ScenarioError(
            where, "expect.stage", f"unknown stage; expected one of: {', '.join(info.stage_steps)}"
        )
    if expect.reason is not None and expect.reason not in info.stop_reasons:
        raise ScenarioError(
            where,
            "expect.reason",
            f"unknown stop reason; expected one of: {', '.join(sorted(info.stop_reasons))}",
        )
    return Scenario(
        name=name,
        protocol=info.name,
        path=where,
        seed=seed,
        time_limit=time_limit,
        charger=charger,
        vehicle=vehicle,
        expect=expect,
        description=coerce(data.get("description", ""), str, where, "description"),
        faults=faults,
    )


def _vehicle(data: Any, where: str, behaviour_cls: type) -> VehicleSetup:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ScenarioError(where, "vehicle", f"expected a mapping, got {type(data).__name__}")
    pack = build(PackSpec, data.get("pack"), where, "vehicle.pack")
    soc = coerce(data.get("soc", 20.0), float, where, "vehicle.soc")
    if not 0 <= soc <= 100:
        raise ScenarioError(where, "vehicle.soc", "expected a state of charge in 0..100 %")
    temperature = coerce(data.get("temperature", 25.0), float, where, "vehicle.temperature")
    ambient = coerce(data.get("ambient", temperature), float, where, "vehicle.ambient")
    behaviour: Any = build(behaviour_cls, data, where, "vehicle", skip=VEHICLE_KEYS)
    return VehicleSetup(pack=pack, soc=soc, temperature=temperature, ambient=ambient, behaviour=behaviour)


def _faults(
    data: Any, where: str, info: registry.ProtocolInfo, vehicle: VehicleSetup
) -> tuple[FaultSpec, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ScenarioError(where, "faults", "expected a list of faults")
    from ..faults import FAULTS, validate

    codec = None
    out: list[FaultSpec] = []
    for i, item in enumerate(data):
        key = f"faults[{i}]"
        if not isinstance(item, Mapping):
            raise ScenarioError(where, key, "expected a mapping with 'type' (and 'at' for when)")
        kind = item.get("type")
        if kind not in FAULTS:
            raise ScenarioError(where, f"{key}.type", f"expected one of: {', '.join(FAULTS)}")
        fields = dict(item)
        trigger = START
        if "at" in fields:
            trigger = build(Trigger, fields.pop("at"), where, f"{key}.at")
            if trigger.stage is not None and trigger.stage not in info.stage_steps:
                raise ScenarioError(
                    where, f"{key}.at.stage", f"unknown stage; expected one of: {', '.join(info.stage_steps)}"
                )
        if fields.get("duration") == "forever":
            fields["duration"] = None
        allowed = FAULTS[kind].keys
        for k in fields:
            if k not in allowed:
                raise ScenarioError(
                    where, f"{key}.{k}", f"unknown key for {kind}; expected one of: {', '.join(allowed)}"
                )
        fault = dataclasses.replace(build(FaultSpec, fields, where, key), at=trigger)
        if FAULTS[kind].layer == "link" and codec is None:
            codec = load_dbc(info.dbc)
        validate(fault, info, codec, where, key)
        if fault.group is not None and fault.group >= vehicle.pack.series:
            n = vehicle.pack.series
            raise ScenarioError(where, f"{key}.group", f"the pack has {n} cell groups: expected 0..{n - 1}")
        out.append(fault)
    return tuple(out)
