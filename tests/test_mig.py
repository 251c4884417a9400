"""MIG boards: the board's energy split among its instances by the rule in wattprint/exporter/mig.py, on the dcgm and
nvml backends, with jobs found by mapping files (`<gpu>.<GPU_I_ID>`, MIG UUIDs) and by processes; and a
dcgm-exporter page whose unparseable lines cost nothing but themselves.

Each job's expected energy is computed here from the documented rule, independently of mig.py, and held to the
exported integer millijoules within the rounding (< 1 mJ); jobs + idle == board energy exactly.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_nvml import FakeMig, make_fake_nvml
from tests.test_dcgm_backend import FakeDcgm, _backend
from wattprint.exporter.backends.base import GpuInfo, GpuReading, MigInstance
from wattprint.exporter.backends.nvml import NvmlBackend
from wattprint.exporter.collectors import WattprintCollector
from wattprint.exporter.jobs.base import Assignment, Job
from wattprint.exporter.jobs.mapping_dir import MappingDirDiscovery
from wattprint.exporter.jobs.slurm import SlurmDiscovery
from wattprint.exporter.mig import board_shares, profile_slices
from wattprint.exporter.poller import Poller, Snapshot

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "dcgm" / "a800-mig-broken-families.metrics.txt"
A800 = "GPU-a800a800-1111-2222-3333-444455556666"
WHOLE = "GPU-a800a800-7777-8888-9999-aaaabbbbcccc"
# the fixture's instances: GPU_I_ID -> (slices, activity)
INSTANCES = {"1": (3, 0.812), "5": (2, 0.305), "13": (1, 0.0)}


def expected_shares(energy_mj: float, slices: dict[str, int], activity: dict[str, float | None], board: int,
                    seconds: float, floor_watts: float | None) -> dict[str, float]:
    """The documented rule, written out: the floor by compute slices, the rest by slices x activity (by slices
    when no activity is known); key "" is the slices no instance holds."""
    floor = energy_mj if floor_watts is None else min(energy_mj, floor_watts * seconds * 1000.0)
    rest = energy_mj - floor
    free = board - sum(slices.values())
    weighted = {g: slices[g] * a for g, a in activity.items() if a is not None}
    out = {g: floor * s / board for g, s in slices.items()}
    out[""] = floor * free / board
    if sum(weighted.values()) > 0:
        for g, w in weighted.items():
            out[g] += rest * w / sum(weighted.values())
    else:
        for g, s in slices.items():
            out[g] += rest * s / board
        out[""] += rest * free / board
    return out


# -- the rule itself -----------------------------------------------------------------------------------------


def test_worked_example_from_the_docs() -> None:
    """docs/exporter.md, "MIG": 100 J in 1 s on a 7-slice board with a 70 W floor; 3g at 80 %, 2g at 30 %, 1g
    idle, one slice unpartitioned."""
    mig = (MigInstance("1", "3g.40gb", 3, activity=0.8), MigInstance("5", "2g.20gb", 2, activity=0.3),
           MigInstance("13", "1g.10gb", 1, activity=0.0))
    got = board_shares(100_000, mig, 7, 1.0, 70.0)
    assert got.instances_mj == {"1": 54_000, "5": 26_000, "13": 10_000}
    assert got.unpartitioned_mj == 10_000 and got.by_activity


def test_without_activity_everything_goes_by_slices() -> None:
    mig = (MigInstance("1", "3g.40gb", 3), MigInstance("2", "4g.40gb", 4))
    got = board_shares(70_007, mig, 7, 1.0, 70.0)
    assert got.instances_mj == {"1": 30_003, "2": 40_004} and not got.by_activity


def test_profile_slices() -> None:
    assert [profile_slices(p) for p in ("1g.10gb", "3g.40gb", "7g.80gb", "1c.3g.40gb", "1g.10gb+me", "x")] == [
        1, 3, 7, 3, 1, 0]


@settings(max_examples=300, deadline=None)
@given(
    energy=st.integers(0, 10**9),
    spec=st.lists(st.tuples(st.integers(1, 4), st.one_of(st.none(), st.floats(0, 1))), min_size=1, max_size=7),
    seconds=st.floats(0.01, 60),
    floor=st.one_of(st.none(), st.floats(0, 1000)),
)
def test_conservation_and_rule_on_random_boards(energy: int, spec: list[tuple[int, float | None]], seconds: float,
                                                floor: float | None) -> None:
    mig = tuple(MigInstance(str(i + 1), f"{s}g.x", s, activity=a) for i, (s, a) in enumerate(spec))
    board = max(7, sum(s for s, _ in spec))
    got = board_shares(energy, mig, board, seconds, floor)
    assert sum(got.instances_mj.values()) + got.unpartitioned_mj == energy
    want = expected_shares(energy, {m.gi_id: m.slices for m in mig}, {m.gi_id: m.activity for m in mig}, board,
                           seconds, floor)
    for gi, mj in got.instances_mj.items():
        assert abs(mj - want[gi]) < 1.0 + 1e-9 * energy
    assert abs(got.unpartitioned_mj - want[""]) < 1.0 + 1e-9 * energy


# -- dcgm: a page with broken families, MIG instances under different loads ---------------------------------------


def test_the_fixture_breaks_a_strict_parser() -> None:
    """What the forgiving reader is for: prometheus_client rejects this page as a whole."""
    with pytest.raises(ValueError):
        list(text_string_to_metric_families(FIXTURE.read_text()))


def test_broken_families_cost_only_their_own_lines(caplog: pytest.LogCaptureFixture) -> None:
    dcgm = FakeDcgm()
    try:
        dcgm.body = FIXTURE.read_bytes()
        b = _backend(dcgm.url, timeout=1.0, retries=0)
        with caplog.at_level(logging.WARNING, logger="wattprint.dcgm"):
            first = {r.info.uuid: r for r in b.read()}
            second = {r.info.uuid: r for r in b.read()}
    finally:
        dcgm.stop()
    # one reading per board, its energy taken once (never summed over the instances' repeated lines)
    assert sorted(first) == sorted(second) == sorted([A800, WHOLE])
    assert first[A800].energy_mj == 5_000_000_000 and first[WHOLE].energy_mj == 7_000_000_000
    assert [(m.gi_id, m.profile, m.slices, m.activity) for m in first[A800].mig] == [
        ("1", "3g.40gb", 3, 0.812), ("5", "2g.20gb", 2, 0.305), ("13", "1g.10gb", 1, 0.0)]
    assert first[A800].mig_slices == 7 and first[WHOLE].mig == ()
    # 2 VGPU_INSTANCE_IDS and 3 CUDA_VISIBLE_DEVICES_STR lines per page, two pages
    assert b.skipped == {"DCGM_FI_DEV_VGPU_INSTANCE_IDS": 4, "DCGM_FI_DEV_CUDA_VISIBLE_DEVICES_STR": 6}
    logged = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(logged) == 2, "logged once per family, not per line or poll"


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _poll_dcgm(tmp_path: Path, files: dict[str, str], floor: float | None) -> tuple[Snapshot, Snapshot]:
    """Two polls of the fixture, the board counter 90 J higher the second time, jobs from mapping files."""
    for name, jobs in files.items():
        (tmp_path / name).write_text(jobs)
    dcgm = FakeDcgm()
    try:
        page = FIXTURE.read_text()
        dcgm.body = page.encode()
        poller = Poller(_backend(dcgm.url, timeout=1.0, retries=0), MappingDirDiscovery(tmp_path),
                        mig_idle_floor_watts=floor)
        first = poller.poll_once()
        time.sleep(0.05)
        dcgm.body = page.replace(" 5000000000", " 5000090000").encode()
        second = poller.poll_once()
    finally:
        dcgm.stop()
    return first, second


def _deltas(first: Snapshot, second: Snapshot, uuid: str) -> tuple[int, int, dict[str, int], int]:
    (g1,) = [g for g in first.gpus if g.info.uuid == uuid]
    (g2,) = [g for g in second.gpus if g.info.uuid == uuid]
    before = {j.job.job_id: j.energy_mj for j in g1.jobs}
    jobs = {j.job.job_id: j.energy_mj - before.get(j.job.job_id, 0) for j in g2.jobs}
    span_us = max(j.gpu_us for j in g2.jobs)
    return g2.energy_mj - g1.energy_mj, g2.idle_mj - g1.idle_mj, jobs, span_us


@pytest.mark.parametrize("floor", [None, 40.0])
def test_dcgm_instances_split_by_the_rule(tmp_path: Path, floor: float | None) -> None:
    """1g, 2g and 3g instances at different loads, one job on each (mapping files `<gpu>.<GPU_I_ID>`); one slice
    unpartitioned. With the learned floor (None) the first interval is all floor: shared by slices."""
    first, second = _poll_dcgm(tmp_path, {"0.1": "train-3g\n", "0.5": "infer-2g\n", "0.13": "notebook-1g\n"}, floor)
    board, idle, jobs, span_us = _deltas(first, second, A800)
    assert board == 90_000 and sum(jobs.values()) + idle == board
    names = {"1": "train-3g", "5": "infer-2g", "13": "notebook-1g"}
    want = expected_shares(90_000, {g: s for g, (s, _) in INSTANCES.items()},
                           {g: a for g, (_, a) in INSTANCES.items()}, 7, span_us / 1e6, floor)
    for gi, name in names.items():
        assert abs(jobs[name] - want[gi]) < 1.0, (name, jobs[name], want[gi])
    assert abs(idle - want[""]) < 1.0
    # the busy 3g job pays more per slice than the idle 1g notebook once activity counts
    if floor is not None:
        assert jobs["train-3g"] / 3 > jobs["notebook-1g"] / 1


def test_dcgm_unused_instance_goes_to_idle(tmp_path: Path) -> None:
    """No job on the 2g instance: its share is idle, never charged to the jobs on the other instances."""
    first, second = _poll_dcgm(tmp_path, {"0.1": "train-3g\n", "0.13": "notebook-1g\n"}, 40.0)
    board, idle, jobs, span_us = _deltas(first, second, A800)
    want = expected_shares(90_000, {g: s for g, (s, _) in INSTANCES.items()},
                           {g: a for g, (_, a) in INSTANCES.items()}, 7, span_us / 1e6, 40.0)
    assert sum(jobs.values()) + idle == board == 90_000
    assert abs(jobs["train-3g"] - want["1"]) < 1.0 and abs(jobs["notebook-1g"] - want["13"]) < 1.0
    assert abs(idle - (want["5"] + want[""])) < 2.0
    # the per-instance series: instance energy == its jobs' + its idle; instances + unpartitioned == board
    (g2,) = [g for g in second.gpus if g.info.uuid == A800]
    (g1,) = [g for g in first.gpus if g.info.uuid == A800]
    inst1 = {i.instance.gi_id: i for i in g1.instances}
    d = {i.instance.gi_id: (i.energy_mj - inst1[i.instance.gi_id].energy_mj,
                            i.idle_mj - inst1[i.instance.gi_id].idle_mj) for i in g2.instances}
    assert d["5"][0] == d["5"][1] and d["1"][1] == 0 and d["13"][1] == 0
    assert d["1"][0] == jobs["train-3g"] and d["13"][0] == jobs["notebook-1g"]


def test_the_instances_are_exported(tmp_path: Path) -> None:
    _, second = _poll_dcgm(tmp_path, {"0.1": "train-3g\n"}, 40.0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(WattprintCollector(lambda: second, "a800-node-3", backend="dcgm"))
    page = {s.name: s for f in text_string_to_metric_families(generate_latest(reg).decode())
            for s in f.samples if s.labels.get("gpu_instance") == "1"}
    assert page["wattprint_gpu_instance_energy_joules_total"].labels["mig_profile"] == "3g.40gb"
    assert page["wattprint_gpu_instance_info"].labels["slices"] == "3"
    skipped = [s for f in text_string_to_metric_families(generate_latest(reg).decode()) for s in f.samples
               if s.name == "wattprint_gpu_backend_skipped_lines_total"]
    assert {s.labels["family"]: s.value for s in skipped} == {"DCGM_FI_DEV_VGPU_INSTANCE_IDS": 4.0,
                                                              "DCGM_FI_DEV_CUDA_VISIBLE_DEVICES_STR": 6.0}


# -- nvml: fake MIG handles, jobs by MIG UUID mapping files and by processes ----------------------------------


def _mig_nvml() -> object:
    nv = make_fake_nvml(gpus=1)
    g = nv.gpus[0]  # type: ignore[attr-defined]
    g.mig_mode = 1
    g.mig = [FakeMig(1, "MIG-11111111-aaaa-bbbb-cccc-000000000001", 3, 40192, procs=[101]),
             FakeMig(5, "MIG-11111111-aaaa-bbbb-cccc-000000000005", 2, 19968, procs=[202]),
             FakeMig(13, "MIG-11111111-aaaa-bbbb-cccc-000000000013", 1, 9856, procs=[303, 304])]
    return nv


def test_nvml_lists_the_instances() -> None:
    b = NvmlBackend(_mig_nvml())  # type: ignore[arg-type]
    b.open()
    (r,) = b.read()
    assert [(m.gi_id, m.slices, m.uuid, m.pids) for m in r.mig] == [
        ("1", 3, "MIG-11111111-aaaa-bbbb-cccc-000000000001", (101,)),
        ("5", 2, "MIG-11111111-aaaa-bbbb-cccc-000000000005", (202,)),
        ("13", 1, "MIG-11111111-aaaa-bbbb-cccc-000000000013", (303, 304))]
    assert [m.profile for m in r.mig] == ["3g.40gb", "2g.20gb", "1g.10gb"]
    assert r.mig_slices == 7 and r.utilization_ratio is None and r.process_sm_util == {}


def test_nvml_profile_names_without_privileges() -> None:
    """Where the GPU-instance calls are refused, the profile is written from slices and memory (GiB)."""
    nv = _mig_nvml()
    nv.gpus[0].profile_names_denied = True  # type: ignore[attr-defined]
    b = NvmlBackend(nv)  # type: ignore[arg-type]
    b.open()
    (r,) = b.read()
    assert [m.profile for m in r.mig] == ["3g.39gb", "2g.20gb", "1g.10gb"] and not r.failed_calls


def test_nvml_board_not_in_mig_mode_and_not_capable() -> None:
    nv = make_fake_nvml(gpus=2)
    nv.gpus[0].mig_mode = 0  # type: ignore[attr-defined]
    b = NvmlBackend(nv)
    b.open()
    for _ in range(2):
        readings = b.read()
        assert [r.mig for r in readings] == [(), ()] and all(not r.failed_calls for r in readings)
    assert nv.calls["mig"] == 2  # once each: board 1 said NotSupported (not asked again), board 0 is listed every 30 s


class _ScriptedMig:
    """The fake MIG board's readings with a test-set clock, so the interval length is known."""

    name = "nvml"

    def __init__(self) -> None:
        self.nv = _mig_nvml()
        self.inner = NvmlBackend(self.nv)  # type: ignore[arg-type]
        self.inner.open()
        self.t = 0.0

    def read(self) -> list[GpuReading]:
        return [GpuReading(**{**r.__dict__, "timestamp": self.t}) for r in self.inner.read()]

    def open(self) -> None: ...

    def close(self) -> None: ...


