"""A small known fleet for report tests: two clusters in different grid zones, three phases of one project,
a second project, a job missing from the ledger, and hourly intensity with a daily shape and two missing hours.

Everything is written as the exporter's own counters (per-job and idle series, 5-minute samples) and then
built by the real model, so a report over it exercises the production path. `truth()` recomputes every
expected number from the generator's parameters alone (no SQL), so report tests compare against it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline import db
from pipeline.model import rebuild
from pipeline.settings import load_settings

from .modelkit import add_series

T0 = datetime(2024, 3, 1, tzinfo=UTC)
STEP_MIN = 5
END_MIN = 3 * 24 * 60
A100 = "NVIDIA A100-SXM4-80GB"
H100 = "NVIDIA H100 80GB HBM3"

CONFIG = """\
clusters:
  jean-zay:
    provider: onprem
    region: fr-idf
    zone: FR
    pue: 1.2
    nodes: ["jz*"]
  aws-usw2:
    provider: aws
    region: us-west-2
    zone: aws:us-west-2
    pue: 1.1
    nodes: ["ip-*"]
default_cluster: jean-zay
"""

CLUSTER = {"jz1": "jean-zay", "jz2": "jean-zay", "ip-10-0-0-1": "aws-usw2"}
GPUS = {"jz1": (A100, 2), "jz2": (A100, 2), "ip-10-0-0-1": (H100, 4)}
IDLE_W = {"jean-zay": 60.0, "aws-usw2": 110.0}
ZONE = {"jean-zay": "FR", "aws-usw2": "aws:us-west-2"}
PUE = {"jean-zay": 1.2, "aws-usw2": 1.1}
MISSING_HOURS = {"aws:us-west-2": (30, 31)}


@dataclass(frozen=True)
class Job:
    job_id: str
    project: str | None          # None: not in the ledger
    phase: str
    start_min: int
    end_min: int
    watts: float
    gpus: tuple[tuple[str, int], ...]   # (node, gpu index)

    @property
    def cluster(self) -> str:
        return CLUSTER[self.gpus[0][0]]


JOBS = (
    Job("e1", "idefics", "experimentation", 60, 1500, 300.0, (("jz1", 0), ("jz1", 1))),
    Job("e2", "idefics", "experimentation", 200, 900, 300.0, (("jz2", 0),)),
    Job("p1", "idefics", "pretraining", 120, 3000, 650.0, tuple(("ip-10-0-0-1", g) for g in range(4))),
    Job("f1", "idefics", "finetuning", 3000, 3900, 450.0, (("jz1", 0), ("jz1", 1), ("jz2", 0), ("jz2", 1))),
    Job("f2", "idefics", "finetuning", 3100, 4000, 500.0, (("ip-10-0-0-1", 0), ("ip-10-0-0-1", 1))),
    Job("b1", "bloom-mini", "pretraining", 600, 2400, 550.0, (("jz2", 1),)),
    Job("x9", None, "unclassified", 3200, 3500, 400.0, (("ip-10-0-0-1", 3),)),
)


def intensity(zone: str, hour: int) -> float:
    """A daily shape: FR low with a morning/evening rise, us-west-2 higher with a solar dip."""
    h = hour % 24
    if zone == "FR":
        return 45.0 + 20.0 * math.sin(2 * math.pi * (h - 6) / 24)
    return 300.0 - 70.0 * math.sin(2 * math.pi * (h - 14) / 24) * (1 if 8 <= h <= 20 else 0.3)


def resolved_intensity(zone: str, hour: int) -> tuple[float, str]:
    """What the model's fallback chain should pick: the hour, else the nearest within 3 h (earlier on a tie)."""
    missing = MISSING_HOURS.get(zone, ())
    if hour not in missing:
        return intensity(zone, hour), "hourly"
    for d in (1, 2, 3):
        for cand in (hour - d, hour + d):
            if cand not in missing and 0 <= cand < END_MIN // 60:
                return intensity(zone, cand), "nearest_hour"
    raise AssertionError("no neighbour")


def _holder(node: str, gpu: int, minute: int) -> Job | None:
    """The job on a GPU during [minute, minute + STEP_MIN)."""
    return next((j for j in JOBS if (node, gpu) in j.gpus and j.start_min <= minute < j.end_min), None)


