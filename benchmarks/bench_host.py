"""CPU cost of one host poll: RAPL for 2 sockets x 2 domains, a cgroup v2 scan with 128 Slurm jobs, /proc/stat.

Builds a sysfs and a procfs tree shaped like a busy two-socket Slurm node and runs the exporter's own
host code on it (HostPoller with the rapl and cgroups collectors, as App builds it for
--job-discovery slurm), then measures, over --polls polls:

  CPU          time.process_time() around HostPoller.poll() + HostPoller.snapshot() (what the poller
               thread does for the host each poll), summed and divided by the number of polls; as a share of
               one core at a 1 s --poll-interval, the issue's bound being < 1 %.
  wall         time.perf_counter() around the same, median and p99.
  collectors   the rapl and cgroups collectors' own durations (the ..._collector_duration_seconds values).

The tree: /sys/class/powercap with intel-rapl:0 and :1 (package), their dram and core subzones, psys
and an intel-rapl-mmio zone (the collector reads the four package/dram counters); /sys/fs/cgroup
(cgroup v2) with init.scope, --services system services, a user session, and
system.slice/slurmstepd.scope/job_<id>/{step_batch,step_extern,step_0}/... for --jobs jobs, every
cgroup holding the ~60 interface files a 6.x kernel shows (the scan lists them all); /proc/stat with
one line per CPU for --cpus CPUs. Between polls (not timed) every job's usage_usec, the node's CPU
time and every energy counter move, so each poll books a split of 4 domains among all the jobs.

The tree lives on tmpfs (/dev/shm) when there is one. Real sysfs, cgroupfs and procfs generate their
files on read: reading /proc/stat sums every CPU and interrupt, and reading cpu.stat flushes the
cgroup's per-CPU statistics, costs a fixture cannot show; the script also times those reads on the
kernel files of the machine it runs on (where they exist) to show their order of magnitude.

    .venv/bin/python benchmarks/bench_host.py [--polls 2000] [--jobs 128] [--quick] [--markdown-out PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(Path(__file__).resolve().parent)]   # wattprint; machinefacts beside this script

from machinefacts import cpu_model  # noqa: E402

from wattprint.exporter.host.accounting import HostPoller  # noqa: E402
from wattprint.exporter.host.cgroups import CgroupCollector  # noqa: E402
from wattprint.exporter.host.procstat import read_small  # noqa: E402
from wattprint.exporter.host.rapl import RaplCollector  # noqa: E402

TARGET = 0.01  # of one core at a 1 s poll interval
HZ = 100
RANGE_UJ = 262_143_328_850
# The interface files of a cgroup v2 directory with the cpu, cpuset, io, memory and pids controllers on (6.x).
CGROUP_FILES = (
    "cgroup.controllers cgroup.events cgroup.freeze cgroup.kill cgroup.max.depth cgroup.max.descendants "
    "cgroup.pressure cgroup.procs cgroup.stat cgroup.subtree_control cgroup.threads cgroup.type cpu.idle cpu.max "
    "cpu.max.burst cpu.pressure cpu.stat cpu.stat.local cpu.uclamp.max cpu.uclamp.min cpu.weight cpu.weight.nice "
    "cpuset.cpus cpuset.cpus.effective cpuset.cpus.exclusive cpuset.cpus.exclusive.effective cpuset.cpus.partition "
    "cpuset.mems cpuset.mems.effective io.bfq.weight io.latency io.max io.pressure io.prio.class io.stat io.weight "
    "memory.current memory.events memory.events.local memory.high memory.low memory.max memory.min "
    "memory.numa_stat memory.oom.group memory.peak memory.pressure memory.reclaim memory.stat memory.swap.current "
    "memory.swap.events memory.swap.high memory.swap.max memory.swap.peak memory.zswap.current memory.zswap.max "
    "memory.zswap.writeback pids.current pids.events pids.max pids.peak"
).split()


def machine() -> str:
    model = cpu_model()
    return f"{os.cpu_count()} CPU cores ({model}), Linux {platform.release()}, Python {platform.python_version()}"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q / 100.0 * len(s)) - 1)]


class Node:
    """The fixture tree, and the counters moved between polls."""

    def __init__(self, root: Path, jobs: int, services: int, cpus: int) -> None:
        self.sysfs, self.procfs = root / "sys", root / "proc"
        self.cg = self.sysfs / "fs" / "cgroup"
        self.cpus = cpus
        self.ticks = 10_000_000
        self.energy: dict[Path, int] = {}
        self.usage: dict[Path, int] = {}
        powercap = self.sysfs / "class" / "powercap"
        zones = [("intel-rapl", None), ("intel-rapl:0", "package-0"), ("intel-rapl:0:0", "dram"),
                 ("intel-rapl:0:1", "core"), ("intel-rapl:1", "package-1"), ("intel-rapl:1:0", "dram"),
                 ("intel-rapl:1:1", "core"), ("intel-rapl:2", "psys"), ("intel-rapl-mmio:0", "package-0")]
        for entry, name in zones:
            d = powercap / entry
            d.mkdir(parents=True)
            if name is None:
                continue
            for f, v in (("name", name), ("max_energy_range_uj", RANGE_UJ), ("enabled", 1),
                         ("constraint_0_name", "long_term"), ("constraint_0_power_limit_uw", 350_000_000),
                         ("constraint_0_time_window_us", 999_424), ("constraint_0_max_power_uw", 350_000_000)):
                (d / f).write_text(f"{v}\n")
            self.energy[d / "energy_uj"] = 1_000_000_000
            (d / "energy_uj").write_text("1000000000\n")
        self.cgroup(self.cg)
        (self.cg / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
        self.cgroup(self.cg / "init.scope")
        for i in range(services):
            self.cgroup(self.cg / "system.slice" / f"service-{i:02d}.service")
        for rel in ("user.slice/user-0.slice/session-1.scope", "user.slice/user-0.slice/user@0.service/app.slice",
                    "user.slice/user-0.slice/user@0.service/init.scope"):
            self.cgroup(self.cg / rel)
        scope = self.cg / "system.slice" / "slurmstepd.scope"
        self.cgroup(scope / "system")
        for j in range(jobs):
            job = scope / f"job_{1_000_000 + j}"
            self.usage[job / "cpu.stat"] = 0
            self.cgroup(job)
            for step in ("step_batch", "step_extern", "step_0"):
                self.cgroup(job / step / "slurm")
                self.cgroup(job / step / "user" / "task_0")
        self.procfs.mkdir(parents=True)
        cpuinfo = [f"processor\t: {c}\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nphysical id\t: {c % 2}\n"
                   for c in range(cpus)]
        (self.procfs / "cpuinfo").write_text("\n".join(cpuinfo))
        (self.procfs / "sys" / "kernel" / "random").mkdir(parents=True)
        (self.procfs / "sys" / "kernel" / "random" / "boot_id").write_text("6f0e9a2c-3b1d-4e5f-8a7b-9c0d1e2f3a4b\n")
        self.move(0)

    def cgroup(self, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        for f in CGROUP_FILES:
            if f != "cpu.stat":
                (d / f).touch()
        self.write_usage(d / "cpu.stat", 0)

    @staticmethod
    def write_usage(path: Path, usec: int) -> None:
        path.write_text(f"usage_usec {usec}\nuser_usec {usec}\nsystem_usec 0\ncore_sched.force_idle_usec 0\n"
                        "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n")

    def move(self, step: int) -> None:
        """One second of a busy node: every job used a bit, every counter ran on."""
        self.ticks += self.cpus * HZ
        per_cpu = " ".join(str(self.ticks // self.cpus // 8) for _ in range(8))
        lines = [f"cpu  {' '.join(str(self.ticks // 8) for _ in range(8))} 0 0"]
        lines += [f"cpu{c} {per_cpu} 0 0" for c in range(self.cpus)]
        lines.append("intr " + " ".join(str(step + i) for i in range(512)))
        lines += ["ctxt 123456789", "btime 1700000000", "processes 424242", "procs_running 57", "procs_blocked 0"]
        (self.procfs / "stat").write_text("\n".join(lines) + "\n")
        for path in self.energy:
            self.energy[path] = (self.energy[path] + 150_000_000 + step % 7) % RANGE_UJ
            path.write_text(f"{self.energy[path]}\n")
        for i, path in enumerate(self.usage):
            self.usage[path] += 200_000 + 1_000 * (i % 50)
            self.write_usage(path, self.usage[path])


def kernel_reads(reps: int = 2000) -> list[tuple[str, float]]:
    """µs per read of the real kernel files this machine has (the fixture cannot show their cost)."""
    out = []
    candidates = [("/proc/stat (first 1 KiB)", "/proc/stat", 1024)]
    for cg in ("/sys/fs/cgroup/cpu.stat", "/sys/fs/cgroup/unified/cpu.stat"):
        if os.path.exists(cg):
            candidates.append((f"{cg} (cgroup v2 root)", cg, 512))
            break
    rapl = "/sys/class/powercap/intel-rapl:0/energy_uj"
    if os.path.exists(rapl):
        candidates.append((rapl, rapl, 4096))
    for label, path, limit in candidates:
        try:
            read_small(path, limit)
        except OSError as exc:
            out.append((f"{label}: unreadable ({exc.strerror})", float("nan")))
            continue
        t0 = time.perf_counter()
        for _ in range(reps):
            read_small(path, limit)
        out.append((label, (time.perf_counter() - t0) / reps * 1e6))
    return out


def run(polls: int, jobs: int, services: int, cpus: int) -> dict[str, float | str]:
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="wattprint-bench-host-", dir=shm) as tmp:
        node = Node(Path(tmp), jobs, services, cpus)
        dirs = sum(1 for _ in node.cg.rglob("*") if _.is_dir()) + 1
        rapl = RaplCollector(str(node.sysfs))
        host = HostPoller(rapl, CgroupCollector(str(node.sysfs), str(node.procfs), "slurm", hz=HZ),
                          str(node.procfs))
        host.poll(0.0)  # discovery and baselines: a one-off, not the steady state
        cpu: list[float] = []
        wall: list[float] = []
        rapl_s: list[float] = []
        cg_s: list[float] = []
        for i in range(1, polls + 1):
            node.move(i)
            c0, w0 = time.process_time(), time.perf_counter()
            collectors = host.poll(float(i), i)
            snap = host.snapshot()
            w1, c1 = time.perf_counter(), time.process_time()
            cpu.append(c1 - c0)
            wall.append(w1 - w0)
            timings = {name: secs for name, _, secs in collectors}
            rapl_s.append(timings["rapl"])
            cg_s.append(timings["cgroups"])
        assert snap.rapl_up and snap.cpu_times_ok and len(snap.jobs) == jobs, "the fixture poll did not work"
        assert all(d.idle_uj + sum(uj for _, uj in d.jobs) == d.energy_uj for d in snap.domains)
        assert all(len(d.jobs) == jobs and d.energy_uj > 0 for d in snap.domains)
    cpu_mean = sum(cpu) / len(cpu)
    return {
        "fs": "tmpfs (/dev/shm)" if shm else "the temporary directory's filesystem",
        "dirs": dirs, "polls": polls, "jobs": jobs, "services": services, "cpus": cpus,
        "cpu_ms": cpu_mean * 1e3, "core_pct": cpu_mean / 1.0 * 100.0,
        "wall_median_ms": statistics.median(wall) * 1e3, "wall_p99_ms": pct(wall, 99) * 1e3,
        "rapl_ms": statistics.median(rapl_s) * 1e3, "cgroups_ms": statistics.median(cg_s) * 1e3,
    }


def markdown(r: dict[str, float | str], kernel: list[tuple[str, float]]) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    met = float(r["core_pct"]) < TARGET * 100
    out = [
        f"Machine: {machine()}. Run: {now}. Tree on {r['fs']}: 2 sockets (package + DRAM read; core, psys and mmio "
        f"zones present), {r['dirs']} cgroup v2 directories ({r['jobs']} Slurm jobs with 3 steps each, "
        f"{r['services']} services, a user session), /proc/stat for {r['cpus']} CPUs; every job's CPU time and every "
        "counter move between polls, so each poll splits 4 domains among all the jobs.",
        "",
        "| machine | polls | CPU ms per poll | % of a core at 1 s polling | wall ms per poll (median / p99) "
        "| rapl / cgroups collector (median ms) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {platform.node() or 'this machine'} ({os.cpu_count()} cores) | {r['polls']} | {float(r['cpu_ms']):.3f} | "
        f"{float(r['core_pct']):.3f} % ({'< 1 %: met' if met else '≥ 1 %: MISSED'}) | "
        f"{float(r['wall_median_ms']):.3f} / {float(r['wall_p99_ms']):.3f} | "
        f"{float(r['rapl_ms']):.3f} / {float(r['cgroups_ms']):.3f} |",
    ]
    if kernel:
        out += ["", "Real kernel files on this machine (µs per read, mean; the fixture's reads are plain tmpfs reads):",
                "", "| file | µs per read |", "|---|---:|"]
        out += [f"| {label} | {us:.2f} |" for label, us in kernel]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    p.add_argument("--polls", type=int, default=2000, help="measured polls (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=128, help="Slurm job cgroups (default: %(default)s)")
    p.add_argument("--services", type=int, default=60, help="system.slice services (default: %(default)s)")
    p.add_argument("--cpus", type=int, default=112, help="CPUs in /proc/stat (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="20 polls, for the test suite")
    p.add_argument("--markdown-out", metavar="PATH", help="also write the Markdown table to PATH")
    args = p.parse_args(argv)
    r = run(20 if args.quick else args.polls, args.jobs, args.services, args.cpus)
    text = markdown(r, kernel_reads(50 if args.quick else 2000))
    print(text, end="")
    if args.markdown_out:
        Path(args.markdown_out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
