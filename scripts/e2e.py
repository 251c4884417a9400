#!/usr/bin/env python3
"""The live stack, end to end: replay exporters → a real Prometheus → `wattprint ingest` → `wattprint report`.

    scripts/e2e.py [--seconds 120] [--nodes 3] [--gpus-per-node 4] [--scrape-interval 1] [--out DIR] [--keep]

What it does (docs/operations.md, "End to end"):

1. Writes a cluster config (clusters jean-zay, zone FR, PUE 1.2, and aws-usw2, zone aws:us-west-2, PUE 1.1) and
   one job-mapping directory per virtual node: a multi-GPU job per node, a GPU shared by a ledger job and a job
   missing from the ledger, a GPU whose job ends mid-run and another starts after a few idle seconds, idle GPUs.
   Two more nodes share GPUs: `mig-1`, one board in MIG mode (`--replay-mig 3g.40gb,2g.20gb,1g.10gb`) with jobs
   by `<gpu>.<GPU_I_ID>` files on the 3g and the 1g instance, none on the 2g; and `kube-1` (`--job-discovery
   kubernetes`), whose pods come from a real gRPC server of the kubelet's PodResources v1 API on a unix socket and
   the pod log directory, replaying the shipped trace's idle start: a pod holds GPU 0 and runs nothing on it, two
   pods hold time-slicing replicas of GPU 1.
2. Starts one `wattprint-exporter --backend replay` per node (real H100 trace; each node its own `--hostname`, so
   its own GPU UUIDs, and its own `--replay-epoch`, so nodes draw different power), `wattprint serve-intensity
   --source annual`, a page of kube-state-metrics' pod series, and a real Prometheus scraping them all (own data
   dir, free loopback ports) and evaluating the real rule files scaled in time (1 h -> 1 min) every second.
3. Picks the window [S, E] on the ingest step grid once every target is up, changes the jobs on one GPU in the
   middle, and meanwhile reads every exporter's /metrics itself every 0.1 s.
4. Runs the real CLI: `wattprint jobs import` (the ledger CSV), `wattprint jobs sync-kubernetes` (the pods, from
   kube-state-metrics' series), `wattprint ingest --start S --end E`, and
   `wattprint report` (JSON and Markdown) for each project and for all projects, over the whole UTC hours
   around the window.
5. Checks, and exits 1 naming what failed:
   * per project, the report's GPU energy against the exporters' own per-job counters over [S, E], within 1 %
     (and per job, from the DuckDB results);
   * conservation: jobs + idle == GPU energy, exactly in millijoules on every exporter page read, and within
     1e-6 (relative) per GPU in `fct_job_gpu_hour` against the exporters' GPU counters; and no GPU-hour of the
     model's reconciliation (`fct_gpu_hour`) differs from its counter;
   * the all-projects report's reconciliation: fleet = projects + not in ledger + idle, and fleet = the
     exporters' GPU counters (1 %);
   * MIG, exactly in mJ on every page and over [S, E]: each instance = its jobs + its idle, the board's idle = the
     instances' idle + the unpartitioned slice's part; the 2g instance all idle, each job = its instance;
   * Kubernetes, exactly: the pod holding idle GPU 0 is charged all of it (idle 0), all of it held idle; the
     replica pods split GPU 1 equally (1 mJ per poll), all their held time counted as equal shares; the pods reach
     the ledger from kube-state-metrics; `WattprintJobHoldingIdleGpus` fires for the idle-held pod.

The exporters' counters at S and E are the pages the exporters served at the polls Prometheus holds at S and E
(matched on `wattprint_exporter_polls_total`): reading them at wall-clock S and E instead would differ from
any scrape-based figure by up to one scrape interval of power at each end (a few % of a 30 s window).

Exit status: 0 every check passed, 1 a check failed, 2 the stack could not run (Prometheus missing, a process
that would not start, a CLI step that failed). After a failure the work directory (logs, Prometheus data, DuckDB
file, reports) is kept and named.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from wattprint.pipeline.db import duckdb_config

REPO = Path(__file__).resolve().parents[1]
METRICS = {"gpu": "wattprint_gpu_energy_joules_total", "idle": "wattprint_gpu_idle_energy_joules_total",
           "job": "wattprint_job_energy_joules_total",
           "cpu": "wattprint_cpu_energy_joules_total", "cpu_idle": "wattprint_cpu_idle_energy_joules_total",
           "cpu_job": "wattprint_job_cpu_energy_joules_total", "cpu_seconds": "wattprint_job_cpu_seconds_total",
           # held time and its parts, per job and GPU
           "job_seconds": "wattprint_job_gpu_seconds_total",
           "held_idle": "wattprint_job_held_idle_energy_joules_total",
           "held_idle_seconds": "wattprint_job_held_idle_seconds_total",
           "equal_seconds": "wattprint_job_equal_share_seconds_total",
           # MIG instances (the last key element is the GPU instance id)
           "inst": "wattprint_gpu_instance_energy_joules_total",
           "inst_idle": "wattprint_gpu_instance_idle_energy_joules_total"}
GPU_KINDS = ("gpu", "idle", "job")
CPU_KINDS = ("cpu", "cpu_idle", "cpu_job")
HELD_KINDS = ("job_seconds", "held_idle", "held_idle_seconds", "equal_seconds")
INSTANCE_KINDS = ("inst", "inst_idle")
JOB_KINDS = ("job", "cpu_job", "cpu_seconds", *HELD_KINDS)
POLLS = "wattprint_exporter_polls_total"
# cluster: (provider, region, zone, PUE)
CLUSTERS = {"jean-zay": ("onprem", "fr-idf", "FR", 1.2), "aws-usw2": ("aws", "us-west-2", "aws:us-west-2", 1.1)}
PREFIX = {"jean-zay": "jz", "aws-usw2": "aws"}
# Numeric job ids, as Slurm's: the host collector finds a job's cgroup by its name, job_<id>.
JOB_ID_BASE = {"jean-zay": 1000, "aws-usw2": 2000}
SCRATCH_ID_BASE = 9000     # jobs missing from the ledger
PROJECTS = ("idefics", "bloom", "starcoder")
PHASES = ("pretraining", "finetuning", "evaluation")
STEP = 5                   # ingest step, s: S and E lie on its grid
TOLERANCE = 0.01           # report vs exporter counters
CONSERVATION_TOLERANCE = 1e-6
EPOCH_BASE = 1_767_225_600  # 2026-01-01T00:00:00Z; each node replays from its own offset of it
MIG_PROFILES = ("3g.40gb", "2g.20gb", "1g.10gb")   # GPU instances 1, 2, 3 of the MIG node's board; 1 slice unused
KUBE_CLUSTER = "aws-usw2"                           # the Kubernetes node's cluster (pods: `jobs sync-kubernetes`)
HELD_IDLE_ALERT = "WattprintJobHoldingIdleGpus"
# The e2e loads the real rule files scaled in time: every [1h] window and every `for:` shrink by this factor (1 h ->
# 1 min, for: 15m -> 15 s), and the held-idle GPU-seconds threshold with them (1800 -> 30).
RULE_TIME_SCALE = 60

# (kind, cluster, hostname, gpu, uuid, job_id or ""); CPU series put (socket, domain) where GPUs have (gpu, uuid)
SeriesKey = tuple[str, str, str, str, str, str]
GpuKey = tuple[str, str, str, str]


class StackError(Exception):
    """The stack could not run (exit 2)."""


# -- the plan: nodes, GPUs, jobs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    job_id: str
    cluster: str
    node: str
    gpus: tuple[str, ...]
    project: str | None          # None: the job is missing from the ledger
    phase: str
    user: str
    when: str = "whole"          # whole | ends (before the switch) | starts (after it)
    # a Kubernetes pod (job_id is its UID): (namespace, name), and the device id the kubelet allocated it, with
    # the GPU index for the GPU's UUID: "0" (the whole GPU) or "1::0" (time-slicing replica 0 of GPU 1)
    pod: tuple[str, str] | None = None
    device: str = ""


@dataclass(frozen=True)
class Node:
    name: str
    cluster: str
    gpus: int
    epoch: int
    kind: str = "gpu"            # gpu (mapping-dir) | mig (mapping-dir, every GPU in MIG mode) | kube (PodResources)
    mig: tuple[str, ...] = ()    # kind mig: the GPU instance profiles, ids 1, 2, ... in this order


@dataclass(frozen=True)
class Plan:
    nodes: tuple[Node, ...]
    jobs: tuple[Job, ...]

    @property
    def projects(self) -> list[str]:
        return sorted({j.project for j in self.jobs if j.project})

    def mapping(self, node: str, phase: str) -> dict[str, list[str]]:
        """Mapping file name (GPU index, or `<gpu>.<GPU_I_ID>` for a MIG instance) -> job ids on `node` in `phase`:
        "before" the switch, "between" (the ending job has left, the next one has not arrived: the GPU idles) or
        "after"."""
        out: dict[str, list[str]] = defaultdict(list)
        for j in self.jobs:
            if j.node == node and (j.when == "whole" or (j.when, phase) in (("ends", "before"), ("starts", "after"))):
                for g in j.gpus:
                    out[g].append(j.job_id)
        return dict(out)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def pods(self) -> list[Job]:
        return [j for j in self.jobs if j.pod]


def pod_uid(namespace: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"wattprint-e2e-pod:{namespace}/{name}"))


def make_plan(nodes: int, gpus_per_node: int, *, shared_nodes: bool = True) -> Plan:
    """GPU slots in node order get roles: a long job, a shared GPU (a ledger job and one missing from the
    ledger), a switch (a job ends, the GPU idles, another starts), an idle GPU; then long, long, idle, ...
    A node's long slots form one multi-GPU job; projects and phases rotate so each project spans clusters.

    With `shared_nodes`, two more nodes: `mig-1` (jean-zay), one board in MIG mode (3g.40gb, 2g.20gb, 1g.10gb and
    an unpartitioned slice) with a job on the 3g instance and one on the 1g, none on the 2g; and `kube-1`
    (aws-usw2), found by allocation (the kubelet's PodResources API), replaying an idle trace: a pod that holds
    GPU 0 and runs nothing on it, and two pods on time-slicing replicas of GPU 1."""
    if nodes < 1 or gpus_per_node < 1 or nodes * gpus_per_node < 4:
        raise ValueError("need at least 4 GPUs in all (nodes x GPUs per node), one for each role")
    first_aws = (nodes + 1) // 2
    node_list = tuple(Node(f"node-{i + 1}", "jean-zay" if i < first_aws or nodes == 1 else "aws-usw2",
                           gpus_per_node, EPOCH_BASE - 17 * i) for i in range(nodes))
    roles = ["long", "shared", "switch", "idle"]
    while len(roles) < nodes * gpus_per_node:
        roles += ["long", "long", "idle"]
    counter = defaultdict(int)

    def new_id(cluster: str) -> str:
        counter[cluster] += 1
        return str(JOB_ID_BASE[cluster] + counter[cluster])

    jobs: list[Job] = []
    projects = PROJECTS[:2] if nodes * gpus_per_node < 8 else PROJECTS
    picks = 0

    def pick() -> tuple[str, str]:
        nonlocal picks
        picks += 1
        return projects[(picks - 1) % len(projects)], PHASES[(picks - 1) % len(PHASES)]

    for ni, node in enumerate(node_list):
        slots = roles[ni * gpus_per_node:(ni + 1) * gpus_per_node]
        long_gpus = tuple(str(g) for g, r in enumerate(slots) if r == "long")
        if long_gpus:
            p, ph = pick()
            jobs.append(Job(new_id(node.cluster), node.cluster, node.name, long_gpus, p, ph, "alice"))
        for g, role in enumerate(slots):
            if role == "shared":
                p, ph = pick()
                jobs.append(Job(new_id(node.cluster), node.cluster, node.name, (str(g),), p, ph, "bob"))
                jobs.append(Job(str(SCRATCH_ID_BASE + ni + 1), node.cluster, node.name, (str(g),), None, "", "carol"))
            elif role == "switch":
                p, ph = pick()
                jobs.append(Job(new_id(node.cluster), node.cluster, node.name, (str(g),), p, ph, "dave", "ends"))
                p, ph = pick()
                jobs.append(Job(new_id(node.cluster), node.cluster, node.name, (str(g),), p, ph, "erin", "starts"))
    if shared_nodes:
        mig = Node("mig-1", "jean-zay", 1, EPOCH_BASE - 17 * nodes, "mig", MIG_PROFILES)
        kube = Node("kube-1", KUBE_CLUSTER, 2, EPOCH_BASE - 17 * (nodes + 1), "kube")
        node_list += (mig, kube)
        for gi, user in (("1", "frank"), ("3", "grace")):     # GPU instances 1 (3g.40gb) and 3 (1g.10gb)
            p, ph = pick()
            jobs.append(Job(new_id(mig.cluster), mig.cluster, mig.name, (f"0.{gi}",), p, ph, user))
        for (ns, name), device, user in ((("ml", "notebook"), "0", "heidi"), (("team-a", "trainer"), "1::0", "ivan"),
                                         (("team-b", "server"), "1::1", "judy")):
            p, ph = pick()
            jobs.append(Job(pod_uid(ns, name), kube.cluster, kube.name, (device.split("::")[0],), p, ph, user,
                            pod=(ns, name), device=device))
    return Plan(node_list, tuple(jobs))


def config_yaml(plan: Plan, *, idle_metric: str | None = None, gpu_metric: str | None = None) -> str:
    """The cluster config. `idle_metric` and `gpu_metric` replace the idle and GPU counters' names (tests drop those
    series so)."""
    clusters = {}
    for name, (provider, region, zone, pue) in CLUSTERS.items():
        clusters[name] = {"provider": provider, "region": region, "zone": zone, "pue": pue,
                          "nodes": [n.name for n in plan.nodes if n.cluster == name] or [f"{PREFIX[name]}-*"]}
    cfg: dict[str, Any] = {
        "clusters": clusters,
        "default_cluster": "jean-zay",
        "ingest": {"step_seconds": STEP, "max_gap_seconds": 300},
        "report": {"layers": ["gpu", "idle", "pue"], "idle_policy": "pro-rata"},
        "budgets": {"projects": {p: {"monthly_kgco2eq": 100} for p in plan.projects}},
    }
    renamed = {k: v for k, v in (("idle_energy", idle_metric), ("gpu_energy", gpu_metric)) if v}
    if renamed:
        cfg["ingest"]["metrics"] = {"wattprint": renamed}
    return yaml.safe_dump(cfg, sort_keys=False)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ledger_csv(plan: Plan, window: Window, *, project_of: dict[str, str] | None = None) -> str:
    """The job ledger: every job with a project, start/end bracketing the time it ran. `project_of` overrides
    the project of some job ids (a test mis-assigns a job so)."""
    rows = ["job_id,project,phase,cluster,user,start,end,nodes,gpus"]
    for j in plan.jobs:
        if j.project is None or j.pod:   # pods: `wattprint jobs sync-kubernetes`, from kube-state-metrics
            continue
        start = window.start - 600 if j.when != "starts" else math.floor(window.switch_start)
        end = window.end + 600 if j.when != "ends" else math.ceil(window.switch_end)
        project = (project_of or {}).get(j.job_id, j.project)
        rows.append(f"{j.job_id},{project},{j.phase},{j.cluster},{j.user},{iso(start)},{iso(end)},{j.node},"
                    f"{len(j.gpus)}")
    return "\n".join(rows) + "\n"


# -- the hosts' CPUs: RAPL counters and job cgroups ---------------------------------------------------------

HOST_CPUS = 32                 # logical CPUs per virtual node (/proc/stat), over 2 sockets
HOST_HZ = 100                  # USER_HZ of /proc/stat
RAPL_RANGE_UJ = 3_000_000_000  # max_energy_range_uj: 3 kJ, so each package counter wraps every ~30 s here
PACKAGE_IDLE_W, PACKAGE_W_PER_CORE = 60.0, 9.0     # per socket
DRAM_IDLE_W, DRAM_W_PER_CORE = 6.0, 0.8
CPU_MODEL = "Intel(R) Xeon(R) Platinum 8480+"


def job_cores(job: Job) -> float:
    """Cores a job keeps busy: data loaders scale with its GPUs."""
    return 1.5 + 2.0 * len(job.gpus)


class HostLoad:
    """Every node's sysfs and procfs as the host collector reads them (--path.sysfs, --path.procfs): two RAPL
    packages with DRAM, /proc/stat, and a cgroup v2 job_<id> directory per running job whose cpu.stat
    usage_usec grows with the cores it keeps busy. A thread advances them every `period` seconds; each file is
    replaced atomically, as the kernel never shows a half-written counter."""

    def __init__(self, plan: Plan, root: Path, period: float = 0.25) -> None:
        self.plan = plan
        self.root = root
        self.period = period
        self.phase = "before"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._energy: dict[tuple[str, int, str], float] = {}   # (node, socket, domain) -> µJ, unwrapped
        self._usage: dict[tuple[str, str], float] = {}          # (node, job) -> µs
        self._ticks: dict[str, float] = {}
        self.wraps = 0                    # counter wraps written (the exporter must see through every one)
        self._lock = threading.Lock()     # set_phase (the driver) and _advance (the thread) touch the same cgroups
        for node in plan.nodes:
            self._setup(node)

    def sysfs(self, node: str) -> Path:
        return self.root / node / "sys"

    def procfs(self, node: str) -> Path:
        return self.root / node / "proc"

    @staticmethod
    def _write(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _zone(self, node: str, socket: int, domain: str) -> Path:
        entry = f"intel-rapl:{socket}" if domain == "package" else f"intel-rapl:{socket}:0"
        return self.sysfs(node) / "class" / "powercap" / entry

    def _setup(self, node: Node) -> None:
        proc = self.procfs(node.name)
        (proc / "sys" / "kernel" / "random").mkdir(parents=True, exist_ok=True)
        (proc / "sys" / "kernel" / "random" / "boot_id").write_text(f"e2e-boot-{node.name}\n")
        (proc / "cpuinfo").write_text("\n".join(
            f"processor\t: {i}\nmodel name\t: {CPU_MODEL}\nphysical id\t: {i % 2}\n" for i in range(HOST_CPUS)))
        for sock in (0, 1):
            for domain in ("package", "dram"):
                z = self._zone(node.name, sock, domain)
                z.mkdir(parents=True, exist_ok=True)
                (z / "name").write_text(f"package-{sock}\n" if domain == "package" else "dram\n")
                (z / "max_energy_range_uj").write_text(f"{RAPL_RANGE_UJ}\n")
                start = (1 + sock) * 1_000_000_000 + (0 if domain == "package" else 123_456_789)
                self._energy[(node.name, sock, domain)] = float(start)
                self._write(z / "energy_uj", f"{start}\n")
        cg = self.sysfs(node.name) / "fs" / "cgroup"
        (cg / "system.slice" / "slurmstepd.scope").mkdir(parents=True, exist_ok=True)
        (cg / "kubepods.slice" / "kubepods-besteffort.slice").mkdir(parents=True, exist_ok=True)
        (cg / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        self._ticks[node.name] = 50_000_000.0
        self._write_stat(node.name)
        self._sync_cgroups(node.name)

    def _write_stat(self, node: str) -> None:
        total = int(self._ticks[node])
        self._write(self.procfs(node) / "stat", f"cpu  {total // 4} 0 {total // 8} {total - total // 4 - total // 8}"
                    " 0 0 0 0 0 0\nintr 0\n")

    def _cgroup(self, node: str, job: Job) -> Path:
        cg = self.sysfs(node) / "fs" / "cgroup"
        if job.pod:   # the kubelet's systemd layout: dashes of the UID become underscores
            return cg / "kubepods.slice" / "kubepods-besteffort.slice" / \
                f"kubepods-besteffort-pod{job.job_id.replace('-', '_')}.slice"
        return cg / "system.slice" / "slurmstepd.scope" / f"job_{job.job_id}"

    def _running(self, node: str) -> list[Job]:
        return [j for j in self.plan.jobs if j.node == node
                and (j.when == "whole" or (j.when, self.phase) in (("ends", "before"), ("starts", "after")))]

    def _sync_cgroups(self, node: str) -> None:
        running = {j.job_id for j in self._running(node)}
        for j in self.plan.jobs:
            if j.node != node:
                continue
            d = self._cgroup(node, j)
            if j.job_id in running and not d.exists():
                d.mkdir()
                self._usage[(node, j.job_id)] = 0.0
                self._write(d / "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n")
            elif j.job_id not in running and d.exists():
                shutil.rmtree(d)     # slurmstepd removes the job's cgroup when it ends

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase
            for node in self.plan.nodes:
                self._sync_cgroups(node.name)

    def _advance(self, dt: float) -> None:
        for node in self.plan.nodes:
            busy = 0.0
            for j in self._running(node.name):
                cores = job_cores(j)
                busy += cores
                key = (node.name, j.job_id)
                self._usage[key] += cores * dt * 1e6
                u = int(self._usage[key])
                self._write(self._cgroup(node.name, j) / "cpu.stat",
                            f"usage_usec {u}\nuser_usec {u * 3 // 4}\nsystem_usec {u - u * 3 // 4}\n")
            busy += 0.5                                   # the host's own daemons
            self._ticks[node.name] += HOST_CPUS * dt * HOST_HZ
            self._write_stat(node.name)
            for sock in (0, 1):
                for domain, idle_w, per_core in (("package", PACKAGE_IDLE_W, PACKAGE_W_PER_CORE),
                                                 ("dram", DRAM_IDLE_W, DRAM_W_PER_CORE)):
                    key3 = (node.name, sock, domain)
                    before = int(self._energy[key3]) // RAPL_RANGE_UJ
                    self._energy[key3] += (idle_w + per_core * busy / 2) * dt * 1e6
                    self.wraps += int(self._energy[key3]) // RAPL_RANGE_UJ - before
                    self._write(self._zone(node.name, sock, domain) / "energy_uj",
                                f"{int(self._energy[key3]) % RAPL_RANGE_UJ}\n")

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.period):
            now = time.monotonic()
            with self._lock:
                self._advance(now - last)
            last = now

    def __enter__(self) -> HostLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# -- processes ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(name: str) -> list[str]:
    """The installed console script next to this Python (the venv's), else the module."""
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", {"wattprint": "wattprint.pipeline.cli",
                                   "wattprint-exporter": "wattprint.exporter"}[name]]


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 15) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            lines = []
        return f"--- {self.name} ({self.log})\n" + "\n".join(lines)


