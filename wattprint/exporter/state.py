"""The exporter's state file (``--state-file``): exported totals that survive a restart.

Per GPU UUID it holds the last raw hardware counter value and the exported totals
(GPU, idle, each job's energy, counter resets), all integer millijoules, and each
job's held GPU time in integer microseconds (``gpu_us``; files written before it
existed load with 0 for every job, and older exporters ignore it). With the
rapl collector on, an optional ``host`` object holds the CPU side: per socket and
domain the exported totals (integer µJ), the last raw RAPL counters, each job's CPU
time and last cgroup usage, the boot id they belong to (raw counters restart at
boot, so they are only used again in the same boot) and the ``hostname`` of the series
(``--hostname``): another hostname's totals are not taken over, its CPU series start at 0
(a ``host`` object without ``hostname``, from an exporter before it was saved, is restored
whatever the hostname, as it always was). Files without ``host`` (older
exporters) load unchanged, and older exporters ignore it. With ``--node-power`` on, an
optional ``node`` object (added the same way: no version change) holds the node's exported
totals (energy in integer mJ, the gaps and resets counters) with the series they belong to
(source and hostname; another series starts from 0), the wall-clock time of the last
good BMC reading, and, where the BMC has an energy counter, its last raw value (integer mJ,
the unit the exporter books deltas in) with what identifies it: method, reading, chassis and
the BMC's address, so that a file moved to another node or pointed at another BMC never books
a foreign counter's delta. The GPUs need no such field: they are keyed by
UUID, unique to a board (replay derives its UUIDs from ``--hostname``), so a file from
another node holds no GPU of this one, and its GPUs are dropped at the first good read
like any GPU no longer found. It is
small JSON, written atomically (temporary file, fsync, ``os.replace``), so a
reader sees either the old file or the new one, never half of one. Anything that
does not parse as this format is refused as a whole: the exporter then starts
from zero, as it does without a state file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jobs.base import Job

FORMAT = "wattprint-exporter-state"
# Fields added later are optional (files without them load; older exporters ignore them), so the version
# only changes for a file an older exporter would misread.
VERSION = 1


class StateError(Exception):
    """The state file is missing, unreadable, corrupt or of another version."""


@dataclass(frozen=True)
class SavedJob:
    job: Job
    energy_mj: int
    # Summed length of the intervals booked to the job on this GPU (wattprint_job_gpu_seconds_total).
    gpu_us: int = 0
    # wattprint_job_held_idle_energy_joules_total, _held_idle_seconds_total, _equal_share_seconds_total
    held_idle_mj: int = 0
    held_idle_us: int = 0
    equal_share_us: int = 0


@dataclass(frozen=True)
class SavedGpu:
    uuid: str
    index: str
    # Raw hardware counter (mJ since driver load) at the last poll; None when the GPU had no counter.
    raw_counter_mj: int | None
    energy_mj: int
    idle_mj: int
    resets: int
    jobs: tuple[SavedJob, ...]


@dataclass(frozen=True)
class SavedZone:
    """One RAPL zone's last raw counter, valid only in the boot that read it."""

    zone: str  # powercap directory name, e.g. intel-rapl:0:0
    socket: str
    domain: str
    raw_uj: int
    # CLOCK_BOOTTIME of that reading, to measure the downtime across a restart.
    boottime_ms: int
    # Highest power seen over one poll interval, to tell whether the downtime may hide unseen wraps.
    peak_uw: int


@dataclass(frozen=True)
class SavedCpuDomain:
    socket: str
    domain: str
    model: str
    energy_uj: int
    idle_uj: int
    resets: int
    jobs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class SavedCpuJob:
    job_id: str
    cpu_usec: int
    # The job cgroup's usage_usec at the last poll; None if it was not read.
    raw_usage_usec: int | None


