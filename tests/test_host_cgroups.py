"""The cgroups collector: job cgroups found as job discovery names them, in each driver's layout; node CPU time."""

from __future__ import annotations

import errno
import logging

import pytest

from tests.hostfs import BOOT_ID, HZ, K8S_CGROUPFS_POD, K8S_SYSTEMD_POD, MODEL, SLURM_JOB, HostTree
from wattprint.exporter.host import cgroups as cg
from wattprint.exporter.host.cgroups import CgroupCollector, CgroupError
from wattprint.exporter.host.procstat import ProcStatError, boot_id, cpu_models, node_cpu_usec

UID_A = "1b2c3d4e-5f6a-7b8c-9d0e-1f2a3b4c5d6e"
UID_B = "0a0b0c0d-1111-2222-3333-444455556666"
STATIC_UID = "6a4c3f2e8b7d9c1a0f5e4d3c2b1a0987"


def collector(host: HostTree, discovery: str) -> CgroupCollector:
    return CgroupCollector(str(host.sysfs), str(host.procfs), discovery, hz=HZ)


def test_node_cpu_time_models_and_boot_id(tmp_path):
    host = HostTree(tmp_path)
    host.set_node_ticks(123_457)
    assert node_cpu_usec(str(host.procfs), HZ) == 1_234_570_000  # the 8 counted columns; guest columns left out
    assert cpu_models(str(host.procfs)) == {"0": MODEL, "1": MODEL}
    assert boot_id(str(host.procfs)) == BOOT_ID
    (host.procfs / "stat").write_text("intr 1 2\n")
    with pytest.raises(ProcStatError):
        node_cpu_usec(str(host.procfs), HZ)
    assert cpu_models(str(tmp_path / "none")) == {} and boot_id(str(tmp_path / "none")) is None


def test_slurm_cgroup_v2_jobs_steps_are_not_descended(tmp_path):
    host = HostTree(tmp_path)
    host.cgroup("system.slice/sshd.service", 5_000)
    host.cgroup("system.slice/slurmstepd.scope/system", 1)
    host.cgroup(SLURM_JOB.format(101), 7_000_000)
    # steps are inside the job: their time is already in the job's usage_usec
    host.cgroup(SLURM_JOB.format(101) + "/step_batch/user/task_0", 6_000_000)
    host.cgroup(SLURM_JOB.format(101) + "/step_0/job_999", 1)  # never reached
    host.cgroup(SLURM_JOB.format(102), 3)
    host.cgroup("user.slice/user-1000.slice/session-4.scope", 9)
    times = collector(host, "slurm").read()
    assert times.jobs == {"101": 7_000_000, "102": 3}
    assert times.node_usec == 1_000_000 * 1_000_000 // HZ
    assert collector(host, "mapping-dir").read().jobs == times.jobs  # prolog scripts write Slurm ids


@pytest.mark.parametrize("layout", ["systemd", "cgroupfs"])
def test_kubernetes_pods_in_both_cgroup_drivers_and_all_qos_classes(tmp_path, layout):
    host = HostTree(tmp_path)
    if layout == "systemd":
        host.cgroup(K8S_SYSTEMD_POD.format(qos="burstable", uid_=UID_A.replace("-", "_")), 40)
        pod_b = host.cgroup(K8S_SYSTEMD_POD.format(qos="besteffort", uid_=UID_B.replace("-", "_")), 2)
        host.cgroup(str(pod_b.relative_to(host.cgroot)) + "/cri-containerd-" + "a" * 64 + ".scope", 1)
        host.cgroup("kubepods.slice/kubepods-pod" + STATIC_UID + ".slice", 7)  # Guaranteed: no QoS level
    else:
        host.cgroup(K8S_CGROUPFS_POD.format(qos="burstable", uid=UID_A), 40)
        host.cgroup(K8S_CGROUPFS_POD.format(qos="besteffort", uid=UID_B), 2)
        host.cgroup(K8S_CGROUPFS_POD.format(qos="besteffort", uid=UID_B) + "/" + "b" * 64, 1)
        host.cgroup("kubepods/pod" + STATIC_UID, 7)
    # a "pod<uid>" outside kubepods is not a pod; Slurm-style names mean nothing to this discovery
    host.cgroup("system.slice/pod" + UID_B, 1)
    host.cgroup(SLURM_JOB.format(5), 1)
    jobs = collector(host, "kubernetes").read().jobs
    # job_id is the pod UID as the GPU series carry it: lower case, with dashes
    assert jobs == {UID_A: 40, UID_B: 2, STATIC_UID: 7}


