"""A small known fleet for report tests: two clusters in different grid zones, three phases of one project,
a second project, a job missing from the ledger, and hourly intensity with a daily shape and two missing hours.
Host energy too: two CPU sockets per node with package and DRAM energy (RAPL), the jobs' own host energy and
CPU time, host idle, a CPU-only job, one node without RAPL (jz2: its jobs have CPU time but no host energy) and
one whose RAPL was unreadable in 3 of its samples (ip-10-0-0-1).

Everything is written as the exporter's own counters (per-job and idle series, 5-minute samples) and then
built by the real model, so a report over it exercises the production path. `truth()` recomputes every
expected number from the generator's parameters alone (no SQL), so report tests compare against it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from wattprint.pipeline import db
from wattprint.pipeline.model import rebuild
from wattprint.pipeline.settings import load_settings

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
# the marginal signal (WattTime-like co2_moer) of the us-west-2 zone: hours 0-47 whole, hour 48 its first half, then
# none, so the reports' marginal section has partial coverage and a partly covered hour (jean-zay's FR has none)
MARGINAL_ZONE, MARGINAL_HOURS = "aws:us-west-2", 48

# host energy: 2 sockets per node, RAPL package and DRAM domains
SOCKETS = ("0", "1")
DOMAINS = ("package", "dram")
CPU_MODEL = {"jz1": "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", "jz2": "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz",
             "ip-10-0-0-1": "Intel(R) Xeon(R) Platinum 8275CL CPU @ 3.00GHz"}
RAPL_NODES = ("jz1", "ip-10-0-0-1")                 # jz2 exports CPU time but no RAPL series at all
RAPL_UNREADABLE = {"ip-10-0-0-1": (1000, 1005, 1010)}   # minutes whose rapl_up sample said 0
HOST_IDLE_W = {"jean-zay": {"package": 40.0, "dram": 5.0}, "aws-usw2": {"package": 55.0, "dram": 8.0}}
SOCKET_SCALE = {"0": 1.0, "1": 0.8}                 # socket 1 draws less (per-socket figures differ)


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


@dataclass(frozen=True)
class CpuUse:
    """A job's use of each node it runs on: CPU time per second (cores) and watts per socket (package, DRAM)."""

    cores: float
    package_w: float
    dram_w: float

    def watts(self, socket: str, domain: str) -> float:
        return (self.package_w if domain == "package" else self.dram_w) * SOCKET_SCALE[socket]


@dataclass(frozen=True)
class CpuJob:
    """A job with no GPU (data preparation): host energy and CPU time only."""

    job_id: str
    project: str | None
    phase: str
    start_min: int
    end_min: int
    nodes: tuple[str, ...]

    @property
    def cluster(self) -> str:
        return CLUSTER[self.nodes[0]]


# minutes each job held all its GPUs while they were idle (the exporter's held-but-idle counters: utilisation under
# its threshold); the job's energy there is its usual draw, so the held-idle energy is that part of its energy
HELD_IDLE = {"e2": (400, 520), "p1": (120, 150)}

CPU_JOBS = (CpuJob("d1", "idefics", "experimentation", 240, 840, ("jz1",)),)
CPU_USE = {"e1": CpuUse(6.0, 30.0, 4.0), "e2": CpuUse(4.0, 20.0, 3.0), "p1": CpuUse(24.0, 70.0, 9.0),
           "f1": CpuUse(10.0, 35.0, 5.0), "f2": CpuUse(12.0, 40.0, 6.0), "b1": CpuUse(3.0, 15.0, 2.0),
           "x9": CpuUse(2.0, 10.0, 1.5), "d1": CpuUse(16.0, 50.0, 7.0)}


def _host_jobs() -> list[tuple[str, str | None, str, int, int, tuple[str, ...]]]:
    """(job_id, project, phase, start, end, nodes) of every job that uses hosts: all of them."""
    out = [(j.job_id, j.project, j.phase, j.start_min, j.end_min, tuple(dict.fromkeys(n for n, _ in j.gpus)))
           for j in JOBS]
    return out + [(j.job_id, j.project, j.phase, j.start_min, j.end_min, j.nodes) for j in CPU_JOBS]


