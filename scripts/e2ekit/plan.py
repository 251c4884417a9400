"""The e2e's plan: its nodes, GPUs, jobs and clusters, the config and ledger it writes, and its window."""


from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
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
# the exporter's BMC collector: a poller of its own, so its counter is read from Prometheus at S and E, never from
# the GPU poll's pages
NODE_ENERGY = "wattprint_node_energy_joules_total"
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
    bmc: str = ""                # its BMC (bmc.py): "" none | whole (reads the node) | one-psu (a quarter)


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
    The first node's BMC reads the whole node, the last's (with 2 nodes or more) one of its four power supplies.

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
    # BMCs: the first node's reads the whole node (a Redfish energy counter); the last replay node's reads one of its
    # four power supplies (the first PowerControl member of a BMC listing one per PSU): below its GPUs, flagged
    node_list = tuple(replace(n, bmc="whole" if i == 0 else "one-psu" if i == nodes - 1 else "")
                      for i, n in enumerate(node_list))
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