def test_a_pod_with_upper_case_uid_gets_the_same_id_as_the_gpu_series(tmp_path):
    from wattprint.exporter.jobs.kubernetes import pod_from_cgroup

    host = HostTree(tmp_path)
    host.cgroup(K8S_CGROUPFS_POD.format(qos="burstable", uid=UID_A.upper()), 1)
    gpu_side = pod_from_cgroup(f"0::/kubepods/burstable/pod{UID_A.upper()}/{'c' * 64}\n")
    assert gpu_side is not None and list(collector(host, "kubernetes").read().jobs) == [gpu_side[0]]


def test_hybrid_host_reads_the_unified_tree_and_says_so_once(tmp_path, caplog):
    host = HostTree(tmp_path, cgroup="hybrid")
    host.cgroup(SLURM_JOB.format(7), 70)
    c = collector(host, "slurm")
    with caplog.at_level(logging.INFO, logger="wattprint.cgroups"):
        assert c.read().jobs == {"7": 70} and c.read().jobs == {"7": 70}
    assert len([r for r in caplog.records if r.levelno == logging.INFO and "hybrid" in r.message]) == 1


def test_cgroup_v1_only_host_fails_with_one_warning(tmp_path, caplog):
    host = HostTree(tmp_path, cgroup="v1")
    c = collector(host, "slurm")
    with caplog.at_level(logging.INFO, logger="wattprint.cgroups"):
        for _ in range(3):
            with pytest.raises(CgroupError):
                c.read()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "needs cgroup v2" in warnings[0].message


def test_vanished_and_unreadable_cgroups(tmp_path, monkeypatch, caplog):
    host = HostTree(tmp_path)
    host.cgroup(SLURM_JOB.format(1), 10)
    host.cgroup(SLURM_JOB.format(2), 20)
    host.cgroup(SLURM_JOB.format(3), 30)
    real = cg.read_small

    def reader(path: str, limit: int = 4096) -> bytes:
        if "job_1/" in path:
            raise FileNotFoundError(errno.ENOENT, "gone", path)  # the job ended between listing and reading
        if "job_2/" in path:
            raise OSError(errno.EIO, "Input/output error", path)
        return real(path, limit)

    monkeypatch.setattr(cg, "read_small", reader)
    c = collector(host, "slurm")
    with caplog.at_level(logging.WARNING, logger="wattprint.cgroups"):
        assert c.read().jobs == {"2": None, "3": 30}
        assert c.read().jobs == {"2": None, "3": 30}
    assert c.errors == {"cgroup_read_error": 2} and len(caplog.records) == 1
    monkeypatch.setattr(cg, "read_small", real)
    (host.cgroot / SLURM_JOB.format(3) / "cpu.stat").write_text("nr_periods 0\n")
    assert c.read().jobs == {"1": 10, "2": 20, "3": None} and c.errors["cgroup_bad_value"] == 1


def test_unreadable_proc_stat_or_root_fails_the_read(tmp_path):
    host = HostTree(tmp_path)
    c = collector(host, "slurm")
    (host.procfs / "stat").unlink()
    with pytest.raises(CgroupError, match="cannot read"):
        c.read()
    assert c.errors == {"procstat_error": 1}
