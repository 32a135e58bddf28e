"""Locating the shipped data: ``dbc/`` and ``scenarios/``.

In a wheel they live in ``charger_sim/_data/`` (hatchling force-include); in a checkout or an
editable install they are the top-level folders beside the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the shipped folder ``name`` (``"dbc"`` or ``"scenarios"``)."""
    installed = _PACKAGE_DIR / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _PACKAGE_DIR.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"charger-sim data folder {name!r} not found (looked in {installed} and {checkout})"
    )


def dbc_dir() -> Path:
    return data_dir("dbc")


def scenarios_dir() -> Path:
    return data_dir("scenarios")
