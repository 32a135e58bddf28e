"""The charger's four bridge frames (``dbc/ccs.dbc``), encoded from the charger core's state."""

from __future__ import annotations

from typing import Protocol

from ...codec import Codec
from ...frames import Frame
from .bridge import (
    Bool2,
    EvseStatusCode,
    IsolationStatus,
    Notification,
    Processing,
    ResponseCode,
    or_sna,
)
from .bridge import Protocol as AppProtocol
from .electrical import OPEN_OHM
from .evse import CcsChargerConfig, Evse
from .states import NUMBER, Stage


class Answering(Protocol):
    """What the frames show of a charger core."""

    config: CcsChargerConfig
    evse: Evse
    stage: Stage
    protocol: AppProtocol
    response: ResponseCode
    processing: Processing
    status_code: EvseStatusCode
    notification: Notification
    isolation: IsolationStatus
    counter: int

    def target_current(self) -> float | None: ...


class ChargerFrames:
    """EvseStatus, EvseMaxLimits, EvseMinLimits, EvsePresentValues: one cycle's frames, in that order."""

    def __init__(self, codec: Codec, config: CcsChargerConfig) -> None:
        self._status = codec.message("EvseStatus")
        self._present = codec.message("EvsePresentValues")
        self.limits = self._limit_frames(codec, config)  # constant: encoded (and range-checked) once

    @staticmethod
    def _limit_frames(codec: Codec, cfg: CcsChargerConfig) -> tuple[Frame, Frame]:
        """The ChargeParameterDiscoveryRes / CurrentDemandRes limits (configuration constants)."""
        maxima, minima = codec.message("EvseMaxLimits"), codec.message("EvseMinLimits")
        return (
            maxima.frame(
                {
                    "EvseMaxVoltage": cfg.max_voltage,
                    "EvseMaxCurrent": cfg.max_current,
                    "EvseMaxPower": cfg.max_power / 1000.0,
                    "EvseEnergyToBeDelivered": or_sna(
                        maxima, "EvseEnergyToBeDelivered", cfg.energy_to_deliver_kwh
                    ),
                }
            ),
            minima.frame(
                {
                    "EvseMinVoltage": cfg.min_voltage,
                    "EvseMinCurrent": cfg.min_current,
                    "EvseCurrentRegulationTolerance": or_sna(
                        minima, "EvseCurrentRegulationTolerance", cfg.current_regulation_tolerance
                    ),
                    "EvsePeakCurrentRipple": cfg.peak_current_ripple,
                }
            ),
        )

    def build(self, c: Answering, now: float) -> list[Frame]:
        cfg, evse = c.config, c.evse
        pp = evse.pp_ohm
        in_loop = c.stage is Stage.CURRENT_DEMAND
        target_i = (c.target_current() or 0.0) if in_loop else 0.0
        volts, amps = evse.inlet_voltage(), evse.harness.output_current
        present = self._present
        return [
            self._status.frame(
                {
                    "EvseStage": NUMBER[c.stage],
                    "EvseProtocol": int(c.protocol),
                    "EvseResponseCode": int(c.response),
                    "CpState": int(evse.pilot.state),
                    "CpDiodePresent": int(Bool2.of(evse.pilot.diode_ok)),
                    "CpDuty": evse.duty,
                    "PpResistance": OPEN_OHM if pp >= OPEN_OHM else round(pp),
                    "PpCode": int(evse.pp_code),
                    "EvseIsolationStatus": int(c.isolation),
                    "EvseStatusCode": int(c.status_code),
                    "EvseNotification": int(c.notification),
                    "EvseProcessing": int(c.processing),
                    "EvseAliveCounter": c.counter,
                },
                now,
            ),
            *(Frame(f.arbitration_id, f.data, f.is_extended_id, now) for f in self.limits),
            present.frame(
                {
                    "EvsePresentVoltage": or_sna(present, "EvsePresentVoltage", volts),
                    "EvsePresentCurrent": or_sna(present, "EvsePresentCurrent", amps),
                    "EvsePresentPower": or_sna(present, "EvsePresentPower", volts * amps / 1000.0),
                    # DIN sends the three flags in CurrentDemandRes only: SNA elsewhere
                    "EvseCurrentLimitAchieved": int(
                        Bool2.of(target_i > cfg.max_current if in_loop else None)
                    ),
                    "EvseVoltageLimitAchieved": int(
                        Bool2.of(volts >= cfg.max_voltage - 0.5 if in_loop else None)
                    ),
                    "EvsePowerLimitAchieved": int(
                        Bool2.of(target_i * volts > cfg.max_power if in_loop else None)
                    ),
                    "EvseNotificationMaxDelay": cfg.notification_max_delay,
                },
                now,
            ),
        ]
