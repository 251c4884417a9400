"""Kubernetes discovery by allocation: the kubelet's PodResources v1 API, served for real by grpcio on a unix socket.

The server is the servicer generated from the vendored api.proto (tests/kubelet_podresources.py), not a mocked
client: the exporter's own client reads it over the socket, and the real Poller books the energy.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, tools_required

try:
    import grpc  # noqa: F401  (the kubernetes extra; the test extra installs it)
except ImportError:
    if tools_required():
        raise
    pytest.skip("grpcio not installed: pip install 'wattprint[kubernetes]' (CI fails here instead)",
                allow_module_level=True)

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.exporter_proc import running_exporter, wait_until
from tests.kubelet_podresources import Kubelet, pod, pod_logs, proc_tree, serving
from wattprint.exporter.backends.base import GpuInfo, GpuReading, MigInstance
from wattprint.exporter.collectors import WattprintCollector
from wattprint.exporter.jobs.base import Job
from wattprint.exporter.jobs.kubernetes import KubernetesDiscovery
from wattprint.exporter.jobs.podresources import PodResourcesClient, device_key, device_table
from wattprint.exporter.poller import Poller

UID_A = "1b2c3d4e-5f6a-7b8c-9d0e-1f2a3b4c5d6e"
UID_B = "0a0b0c0d-1111-2222-3333-444455556666"
UID_C = "9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0"
GPU0, GPU1 = "GPU-00000000-aaaa-bbbb-cccc-000000000000", "GPU-11111111-aaaa-bbbb-cccc-111111111111"
MIG3G, MIG4G = "MIG-33333333-aaaa-bbbb-cccc-333333333333", "MIG-44444444-aaaa-bbbb-cccc-444444444444"
GPU = "nvidia.com/gpu"


class Node:
    """GPUs whose counters rise by a set amount per poll, with the PIDs and per-process utilisation the test sets."""

    name = "scripted"

    def __init__(self, uuids: Sequence[str] = (GPU0, GPU1), step_mj: Sequence[int] = (100_000, 70_000)) -> None:
        self.uuids, self.step_mj = list(uuids), list(step_mj)
        self.t = 0.0
        self.raw = [1_000_000] * len(self.uuids)
        self.pids: dict[int, tuple[int, ...]] = {}
        self.util: dict[int, dict[int, float]] = {}
        self.mig: dict[int, tuple[MigInstance, ...]] = {}

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self) -> list[GpuReading]:
        return [GpuReading(info=GpuInfo(index=str(i), uuid=u), timestamp=self.t, energy_mj=self.raw[i],
                           pids=self.pids.get(i, ()), process_sm_util=self.util.get(i, {}),
                           mig=self.mig.get(i, ()), mig_slices=7 if self.mig.get(i) else 0)
                for i, u in enumerate(self.uuids)]

    def advance(self) -> None:
        self.t += 1.0
        self.raw = [r + s for r, s in zip(self.raw, self.step_mj, strict=True)]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def kubelet() -> Iterator[tuple[Kubelet, str]]:
    with serving() as served:
        yield served



def job(uid: str) -> Job:
    return Job(uid, "kubernetes", pod_uid=uid)


def energy(poller: Poller) -> dict[str, dict[str, int]]:
    """gpu index -> job id (and "idle") -> mJ."""
    return {g.info.index: {**{j.job.job_id: j.energy_mj for j in g.jobs}, "idle": g.idle_mj}
            for g in poller.snapshot.gpus}


def run(poller: Poller, node: Node, polls: int, clock: Clock | None = None) -> None:
    for _ in range(polls):
        poller.poll_once()
        node.advance()
        if clock is not None:
            clock.t += 1.0


def discovery(tmp_path: Path, socket: str, *pods: tuple[str, str, str], procfs: Path | None = None,
              **kw: object) -> KubernetesDiscovery:
    return KubernetesDiscovery(procfs or tmp_path / "no-proc", socket, str(pod_logs(tmp_path, *pods)), **kw)


# -- the acceptance case: allocation, not process presence, is what is charged ------------------------------------


def test_a_pod_holding_a_gpu_with_no_process_is_charged_that_gpus_energy(tmp_path: Path, kubelet) -> None:
    server, socket = kubelet
    server.pods = [pod("ml", "notebook", ("jupyter", GPU, [GPU1])), pod("web", "frontend", ("nginx", "cpu", []))]
    d = discovery(tmp_path, socket, ("ml", "notebook", UID_A), ("web", "frontend", UID_B))
    node = Node()
    poller = Poller(node, d, clock=lambda: node.t)
    run(poller, node, 4)
    assert d.method == "podresources"
    e = energy(poller)
    # three intervals of 70 J on GPU 1, all to the pod that holds it; GPU 0 is held by no one
    assert e["1"] == {UID_A: 210_000, "idle": 0}
    assert e["0"] == {"idle": 300_000}
    (g1,) = [g for g in poller.snapshot.gpus if g.info.index == "1"]
    assert [j.job for j in g1.jobs] == [job(UID_A)]
    assert not d.errors
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry(poller)).decode())}
    (info,) = families["wattprint_job_info"].samples
    assert (info.labels["gpu"], info.labels["job_id"], info.labels["uid"], info.labels["job_source"],
            info.labels["container"]) == ("1", UID_A, UID_A, "kubernetes", "")
    (method,) = families["wattprint_job_discovery_info"].samples
    assert method.labels == {"discovery": "kubernetes", "method": "podresources"}


def registry(poller: Poller) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(WattprintCollector(lambda: poller.snapshot, hostname="node-1"))
    return reg


# -- time-slicing: several pods on one GPU -------------------------------------------------------------------------


def test_time_sliced_pods_without_pids_split_equally_and_the_equal_share_time_is_counted(tmp_path: Path,
                                                                                       kubelet) -> None:
    server, socket = kubelet
    server.pods = [pod("a", "p1", ("c", GPU, [f"{GPU0}::0"])), pod("b", "p2", ("c", GPU, [f"{GPU0}::3"]))]
    d = discovery(tmp_path, socket, ("a", "p1", UID_A), ("b", "p2", UID_B))
    node = Node()
    poller = Poller(node, d, clock=lambda: node.t)
    run(poller, node, 3)
    e = energy(poller)
    assert e["0"] == {UID_A: 100_000, UID_B: 100_000, "idle": 0}
    (g0,) = [g for g in poller.snapshot.gpus if g.info.index == "0"]
    assert {j.job.job_id: j.equal_share_us for j in g0.jobs} == {UID_A: 2_000_000, UID_B: 2_000_000}
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry(poller)).decode())}
    shares = {s.labels["job_id"]: s.value for s in families["wattprint_job_equal_share_seconds"].samples
              if s.name.endswith("_total")}
    assert shares == {UID_A: 2.0, UID_B: 2.0}


def test_time_sliced_pods_with_pids_split_by_per_process_utilisation(tmp_path: Path, kubelet) -> None:
    server, socket = kubelet
    server.pods = [pod("a", "p1", ("c", GPU, [f"{GPU0}::0"])), pod("b", "p2", ("c", GPU, [f"{GPU0}::1"]))]
    procfs = proc_tree(tmp_path, {101: UID_A, 202: UID_B, 303: UID_C})
    d = discovery(tmp_path, socket, ("a", "p1", UID_A), ("b", "p2", UID_B), procfs=procfs)
    node = Node()
    # PID 303 belongs to a pod that holds no device here (and 404 is not in this /proc: no hostPID): both ignored
    node.pids = {0: (101, 202, 303, 404)}
    node.util = {0: {101: 30.0, 202: 10.0, 303: 60.0, 404: 50.0}}
    poller = Poller(node, d, clock=lambda: node.t)
    run(poller, node, 2)
    assert d.discover(node.read()) == {"0": {job(UID_A): frozenset({101}), job(UID_B): frozenset({202})}}
    assert energy(poller)["0"] == {UID_A: 75_000, UID_B: 25_000, "idle": 0}
    assert not d.errors


# -- MIG devices ---------------------------------------------------------------------------------------------------


def test_mig_uuid_allocations_map_to_their_gpu_instance(tmp_path: Path, kubelet) -> None:
    server, socket = kubelet
    server.pods = [pod("ml", "small", ("c", "nvidia.com/mig-3g.40gb", [MIG3G])),
                   pod("ml", "big", ("c", "nvidia.com/mig-4g.40gb", [MIG4G]))]
    d = discovery(tmp_path, socket, ("ml", "small", UID_A), ("ml", "big", UID_B))
    node = Node(uuids=[GPU0], step_mj=[140_000])
    node.mig = {0: (MigInstance(gi_id="1", profile="3g.40gb", slices=3, uuid=MIG3G, activity=0.5),
                    MigInstance(gi_id="2", profile="4g.40gb", slices=4, uuid=MIG4G, activity=0.5))}
    assert d.discover(node.read()) == {"0.1": {job(UID_A): frozenset()}, "0.2": {job(UID_B): frozenset()}}
    poller = Poller(node, d, clock=lambda: node.t)
    run(poller, node, 3)
    (g,) = poller.snapshot.gpus
    per_instance = {i.instance.gi_id: i.energy_mj for i in g.instances}
    assert {j.job.job_id: j.energy_mj for j in g.jobs} == {UID_A: per_instance["1"], UID_B: per_instance["2"]}
    assert sum(per_instance.values()) == 280_000 and g.idle_mj == 0


def test_device_ids_of_every_plugin_strategy() -> None:
    readings = [GpuReading(info=GpuInfo(index="0", uuid=GPU0), timestamp=0.0),
                GpuReading(info=GpuInfo(index="1", uuid=GPU1), timestamp=0.0,
                           mig=(MigInstance(gi_id="5", uuid=MIG3G),))]
    table = device_table(readings)
    cases = {GPU0: "0", f"{GPU0}::7": "0", "1": "1", "1::2": "1", MIG3G: "1.5", f"{MIG3G}::1": "1.5",
             "nvidia0": "0", "nvidia1/gi5": "1.5", "nvidia0/vgpu3": "0", "nvidia1/gi5/vgpu0": "1.5",
             "GPU-unknown": None, "7": None, "": None}
    assert {k: device_key(k, table) for k in cases} == cases


def test_a_device_no_backend_reads_is_counted_and_warned_once(tmp_path: Path, kubelet,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    server, socket = kubelet
    server.pods = [pod("a", "p1", ("c", GPU, ["GPU-not-on-this-node"]), ("d", GPU, [GPU0]))]
    d = discovery(tmp_path, socket, ("a", "p1", UID_A))
    node = Node()
    with caplog.at_level(logging.DEBUG, logger="wattprint.jobs"):
        for _ in range(3):
            assert d.discover(node.read()) == {"0": {job(UID_A): frozenset()}}
    assert d.errors == collections.Counter(unknown_device=3)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


# -- the pod UID ---------------------------------------------------------------------------------------------------


def test_pod_uid_from_the_newest_log_directory_and_namespace_pod_without_one(tmp_path: Path, kubelet) -> None:
    server, socket = kubelet
    server.pods = [pod("db", "pg-0", ("c", GPU, [GPU0])), pod("ml", "orphan", ("c", GPU, [GPU1]))]
    logs = pod_logs(tmp_path, ("db", "pg-0", UID_A), ("db", "pg-0", UID_B))
    os.utime(logs / f"db_pg-0_{UID_A}", ns=(1_000_000_000, 1_000_000_000))   # the old pod's, left behind
    (logs / "not_a_pod").mkdir()
    d = KubernetesDiscovery(tmp_path / "proc", socket, str(logs))
    found = d.discover(Node().read())
    assert found == {"0": {job(UID_B): frozenset()}, "1": {Job("ml/orphan", "kubernetes"): frozenset()}}
    assert d.errors == collections.Counter(ambiguous_pod_uid=1, no_pod_uid=1)


# -- fallback to /proc ---------------------------------------------------------------------------------------------


def test_socket_absent_falls_back_to_proc_and_says_so_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    procfs = proc_tree(tmp_path, {101: UID_A})
    clock = Clock()
    d = KubernetesDiscovery(procfs, str(tmp_path / "kubelet.sock"), str(tmp_path / "logs"), clock=clock)
    node = Node()
    node.pids = {0: (101,)}
    poller = Poller(node, d, clock=lambda: node.t)
    with caplog.at_level(logging.DEBUG, logger="wattprint.jobs"):
        run(poller, node, 25, clock)
    assert d.method == "proc"
    assert energy(poller)["0"] == {UID_A: 2_400_000, "idle": 0}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "/proc" in warnings[0].getMessage()
    assert warnings[0].fields["reason"] == "podresources_socket_missing"      # type: ignore[attr-defined]
    # tried again every 10 s (at 0, 10 and 20), not every poll
    assert d.errors == collections.Counter(podresources_socket_missing=3)
    page = generate_latest(registry(poller)).decode()
    assert 'wattprint_job_discovery_info{discovery="kubernetes",method="proc"} 1.0' in page
    assert 'reason="podresources_socket_missing"' in page


@pytest.mark.parametrize("fault", ["status", "hang"])
def test_server_error_or_timeout_mid_run_falls_back_counted_and_recovers(tmp_path: Path, kubelet, fault: str,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    server, socket = kubelet
    server.pods = [pod("ml", "notebook", ("c", GPU, [GPU1]))]
    procfs = proc_tree(tmp_path, {101: UID_B})
    clock = Clock()
    d = discovery(tmp_path, socket, ("ml", "notebook", UID_A), procfs=procfs, timeout=0.2, clock=clock)
    node = Node()
    node.pids = {0: (101,)}       # a process of another pod on GPU 0, which only the /proc method sees
    poller = Poller(node, d, clock=lambda: node.t)
    with caplog.at_level(logging.DEBUG):
        run(poller, node, 2, clock)
        assert d.method == "podresources"
        if fault == "status":
            server.fail = grpc.StatusCode.INTERNAL
        else:
            server.hang.set()
        run(poller, node, 1, clock)
        assert d.method == "proc"
        assert {g.info.index: {j.job.job_id for j in g.jobs if j.running}
                for g in poller.snapshot.gpus} == {"0": {UID_B}, "1": set()}
        server.fail = None
        server.hang.clear()
        server.release.set()
        run(poller, node, 9, clock)       # the API is not asked again for 10 s
        assert d.method == "proc"
        run(poller, node, 1, clock)
        assert d.method == "podresources"
    reason = "podresources_rpc_error" if fault == "status" else "podresources_timeout"
    assert d.errors == collections.Counter({reason: 1})
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [w.fields["reason"] for w in warnings] == [reason]       # type: ignore[attr-defined]
    # 13 polls, 12 intervals of 70 J on GPU 1: the pod's at 1 s and 12 s, idle while only /proc was read
    assert energy(poller)["1"] == {UID_A: 140_000, "idle": 700_000}


def test_a_pod_keeps_one_identity_across_a_method_switch(tmp_path: Path, kubelet) -> None:
    """Seen first by its process (container id from /proc), then by allocation: one Job, so one series."""
    server, socket = kubelet
    procfs = proc_tree(tmp_path, {101: UID_A})
    clock = Clock()
    d = discovery(tmp_path, socket, ("ml", "nb", UID_A), procfs=procfs, clock=clock)
    node = Node()
    node.pids = {1: (101,)}
    server.fail = grpc.StatusCode.UNAVAILABLE
    first = d.discover(node.read())
    (seen,) = first["1"]
    assert seen.container == "a" * 64
    server.fail = None
    server.pods = [pod("ml", "nb", ("c", GPU, [GPU1]))]
    clock.t = 11.0
    assert d.discover(node.read()) == {"1": {seen: frozenset({101})}}
    assert d.method == "podresources"


def test_grpcio_missing_falls_back_with_one_line(tmp_path: Path, kubelet, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    _, socket = kubelet
    monkeypatch.setitem(sys.modules, "grpc", None)     # import grpc raises ImportError, as without the extra
    d = discovery(tmp_path, socket)
    with caplog.at_level(logging.WARNING, logger="wattprint.jobs"):
        d.discover(Node().read())
    assert d.method == "proc"
    assert d.errors == collections.Counter(podresources_grpc_missing=1)
    (line,) = caplog.records
    assert "wattprint[kubernetes]" in line.fields["detail"]       # type: ignore[attr-defined]


def test_socket_disabled_is_the_proc_method_alone(tmp_path: Path) -> None:
    d = KubernetesDiscovery(proc_tree(tmp_path, {7: UID_C}), "")
    node = Node()
    node.pids = {0: (7,)}
    assert d.discover(node.read()) == {"0": {Job(UID_C, "kubernetes", UID_C, "a" * 64): frozenset({7})}}
    assert d.method == "proc" and d.client is None and not d.errors


def test_the_client_reads_large_replies(kubelet) -> None:
    server, socket = kubelet
    # 110 pods (the kubelet's default maximum) with 8 GPUs shared among them, more than the default 4 MiB not needed
    server.pods = [pod("ns", f"pod-{i}", ("c", GPU, [f"{GPU0}::{i}"]), ("side", "cpu", [])) for i in range(110)]
    pods = PodResourcesClient(socket).list()
    assert len(pods) == 110 and pods[5].devices == (("c", f"{GPU0}::5"),)


# -- the generated modules are those of the vendored proto ---------------------------------------------------------


def test_generated_modules_match_the_vendored_proto(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts/gen_podresources.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pkg = "wattprint/exporter/jobs/podresources_v1"
    names = sorted(p.name for p in (tmp_path / pkg).glob("api_pb2*"))
    assert names == ["api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py"]
    for name in names:
        assert (tmp_path / pkg / name).read_bytes() == (REPO / pkg / name).read_bytes(), \
            f"{pkg}/{name} differs from the vendored api.proto's: run scripts/gen_podresources.py"
    proto = (REPO / pkg / "api.proto").read_text()
    assert re.search(r"commit\s+[0-9a-f]{40}", proto) and "Apache-2.0" in proto


# -- the exporter process ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_exporter_process_charges_the_allocated_pod_and_falls_back_without_the_socket(tmp_path: Path,
                                                                                     kubelet) -> None:
    server, socket = kubelet
    # DEVICE_ID_STRATEGY=index: the replay backend's GPU 1 is device "1"
    server.pods = [pod("ml", "idle-holder", ("c", GPU, ["1"]))]
    logs = pod_logs(tmp_path, ("ml", "idle-holder", UID_A))
    common = ("--backend", "replay", "--replay-gpus", "2", "--poll-interval", "0.2", "--job-discovery", "kubernetes",
              "--no-collector.rapl", "--kubelet-pod-logs-dir", str(logs), "--path.procfs", str(tmp_path / "proc"))

    def page(port: int) -> str:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text

    with running_exporter(*common, "--kubelet-podresources-socket", socket) as (_, port):
        held = re.compile(rf'wattprint_job_energy_joules_total{{[^}}]*gpu="1"[^}}]*job_id="{UID_A}"[^}}]*}} [1-9]')
        assert wait_until(lambda: bool(held.search(page(port))), timeout=20), page(port)
        text = page(port)
        assert 'method="podresources"' in text
        assert not re.search(r'wattprint_job_energy_joules_total{[^}]*gpu="0"', text)

    absent = str(tmp_path / "absent.sock")
    with running_exporter(*common, "--kubelet-podresources-socket", absent) as (proc, port):
        assert wait_until(lambda: 'method="proc"' in page(port), timeout=20)
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    lines = [line for line in err.splitlines() if "podresources_socket_missing" in line]
    assert len(lines) == 1 and "level=warning" in lines[0] and absent in lines[0], err


@pytest.mark.slow
def test_the_benchmark_runs(tmp_path: Path) -> None:
    """benchmarks/bench_podresources.py still runs (20 repetitions), so docs/benchmarks.md stays reproducible."""
    out = tmp_path / "b.md"
    proc = subprocess.run([sys.executable, "benchmarks/bench_podresources.py", "--quick", "--markdown-out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| baseline: discover, /proc method |" in out.read_text()