@pytest.mark.parametrize("how", ["mig-uuid-files", "processes"])
def test_nvml_jobs_by_instance(tmp_path: Path, how: str) -> None:
    """No per-instance activity on NVML: each instance's part is its slices' share; the two jobs on the 1g
    instance split it equally, and that equal share is counted."""
    board = _ScriptedMig()
    if how == "mig-uuid-files":
        (tmp_path / "MIG-11111111-aaaa-bbbb-cccc-000000000001").write_text("a\n")
        (tmp_path / "MIG-11111111-aaaa-bbbb-cccc-000000000005").write_text("b\n")
        (tmp_path / "0.13").write_text("c\nd\n")
        discovery: object = MappingDirDiscovery(tmp_path)
    else:
        discovery = _PidJobs({101: "a", 202: "b", 303: "c", 304: "d"})
    poller = Poller(board, discovery, mig_idle_floor_watts=60.0)  # type: ignore[arg-type]
    first = poller.poll_once()
    board.t = 2.0
    board.nv.advance(20)  # type: ignore[attr-defined]
    second = poller.poll_once()
    (g1,), (g2,) = first.gpus, second.gpus
    delta = g2.energy_mj - g1.energy_mj
    jobs = {j.job.job_id: j for j in g2.jobs}
    assert delta > 0 and sum(j.energy_mj for j in jobs.values()) + (g2.idle_mj - g1.idle_mj) == delta
    want = expected_shares(delta, {"1": 3, "5": 2, "13": 1}, {"1": None, "5": None, "13": None}, 7, 2.0, 60.0)
    assert abs(jobs["a"].energy_mj - want["1"]) < 1.0 and abs(jobs["b"].energy_mj - want["5"]) < 1.0
    assert abs(jobs["c"].energy_mj + jobs["d"].energy_mj - want["13"]) < 1.0
    assert abs(jobs["c"].energy_mj - jobs["d"].energy_mj) <= 1
    assert jobs["c"].equal_share_us == jobs["d"].equal_share_us == 2_000_000 and jobs["a"].equal_share_us == 0
    assert abs((g2.idle_mj - g1.idle_mj) - want[""]) < 1.0