# -- the shared nodes: an idle trace, the kubelet, kube-state-metrics, the rules scaled in time --------------


def idle_trace(dest: Path) -> Path:
    """The shipped real trace's leading idle segment (every row before the first with `util_gpu` >= 5 %, the
    exporter's default --held-idle-utilization; about 20 s of 0-3 %), same columns, for the Kubernetes node: its
    GPUs replay it in a loop, so a pod that holds one and runs nothing on it holds an idle GPU."""
    from wattprint.exporter.backends.replay import default_trace_path

    lines = default_trace_path().read_text().splitlines()
    col = lines[0].split(",").index("util_gpu")
    rows = []
    for line in lines[1:]:
        if float(line.split(",")[col]) >= 5:
            break
        rows.append(line)
    if len(rows) < 2:
        raise StackError("the shipped trace does not start with an idle segment")
    dest.write_text("\n".join([lines[0], *rows]) + "\n")
    return dest


def replay_uuids(node: Node, trace: Path) -> list[str]:
    """The GPU UUIDs the replay backend gives `node`'s GPUs (its own code: from the host name and the index)."""
    from wattprint.exporter.backends.replay import ReplayBackend

    backend = ReplayBackend(trace_path=trace, gpus=node.gpus, hostname=node.name)
    backend.open()
    return [info.uuid for info in backend.infos]


