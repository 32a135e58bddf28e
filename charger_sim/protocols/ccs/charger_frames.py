"""The charger's four bridge frames (``dbc/ccs.dbc``), encoded from the charger core's state."""

from __future__ import annotations

import math
from typing import Protocol

from ...codec import Codec
from ...frames import Frame
from .bridge import (
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
        self._limit_codecs = (codec.message("EvseMaxLimits"), codec.message("EvseMinLimits"))
        # compiled frame builders (generated from the DBC): now + every signal, positionally
        self._status_frame = self._status.framer(
            "EvseStage", "EvseProtocol", "EvseResponseCode", "CpState", "CpDiodePresent", "CpDuty",
            "PpResistance", "PpCode", "EvseIsolationStatus", "EvseStatusCode", "EvseNotification",
            "EvseProcessing", "EvseAliveCounter",
        )
        self._present_frame = self._present.framer(
            "EvsePresentVoltage", "EvsePresentCurrent", "EvsePresentPower", "EvseCurrentLimitAchieved",
            "EvseVoltageLimitAchieved", "EvsePowerLimitAchieved", "EvseNotificationMaxDelay",
        )
        present = self._present  # the largest value below SNA of the three measured values (or_sna)
        self._present_tops = tuple(
            float(or_sna(present, name, math.inf))
            for name in ("EvsePresentVoltage", "EvsePresentCurrent", "EvsePresentPower")
        )

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
        pilot = evse.pilot
        diode = pilot.diode_ok
        v_top, i_top, p_top = self._present_tops
        power = volts * amps / 1000.0
        limits = self._limit_codecs
        # every signal positionally, through the compiled builders (or_sna below SNA is
        # min(max(value, 0.0), top); Bool2.of is SNA 3 for None, else TRUE 1 / FALSE 0)
        return [
            self._status_frame(
                now,
                NUMBER[c.stage],
                int(c.protocol),
                int(c.response),
                int(pilot.state),
                3 if diode is None else (1 if diode else 0),
                evse.duty,
                OPEN_OHM if pp >= OPEN_OHM else round(pp),
                int(evse.pp_code),
                int(c.isolation),
                int(c.status_code),
                int(c.notification),
                int(c.processing),
                c.counter,
            ),
            *(m.frame_of(f.data, now) for m, f in zip(limits, self.limits, strict=True)),
            self._present_frame(
                now,
                min(max(volts, 0.0), v_top),
                min(max(amps, 0.0), i_top),
                min(max(power, 0.0), p_top),
                (1 if target_i > cfg.max_current else 0) if in_loop else 3,
                (1 if volts >= cfg.max_voltage - 0.5 else 0) if in_loop else 3,
                (1 if target_i * volts > cfg.max_power else 0) if in_loop else 3,
                cfg.notification_max_delay,
            ),
        ]