class _PidJobs:
    """A process-based discovery (as slurm's or kubernetes') with a fixed PID -> job table."""

    name = "slurm"

    def __init__(self, table: dict[int, str]) -> None:
        self.table = table
        self.errors: collections.Counter[str] = collections.Counter()
        self.inner = SlurmDiscovery("/nonexistent")
        self.inner._lookup = lambda pid: (table[pid], "") if pid in table else None  # type: ignore[method-assign]
        self.inner._job = lambda key, extras: Job(key, "slurm")  # type: ignore[method-assign]

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        return self.inner.discover(readings)


def test_held_but_idle_on_an_idle_instance() -> None:
    """A job on an instance whose activity is below the threshold: its energy counts as held but idle."""
    class Board:
        name = "dcgm"

        def __init__(self) -> None:
            self.t, self.mj = 0.0, 1_000_000

        def read(self) -> list[GpuReading]:
            mig = (MigInstance("1", "3g.40gb", 3, activity=0.9), MigInstance("2", "1g.10gb", 1, activity=0.01))
            return [GpuReading(GpuInfo("0", "GPU-x"), self.t, energy_mj=self.mj, mig=mig, mig_slices=7)]

        def open(self) -> None: ...

        def close(self) -> None: ...

    class Jobs:
        name = "mapping-dir"
        errors: collections.Counter[str] = collections.Counter()

        def discover(self, readings: Sequence[GpuReading]) -> Assignment:
            return {"0.1": {Job("busy", "mapping-dir"): frozenset()}, "0.2": {Job("idle", "mapping-dir"): frozenset()}}

    b = Board()
    poller = Poller(b, Jobs(), mig_idle_floor_watts=50.0)  # type: ignore[arg-type]
    poller.poll_once()
    b.t, b.mj = 1.0, b.mj + 100_000
    snap = poller.poll_once()
    jobs = {j.job.job_id: j for j in snap.gpus[0].jobs}
    assert jobs["idle"].held_idle_mj == jobs["idle"].energy_mj > 0 and jobs["idle"].held_idle_us == 1_000_000
    assert jobs["busy"].held_idle_mj == 0 and jobs["busy"].held_idle_us == 0


