"""Host CPU energy booked to jobs: shares, exact conservation, outages, restarts, the poller and the page."""

from __future__ import annotations

import collections
import errno
import itertools
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter_proc import wait_until
from tests.hostfs import HZ, MODEL, SLURM_JOB, HostTree
from wattprint.exporter.app import App, build_host
from wattprint.exporter.backends.base import BackendError, GpuInfo, GpuReading
from wattprint.exporter.collectors import WattprintCollector
from wattprint.exporter.config import Config, parse_config
from wattprint.exporter.host.accounting import HostPoller, HostSnapshot
from wattprint.exporter.host.cgroups import CgroupCollector
from wattprint.exporter.host.procstat import read_small
from wattprint.exporter.host.rapl import RaplCollector
from wattprint.exporter.jobs.base import NoDiscovery
from wattprint.exporter.poller import Poller
from wattprint.exporter.state import StateError, load_state, load_state_file

J1, J2, J3 = SLURM_JOB.format(1), SLURM_JOB.format(2), SLURM_JOB.format(3)


class Ticks:
    """A stand-in for CLOCK_BOOTTIME: one second per reading."""

    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def host_poller(host: HostTree, discovery: str = "slurm", retention: float = 300.0,
                read_file: Callable[[str], bytes] = read_small, clock: Ticks | None = None,
                hostname: str = "") -> HostPoller:
    rapl = RaplCollector(str(host.sysfs), read_file=read_file, clock=clock or Ticks())
    cgroups = None if discovery == "none" else CgroupCollector(str(host.sysfs), str(host.procfs), discovery, hz=HZ)
    return HostPoller(rapl, cgroups, str(host.procfs), retention, hostname=hostname)


def domain(snap: HostSnapshot, socket: str, name: str):
    return next(d for d in snap.domains if (d.socket, d.domain) == (socket, name))


def conserved(snap: HostSnapshot) -> bool:
    return all(d.idle_uj + sum(uj for _, uj in d.jobs) == d.energy_uj for d in snap.domains)


def test_each_socket_is_split_by_cpu_time_with_the_rest_idle(tmp_path):
    host = HostTree(tmp_path)
    host.cgroup(J1)
    host.cgroup(J2)
    hp = host_poller(host)
    assert [n for n, _, _ in hp.poll(0.0)] == ["rapl", "cgroups"]
    # one interval: 4 CPU-seconds on the node, job 1 used 2, job 2 used 1, nobody the last one
    host.add_node_usec(4_000_000)
    host.add_usage(J1, 2_000_000)
    host.add_usage(J2, 1_000_000)
    host.add_energy("0", "package", 100_000_000)
    host.add_energy("0", "dram", 10_000_000)
    host.add_energy("1", "package", 40_000_001)
    assert all(ok for _, ok, _ in hp.poll(1.0))
    snap = hp.snapshot()
    p0 = domain(snap, "0", "package")
    assert (p0.energy_uj, p0.idle_uj, dict(p0.jobs), p0.model) == (100_000_000, 25_000_000,
                                                                    {"1": 50_000_000, "2": 25_000_000}, MODEL)
    assert dict(domain(snap, "0", "dram").jobs) == {"1": 5_000_000, "2": 2_500_000}
    p1 = domain(snap, "1", "package")
    # the spare microjoule goes to one of the three (largest remainder, rotating)
    assert p1.energy_uj == 40_000_001 and p1.idle_uj + sum(dict(p1.jobs).values()) == 40_000_001
    assert sorted([*dict(p1.jobs).values(), p1.idle_uj]) in ([10_000_000, 10_000_000, 20_000_001],
                                                               [10_000_000, 10_000_001, 20_000_000])
    assert domain(snap, "1", "dram").energy_uj == 0
    assert conserved(snap) and snap.rapl_up and snap.cpu_times_ok
    assert snap.jobs == (("1", 2_000_000, True), ("2", 1_000_000, True))


