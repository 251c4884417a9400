"""The simulated fleet of `wattprint demo`: a month of two H100 clusters, written as the inputs production reads.

Nothing here computes a result. It generates what a real deployment would hand the pipeline, and
`wattprint/pipeline/demo.py` feeds it through the production code:

* the exporter's energy counters (``wattprint_job_energy_joules_total`` and ``wattprint_job_gpu_seconds_total`` per
  job and GPU, ``wattprint_gpu_idle_energy_joules_total`` and the GPU's total ``wattprint_gpu_energy_joules_total``
  per GPU; the host's ``wattprint_job_cpu_energy_joules_total``, ``wattprint_cpu_idle_energy_joules_total`` and the
  socket's total ``wattprint_cpu_energy_joules_total`` per socket and RAPL domain, ``wattprint_job_cpu_seconds_total``
  and ``wattprint_cpu_rapl_up``; with the exporter's labels), and the BMCs' whole-node power (demo_node.py:
  the exporter's ``wattprint_node_energy_joules_total`` on one node, ipmi_exporter's
  ``ipmi_dcmi_power_consumption_watts`` on the other Jean Zay node), served by
  `FleetPrometheus`, an in-process stand-in for a Prometheus ``query_range`` API, so they are stored by
  `pipeline.ingest.ingest` exactly as from a real server;
* the cluster config (`config_yaml`), the job ledger CSV (`ledger_csv`) and the hourly intensity CSV
  (`intensity_csv`), read back by the real parsers.

Power comes from the real H100 trace shipped with the exporter (``wattprint/exporter/data/h100_trace.csv``,
provenance in ``tests/fixtures/nvml-h100/SOURCE.md``): its idle, matmul, 50 % duty-cycled and memory-copy
phases give the levels, measured from the trace's energy counter. Each job type draws a mix of them
minute by minute (pretraining ~ matmul with checkpoint pauses, finetuning ~ duty-cycled with eval
passes, evaluation ~ memory-bound, experimentation ~ a bit of everything and long idle stretches with
a CUDA context open), scaled by a per-job factor, with seeded noise, capped at the 700 W power limit.
A GPU with no job draws the no-context idle level (~71 W, from the fixture's second capture).

Hosts: every node has two Intel Xeon Platinum 8480+ (Sapphire Rapids, 56 cores and 350 W TDP each, Intel ARK),
112 cores, like a DGX H100 (two 8480C). The exporter's RAPL and cgroup series are generated minute by minute:

* CPU time: each job keeps 1-3 cores busy per GPU it holds on a node (data-loader workers, tokenisation, the Python
  process driving each GPU; evaluation and experimentation at the high end), at least 4 and at most 16 per job and
  node, 1.5x that while it loads (its first minutes), +-20 % minute to minute; the OS, daemons and the exporter
  keep ~1 core busy outside any job's cgroup (host idle).
* Package power per socket: an idle level drawn per socket in 100-130 W (GPU nodes run the performance governor,
  so deep package C-states are rare and idle packages sit well above their SPECpower idle), rising linearly with
  the socket's busy cores (the node's, spread evenly) to the 350 W TDP at 56 busy cores. A linear curve is a
  simplification (real ones are concave, with turbo), but the jobs here use at most a few tens of cores.
* DRAM per socket (8 DDR5 RDIMMs): 11-15 W idle, +0.35 W per busy core, so 30-35 W with every core busy.
* The split is the exporter's: each minute's socket energy (package and DRAM alike) goes to the jobs by their share
  of the node's CPU time (cgroup usage / 112 cores x 60 s), the rest to host idle, in whole joules; jobs + idle ==
  the socket's energy exactly, and the socket's total counter is their sum (as the GPU's is its jobs' + idle).
* ``jzxh102`` exports ``wattprint_cpu_rapl_up 0`` and no CPU energy: its kernel makes ``energy_uj`` root-only (as
  Linux has since the PLATYPUS fix, CVE-2020-8694) and its exporter lacks the capability, so the reports' data
  quality has a real case to show. Its jobs' CPU time is still exported (the cgroup collector is separate).

The AWS nodes get the same CPUs to keep one model in the demo; a real p5.48xlarge has AMD EPYC 7R13 CPUs (whose
RAPL has no DRAM domain), and a VM rarely exposes RAPL at all.

Everything is drawn from one `random.Random(seed)` per part (jobs, power, intensity, cpu), so a seed gives
the same fleet, byte for byte, on any machine with the same Python.
"""

from __future__ import annotations

import csv
import io
import math
import random
import uuid as uuidlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from wattprint.exporter.backends.replay import REPLAY_MODEL, REPLAY_POWER_LIMIT_WATTS, default_trace_path, load_trace

from . import demo_node
from .promapi import RangeChunk, range_chunks

MONTH = "2026-10"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
T1 = datetime(2026, 11, 1, tzinfo=UTC)
STEP_S = 60
MINUTES = int((T1 - T0).total_seconds()) // 60            # 44,640 one-minute steps
GPUS_PER_NODE = 8
MODEL = REPLAY_MODEL                                      # "NVIDIA H100 80GB HBM3"
POWER_LIMIT_W = REPLAY_POWER_LIMIT_WATTS
HEADLINE_PROJECT = "idefics-mini"                         # three phases, both clusters

