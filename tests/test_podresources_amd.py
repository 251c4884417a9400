"""Kubernetes allocations of AMD GPUs: the amd.com/ device ids of AMD's device plugin, charged on a faked MI300X node.

The ids are the plugin's (ROCm/k8s-device-plugin, ``internal/pkg/amdgpu/amdgpu.go``): a GPU's PCI address, an
MI300 compute partition past the first as ``amdgpu_xcp_<n>``, time-slicing replicas ``<id>-slice-<n>``. The node
is the fake amdsmi package (tests/fake_amdsmi.py) with the kernel's sysfs side of it (``write_sysfs``), read by
the real backend; the kubelet is the real gRPC server of tests/kubelet_podresources.py; the real Poller books.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, tools_required

try:
    import grpc  # noqa: F401  (the kubernetes extra; the test extra installs it)
except ImportError:
    if tools_required():
        raise
    pytest.skip("grpcio not installed: pip install 'wattprint[kubernetes]' (CI fails here instead)",
                allow_module_level=True)

from tests.exporter_proc import running_exporter, wait_until
from tests.fake_amdsmi import VERSIONS, FakeProcess, make_fake_amdsmi, mi300x, write_shim, write_sysfs
from tests.kubelet_podresources import Kubelet, pod, pod_logs, proc_tree, serving
from wattprint.exporter.backends.amdsmi import AmdSmiBackend
from wattprint.exporter.backends.base import GpuInfo, GpuReading, MigInstance
from wattprint.exporter.jobs.kubernetes import KubernetesDiscovery
from wattprint.exporter.jobs.podresources import amd_device_key, amd_device_table
from wattprint.exporter.poller import Poller

GPU = "amd.com/gpu"
UIDS = {name: f"{n:08x}-1111-2222-3333-{n:012x}" for n, name in enumerate(
    ("idle", "slice-a", "slice-b", "part0", "part3", "nvidia", "vm"), start=1)}



def logs_of(root: Path, *names: str) -> Path:
    """The kubelet's pod log directory for these pods (namespace "ml")."""
    return pod_logs(root, *(("ml", n, UIDS[n]) for n in names))


# -- the id mapping ------------------------------------------------------------------------------------------------


def test_amd_device_ids_map_to_the_gpu_or_partition_the_kernel_names() -> None:
    spx = GpuReading(info=GpuInfo(index="0", uuid="u0", kernel_devices=("0000:0c:00.0",)), timestamp=0.0)
    cpx = GpuReading(info=GpuInfo(index="1", uuid="u1"), timestamp=0.0, mig=(
        MigInstance(gi_id="0", kernel_devices=("0000:1c:00.0",)),
        MigInstance(gi_id="3", kernel_devices=("amdgpu_xcp_9",)),
        MigInstance(gi_id="5")))            # a partition whose render node could not be named (amdsmi 6.2)
    table = amd_device_table([spx, cpx])
    cases = {
        "0000:0c:00.0": "0", "0000:0C:00.0": "0",              # the plugin reads sysfs (lower case); any case
        "0000:0c:00.0-slice-3": "0",                           # the plugin's gpu.replicas time-slicing
        "0000:1c:00.0": "1.0",                                 # a partitioned GPU's PCI device is partition 0
        "amdgpu_xcp_9": "1.3", "amdgpu_xcp_9-slice-0": "1.3",
        # never an index, UUID or NVIDIA name: the passthrough resources' ids are IOMMU groups ("218")
        "0": None, "1": None, "218": None, "u0": None, "nvidia0": None, "0000:1c:00.5": None,
        "amdgpu_xcp_10": None, "-slice-1": None, "": None,
    }
    assert {k: amd_device_key(k, table) for k in cases} == cases