def test_jobs_using_more_than_the_node_share_it_all_with_no_idle(tmp_path):
    host = HostTree(tmp_path, sockets=1, dram=False)
    host.cgroup(J1)
    host.cgroup(J2)
    hp = host_poller(host)
    hp.poll(0.0)
    host.add_node_usec(1_000_000)  # sampling jitter: the cgroups counted 2 s in a 1 s node interval
    host.add_usage(J1, 1_500_000)
    host.add_usage(J2, 500_000)
    host.add_energy("0", "package", 8_000_001)
    hp.poll(1.0)
    p0 = domain(hp.snapshot(), "0", "package")
    assert p0.idle_uj == 0 and sum(uj for _, uj in p0.jobs) == 8_000_001
    assert abs(dict(p0.jobs)["1"] - 6_000_000) <= 1


def test_unknown_cpu_times_book_the_energy_as_idle(tmp_path):
    host = HostTree(tmp_path, sockets=1, dram=False)
    host.cgroup(J1)
    hp = host_poller(host)
    hp.poll(0.0)
    (host.procfs / "stat").rename(host.procfs / "stat.away")
    host.add_usage(J1, 1_000_000)
    host.add_energy("0", "package", 5_000_000)
    assert dict((n, ok) for n, ok, _ in hp.poll(1.0)) == {"rapl": True, "cgroups": False}
    snap = hp.snapshot()
    assert domain(snap, "0", "package").idle_uj == 5_000_000 and not snap.cpu_times_ok
    assert ("procstat_error", 1) in snap.errors


def test_discovery_none_books_everything_idle_without_a_scan(tmp_path):
    host = HostTree(tmp_path, sockets=1)
    host.cgroup(J1)
    hp = host_poller(host, discovery="none")
    hp.poll(0.0)
    host.add_usage(J1, 1_000_000)
    host.add_energy("0", "package", 3)
    assert [n for n, _, _ in hp.poll(1.0)] == ["rapl"]
    d = domain(hp.snapshot(), "0", "package")
    assert (d.energy_uj, d.idle_uj, d.jobs) == (3, 3, ())


def test_an_unread_domain_books_its_outage_by_the_whole_outage_cpu_time(tmp_path):
    host = HostTree(tmp_path, sockets=1)
    host.cgroup(J1)
    host.cgroup(J2)
    broken = {"on": False}

    def reader(path: str) -> bytes:
        if broken["on"] and path.endswith("intel-rapl:0:0/energy_uj"):
            raise OSError(errno.EIO, "Input/output error", path)
        return read_small(path)

    hp = host_poller(host, read_file=reader)
    hp.poll(0.0)
    broken["on"] = True
    for job in (J1, J2):  # job 1 runs in the first polled interval, job 2 in the second: DRAM reads neither
        host.add_node_usec(2_000_000)
        host.add_usage(job, 1_000_000)
        host.add_energy("0", "dram", 3_000_000)
        hp.poll(1.0)
        d = domain(hp.snapshot(), "0", "dram")
        assert not d.read and not hp.snapshot().rapl_up
    broken["on"] = False
    host.add_node_usec(2_000_000)
    host.add_energy("0", "dram", 2_000_000)
    hp.poll(2.0)
    d = domain(hp.snapshot(), "0", "dram")
    assert d.read and d.energy_uj == 8_000_000
    # 6 CPU-seconds in the outage: 1 each for the jobs, 4 idle
    shares = [dict(d.jobs)["1"], dict(d.jobs)["2"], d.idle_uj]
    assert sum(shares) == 8_000_000 and all(abs(a - b) <= 1 for a, b in zip(shares, [1_333_333, 1_333_333,
                                                                                     5_333_333], strict=True))
    assert conserved(hp.snapshot())


def test_finished_jobs_are_kept_for_the_retention_then_dropped(tmp_path):
    host = HostTree(tmp_path, sockets=1, dram=False)
    host.cgroup(J1)
    hp = host_poller(host, retention=10.0)
    hp.poll(0.0)
    host.add_node_usec(1_000_000)
    host.add_usage(J1, 1_000_000)
    host.add_energy("0", "package", 7)
    hp.poll(1.0)
    host.remove(J1)
    hp.poll(2.0)
    assert hp.snapshot().jobs == (("1", 1_000_000, False),)
    assert dict(domain(hp.snapshot(), "0", "package").jobs) == {"1": 7}
    hp.poll(12.5)
    snap = hp.snapshot()
    assert snap.jobs == () and domain(snap, "0", "package").jobs == ()


