"""Vehicle profiles and charger configurations: named, reusable halves of a scenario.

A vehicle profile (``scenarios/vehicles/NAME.yaml``) holds a protocol and the ``vehicle:`` mapping of
a scenario (pack, start SOC, protocol behaviour and quirks); a charger configuration
(``scenarios/chargers/NAME.yaml``) holds a protocol and the ``charger:`` mapping.  Scenarios use
them with ``vehicle: {profile: leaf_40}`` / ``charger: {profile: chademo_50kw}`` (plus overrides),
and ``charger-sim matrix`` pairs every vehicle with every charger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ScenarioError, UsageError
from ..protocols import registry
from ..resources import scenarios_dir
from .schema import Scenario

KINDS = {"vehicle": "vehicles", "charger": "chargers"}
PAIR_TIME_LIMIT = 8 * 3600.0  # s: a bus pack on a small pile takes hours
PROFILE_KEYS = ("title", "protocol", "description")


class ProfileMismatch(ScenarioError):
    """A vehicle and a charger that speak different protocols (their connectors do not mate)."""


@dataclass(frozen=True, slots=True)
class Profile:
    kind: str  # "vehicle" | "charger"
    name: str
    protocol: str
    title: str
    description: str
    path: str
    data: Mapping[str, Any]  # the scenario's vehicle: / charger: mapping


def _read(path: Path, kind: str) -> Profile:
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ScenarioError(where, "", f"cannot read file ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(where, line, f"not valid YAML: {getattr(err, 'problem', None) or err}") from err
    if not isinstance(raw, Mapping):
        raise ScenarioError(where, "", f"expected a mapping with {', '.join(PROFILE_KEYS)} and '{kind}'")
    for key in raw:
        if key not in (*PROFILE_KEYS, kind):
            allowed = ", ".join((*PROFILE_KEYS, kind))
            raise ScenarioError(where, str(key), f"unknown key; expected one of: {allowed}")
    protocol = raw.get("protocol")
    if not isinstance(protocol, str):
        raise ScenarioError(where, "protocol", f"missing; expected one of: {', '.join(registry.names())}")
    try:
        info = registry.get(protocol)
    except UsageError as err:
        raise ScenarioError(where, "protocol", str(err)) from err
    data = raw.get(kind) or {}
    if not isinstance(data, Mapping):
        raise ScenarioError(where, kind, f"expected a mapping, got {type(data).__name__}")
    if "profile" in data:
        raise ScenarioError(where, f"{kind}.profile", "a profile cannot refer to another profile")
    return Profile(
        kind=kind,
        name=path.stem,
        protocol=info.name,
        title=str(raw.get("title") or path.stem),
        description=str(raw.get("description") or ""),
        path=where,
        data=dict(data),
    )


def _folder(kind: str, folder: Path | None = None) -> Path:
    return (folder or scenarios_dir()) / KINDS[kind]


def profiles(kind: str, folder: Path | None = None) -> dict[str, Profile]:
    """Every profile of ``kind`` in the shipped (or given) scenarios folder, by name."""
    base = _folder(kind, folder)
    if not base.is_dir():
        return {}
    return {p.stem: _read(p, kind) for p in sorted(base.glob("*.yaml"))}


def vehicle_profiles(folder: Path | None = None) -> dict[str, Profile]:
    return profiles("vehicle", folder)


def charger_profiles(folder: Path | None = None) -> dict[str, Profile]:
    return profiles("charger", folder)


def find(kind: str, ref: str, where: str, key: str) -> Profile:
    """A profile by shipped name, or by path (relative to the file ``where`` that refers to it)."""
    if ref.endswith((".yaml", ".yml")) or "/" in ref:
        path = Path(ref)
        if not path.is_absolute():
            path = Path(where).parent / path
        if not path.is_file():
            raise ScenarioError(where, key, f"no {kind} profile file {ref!r}")
        return _read(path, kind)
    path = _folder(kind) / f"{ref}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(profiles(kind))) or "(none shipped)"
        raise ScenarioError(where, key, f"unknown {kind} profile {ref!r}; expected one of: {known}")
    return _read(path, kind)


def merge(profile: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's mapping with the scenario's keys on top (``pack`` merged key by key)."""
    out = dict(profile)
    for key, value in overrides.items():
        if key == "profile":
            continue
        if key == "pack" and isinstance(value, Mapping) and isinstance(out.get("pack"), Mapping):
            out["pack"] = {**out["pack"], **value}
        else:
            out[key] = value
    return out


def resolve(data: Any, kind: str, protocol: str, where: str) -> Any:
    """A scenario's ``vehicle:``/``charger:`` mapping with its ``profile:`` reference expanded."""
    if not isinstance(data, Mapping) or "profile" not in data:
        return data
    ref = data["profile"]
    if not isinstance(ref, str):
        raise ScenarioError(where, f"{kind}.profile", f"expected a {kind} profile name, got {ref!r}")
    prof = find(kind, ref, where, f"{kind}.profile")
    if prof.protocol != protocol:
        raise ScenarioError(
            where, f"{kind}.profile", f"{prof.name} is a {prof.protocol} {kind}; this scenario is {protocol}"
        )
    return merge(prof.data, data)


def pair_scenario(
    vehicle: Profile,
    charger: Profile,
    *,
    seed: int = 0,
    soc: float | None = None,
    time_limit: float | None = None,
) -> Scenario:
    """A scenario of one vehicle profile on one charger configuration, expecting a full charge."""
    from .loader import parse_scenario

    where = f"{vehicle.path} + {charger.path}"
    if vehicle.protocol != charger.protocol:
        v, c = registry.get(vehicle.protocol).title, registry.get(charger.protocol).title
        raise ProfileMismatch(
            where, "protocol", f"the vehicle's {v} inlet does not take the charger's {c} connector"
        )
    vdata = dict(vehicle.data)
    if soc is not None:
        vdata["soc"] = soc
    data: dict[str, Any] = {
        "name": f"{vehicle.name} on {charger.name}",
        "protocol": vehicle.protocol,
        "seed": seed,
        "vehicle": vdata,
        "charger": dict(charger.data),
        "expect": {"outcome": "completed"},
    }
    data["time_limit"] = PAIR_TIME_LIMIT if time_limit is None else time_limit
    return parse_scenario(data, where)