@pytest.mark.parametrize("version", VERSIONS)
def test_the_backend_names_each_gpu_and_partition_as_the_kernel_does(tmp_path: Path, version: str) -> None:
    sockets = [mi300x(0), mi300x(1, mode="CPX"), mi300x(2, mode="DPX")]
    backend = AmdSmiBackend(make_fake_amdsmi(version, sockets), sysfs=str(write_sysfs(tmp_path, sockets)))
    backend.open()
    spx, cpx, dpx = backend.read()
    # the whole GPU and each GPU's first partition: the PCI address amdsmi gives, which its render node's is too
    assert spx.info.kernel_devices == ("0000:0c:00.0",)
    assert cpx.info.kernel_devices == () and dpx.info.kernel_devices == ()
    named = {i.gi_id: i.kernel_devices for i in cpx.mig}
    assert named["0"] == ("0000:1c:00.0",) and {i.gi_id: i.kernel_devices for i in dpx.mig}["0"] == ("0000:2c:00.0",)
    if version == "6.2":        # no amdsmi_get_gpu_kfd_info: no KFD node, so no render node to name the others by
        assert all(named[str(p)] == () for p in range(1, 8))
    else:
        assert [named[str(p)] for p in range(1, 8)] == [(f"amdgpu_xcp_{6 + p}",) for p in range(1, 8)]
        assert {i.gi_id: i.kernel_devices for i in dpx.mig}["1"] == ("amdgpu_xcp_14",)


def test_without_sysfs_only_the_pci_address_names_a_gpu(tmp_path: Path) -> None:
    sockets = [mi300x(0), mi300x(1, mode="CPX")]
    backend = AmdSmiBackend(make_fake_amdsmi("7.0", sockets), sysfs=str(tmp_path / "absent"))
    backend.open()
    spx, cpx = backend.read()
    assert spx.info.kernel_devices == ("0000:0c:00.0",)
    assert [i.kernel_devices for i in cpx.mig] == [("0000:1c:00.0",)] + [()] * 7