def test_a_cgroup_created_again_under_the_same_name_is_a_fresh_baseline(tmp_path):
    host = HostTree(tmp_path, sockets=1, dram=False)
    host.cgroup(J1, 5_000_000)
    hp = host_poller(host)
    hp.poll(0.0)
    host.set_usage(J1, 1_000)  # requeued job: new cgroup, counter from 0
    host.add_node_usec(1_000_000)
    hp.poll(1.0)
    host.set_usage(J1, 501_000)
    host.add_node_usec(1_000_000)
    hp.poll(2.0)
    assert hp.snapshot().jobs == (("1", 500_000, True),)


@settings(max_examples=50, deadline=None)
@given(steps=st.lists(st.tuples(
    st.integers(0, 9),                                    # node CPU, 0.1 s units per CPU-second slot
    st.lists(st.integers(0, 3_000_000), min_size=3, max_size=3),   # usage of jobs 1..3 this interval
    st.lists(st.integers(0, 1_900_000), min_size=4, max_size=4),   # per zone: an outage of 3 + 1 polls < range
    st.sampled_from(["ok", "ok", "ok", "zone_fails", "cgroups_fail", "job_ends", "job_starts"]),
), min_size=1, max_size=25))
def test_conservation_to_the_microjoule_over_random_polls(steps):
    # tmpfs when there is one: the tree is rewritten at every step, and disk-backed writes are 30x slower here
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        host = HostTree(Path(tmp), range_uj=8_000_000)  # a small range: wraps every few polls
        for j in (J1, J2):
            host.cgroup(j)
        failing = {"zone": None}
        keys = [("0", "package"), ("0", "dram"), ("1", "package"), ("1", "dram")]

        def reader(path: str) -> bytes:
            if failing["zone"] and path.endswith(f"{failing['zone']}/energy_uj"):
                raise OSError(errno.EIO, "Input/output error", path)
            return read_small(path)

        hp = host_poller(host, read_file=reader)
        hp.poll(0.0)
        truth = collections.Counter()
        streak = 0
        for i, (node_tenths, usage, energy, event) in enumerate(steps, 1):
            failing["zone"] = None
            stat_away = host.procfs / "stat.away"
            if stat_away.exists():
                stat_away.rename(host.procfs / "stat")
            if event == "zone_fails" and streak < 3:  # outages shorter than one wrap: the counter can tell
                failing["zone"] = host.zones[keys[i % 4]]
                streak += 1
            else:
                streak = 0
            if event == "cgroups_fail":
                (host.procfs / "stat").rename(stat_away)
            elif event == "job_ends" and (host.cgroot / J2).exists():
                host.remove(J2)
            elif event == "job_starts" and not (host.cgroot / J3).exists():
                host.cgroup(J3)
            for j, u in zip((J1, J2, J3), usage, strict=True):
                if (host.cgroot / j).exists():
                    host.add_usage(j, u)
            host.add_node_usec(node_tenths * 1_000_000)
            for key, uj in zip(keys, energy, strict=True):
                host.add_energy(*key, uj)
                truth[key] += uj
            hp.poll(float(i))
            snap = hp.snapshot()
            assert conserved(snap)
            for d in snap.domains:
                if d.read:
                    assert d.energy_uj == truth[(d.socket, d.domain)]
            assert all(uj >= 0 for d in snap.domains for _, uj in d.jobs)


# -- the poller: host and GPU apart ----------------------------------------------------------------------------


class Board:
    name = "scripted"

    def __init__(self) -> None:
        self.mj = 1_000
        self.fail = False

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self) -> list[GpuReading]:
        if self.fail:
            raise BackendError("endpoint down")
        self.mj += 1_000
        return [GpuReading(info=GpuInfo(index="0", uuid="GPU-a", model="H100"), timestamp=0.0, energy_mj=self.mj)]


