"""What a hostile vehicle does, as data: steps on a clock, and the replayable case file.

A fuzzing session is the charger core plus a list of :class:`Step` (a frame on the bus, a control
line or plant value changed, an operator action), each at a session time.  The charger's timers run
between steps.  A case file (YAML) holds one such list with the protocol and charger configuration,
so any counterexample replays exactly: ``charger-sim fuzz --replay case.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ScenarioError
from ..frames import MAX_EXT_ID, MAX_STD_ID

CASE_KIND = "charger-sim fuzz case"
PLANT_FIELDS = ("contactors_closed", "battery_voltage", "insulation_resistance_ohm", "connected", "welded")
OPERATOR_ACTIONS = ("stop", "power_fault")


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the vehicle side (or the operator) does at session time ``t``.

    ``kind`` is ``frame`` (``frame_id``/``data``/``extended``), ``line`` (``name`` = control line,
    ``value``), ``plant`` (``name`` in :data:`PLANT_FIELDS`, ``value``) or ``operator`` (``name`` in
    :data:`OPERATOR_ACTIONS`).
    """

    t: float
    kind: str
    frame_id: int = 0
    data: bytes = b""
    extended: bool = False
    name: str = ""
    value: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        t = round(self.t, 6)
        if self.kind == "frame":
            width = 8 if self.extended else 3
            out: dict[str, Any] = {"t": t, "frame": f"{self.frame_id:0{width}X}#{self.data.hex().upper()}"}
            if self.extended:
                out["ext"] = True
            return out
        if self.kind == "operator":
            return {"t": t, "operator": self.name}
        value: float | int = int(self.value) if float(self.value).is_integer() else self.value
        return {"t": t, self.kind: self.name, "value": value}

    @staticmethod
    def from_dict(d: Any, where: str, key: str) -> Step:
        if not isinstance(d, Mapping) or "t" not in d:
            raise ScenarioError(
                where, key, "expected a mapping with 't' and one of frame/line/plant/operator"
            )
        t = d["t"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
            raise ScenarioError(where, f"{key}.t", f"expected a session time >= 0, got {t!r}")
        if "frame" in d:
            text = str(d["frame"])
            ident, _, payload = text.partition("#")
            try:
                frame_id = int(ident, 16)
                data = bytes.fromhex(payload)
            except ValueError:
                raise ScenarioError(where, f"{key}.frame", f"expected ID#HEXDATA, got {text!r}") from None
            extended = bool(d.get("ext", False))
            if not 0 <= frame_id <= (MAX_EXT_ID if extended else MAX_STD_ID) or len(data) > 8:
                raise ScenarioError(where, f"{key}.frame", f"not a classic CAN frame: {text!r}")
            return Step(float(t), "frame", frame_id=frame_id, data=data, extended=extended)
        if "operator" in d:
            name = str(d["operator"])
            if name not in OPERATOR_ACTIONS:
                raise ScenarioError(
                    where, f"{key}.operator", f"expected one of: {', '.join(OPERATOR_ACTIONS)}"
                )
            return Step(float(t), "operator", name=name)
        for kind in ("line", "plant"):
            if kind in d:
                name = str(d[kind])
                if kind == "plant" and name not in PLANT_FIELDS:
                    raise ScenarioError(where, f"{key}.plant", f"expected one of: {', '.join(PLANT_FIELDS)}")
                value = d.get("value", 0)
                if isinstance(value, bool):
                    value = int(value)
                if not isinstance(value, (int, float)):
                    raise ScenarioError(where, f"{key}.value", f"expected a number, got {value!r}")
                return Step(float(t), kind, name=name, value=float(value))
        raise ScenarioError(where, key, "expected one of: frame, line, plant, operator")


@dataclass(slots=True)
class Case:
    """A replayable fuzzing session: protocol, charger configuration, steps, silence until ``end``."""

    protocol: str
    charger: dict[str, Any]
    steps: list[Step]
    end: float
    seed: int = 0
    violation: str = ""
    notes: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        doc = {
            "kind": CASE_KIND,
            "protocol": self.protocol,
            "seed": self.seed,
            "violation": self.violation,
            "charger": self.charger,
            "end": round(self.end, 6),
            "steps": [s.to_dict() for s in self.steps],
        }
        header = "".join(f"# {line}\n" for line in self.notes)
        return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=110)

    def write(self, path: Path) -> None:
        path.write_text(self.to_yaml(), encoding="utf-8")

    @staticmethod
    def load(path: Path) -> Case:
        where = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise ScenarioError(where, "", f"cannot read file ({err.strerror or err})") from err
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f"line {mark.line + 1}" if mark is not None else ""
            raise ScenarioError(
                where, line, f"not valid YAML: {getattr(err, 'problem', None) or err}"
            ) from err
        if not isinstance(data, Mapping) or data.get("kind") != CASE_KIND:
            raise ScenarioError(where, "kind", f"expected {CASE_KIND!r} (a file written by charger-sim fuzz)")
        steps_raw = data.get("steps")
        if not isinstance(steps_raw, list):
            raise ScenarioError(where, "steps", "expected a list of steps")
        steps = [Step.from_dict(s, where, f"steps[{i}]") for i, s in enumerate(steps_raw)]
        charger = data.get("charger") or {}
        if not isinstance(charger, Mapping):
            raise ScenarioError(where, "charger", "expected a mapping of charger configuration keys")
        end = data.get("end", steps[-1].t if steps else 0.0)
        if isinstance(end, bool) or not isinstance(end, (int, float)):
            raise ScenarioError(where, "end", f"expected a session time, got {end!r}")
        return Case(
            protocol=str(data.get("protocol", "")),
            charger=dict(charger),
            steps=steps,
            end=float(end),
            seed=int(data.get("seed", 0) or 0),
            violation=str(data.get("violation", "")),
        )
