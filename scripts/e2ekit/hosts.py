"""Every virtual node's sysfs and procfs as the exporter's host collector reads them (RAPL, /proc/stat, cgroups)."""


from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from .plan import Job, Node, Plan

HOST_CPUS = 32                 # logical CPUs per virtual node (/proc/stat), over 2 sockets
HOST_HZ = 100                  # USER_HZ of /proc/stat
RAPL_RANGE_UJ = 3_000_000_000  # max_energy_range_uj: 3 kJ, so each package counter wraps every ~30 s here
PACKAGE_IDLE_W, PACKAGE_W_PER_CORE = 60.0, 9.0     # per socket
DRAM_IDLE_W, DRAM_W_PER_CORE = 6.0, 0.8
CPU_MODEL = "Intel(R) Xeon(R) Platinum 8480+"


def job_cores(job: Job) -> float:
    """Cores a job keeps busy: data loaders scale with its GPUs."""
    return 1.5 + 2.0 * len(job.gpus)


class HostLoad:
    """Every node's sysfs and procfs as the host collector reads them (--path.sysfs, --path.procfs): two RAPL
    packages with DRAM, /proc/stat, and a cgroup v2 job_<id> directory per running job whose cpu.stat
    usage_usec grows with the cores it keeps busy. A thread advances them every `period` seconds; each file is
    replaced atomically, as the kernel never shows a half-written counter."""

    def __init__(self, plan: Plan, root: Path, period: float = 0.25) -> None:
        self.plan = plan
        self.root = root
        self.period = period
        self.phase = "before"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._energy: dict[tuple[str, int, str], float] = {}   # (node, socket, domain) -> µJ, unwrapped
        self._usage: dict[tuple[str, str], float] = {}          # (node, job) -> µs
        self._ticks: dict[str, float] = {}
        self.wraps = 0                    # counter wraps written (the exporter must see through every one)
        self._lock = threading.Lock()     # set_phase (the driver) and _advance (the thread) touch the same cgroups
        for node in plan.nodes:
            self._setup(node)

    def sysfs(self, node: str) -> Path:
        return self.root / node / "sys"

    def procfs(self, node: str) -> Path:
        return self.root / node / "proc"

    @staticmethod
    def _write(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def _zone(self, node: str, socket: int, domain: str) -> Path:
        entry = f"intel-rapl:{socket}" if domain == "package" else f"intel-rapl:{socket}:0"
        return self.sysfs(node) / "class" / "powercap" / entry

    def _setup(self, node: Node) -> None:
        proc = self.procfs(node.name)
        (proc / "sys" / "kernel" / "random").mkdir(parents=True, exist_ok=True)
        (proc / "sys" / "kernel" / "random" / "boot_id").write_text(f"e2e-boot-{node.name}\n")
        (proc / "cpuinfo").write_text("\n".join(
            f"processor\t: {i}\nmodel name\t: {CPU_MODEL}\nphysical id\t: {i % 2}\n" for i in range(HOST_CPUS)))
        for sock in (0, 1):
            for domain in ("package", "dram"):
                z = self._zone(node.name, sock, domain)
                z.mkdir(parents=True, exist_ok=True)
                (z / "name").write_text(f"package-{sock}\n" if domain == "package" else "dram\n")
                (z / "max_energy_range_uj").write_text(f"{RAPL_RANGE_UJ}\n")
                start = (1 + sock) * 1_000_000_000 + (0 if domain == "package" else 123_456_789)
                self._energy[(node.name, sock, domain)] = float(start)
                self._write(z / "energy_uj", f"{start}\n")
        cg = self.sysfs(node.name) / "fs" / "cgroup"
        (cg / "system.slice" / "slurmstepd.scope").mkdir(parents=True, exist_ok=True)
        (cg / "kubepods.slice" / "kubepods-besteffort.slice").mkdir(parents=True, exist_ok=True)
        (cg / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        self._ticks[node.name] = 50_000_000.0
        self._write_stat(node.name)
        self._sync_cgroups(node.name)

    def _write_stat(self, node: str) -> None:
        total = int(self._ticks[node])
        self._write(self.procfs(node) / "stat", f"cpu  {total // 4} 0 {total // 8} {total - total // 4 - total // 8}"
                    " 0 0 0 0 0 0\nintr 0\n")

    def _cgroup(self, node: str, job: Job) -> Path:
        cg = self.sysfs(node) / "fs" / "cgroup"
        if job.pod:   # the kubelet's systemd layout: dashes of the UID become underscores
            return cg / "kubepods.slice" / "kubepods-besteffort.slice" / \
                f"kubepods-besteffort-pod{job.job_id.replace('-', '_')}.slice"
        return cg / "system.slice" / "slurmstepd.scope" / f"job_{job.job_id}"

    def _running(self, node: str) -> list[Job]:
        return [j for j in self.plan.jobs if j.node == node
                and (j.when == "whole" or (j.when, self.phase) in (("ends", "before"), ("starts", "after")))]

    def _sync_cgroups(self, node: str) -> None:
        running = {j.job_id for j in self._running(node)}
        for j in self.plan.jobs:
            if j.node != node:
                continue
            d = self._cgroup(node, j)
            if j.job_id in running and not d.exists():
                d.mkdir()
                self._usage[(node, j.job_id)] = 0.0
                self._write(d / "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n")
            elif j.job_id not in running and d.exists():
                shutil.rmtree(d)     # slurmstepd removes the job's cgroup when it ends

    def energy_j(self, node: str) -> float:
        """The node's RAPL energy so far, every socket and domain, unwrapped (the BMC's model adds it up)."""
        with self._lock:
            return sum(v for (n, _, _), v in self._energy.items() if n == node) / 1e6

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase
            for node in self.plan.nodes:
                self._sync_cgroups(node.name)

    def _advance(self, dt: float) -> None:
        for node in self.plan.nodes:
            busy = 0.0
            for j in self._running(node.name):
                cores = job_cores(j)
                busy += cores
                key = (node.name, j.job_id)
                self._usage[key] += cores * dt * 1e6
                u = int(self._usage[key])
                self._write(self._cgroup(node.name, j) / "cpu.stat",
                            f"usage_usec {u}\nuser_usec {u * 3 // 4}\nsystem_usec {u - u * 3 // 4}\n")
            busy += 0.5                                   # the host's own daemons
            self._ticks[node.name] += HOST_CPUS * dt * HOST_HZ
            self._write_stat(node.name)
            for sock in (0, 1):
                for domain, idle_w, per_core in (("package", PACKAGE_IDLE_W, PACKAGE_W_PER_CORE),
                                                 ("dram", DRAM_IDLE_W, DRAM_W_PER_CORE)):
                    key3 = (node.name, sock, domain)
                    before = int(self._energy[key3]) // RAPL_RANGE_UJ
                    self._energy[key3] += (idle_w + per_core * busy / 2) * dt * 1e6
                    self.wraps += int(self._energy[key3]) // RAPL_RANGE_UJ - before
                    self._write(self._zone(node.name, sock, domain) / "energy_uj",
                                f"{int(self._energy[key3]) % RAPL_RANGE_UJ}\n")

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.period):
            now = time.monotonic()
            with self._lock:
                self._advance(now - last)
            last = now

    def __enter__(self) -> HostLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# -- processes ---------------------------------------------------------------------------------------------