def test_gpu_failure_does_not_stop_host_accounting_nor_the_reverse(tmp_path, caplog):
    host = HostTree(tmp_path, sockets=1, dram=False)
    board = Board()
    hp = host_poller(host, discovery="none")
    clock = itertools.count(0.0, 1.0)
    poller = Poller(board, NoDiscovery(), clock=lambda: next(clock), host=hp)
    poller.poll_once()
    board.fail = True
    host.add_energy("0", "package", 9_000)
    snap = poller.poll_once()
    assert [(n, ok) for n, ok, _ in snap.collectors] == [("gpu", False), ("jobs", True), ("rapl", True)]
    assert snap.host is not None and domain(snap.host, "0", "package").energy_uj == 9_000
    board.fail = False

    def broken() -> None:
        raise RuntimeError("a bug")

    hp.rapl.poll = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="wattprint.host"):
        snap = poller.poll_once()
        snap = poller.poll_once()
    assert [(n, ok) for n, ok, _ in snap.collectors] == [("gpu", True), ("jobs", True), ("rapl", False)]
    assert snap.gpus[0].energy_mj == 2_000 and snap.host is not None and not snap.host.rapl_up
    logged = [r.getMessage() for r in caplog.records if r.name == "wattprint.host"]
    assert len(logged) == 1 and "rapl collector failed unexpectedly" in logged[0]  # once, not every poll


# -- the page ----------------------------------------------------------------------------------------------------


def page(snap) -> dict:
    return {m.name: m for m in WattprintCollector(lambda: snap, "node-a", (("cluster", "jz"),)).collect()}


def test_page_has_the_cpu_families_with_their_labels(tmp_path):
    host = HostTree(tmp_path, sockets=1)
    host.cgroup(J1)
    clock = itertools.count(0.0, 1.0)
    poller = Poller(Board(), NoDiscovery(), clock=lambda: next(clock), host=host_poller(host))
    poller.poll_once()
    host.add_node_usec(2_000_000)
    host.add_usage(J1, 1_000_000)
    host.add_energy("0", "package", 2_000_000)
    fams = page(poller.poll_once())
    cpu = {s.labels["domain"]: (s.labels, s.value) for s in fams["wattprint_cpu_energy_joules"].samples}
    assert cpu["package"] == ({"socket": "0", "domain": "package", "model": MODEL, "hostname": "node-a",
                               "cluster": "jz"}, 2.0)
    job = fams["wattprint_job_cpu_energy_joules"].samples
    assert [(s.labels["job_id"], s.labels["domain"], s.value) for s in job] == [("1", "package", 1.0),
                                                                                  ("1", "dram", 0.0)]
    assert fams["wattprint_cpu_idle_energy_joules"].samples[0].value == 1.0
    (sec,) = fams["wattprint_job_cpu_seconds"].samples
    assert sec.labels == {"job_id": "1", "hostname": "node-a", "cluster": "jz"} and sec.value == 1.0
    (up,) = fams["wattprint_cpu_rapl_up"].samples
    assert up.labels == {"hostname": "node-a", "cluster": "jz"} and up.value == 1.0