# -- replay: a MIG node for the live stack and the benchmarks -----------------------------------------------------


def test_replay_mig_board_keeps_the_trace_energy() -> None:
    from wattprint.exporter.backends.replay import ReplayBackend

    clock = _Clock()
    plain = ReplayBackend(gpus=2, epoch=0.0, wallclock=clock)
    mig = ReplayBackend(gpus=2, epoch=0.0, wallclock=clock, mig=("3g.40gb", "2g.20gb", "1g.10gb"))
    plain.open()
    mig.open()
    loads = set()
    for t in (10.0, 500.0, 1500.0):
        clock.t = t
        for a, b in zip(plain.read(), mig.read(), strict=True):
            assert a.energy_mj == b.energy_mj and b.mig_slices == 7 and b.utilization_ratio is None
            assert [(m.gi_id, m.slices) for m in b.mig] == [("1", 3), ("2", 2), ("3", 1)]
            loads.add(tuple(m.activity for m in b.mig))
    assert any(len(set(x)) > 1 for x in loads), "the instances run at different loads"


@pytest.mark.parametrize("profiles", ["4g.40gb,4g.40gb", "big.one"])
def test_replay_mig_refuses_what_no_board_holds(profiles: str) -> None:
    from tests.exporter_proc import run_exporter

    r = run_exporter("--backend", "replay", "--replay-mig", profiles, "--no-collector.rapl")
    assert r.returncode != 0 and "--replay-mig" in r.stderr and "Traceback" not in r.stderr


