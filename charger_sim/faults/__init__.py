"""Declarative fault injection: one catalogue for every protocol (see :mod:`.catalogue`)."""

from .catalogue import FAULTS, FaultKind, describe_catalogue, validate
from .engine import FaultEngine

__all__ = ["FAULTS", "FaultEngine", "FaultKind", "describe_catalogue", "validate"]