def test_permission_denied_page_has_no_cpu_energy_and_says_why(tmp_path):
    def denied(path: str) -> bytes:
        if path.endswith("/energy_uj"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return read_small(path)

    host = HostTree(tmp_path)
    poller = Poller(Board(), NoDiscovery(), host=host_poller(host, discovery="none", read_file=denied))
    poller.poll_once()
    fams = page(poller.poll_once())
    for name in ("wattprint_cpu_energy_joules", "wattprint_cpu_idle_energy_joules", "wattprint_job_cpu_energy_joules"):
        assert fams[name].samples == [], name
    assert fams["wattprint_cpu_rapl_up"].samples[0].value == 0.0
    errs = {s.labels["reason"]: s.value for s in fams["wattprint_cpu_collection_errors"].samples}
    assert errs == {"permission_denied": 8.0}
    success = {s.labels["collector"]: s.value for s in fams["wattprint_exporter_collector_success"].samples}
    assert success["rapl"] == 0.0 and success["gpu"] == 1.0


def test_collector_off_means_no_cpu_families(tmp_path):
    fams = page(Poller(Board(), NoDiscovery()).poll_once())
    assert not [n for n in fams if "cpu" in n]


# -- restarts (--state-file) -------------------------------------------------------------------------------------


def stateful(host: HostTree, state: Path, clock: Ticks, hostname: str = "") -> Poller:
    ticks = itertools.count(0.0, 1.0)
    return Poller(Board(), NoDiscovery(), clock=lambda: next(ticks), wallclock=lambda: 1.7e9,
                  state_file=str(state), state_interval=1.0, host=host_poller(host, clock=clock, hostname=hostname))


def test_restart_in_the_same_boot_books_the_downtime_by_its_cpu_time(tmp_path):
    host = HostTree(tmp_path, sockets=1, dram=False)
    host.cgroup(J1)
    state = tmp_path / "state.json"
    clock = Ticks()
    p = stateful(host, state, clock)
    p.poll_once()
    host.add_node_usec(1_000_000)
    host.add_usage(J1, 1_000_000)
    host.add_energy("0", "package", 4_000_000)
    before = p.poll_once().host
    assert before is not None and domain(before, "0", "package").jobs == (("1", 4_000_000),)
    # down; the counter wraps once meanwhile, the job keeps running and another job starts
    host.add_energy("0", "package", host.range_uj - 10)
    host.add_node_usec(4_000_000)
    host.add_usage(J1, 1_000_000)
    host.cgroup(J2, 2_000_000)
    clock.t += 30.0
    after = stateful(host, state, clock).poll_once().host
    assert after is not None
    d = domain(after, "0", "package")
    assert d.energy_uj == 4_000_000 + host.range_uj - 10 and d.resets == 0
    # 4 CPU-seconds down: 1 for job 1, 3 idle; job 2 is new (a baseline), its time so far is idle's
    assert dict(d.jobs)["1"] == 4_000_000 + (host.range_uj - 10) // 4 and conserved(after)
    assert dict((j, s) for j, s, _ in after.jobs) == {"1": 2_000_000, "2": 0}


def test_restart_after_a_reboot_books_nothing_and_counts_a_reset(tmp_path, caplog):
    host = HostTree(tmp_path, sockets=1, dram=False)
    host.cgroup(J1)
    state = tmp_path / "state.json"
    p = stateful(host, state, Ticks())
    p.poll_once()
    host.add_node_usec(1_000_000)
    host.add_usage(J1, 1_000_000)
    host.add_energy("0", "package", 4_000_000)
    p.poll_once()
    # reboot: new boot id, counters start low again, the job's cgroup is new
    host.boot("00000000-0000-4000-8000-000000000000")
    host.set_energy("0", "package", 10)
    host.set_node_ticks(50)
    host.set_usage(J1, 7)
    with caplog.at_level(logging.INFO, logger="wattprint.host"):
        p2 = stateful(host, state, Ticks(5.0))
    assert any("another boot" in r.message for r in caplog.records)
    snap = p2.poll_once().host
    assert snap is not None
    d = domain(snap, "0", "package")
    assert (d.energy_uj, d.resets, dict(d.jobs)) == (4_000_000, 1, {"1": 4_000_000})
    host.add_energy("0", "package", 500)
    host.add_node_usec(1_000_000)
    snap = p2.poll_once().host
    assert snap is not None and domain(snap, "0", "package").energy_uj == 4_000_500
    fams = page(p2.poll_once())
    assert fams["wattprint_cpu_energy_resets"].samples[0].value == 1.0
    assert json.loads(state.read_text())["host"]["domains"][0]["resets"] == 1


def test_long_downtime_is_booked_as_a_lower_bound_with_a_warning(tmp_path, caplog):
    host = HostTree(tmp_path, sockets=1, dram=False, range_uj=100_000_000)
    state = tmp_path / "state.json"
    clock = Ticks()
    p = stateful(host, state, clock)
    p.poll_once()
    host.add_energy("0", "package", 50_000_000)  # 50 W over the 1 s poll: the range lasts 2 s at that power
    p.poll_once()
    clock.t += 3_600.0
    host.add_energy("0", "package", 1_000)
    with caplog.at_level(logging.WARNING, logger="wattprint.rapl"):
        snap = stateful(host, state, clock).poll_once().host
    assert snap is not None and domain(snap, "0", "package").energy_uj == 50_001_000
    assert any("lower bound" in r.message for r in caplog.records)


def _first_node(host: HostTree, state: Path, clock: Ticks, hostname: str) -> None:
    """One exporter's life on `hostname`: 4 J on the package, 3 of them job 1's, saved to `state`."""
    host.cgroup(J1)
    p = stateful(host, state, clock, hostname)
    p.poll_once()
    host.add_node_usec(4_000_000)
    host.add_usage(J1, 3_000_000)
    host.add_energy("0", "package", 4_000_000)
    p.poll_once()


def test_a_file_saved_for_another_hostname_starts_the_cpu_counters_from_0(tmp_path, caplog):
    """A state file copied to or shared with another node (an image template, an NFS path), or --hostname changed:
    that series is new to Prometheus and must start at 0, even in the same boot (raw baselines and all)."""
    host = HostTree(tmp_path, sockets=1, dram=False)
    state = tmp_path / "state.json"
    clock = Ticks()
    _first_node(host, state, clock, "node-a")
    assert json.loads(state.read_text())["host"]["hostname"] == "node-a"
    host.add_energy("0", "package", 2_000_000)
    host.add_node_usec(2_000_000)
    host.add_usage(J1, 2_000_000)
    with caplog.at_level(logging.INFO, logger="wattprint.host"):
        p = stateful(host, state, clock, "node-b")
    why = [r for r in caplog.records if r.name == "wattprint.host"]
    assert [r.message for r in why] == ["state file: CPU energy saved for another hostname, not taken over; "
                                        "CPU counters start from 0"]
    assert why[0].fields == {"saved_hostname": "node-a", "hostname": "node-b"}  # type: ignore[attr-defined]
    snap = p.poll_once().host   # a baseline: nothing booked, no reset counted
    assert snap is not None
    d = domain(snap, "0", "package")
    assert (d.energy_uj, d.idle_uj, d.resets, dict(d.jobs)) == (0, 0, 0, {"1": 0})
    assert dict((j, s) for j, s, _ in snap.jobs) == {"1": 0}
    host.add_energy("0", "package", 1_000_000)
    host.add_node_usec(1_000_000)
    snap = p.poll_once().host
    assert snap is not None and domain(snap, "0", "package").energy_uj == 1_000_000 and conserved(snap)
    saved = load_state_file(state)[1]
    assert saved is not None and saved.hostname == "node-b" and saved.domains[0].energy_uj == 1_000_000


def test_a_file_without_a_hostname_is_restored_whatever_the_hostname(tmp_path):
    """Files from exporters before the hostname was saved: restored as they always were (no way to tell)."""
    host = HostTree(tmp_path, sockets=1, dram=False)
    state = tmp_path / "state.json"
    clock = Ticks()
    _first_node(host, state, clock, "node-a")
    doc = json.loads(state.read_text())
    del doc["host"]["hostname"]
    state.write_text(json.dumps(doc))
    loaded = load_state_file(state)[1]
    assert loaded is not None and loaded.hostname is None
    host.add_energy("0", "package", 2_000_000)
    host.add_node_usec(2_000_000)
    snap = stateful(host, state, clock, "node-b").poll_once().host
    assert snap is not None
    d = domain(snap, "0", "package")
    assert (d.energy_uj, d.resets) == (6_000_000, 0) and dict(d.jobs)["1"] == 3_000_000 and conserved(snap)


def test_old_state_files_without_host_load_and_gain_it(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"format": "wattprint-exporter-state", "version": 1, "saved_unixtime": 1.0,
                                 "gpus": {"GPU-a": {"index": "0", "raw_counter_mj": 1_000, "energy_mj": 9,
                                                    "idle_mj": 9, "resets": 0, "jobs": []}}}))
    gpus, host_state = load_state_file(state)
    assert host_state is None and gpus["GPU-a"].energy_mj == 9
    host = HostTree(tmp_path, sockets=1, dram=False)
    stateful(host, state, Ticks()).poll_once()
    gpus, host_state = load_state_file(state)
    assert gpus["GPU-a"].energy_mj == 9 + 1_000 and host_state is not None
    assert host_state.zones[0].zone == "intel-rapl:0" and host_state.boot_id == host.procfs.joinpath(
        "sys/kernel/random/boot_id").read_text().strip()
    assert load_state(state) == gpus  # the GPU-only reader older code uses