JOB_METRIC = "wattprint_job_energy_joules_total"
JOB_GPU_SECONDS_METRIC = "wattprint_job_gpu_seconds_total"
IDLE_METRIC = "wattprint_gpu_idle_energy_joules_total"
GPU_METRIC = "wattprint_gpu_energy_joules_total"
CPU_METRIC = "wattprint_cpu_energy_joules_total"
CPU_IDLE_METRIC = "wattprint_cpu_idle_energy_joules_total"
JOB_CPU_METRIC = "wattprint_job_cpu_energy_joules_total"
JOB_CPU_SECONDS_METRIC = "wattprint_job_cpu_seconds_total"
RAPL_UP_METRIC = "wattprint_cpu_rapl_up"
HELD_IDLE_METRIC = "wattprint_job_held_idle_energy_joules_total"
HELD_IDLE_SECONDS_METRIC = "wattprint_job_held_idle_seconds_total"
EQUAL_SHARE_SECONDS_METRIC = "wattprint_job_equal_share_seconds_total"
METRICS = (JOB_METRIC, JOB_GPU_SECONDS_METRIC, IDLE_METRIC, GPU_METRIC, CPU_METRIC, CPU_IDLE_METRIC, JOB_CPU_METRIC,
           JOB_CPU_SECONDS_METRIC, RAPL_UP_METRIC, HELD_IDLE_METRIC, HELD_IDLE_SECONDS_METRIC,
           EQUAL_SHARE_SECONDS_METRIC, demo_node.NODE_ENERGY_METRIC, demo_node.IPMI_METRIC)

# Phase boundaries of the shipped trace, seconds after its first row (tests/fixtures/nvml-h100/meta.json).
TRACE_PHASES = {"idle": (0.0, 20.0), "matmul": (20.0, 60.0), "duty50": (60.0, 90.2), "copy": (90.2, 110.2),
                "idle2": (110.2, 130.2)}
TRACE_SETTLE_S = 2.0          # skip each phase's first seconds: the power is still moving to the new level
# An idle H100 with no CUDA context: ~71 W (tests/fixtures/nvml-h100/SOURCE.md, second capture; the trace
# itself starts with a context open, so it cannot give this level).
NO_CONTEXT_W = 71.0

# Host CPUs (module docstring: where each level comes from). Every node has two of them, like a DGX H100.
CPU_MODEL = "Intel(R) Xeon(R) Platinum 8480+"
SOCKETS = 2
CORES_PER_SOCKET = 56
NODE_CORES = SOCKETS * CORES_PER_SOCKET                   # 112
PACKAGE_TDP_W = 350.0                                     # all cores busy
PACKAGE_IDLE_W = (100.0, 130.0)                           # per socket, drawn once per socket
DRAM_IDLE_W = (11.0, 15.0)                                # per socket (8 DDR5 RDIMMs), drawn once per socket
DRAM_W_PER_CORE = 0.35                                    # + ~20 W per socket with all its cores busy
BACKGROUND_CORES = 1.0                                    # OS, daemons, the exporter: host idle (0.5-1.5 each minute)
JOB_CORES_PER_GPU = {"pretraining": (1.4, 2.0), "finetuning": (1.2, 1.8), "evaluation": (1.5, 3.0),
                     "experimentation": (1.0, 3.0)}
JOB_CORES = (4.0, 16.0)                                   # busy cores of one job on one node, at least and at most
NO_RAPL_HOST = "jzxh102"                                  # energy_uj root-only here: the exporter cannot read it


@dataclass(frozen=True)
class Cluster:
    name: str
    provider: str
    region: str
    zone: str
    pue: float
    nodes: tuple[str, ...]
    pattern: str
    utc_offset: Callable[[datetime], int]     # UTC instant -> hours: the local time of the grid's daily shape


def _paris_offset(t: datetime) -> int:
    """CEST (+2) until the last Sunday of October 01:00 UTC, then CET (+1); March the other way round."""
    def last_sunday(month: int) -> datetime:
        d = datetime(t.year, month + 1, 1, 1, tzinfo=UTC) - timedelta(days=1) if month < 12 else \
            datetime(t.year, 12, 31, 1, tzinfo=UTC)
        return d - timedelta(days=(d.weekday() + 1) % 7)
    return 2 if last_sunday(3) <= t < last_sunday(10) else 1


def _pacific_offset(t: datetime) -> int:
    """PDT (-7) from the second Sunday of March to the first Sunday of November (10:00 / 09:00 UTC), else -8."""
    def nth_sunday(month: int, n: int, hour: int) -> datetime:
        d = datetime(t.year, month, 1, hour, tzinfo=UTC)
        return d + timedelta(days=(6 - d.weekday()) % 7 + 7 * (n - 1))
    return -7 if nth_sunday(3, 2, 10) <= t < nth_sunday(11, 1, 9) else -8


CLUSTERS = (
    Cluster("jean-zay", "onprem", "fr-idf", "FR", 1.2, ("jzxh101", "jzxh102"), "jzxh*", _paris_offset),
    Cluster("aws-usw2", "aws", "us-west-2", "aws:us-west-2", 1.1, ("ip-10-42-1-17", "ip-10-42-1-18"), "ip-10-42-*",
            _pacific_offset),
)
CLUSTER = {c.name: c for c in CLUSTERS}


@dataclass(frozen=True)
class Gpu:
    cluster: str
    host: str
    index: int
    uuid: str


def gpus() -> list[Gpu]:
    out = []
    for c in CLUSTERS:
        for host in c.nodes:
            for i in range(GPUS_PER_NODE):
                uid = "GPU-" + str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"wattprint-demo:{host}:{i}"))
                out.append(Gpu(c.name, host, i, uid))
    return out


# -- power levels from the real trace ---------------------------------------------------------------------

