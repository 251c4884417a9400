"""NVML backend on a fake pynvml module fed with real H100 samples: normal reads and injected faults."""

from __future__ import annotations

import csv
import itertools

import pytest

from tests.conftest import FIXTURES
from tests.fake_nvml import NVMLError_GpuIsLost, NVMLError_LibraryNotFound, UtilSample, make_fake_nvml
from wattprint.exporter.backends.base import BackendUnavailable
from wattprint.exporter.backends.nvml import NvmlBackend
from wattprint.exporter.jobs.base import Job, NoDiscovery
from wattprint.exporter.poller import Poller


def _poller(nv, discovery=None) -> tuple[NvmlBackend, Poller]:
    backend = NvmlBackend(nv)
    backend.open()
    clock = itertools.count(0.0, 1.0)
    return backend, Poller(backend, discovery or NoDiscovery(), clock=lambda: next(clock))


def _gpu(snap, index: str):
    return next(g for g in snap.gpus if g.info.index == index)


def test_reads_counter_power_and_facts():
    nv = make_fake_nvml(gpus=2)
    backend, poller = _poller(nv)
    poller.poll_once()
    e_start = nv.gpus[0].energy_mj
    nv.advance(10)
    snap = poller.poll_once()
    g = _gpu(snap, "0")
    assert g.up and g.energy_source == "counter"
    assert g.energy_mj == nv.gpus[0].energy_mj - e_start
    assert g.idle_mj == g.energy_mj  # no discovery: all idle
    assert g.power_watts == nv.gpus[0].power_mw / 1000
    assert g.power_limit_watts == 700.0
    assert g.info.model == "NVIDIA H100 80GB HBM3" and g.info.driver == "580.159.04"


def test_nvml_missing_is_a_clear_startup_error():
    nv = make_fake_nvml(init_error=NVMLError_LibraryNotFound)
    with pytest.raises(BackendUnavailable, match="cannot initialise NVML .*--backend replay"):
        NvmlBackend(nv).open()


def test_lost_gpu_reports_down_and_others_keep_going():
    nv = make_fake_nvml(gpus=3)
    _, poller = _poller(nv)
    poller.poll_once()
    nv.inject(1, "*", NVMLError_GpuIsLost)
    for _ in range(3):
        nv.advance(5)
        snap = poller.poll_once()
    lost, ok0, ok2 = _gpu(snap, "1"), _gpu(snap, "0"), _gpu(snap, "2")
    assert not lost.up and ok0.up and ok2.up
    assert dict(lost.errors)["energy"] == 3
    assert lost.power_watts is None
    assert ok0.energy_mj > 0 and ok0.errors == ()
    # the board comes back: its hardware counter kept counting, nothing is lost
    nv.inject(1, "*", None)
    snap = poller.poll_once()
    assert _gpu(snap, "1").up
    assert _gpu(snap, "1").energy_mj == _gpu(snap, "0").energy_mj


def test_counter_going_backwards_never_decreases_exported_counters():
    nv = make_fake_nvml(gpus=1)
    _, poller = _poller(nv)
    poller.poll_once()
    history = []
    for step in range(12):
        nv.advance(3)
        if step == 5:
            nv.gpus[0].energy_mj = 1234  # driver reload: counter restarts near zero
        snap = poller.poll_once()
        history.append(_gpu(snap, "0"))
    energies = [g.energy_mj for g in history]
    idles = [g.idle_mj for g in history]
    assert energies == sorted(energies) and idles == sorted(idles)
    assert history[-1].counter_resets == 1
    # exactly one interval (the one with the reset) is dropped; all the others are booked
    per_interval = [b - a for a, b in zip(energies, energies[1:], strict=False)]
    assert per_interval.count(0) == 1
    assert per_interval[4] == 0


def test_gpu_without_energy_counter_integrates_power_and_says_so():
    nv = make_fake_nvml(gpus=1)
    nv.gpus[0].has_energy = False
    backend, poller = _poller(nv)
    assert not backend._devices[0].info.has_energy_counter
    poller.poll_once()
    nv.advance(1)
    snap = poller.poll_once()
    g = _gpu(snap, "0")
    assert g.energy_source == "power_integration"
    assert g.energy_mj > 0  # integrated over the injected 1 s clock step
    assert "energy" not in dict(g.errors)  # NotSupported is a fact, not a failure


def _shared_gpu_rows():
    with (FIXTURES / "nvml-h100" / "shared_gpu_trace.csv").open() as fh:
        trace = list(csv.DictReader(fh))
    with (FIXTURES / "nvml-h100" / "shared_gpu_process_util.csv").open() as fh:
        util = list(csv.DictReader(fh))
    return trace, util


class _PidJobs:
    """Discovery for this test: PID -> job, as slurm discovery would find in /proc."""

    name = "test"

    def __init__(self, jobs: dict[int, str]) -> None:
        import collections

        self.jobs = jobs
        self.errors = collections.Counter()

    def discover(self, readings):
        out = {}
        for r in readings:
            per: dict[Job, set[int]] = {}
            for pid in r.pids or ():
                per.setdefault(Job(self.jobs[pid], "slurm"), set()).add(pid)
            out[r.info.index] = {j: frozenset(p) for j, p in per.items()}
        return out


def test_shared_gpu_split_by_real_process_utilisation():
    """Replay the real two-process capture: the heavy matmul job gets most of the energy."""
    trace, util = _shared_gpu_rows()
    nv = make_fake_nvml(gpus=1)
    _, poller = _poller(nv, _PidJobs({402: "light-402", 428: "heavy-428"}))
    g = nv.gpus[0]
    snap = None
    for row in trace:
        g.energy_mj = int(row["energy_mj"])
        g.power_mw = int(row["power_mw"])
        g.procs = [int(p.split(":")[0]) for p in row["pids"].split()] if row["pids"] else []
        ts = float(row["ts"])
        g.util_samples = [
            UtilSample(int(u["pid"]), int(u["sample_ts_us"]), int(u["sm_util"]))
            for u in util
            if float(u["ts"]) <= ts
        ]
        snap = poller.poll_once()
        s = _gpu(snap, "0")
        assert sum(j.energy_mj for j in s.jobs) + s.idle_mj == s.energy_mj
    s = _gpu(snap, "0")
    jobs = {j.job.job_id: j.energy_mj for j in s.jobs}
    assert jobs["heavy-428"] > 5 * jobs["light-402"] > 0
    assert s.energy_mj == int(trace[-1]["energy_mj"]) - int(trace[0]["energy_mj"])
    # NotFound ("no new sample") was hit and is not counted as an error
    assert "process_utilization" not in dict(s.errors)