def test_a_bad_host_section_refuses_the_file(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"format": "wattprint-exporter-state", "version": 1, "gpus": {},
                                 "host": {"boot_id": "b", "domains": [{"socket": "0", "domain": "package",
                                                                       "energy_uj": -1, "idle_uj": 0}]}}))
    with pytest.raises(StateError, match="energy_uj"):
        load_state_file(state)
    state.write_text(json.dumps({"format": "wattprint-exporter-state", "version": 1, "gpus": {},
                                 "host": {"boot_id": "b", "hostname": 7}}))
    with pytest.raises(StateError, match="host.hostname"):
        load_state_file(state)


# -- flags and the running app -------------------------------------------------------------------------------------


def test_flags_and_environment(monkeypatch):
    cfg = parse_config(["--path.sysfs", "/host/sys"])
    assert (cfg.sysfs, cfg.collector_rapl) == ("/host/sys", True)
    assert parse_config(["--no-collector.rapl"]).collector_rapl is False
    for value, expected in (("false", False), ("0", False), ("TRUE", True), ("on", True)):
        monkeypatch.setenv("WATTPRINT_COLLECTOR_RAPL", value)
        assert parse_config([]).collector_rapl is expected
    assert parse_config(["--collector.rapl"]).collector_rapl is True  # the flag wins over the environment
    monkeypatch.setenv("WATTPRINT_COLLECTOR_RAPL", "maybe")
    with pytest.raises(SystemExit) as exc:
        parse_config([])
    assert exc.value.code == 2
    assert build_host(Config(collector_rapl=False)) is None
    assert build_host(Config()).cgroups is None  # type: ignore[union-attr]  # discovery none: no scan