@dataclass(frozen=True)
class Levels:
    """Mean power (W) of each phase of the real H100 trace, from its energy counter."""

    idle_ctx: float        # CUDA context open, nothing running
    matmul: float          # bf16 matmuls back to back
    duty50: float          # 100 ms of matmuls, 100 ms sleep
    copy: float            # device-to-device copies: memory-bound
    idle_after: float      # idle again after work (clocks still up)
    no_context: float = NO_CONTEXT_W
    source: str = ""


def trace_levels() -> Levels:
    path = default_trace_path()
    trace = load_trace(path)
    w = {}
    for name, (a, b) in TRACE_PHASES.items():
        a += TRACE_SETTLE_S
        w[name] = (trace.energy_at(b) - trace.energy_at(a)) / 1000.0 / (b - a)
    return Levels(w["idle"], w["matmul"], w["duty50"], w["copy"], w["idle2"],
                  source=f"wattprint/exporter/data/{path.name}")


# -- the ledger -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    project: str | None        # None: a job nobody put in the ledger
    phase: str
    cluster: str
    gpus: int
    start_min: int
    minutes: int
    user: str


@dataclass
class Job:
    job_id: str
    spec: Spec
    start_min: int
    end_min: int
    gpus: tuple[int, ...]       # indices into gpus()

    @property
    def in_ledger(self) -> bool:
        return self.spec.project is not None

    def nodes(self, fleet_gpus: list[Gpu]) -> list[str]:
        return list(dict.fromkeys(fleet_gpus[g].host for g in self.gpus))


def _plan(rng: random.Random) -> list[Spec]:
    """What each team asked for; the scheduler then finds GPUs and may start a job later."""
    specs: list[Spec] = []

    def add(project: str | None, phase: str, cluster: str, n: int, start_h: float, hours: float, user: str) -> None:
        specs.append(Spec(project, phase, cluster, n, round(start_h * 60), max(30, round(hours * 60)), user))

    day = 24.0
    # idefics-mini: explores on Jean Zay, pretrains on AWS (two legs: a node failure, then resumed from the
    # checkpoint), finetunes on both
    for _ in range(16):
        add("idefics-mini", "experimentation", "jean-zay", rng.choice((1, 2, 2, 4, 4)), rng.uniform(0, 9 * day),
            rng.uniform(6, 20), rng.choice(("leo", "hugo")))
    s, a = 5 * day + rng.uniform(-4, 4), rng.uniform(120, 140)
    add("idefics-mini", "pretraining", "aws-usw2", 16, s, a, "victor")
    add("idefics-mini", "pretraining", "aws-usw2", 16, s + a + rng.uniform(2, 6), rng.uniform(150, 175), "victor")
    add("idefics-mini", "finetuning", "aws-usw2", 8, 18 * day + rng.uniform(0, 6), rng.uniform(16, 24), "leo")
    for i in range(3):
        add("idefics-mini", "finetuning", "jean-zay", 8, 23 * day + i * 40 + rng.uniform(0, 6), rng.uniform(20, 34),
            "hugo")
    # bloom-tiny: trials, a ~9-day pretraining on one Jean Zay node (also in two legs), finetuning, then ablations
    for _ in range(6):
        add("bloom-tiny", "experimentation", "jean-zay", rng.choice((1, 2)), rng.uniform(0, 3 * day),
            rng.uniform(1, 6), "teven")
    s, a = 3 * day + rng.uniform(0, 12), rng.uniform(130, 160)
    add("bloom-tiny", "pretraining", "jean-zay", 8, s, a, "stas")
    add("bloom-tiny", "pretraining", "jean-zay", 8, s + a + rng.uniform(3, 8), rng.uniform(140, 165), "stas")
    for i in range(3):
        add("bloom-tiny", "finetuning", "jean-zay", 4, 16 * day + i * 30 + rng.uniform(0, 8), rng.uniform(12, 20),
            "teven")
    for _ in range(10):
        add("bloom-tiny", "experimentation", "jean-zay", rng.choice((2, 4)), rng.uniform(17 * day, 23 * day),
            rng.uniform(6, 16), rng.choice(("teven", "stas")))
    # llm-eval: benchmark runs all month on both clusters, some experiments, reward-model finetunes on AWS
    for _ in range(36):
        add("llm-eval", "evaluation", rng.choice(("aws-usw2", "aws-usw2", "jean-zay")), rng.choice((1, 2, 4)),
            rng.uniform(0, 29 * day), rng.uniform(2, 8), rng.choice(("clementine", "nathan")))
    for _ in range(6):
        add("llm-eval", "experimentation", rng.choice(("aws-usw2", "jean-zay")), rng.choice((1, 2)),
            rng.uniform(0, 12 * day), rng.uniform(2, 6), "nathan")
    for i in range(2):
        add("llm-eval", "finetuning", "aws-usw2", 8, 0.5 * day + i * 48 + rng.uniform(0, 6), rng.uniform(20, 30),
            "clementine")
    for i in range(2):
        add("llm-eval", "finetuning", "aws-usw2", 4, 26 * day + i * 36 + rng.uniform(0, 6), rng.uniform(8, 14),
            "clementine")
    # a debugging session nobody put in the ledger: the reports show it as "(not in the job ledger)"
    add(None, "unclassified", "aws-usw2", 1, 19 * day + rng.uniform(0, 24), rng.uniform(2, 4), "root")
    return specs