def test_exporter_process_exports_the_instances(tmp_path: Path) -> None:
    import requests

    from tests.exporter_proc import running_exporter, wait_until

    (tmp_path / "0.1").write_text("train\n")
    (tmp_path / "0.3").write_text("notebook\n")
    args = ("--backend", "replay", "--replay-mig", "3g.40gb,2g.20gb,1g.10gb", "--poll-interval", "0.2",
            "--job-discovery", "mapping-dir", "--mapping-dir", str(tmp_path), "--no-collector.rapl")
    with running_exporter(*args) as (_, port):
        def page() -> dict[tuple[str, str], float]:
            body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            return {(s.name, s.labels.get("job_id") or s.labels.get("gpu_instance", "")): s.value
                    for f in text_string_to_metric_families(body) for s in f.samples}
        assert wait_until(lambda: page().get(("wattprint_job_energy_joules_total", "notebook"), 0) > 0, 15)
        p = page()
    board = p[("wattprint_gpu_energy_joules_total", "")]
    jobs = p[("wattprint_job_energy_joules_total", "train")] + p[("wattprint_job_energy_joules_total", "notebook")]
    assert jobs + p[("wattprint_gpu_idle_energy_joules_total", "")] == pytest.approx(board, abs=1e-9)
    inst = {gi: p[("wattprint_gpu_instance_energy_joules_total", gi)] for gi in ("1", "2", "3")}
    assert p[("wattprint_gpu_instance_idle_energy_joules_total", "2")] == inst["2"]   # no job on the 2g instance
    assert inst["1"] == p[("wattprint_job_energy_joules_total", "train")]
    assert sum(inst.values()) <= board


