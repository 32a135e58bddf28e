"""charger-sim: plays the charger side of the EV DC-charging handshake over CAN."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("charger-sim")
except PackageNotFoundError:  # running from a checkout without installation
    __version__ = "0.0.0+checkout"

__all__ = ["__version__"]
