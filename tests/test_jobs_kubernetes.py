"""KubernetesDiscovery against fake /proc trees: cgroupfs and systemd drivers, QoS classes, runtimes."""

from __future__ import annotations

from pathlib import Path

from wattprint.exporter.backends.base import GpuInfo, GpuReading
from wattprint.exporter.jobs.base import Job
from wattprint.exporter.jobs.kubernetes import KubernetesDiscovery, pod_from_cgroup

UID_A = "1b2c3d4e-5f6a-7b8c-9d0e-1f2a3b4c5d6e"
UID_B = "0a0b0c0d-1111-2222-3333-444455556666"
STATIC_UID = "6a4c3f2e8b7d9c1a0f5e4d3c2b1a0987"  # static pods: hash of the manifest, no dashes
C1 = "a" * 64
C2 = "b" * 63 + "c"
C3 = "0123456789abcdef" * 4


def u(uid: str) -> str:
    return uid.replace("-", "_")


def reading(index: str, pids: tuple[int, ...] | None) -> GpuReading:
    return GpuReading(info=GpuInfo(index=index, uuid=f"GPU-{index}"), timestamp=0.0, pids=pids)


def proc(root: Path, pid: int, cgroup: str | None = None) -> None:
    d = root / str(pid)
    d.mkdir(parents=True)
    if cgroup is not None:
        (d / "cgroup").write_text(cgroup)


def pod(uid: str, *containers: str) -> Job:
    return Job(uid, "kubernetes", pod_uid=uid, container=",".join(containers))


def cgroupfs(qos: str, uid: str, cid: str) -> str:
    path = f"/kubepods/{qos}/pod{uid}/{cid}" if qos else f"/kubepods/pod{uid}/{cid}"
    return f"12:memory:{path}\n11:devices:{path}\n1:name=systemd:{path}\n"


def systemd(qos: str, uid: str, scope: str) -> str:
    if qos:
        return f"0::/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u(uid)}.slice/{scope}\n"
    return f"0::/kubepods.slice/kubepods-pod{u(uid)}.slice/{scope}\n"


def test_cgroupfs_driver_all_qos_classes() -> None:
    for qos in ("burstable", "besteffort", ""):
        assert pod_from_cgroup(cgroupfs(qos, UID_A, C1)) == (UID_A, C1)


def test_systemd_driver_all_qos_classes_and_runtimes() -> None:
    for qos in ("burstable", "besteffort", ""):
        for runtime in ("cri-containerd", "docker", "crio"):
            assert pod_from_cgroup(systemd(qos, UID_A, f"{runtime}-{C2}.scope")) == (UID_A, C2)


def test_other_cgroup_shapes() -> None:
    # Seen from inside the exporter's own cgroup namespace (a pod with hostPID).
    relative = f"0::/../../kubepods-besteffort-pod{u(UID_A)}.slice/crio-{C1}.scope\n"
    assert pod_from_cgroup(relative) == (UID_A, C1)
    assert pod_from_cgroup(f"0::/../pod{UID_A}/{C1}\n") == (UID_A, C1)
    # kind / kubelet with --cgroup-root.
    nested = (
        f"0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{u(UID_B)}.slice/cri-containerd-{C1}.scope"
    )
    assert pod_from_cgroup(nested) == (UID_B, C1)
    assert pod_from_cgroup(f"0::/kubepods/burstable/pod{STATIC_UID}/{C3}\n") == (STATIC_UID, C3)
    # The pod cgroup itself (no container level) still names the pod.
    assert pod_from_cgroup(f"0::/kubepods/burstable/pod{UID_A}\n") == (UID_A, "")
    # v1: a line with the container id wins over one without.
    mixed = f"2:cpu:/kubepods/burstable/pod{UID_A}\n1:memory:/kubepods/burstable/pod{UID_A}/{C1}\n"
    assert pod_from_cgroup(mixed) == (UID_A, C1)


def test_not_a_pod() -> None:
    assert pod_from_cgroup(f"0::/system.slice/docker-{C1}.scope\n") is None
    assert pod_from_cgroup(f"0::/user.slice/pod{UID_A}/{C1}\n") is None  # "pod<uuid>" outside kubepods
    assert pod_from_cgroup("0::/kubepods/burstable/podnot-a-uid/x\n") is None
    assert pod_from_cgroup("garbage\n\n") is None


def test_discover_groups_processes_by_pod(tmp_path: Path) -> None:
    proc(tmp_path, 10, cgroupfs("burstable", UID_A, C2))
    proc(tmp_path, 11, cgroupfs("burstable", UID_A, C1))  # second container of the same pod
    proc(tmp_path, 12, cgroupfs("burstable", UID_A, C1))
    proc(tmp_path, 20, systemd("besteffort", UID_B, f"cri-containerd-{C3}.scope"))
    d = KubernetesDiscovery(tmp_path)
    got = d.discover([reading("0", (10, 11, 12, 20)), reading("1", (12,)), reading("2", None)])
    assert got == {
        "0": {pod(UID_A, C1, C2): frozenset({10, 11, 12}), pod(UID_B, C3): frozenset({20})},
        # Only the containers seen on this GPU.
        "1": {pod(UID_A, C1): frozenset({12})},
    }
    assert d.name == "kubernetes"
    assert not d.errors


def test_unreadable_and_non_pod_processes_are_counted_and_skipped(tmp_path: Path) -> None:
    proc(tmp_path, 10, systemd("", UID_A, f"docker-{C1}.scope"))
    proc(tmp_path, 11)  # pid directory without a cgroup file
    proc(tmp_path, 12, "0::/system.slice/sshd.service\n")
    proc(tmp_path, 13, f"0::/system.slice/containerd.service/{C2}\n")
    d = KubernetesDiscovery(tmp_path)
    # 14: exited, no directory; 11 appears on two GPUs but is read once.
    got = d.discover([reading("0", (10, 11, 12, 13, 14)), reading("1", (11,))])
    assert got == {"0": {pod(UID_A, C1): frozenset({10})}}
    assert d.errors == {"proc_unreadable": 2, "no_pod": 2}