def build(tmp: Path) -> tuple[Path, Path]:
    """Write the config and a built DuckDB under tmp; returns (db path, config path)."""
    cfg = tmp / "wattprint.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    path = tmp / "fleet.duckdb"
    con = db.connect(path)
    for node, (model, n) in GPUS.items():
        for g in range(n):
            labels = {"cluster": CLUSTER[node], "hostname": node, "gpu": str(g), "uuid": f"GPU-{node}-{g}",
                      "model": model}
            idle, points = 0.0, [(0.0, 0.0)]
            for m in range(0, END_MIN, STEP_MIN):
                if _holder(node, g, m) is None:
                    idle += IDLE_W[CLUSTER[node]] * STEP_MIN * 60
                points.append((m + STEP_MIN, idle))
            add_series(con, "wattprint", "idle_energy", labels, points)
    for j in JOBS:
        for node, g in j.gpus:
            labels = {"cluster": CLUSTER[node], "hostname": node, "gpu": str(g), "uuid": f"GPU-{node}-{g}",
                      "model": GPUS[node][0], "job_id": j.job_id}
            pts = [(float(m), (m - j.start_min) * 60 * j.watts) for m in range(j.start_min, j.end_min + 1, STEP_MIN)]
            add_series(con, "wattprint", "job_energy", labels, pts)
        if j.project is not None:
            con.execute("INSERT INTO jobs (cluster, job_id, project, phase, user_name, start_ts, end_ts, source,"
                        " origin) VALUES (?, ?, ?, ?, 'alice', ?, ?, 'test', 'reportkit')",
                        [j.cluster, j.job_id, j.project, j.phase, T0 + timedelta(minutes=j.start_min),
                         T0 + timedelta(minutes=j.end_min)])
            per_node: dict[str, int] = defaultdict(int)
            for node, _ in j.gpus:
                per_node[node] += 1
            for node, n in per_node.items():
                con.execute("INSERT INTO job_nodes VALUES (?, ?, ?, ?)", [j.cluster, j.job_id, node, n])
    for zone in ("FR", "aws:us-west-2"):
        con.executemany(
            "INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin)"
            " VALUES (?, ?, ?, 'lifecycle', 'test', false, 3600, 'reportkit')",
            [[zone, T0 + timedelta(hours=h), intensity(zone, h)] for h in range(END_MIN // 60)
             if h not in MISSING_HOURS.get(zone, ())])
    settings = load_settings(str(cfg))
    with db.transaction(con):
        rebuild(con, settings.build_settings())
    con.close()
    return path, cfg


@dataclass
class Truth:
    energy_j: dict[tuple[str | None, str], float]        # (project, phase) -> joules of its jobs
    gpu_g: dict[tuple[str | None, str], float]
    idle_j: dict[tuple[str | None, str], float]          # pro-rata share
    idle_g: dict[tuple[str | None, str], float]
    pue_g: dict[tuple[str | None, str], float]           # (PUE - 1) x (gpu + idle share), grams
    gpu_s: dict[tuple[str | None, str], float]
    fleet_j: float
    unapportioned_idle_j: float
    not_in_ledger_j: float


def truth() -> Truth:
    """Every expected figure, from the parameters above, hour by hour."""
    job_j: dict[tuple[str, int, str], float] = defaultdict(float)      # (cluster, hour, job) -> J
    job_s: dict[tuple[str, int, str], float] = defaultdict(float)
    idle: dict[tuple[str, int], float] = defaultdict(float)
    for node, (_, n) in GPUS.items():
        c = CLUSTER[node]
        for g in range(n):
            for m in range(0, END_MIN, STEP_MIN):
                h = m // 60
                j = _holder(node, g, m)
                if j is None:
                    idle[(c, h)] += IDLE_W[c] * STEP_MIN * 60
                else:
                    job_j[(c, h, j.job_id)] += j.watts * STEP_MIN * 60
                    job_s[(c, h, j.job_id)] += STEP_MIN * 60
    by_id = {j.job_id: j for j in JOBS}
    out = Truth(defaultdict(float), defaultdict(float), defaultdict(float), defaultdict(float), defaultdict(float),
                defaultdict(float), 0.0, 0.0, 0.0)
    hour_s: dict[tuple[str, int], float] = defaultdict(float)
    for (c, h, _), s in job_s.items():
        hour_s[(c, h)] += s
    for (c, h, jid), e in job_j.items():
        j = by_id[jid]
        key = (j.project, j.phase)
        i, _ = resolved_intensity(ZONE[c], h)
        share = idle.get((c, h), 0.0) * job_s[(c, h, jid)] / hour_s[(c, h)]
        out.energy_j[key] += e
        out.gpu_g[key] += e / 3.6e6 * i
        out.idle_j[key] += share
        out.idle_g[key] += share / 3.6e6 * i
        out.pue_g[key] += (PUE[c] - 1) * (e + share) / 3.6e6 * i
        out.gpu_s[key] += job_s[(c, h, jid)]
        if j.project is None:
            out.not_in_ledger_j += e
    out.fleet_j = sum(job_j.values()) + sum(idle.values())
    out.unapportioned_idle_j = sum(v for k, v in idle.items() if hour_s.get(k, 0.0) == 0)
    return out
