"""What reading the kubelet's PodResources API costs each poll, against the /proc method it replaces, in one run.

A real gRPC server (tests/kubelet_podresources.py: grpcio serving the servicer generated from the vendored
api.proto, as the kubelet serves it), in its own process as the kubelet is, answers on a unix socket for a node of
8 GPUs and 110 pods (the kubelet's
default maximum): 32 pods hold one time-slicing replica each (4 per GPU, `GPU-<uuid>::<n>`), 78 hold no device.
The pod log directory has the 110 pods' `<namespace>_<pod>_<uid>` entries. Each GPU runs 4 processes, one per pod,
whose `/proc/<pid>/cgroup` (a file tree in a temporary directory) names the pod.

Timed (`time.perf_counter`, --reps repetitions after 50 warm-up rounds; median and p99, milliseconds):

  List                        PodResourcesClient.list(): the gRPC call over the socket on the kept channel, the
                              reply's decoding and its NVIDIA devices taken out
  connect + List              a new client (channel, connection) and its first List, as after a kubelet restart
  discover, podresources      KubernetesDiscovery.discover() on the API without hostPID (what the chart deploys):
                              List, device ids to GPUs, pod UIDs from the log directory (listed again only when
                              it changes), NVML's PIDs not readable, so not read
  discover, podresources+PIDs the same with this process seeing the GPU processes (hostPID): each PID's cgroup read
  baseline: discover, /proc   the /proc method (KubernetesDiscovery with no socket): each PID's cgroup read, as
                              before the API was used

    .venv/bin/python benchmarks/bench_podresources.py [--reps 500] [--quick] [--markdown-out PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.kubelet_podresources import Kubelet, pod, serving  # noqa: E402
from wattprint.exporter.backends.base import GpuInfo, GpuReading  # noqa: E402
from wattprint.exporter.jobs.kubernetes import KubernetesDiscovery  # noqa: E402
from wattprint.exporter.jobs.podresources import PodResourcesClient  # noqa: E402

GPUS = 8
PODS = 110
PODS_PER_GPU = 4
WARMUP = 50


UUIDS = [f"GPU-{uuid.UUID(int=i + 1)}" for i in range(GPUS)]


def pods() -> list:
    """The PodResources messages of the node (deterministic: the server process builds the same)."""
    return [pod(f"team-{i % 7}", f"job-{i}", ("main", "nvidia.com/gpu", [f"{UUIDS[i % GPUS]}::{i // GPUS}"]))
            if i < GPUS * PODS_PER_GPU else pod(f"team-{i % 7}", f"job-{i}", ("main", "cpu", []))
            for i in range(PODS)]


def serve() -> None:
    """The kubelet's side, run as its own process: serve until stopped, socket path on stdout."""
    kubelet = Kubelet()
    kubelet.pods = pods()
    with serving(kubelet) as (_, socket):
        print(socket, flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


def node(root: Path) -> tuple[list[GpuReading], Path, Path, Path]:
    """(readings with host PIDs, /proc with those PIDs, a /proc without, pod log dir)."""
    uuids = UUIDS
    procfs, logs, empty = root / "proc", root / "pods", root / "no-proc"
    logs.mkdir()
    empty.mkdir()
    pids: dict[int, list[int]] = {g: [] for g in range(GPUS)}
    for i in range(PODS):
        ns, name, uid = f"team-{i % 7}", f"job-{i}", str(uuid.UUID(int=10_000 + i))
        (logs / f"{ns}_{name}_{uid}").mkdir()
        if i < GPUS * PODS_PER_GPU:
            gpu = i % GPUS
            pid = 100_000 + i
            pids[gpu].append(pid)
            (procfs / str(pid)).mkdir(parents=True)
            (procfs / str(pid) / "cgroup").write_text(
                f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid.replace('-', '_')}.slice/"
                f"cri-containerd-{i:064x}.scope\n")
    readings = [GpuReading(info=GpuInfo(index=str(g), uuid=uuids[g]), timestamp=0.0, pids=tuple(pids[g]))
                for g in range(GPUS)]
    return readings, procfs, empty, logs


def timed(fn: Callable[[], object], reps: int, warmup: int = WARMUP) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPU cores ({cpu or platform.processor() or 'unknown'}), Linux {platform.release()}, "
            f"Python {platform.python_version()}, grpcio {metadata.version('grpcio')}, "
            f"protobuf {metadata.version('protobuf')}")


def run(socket: str, reps: int) -> list[tuple[str, list[float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        readings, procfs, no_proc, logs = node(Path(tmp))
        client = PodResourcesClient(socket)
        api = KubernetesDiscovery(no_proc, socket, str(logs))
        api_pids = KubernetesDiscovery(procfs, socket, str(logs))
        proc = KubernetesDiscovery(procfs, "")
        # the same pods charged on the same GPUs by both methods, or the comparison is void
        by_api = {k: sorted(j.job_id for j in v) for k, v in api_pids.discover(readings).items()}
        by_proc = {k: sorted(j.job_id for j in v) for k, v in proc.discover(readings).items()}
        assert by_api == by_proc and sum(map(len, by_api.values())) == GPUS * PODS_PER_GPU, (by_api, by_proc)
        api.discover(readings)
        assert api.method == api_pids.method == "podresources" and not api.errors, api.errors

        def connect() -> None:
            c = PodResourcesClient(socket)
            c.list()
            c.close()

        rows = [
            ("List", timed(client.list, reps)),
            ("connect + List", timed(connect, max(5, reps // 10), warmup=5)),
            ("discover, podresources (no hostPID)", timed(lambda: api.discover(readings), reps)),
            ("discover, podresources + PIDs (hostPID)", timed(lambda: api_pids.discover(readings), reps)),
            ("baseline: discover, /proc method", timed(lambda: proc.discover(readings), reps)),
        ]
        client.close()
        return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="20 repetitions: checks the script runs")
    ap.add_argument("--markdown-out", type=Path)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve()
        return 0
    reps = 20 if args.quick else args.reps

    # SIGTERM blocked in the child, so that sigwait receives it
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}))
    try:
        assert server.stdout is not None
        socket = server.stdout.readline().strip()
        assert socket, "the server process did not start"
        rows = run(socket, reps)
    finally:
        server.terminate()
        server.wait(10)

    base = statistics.median(rows[-1][1])
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Machine: {machine()}. Run: {now}; {reps} timed repetitions per row after {WARMUP} warm-up rounds "
        f"(connect + List: {max(5, reps // 10)}); a node of {GPUS} GPUs and {PODS} pods, "
        f"{GPUS * PODS_PER_GPU} of them holding a time-slicing replica ({PODS_PER_GPU} per GPU) and running one "
        "GPU process each; the server in its own process; times in milliseconds.",
        "",
        "| what | median | p99 | median / baseline |",
        "|---|---:|---:|---:|",
    ]
    for name, xs in rows:
        med = statistics.median(xs)
        lines.append(f"| {name} | {med:.3f} | {p99(xs):.3f} | {med / base:.2f}× |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
