"""The amdsmi backend (AMD Instinct) on a fake amdsmi package that follows the real one's shapes and errors
(tests/fake_amdsmi.py), in every release shape 6.2 to 7.0: energy from the accumulator x resolution exact to the
millijoule, resets, power fallbacks and "N/A", MI300X compute partitions read once per physical GPU and split,
the job split by graphics-engine time with exact conservation, start-up failures, and the exporter process
serving a faked MI300X node.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, free_port, require_tool
from tests.exporter_proc import run_exporter, running_exporter
from tests.fake_amdsmi import (
    MI250X,
    MISSING_LIBRARY,
    RESOLUTION_UJ,
    VERSIONS,
    FakeProcess,
    make_fake_amdsmi,
    mi300x,
    write_shim,
)
from wattprint.exporter.backends.amdsmi import AmdSmiBackend
from wattprint.exporter.backends.amdsmi_shapes import energy_mj, socket_power_watts
from wattprint.exporter.backends.base import BackendUnavailable
from wattprint.exporter.jobs.base import NoDiscovery
from wattprint.exporter.jobs.mapping_dir import MappingDirDiscovery
from wattprint.exporter.jobs.slurm import SlurmDiscovery
from wattprint.exporter.poller import Poller, Snapshot

# 2^-16 J, the unit of the SMU's energy counter, should a release report it instead of rocm_smi's 15.3
SMU_UNIT_UJ = 15.2587890625


def _poller(am, discovery=None) -> Poller:
    backend = AmdSmiBackend(am, clock=lambda: am.now)
    backend.open()
    clock = itertools.count(0.0, 1.0)
    return Poller(backend, discovery or NoDiscovery(), clock=lambda: next(clock))


def _gpu(snap: Snapshot, index: str = "0"):
    return next(g for g in snap.gpus if g.info.index == index)


def _procfs(root: Path, jobs: dict[int, str]) -> Path:
    """A /proc with one Slurm task per PID (cgroup v2 path, as slurmstepd makes it)."""
    for pid, job in jobs.items():
        d = root / "proc" / str(pid)
        d.mkdir(parents=True)
        (d / "cgroup").write_text(f"0::/system.slice/slurmstepd.scope/job_{job}/step_0/user/task_0\n")
    return root / "proc"


def _conserved(g) -> None:
    assert sum(j.energy_mj for j in g.jobs) + g.idle_mj == g.energy_mj
    if g.instances:
        assert sum(i.energy_mj for i in g.instances) <= g.energy_mj


# -- energy ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("resolution", [RESOLUTION_UJ, SMU_UNIT_UJ])
def test_energy_is_the_accumulator_times_its_resolution_exact_to_the_millijoule(version, resolution):
    socket = mi300x(0)
    socket.resolution = resolution
    am = make_fake_amdsmi(version, [socket])
    poller = _poller(am)
    poller.poll_once()
    start = socket.accumulator
    rng = random.Random(19)
    for _ in range(1500):
        socket.power_w = rng.uniform(120.0, 750.0)     # an MI300X between idle and its 750 W limit
        am.advance(rng.uniform(0.05, 2.0))
        snap = poller.poll_once()
    exported = _gpu(snap).energy_mj
    res = Fraction(float(resolution))
    exact_mj = (socket.accumulator - start) * res / 1000
    # floor(acc x res) telescopes: the booked total is the difference of the floors, within 1 mJ of exact
    assert exported == socket.accumulator * res // 1000 - start * res // 1000
    assert abs(exported - exact_mj) < 1
    assert exported > 1_000_000_000 // 1000     # over a megajoule: the exactness is not a small-number accident


@pytest.mark.parametrize(("count", "mj"), [
    ({"power": 8152136, "counter_resolution": 15.300000190734863, "timestamp": 1}, 124727),   # a real MI100 read
    ({"power": 65628, "energy_accumulator": 65628, "counter_resolution": RESOLUTION_UJ, "timestamp": 1}, 1004),
    ({"energy_accumulator": 2**64 - 1, "counter_resolution": RESOLUTION_UJ, "timestamp": 1},
     (2**64 - 1) * Fraction(RESOLUTION_UJ) // 1000),
    ({"energy_accumulator": "N/A", "counter_resolution": RESOLUTION_UJ}, None),
    ({"energy_accumulator": 10, "counter_resolution": "N/A"}, None),
    ({"energy_accumulator": 10, "counter_resolution": 0.0}, None),
    ({"counter_resolution": RESOLUTION_UJ}, None),
])
def test_energy_shapes(count, mj):
    assert energy_mj(count) == mj


def test_a_counter_going_back_is_a_reset_counted_and_never_decreases_the_exported_counters():
    socket = mi300x(0, power_w=500.0)
    am = make_fake_amdsmi("6.4", [socket])
    poller = _poller(am)
    poller.poll_once()
    history = []
    for step in range(12):
        am.advance(1.0)
        if step == 5:
            socket.accumulator = 977    # GPU reset: the accumulator restarts ("since last restart/gpu rest")
        history.append(_gpu(poller.poll_once()))
    energies = [g.energy_mj for g in history]
    assert energies == sorted(energies) and history[-1].counter_resets == 1
    per_interval = [b - a for a, b in itertools.pairwise(energies)]
    assert per_interval[4] == 0 and per_interval.count(0) == 1   # only the reset's interval is dropped
    assert all(abs(d - 500_000) <= 1 for i, d in enumerate(per_interval) if i != 4)


# -- power -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_power_from_the_key_each_release_and_gpu_fills(version):
    mi300, mi250 = mi300x(0, power_w=612.0), mi300x(1, power_w=455.0)
    mi250.market_name = MI250X       # MI200: average_socket_power, current_socket_power "N/A"
    am = make_fake_amdsmi(version, [mi300, mi250])
    snap = _poller(am).poll_once()
    assert _gpu(snap, "0").power_watts == 612.0 and _gpu(snap, "1").power_watts == 455.0
    assert _gpu(snap, "0").power_limit_watts == 750.0
    assert _gpu(snap, "0").info.model == "AMD Instinct MI300X" and _gpu(snap, "1").info.model == MI250X


@pytest.mark.parametrize(("info", "watts"), [
    ({"socket_power": 701, "current_socket_power": 701, "average_socket_power": "N/A"}, 701.0),
    ({"current_socket_power": 0, "average_socket_power": 380}, 380.0),     # MI200 on a release that zeroes it
    ({"current_socket_power": 0, "average_socket_power": 0}, 0.0),         # an MI250X's secondary die
    ({"current_socket_power": "N/A", "average_socket_power": "N/A"}, None),
    ({"socket_power": "N/A", "current_socket_power": 140}, 140.0),
    ({}, None),
])
def test_power_fallback_keys_and_na(info, watts):
    assert socket_power_watts(info) == watts


def test_na_power_and_activity_leave_gaps_not_zeros():
    socket = mi300x(0)
    socket.power_keys = {"current_socket_power": "N/A", "average_socket_power": "N/A", "power_limit": "N/A"}
    socket.partitions[0].gfx_activity = "N/A"
    am = make_fake_amdsmi("6.2", [socket])
    poller = _poller(am)
    poller.poll_once()
    am.advance(2.0)
    g = _gpu(poller.poll_once())
    assert g.up and g.energy_mj > 0          # the counter still reads: energy is booked
    assert g.power_watts is None and g.power_limit_watts is None and g.utilization_ratio is None
    assert g.errors == ()                     # "N/A" is an answer, not a failure


# -- failures ----------------------------------------------------------------------------------------
def test_no_energy_counter_integrates_power_and_is_not_asked_again():
    am = make_fake_amdsmi("7.0", [mi300x(0, power_w=300.0)])
    am.fail(0, "get_energy_count", "NOT_SUPPORTED")      # a VM guest: amdsmi_get_energy_count is bare-metal only
    poller = _poller(am)
    asked = am.calls["get_energy_count"]
    for _ in range(4):
        am.advance(1.0)
        snap = poller.poll_once()
    g = _gpu(snap)
    assert not g.info.has_energy_counter and g.energy_source == "power_integration"
    assert g.energy_mj == 3 * 300_000 and g.errors == ()
    assert am.calls["get_energy_count"] == asked


def test_failed_calls_are_counted_and_a_lost_gpu_comes_back_with_nothing_lost():
    am = make_fake_amdsmi("6.4", [mi300x(0, power_w=400.0), mi300x(1, power_w=400.0)])
    poller = _poller(am)
    poller.poll_once()
    am.fail(0, "get_power_info", "BUSY")
    am.fail(1, "*", "TIMEOUT")
    for _ in range(3):
        am.advance(1.0)
        snap = poller.poll_once()
    busy, lost = _gpu(snap, "0"), _gpu(snap, "1")
    assert busy.up and busy.power_watts is None and dict(busy.errors) == {"power": 3}
    assert not lost.up and dict(lost.errors)["energy"] == 3
    am.fail(1, "*", None)
    snap = poller.poll_once()
    assert _gpu(snap, "1").up and _gpu(snap, "1").energy_mj == _gpu(snap, "0").energy_mj


def test_amdsmi_init_failure_is_one_actionable_line():
    am = make_fake_amdsmi("7.0", init_status="DRIVER_NOT_LOADED")
    with pytest.raises(BackendUnavailable, match=r"cannot initialise amdsmi \(Error code: 34 \| AMDSMI_STATUS_"
                                                 r"DRIVER_NOT_LOADED\): .*amdgpu driver.*/dev/kfd"):
        AmdSmiBackend(am).open()


def test_a_handle_of_the_wrong_type_is_refused_as_the_real_library_does():
    am = make_fake_amdsmi("6.4")
    am.amdsmi_init()
    with pytest.raises(am.AmdSmiParameterException):
        am.amdsmi_get_energy_count(0)
    with pytest.raises(am.AmdSmiParameterException):
        am.amdsmi_init(2)           # a plain int, not an AmdSmiInitFlags


# -- the job split -----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["6.2", "7.0"])
def test_two_jobs_on_one_gpu_split_by_graphics_time_with_exact_conservation(tmp_path, version):
    socket = mi300x(0)
    socket.partitions[0].processes = [FakeProcess(41001, busy=0.75), FakeProcess(41002, busy=0.25)]
    am = make_fake_amdsmi(version, [socket, mi300x(1)])
    poller = _poller(am, SlurmDiscovery(_procfs(tmp_path, {41001: "1001", 41002: "1002"})))
    poller.poll_once()
    rng = random.Random(7)
    for _ in range(200):
        socket.power_w = rng.uniform(140.0, 750.0)
        am.advance(1.0)
        snap = poller.poll_once()
        for g in snap.gpus:
            _conserved(g)
    g = _gpu(snap)
    jobs = {j.job.job_id: j.energy_mj for j in g.jobs}
    assert set(jobs) == {"1001", "1002"} and g.idle_mj == 0
    # the weights are the processes' graphics-engine ns deltas: 3 to 1 every interval, to the rounding
    assert abs(jobs["1001"] - 3 * jobs["1002"]) <= 4 * 200
    assert _gpu(snap, "1").idle_mj == _gpu(snap, "1").energy_mj and not _gpu(snap, "1").jobs


def test_without_engine_time_the_jobs_share_equally_and_say_so(tmp_path):
    socket = mi300x(0, power_w=600.0)
    socket.partitions[0].processes = [FakeProcess(51001, busy=0.0), FakeProcess(51002, busy=0.0)]
    am = make_fake_amdsmi("6.4", [socket])
    poller = _poller(am, SlurmDiscovery(_procfs(tmp_path, {51001: "7", 51002: "8"})))
    poller.poll_once()
    for _ in range(10):
        am.advance(1.0)
        snap = poller.poll_once()
    g = _gpu(snap)
    assert sorted(j.energy_mj for j in g.jobs) == [3_000_000, 3_000_000]
    assert all(j.equal_share_us == 10_000_000 for j in g.jobs)


# -- compute partitions --------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_a_partitioned_mi300x_is_read_once_and_split_among_its_partitions(tmp_path, version):
    socket = mi300x(0, mode="CPX")
    parts = socket.partitions
    parts[0].processes, parts[0].gfx_activity = [FakeProcess(61000, busy=0.9)], 90
    parts[3].processes, parts[3].gfx_activity = [FakeProcess(61003, busy=0.3)], 30
    am = make_fake_amdsmi(version, [socket])
    poller = _poller(am, SlurmDiscovery(_procfs(tmp_path, {61000: "2000", 61003: "2003"})))
    poller.poll_once()
    start = socket.accumulator
    for step in range(30):
        socket.power_w = 140.0 if step < 3 else 700.0     # idle first: the board's idle floor is learned (mig.py)
        am.advance(1.0)
        snap = poller.poll_once()
        _conserved(_gpu(snap))
    assert len(snap.gpus) == 1                     # eight handles, one physical GPU
    g = _gpu(snap)
    socket_mj = socket.accumulator * Fraction(RESOLUTION_UJ) // 1000 - start * Fraction(RESOLUTION_UJ) // 1000
    assert g.energy_mj == socket_mj                # the socket counted once, not eight times
    assert [i.instance.gi_id for i in g.instances] == [str(n) for n in range(8)]
    assert {i.instance.profile for i in g.instances} == {"CPX"}
    assert sum(i.energy_mj for i in g.instances) == g.energy_mj      # every XCD is in some partition
    by_part = {i.instance.gi_id: i for i in g.instances}
    jobs = {j.job.job_id: j.energy_mj for j in g.jobs}
    assert jobs == {"2000": by_part["0"].energy_mj, "2003": by_part["3"].energy_mj}
    assert by_part["0"].energy_mj > by_part["3"].energy_mj > by_part["5"].energy_mj > 0
    assert g.idle_mj == sum(i.idle_mj for i in g.instances)
    assert g.info.uuid == parts[0].uuid and g.info.index == "0"


def test_partitions_are_read_through_the_first_handle_only():
    am = make_fake_amdsmi("6.4", [mi300x(0, mode="CPX")])
    poller = _poller(am)
    before = am.calls.get("get_energy_count", 0), am.calls.get("get_power_info", 0)
    poller.poll_once()
    assert (am.calls["get_energy_count"] - before[0], am.calls["get_power_info"] - before[1]) == (1, 1)
    assert am.calls["get_gpu_process_list"] == 8      # but every partition's processes


def test_mapping_files_name_a_partition_by_gpu_and_partition_id_or_by_its_uuid(tmp_path):
    socket = mi300x(0, mode="CPX", power_w=300.0)
    (tmp_path / "0.5").write_text("5005\n")
    (tmp_path / socket.partitions[6].uuid).write_text("6006\n")
    am = make_fake_amdsmi("6.4", [socket])
    poller = _poller(am, MappingDirDiscovery(str(tmp_path)))
    poller.poll_once()
    for _ in range(5):
        am.advance(1.0)
        snap = poller.poll_once()
    g = _gpu(snap)
    by_part = {i.instance.gi_id: i for i in g.instances}
    assert {j.job.job_id: j.energy_mj for j in g.jobs} == {"5005": by_part["5"].energy_mj,
                                                           "6006": by_part["6"].energy_mj}
    _conserved(g)


def test_an_mi250x_package_is_two_gpus_and_only_the_primary_die_carries_its_energy():
    """docs/exporter.md, "MI250X and MI250": two GCDs, two BDF buses, two GPUs; the secondary reads 0 W and a
    still counter (Linux 076f55a45e9e), so the package's energy is all on the primary's series, as documented."""
    primary, secondary = mi300x(0, power_w=455.0), mi300x(1, power_w=0.0)
    for s in (primary, secondary):
        s.market_name = MI250X
    am = make_fake_amdsmi("6.2", [primary, secondary])
    poller = _poller(am)
    poller.poll_once()
    for _ in range(4):
        am.advance(1.0)
        snap = poller.poll_once()
    assert [g.info.model for g in snap.gpus] == [MI250X, MI250X]
    assert _gpu(snap, "0").energy_mj == 4 * 455_000 and _gpu(snap, "0").power_watts == 455.0
    assert _gpu(snap, "1").energy_mj == 0 and _gpu(snap, "1").power_watts == 0.0 and _gpu(snap, "1").up


# -- start-up errors through the exporter CLI --------------------------------------------------------------
def _env(shim: Path | None) -> dict[str, str]:
    path = [str(shim)] if shim is not None else []
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(REPO)])}


def test_missing_libamd_smi_exits_2_with_one_line_and_a_clean_stdout(tmp_path):
    shim = write_shim(tmp_path / "shim", "7.0", MISSING_LIBRARY)
    res = run_exporter("--backend", "amdsmi", "--web.listen-address", f"127.0.0.1:{free_port()}", env=_env(shim))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--backend amdsmi: libamd_smi.so not found" in lines[0], lines
    assert "ROCM_PATH" in lines[0] and "Traceback" not in res.stderr
    assert res.stdout == ""          # the library's own print is held, not mixed into the exporter's output


def test_amdsmi_not_installed_exits_2_with_what_to_install(tmp_path):
    if importlib.util.find_spec("amdsmi") is not None:
        pytest.skip("an amdsmi package is installed here")
    res = run_exporter("--backend", "amdsmi", "--web.listen-address", f"127.0.0.1:{free_port()}", env=_env(None))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "amdsmi Python package is not installed" in lines[0] and "pip install" in lines[0]


# -- the exporter process on a faked MI300X node ----------------------------------------------------------
def _families(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in text_string_to_metric_families(text):
        for s in f.samples:
            out.setdefault(s.name, []).append(s)
    return out


def _mj(samples, **labels) -> int:
    return sum(round(s.value * 1000) for s in samples if all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.mark.parametrize("version", ["6.2", "7.0"])     # the accumulator as `power`, no kfd ids; the 7.0 shapes
def test_exporter_process_serves_a_faked_mi300x_node(tmp_path, version):
    spx = mi300x(0, power_w=612.0)
    spx.partitions[0].processes = [FakeProcess(71001, busy=0.75), FakeProcess(71002, busy=0.25)]
    spx.partitions[0].gfx_activity = 97
    cpx = mi300x(1, mode="CPX", power_w=230.0)
    cpx.partitions[3].processes = [FakeProcess(71003, busy=0.5)]
    idle = mi300x(2)
    shim = write_shim(tmp_path / "shim", version, [spx, cpx, idle])
    procfs = _procfs(tmp_path, {71001: "1001", 71002: "1002", 71003: "1003"})
    with running_exporter("--backend", "amdsmi", "--job-discovery", "slurm", "--path.procfs", str(procfs),
                          "--no-collector.rapl", "--poll-interval", "0.1", "--hostname", "mi300x-node",
                          env=_env(shim)) as (_, port):
        time.sleep(1.5)
        page = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    s = _families(page)
    energy, idle_e, jobs = (s["wattprint_gpu_energy_joules_total"], s["wattprint_gpu_idle_energy_joules_total"],
                            s["wattprint_job_energy_joules_total"])
    assert {x.labels["model"] for x in energy} == {"AMD Instinct MI300X"} and len(energy) == 3
    assert {x.labels["backend"] for x in s["wattprint_gpu_info"]} == {"amdsmi"}
    assert {x.labels["driver"] for x in s["wattprint_gpu_info"]} == {"6.10.5"}
    for gpu in ("0", "1", "2"):          # jobs + idle == board, to the millijoule, on the served page
        assert _mj(jobs, gpu=gpu) + _mj(idle_e, gpu=gpu) == _mj(energy, gpu=gpu), gpu
    assert _mj(jobs, gpu="0", job_id="1001") > 2.5 * _mj(jobs, gpu="0", job_id="1002") > 0
    assert _mj(energy, gpu="0") > 612_000 * 0.5     # 612 W for well over half a second
    assert _mj(idle_e, gpu="2") == _mj(energy, gpu="2") > 0
    power = {x.labels["gpu"]: x.value for x in s["wattprint_gpu_power_watts"]}
    assert power == {"0": 612.0, "1": 230.0, "2": 140.0}
    instances = [x for x in s["wattprint_gpu_instance_energy_joules_total"] if x.labels["gpu"] == "1"]
    assert sorted(x.labels["gpu_instance"] for x in instances) == [str(n) for n in range(8)]
    assert {x.labels["mig_profile"] for x in instances} == {"CPX"}
    assert _mj(instances) == _mj(energy, gpu="1")            # the socket once, split among its partitions
    assert _mj(jobs, gpu="1", job_id="1003") > 0
    promtool = require_tool("promtool")
    res = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr
