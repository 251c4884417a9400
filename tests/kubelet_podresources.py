"""A real gRPC server implementing the kubelet's PodResources v1 API on a unix socket, for tests and benchmarks.

It is the servicer generated from the vendored api.proto (the kubelet's own service definition), served by grpcio
on a socket in a fresh short directory (unix socket paths are limited to 108 bytes). The test sets what ``List``
answers, makes it fail with a status, or makes it hang until released (a kubelet that stops answering).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc

from wattprint.exporter.jobs.podresources_v1 import api_pb2 as pb
from wattprint.exporter.jobs.podresources_v1 import api_pb2_grpc


def pod(namespace: str, name: str, *containers: tuple[str, str, Sequence[str]]) -> pb.PodResources:
    """A PodResources message: containers as (container name, resource name, device ids)."""
    return pb.PodResources(name=name, namespace=namespace, containers=[
        pb.ContainerResources(name=c, devices=[pb.ContainerDevices(resource_name=r, device_ids=list(ids))] if ids
                              else [])
        for c, r, ids in containers])


class Kubelet(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self) -> None:
        self.pods: list[pb.PodResources] = []
        self.fail: grpc.StatusCode | None = None
        self.hang = threading.Event()       # set: List blocks until `release` is set
        self.release = threading.Event()
        self.calls = 0

    def List(self, request: pb.ListPodResourcesRequest, context: grpc.ServicerContext) -> pb.ListPodResourcesResponse:
        self.calls += 1
        if self.fail is not None:
            context.abort(self.fail, "injected by the test")
        if self.hang.is_set():
            self.release.wait(30)
        return pb.ListPodResourcesResponse(pod_resources=self.pods)

    def GetAllocatableResources(self, request: pb.AllocatableResourcesRequest,
                                context: grpc.ServicerContext) -> pb.AllocatableResourcesResponse:
        devices = [d for p in self.pods for c in p.containers for d in c.devices]
        return pb.AllocatableResourcesResponse(devices=devices)


@contextmanager
def serving(kubelet: Kubelet | None = None) -> Iterator[tuple[Kubelet, str]]:
    """(the servicer, its socket path) while a grpc server answers on it."""
    kubelet = kubelet or Kubelet()
    where = tempfile.mkdtemp(prefix="kubelet-")
    path = os.path.join(where, "kubelet.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    api_pb2_grpc.add_PodResourcesListerServicer_to_server(kubelet, server)
    server.add_insecure_port(f"unix:{path}")
    server.start()
    try:
        yield kubelet, path
    finally:
        kubelet.release.set()
        server.stop(grace=None)
        shutil.rmtree(where, ignore_errors=True)


def pod_logs(root: Path, *pods: tuple[str, str, str]) -> Path:
    """A kubelet pod log directory: one <namespace>_<pod>_<uid> entry per pod."""
    d = root / "pods"
    d.mkdir(exist_ok=True)
    for ns, name, uid in pods:
        (d / f"{ns}_{name}_{uid}").mkdir()
    return d


def proc_tree(root: Path, pids: dict[int, str]) -> Path:
    """A /proc with each PID's cgroup inside its pod, by pod UID (systemd driver, containerd)."""
    d = root / "proc"
    for pid, uid in pids.items():
        (d / str(pid)).mkdir(parents=True)
        (d / str(pid) / "cgroup").write_text(
            f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid.replace('-', '_')}.slice/"
            f"cri-containerd-{'a' * 64}.scope\n")
    return d