def _on_host(node: str, minute: int) -> list[str]:
    """The jobs running on a node during [minute, minute + STEP_MIN)."""
    return [jid for jid, _, _, s, e, nodes in _host_jobs() if node in nodes and s <= minute < e]


def intensity(zone: str, hour: int) -> float:
    """A daily shape: FR low with a morning/evening rise, us-west-2 higher with a solar dip."""
    h = hour % 24
    if zone == "FR":
        return 45.0 + 20.0 * math.sin(2 * math.pi * (h - 6) / 24)
    return 300.0 - 70.0 * math.sin(2 * math.pi * (h - 14) / 24) * (1 if 8 <= h <= 20 else 0.3)


def marginal(hour: int) -> float:
    """The marginal rate of MARGINAL_ZONE (g/kWh): above its average, highest at the evening ramp."""
    return 420.0 + 60.0 * math.sin(2 * math.pi * (hour % 24 - 14) / 24)


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
            # the GPU's total counter: idle + its jobs, as the exporter's conservation makes it
            total = [(t, e + sum(j.watts * 60 * (min(max(t, j.start_min), j.end_min) - j.start_min)
                                 for j in JOBS if (node, g) in j.gpus)) for t, e in points]
            add_series(con, "wattprint", "gpu_energy", labels, total)
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
    for cj in CPU_JOBS:
        if cj.project is not None:
            con.execute("INSERT INTO jobs (cluster, job_id, project, phase, user_name, start_ts, end_ts, source,"
                        " origin) VALUES (?, ?, ?, ?, 'alice', ?, ?, 'test', 'reportkit')",
                        [cj.cluster, cj.job_id, cj.project, cj.phase, T0 + timedelta(minutes=cj.start_min),
                         T0 + timedelta(minutes=cj.end_min)])
            for node in cj.nodes:
                con.execute("INSERT INTO job_nodes VALUES (?, ?, ?, 0)", [cj.cluster, cj.job_id, node])
    _write_cpu_series(con)
    _write_held_idle_series(con)
    for zone in ("FR", "aws:us-west-2"):
        con.executemany(
            "INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin)"
            " VALUES (?, ?, ?, 'lifecycle', 'test', false, 3600, 'reportkit')",
            [[zone, T0 + timedelta(hours=h), intensity(zone, h)] for h in range(END_MIN // 60)
             if h not in MISSING_HOURS.get(zone, ())])
    con.executemany(
        "INSERT INTO marginal_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin)"
        " VALUES (?, ?, ?, 'marginal', 'watttime', false, ?, 'reportkit')",
        [[MARGINAL_ZONE, T0 + timedelta(hours=h), marginal(h), 3600 if h < MARGINAL_HOURS else 1800]
         for h in range(MARGINAL_HOURS + 1)])
    settings = load_settings(str(cfg))
    with db.transaction(con):
        rebuild(con, settings.build_settings())
    assert con.execute("SELECT count(*) FROM fct_job_cpu_hour").fetchall()[0][0] > 0, "the model derived no host energy"
    con.close()
    return path, cfg


def _write_held_idle_series(con: duckdb.DuckDBPyConnection) -> None:
    """The exporter's held-but-idle energy and time of the jobs in HELD_IDLE, per GPU, at the job's samples."""
    for j in JOBS:
        if j.job_id not in HELD_IDLE:
            continue
        a, b = HELD_IDLE[j.job_id]
        minutes = range(j.start_min, j.end_min + 1, STEP_MIN)
        idle_s = [(float(m), 60.0 * (min(max(m, a), b) - a)) for m in minutes]
        for node, g in j.gpus:
            labels = {"cluster": CLUSTER[node], "hostname": node, "gpu": str(g), "uuid": f"GPU-{node}-{g}",
                      "model": GPUS[node][0], "job_id": j.job_id}
            add_series(con, "wattprint", "job_held_idle_energy", labels, [(m, s * j.watts) for m, s in idle_s])
            add_series(con, "wattprint", "job_held_idle_seconds", labels, idle_s)


def _cpu_series(con: duckdb.DuckDBPyConnection, kind: str, labels: dict[str, str],
                points: list[tuple[float, float]]) -> None:
    """One host series as ingest stores it (as modelkit.add_series, with socket and domain, samples in one go)."""
    fp = kind + "\x1f" + json.dumps(sorted(labels.items()))
    sid = con.execute(
        "INSERT INTO series (series_id, source, kind, query, fingerprint, cluster, hostname, job_id, labels, model,"
        " socket, domain) VALUES (nextval('series_id_seq'), 'wattprint', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING series_id",
        [kind, "q" + kind, fp, labels.get("cluster"), labels.get("hostname"), labels.get("job_id"), json.dumps(labels),
         labels.get("model"), labels.get("socket"), labels.get("domain")]).fetchall()[0][0]
    con.execute("INSERT INTO samples SELECT ?, unnest(?::TIMESTAMPTZ[]), unnest(?::DOUBLE[])",
                [sid, [T0 + timedelta(minutes=m) for m, _ in points], [v for _, v in points]])


def _write_cpu_series(con: duckdb.DuckDBPyConnection) -> None:
    """The exporter's host series: per socket and domain the node's energy and its idle part, per job its energy
    and CPU time, and the RAPL readability gauge; jz2 has only the jobs' CPU time."""
    for node in GPUS:
        c = CLUSTER[node]
        base = {"cluster": c, "hostname": node}
        if node in RAPL_NODES:
            for sock in SOCKETS:
                for dom in DOMAINS:
                    labels = {**base, "socket": sock, "domain": dom, "model": CPU_MODEL[node]}
                    total, idle, tot_pts, idle_pts = 0.0, 0.0, [(0.0, 0.0)], [(0.0, 0.0)]
                    for m in range(0, END_MIN, STEP_MIN):
                        step_idle = HOST_IDLE_W[c][dom] * SOCKET_SCALE[sock] * STEP_MIN * 60
                        idle += step_idle
                        total += step_idle + sum(CPU_USE[j].watts(sock, dom) * STEP_MIN * 60 for j in _on_host(node, m))
                        tot_pts.append((m + STEP_MIN, total))
                        idle_pts.append((m + STEP_MIN, idle))
                    _cpu_series(con, "cpu_energy", labels, tot_pts)
                    _cpu_series(con, "cpu_idle_energy", labels, idle_pts)
            readable = [(float(m), 0.0 if m in RAPL_UNREADABLE.get(node, ()) else 1.0)
                        for m in range(0, END_MIN, STEP_MIN)]
            _cpu_series(con, "cpu_rapl_up", base, readable)
        for jid, _, _, start, end, nodes in _host_jobs():
            if node not in nodes:
                continue
            use = CPU_USE[jid]
            steps = range(start, end + 1, STEP_MIN)
            _cpu_series(con, "job_cpu_seconds", {**base, "job_id": jid},
                        [(float(m), (m - start) * 60 * use.cores) for m in steps])
            if node in RAPL_NODES:
                for sock in SOCKETS:
                    for dom in DOMAINS:
                        labels = {**base, "socket": sock, "domain": dom, "model": CPU_MODEL[node], "job_id": jid}
                        _cpu_series(con, "job_cpu_energy", labels,
                                    [(float(m), (m - start) * 60 * use.watts(sock, dom)) for m in steps])


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
    # host energy, per (project, phase)
    cpu_j: dict[tuple[str | None, str], float] = field(default_factory=lambda: defaultdict(float))
    cpu_pkg_j: dict[tuple[str | None, str], float] = field(default_factory=lambda: defaultdict(float))
    cpu_dram_j: dict[tuple[str | None, str], float] = field(default_factory=lambda: defaultdict(float))
    cpu_g: dict[tuple[str | None, str], float] = field(default_factory=lambda: defaultdict(float))
    cpu_s: dict[tuple[str | None, str], float] = field(default_factory=lambda: defaultdict(float))
    cpu_idle_j: dict[tuple[str | None, str], float] = field(default_factory=lambda: defaultdict(float))
    cpu_idle_g: dict[tuple[str | None, str], float] = field(default_factory=lambda: defaultdict(float))
    pue_cpu_g: dict[tuple[str | None, str], float] = field(default_factory=lambda: defaultdict(float))
    # per (cluster, hour, job): own host energy and host idle share, joules
    cpu_hourly_j: dict[tuple[str, int, str], float] = field(default_factory=lambda: defaultdict(float))
    cpu_idle_hourly_j: dict[tuple[str, int, str], float] = field(default_factory=lambda: defaultdict(float))
    # host energy of the whole fleet
    cpu_fleet_j: float = 0.0
    cpu_unapportioned_idle_j: float = 0.0
    cpu_not_in_ledger_j: float = 0.0

    def headline_g(self, key: tuple[str | None, str]) -> float:
        """The default headline (gpu, cpu, idle, pue) of a (project, phase), in grams."""
        return (self.gpu_g[key] + self.idle_g[key] + self.pue_g[key] + self.cpu_g[key] + self.cpu_idle_g[key]
                + self.pue_cpu_g[key])


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
    _host_truth(out)
    return out


def _host_truth(out: Truth) -> None:
    """The host (CPU) figures, hour by hour: own energy per socket and domain on RAPL nodes, CPU time on every
    node, host idle per cluster-hour shared by CPU-seconds."""
    info = {jid: (project, ph) for jid, project, ph, _, _, _ in _host_jobs()}
    own: dict[tuple[str, int, str, str], float] = defaultdict(float)      # (cluster, hour, job, domain) -> J
    secs: dict[tuple[str, int, str], float] = defaultdict(float)
    host_idle: dict[tuple[str, int], float] = defaultdict(float)
    for node in GPUS:
        c = CLUSTER[node]
        for m in range(0, END_MIN, STEP_MIN):
            h = m // 60
            for jid in _on_host(node, m):
                secs[(c, h, jid)] += CPU_USE[jid].cores * STEP_MIN * 60
            if node not in RAPL_NODES:
                continue
            for sock in SOCKETS:
                for dom in DOMAINS:
                    host_idle[(c, h)] += HOST_IDLE_W[c][dom] * SOCKET_SCALE[sock] * STEP_MIN * 60
                    for jid in _on_host(node, m):
                        own[(c, h, jid, dom)] += CPU_USE[jid].watts(sock, dom) * STEP_MIN * 60
    hour_s: dict[tuple[str, int], float] = defaultdict(float)
    for (c, h, _), sec in secs.items():
        hour_s[(c, h)] += sec
    for (c, h, jid, dom), e in own.items():
        key = info[jid]
        i, _ = resolved_intensity(ZONE[c], h)
        out.cpu_j[key] += e
        (out.cpu_pkg_j if dom == "package" else out.cpu_dram_j)[key] += e
        out.cpu_g[key] += e / 3.6e6 * i
        out.pue_cpu_g[key] += (PUE[c] - 1) * e / 3.6e6 * i
        out.cpu_hourly_j[(c, h, jid)] += e
        if key[0] is None:
            out.cpu_not_in_ledger_j += e
    for (c, h, jid), sec in secs.items():
        key = info[jid]
        i, _ = resolved_intensity(ZONE[c], h)
        share = host_idle.get((c, h), 0.0) * sec / hour_s[(c, h)]
        out.cpu_s[key] += sec
        out.cpu_idle_j[key] += share
        out.cpu_idle_g[key] += share / 3.6e6 * i
        out.pue_cpu_g[key] += (PUE[c] - 1) * share / 3.6e6 * i
        out.cpu_idle_hourly_j[(c, h, jid)] += share
    out.cpu_fleet_j = sum(own.values()) + sum(host_idle.values())
    out.cpu_unapportioned_idle_j = sum(v for k, v in host_idle.items() if hour_s.get(k, 0.0) == 0)
