"""The demo's marginal signal: a WattTime-style co2_moer series for the month, so the demo's reports show the marginal
(consequential) section beside the location-based headline (report/marginal.py).

Synthetic, deterministic for a seed (its own random stream: the rest of the demo does not move), in the shape of a
WattTime v3 `/v3/historical` response: 5-minute points in lbs CO2/MWh (`meta.units` lbs_co2_per_mwh, signal_type
co2_moer), read by the real `watttime-json` parser and stored through the real import path, for the zone of the
us-west-2 cluster (the demo imports it with `--zone`, as an operator maps a WattTime region onto a cluster's zone).

The values are illustrative, not WattTime's data: a grid whose margin is mostly gas plants, 800-1,000 lbs/MWh
(about 360-450 g/kWh), higher at the evening ramp and lower when midday solar is on the margin, with weather noise;
so the marginal rate sits above the zone's average intensity (intensity.csv: about 240-330 g/kWh), as it usually
does on a grid with low-carbon baseload. The feed has an outage (a day and a half, starting and ending inside an hour),
so the reports show partial coverage, partly covered hours included, and a few points are flagged imputed
(WattTime's `imputed_data_used`), which the store keeps as estimated.
"""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta

from .demo_fleet import CLUSTER, T0, T1

ZONE = CLUSTER["aws-usw2"].zone                      # aws:us-west-2
REGION = "BPA"                                        # a WattTime-style region name, mapped onto ZONE on import
PERIOD_S = 300
LB_PER_MWH = "lbs_co2_per_mwh"
OUTAGE = (datetime(2026, 10, 13, 7, 40, tzinfo=T0.tzinfo), datetime(2026, 10, 14, 19, 20, tzinfo=T0.tzinfo))


def _bump(h: float, centre: float, width: float) -> float:
    d = min(abs(h - centre), 24 - abs(h - centre))
    return math.exp(-((d / width) ** 2))


def moer_points(seed: int = 0) -> list[tuple[datetime, float, bool]]:
    """(point time, lbs CO2/MWh, imputed) every 5 minutes of the month, outside the outage."""
    rng = random.Random(f"wattprint-demo:{seed}:moer")
    utc_offset = CLUSTER["aws-usw2"].utc_offset
    out: list[tuple[datetime, float, bool]] = []
    weather = 0.0
    t = T0
    while t < T1:
        local = t + timedelta(hours=utc_offset(t))
        lh = local.hour + local.minute / 60
        weather = 0.995 * weather + 35.0 * math.sqrt(1 - 0.995 ** 2) * rng.gauss(0.0, 1.0)
        v = 900 + 110 * _bump(lh, 19.5, 2.0) - 140 * _bump(lh, 13.0, 2.5) + weather + rng.uniform(-8.0, 8.0)
        imputed = rng.random() < 0.01
        if not OUTAGE[0] <= t < OUTAGE[1]:
            out.append((t, round(min(1300.0, max(600.0, v)), 1), imputed))
        t += timedelta(seconds=PERIOD_S)
    return out


def watttime_json(seed: int = 0) -> str:
    """The series as a WattTime v3 historical response (one JSON object)."""
    data = []
    for t, v, imputed in moer_points(seed):
        rec: dict[str, object] = {"point_time": t.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "value": v}
        if imputed:
            rec["imputed_data_used"] = True
        data.append(rec)
    meta = {"region": REGION, "signal_type": "co2_moer", "units": LB_PER_MWH, "data_point_period_seconds": PERIOD_S,
            "model": {"date": "2026-01-01", "type": "synthetic (wattprint demo)"}}
    return json.dumps({"data": data, "meta": meta}, separators=(",", ":")) + "\n"