def test_a_name_two_processors_share_is_left_out_with_a_warning(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    sockets = [mi300x(0, mode="DPX"), mi300x(1)]
    sysfs = write_sysfs(tmp_path, sockets)
    # partition 1 of GPU 0 and GPU 1 render on the same node: which of them a pod holds cannot be told
    props = sysfs / "class/kfd/kfd/topology/nodes/3/properties"
    props.write_text(props.read_text().replace("drm_render_minor 129", "drm_render_minor 136"))
    backend = AmdSmiBackend(make_fake_amdsmi("6.4", sockets), sysfs=str(sysfs))
    with caplog.at_level(logging.WARNING, logger="wattprint.amdsmi"):
        backend.open()
    dpx, spx = backend.read()
    assert [i.kernel_devices for i in dpx.mig] == [("0000:0c:00.0",), ()]
    assert spx.info.kernel_devices == ()         # both lose the name: a pod holding it is counted, not guessed at
    (line,) = caplog.records
    assert line.fields["names"] == "0000:1c:00.0"               # type: ignore[attr-defined]


# -- pods charged by allocation ------------------------------------------------------------------------------------


def _node(version: str) -> tuple[list, object]:
    idle = mi300x(0, power_w=300.0)                 # held by a pod that runs nothing on it
    shared = mi300x(1, power_w=600.0)               # time-sliced between two pods, whose processes weigh 3:1
    shared.partitions[0].processes = [FakeProcess(81001, busy=0.75), FakeProcess(81002, busy=0.25)]
    cpx = mi300x(2, mode="CPX", power_w=400.0)      # partitions 0 and 3 held, 3 busy
    cpx.partitions[3].processes, cpx.partitions[3].gfx_activity = [FakeProcess(81003, busy=0.5)], 50
    free = mi300x(3)                                # held by no one
    sockets = [idle, shared, cpx, free]
    return sockets, make_fake_amdsmi(version, sockets)


def _allocations(server: Kubelet) -> None:
    server.pods = [
        pod("ml", "idle", ("c", GPU, ["0000:0c:00.0"])),
        pod("ml", "slice-a", ("c", GPU, ["0000:1c:00.0-slice-0"])),
        pod("ml", "slice-b", ("c", GPU, ["0000:1c:00.0-slice-1"])),
        pod("ml", "part0", ("c", "amd.com/cpx_nps1", ["0000:2c:00.0"])),     # the plugin's mixed naming strategy
        pod("ml", "part3", ("c", "amd.com/cpx_nps1", ["amdgpu_xcp_16"])),
        pod("ml", "nvidia", ("c", "nvidia.com/gpu", ["0"])),                 # another vendor's: not read at all
        pod("ml", "vm", ("c", "amd.com/gpu_pf", ["218"])),                   # a passthrough IOMMU group
        pod("kube-system", "coredns", ("coredns", "cpu", [])),
    ]


def _by_gpu(poller: Poller) -> dict[str, dict[str, int]]:
    return {g.info.index: {**{j.job.job_id: j.energy_mj for j in g.jobs}, "idle": g.idle_mj, "gpu": g.energy_mj}
            for g in poller.snapshot.gpus}


@pytest.mark.parametrize("version", VERSIONS)
def test_pods_are_charged_the_amd_gpus_and_partitions_allocated_to_them(tmp_path: Path, version: str,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    sockets, am = _node(version)
    backend = AmdSmiBackend(am, clock=lambda: am.now, sysfs=str(write_sysfs(tmp_path, sockets)))
    backend.open()
    procfs = proc_tree(tmp_path, {81001: UIDS["slice-a"], 81002: UIDS["slice-b"], 81003: UIDS["part3"]})
    with serving() as (server, socket):
        _allocations(server)
        discovery = KubernetesDiscovery(procfs, socket, str(logs_of(tmp_path, *UIDS)), vendor="amd")
        clock = iter(range(10_000))
        poller = Poller(backend, discovery, clock=lambda: float(next(clock)))
        with caplog.at_level(logging.DEBUG, logger="wattprint.jobs"):
            poller.poll_once()
            for step in range(40):
                sockets[2].power_w = 140.0 if step < 3 else 400.0     # idle first: the CPX board's floor (mig.py)
                am.advance(1.0)
                poller.poll_once()
                for g in poller.snapshot.gpus:                       # jobs + idle == GPU, every poll, to the mJ
                    assert sum(j.energy_mj for j in g.jobs) + g.idle_mj == g.energy_mj
    assert discovery.method == "podresources"
    e = _by_gpu(poller)
    u = UIDS
    # a pod holding a GPU is charged all of it, running or not
    assert e["0"] == {u["idle"]: e["0"]["gpu"], "idle": 0, "gpu": e["0"]["gpu"]}
    assert abs(e["0"]["gpu"] - 40 * 300_000) <= 1          # 40 s at 300 W, to the counter's floor
    # two time-slicing replicas of one GPU: all of it between them, by their processes' graphics time (3:1)
    assert e["1"][u["slice-a"]] + e["1"][u["slice-b"]] == e["1"]["gpu"] and e["1"]["idle"] == 0
    assert abs(e["1"][u["slice-a"]] - 3 * e["1"][u["slice-b"]]) <= 4 * 40
    # the CPX GPU: each pod its partition's share of the socket, the unheld partitions idle
    (cpx,) = [g for g in poller.snapshot.gpus if g.info.index == "2"]
    part = {i.instance.gi_id: i.energy_mj for i in cpx.instances}
    assert e["2"][u["part0"]] == part["0"] > 0
    assert e["3"] == {"idle": e["3"]["gpu"], "gpu": e["3"]["gpu"]} and e["3"]["gpu"] > 0
    unknown = {"218"} | ({"amdgpu_xcp_16"} if version == "6.2" else set())
    if version == "6.2":     # no KFD node id: partition 3 cannot be named, its pod is not charged (docs/exporter.md)
        assert u["part3"] not in e["2"]
    else:
        assert e["2"][u["part3"]] == part["3"] > part["5"] > 0
    # ids of no GPU here counted every poll, warned once; the NVIDIA pod is not this exporter's to count
    assert discovery.errors == collections.Counter(unknown_device=41 * len(unknown))
    (warned,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warned.fields["reason"] == "unknown_device"                      # type: ignore[attr-defined]


def test_an_nvidia_backend_still_reads_nvidia_allocations_only(tmp_path: Path) -> None:
    """The default vendor: amd.com/ allocations are another vendor's and are neither charged nor counted."""
    reading = GpuReading(info=GpuInfo(index="0", uuid="GPU-0", kernel_devices=("0000:0c:00.0",)), timestamp=0.0,
                         energy_mj=0)
    with serving() as (server, socket):
        server.pods = [pod("ml", "idle", ("c", GPU, ["0000:0c:00.0"])), pod("ml", "nvidia", ("c", "nvidia.com/gpu",
                                                                                              ["GPU-0"]))]
        discovery = KubernetesDiscovery(tmp_path / "proc", socket, str(logs_of(tmp_path, "idle", "nvidia")))
        found = discovery.discover([reading])
    assert {k: {j.job_id for j in jobs} for k, jobs in found.items()} == {"0": {UIDS["nvidia"]}}
    assert not discovery.errors


# -- the exporter process ------------------------------------------------------------------------------------------


def _mj(samples, **labels) -> int:
    return sum(round(s.value * 1000) for s in samples if all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.mark.slow
def test_exporter_process_charges_pods_on_a_faked_mi300x_node(tmp_path: Path) -> None:
    sockets, _ = _node("7.0")
    shim = write_shim(tmp_path / "shim", "7.0", sockets)
    sysfs = write_sysfs(tmp_path, sockets)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(REPO)])}
    with serving() as (server, socket):
        _allocations(server)
        args = ("--backend", "amdsmi", "--job-discovery", "kubernetes", "--kubelet-podresources-socket", socket,
                "--kubelet-pod-logs-dir", str(logs_of(tmp_path, *UIDS)), "--path.procfs", str(tmp_path / "proc"),
                "--path.sysfs", str(sysfs), "--no-collector.rapl", "--poll-interval", "0.1")
        with running_exporter(*args, env=env) as (_, port):
            def page() -> str:
                return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

            held = re.compile(rf'wattprint_job_energy_joules_total{{[^}}]*job_id="{UIDS["part3"]}"[^}}]*}} [1-9]')
            assert wait_until(lambda: bool(held.search(page())), timeout=20), page()
            time.sleep(0.5)
            text = page()
    s: dict[str, list] = {}
    for f in text_string_to_metric_families(text):
        for sample in f.samples:
            s.setdefault(sample.name, []).append(sample)
    energy, idle, jobs = (s["wattprint_gpu_energy_joules_total"], s["wattprint_gpu_idle_energy_joules_total"],
                          s["wattprint_job_energy_joules_total"])
    for gpu in ("0", "1", "2", "3"):       # jobs + idle == GPU, to the millijoule, on the served page
        assert _mj(jobs, gpu=gpu) + _mj(idle, gpu=gpu) == _mj(energy, gpu=gpu), gpu
    assert _mj(jobs, gpu="0", job_id=UIDS["idle"]) == _mj(energy, gpu="0") > 0 and _mj(idle, gpu="0") == 0
    assert _mj(jobs, gpu="1") == _mj(energy, gpu="1") > 0
    assert {x.labels["job_id"] for x in jobs if x.labels["gpu"] == "2"} == {UIDS["part0"], UIDS["part3"]}
    assert _mj(jobs, gpu="3") == 0 and _mj(idle, gpu="3") == _mj(energy, gpu="3")
    (method,) = s["wattprint_job_discovery_info"]
    assert method.labels["method"] == "podresources"
    errors = {x.labels["reason"]: x.value for x in s.get("wattprint_job_discovery_errors_total", [])}
    assert set(errors) == {"unknown_device"}            # the passthrough id only
