"""Golden-file test of a full /metrics page, and promtool check metrics on it.

The page comes from the real collectors on a deterministic replay (fixed wall
clock) with jobs from a mapping directory. Timing values (durations, the last
poll's unix time) are the only ones masked. Rewrite the golden file with
`pytest --update-golden` and review the diff.
"""

from __future__ import annotations

import itertools
import re
import subprocess

from prometheus_client import CollectorRegistry, generate_latest

from tests.conftest import require_tool
from tests.hostfs import HZ, SLURM_JOB, HostTree
from wattprint.exporter.backends.replay import ReplayBackend
from wattprint.exporter.collectors import WattprintCollector
from wattprint.exporter.host.accounting import HostPoller
from wattprint.exporter.host.cgroups import CgroupCollector
from wattprint.exporter.host.rapl import RaplCollector
from wattprint.exporter.jobs.mapping_dir import MappingDirDiscovery
from wattprint.exporter.node import source as node_source
from wattprint.exporter.node.accounting import COLLECTOR as NODE_COLLECTOR
from wattprint.exporter.node.accounting import NodePowerPoller
from wattprint.exporter.node.collector import NodePowerCollector
from wattprint.exporter.poller import Poller

GOLDEN = "tests/golden/metrics.txt"
EPOCH = 1_795_000_000.0
_DYNAMIC = re.compile(
    r"^((?:wattprint_exporter_(?:poll_duration_seconds|collector_duration_seconds)"
    r"|wattprint_exporter_last_successful_poll_timestamp_seconds)(?:\{[^}]*\})?) \S+$",
    re.M,
)


def host_poller(root) -> tuple[HostTree, HostPoller]:
    """Two sockets (package + DRAM) and the cgroups of jobs 1001 and 1002, on a scripted tree."""
    host = HostTree(root)
    host.set_energy("1", "package", host.range_uj - 150_000_000)  # wraps during the run
    for job in (1001, 1002):
        host.cgroup(SLURM_JOB.format(job))
    boottime = itertools.count(100.0, 1.0)
    rapl = RaplCollector(str(host.sysfs), clock=lambda: next(boottime))
    cgroups = CgroupCollector(str(host.sysfs), str(host.procfs), "mapping-dir", hz=HZ)
    return host, HostPoller(rapl, cgroups, str(host.procfs))


def host_interval(host: HostTree) -> None:
    """One second of a 4-CPU node: job 1001 on 2 CPUs, job 1002 on 1; package ~310 W, DRAM ~25 W per socket."""
    host.add_node_usec(4_000_000)
    host.add_usage(SLURM_JOB.format(1001), 2_000_000)
    host.add_usage(SLURM_JOB.format(1002), 1_000_000)
    for socket, package_uj in (("0", 310_000_123), ("1", 290_000_456)):
        host.add_energy(socket, "package", package_uj)
        host.add_energy(socket, "dram", 25_000_001)


class ScriptedBmc:
    """A BMC's power readings, 1 s apart (tests/test_node_redfish.py reads a real Redfish server)."""

    name = "redfish"
    bmc = "bmc.node-a.example"

    def __init__(self) -> None:
        self.t = 0.0

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self) -> node_source.NodeReading:
        self.t += 1.0
        if self.t == 4.0:
            raise node_source.NodePowerError(node_source.TIMEOUT, "scripted timeout")
        return node_source.NodeReading(timestamp=self.t, method=node_source.METHOD_POWER, energy_joules=None,
                                       power_watts=1500.0 + 10.0 * self.t,
                                       reading="Power.PowerControl[0].PowerConsumedWatts",
                                       chassis="/redfish/v1/Chassis/1")


def render_page(mapping_dir) -> str:
    (mapping_dir / "0").write_text("1001\n")
    (mapping_dir / "1").write_text("1002\n1003\n")
    (mapping_dir / "gpu9").write_text("1004\n")  # malformed name: counted, skipped
    host, hp = host_poller(mapping_dir.with_name(mapping_dir.name + "-host"))
    wall = [EPOCH]
    backend = ReplayBackend(gpus=3, epoch=EPOCH, hostname="node-a", wallclock=lambda: wall[0])
    backend.open()
    clock = itertools.count(0.0, 1.0)
    poller = Poller(backend, MappingDirDiscovery(mapping_dir), clock=lambda: next(clock), wallclock=lambda: wall[0],
                    host=hp)
    node = NodePowerPoller(ScriptedBmc())
    for _ in range(8):
        poller.poll_once()
        node.poll_once()
        host_interval(host)
        wall[0] += 1.0
    static = (("cluster", "jz"), ("region", "FR"))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        WattprintCollector(lambda: poller.snapshot, "node-a", static, "replay",
                           more_collectors=lambda: ((NODE_COLLECTOR, node.snapshot.up, 0.0),))
    )
    registry.register(NodePowerCollector(lambda: node.snapshot, "node-a", static))
    return generate_latest(registry).decode()


def _masked(text: str) -> str:
    return _DYNAMIC.sub(r"\1 <dynamic>", text)


def test_metrics_page_matches_golden(tmp_path, request):
    page = _masked(render_page(tmp_path))
    golden = request.config.rootpath / GOLDEN
    if request.config.getoption("--update-golden"):
        golden.write_text(page)
    assert page == golden.read_text(), "metrics page changed: run pytest --update-golden and review the diff"


def test_conservation_on_the_page(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(render_page(tmp_path))}

    def per_gpu(name):
        return {s.labels["gpu"]: s.value for s in fams[name].samples if s.name.endswith("_total")}

    gpu, idle = per_gpu("wattprint_gpu_energy_joules"), per_gpu("wattprint_gpu_idle_energy_joules")
    jobs: dict[str, float] = {}
    for s in fams["wattprint_job_energy_joules"].samples:
        jobs[s.labels["gpu"]] = jobs.get(s.labels["gpu"], 0.0) + s.value
    for g in gpu:
        assert abs(jobs.get(g, 0.0) + idle[g] - gpu[g]) < 1e-6
    assert gpu["0"] > 0 and idle["0"] == 0 and idle["2"] == gpu["2"]

    def per_domain(name):
        out: dict[tuple[str, str], float] = {}
        for s in fams[name].samples:
            if s.name.endswith("_total"):
                key = (s.labels["socket"], s.labels["domain"])
                out[key] = out.get(key, 0.0) + s.value
        return out

    cpu, cpu_idle = per_domain("wattprint_cpu_energy_joules"), per_domain("wattprint_cpu_idle_energy_joules")
    cpu_jobs = per_domain("wattprint_job_cpu_energy_joules")
    assert len(cpu) == 4 and all(v > 0 for v in cpu.values())
    for key in cpu:
        assert abs(cpu_jobs[key] + cpu_idle[key] - cpu[key]) < 1e-6, key


def test_job_gpu_seconds_carry_the_job_energy_labels(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(render_page(tmp_path))}

    def series(name):
        return {tuple(sorted(s.labels.items())): s.value for s in fams[name].samples if s.name.endswith("_total")}

    seconds = series("wattprint_job_gpu_seconds")
    assert set(seconds) == set(series("wattprint_job_energy_joules")) and len(seconds) == 3
    # 8 polls 1 s apart: the first is a baseline, then 7 intervals; the two jobs sharing GPU 1 each hold all 7
    assert set(seconds.values()) == {7.0}


def test_promtool_check_metrics_reports_no_problem(tmp_path):
    promtool = require_tool("promtool")
    page = render_page(tmp_path)
    res = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "" and res.stderr.strip() == "", res.stdout + res.stderr