def test_app_serves_cpu_series_from_the_fixture_tree(tmp_path):
    host = HostTree(tmp_path / "host", sockets=2)
    host.cgroup(SLURM_JOB.format(4242))
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "0").write_text("4242\n")
    cfg = Config(backend="replay", listen_address="127.0.0.1:0", job_discovery="mapping-dir", mapping_dir=str(jobs),
                 sysfs=str(host.sysfs), procfs=str(host.procfs), poll_interval=3_600.0, hostname="n1")
    app = App(cfg)
    app.start()
    try:
        # the poller thread polls once at start, then sleeps for the hour: move the counters after that poll
        assert wait_until(lambda: app.poller.snapshot.polls >= 2)
        host.add_node_usec(2_000_000)
        host.add_usage(SLURM_JOB.format(4242), 1_000_000)
        host.add_energy("1", "package", 3_000_000)
        app.poller.poll_once()
        assert app.server is not None
        text = requests.get(f"http://127.0.0.1:{app.server.port}/metrics", timeout=5).text
    finally:
        app.shutdown()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    energy = {(s.labels["socket"], s.labels["domain"]): s.value for s in fams["wattprint_cpu_energy_joules"].samples
              if s.name.endswith("_total")}
    assert energy == {("0", "package"): 0.0, ("0", "dram"): 0.0, ("1", "package"): 3.0, ("1", "dram"): 0.0}
    job = {(s.labels["socket"], s.labels["domain"]): s.value for s in fams["wattprint_job_cpu_energy_joules"].samples
           if s.name.endswith("_total") and s.labels["job_id"] == "4242"}
    assert job[("1", "package")] == 1.5
    assert 'wattprint_exporter_collector_success{collector="cgroups"} 1.0' in text