def test_one_series_per_job_id_when_a_jobs_facts_change() -> None:
    """A pod seen with another container set (or twice in one poll) keeps one account: the series carry job_id
    only, and two accounts of one id would export two samples with the same labels."""
    class Board:
        name = "replay"

        def __init__(self) -> None:
            self.t, self.mj = 0.0, 1_000_000

        def read(self) -> list[GpuReading]:
            return [GpuReading(GpuInfo("0", "GPU-y"), self.t, energy_mj=self.mj, utilization_ratio=0.9)]

        def open(self) -> None: ...

        def close(self) -> None: ...

    class Pods:
        name = "kubernetes"
        errors: collections.Counter[str] = collections.Counter()
        containers = ["c1"]

        def discover(self, readings: Sequence[GpuReading]) -> Assignment:
            return {"0": {Job("uid-1", "kubernetes", "uid-1", c): frozenset({i}) for i, c in
                          enumerate(self.containers)}}

    b, pods = Board(), Pods()
    poller = Poller(b, pods)  # type: ignore[arg-type]
    for step, containers in enumerate((["c1"], ["c1"], ["c1,c2"], ["c2", "c3"])):
        pods.containers = containers
        b.t, b.mj = float(step), 1_000_000 + step * 1000
        snap = poller.poll_once()
        (g,) = snap.gpus
        assert [j.job.job_id for j in g.jobs] == ["uid-1"]
        assert g.jobs[0].energy_mj + g.idle_mj == g.energy_mj == step * 1000
    reg = CollectorRegistry(auto_describe=False)
    reg.register(WattprintCollector(lambda: snap, "n", backend="replay"))
    lines = [x for x in generate_latest(reg).decode().splitlines() if x.startswith("wattprint_job_energy_joules")]
    assert len(lines) == 1 and lines[0].endswith(" 3.0")
