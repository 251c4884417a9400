"""SlurmDiscovery against fake /proc trees: cgroup v1/v2 paths, environ fallback, vanished processes."""

from __future__ import annotations

from pathlib import Path

from wattprint.exporter.backends.base import GpuInfo, GpuReading
from wattprint.exporter.jobs.base import Job
from wattprint.exporter.jobs.slurm import SlurmDiscovery

V1 = (
    "12:memory:/slurm/uid_1000/job_123/step_0/task_0\n"
    "11:devices:/slurm/uid_1000/job_123/step_0\n"
    "1:name=systemd:/system.slice/slurmd.service\n"
)
V2 = "0::/system.slice/slurmstepd.scope/job_456/step_batch/user/task_0\n"
NO_SLURM = "0::/user.slice/user-1000.slice/session-3.scope\n"


def reading(index: str, pids: tuple[int, ...] | None) -> GpuReading:
    return GpuReading(info=GpuInfo(index=index, uuid=f"GPU-{index}"), timestamp=0.0, pids=pids)


def proc(root: Path, pid: int, cgroup: str | None = None, environ: bytes | None = None) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    if cgroup is not None:
        (d / "cgroup").write_text(cgroup)
    if environ is not None:
        (d / "environ").write_bytes(environ)


def slurm(job_id: str) -> Job:
    return Job(job_id, "slurm")


def test_cgroup_v1_and_v2(tmp_path: Path) -> None:
    proc(tmp_path, 10, V1)
    proc(tmp_path, 20, V2)
    d = SlurmDiscovery(tmp_path)
    got = d.discover([reading("0", (10,)), reading("1", (20,))])
    assert got == {"0": {slurm("123"): frozenset({10})}, "1": {slurm("456"): frozenset({20})}}
    assert d.name == "slurm"
    assert not d.errors


def test_cgroup_wins_over_environ(tmp_path: Path) -> None:
    proc(tmp_path, 10, V2, b"SLURM_JOB_ID=999\0")
    assert SlurmDiscovery(tmp_path).discover([reading("0", (10,))]) == {"0": {slurm("456"): frozenset({10})}}


def test_environ_fallback(tmp_path: Path) -> None:
    env = b"PATH=/usr/bin\0SLURM_ARRAY_JOB_ID=700\0SLURM_JOB_IDX=1\0SLURM_JOB_ID=789\0HOME=/home/a\0"
    proc(tmp_path, 10, NO_SLURM, env)
    d = SlurmDiscovery(tmp_path)
    assert d.discover([reading("0", (10,))]) == {"0": {slurm("789"): frozenset({10})}}
    assert not d.errors


def test_pids_of_one_job_grouped_and_two_jobs_on_one_gpu(tmp_path: Path) -> None:
    for pid in (10, 11, 12):
        proc(tmp_path, pid, V1)
    proc(tmp_path, 20, V2)
    proc(tmp_path, 21, NO_SLURM, b"SLURM_JOB_ID=456\0")
    got = SlurmDiscovery(tmp_path).discover([reading("0", (10, 11, 12, 20, 21))])
    assert got == {"0": {slurm("123"): frozenset({10, 11, 12}), slurm("456"): frozenset({20, 21})}}


def test_one_process_on_two_gpus_is_read_once(tmp_path: Path) -> None:
    proc(tmp_path, 10, V1)
    d = SlurmDiscovery(tmp_path)
    got = d.discover([reading("0", (10, 99)), reading("1", (10, 99))])
    assert got == {"0": {slurm("123"): frozenset({10})}, "1": {slurm("123"): frozenset({10})}}
    assert d.errors == {"proc_unreadable": 1}


def test_gpus_without_pids_or_jobs_are_left_out(tmp_path: Path) -> None:
    proc(tmp_path, 10, V1)
    d = SlurmDiscovery(tmp_path)
    assert d.discover([reading("0", None), reading("1", ()), reading("2", (10,))]) == {
        "2": {slurm("123"): frozenset({10})}
    }
    assert not d.errors


def test_unreadable_processes_are_counted_and_skipped(tmp_path: Path) -> None:
    proc(tmp_path, 10, V1)
    proc(tmp_path, 11)  # pid directory without a cgroup file
    proc(tmp_path, 12, NO_SLURM)  # no job in cgroup, environ not readable
    d = SlurmDiscovery(tmp_path)
    got = d.discover([reading("0", (10, 11, 12, 13))])  # 13: exited, no directory at all
    assert got == {"0": {slurm("123"): frozenset({10})}}
    assert d.errors == {"proc_unreadable": 3}


def test_processes_without_a_job_are_counted_and_skipped(tmp_path: Path) -> None:
    proc(tmp_path, 10, V2)
    proc(tmp_path, 11, NO_SLURM, b"PATH=/bin\0HOME=/root\0")
    proc(tmp_path, 12, NO_SLURM, b"SLURM_JOB_ID=abc\0")  # not a Slurm job id
    proc(tmp_path, 13, "0::/slurm/job_12x/step_0\n", b"")  # not a job_<digits> component
    d = SlurmDiscovery(tmp_path)
    got = d.discover([reading("0", (10, 11, 12, 13))])
    assert got == {"0": {slurm("456"): frozenset({10})}}
    assert d.errors == {"no_job": 3}


def test_errors_accumulate_over_polls(tmp_path: Path) -> None:
    d = SlurmDiscovery(tmp_path)
    for _ in range(3):
        assert d.discover([reading("0", (10,))]) == {}
    assert d.errors == {"proc_unreadable": 3}
    proc(tmp_path, 10, V1)
    assert d.discover([reading("0", (10,))]) == {"0": {slurm("123"): frozenset({10})}}
    assert d.errors == {"proc_unreadable": 3}