@dataclass(frozen=True)
class SavedHost:
    boot_id: str  # "" when /proc/sys/kernel/random/boot_id was unreadable: raw values are then never reused
    node_cpu_usec: int | None
    zones: tuple[SavedZone, ...] = ()
    domains: tuple[SavedCpuDomain, ...] = ()
    jobs: tuple[SavedCpuJob, ...] = ()
    # The exporter's --hostname (the CPU series' `hostname` label): totals continue only on the same series.
    # None in files written before it was saved, which are restored as they always were.
    hostname: str | None = None


@dataclass(frozen=True)
class SavedNodeCounter:
    """The BMC energy counter's last raw value and what it belongs to: resumed only where all of them match."""

    method: str      # node.source.METHOD_COUNTER
    reading: str     # the Redfish property, e.g. EnvironmentMetrics.EnergyJoules
    chassis: str     # the chassis' @odata.id
    bmc: str         # the BMC's address: host, and the port where it is not the scheme's default
    # The counter as the exporter books it: round(J x 1000), so a resumed delta is the same integer subtraction
    # an uninterrupted process would have made.
    raw_mj: int


@dataclass(frozen=True)
class SavedNode:
    # The series the totals belong to: the `source` label (redfish) and the exporter's --hostname. Another series'
    # totals are not taken over: a new series must start at 0, as the pipeline reads its first value as energy.
    source: str
    hostname: str
    energy_mj: int                   # wattprint_node_energy_joules_total
    resets: int = 0                  # wattprint_node_energy_resets_total
    gaps: int = 0                    # wattprint_node_power_gaps_total
    gap_seconds: float = 0.0         # wattprint_node_power_gap_seconds_total
    # Wall-clock time of the last good reading, to measure the downtime a restart leaves unbooked.
    last_unixtime: float | None = None
    counter: SavedNodeCounter | None = None   # None with power integration (no counter to resume)


@dataclass(frozen=True)
class StateDoc:
    gpus: dict[str, SavedGpu]
    host: SavedHost | None = None
    node: SavedNode | None = None


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise StateError(f"{what}: expected an integer >= 0, got {v!r}")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise StateError(f"{what}: expected a string, got {v!r}")
    return v


def _seconds(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise StateError(f"{what}: expected a number >= 0, got {v!r}")
    return float(v)


def _obj(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise StateError(f"{what}: expected an object, got {v!r}")
    return v


def _list(v: Any, what: str) -> list[Any]:
    if not isinstance(v, list):
        raise StateError(f"{what}: expected a list, got {v!r}")
    return v


def load_state(path: str | os.PathLike[str]) -> dict[str, SavedGpu]:
    """GPU UUID -> saved totals; StateError (one-line reason) if the file cannot be used."""
    return load_state_file(path)[0]


def load_state_file(path: str | os.PathLike[str]) -> tuple[dict[str, SavedGpu], SavedHost | None]:
    """The GPUs' saved totals and the host (CPU) part, None in files written without it."""
    doc = load_state_doc(path)
    return doc.gpus, doc.host


def load_state_doc(path: str | os.PathLike[str]) -> StateDoc:
    """Every part of the file: GPUs, host (CPU) and node (BMC), the last two None in files written without them."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StateError("no state file yet") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise StateError(f"version {doc.get('version')!r}, this exporter reads version {VERSION}")
    gpus = doc.get("gpus")
    if not isinstance(gpus, dict):
        raise StateError("'gpus' is not an object")
    out: dict[str, SavedGpu] = {}
    for uuid, g in gpus.items():
        if not isinstance(g, dict):
            raise StateError(f"gpu {uuid}: not an object")
        raw = g.get("raw_counter_mj")
        jobs = g.get("jobs")
        if not isinstance(jobs, list):
            raise StateError(f"gpu {uuid}: 'jobs' is not a list")
        saved_jobs = []
        for j in jobs:
            if not isinstance(j, dict):
                raise StateError(f"gpu {uuid}: a job is not an object")
            job = Job(job_id=_str(j.get("job_id"), "job_id"), source=_str(j.get("source"), "source"),
                      pod_uid=_str(j.get("pod_uid", ""), "pod_uid"),
                      container=_str(j.get("container", ""), "container"))
            what = f"gpu {uuid} job {job.job_id}"
            # No gpu_us: a file from an exporter before wattprint_job_gpu_seconds_total, whose held time
            # was never measured; 0 starts the new series as any new counter starts, rather than a guess.
            saved_jobs.append(SavedJob(job=job, energy_mj=_int(j.get("energy_mj"), f"{what} energy_mj"),
                                       gpu_us=_int(j.get("gpu_us", 0), f"{what} gpu_us"),
                                       held_idle_mj=_int(j.get("held_idle_mj", 0), f"{what} held_idle_mj"),
                                       held_idle_us=_int(j.get("held_idle_us", 0), f"{what} held_idle_us"),
                                       equal_share_us=_int(j.get("equal_share_us", 0), f"{what} equal_share_us")))
        out[uuid] = SavedGpu(
            uuid=uuid,
            index=_str(g.get("index"), f"gpu {uuid} index"),
            raw_counter_mj=None if raw is None else _int(raw, f"gpu {uuid} raw_counter_mj"),
            energy_mj=_int(g.get("energy_mj"), f"gpu {uuid} energy_mj"),
            idle_mj=_int(g.get("idle_mj"), f"gpu {uuid} idle_mj"),
            resets=_int(g.get("resets"), f"gpu {uuid} resets"),
            jobs=tuple(saved_jobs),
        )
    return StateDoc(gpus=out, host=None if doc.get("host") is None else _load_host(doc["host"]),
                    node=None if doc.get("node") is None else _load_node(doc["node"]))


def _load_node(n: Any) -> SavedNode:
    n = _obj(n, "node")
    last = n.get("last_unixtime")
    c = n.get("counter")
    counter = None
    if c is not None:
        c = _obj(c, "node.counter")
        counter = SavedNodeCounter(
            method=_str(c.get("method"), "node.counter.method"), reading=_str(c.get("reading"), "node.counter.reading"),
            chassis=_str(c.get("chassis"), "node.counter.chassis"), bmc=_str(c.get("bmc"), "node.counter.bmc"),
            raw_mj=_int(c.get("raw_mj"), "node.counter.raw_mj"))
    return SavedNode(
        source=_str(n.get("source"), "node.source"), hostname=_str(n.get("hostname"), "node.hostname"),
        energy_mj=_int(n.get("energy_mj"), "node.energy_mj"),
        resets=_int(n.get("resets", 0), "node.resets"), gaps=_int(n.get("gaps", 0), "node.gaps"),
        gap_seconds=_seconds(n.get("gap_seconds", 0.0), "node.gap_seconds"),
        last_unixtime=None if last is None else _seconds(last, "node.last_unixtime"), counter=counter)


def _dump_node(n: SavedNode) -> dict[str, Any]:
    c = n.counter
    return {
        "source": n.source, "hostname": n.hostname, "energy_mj": n.energy_mj, "resets": n.resets, "gaps": n.gaps,
        "gap_seconds": n.gap_seconds, "last_unixtime": n.last_unixtime,
        "counter": None if c is None else {"method": c.method, "reading": c.reading, "chassis": c.chassis,
                                           "bmc": c.bmc, "raw_mj": c.raw_mj},
    }


def _load_host(h: Any) -> SavedHost:
    h = _obj(h, "host")
    node = h.get("node_cpu_usec")
    zones = []
    for name, z in _obj(h.get("zones", {}), "host.zones").items():
        z = _obj(z, f"host zone {name}")
        zones.append(SavedZone(
            zone=name, socket=_str(z.get("socket"), f"zone {name} socket"),
            domain=_str(z.get("domain"), f"zone {name} domain"), raw_uj=_int(z.get("raw_uj"), f"zone {name} raw_uj"),
            boottime_ms=_int(z.get("boottime_ms"), f"zone {name} boottime_ms"),
            peak_uw=_int(z.get("peak_uw", 0), f"zone {name} peak_uw")))
    domains = []
    for d in _list(h.get("domains", []), "host.domains"):
        d = _obj(d, "host domain")
        what = f"cpu socket {d.get('socket')!r} {d.get('domain')!r}"
        jobs = tuple((_str(k, f"{what} job id"), _int(v, f"{what} job {k}"))
                     for k, v in sorted(_obj(d.get("jobs", {}), f"{what} jobs").items()))
        domains.append(SavedCpuDomain(
            socket=_str(d.get("socket"), f"{what} socket"), domain=_str(d.get("domain"), f"{what} domain"),
            model=_str(d.get("model", ""), f"{what} model"), energy_uj=_int(d.get("energy_uj"), f"{what} energy_uj"),
            idle_uj=_int(d.get("idle_uj"), f"{what} idle_uj"), resets=_int(d.get("resets", 0), f"{what} resets"),
            jobs=jobs))
    cpu_jobs = []
    for job_id, j in _obj(h.get("jobs", {}), "host.jobs").items():
        j = _obj(j, f"cpu job {job_id}")
        raw = j.get("raw_usage_usec")
        cpu_jobs.append(SavedCpuJob(
            job_id=job_id, cpu_usec=_int(j.get("cpu_usec"), f"cpu job {job_id} cpu_usec"),
            raw_usage_usec=None if raw is None else _int(raw, f"cpu job {job_id} raw_usage_usec")))
    hostname = h.get("hostname")
    return SavedHost(
        boot_id=_str(h.get("boot_id", ""), "host.boot_id"),
        hostname=None if hostname is None else _str(hostname, "host.hostname"),
        node_cpu_usec=None if node is None else _int(node, "host.node_cpu_usec"),
        zones=tuple(zones), domains=tuple(domains), jobs=tuple(cpu_jobs))


def _dump_host(h: SavedHost) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "boot_id": h.boot_id,
        "node_cpu_usec": h.node_cpu_usec,
        "zones": {z.zone: {"socket": z.socket, "domain": z.domain, "raw_uj": z.raw_uj, "boottime_ms": z.boottime_ms,
                           "peak_uw": z.peak_uw} for z in h.zones},
        "domains": [{"socket": d.socket, "domain": d.domain, "model": d.model, "energy_uj": d.energy_uj,
                     "idle_uj": d.idle_uj, "resets": d.resets, "jobs": dict(d.jobs)} for d in h.domains],
        "jobs": {j.job_id: {"cpu_usec": j.cpu_usec, "raw_usage_usec": j.raw_usage_usec} for j in h.jobs},
    }
    if h.hostname is not None:
        doc["hostname"] = h.hostname
    return doc


def dump_state(gpus: list[SavedGpu], saved_unixtime: float, host: SavedHost | None = None,
               node: SavedNode | None = None) -> str:
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "saved_unixtime": saved_unixtime,
        "gpus": {
            g.uuid: {
                "index": g.index,
                "raw_counter_mj": g.raw_counter_mj,
                "energy_mj": g.energy_mj,
                "idle_mj": g.idle_mj,
                "resets": g.resets,
                "jobs": [
                    {"job_id": s.job.job_id, "source": s.job.source, "pod_uid": s.job.pod_uid,
                     "container": s.job.container, "energy_mj": s.energy_mj, "gpu_us": s.gpu_us,
                     "held_idle_mj": s.held_idle_mj, "held_idle_us": s.held_idle_us,
                     "equal_share_us": s.equal_share_us}
                    for s in g.jobs
                ],
            }
            for g in gpus
        },
    }
    if host is not None:
        doc["host"] = _dump_host(host)
    if node is not None:
        doc["node"] = _dump_node(node)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


def write_state(path: str | os.PathLike[str], text: str) -> None:
    """Atomically replace ``path`` with ``text``: temporary file in the same directory, fsync, rename."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not every filesystem allows fsync on a directory
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