def _schedule(specs: list[Spec], fleet_gpus: list[Gpu]) -> list[Job]:
    """First fit, big jobs first: whole nodes for 8+ GPUs, else the first node with enough free GPUs. A job
    that does not fit waits in 30-minute steps; one that would run past the month's last hour is dropped."""
    busy: list[list[tuple[int, int]]] = [[] for _ in fleet_gpus]

    def free(g: int, s: int, e: int) -> bool:
        return all(e <= a or s >= b for a, b in busy[g])

    placed: list[tuple[Spec, int, tuple[int, ...]]] = []
    for spec in sorted(specs, key=lambda x: (-min(x.gpus, GPUS_PER_NODE), x.start_min)):
        nodes = CLUSTER[spec.cluster].nodes
        by_node = {h: [i for i, g in enumerate(fleet_gpus) if g.host == h] for h in nodes}
        s = spec.start_min
        while s + spec.minutes <= MINUTES - 60:
            e = s + spec.minutes
            chosen: list[int] | None = None
            if spec.gpus >= GPUS_PER_NODE:
                whole = [h for h in nodes if all(free(g, s, e) for g in by_node[h])]
                need = spec.gpus // GPUS_PER_NODE
                if len(whole) >= need:
                    chosen = [g for h in whole[:need] for g in by_node[h]]
            else:
                for h in nodes:
                    idle = [g for g in by_node[h] if free(g, s, e)]
                    if len(idle) >= spec.gpus:
                        chosen = idle[:spec.gpus]
                        break
            if chosen is not None:
                for g in chosen:
                    busy[g].append((s, e))
                placed.append((spec, s, tuple(chosen)))
                break
            s += 30
    # Slurm-like job ids, increasing with submission time on each cluster
    placed.sort(key=lambda p: (p[0].cluster, p[1], p[2]))
    jobs: list[Job] = []
    next_id = {"jean-zay": 2417001, "aws-usw2": 81201}
    for spec, s, gpu_ids in placed:
        jobs.append(Job(str(next_id[spec.cluster]), spec, s, s + spec.minutes, gpu_ids))
        next_id[spec.cluster] += 1 + (s % 7)
    jobs.sort(key=lambda j: (j.start_min, j.spec.cluster, int(j.job_id)))
    return jobs


# -- power, minute by minute ------------------------------------------------------------------------------

def _job_power(phase: str, minutes: int, rng: random.Random, lv: Levels) -> list[float]:
    """Mean power of one GPU of a job for each of its minutes."""
    return _job_power_and_idle(phase, minutes, rng, lv)[0]