def seconds_text(seconds: float) -> str:
    """A Prometheus duration: 60 -> 1m, 15 -> 15s."""
    if seconds != int(seconds) or seconds <= 0:
        raise StackError(f"rules scaled in time: {seconds} s is not a whole, positive number of seconds")
    n = int(seconds)
    return next(f"{n // u}{name}" for u, name in ((3600, "h"), (60, "m"), (1, "s")) if n % u == 0)


def scaled_rules(dest: Path, scale: int = RULE_TIME_SCALE) -> list[Path]:
    """The real rule files, scaled in time only: every `[1h]` window and every `for:` divided by `scale`, and the
    held-idle GPU-seconds threshold with them (GPU-seconds over a window scale with it). Nothing else changes:
    the other thresholds are rates or ratios, the other windows ([5m] rates) already fit a run of minutes."""
    dest.mkdir(parents=True, exist_ok=True)
    header = (f"# GENERATED by scripts/e2e.py from rules/{{}}: every 1-hour range, every `for:` and the held-idle "
              f"GPU-seconds threshold divided by {scale}.\n")
    th = (REPO / "rules" / "wattprint-thresholds.rules.yml").read_text()
    th, n = re.subn(r"(record: wattprint:alert_threshold_job_held_idle_gpu_seconds\n\s*expr: vector\()([0-9.]+)\)",
                    lambda m: f"{m.group(1)}{float(m.group(2)) / scale:g})", th)
    if n != 1:
        raise StackError("rules/wattprint-thresholds.rules.yml: no wattprint:alert_threshold_job_held_idle_gpu_seconds"
                         " = vector(N) to scale")
    rules = (REPO / "rules" / "wattprint.rules.yml").read_text()
    rules, windows = re.subn(r"\[1h\]", f"[{seconds_text(3600 / scale)}]", rules)
    units = {"s": 1, "m": 60, "h": 3600}
    rules, fors = re.subn(r"^(\s*for: )(\d+)([smh])\s*$",
                          lambda m: f"{m.group(1)}{seconds_text(int(m.group(2)) * units[m.group(3)] / scale)}",
                          rules, flags=re.M)
    if not windows or not fors:
        raise StackError(f"rules/wattprint.rules.yml: found {windows} [1h] windows and {fors} `for:` to scale")
    out = [dest / "wattprint-thresholds.rules.yml", dest / "wattprint.rules.yml"]
    out[0].write_text(header.format(out[0].name) + th)
    out[1].write_text(header.format(out[1].name) + rules)
    promtool = shutil.which("promtool")
    if not promtool:
        raise StackError("promtool not found on PATH (Debian's prometheus package ships it)")
    done = subprocess.run([promtool, "check", "rules", *map(str, out)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise StackError(f"promtool check rules failed on the scaled rules:\n{done.stdout}{done.stderr}")
    return out


def ksm_page(plan: Plan) -> str:
    """What kube-state-metrics serves for the plan's pods (its v2 families and labels; the project and phase as pod
    labels it is allowed to export: --metric-labels-allowlist=pods=[wattprint.io/project,wattprint.io/phase])."""
    lines = ["# HELP kube_pod_info Information about pod.", "# TYPE kube_pod_info gauge"]
    for j in plan.pods:
        assert j.pod is not None
        ns, name = j.pod
        lines.append(f'kube_pod_info{{namespace="{ns}",pod="{name}",uid="{j.job_id}",host_ip="10.0.0.7",'
                     f'pod_ip="10.1.0.{len(lines)}",node="{j.node}",created_by_kind="<none>",created_by_name="<none>",'
                     'priority_class="",host_network="false"} 1')
    lines += ["# HELP kube_pod_labels Kubernetes labels converted to Prometheus labels.",
              "# TYPE kube_pod_labels gauge"]
    for j in plan.pods:
        assert j.pod is not None
        ns, name = j.pod
        lines.append(f'kube_pod_labels{{namespace="{ns}",pod="{name}",uid="{j.job_id}",'
                     f'label_wattprint_io_project="{j.project}",label_wattprint_io_phase="{j.phase}"}} 1')
    return "\n".join(lines) + "\n"


class StaticPage:
    """An HTTP server on a free loopback port answering /metrics with a fixed text page (kube-state-metrics' pods)."""

    def __init__(self, text: str) -> None:
        body = text.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.send_response(200 if self.path.split("?")[0] == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class AlertWatch:
    """Reads Prometheus' /api/v1/alerts every `period` seconds; keeps, per alert (name and labels), when it was
    first seen pending and firing (wall clock), Prometheus' activeAt, and its annotations."""

    def __init__(self, url: str, period: float = 0.5) -> None:
        self.url = url
        self.period = period
        self.seen: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                alerts = session.get(self.url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            except (requests.RequestException, ValueError, KeyError):
                self.errors += 1
                alerts = []
            now = time.time()
            for a in alerts:
                key = tuple(sorted(a["labels"].items()))
                rec = self.seen.setdefault(key, {"labels": a["labels"], "annotations": a.get("annotations", {}),
                                                 "active_at": a.get("activeAt", ""), "pending_seen": now})
                if a.get("state") == "firing" and "firing_seen" not in rec:
                    rec.update(firing_seen=now, annotations=a.get("annotations", {}), active_at=a.get("activeAt", ""))
            self._stop.wait(self.period)

    def firing(self, name: str) -> list[dict[str, Any]]:
        return [r for r in list(self.seen.values()) if r["labels"].get("alertname") == name and "firing_seen" in r]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def wait_ready(proc: Proc, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise StackError(f"{proc.name} exited with status {proc.proc.returncode}:\n{proc.tail()}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise StackError(f"{proc.name} not ready at {url} after {timeout:.0f} s:\n{proc.tail()}")


@dataclass
class Window:
    start: int                     # S, unix seconds on the step grid
    end: int                       # E
    switch_end: float              # when the "ends" job left its GPU
    switch_start: float            # when the "starts" job arrived

    @property
    def report_start(self) -> int:
        return self.start // 3600 * 3600

    @property
    def report_end(self) -> int:
        return -(-self.end // 3600) * 3600


@dataclass
class Page:
    """One exporter page: its poll number and its energy counters (joules)."""

    polls: int
    values: dict[SeriesKey, float]
    read_at: float = 0.0           # when this poll's page was first read


def parse_page(text: str) -> Page:
    polls = -1
    values: dict[SeriesKey, float] = {}
    kinds = {v: k for k, v in METRICS.items()}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == POLLS:
                polls = int(s.value)
            elif s.name in kinds:
                values[series_key(kinds[s.name], s.labels)] = s.value
    return Page(polls, values)


def series_key(kind: str, labels: dict[str, str]) -> SeriesKey:
    device = (labels.get("socket", ""), labels.get("domain", "")) if kind in (*CPU_KINDS, "cpu_seconds") else \
        (labels.get("gpu", ""), labels.get("uuid", ""))
    last = labels.get("job_id", "") if kind in JOB_KINDS else \
        labels.get("gpu_instance", "") if kind in INSTANCE_KINDS else ""
    return (kind, labels.get("cluster", ""), labels.get("hostname", ""), *device, last)


class Capture:
    """Reads every exporter's /metrics every `period` seconds in the background; keeps each poll's page once."""

    def __init__(self, targets: dict[str, str], period: float = 0.1) -> None:
        self.targets = targets          # instance (host:port) -> node name
        self.period = period
        self.pages: dict[str, dict[int, Page]] = {t: {} for t in targets}
        self.reads = 0
        self.errors = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(t,), daemon=True) for t in targets]

    def _loop(self, instance: str) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                page = parse_page(session.get(f"http://{instance}/metrics", timeout=2).text)
                page.read_at = time.time()
                self.pages[instance].setdefault(page.polls, page)
                self.reads += 1
            except (requests.RequestException, ValueError):
                self.errors += 1
            self._stop.wait(max(0.0, self.period - (time.monotonic() - t0)))

    def __enter__(self) -> Capture:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)


@dataclass
class Reference:
    """The exporters' counters at S and E, and what was seen on the way."""

    at_start: dict[SeriesKey, float]
    at_end: dict[SeriesKey, float]
    pages_checked: int                       # exporter pages whose conservation was checked
    conservation_errors: list[str]           # per page and GPU where jobs + idle != GPU (mJ)
    prometheus_mismatches: list[str]         # series where Prometheus' value differs from the exporter's page
    intensity: dict[str, float] = field(default_factory=dict)  # zone -> serve-intensity's value, at E
    # the same counters read at wall-clock S and E (the last page read by then): for scale only
    wall_start: dict[SeriesKey, float] = field(default_factory=dict)
    wall_end: dict[SeriesKey, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rapl_wraps: int = 0                      # RAPL counter wraps the hosts went through during the run
    mig_pages: int = 0                       # pages of MIG nodes whose instance accounts were checked
    mig_errors: list[str] = field(default_factory=list)   # per page and board where an instance identity failed
    edge_polls: dict[str, tuple[int, int]] = field(default_factory=dict)  # node -> its polls Prometheus has at S, E
    kube_started: float = 0.0                # when the Kubernetes node's exporter started (its pods held GPUs since)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # WattprintJobHoldingIdleGpus alerts seen firing

    def increase(self, key: SeriesKey) -> float:
        return self.at_end[key] - self.at_start.get(key, 0.0)

    def keys(self, kind: str) -> list[SeriesKey]:
        return sorted(k for k in self.at_end if k[0] == kind)


def mj(v: float) -> int:
    return round(v * 1000)


def uj(v: float) -> int:
    return round(v * 1_000_000)


def page_conservation(node: str, page: Page) -> list[str]:
    """Per GPU (mJ, the GPU accounts' unit) and per socket and domain (µJ, RAPL's): jobs + idle == the whole."""
    gpus: dict[GpuKey, list[int]] = defaultdict(lambda: [0, 0])  # [gpu mJ, jobs + idle mJ]
    cpus: dict[GpuKey, list[int]] = defaultdict(lambda: [0, 0])  # [socket µJ, jobs + idle µJ]
    for key, v in page.values.items():
        if key[0] in GPU_KINDS:
            gpus[key[1:5]][0 if key[0] == "gpu" else 1] += mj(v)
        elif key[0] in CPU_KINDS:
            cpus[key[1:5]][0 if key[0] == "cpu" else 1] += uj(v)
    return [f"{node} poll {page.polls} GPU {g[3]}: jobs + idle {b} mJ != GPU {a} mJ"
            for g, (a, b) in sorted(gpus.items()) if a != b] + \
           [f"{node} poll {page.polls} socket {c[2]} {c[3]}: jobs + idle {b} µJ != socket {a} µJ"
            for c, (a, b) in sorted(cpus.items()) if a != b]


def page_mig(plan: Plan, node: str, page: Page) -> list[str]:
    """Per MIG board, in mJ: every instance == its jobs (the plan's `<gpu>.<GPU_I_ID>` files) + its idle; the
    instances add up to at most the board; the board's idle == the instances' idle + the unpartitioned slices'
    part (board - instances)."""
    on: dict[tuple[str, str], list[str]] = defaultdict(list)     # (gpu, gpu instance) -> job ids
    for slot, ids in plan.mapping(node, "before").items():
        gpu, _, gi = slot.partition(".")
        if gi:
            on[(gpu, gi)] += ids
    boards: dict[GpuKey, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    inst: dict[tuple[GpuKey, str], list[int]] = defaultdict(lambda: [0, 0])     # [energy, idle]
    jobs: dict[tuple[str, str], int] = {}
    for key, v in page.values.items():
        g = key[1:5]
        if key[0] in ("gpu", "idle"):
            boards[g][key[0]] += mj(v)
        elif key[0] in INSTANCE_KINDS:
            inst[(g, key[5])][0 if key[0] == "inst" else 1] += mj(v)
        elif key[0] == "job":
            jobs[(g[2], key[5])] = mj(v)
    errors = []
    for (g, gi), (energy, idle) in sorted(inst.items()):
        charged = sum(jobs.get((g[2], j), 0) for j in on.get((g[2], gi), []))
        if charged + idle != energy:
            errors.append(f"{node} poll {page.polls} GPU {g[2]} instance {gi}: jobs {charged} + idle {idle} mJ != "
                          f"instance {energy} mJ")
    for g, b in sorted(boards.items()):
        parts = [(e, i) for (gg, _), (e, i) in inst.items() if gg == g]
        if not parts:
            errors.append(f"{node} poll {page.polls} GPU {g[2]}: no MIG instance exported")
            continue
        total, total_idle = sum(e for e, _ in parts), sum(i for _, i in parts)
        if total > b["gpu"] or b["idle"] != total_idle + (b["gpu"] - total):
            errors.append(f"{node} poll {page.polls} GPU {g[2]}: board {b['gpu']} mJ, idle {b['idle']} mJ, instances "
                          f"{total} mJ with idle {total_idle} mJ")
    return errors


class Stack:
    """Exporters, serve-intensity and Prometheus on free loopback ports under `work`; close() stops them."""

    def __init__(self, plan: Plan, work: Path, *, seconds: int, scrape_interval: float = 1.0, step: int = STEP,
                 log: Any = print) -> None:
        self.plan = plan
        self.work = work
        self.seconds = seconds
        self.scrape = scrape_interval
        self.step = step
        self.log = log
        self.procs: list[Proc] = []
        self.exporters: dict[str, str] = {}  # instance -> node
        self.prometheus_url = ""
        self.window: Window | None = None
        self._next_note = 0.0
        self.hosts: HostLoad | None = None
        self._contexts = contextlib.ExitStack()   # the kubelet's gRPC server, kube-state-metrics' page
        self.alerts: AlertWatch | None = None
        self.kube_started = 0.0
        self.ksm = ""                              # kube-state-metrics' instance, when the plan has pods

    # lifecycle
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:
            proc = Proc(name, subprocess.Popen(argv, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT), log)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        if self.alerts is not None:
            self.alerts.stop()
            self.alerts = None
        if self.hosts is not None:
            self.hosts.__exit__(None, None, None)
            self.hosts = None
        for p in self.procs:
            if p.proc.poll() is None:
                p.proc.terminate()
        for p in self.procs:
            try:
                p.proc.wait(10)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(10)
        self.procs.clear()
        self._contexts.close()

    def log_tails(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def write_mapping(self, node: str, phase: str) -> None:
        if self.plan.node(node).kind == "kube":   # the kubelet says which pod holds which device
            return
        d = self.work / "jobs" / node
        d.mkdir(parents=True, exist_ok=True)
        mapping = self.plan.mapping(node, phase)
        slots = {str(g) for g in range(self.plan.node(node).gpus)} | {
            g for j in self.plan.jobs if j.node == node for g in j.gpus}
        for g in sorted(slots):
            path = d / g
            ids = mapping.get(g, [])
            if ids:
                tmp = d / f".{g}.tmp"   # dot files are not GPU indexes; renamed into place atomically, as the
                tmp.write_text("\n".join(ids) + "\n")  # Slurm prolog/epilog do
                os.replace(tmp, path)
            elif path.exists():
                path.unlink()

    def start(self) -> None:
        prometheus = shutil.which("prometheus")
        if not prometheus:
            raise StackError("prometheus not found on PATH: run `make e2e` as root (it installs Debian's "
                             "prometheus), or apt-get install --no-install-recommends prometheus")
        (self.work / "wattprint.yaml").write_text(config_yaml(self.plan))
        retention = str(max(300, 3 * self.seconds + 600))  # a finished job's counter outlives the window
        ready: list[tuple[Proc, str]] = []
        rule_files = scaled_rules(self.work / "rules")
        self.hosts = HostLoad(self.plan, self.work / "hosts").__enter__()
        for node in self.plan.nodes:
            self.write_mapping(node.name, "before")
            port = free_port()
            if node.kind == "kube":
                discovery = self._kubelet(node)
                self.kube_started = time.time()
            else:
                discovery = ["--job-discovery", "mapping-dir", "--mapping-dir", str(self.work / "jobs" / node.name)]
                if node.kind == "mig":
                    discovery += ["--replay-mig", ",".join(node.mig)]
            p = self._spawn(f"exporter-{node.name}", [
                *command("wattprint-exporter"), "--backend", "replay", "--replay-gpus", str(node.gpus),
                "--replay-epoch", str(node.epoch), *discovery, "--label", f"cluster={node.cluster}",
                "--path.sysfs", str(self.hosts.sysfs(node.name)), "--path.procfs", str(self.hosts.procfs(node.name)),
                "--hostname", node.name, "--job-retention", retention, "--log.level", "warning",
                "--web.listen-address", f"127.0.0.1:{port}"])
            self.exporters[f"127.0.0.1:{port}"] = node.name
            ready.append((p, f"http://127.0.0.1:{port}/-/healthy"))
        scrape_configs: list[dict[str, Any]] = []
        if self.plan.pods:
            self.ksm = self._contexts.enter_context(contextlib.closing(StaticPage(ksm_page(self.plan)))).address
            scrape_configs.append({"job_name": "kube-state-metrics", "static_configs": [{"targets": [self.ksm]}]})
        port = free_port()
        intensity = f"127.0.0.1:{port}"
        p = self._spawn("serve-intensity", [
            *command("wattprint"), "serve-intensity", "--source", "annual", "--config",
            str(self.work / "wattprint.yaml"), "--refresh-interval", "5", "--log.level", "warning",
            "--web.listen-address", intensity])
        ready.append((p, f"http://{intensity}/metrics"))
        for proc, url in ready:
            wait_ready(proc, url)

        scrape = f"{self.scrape:g}s"
        config = {
            # rules every second: the scaled rules' windows are a minute
            "global": {"scrape_interval": scrape, "scrape_timeout": scrape, "evaluation_interval": "1s"},
            "rule_files": [str(f) for f in rule_files],
            "scrape_configs": [
                {"job_name": "wattprint-exporter", "static_configs": [{"targets": sorted(self.exporters)}]},
                {"job_name": "wattprint-intensity", "static_configs": [{"targets": [intensity]}]},
                *scrape_configs,
            ],
        }
        (self.work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        p = self._spawn("prometheus", [
            prometheus, f"--config.file={self.work / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.work / 'prometheus-data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d"])
        self.prometheus_url = f"http://127.0.0.1:{port}"
        wait_ready(p, self.prometheus_url + "/-/ready")
        self.alerts = AlertWatch(self.prometheus_url)
        self.alerts.start()

        targets = len(self.exporters) + 1 + len(scrape_configs)
        gpus = sum(n.gpus for n in self.plan.nodes)
        deadline = time.monotonic() + 60
        while True:
            up = self.instant("sum(up)", time.time())
            seen = self.instant(f"count({METRICS['gpu']})", time.time())
            if up and seen and float(up[0]["value"][1]) == targets and float(seen[0]["value"][1]) == gpus:
                break
            if time.monotonic() > deadline:
                raise StackError(f"Prometheus did not see {targets} targets up and {gpus} GPUs within 60 s:\n"
                                 + self.log_tails())
            time.sleep(0.2)

    def _kubelet(self, node: Node) -> list[str]:
        """The Kubernetes node's discovery: a real gRPC server of the kubelet's PodResources v1 API on a unix socket
        (tests/kubelet_podresources.py) allocating the plan's pods their devices, the kubelet's pod log directory
        (<namespace>_<pod>_<uid>), and the idle trace."""
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        from tests.kubelet_podresources import Kubelet, pod, serving

        trace = idle_trace(self.work / "idle_trace.csv")
        uuids = replay_uuids(node, trace)
        kubelet = Kubelet()
        logs = self.work / "pod-logs" / node.name
        logs.mkdir(parents=True, exist_ok=True)
        for j in self.plan.pods:
            if j.node != node.name:
                continue
            assert j.pod is not None
            gpu, _, replica = j.device.partition("::")
            device = uuids[int(gpu)] + (f"::{replica}" if replica else "")
            kubelet.pods.append(pod(*j.pod, ("main", "nvidia.com/gpu", [device])))
            (logs / f"{j.pod[0]}_{j.pod[1]}_{j.job_id}").mkdir(exist_ok=True)
        _, socket_path = self._contexts.enter_context(serving(kubelet))
        return ["--replay-trace", str(trace), "--job-discovery", "kubernetes",
                "--kubelet-podresources-socket", socket_path, "--kubelet-pod-logs-dir", str(logs)]

    # Prometheus
    def instant(self, expr: str, at: float) -> list[dict[str, Any]]:
        r = requests.post(self.prometheus_url + "/api/v1/query", data={"query": expr, "time": repr(at)}, timeout=30)
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise StackError(f"Prometheus query {expr!r} failed: HTTP {r.status_code} {body}")
        return list(body["data"]["result"])

    # the run
    def run(self) -> Reference:
        """Choose [S, E], switch jobs mid-way, read the exporters throughout; return their counters at S and E."""
        now = time.time()
        s = math.ceil((now + 2 * self.scrape + 1) / self.step) * self.step
        e = s + math.ceil(self.seconds / self.step) * self.step
        w = Window(s, e, s + 0.4 * (e - s), s + 0.5 * (e - s))
        self.window = w
        self._next_note = s + 30.0
        self.log(f"window: {iso(s)} .. {iso(e)} ({e - s} s); jobs change on one GPU at +{w.switch_end - s:.0f} s "
                 f"(one ends) and +{w.switch_start - s:.0f} s (another starts)")
        with Capture(self.exporters) as cap:
            self._sleep_until(w.switch_end, s, e)
            for node in self.plan.nodes:
                self.write_mapping(node.name, "between")
            assert self.hosts is not None
            self.hosts.set_phase("between")
            self._sleep_until(w.switch_start, s, e)
            for node in self.plan.nodes:
                self.write_mapping(node.name, "after")
            self.hosts.set_phase("after")
            self._sleep_until(e + self.scrape + 1.0, s, e)  # Prometheus' last scrape before E has landed
        if cap.errors:
            self.log(f"  ({cap.errors} of {cap.reads + cap.errors} direct reads of /metrics failed)")
        ref = self._reference(cap, w)
        ref.rapl_wraps = self.hosts.wraps
        ref.kube_started = self.kube_started
        return ref

    def held_idle_alerts(self) -> list[dict[str, Any]]:
        """The WattprintJobHoldingIdleGpus alerts seen firing (Prometheus' alerts are read in the background from
        the start; the pipeline runs meanwhile). Waits until every pod holding a whole GPU has one, or until three
        times what the scaled rules need (the GPU-seconds threshold, then `for:`) has passed since its exporter
        started. Not firing by then fails the check (exit 1)."""
        held = {j.job_id for j in self.plan.pods if "::" not in j.device}
        if not held or self.alerts is None:
            return []
        deadline = self.kube_started + 3 * (1800 + 900) / RULE_TIME_SCALE + 30
        said = False
        while not held <= {a["labels"].get("job_id") for a in self.alerts.firing(HELD_IDLE_ALERT)}:
            if time.time() > deadline:
                break
            if not said:
                self.log(f"  waiting for {HELD_IDLE_ALERT} to fire for the idle-held pod")
                said = True
            self._sleep_until(time.time() + 0.5, 0, 0)
        return self.alerts.firing(HELD_IDLE_ALERT)

    def _sleep_until(self, at: float, s: int, e: int) -> None:
        """Sleep until `at`, saying every 30 s how far the window is, and stop if a process died."""
        while (left := at - time.time()) > 0:
            time.sleep(min(left, 1.0))
            now = time.time()
            if now >= self._next_note and now < e:
                self._next_note = now + 30
                if now > s:
                    self.log(f"  ... {now - s:.0f} s of {e - s} s")
            for p in self.procs:
                if p.proc.poll() is not None:
                    raise StackError(f"{p.name} exited during the run:\n{p.tail()}")

    def _reference(self, cap: Capture, w: Window) -> Reference:
        pages_checked = 0
        conservation: list[str] = []
        mig_pages = 0
        mig_errors: list[str] = []
        for instance, pages in cap.pages.items():
            node = self.exporters[instance]
            for page in pages.values():
                pages_checked += 1
                conservation.extend(page_conservation(node, page))
                if self.plan.node(node).kind == "mig":
                    mig_pages += 1
                    mig_errors.extend(page_mig(self.plan, node, page))
        edge_polls: dict[str, list[int]] = defaultdict(list)
        mismatches: list[str] = []
        notes: list[str] = []
        edges: list[dict[SeriesKey, float]] = []
        names = "|".join([*METRICS.values(), POLLS])
        for at in (w.start, w.end):
            rows = self.instant(f'{{__name__=~"{names}", job="wattprint-exporter"}}', at)
            polls = {r["metric"]["instance"]: int(float(r["value"][1]))
                     for r in rows if r["metric"]["__name__"] == POLLS}
            prom: dict[str, dict[SeriesKey, float]] = defaultdict(dict)
            kinds = {v: k for k, v in METRICS.items()}
            for r in rows:
                name = r["metric"]["__name__"]
                if name in kinds:
                    prom[r["metric"]["instance"]][series_key(kinds[name], r["metric"])] = float(r["value"][1])
            values: dict[SeriesKey, float] = {}
            for instance, node in self.exporters.items():
                if instance not in polls:
                    raise StackError(f"Prometheus has no sample of {node} ({instance}) at {iso(at)}")
                edge_polls[node].append(polls[instance])
                page = cap.pages[instance].get(polls[instance])
                if page is None:  # the direct reads missed that poll: take the values Prometheus scraped
                    notes.append(f"{node}: poll {polls[instance]} (Prometheus' sample at {iso(at)}) was not among "
                                 "the pages read directly; used Prometheus' values for it")
                    values.update(prom[instance])
                    continue
                values.update(page.values)
                for key in sorted(set(page.values) | set(prom[instance])):
                    a, b = page.values.get(key), prom[instance].get(key)
                    if a != b:
                        mismatches.append(f"{node} {key} at {iso(at)}: exporter page {a}, Prometheus {b}")
            edges.append(values)
        intensity = {r["metric"]["zone"]: float(r["value"][1])
                      for r in self.instant("wattprint_grid_intensity_grams_per_kwh", w.end)}
        wall: list[dict[SeriesKey, float]] = []
        for at in (w.start, w.end):
            values = {}
            for pages in cap.pages.values():
                before = [p for p in pages.values() if p.read_at <= at]
                if before:
                    values.update(max(before, key=lambda p: p.read_at).values)
            wall.append(values)
        return Reference(edges[0], edges[1], pages_checked, conservation, mismatches, intensity, wall[0], wall[1],
                         notes, mig_pages=mig_pages, mig_errors=mig_errors,
                         edge_polls={n: (p[0], p[1]) for n, p in edge_polls.items()})


# -- the pipeline ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    db: Path
    reports: dict[str, dict[str, Any]]       # project -> JSON report
    fleet: dict[str, Any]
    files: list[Path]
    samples: int
    series: int
    ingest_output: str
    seconds: float


def cli(*args: str, timeout: float = 600) -> str:
    argv = [*command("wattprint"), *args]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise StackError(f"`wattprint {' '.join(args)}` exited {done.returncode}:\n{done.stderr.strip()}")
    return done.stdout


def run_pipeline(work: Path, prometheus_url: str, plan: Plan, window: Window, *, config_text: str | None = None,
                 ledger_text: str | None = None, formats: Sequence[str] = ("json", "md")) -> Outcome:
    """The real CLI, into a fresh DuckDB file under `work`: jobs import, ingest [S, E], reports."""
    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    cfg, ledger, db = work / "wattprint.yaml", work / "ledger.csv", work / "wattprint.duckdb"
    cfg.write_text(config_text if config_text is not None else config_yaml(plan))
    ledger.write_text(ledger_text if ledger_text is not None else ledger_csv(plan, window))
    db.unlink(missing_ok=True)
    common = ("--db", str(db), "--config", str(cfg))
    cli("jobs", "import", str(ledger), "--format", "csv", *common, "-q")
    if plan.pods:   # the pods, as production imports them: kube-state-metrics' series in Prometheus
        cli("jobs", "sync-kubernetes", "--prometheus", prometheus_url, "--start", iso(window.report_start),
            "--end", iso(window.end + STEP), "--cluster", KUBE_CLUSTER, "--step", str(STEP), *common, "-q")
    ingest_out = cli("ingest", "--prometheus", prometheus_url, "--start", iso(window.start), "--end", iso(window.end),
                     "--step", str(STEP), *common)
    span = ("--start", iso(window.report_start), "--end", iso(window.report_end))
    reports: dict[str, dict[str, Any]] = {}
    files: list[Path] = []
    projects = sorted({line.split(",")[1] for line in ledger.read_text().splitlines()[1:] if line}
                      | {j.project for j in plan.pods if j.project})
    for name in [*projects, None]:
        stem = work / "reports" / (name or "all-projects")
        stem.parent.mkdir(exist_ok=True)
        for fmt in formats:
            out = stem.with_suffix("." + fmt)
            cli("report", *(("--project", name) if name else ()), *span, "--format", fmt, "--out", str(out), *common,
                "-q")
            files.append(out)
        if "json" in formats:
            reports[name or ""] = json.loads(stem.with_suffix(".json").read_text())
    with duckdb.connect(str(db), read_only=True, config=duckdb_config()) as con:
        samples, series = con.execute("SELECT count(*), count(DISTINCT series_id) FROM samples").fetchall()[0]
    fleet = reports.pop("", {})
    return Outcome(db, reports, fleet, files, int(samples), int(series), ingest_out, time.monotonic() - t0)


# -- the checks --------------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    checks: list[Check]
    projects: dict[str, tuple[float, float]]       # project -> (report J, exporter J)
    jobs: dict[tuple[str, str], tuple[float, float]]  # (cluster, job) -> (fct J, exporter J)
    gpus: dict[GpuKey, tuple[float, float, float]]  # GPU -> (fct jobs + idle J, DB GPU counter J, exporter GPU J)
    fleet: dict[str, float]
    cpu: dict[str, Any] = field(default_factory=dict)   # host energy: exporters' per-job and per-socket figures
    shared: dict[str, Any] = field(default_factory=dict)  # the MIG instances, the pods, the held-idle alert

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else (0.0 if a == 0 else math.inf)


def pct(a: float, b: float) -> str:
    return f"{(a - b) / b * 100:+.4f} %" if b else ("0 %" if a == 0 else "inf")


def check(plan: Plan, ref: Reference, out: Outcome) -> Verdict:
    checks: list[Check] = []

    def add(name: str, ok: bool, detail: str) -> None:
        checks.append(Check(name, ok, detail))

    # exporter side: the counters as served
    add("exporter pages: jobs + idle == GPU, in mJ", ref.pages_checked > 0 and not ref.conservation_errors,
        f"{ref.pages_checked} pages read directly"
        + (": " + "; ".join(ref.conservation_errors[:5]) if ref.conservation_errors else ""))
    add("Prometheus holds what the exporters served", not ref.prometheus_mismatches,
        "; ".join(ref.prometheus_mismatches[:5]) or "every series equal at S and E")
    win: dict[GpuKey, list[int]] = defaultdict(lambda: [0, 0])
    for key in ref.keys("gpu") + ref.keys("idle") + ref.keys("job"):
        win[key[1:5]][0 if key[0] == "gpu" else 1] += mj(ref.at_end[key]) - mj(ref.at_start.get(key, 0.0))
    bad = [f"GPU {g}: jobs + idle {b} mJ, GPU {a} mJ" for g, (a, b) in sorted(win.items()) if a != b]
    add("exporter counters over [S, E]: jobs + idle == GPU, in mJ", not bad, "; ".join(bad) or f"{len(win)} GPUs")

    job_ref: dict[tuple[str, str], float] = defaultdict(float)
    for key in ref.keys("job"):
        job_ref[(key[1], key[5])] += ref.increase(key)
    planned = {(j.cluster, j.job_id) for j in plan.jobs}
    add("every planned job has a counter", set(job_ref) == planned,
        f"unexpected {sorted(set(job_ref) - planned)}, missing {sorted(planned - set(job_ref))}")

    # per project: report (layer gpu) vs the exporters' per-job counters
    projects: dict[str, tuple[float, float]] = {}
    for p in plan.projects:
        exp = sum(job_ref[(j.cluster, j.job_id)] for j in plan.jobs if j.project == p)
        rep = out.reports.get(p)
        got = rep["total"]["energy_kwh"] * 3.6e6 if rep else 0.0
        layer = sum(ph["layers"]["gpu"]["energy_kwh"] for ph in rep["phases"]) * 3.6e6 if rep else 0.0
        projects[p] = (got, exp)
        add(f"project {p}: report energy == exporters' job counters (1 %)",
            rep is not None and rel(got, exp) <= TOLERANCE and rel(layer, got) <= CONSERVATION_TOLERANCE,
            f"report {got:.3f} J (layer gpu {layer:.3f} J), exporters {exp:.3f} J, {pct(got, exp)}"
            if rep else "no report")

    with duckdb.connect(str(out.db), read_only=True, config=duckdb_config()) as con:
        fct_jobs = {(c, j): e for c, j, e in con.execute(
            "SELECT cluster, job_id, sum(energy_j) FROM fct_job_gpu_hour WHERE job_id IS NOT NULL GROUP BY ALL"
        ).fetchall()}
        fct_gpus = {(c, h, g, u): e for c, h, g, u, e in con.execute(
            "SELECT cluster, hostname, gpu, uuid, sum(energy_j) FROM fct_job_gpu_hour GROUP BY ALL").fetchall()}
        db_gpus = {(c, h, g, u): e for c, h, g, u, e in con.execute(
            "SELECT s.cluster, s.hostname, s.gpu, s.uuid, sum(i.energy_j) FROM energy_intervals i"
            " JOIN streams s USING (stream_id) WHERE s.source = 'wattprint' AND s.kind = 'gpu' GROUP BY ALL"
        ).fetchall()}
        attribution = dict(con.execute("SELECT attribution, sum(energy_j) FROM fct_job_gpu_hour GROUP BY ALL")
                           .fetchall())
        reconciled = con.execute(
            "SELECT count(*) FILTER (WHERE counter_j IS NOT NULL), count(cause), string_agg(hostname || ' GPU ' || gpu"
            " || ' ' || strftime(hour_ts, '%H:%M') || ': ' || cause, '; ') FROM fct_gpu_hour").fetchall()[0]

    # per job, from the DuckDB results
    jobs = {k: (fct_jobs.get(k, 0.0), v) for k, v in sorted(job_ref.items())}
    off = [f"{c}/{j}: fct {a:.3f} J, exporter {b:.3f} J ({pct(a, b)})" for (c, j), (a, b) in jobs.items()
           if rel(a, b) > TOLERANCE]
    extra = sorted(set(fct_jobs) - set(job_ref))
    add("per job: fct_job_gpu_hour == exporters' job counters (1 %)", not off and not extra,
        "; ".join(off + [f"unexpected job {k} in fct" for k in extra]) or f"{len(jobs)} jobs")

    # conservation in DuckDB: per GPU, jobs + idle rows == the GPU counter's energy
    gpus: dict[GpuKey, tuple[float, float, float]] = {}
    for key in ref.keys("gpu"):
        g = key[1:5]
        gpus[g] = (fct_gpus.get(g, 0.0), db_gpus.get(g, 0.0), ref.increase(key))
    off = [f"{g[1]} GPU {g[2]}: fct jobs + idle {a:.3f} J, GPU counter {c:.3f} J ({pct(a, c)})"
           for g, (a, _, c) in gpus.items() if rel(a, c) > CONSERVATION_TOLERANCE]
    off += [f"{g[1]} GPU {g[2]}: GPU counter in DuckDB {b:.3f} J, exporter {c:.3f} J ({pct(b, c)})"
            for g, (_, b, c) in gpus.items() if rel(b, c) > CONSERVATION_TOLERANCE]
    add("fct_job_gpu_hour: per GPU, jobs + idle == GPU energy (1e-6)", not off,
        "; ".join(off) or f"{len(gpus)} GPUs; attribution " + ", ".join(
            f"{k} {v:.0f} J" for k, v in sorted(attribution.items())))

    # the model's own reconciliation: every GPU-hour's priced energy against that GPU's counter in DuckDB
    add("fct_gpu_hour: no GPU-hour's priced energy differs from its GPU counter", reconciled[1] == 0,
        reconciled[2] or f"{reconciled[0]} GPU-hours checked")

    cpu = check_cpu(plan, ref, out, add)
    shared = check_shared(plan, ref, out, add)

    # the all-projects report's reconciliation
    fleet: dict[str, float] = {}
    rc = out.fleet.get("reconciliation") if out.fleet else None
    if rc is None:
        add("all-projects report: reconciliation", False, "no all-projects JSON report")
    else:
        fleet = {k: v * 3.6e6 for k, v in rc.items() if k.endswith("_kwh")}
        fleet_j = fleet["fleet_energy_kwh"]
        parts = (fleet["projects_energy_kwh"] + fleet["not_in_ledger_kwh"] + fleet["idle_apportioned_kwh"]
                 + fleet["idle_unapportioned_kwh"])
        gpu_total = sum(c for _, _, c in gpus.values())
        stray = sum(job_ref[(j.cluster, j.job_id)] for j in plan.jobs if j.project is None)
        in_ledger = sum(e for _, e in projects.values())
        fleet.update(exporters_gpu_j=gpu_total, exporters_not_in_ledger_j=stray, exporters_projects_j=in_ledger)
        add("all-projects report: fleet == projects + not in ledger + idle (1e-6)",
            rel(parts, fleet_j) <= CONSERVATION_TOLERANCE, f"fleet {fleet_j:.3f} J, parts {parts:.3f} J")
        add("all-projects report: fleet == exporters' GPU counters (1 %)", rel(fleet_j, gpu_total) <= TOLERANCE,
            f"fleet {fleet_j:.3f} J, exporters {gpu_total:.3f} J, {pct(fleet_j, gpu_total)}")
        add("all-projects report: projects and not-in-ledger == exporters' job counters (1 %)",
            rel(fleet["projects_energy_kwh"], in_ledger) <= TOLERANCE
            and rel(fleet["not_in_ledger_kwh"], stray) <= TOLERANCE,
            f"projects {fleet['projects_energy_kwh']:.3f} J vs {in_ledger:.3f} J "
            f"({pct(fleet['projects_energy_kwh'], in_ledger)}); not in ledger {fleet['not_in_ledger_kwh']:.3f} J "
            f"vs {stray:.3f} J ({pct(fleet['not_in_ledger_kwh'], stray)})")
        by_project = {p["project"]: p["energy_kwh"] * 3.6e6 for p in out.fleet.get("projects", [])}
        off = [f"{p}: all-projects {by_project.get(p, 0.0):.3f} J, project report {got:.3f} J"
               for p, (got, _) in projects.items() if rel(by_project.get(p, 0.0), got) > CONSERVATION_TOLERANCE]
        add("all-projects report: per project == the project reports (1e-6)", not off, "; ".join(off) or "equal")
        # no hourly intensity was imported: the report prices at the shipped annual values, as serve-intensity
        # --source annual serves them live
        applied = {c["zone"]: c["intensity_g_per_kwh"] for c in out.fleet.get("clusters", [])}
        off = [f"{z}: report {v}, serve-intensity {ref.intensity.get(z)}" for z, v in sorted(applied.items())
               if ref.intensity.get(z) is None or rel(v, ref.intensity[z]) > CONSERVATION_TOLERANCE]
        add("intensity: the report's annual values == serve-intensity's, per zone", bool(applied) and not off,
            "; ".join(off) or ", ".join(f"{z} {v:g} g/kWh" for z, v in sorted(applied.items())))
    return Verdict(checks, projects, jobs, gpus, fleet, cpu, shared)


def check_shared(plan: Plan, ref: Reference, out: Outcome, add: Any) -> dict[str, Any]:
    """The MIG node's instances and the Kubernetes node's pods over [S, E], from the exporters' counters (mJ and
    µs: exact), the pods in the ledger, and the held-idle alert."""
    def inc(key: SeriesKey) -> int:      # mJ
        return mj(ref.at_end.get(key, 0.0)) - mj(ref.at_start.get(key, 0.0))

    def inc_us(key: SeriesKey) -> int:
        return uj(ref.at_end.get(key, 0.0)) - uj(ref.at_start.get(key, 0.0))

    def job_key(job: Job) -> SeriesKey | None:
        return next((k for k in ref.keys("job") if (k[1], k[2], k[5]) == (job.cluster, job.node, job.job_id)), None)

    shared: dict[str, Any] = {"mig": {}, "pods": {}, "alerts": []}
    for node in (n for n in plan.nodes if n.kind == "mig"):
        add(f"{node.name} pages: per MIG instance jobs + idle == instance; board idle == instances' idle + "
            "unpartitioned part; instances <= board, in mJ", ref.mig_pages > 0 and not ref.mig_errors,
            f"{ref.mig_pages} pages" + (": " + "; ".join(ref.mig_errors[:5]) if ref.mig_errors else ""))
        mapping = plan.mapping(node.name, "before")
        for board in (k for k in ref.keys("gpu") if k[2] == node.name):
            g = board[1:5]
            inst = {k[5]: inc(k) for k in ref.keys("inst") if k[1:5] == g}
            idle = {gi: inc(("inst_idle", *g, gi)) for gi in inst}
            jobs = {gi: {j: inc(("job", *g, j)) for j in mapping.get(f"{g[2]}.{gi}", [])} for gi in inst}
            b, b_idle = inc(board), inc(("idle", *g, ""))
            unpartitioned = b - sum(inst.values())
            want = {str(k + 1) for k in range(len(node.mig))}
            bad = [] if set(inst) == want else [f"instances {sorted(inst)}, expected {sorted(want)}"]
            for gi, e in sorted(inst.items()):
                charged = sum(jobs[gi].values())
                if charged + idle[gi] != e:
                    bad.append(f"instance {gi}: jobs {charged} + idle {idle[gi]} mJ != {e} mJ")
                if jobs[gi] and (idle[gi] != 0 or len(jobs[gi]) != 1 or charged != e):
                    bad.append(f"instance {gi}: its one job {charged} mJ != its energy {e} mJ (idle {idle[gi]} mJ)")
                if not jobs[gi] and not (idle[gi] == e > 0):
                    bad.append(f"instance {gi} holds no job: idle {idle[gi]} mJ != its energy {e} mJ (> 0)")
            if not (0 < unpartitioned and b_idle == sum(idle.values()) + unpartitioned):
                bad.append(f"board {b} mJ, idle {b_idle} mJ: instances' idle {sum(idle.values())} mJ + unpartitioned "
                           f"{unpartitioned} mJ")
            add(f"{node.name} GPU {g[2]} over [S, E]: each instance == its job (or its idle, none on the 2g), the "
                "unpartitioned slice's part (board - instances) is in the board's idle, in mJ", not bad,
                "; ".join(bad) or ", ".join(f"{gi} {node.mig[int(gi) - 1]} {e / 1000:.3f} J" for gi, e in
                                             sorted(inst.items())) + f", unpartitioned {unpartitioned / 1000:.3f} J, "
                f"board {b / 1000:.3f} J")
            shared["mig"][(node.name, g[2])] = {
                "board_j": b / 1000, "idle_j": b_idle / 1000, "unpartitioned_j": unpartitioned / 1000,
                "instances": {gi: {"profile": node.mig[int(gi) - 1], "energy_j": e / 1000, "idle_j": idle[gi] / 1000,
                                   "jobs_j": {j: v / 1000 for j, v in jobs[gi].items()}} for gi, e in inst.items()}}

    # pods: a pod holding a whole GPU is charged all of it, held idle; replicas of one GPU split it equally
    by_gpu: dict[GpuKey, list[tuple[Job, SeriesKey]]] = defaultdict(list)
    missing = []
    for j in plan.pods:
        k = job_key(j)
        if k is None:
            missing.append(j.job_id)
        else:
            by_gpu[k[1:5]].append((j, k))
    for g, pods in sorted(by_gpu.items()):
        gpu_e, gpu_idle = inc(("gpu", *g, "")), inc(("idle", *g, ""))
        energy = {j.job_id: inc(k) for j, k in pods}
        seconds = {j.job_id: inc_us(("job_seconds", *k[1:])) for j, k in pods}
        bad = [] if gpu_idle == 0 and sum(energy.values()) == gpu_e > 0 else \
            [f"pods {sum(energy.values())} mJ, GPU {gpu_e} mJ, GPU idle {gpu_idle} mJ"]
        if len(pods) == 1:
            (j, k), = pods
            what = f"{g[1]} GPU {g[2]}, held by pod {'/'.join(j.pod or ())} with no process: it is charged the " \
                   "GPU's energy (idle 0), all of it held idle, in mJ and µs"
            held_e, held_s = inc(("held_idle", *k[1:])), inc_us(("held_idle_seconds", *k[1:]))
            if not (held_e == energy[j.job_id] and held_s == seconds[j.job_id] > 0):
                bad.append(f"held idle {held_e} mJ over {held_s} µs, charged {energy[j.job_id]} mJ over "
                           f"{seconds[j.job_id]} µs")
        else:
            s_polls, e_polls = ref.edge_polls.get(g[1], (0, 0))
            what = f"{g[1]} GPU {g[2]}, time-slicing replicas held by {len(pods)} pods: they split it equally " \
                   "(within 1 mJ per poll), every second of it counted as an equal share, idle 0"
            equal = {j.job_id: inc_us(("equal_seconds", *k[1:])) for j, k in pods}
            if max(energy.values()) - min(energy.values()) > e_polls - s_polls:
                bad.append(f"shares {sorted(energy.values())} mJ differ by more than 1 mJ per poll "
                           f"({e_polls - s_polls} polls)")
            if any(not (equal[j] == seconds[j] > 0) for j in equal):
                bad.append(f"equal-share µs {equal} != held µs {seconds}")
        add(what, not bad, "; ".join(bad) or ", ".join(f"{j} {v / 1000:.3f} J" for j, v in energy.items())
            + f" of GPU {gpu_e / 1000:.3f} J")
        for j, k in pods:
            shared["pods"][j.job_id] = {"pod": "/".join(j.pod or ()), "gpu": g[2], "device": j.device,
                                       "energy_j": energy[j.job_id] / 1000, "gpu_j": gpu_e / 1000,
                                       "held_idle_j": inc(("held_idle", *k[1:])) / 1000,
                                       "seconds": seconds[j.job_id] / 1e6,
                                       "equal_share_seconds": inc_us(("equal_seconds", *k[1:])) / 1e6}
    if plan.pods:
        add("every pod has a counter on the GPU the kubelet allocated it", not missing, f"missing {missing}")
        with duckdb.connect(str(out.db), read_only=True, config=duckdb_config()) as con:
            ledger = {(c, j): (p, ph) for c, j, p, ph in con.execute(
                "SELECT cluster, job_id, project, phase FROM jobs WHERE source = 'kubernetes'").fetchall()}
        want = {(j.cluster, j.job_id): (j.project, j.phase) for j in plan.pods}
        add("pods in the ledger from kube-state-metrics (`jobs sync-kubernetes`): UID, project, phase", ledger == want,
            f"ledger {sorted(ledger.items())}, expected {sorted(want.items())}" if ledger != want
            else f"{len(ledger)} pods")

    # WattprintJobHoldingIdleGpus, live: the real rules scaled in time fire for the pod holding an idle GPU
    firing = {a["labels"].get("job_id"): a for a in ref.alerts}
    for j in (p for p in plan.pods if "::" not in p.device):
        a = firing.get(j.job_id)
        labels = a["labels"] if a else {}
        desc = a["annotations"].get("description", "") if a else ""
        ok = bool(a) and labels.get("hostname") == j.node and labels.get("cluster") == j.cluster \
            and "project" not in labels and "no project in the ledger" in desc
        fired = a["firing_seen"] - ref.kube_started if a else math.nan
        add(f"{HELD_IDLE_ALERT} fires live for the idle-held pod (rules scaled 1/{RULE_TIME_SCALE} in time)", ok,
            f"firing {fired:.0f} s after the pod was allocated (the GPU-seconds threshold, then `for:`); "
            f"labels {labels}" if a else f"not firing; seen: {sorted(firing)}")
        if a:
            shared["alerts"].append({"job_id": j.job_id, "after_s": fired, "labels": labels, "description": desc})
    shared["firing"] = sorted(k for k in firing if k)
    return shared


def check_cpu(plan: Plan, ref: Reference, out: Outcome, add: Any) -> dict[str, Any]:
    """Host energy: the exporters' RAPL accounts, DuckDB's CPU results and the reports against each other."""
    win: dict[GpuKey, list[int]] = defaultdict(lambda: [0, 0])
    for key in ref.keys("cpu") + ref.keys("cpu_idle") + ref.keys("cpu_job"):
        win[key[1:5]][0 if key[0] == "cpu" else 1] += uj(ref.at_end[key]) - uj(ref.at_start.get(key, 0.0))
    bad = [f"{c[1]} socket {c[2]} {c[3]}: jobs + idle {b} µJ, socket {a} µJ" for c, (a, b) in sorted(win.items())
           if a != b]
    add("exporter counters over [S, E]: per socket and domain, CPU jobs + idle == RAPL energy, in µJ",
        bool(win) and not bad, "; ".join(bad) or f"{len(win)} (host, socket, domain) counters")
    want = {(n.name, s, d) for n in plan.nodes for s in ("0", "1") for d in ("package", "dram")}
    got_keys = {k[1:4] for k in win}
    add("every node exports package and DRAM energy of both sockets", got_keys == want,
        f"missing {sorted(want - got_keys)}, unexpected {sorted(got_keys - want)}")

    job_j: dict[tuple[str, str], float] = defaultdict(float)
    job_s: dict[tuple[str, str], float] = defaultdict(float)
    for key in ref.keys("cpu_job"):
        job_j[(key[1], key[5])] += ref.increase(key)
    for key in ref.keys("cpu_seconds"):
        job_s[(key[1], key[5])] += ref.increase(key)
    planned = {(j.cluster, j.job_id) for j in plan.jobs}
    add("every planned job has CPU energy and CPU-time counters", set(job_j) == planned == set(job_s),
        f"energy: missing {sorted(planned - set(job_j))}; CPU time: missing {sorted(planned - set(job_s))}")

    with duckdb.connect(str(out.db), read_only=True, config=duckdb_config()) as con:
        fct_jobs = {(c, j): e for c, j, e in con.execute(
            "SELECT cluster, job_id, sum(energy_j) FROM fct_job_cpu_hour WHERE job_id IS NOT NULL GROUP BY ALL"
        ).fetchall()}
        fct_socket = {(c, h, s, d): e for c, h, s, d, e in con.execute(
            "SELECT cluster, hostname, socket, domain, sum(energy_j) FROM fct_job_cpu_hour GROUP BY ALL").fetchall()}
        fct_secs = {(c, j): s for c, j, s in con.execute(
            "SELECT cluster, job_id, sum(cpu_seconds) FROM fct_job_cpu_time_hour GROUP BY ALL").fetchall()}
    off = [f"{c}/{j}: fct {fct_jobs.get((c, j), 0.0):.3f} J, exporter {v:.3f} J" for (c, j), v in sorted(job_j.items())
           if rel(fct_jobs.get((c, j), 0.0), v) > TOLERANCE]
    add("per job: fct_job_cpu_hour == exporters' job CPU energy counters (1 %)", bool(job_j) and not off,
        "; ".join(off) or f"{len(job_j)} jobs")
    off = [f"{c}/{j}: fct {fct_secs.get((c, j), 0.0):.3f} s, exporter {v:.3f} s" for (c, j), v in sorted(job_s.items())
           if rel(fct_secs.get((c, j), 0.0), v) > TOLERANCE]
    add("per job: fct_job_cpu_time_hour == exporters' job CPU-seconds counters (1 %)", bool(job_s) and not off,
        "; ".join(off) or f"{len(job_s)} jobs, {sum(job_s.values()):.1f} CPU-seconds")
    sockets = {k[1:5]: ref.increase(k) for k in ref.keys("cpu")}
    off = [f"{h} socket {s} {d}: fct jobs + idle {fct_socket.get((c, h, s, d), 0.0):.3f} J, exporter {v:.3f} J"
           for (c, h, s, d), v in sorted(sockets.items()) if rel(fct_socket.get((c, h, s, d), 0.0), v)
           > CONSERVATION_TOLERANCE]
    add("fct_job_cpu_hour: per socket and domain, jobs + host idle == RAPL energy (1e-6)", bool(sockets) and not off,
        "; ".join(off) or f"{len(sockets)} counters, {sum(sockets.values()):.1f} J")

    # the reports: each project's host energy and CPU hours against the exporters' per-job counters
    projects: dict[str, tuple[float, float]] = {}
    for p in plan.projects:
        exp_j = sum(job_j[(j.cluster, j.job_id)] for j in plan.jobs if j.project == p)
        exp_h = sum(job_s[(j.cluster, j.job_id)] for j in plan.jobs if j.project == p) / 3600.0
        rep = out.reports.get(p)
        got_j = rep["total"].get("cpu_energy_kwh", 0.0) * 3.6e6 if rep else 0.0
        got_h = rep["total"].get("cpu_hours", 0.0) if rep else 0.0
        layer = sum(ph["layers"]["cpu"]["energy_kwh"] for ph in rep["phases"]) * 3.6e6 if rep else 0.0
        projects[p] = (got_j, exp_j)
        add(f"project {p}: report CPU energy and CPU hours == exporters' job counters (1 %)",
            rep is not None and exp_j > 0 and rel(got_j, exp_j) <= TOLERANCE and rel(got_h, exp_h) <= TOLERANCE
            and rel(layer, got_j) <= CONSERVATION_TOLERANCE,
            f"CPU energy {got_j:.3f} J (layer cpu {layer:.3f} J), exporters {exp_j:.3f} J, {pct(got_j, exp_j)}; "
            f"CPU hours {got_h:.5f}, exporters {exp_h:.5f}, {pct(got_h, exp_h)}" if rep else "no report")
    rc = (out.fleet.get("reconciliation") or {}).get("cpu") if out.fleet else None
    if rc is None:
        add("all-projects report: host CPU reconciliation", False, "no reconciliation.cpu in the all-projects report")
    else:
        f = {k: v * 3.6e6 for k, v in rc.items() if k.endswith("_kwh")}
        parts = f["projects_energy_kwh"] + f["not_in_ledger_kwh"] + f["idle_apportioned_kwh"] + \
            f["idle_unapportioned_kwh"]
        total = sum(sockets.values())
        add("all-projects report: host CPU energy == projects + not in ledger + host idle (1e-6), "
            "== exporters' RAPL counters (1 %)",
            rel(parts, f["fleet_energy_kwh"]) <= CONSERVATION_TOLERANCE
            and rel(f["fleet_energy_kwh"], total) <= TOLERANCE,
            f"fleet {f['fleet_energy_kwh']:.3f} J, parts {parts:.3f} J, exporters {total:.3f} J "
            f"({pct(f['fleet_energy_kwh'], total)})")
    return {"jobs_j": dict(job_j), "jobs_s": dict(job_s), "sockets_j": sockets, "projects": projects}


# -- main --------------------------------------------------------------------------------------------------


def kj(j: float) -> str:
    return f"{j / 1000:,.3f} kJ"


def summary(plan: Plan, stack: Stack, ref: Reference, out: Outcome, verdict: Verdict) -> str:
    w = stack.window
    assert w is not None
    lines = [
        "",
        f"stack: {len(plan.nodes)} replay exporters ({sum(n.gpus for n in plan.nodes)} virtual H100s), "
        f"serve-intensity, Prometheus {stack.prometheus_url} scraping every {stack.scrape:g} s",
        f"window: {iso(w.start)} .. {iso(w.end)} ({w.end - w.start} s), ingest step {stack.step} s; "
        f"report window {iso(w.report_start)} .. {iso(w.report_end)}",
        f"ingested: {out.samples} samples of {out.series} series; {ref.pages_checked} exporter pages read directly; "
        f"pipeline {out.seconds:.1f} s",
        "",
        f"{'project':<12} {'report (gpu layer)':>20} {'exporters':>16} {'difference':>26} {'wall-clock reads':>18}",
    ]

    def wall(job: Job) -> float:  # the job's counters read at wall-clock S and E instead of Prometheus' polls
        return sum(v - ref.wall_start.get(k, 0.0) for k, v in ref.wall_end.items()
                   if k[0] == "job" and (k[1], k[5]) == (job.cluster, job.job_id))

    for p, (got, exp) in verdict.projects.items():
        at_wall = sum(wall(j) for j in plan.jobs if j.project == p)
        lines.append(f"{p:<12} {kj(got):>20} {kj(exp):>16} {got - exp:>+12.3f} J {pct(got, exp):>11} "
                     f"{pct(at_wall, exp):>18}")
    lines.append("(wall-clock reads: the exporters' pages last read by S and by E, against the pages of the polls "
                 "Prometheus holds at S and E; shown for scale, not checked)")
    if verdict.fleet:
        f = verdict.fleet
        lines += [
            "",
            f"fleet GPU energy {kj(f['fleet_energy_kwh'])} (exporters' GPU counters {kj(f['exporters_gpu_j'])}, "
            f"{pct(f['fleet_energy_kwh'], f['exporters_gpu_j'])})",
            f"  = projects {kj(f['projects_energy_kwh'])} + not in ledger {kj(f['not_in_ledger_kwh'])}"
            f" + idle apportioned {kj(f['idle_apportioned_kwh'])} + idle not apportioned "
            f"{kj(f['idle_unapportioned_kwh'])}",
        ]
    if verdict.cpu.get("projects"):
        lines.append("")
        lines.append(f"host energy: {len(verdict.cpu['sockets_j'])} RAPL counters (package and DRAM of 2 sockets "
                     f"per node), {ref.rapl_wraps} counter wraps during the run")
        lines.append(f"{'project':<12} {'report CPU energy':>20} {'exporters':>16} {'difference':>26}")
        for p, (got, exp) in verdict.cpu["projects"].items():
            lines.append(f"{p:<12} {kj(got):>20} {kj(exp):>16} {got - exp:>+12.3f} J {pct(got, exp):>11}")
    for (node, gpu), b in verdict.shared.get("mig", {}).items():
        lines += ["", f"MIG board {node} GPU {gpu}: {kj(b['board_j'])} = instances + unpartitioned slice "
                  f"{kj(b['unpartitioned_j'])}; board idle {kj(b['idle_j'])}"]
        for gi, i in sorted(b["instances"].items()):
            jobs = ", ".join(f"job {j} {kj(v)}" for j, v in i["jobs_j"].items()) or "no job"
            lines.append(f"  instance {gi} {i['profile']:<8} {kj(i['energy_j']):>14}: {jobs}, "
                         f"idle {kj(i['idle_j'])}")
    if verdict.shared.get("pods"):
        lines += ["", "Kubernetes pods (PodResources allocations):"]
        for uid, p in verdict.shared["pods"].items():
            lines.append(f"  {p['pod']:<16} GPU {p['gpu']} ({p['device']:<4}) {kj(p['energy_j']):>12} of GPU "
                         f"{kj(p['gpu_j'])}; held idle {kj(p['held_idle_j'])}; "
                         f"held {p['seconds']:.1f} s, equal share {p['equal_share_seconds']:.1f} s  ({uid})")
    for a in verdict.shared.get("alerts", []):
        lines.append(f"{HELD_IDLE_ALERT} firing for pod {a['job_id']} {a['after_s']:.0f} s after it was allocated; "
                     f"also firing for: {', '.join(j for j in verdict.shared['firing'] if j != a['job_id']) or 'none'}")
    worst = max((rel(a, c) for a, _, c in verdict.gpus.values()), default=0.0)
    lines.append(f"conservation: {len(verdict.gpus)} GPUs, worst |fct jobs + idle - GPU| / GPU = {worst:.2e}")
    lines.append("")
    lines += [f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in verdict.checks]
    lines += [f"note: {n}" for n in ref.notes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=120, help="length of the scraped window (default 120)")
    ap.add_argument("--nodes", type=int, default=3, help="virtual nodes, one exporter each (default 3)")
    ap.add_argument("--gpus-per-node", type=int, default=4, help="virtual GPUs per node (default 4)")
    ap.add_argument("--scrape-interval", type=float, default=1.0, help="Prometheus scrape interval, s (default 1)")
    ap.add_argument("--out", type=Path, help="work directory (kept); default: a temporary one")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    a = ap.parse_args(argv)
    if a.seconds < 10 or a.scrape_interval <= 0 or a.scrape_interval > 5:
        ap.error("--seconds must be at least 10, --scrape-interval in (0, 5]")
    try:
        plan = make_plan(a.nodes, a.gpus_per_node)
    except ValueError as exc:
        ap.error(str(exc))
    if not shutil.which("prometheus"):
        print("e2e: prometheus not found on PATH: run `make e2e` as root (it installs Debian's prometheus), or "
              "apt-get install --no-install-recommends prometheus", file=sys.stderr)
        return 2
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        work = a.out.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="wattprint-e2e-"))
    print(f"e2e: work directory {work}", flush=True)
    try:
        with Stack(plan, work, seconds=a.seconds, scrape_interval=a.scrape_interval,
                   log=lambda m: print(m, flush=True)) as stack:
            print(f"stack up: exporters {', '.join(f'{n}={i}' for i, n in stack.exporters.items())}, "
                  f"Prometheus {stack.prometheus_url}", flush=True)
            ref = stack.run()
            assert stack.window is not None
            out = run_pipeline(work / "pipeline", stack.prometheus_url, plan, stack.window)
            ref.alerts = stack.held_idle_alerts()
        verdict = check(plan, ref, out)
    except (StackError, requests.RequestException) as exc:
        print(f"e2e: cannot run the stack: {exc}\ne2e: logs and data kept in {work}", file=sys.stderr)
        return 2
    print(summary(plan, stack, ref, out, verdict))
    if verdict.failures:
        print(f"\ne2e: FAILED: {len(verdict.failures)} check(s):", file=sys.stderr)
        for c in verdict.failures:
            print(f"  {c.name}: {c.detail}", file=sys.stderr)
        print(f"e2e: logs, database and reports kept in {work}", file=sys.stderr)
        return 1
    if a.out or a.keep:
        print(f"reports in {work / 'pipeline' / 'reports'}: " + ", ".join(p.name for p in out.files))
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ne2e: ok, {len(verdict.checks)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
