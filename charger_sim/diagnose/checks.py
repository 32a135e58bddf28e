"""Protocol deviations a capture shows: periods, DLCs, byte order, BCD, value ranges, timing limits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import pairwise
from statistics import median

from ..codec import MessageCodec
from ..protocols.chademo import timing as CT
from ..protocols.gbt.timing import LIMITS as GBT_LIMITS
from .capture import Capture, Record
from .chademo_tables import CHARGING, status_of
from .model import CHARGER, VEHICLE, Deviation, SessionVerdict

PERIOD_TOLERANCE = 0.10  # §2 / §7 T10: 100 ms +-10 ms; applied to every cyclic message
MIN_INTERVALS = 10
GAP_S = 1.0  # intervals longer than this are gaps (the message paused), not its period
LIMIT_SLACK = 0.10  # a stage over its limit by more than this share is reported


def dlc_deviations(capture: Capture) -> list[Deviation]:
    seen: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for rec in capture.records:
        if rec.message is not None and rec.tp is None and rec.dlc != rec.message.length:
            seen[(rec.message.name, rec.dlc)].append(rec)
    out = []
    for (name, dlc), recs in seen.items():
        mc = recs[0].message
        assert mc is not None
        note = ""
        if capture.protocol == "gbt" and name == "CCS" and dlc == 7:
            note = " (every real charger does this; tolerated, fact sheet §10)"
        out.append(
            Deviation(
                "dlc",
                f"{name} (0x{mc.frame_id & 0x1FFFFFFF:X}) sent with DLC {dlc} in "
                f"{len(recs)} frame(s); the DBC says {mc.length}{note}",
                recs[0].time,
                recs[0].side,
            )
        )
    return out


def _expected_period(capture: Capture, rec: Record) -> float | None:
    if capture.protocol == "chademo":
        return CT.limit("cycle")
    mc = rec.message
    if mc is None or not mc.cycle_time:
        return None
    return mc.cycle_time / 1000.0


def period_deviations(capture: Capture) -> list[Deviation]:
    if capture.timestamps != "good":
        return []
    last: dict[str, float] = {}
    intervals: dict[str, list[float]] = defaultdict(list)
    first: dict[str, Record] = {}
    for rec in capture.records:
        if rec.message is None and not rec.raw_name:
            continue
        key = rec.name or rec.id_text()
        first.setdefault(key, rec)
        if key in last and 0 < rec.time - last[key] <= GAP_S:
            intervals[key].append(rec.time - last[key])
        last[key] = rec.time
    groups: dict[tuple[str | None, int, int], list[str]] = defaultdict(list)
    for key, values in intervals.items():
        rec = first[key]
        need = MIN_INTERVALS if capture.protocol == "chademo" else 3
        expected = _expected_period(capture, rec)
        if expected is None or len(values) < need:
            continue
        m = median(values)
        if abs(m - expected) > PERIOD_TOLERANCE * expected + 1e-4:
            groups[(rec.side, round(m * 1000), round(expected * 1000))].append(
                f"{key} (0x{rec.arbitration_id:X})" if capture.protocol == "chademo" else key
            )
    out = []
    for (side, got, want), names in groups.items():
        out.append(
            Deviation(
                "period",
                f"{', '.join(names)} ({side}): period {got} ms, expected {want} ms +-{PERIOD_TOLERANCE:.0%}",
                None,
                side,
            )
        )
    return out


def _swapped_hint(mc: MessageCodec, name: str, raw_le: int) -> str:
    """A 16-bit voltage read little-endian out of range may be big-endian at 0.01 V/bit (§10)."""
    spec = mc.signal(name)
    if spec.length != 16 or spec.unit != "V":
        return ""
    swapped = ((raw_le & 0xFF) << 8) | (raw_le >> 8)
    volts = swapped * 0.01
    hi = spec.maximum if spec.maximum is not None else 1000.0
    if 1.0 <= volts <= hi:
        return f"; the bytes read big-endian at 0.01 V/bit give {volts:.2f} V (a broken-DBC encoder)"
    return ""


def range_deviations(capture: Capture) -> list[Deviation]:
    found: dict[tuple[str, str], tuple[Record, float, int]] = {}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for rec in capture.records:
        mc = rec.message
        if mc is None:
            continue
        word = int.from_bytes(rec.data[: mc.length], "little")
        for spec in mc.signals:
            value = rec.values.get(spec.name)
            if value is None:
                continue
            low = spec.minimum is not None and value < spec.minimum - 1e-9
            high = spec.maximum is not None and value > spec.maximum + 1e-9
            if low or high:
                key = (mc.name, spec.name)
                counts[key] += 1
                found.setdefault(key, (rec, float(value), (word >> spec.start) & spec.mask))
    out = []
    for (msg, sig), (rec, value, raw) in found.items():
        mc = rec.message
        assert mc is not None
        spec = mc.signal(sig)
        hint = _swapped_hint(mc, sig, raw)
        kind = "byte_order" if hint else "range"
        out.append(
            Deviation(
                kind,
                f"{msg}.{sig} = {value:g} {spec.unit} is outside the DBC range "
                f"[{spec.minimum:g}, {spec.maximum:g}] in {counts[(msg, sig)]} frame(s){hint}",
                rec.time,
                rec.side,
            )
        )
    return out


def limit_deviations(sessions: Sequence[SessionVerdict], timestamps: str) -> list[Deviation]:
    """Stages that outlasted their limit without the charger stopping for it (a lenient charger)."""
    if timestamps == "none":
        return []
    out = []
    for s in sessions:
        for i, span in enumerate(s.stages):
            d = span.duration
            if (
                d is None
                or span.limit_s is None
                or span.start is None
                or d <= span.limit_s * (1 + LIMIT_SLACK)
            ):
                continue
            if span.limit == "stop_current":
                continue  # measured on the output current instead (T6)
            nxt = s.stages[i + 1].stage if i + 1 < len(s.stages) else ""
            ended_by_limit = nxt == "stopping" and span.stage == s.stage and s.outcome == "failed"
            what = f"{span.stage} lasted {d:.2f} s; the limit is {span.limit_s:g} s ({span.limit})"
            if ended_by_limit:
                what += ": the charger gave up only then"
            elif span.end is None or i + 1 == len(s.stages):
                continue
            out.append(Deviation("timing", what, span.start, CHARGER))
    return out


# ------------------------------------------------------------------------------------- CHAdeMO


def chademo_deviations(capture: Capture, sessions: Sequence[SessionVerdict]) -> list[Deviation]:
    out: list[Deviation] = []
    recs = capture.records
    requested = seen_102 = False
    flagged_05 = False
    v2h_frames = any(r.arbitration_id in (0x208, 0x209) and not r.extended for r in recs)
    discharge_flag: Record | None = None
    proto_ev: set[int] = set()
    target_over: Record | None = None
    v100: dict[str, float] = {}
    for rec in recs:
        name = rec.name
        if name == "VehicleChargeLimits":
            v100 = {k: float(v) for k, v in rec.values.items()}
        elif name == "VehicleChargeControl":
            seen_102 = True
            proto_ev.add(int(rec.values.get("ProtocolNumberEV", 0)))
            if int(rec.values.get("ChargeCurrentRequest", 0)) > 0:
                requested = True
            target = float(rec.values.get("TargetBatteryVoltage", 0))
            vmax = v100.get("MaxBatteryVoltage", 0.0)
            if target and vmax and target > vmax and target_over is None:
                target_over = rec
        elif name == "ChargerStatus":
            st = status_of(rec.values)
            if st & CHARGING and seen_102 and not requested and not flagged_05:
                flagged_05 = True
                out.append(
                    Deviation(
                        "sequence",
                        f"charger status 0x{st:02X}: 109.5.0 (charging) set before any "
                        "current request (102.3 = 0)",
                        rec.time,
                        CHARGER,
                    )
                )
            if rec.values.get("DischargeCompatible") and discharge_flag is None:
                discharge_flag = rec
    if discharge_flag is not None and not v2h_frames:
        out.append(
            Deviation(
                "sequence",
                "109.4 = 1 (discharge compatible) but the charger never sends 0x208/0x209",
                discharge_flag.time,
                CHARGER,
            )
        )
    if target_over is not None:
        out.append(
            Deviation(
                "range",
                f"vehicle target voltage {target_over.values.get('TargetBatteryVoltage')} V "
                f"above its own maximum {v100.get('MaxBatteryVoltage', 0):g} V (0x100)",
                target_over.time,
                VEHICLE,
            )
        )
    if len(proto_ev) > 1:
        out.append(
            Deviation(
                "sequence", f"vehicle protocol number changes: {sorted(proto_ev)} in 102.0", None, VEHICLE
            )
        )
    out += _chademo_timers(capture, sessions)
    return out


def _chademo_timers(capture: Capture, sessions: Sequence[SessionVerdict]) -> list[Deviation]:
    """T5 (charging flag after the first request) and T6 (current <= 5 A after a stop)."""
    if capture.timestamps == "none":
        return []
    out = []
    for s in sessions:
        first_request: float | None = None
        for rec in capture.records:
            if not s.start <= rec.time <= s.end:
                continue
            if rec.name == "VehicleChargeControl" and int(rec.values.get("ChargeCurrentRequest", 0)) > 0:
                first_request = rec.time
                break
        charging = next((x for x in s.stages if x.stage == "charging"), None)
        if (
            first_request is not None
            and charging is not None
            and charging.start is not None
            and not s.starts_mid_session
        ):
            delay = charging.start - first_request
            if delay > CT.limit("charging_flag") + 1e-3:
                out.append(
                    Deviation(
                        "timing",
                        f"109.5.0 set {delay:.2f} s after the first current request; "
                        f"the limit is {CT.limit('charging_flag'):g} s (T5)",
                        charging.start,
                        CHARGER,
                    )
                )
        stopping = next((x for x in s.stages if x.stage == "stopping"), None)
        if stopping is not None and stopping.start is not None and s.charged:
            low = next(
                (
                    r.time
                    for r in capture.records
                    if r.name == "ChargerStatus"
                    and r.time >= stopping.start
                    and float(r.values.get("PresentOutputCurrent", 0)) <= CT.STOP_CURRENT_A
                ),
                None,
            )
            if low is not None and low - stopping.start > CT.limit("stop_current") + 1e-3:
                out.append(
                    Deviation(
                        "timing",
                        f"output current reached <= 5 A {low - stopping.start:.2f} s "
                        f"after the stop; the limit is {CT.limit('stop_current'):g} s "
                        "(T6)",
                        stopping.start,
                        CHARGER,
                    )
                )
    return out


# ------------------------------------------------------------------------------------- GB/T


def _bcd_ok(byte: int) -> bool:
    return (byte >> 4) <= 9 and (byte & 0xF) <= 9


def _bcd(byte: int) -> int:
    return (byte >> 4) * 10 + (byte & 0xF)


def _cts_date_problem(data: bytes) -> str:
    """What is wrong with a BCD-valid CTS (sec, min, hour, day, month, year LE); "" when plausible."""
    if len(data) < 7:
        return "too short"
    sec, minute, hour, day, month = (_bcd(b) for b in data[:5])
    year = _bcd(data[6]) * 100 + _bcd(data[5])
    problems = [
        what
        for what, bad in (
            (f"second {sec}", sec > 59),
            (f"minute {minute}", minute > 59),
            (f"hour {hour}", hour > 23),
            (f"day {day}", not 1 <= day <= 31),
            (f"month {month}", not 1 <= month <= 12),
            (f"year {year}", not 2000 <= year <= 2099),
        )
        if bad
    ]
    return ", ".join(problems)


def gbt_deviations(capture: Capture, sessions: Sequence[SessionVerdict]) -> list[Deviation]:
    out: list[Deviation] = []
    flagged: set[str] = set()
    for rec in capture.records:
        name = rec.name
        if name in flagged:
            continue
        if name == "CTS" and rec.data != b"\xff" * len(rec.data):
            bad = [f"{b:02X}" for b in rec.data if b != 0xFF and not _bcd_ok(b)]
            date = _cts_date_problem(rec.data) if not bad else ""
            if date:
                flagged.add(name)
                out.append(
                    Deviation(
                        "bcd",
                        f"CTS {rec.data.hex(' ').upper()} is BCD but not a valid time "
                        f"({date}); never rely on CTS",
                        rec.time,
                        CHARGER,
                    )
                )
            if bad:
                flagged.add(name)
                out.append(
                    Deviation(
                        "bcd",
                        f"CTS {rec.data.hex(' ').upper()} is not packed BCD "
                        f"({', '.join(bad)}); never rely on CTS",
                        rec.time,
                        CHARGER,
                    )
                )
        elif name == "CML":
            v = rec.values
            lo_i, hi_i = abs(float(v.get("MinOutputCurrent", 0))), abs(float(v.get("MaxOutputCurrent", 0)))
            lo_v, hi_v = float(v.get("MinOutputVoltage", 0)), float(v.get("MaxOutputVoltage", 0))
            if lo_i > hi_i or lo_v > hi_v:
                flagged.add(name)
                out.append(
                    Deviation(
                        "range",
                        f"CML {rec.data.hex(' ').upper()}: minimum above maximum "
                        f"({lo_v:g}-{hi_v:g} V, {lo_i:g}-{hi_i:g} A charge)",
                        rec.time,
                        CHARGER,
                    )
                )
        elif (
            name == "BRM"
            and rec.values.get("ProductionYear", 0)
            and float(rec.values["ProductionYear"]) > 2035
            and float(rec.values["ProductionYear"]) < 2240
        ):
            flagged.add(name)
            out.append(
                Deviation(
                    "range",
                    f"BRM pack production year {rec.values['ProductionYear']} is implausible",
                    rec.time,
                    VEHICLE,
                )
            )
        elif name in ("BST", "BSM") and rec.dlc >= 4:
            reserved = (rec.data[3] >> 4) if name == "BST" else (rec.data[6] >> 6) if rec.dlc >= 7 else 3
            want = 0xF if name == "BST" else 0x3
            if reserved != want:
                flagged.add(name)
                out.append(
                    Deviation(
                        "range",
                        f"{name} reserved bits sent as 0 instead of 1 ({rec.data.hex(' ').upper()})",
                        rec.time,
                        VEHICLE,
                    )
                )
    for p in capture.tp_problems:
        if p.kind != "no_cts":
            out.append(
                Deviation("transport", f"TP PGN 0x{p.pgn:04X} from 0x{p.source:02X}: {p.text}", p.time)
            )
    no_cts: dict[int, list[float]] = defaultdict(list)
    for p in capture.tp_problems:
        if p.kind == "no_cts":
            no_cts[p.pgn].append(p.time)
    for pgn, times in no_cts.items():
        out.append(
            Deviation(
                "transport",
                f"RTS for PGN 0x{pgn:04X} never answered with a CTS ({len(times)} time(s))",
                times[0],
                CHARGER,
            )
        )
    out += _gbt_gaps(capture)
    return out


def _gbt_gaps(capture: Capture) -> list[Deviation]:
    if capture.timestamps != "good":
        return []
    out = []
    for name, limit_name in (("BCL", "bcl"), ("CCS", "bms_ccs"), ("BCS", "bcs")):
        times = [r.time for r in capture.records if r.name == name]
        worst = max((b - a for a, b in pairwise(times)), default=0.0)
        lim = GBT_LIMITS[limit_name].seconds
        if worst > lim:
            out.append(
                Deviation("timing", f"{name} paused {worst:.2f} s; the limit is {lim:g} s ({limit_name})")
            )
    return out
