"""A thin, conservative wrapper around ``transitions`` driven by a protocol's transition table.

``auto_transitions=False`` and ``queued=True``; no Timeout/Locked/Async extensions (they use threads
and the wall clock): the cores own their deadlines.  The Mermaid diagram is generated from the same
table, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from transitions import Machine, MachineError

from ..errors import LocalProtocolError

logging.getLogger("transitions").setLevel(logging.WARNING)


S = TypeVar("S", bound=enum.Enum)


@dataclass(frozen=True, slots=True)
class Transition(Generic[S]):
    """One row of a protocol's transition table: trigger, source stages, destination, clause."""

    trigger: str
    sources: tuple[S, ...]
    dest: S
    clause: str


class TransitionRow(Protocol):
    @property
    def trigger(self) -> str: ...
    @property
    def sources(self) -> tuple[Any, ...]: ...
    @property
    def dest(self) -> Any: ...
    @property
    def clause(self) -> str: ...


class _Model:
    state: str


class StageMachine:
    """Stage bookkeeping for one core: validates every transition against the table."""

    def __init__(
        self, stages: Iterable[enum.Enum], table: Sequence[TransitionRow], initial: enum.Enum
    ) -> None:
        self._stage_type = type(initial)
        self._stage: Any = initial
        self._model = _Model()
        self._table = tuple(table)
        self._machine = Machine(
            model=self._model,
            states=[s.value for s in stages],
            transitions=[
                {"trigger": row.trigger, "source": [s.value for s in row.sources], "dest": row.dest.value}
                for row in self._table
            ],
            initial=initial.value,
            auto_transitions=False,
            queued=True,
            ignore_invalid_triggers=False,
        )

    @property
    def stage(self) -> Any:
        return self._stage

    def can(self, trigger: str) -> bool:
        event = self._machine.events.get(trigger)
        return event is not None and self._model.state in event.transitions

    def fire(self, trigger: str) -> Any:
        """Apply ``trigger``; an invalid one is a bug in the core (LocalProtocolError)."""
        try:
            self._machine.events[trigger].trigger(self._model)
        except (MachineError, KeyError) as err:
            raise LocalProtocolError(
                f"transition {trigger!r} is not allowed from {self._model.state!r}"
            ) from err
        self._stage = self._stage_type(self._model.state)
        return self._stage


def mermaid(table: Sequence[TransitionRow], initial: enum.Enum, final: enum.Enum | None = None) -> str:
    """A Mermaid state diagram of a transition table, each edge labelled with trigger and clause."""
    lines = ["stateDiagram-v2", f"    [*] --> {initial.value}"]
    for row in table:
        for src in row.sources:
            lines.append(f"    {src.value} --> {row.dest.value}: {row.trigger} ({row.clause})")
    if final is not None:
        lines.append(f"    {final.value} --> [*]")
    return "\n".join(lines) + "\n"