def _job_power_and_idle(phase: str, minutes: int, rng: random.Random,
                        lv: Levels) -> tuple[list[float], list[bool]]:
    """Mean power of one GPU of a job for each of its minutes, and whether the GPU was idle in it (the context-open
    idle levels: loading, checkpoint saves, pauses; what the exporter counts as held but idle). The same draws as
    ever: the idle flags come from the levels, not from the generator."""
    out: list[float] = []
    warmup = min(8, minutes // 10)                 # loading the model and data, context open
    out += [lv.idle_ctx] * warmup
    if phase == "pretraining":
        base, sd = lv.matmul * rng.uniform(0.87, 0.97), 0.025
        while len(out) < minutes:
            out += [base] * rng.randint(45, 75) + [lv.idle_after] * 2      # compute, then a checkpoint save
    elif phase == "finetuning":
        base, sd = lv.duty50 * rng.uniform(0.9, 1.05), 0.04
        while len(out) < minutes:
            out += [base] * rng.randint(50, 70) + [lv.copy] * 4            # training steps, then an eval pass
    elif phase in ("evaluation", "inference"):
        base, sd = lv.copy * rng.uniform(0.92, 1.04), 0.03
        while len(out) < minutes:
            out += [base] * rng.randint(20, 40) + [lv.idle_ctx] * rng.randint(3, 8)   # a benchmark, the next loads
    else:                                          # experimentation, and the unlogged debugging session
        sd = 0.03
        choices = ((lv.matmul * 0.9, 0.2), (lv.duty50, 0.25), (lv.copy, 0.2), (lv.idle_ctx, 0.35))
        while len(out) < minutes:
            level = rng.choices([c[0] for c in choices], [c[1] for c in choices])[0]
            out += [level] * rng.randint(5, 45)
    del out[minutes:]
    gauss = rng.gauss
    lo = lv.no_context * 0.9
    idle = [p in (lv.idle_ctx, lv.idle_after) for p in out]
    return [min(POWER_LIMIT_W, max(lo, p * (1.0 + sd * gauss(0.0, 1.0)))) for p in out], idle


# -- host CPUs: RAPL energy and cgroup CPU time, minute by minute ------------------------------------------

@dataclass(frozen=True)
class Host:
    cluster: str
    name: str
    rapl: bool                 # False: the exporter cannot read RAPL here (cpu_rapl_up 0, no CPU energy series)


def hosts() -> list[Host]:
    return [Host(c.name, h, h != NO_RAPL_HOST) for c in CLUSTERS for h in c.nodes]


@dataclass
class HostTelemetry:
    """What the exporter's RAPL and cgroup collectors export for the fleet's hosts. Whole joules and whole seconds
    (the demo's resolution; the exporter's is microjoules and microseconds)."""

    hosts: list[Host]
    idle: dict[tuple[str, str, str], array]        # (host, socket, domain) -> joules at each minute 0..MINUTES
    jobs: dict[tuple[str, str, str, str], array]   # (job id, host, socket, domain) -> joules at minutes start..end
    cpu_seconds: dict[tuple[str, str], array]      # (job id, host) -> CPU seconds at minutes start..end
    socket_j: dict[tuple[str, str, str], int]      # (host, socket, domain) -> the socket's joules over the month

    @property
    def samples(self) -> int:
        """Samples served: the counters above and one cpu_rapl_up sample per host and minute."""
        return (sum(len(a) for a in self.idle.values()) + sum(len(a) for a in self.jobs.values())
                + sum(len(a) for a in self.cpu_seconds.values()) + len(self.hosts) * (MINUTES + 1))

    @property
    def energy_j(self) -> int:
        """Host energy over the month (jobs + idle): what fct_job_cpu_hour must hold."""
        return (sum(a[-1] - a[0] for a in self.idle.values())
                + sum(a[-1] - a[0] for a in self.jobs.values()))


def _job_cores(phase: str, gpus_here: int, rng: random.Random) -> float:
    """Cores a job keeps busy on one node: data loading, tokenisation, the Python driving the GPUs."""
    lo, hi = JOB_CORES_PER_GPU.get(phase, JOB_CORES_PER_GPU["experimentation"])
    return min(JOB_CORES[1], max(JOB_CORES[0], rng.uniform(lo, hi) * gpus_here))


def host_telemetry(jobs: list[Job], fleet_gpus: list[Gpu], rng: random.Random) -> HostTelemetry:
    """Each minute: every job's CPU seconds on each of its nodes; each socket's package and DRAM energy from the
    node's busy cores (spread evenly over the sockets); that energy split as the exporter splits it, by the jobs'
    share of the node's CPU time (the same share on every socket and domain), the rest host idle."""
    rand = rng.random
    fleet_hosts = hosts()
    on_host: dict[str, list[tuple[Job, int]]] = {h.name: [] for h in fleet_hosts}
    for j in jobs:
        for host in j.nodes(fleet_gpus):
            on_host[host].append((j, sum(fleet_gpus[g].host == host for g in j.gpus)))
    node_s = NODE_CORES * 60                                   # CPU seconds the node has per minute
    idle_c: dict[tuple[str, str, str], array] = {}
    jobs_c: dict[tuple[str, str, str, str], array] = {}
    seconds_c: dict[tuple[str, str], array] = {}
    socket_j: dict[tuple[str, str, str], int] = {}
    for h in fleet_hosts:
        busy = [BACKGROUND_CORES * (0.5 + rand()) for _ in range(MINUTES)]      # cores, not in any job's cgroup
        job_secs: list[tuple[Job, list[int]]] = []
        for j, n in on_host[h.name]:
            cores = _job_cores(j.spec.phase, n, rng)
            minutes = j.end_min - j.start_min
            warmup = min(8, minutes // 10)                     # loading the model and data: busier
            secs = [round(cores * 60 * 1.5)] * warmup + [round(cores * 60 * (0.8 + 0.4 * rand()))
                                                         for _ in range(minutes - warmup)]
            for m, sec in zip(range(j.start_min, j.end_min), secs, strict=True):
                busy[m] += sec / 60
            seconds_c[(j.job_id, h.name)] = array("q", accumulate(secs, initial=0))
            job_secs.append((j, secs))
        if not h.rapl:
            continue
        for socket in range(SOCKETS):
            package_idle = rng.uniform(*PACKAGE_IDLE_W)
            for domain, idle_w, per_core in (
                    ("package", package_idle, (PACKAGE_TDP_W - package_idle) / CORES_PER_SOCKET),
                    ("dram", rng.uniform(*DRAM_IDLE_W), DRAM_W_PER_CORE)):
                energy = [round((idle_w + per_core * b / SOCKETS) * 60) for b in busy]     # joules per minute
                idle = energy.copy()
                for j, secs in job_secs:
                    part = [(e * sec + node_s // 2) // node_s
                            for e, sec in zip(energy[j.start_min:j.end_min], secs, strict=True)]
                    for m, p in zip(range(j.start_min, j.end_min), part, strict=True):
                        idle[m] -= p
                    jobs_c[(j.job_id, h.name, str(socket), domain)] = array("q", accumulate(part, initial=0))
                if min(idle) < 0:
                    raise AssertionError(f"{h.name}: jobs' CPU time above the node's")
                key = (h.name, str(socket), domain)
                # the exporter had been running before the month: its idle counter starts at some baseline
                idle_c[key] = array("q", accumulate(idle, initial=rng.randrange(10_000_000, 500_000_000)))
                socket_j[key] = sum(energy)
    return HostTelemetry(fleet_hosts, idle_c, jobs_c, seconds_c, socket_j)


@dataclass
class Fleet:
    """Everything the demo feeds the pipeline, as generated for one seed."""

    seed: int
    levels: Levels
    gpus: list[Gpu]
    jobs: list[Job]
    idle_counters: list[array]                         # per GPU: joules at each minute 0..MINUTES
    idle_baselines: list[float]
    job_counters: dict[tuple[str, int], array]         # (job id, gpu) -> joules at minutes start..end
    intensity: dict[str, list[float]]                  # zone -> gCO2eq/kWh per hour of the month
    host: HostTelemetry
    busy_gpu_minutes: int = 0
    # (job id, gpu) -> the exporter's held-but-idle joules and seconds at minutes start..end (a part of job_counters)
    held_idle_counters: dict[tuple[str, int], array] = field(default_factory=dict)
    held_idle_seconds: dict[tuple[str, int], array] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return (sum(len(a) for a in self.idle_counters) + sum(len(a) for a in self.job_counters.values())
                + self.host.samples)

    @property
    def energy_j(self) -> float:
        """The GPU counters' increases over the month, summed: what the pipeline must find (host: host.energy_j)."""
        return (sum(a[-1] - a[0] for a in self.idle_counters)
                + sum(a[-1] - a[0] for a in self.job_counters.values()))


def generate(seed: int = 0) -> Fleet:
    rng_jobs, rng_power, rng_int, rng_cpu = (random.Random(f"wattprint-demo:{seed}:{part}")
                                             for part in ("jobs", "power", "intensity", "cpu"))
    levels = trace_levels()
    fleet_gpus = gpus()
    jobs = _schedule(_plan(rng_jobs), fleet_gpus)

    holder: list[list[tuple[int, int, Job]]] = [[] for _ in fleet_gpus]
    job_counters: dict[tuple[str, int], array] = {}
    held: dict[tuple[str, int], array] = {}
    held_s: dict[tuple[str, int], array] = {}
    busy = 0
    for j in jobs:
        for g in j.gpus:
            p, idle = _job_power_and_idle(j.spec.phase, j.end_min - j.start_min, rng_power, levels)
            # the exporter's per-job counter starts at 0 with the job; millijoule resolution, like NVML
            job_counters[(j.job_id, g)] = array("d", (round(v, 3) for v in accumulate(p, lambda a, w: a + w * 60,
                                                                                           initial=0.0)))
            # its held-but-idle part: the minutes the GPU it held was idle (a subset of the same terms)
            held[(j.job_id, g)] = array("d", (round(v, 3) for v in accumulate(
                (w if i else 0.0 for w, i in zip(p, idle, strict=True)), lambda a, w: a + w * 60, initial=0.0)))
            held_s[(j.job_id, g)] = array("q", accumulate((60 if i else 0 for i in idle), initial=0))
            holder[g].append((j.start_min, j.end_min, j))
            busy += j.end_min - j.start_min

    idle_counters, baselines = [], []
    gauss = rng_power.gauss
    for g in range(len(fleet_gpus)):
        # the exporter had been running before the month: its idle counter starts at some baseline
        base = round(rng_power.uniform(2e7, 6e8), 3)
        spans = sorted(holder[g], key=lambda x: x[0])
        watts = [0.0] * MINUTES
        free_from = 0
        for s, e, _ in spans + [(MINUTES, MINUTES, None)]:
            for m in range(free_from, s):
                watts[m] = levels.no_context * (1.0 + 0.01 * gauss(0.0, 1.0))
            free_from = e
        idle_counters.append(array("d", (round(v, 3) for v in accumulate(watts, lambda a, w: a + w * 60,
                                                                         initial=base))))
        baselines.append(base)

    intensity = {c.zone: _intensity(c, rng_int) for c in CLUSTERS}
    host = host_telemetry(jobs, fleet_gpus, rng_cpu)
    return Fleet(seed, levels, fleet_gpus, jobs, idle_counters, baselines, job_counters, intensity, host, busy,
                 held, held_s)


# -- hourly grid intensity with a daily shape -------------------------------------------------------------

def _bump(h: float, centre: float, width: float) -> float:
    d = min(abs(h - centre), 24 - abs(h - centre))
    return math.exp(-((d / width) ** 2))


def _intensity(c: Cluster, rng: random.Random) -> list[float]:
    """gCO2eq/kWh for each UTC hour of the month, in the zone's local time. FR: low-carbon (nuclear, hydro)
    with a morning and a larger evening peak and quieter weekends. us-west-2 (Oregon, NW grid): hydro and
    gas, higher, with a solar dip around local noon and an evening ramp. Weather moves both by an AR(1)."""
    out: list[float] = []
    weather = 0.0
    fr = c.zone == "FR"
    phi, sd = (0.97, 9.0) if fr else (0.95, 20.0)
    for h in range(MINUTES // 60):
        t = T0 + timedelta(hours=h)
        local = t + timedelta(hours=c.utc_offset(t))
        lh = local.hour + 0.5
        weekend = local.weekday() >= 5
        weather = phi * weather + sd * math.sqrt(1 - phi * phi) * rng.gauss(0.0, 1.0)
        if fr:
            v = 36 + 12 * _bump(lh, 8.5, 2.0) + 20 * _bump(lh, 19.5, 2.2) - 5 * _bump(lh, 3.5, 3.0) \
                - (7 if weekend else 0) + weather
            v = max(16.0, v)
        else:
            v = 300 - 60 * _bump(lh, 13.0, 2.8) + 28 * _bump(lh, 19.5, 2.0) - (12 if weekend else 0) + weather
            v = max(150.0, v)
        out.append(round(v + rng.uniform(-0.5, 0.5), 1))
    return out


# -- the files production reads ---------------------------------------------------------------------------

def config_yaml() -> str:
    lines = ["# Written by `wattprint demo`: two simulated clusters of 16 NVIDIA H100 each (docs/config.md).",
             "clusters:"]
    for c in CLUSTERS:
        lines += [f"  {c.name}:", f"    provider: {c.provider}", f"    region: {c.region}", f"    zone: {c.zone}",
                  f"    pue: {c.pue}", f'    nodes: ["{c.pattern}"]']
    lines += [f"default_cluster: {CLUSTERS[0].name}", "ingest:", f"  step_seconds: {STEP_S}"]
    lines += SCOPE2_YAML.splitlines() + [""]
    return "\n".join(lines)


# Market-based Scope 2 (docs/methodology.md, "Scope 2"): an illustrative set of contractual instruments, as an ESG
# team would declare them: a wind PPA for part of jean-zay's consumption (30 MWh a year, spread evenly: about
# 2.5 MWh in October), a batch of hydro guarantees of origin for the French zone, and the cloud provider's
# supplier-specific factor for aws-usw2. Every figure here is demo input, not a published value: replace them with
# your contracts, certificates and the residual mix your registry (e.g. AIB for European zones) publishes.
SCOPE2_YAML = """\
scope2:
  matching: monthly
  instruments:
    - name: ppa-wind-2026
      kind: ppa
      clusters: [jean-zay]
      start: 2026-01-01
      end: 2027-01-01
      mwh: 30
      g_per_kwh: 0
      registry_id: PPA-2025-017
      source: "illustrative demo input: a 2026 wind PPA, 30 MWh for the year"
    - name: go-hydro-2026-10
      kind: certificate
      certificate: GO
      zone: FR
      start: 2026-10-01
      end: 2026-11-01
      mwh: 0.5
      g_per_kwh: 0
      registry_id: GO-FR-2026-10-0042
      source: "illustrative demo input: guarantees of origin, hydro, cancelled for October 2026"
    - name: aws-supplier-factor-2026
      kind: supplier
      clusters: [aws-usw2]
      start: 2026-01-01
      end: 2027-01-01
      mwh: all
      g_per_kwh: 240
      source: "illustrative demo input: a supplier-specific factor as a provider would disclose it"
  residual_mix:
    - {zone: FR, year: 2025, g_per_kwh: 60, source: "illustrative demo input, not a published residual mix"}
"""


def _ts(minute: int) -> str:
    return (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hostlist(nodes: list[str]) -> str:
    """`jzxh[101-102]` for consecutive numbered hosts (Slurm's form, expanded by the ledger parser)."""
    if len(nodes) == 1:
        return nodes[0]
    prefix = nodes[0].rstrip("0123456789")
    nums = [n[len(prefix):] for n in nodes]
    if all(n.startswith(prefix) for n in nodes) and all(x.isdigit() for x in nums):
        ints = [int(x) for x in nums]
        if ints == list(range(ints[0], ints[0] + len(ints))):
            return f"{prefix}[{nums[0]}-{nums[-1]}]"
    return ",".join(nodes)


# the pretraining jobs' functional units in the ledger (the report's SCI per token): tokens trained on per GPU-second,
# a round figure of the order a small model's pretraining reaches on one GPU; a parameter of the demo, not a measurement
TOKENS_PER_GPU_SECOND = 3000


def ledger_csv(fleet: Fleet) -> str:
    """The job ledger, as a scheduler export or a team's spreadsheet would give it (job_id,project,phase,...); the
    pretraining jobs also give their tokens (units,unit_name)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["job_id", "project", "phase", "cluster", "user", "start", "end", "nodes", "gpus", "units",
                "unit_name"])
    for j in fleet.jobs:
        if not j.in_ledger:
            continue
        nodes = j.nodes(fleet.gpus)
        units = ([str(len(j.gpus) * (j.end_min - j.start_min) * 60 * TOKENS_PER_GPU_SECOND), "tokens"]
                 if j.spec.phase == "pretraining" else ["", ""])
        w.writerow([j.job_id, j.spec.project, j.spec.phase, j.spec.cluster, j.spec.user, _ts(j.start_min),
                    _ts(j.end_min), _hostlist(nodes), len(j.gpus) // len(nodes), *units])
    return buf.getvalue()


def intensity_csv(fleet: Fleet) -> str:
    """The generic intensity CSV (`timestamp,zone,intensity_g_per_kwh`, one UTC hour per row)."""
    lines = ["timestamp,zone,intensity_g_per_kwh"]
    for zone, values in fleet.intensity.items():
        lines += [f"{_ts(60 * h)},{zone},{v:.1f}" for h, v in enumerate(values)]
    return "\n".join(lines) + "\n"


# -- a Prometheus query_range API over the generated counters ---------------------------------------------

class FleetPrometheus:
    """Answers `pipeline.ingest.ingest`'s ``query_range`` calls with the fleet's counters, in the shape a
    Prometheus server returns (``data.result``: labels with ``__name__``, ``[unix_s, "value"]`` points), chunked
    on the same grid as `pipeline.promapi.PromClient`. The exporter's own labels plus the scrape's ``job`` and
    ``instance``. Metrics not served here return no series: dcgm's. The GPU and socket totals are the exporter's
    jobs + idle at each minute, as its conservation makes them."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.calls: list[str] = []
        self._cache: dict[str, list[array]] = {}
        self._node_cache: dict[str, list[tuple[dict[str, str], int, array]]] = {}

    def _labels(self, metric: str, g: int, job_id: str | None = None) -> dict[str, str]:
        gpu = self.fleet.gpus[g]
        labels = {"__name__": metric, "cluster": gpu.cluster, "hostname": gpu.host, "gpu": str(gpu.index),
                  "uuid": gpu.uuid, "model": MODEL, "instance": f"{gpu.host}:9835", "job": "wattprint-exporter"}
        if job_id is not None:
            labels["job_id"] = job_id
        return labels

    def _host_labels(self, metric: str, host: str, **extra: str) -> dict[str, str]:
        cluster = next(h.cluster for h in self.fleet.host.hosts if h.name == host)
        return {"__name__": metric, "cluster": cluster, "hostname": host, **extra, "instance": f"{host}:9835",
                "job": "wattprint-exporter"}

    def _series(self, metric: str) -> Iterator[tuple[dict[str, str], int, array]]:
        """(labels, minute of the first value, values) of every series of a metric."""
        starts = {j.job_id: j.start_min for j in self.fleet.jobs}
        host = self.fleet.host
        if metric == IDLE_METRIC:
            for g, values in enumerate(self.fleet.idle_counters):
                yield self._labels(metric, g), 0, values
        elif metric == GPU_METRIC:
            if metric not in self._cache:
                self._cache[metric] = self._totals(self.fleet.idle_counters, (
                    (g, starts[j], c) for (j, g), c in self.fleet.job_counters.items()), "d")
            for g, values in enumerate(self._cache[metric]):
                yield self._labels(metric, g), 0, values
        elif metric == JOB_METRIC:
            for (job_id, g), values in self.fleet.job_counters.items():
                yield self._labels(metric, g, job_id), starts[job_id], values
        elif metric == JOB_GPU_SECONDS_METRIC:
            # the seconds the job held the GPU: one 60 s poll interval per minute it ran
            for (job_id, g), values in self.fleet.job_counters.items():
                yield self._labels(metric, g, job_id), starts[job_id], array("q", range(0, 60 * len(values), 60))
        elif metric == HELD_IDLE_METRIC:
            for (job_id, g), values in self.fleet.held_idle_counters.items():
                yield self._labels(metric, g, job_id), starts[job_id], values
        elif metric == HELD_IDLE_SECONDS_METRIC:
            for (job_id, g), values in self.fleet.held_idle_seconds.items():
                yield self._labels(metric, g, job_id), starts[job_id], values
        elif metric == EQUAL_SHARE_SECONDS_METRIC:
            # one job per GPU here (no time-slicing): never split equally, 0 all along, as the exporter writes it
            for (job_id, g), values in self.fleet.job_counters.items():
                yield self._labels(metric, g, job_id), starts[job_id], array("q", bytes(8 * len(values)))
        elif metric == CPU_METRIC:
            keys = list(host.idle)
            if metric not in self._cache:
                index = {k: i for i, k in enumerate(keys)}
                self._cache[metric] = self._totals([host.idle[k] for k in keys], (
                    (index[(name, socket, domain)], starts[j], c)
                    for (j, name, socket, domain), c in host.jobs.items()), "q")
            for (name, socket, domain), values in zip(keys, self._cache[metric], strict=True):
                yield self._host_labels(metric, name, socket=socket, domain=domain, model=CPU_MODEL), 0, values
        elif metric == CPU_IDLE_METRIC:
            for (name, socket, domain), values in host.idle.items():
                yield self._host_labels(metric, name, socket=socket, domain=domain, model=CPU_MODEL), 0, values
        elif metric == JOB_CPU_METRIC:
            for (job_id, name, socket, domain), values in host.jobs.items():
                yield (self._host_labels(metric, name, socket=socket, domain=domain, model=CPU_MODEL, job_id=job_id),
                       starts[job_id], values)
        elif metric == JOB_CPU_SECONDS_METRIC:
            for (job_id, name), values in host.cpu_seconds.items():
                yield self._host_labels(metric, name, job_id=job_id), starts[job_id], values
        elif metric == RAPL_UP_METRIC:
            for h in host.hosts:
                yield self._host_labels(metric, h.name), 0, array("q", [int(h.rapl)]) * (MINUTES + 1)
        elif metric in (demo_node.NODE_ENERGY_METRIC, demo_node.IPMI_METRIC):
            if metric not in self._node_cache:       # the BMCs' readings: demo_node.py
                self._node_cache[metric] = list(demo_node.series(self.fleet, metric))
            yield from self._node_cache[metric]

    @staticmethod
    def _totals(idle: list[array], parts: Iterator[tuple[int, int, array]], typecode: str) -> list[array]:
        """Per counter, idle + every part at each minute (a part counts 0 before its start and its last value after
        its end); joules to the millijoule for GPUs, whole joules for sockets."""
        sums = [list(a) for a in idle]
        after = [[0.0] * (len(a) + 1) for a in idle]       # a finished part's last value, from the minute after it
        for i, first, values in parts:
            row, end = sums[i], first + len(values)
            row[first:end] = [a + b for a, b in zip(row[first:end], values, strict=True)]
            after[i][end] += values[-1]
        out = []
        for row, tail in zip(sums, after, strict=True):
            total = [a + b for a, b in zip(row, accumulate(tail[:-1]), strict=True)]
            out.append(array(typecode, (round(v, 3) for v in total) if typecode == "d" else map(int, total)))
        return out

    def series(self, match: list[str], start: datetime, end: datetime) -> list[dict[str, str]]:
        """The label sets of the series of the metrics `match` names (over the whole fleet's month)."""
        return [labels for m in METRICS if any(f'"{m}"' in q for q in match) for labels, _, _ in self._series(m)]

    def query_range(self, query: str, start: datetime, end: datetime, step_s: float,
                    max_points: int | None = None) -> Iterator[RangeChunk]:
        self.calls.append(query)
        metric = next((m for m in METRICS if f'"{m}"' in query), None)
        if step_s != STEP_S:
            raise ValueError(f"the demo fleet is sampled every {STEP_S} s, not {step_s}")
        t0 = int(T0.timestamp())
        for a, b in range_chunks(start, end, step_s, *(() if max_points is None else (max_points,))):
            result: list[dict[str, Any]] = []
            if metric is not None:
                ka, kb = (int(a.timestamp()) - t0) // 60, (int(b.timestamp()) - t0) // 60
                for labels, first, values in self._series(metric):
                    lo, hi = max(ka, first), min(kb, first + len(values) - 1)
                    if lo > hi:
                        continue
                    # counters in joules to the millijoule (GPU), whole joules and seconds (host), as text
                    text = map("{:.3f}".format if values.typecode == "d" else str, values[lo - first:hi - first + 1])
                    pts = [[t, v] for t, v in zip(range(t0 + 60 * lo, t0 + 60 * hi + 1, 60), text, strict=True)]
                    result.append({"metric": labels, "values": pts})
            yield RangeChunk(a, b, result)
