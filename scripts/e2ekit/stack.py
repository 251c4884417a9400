"""The live stack: exporters, serve-intensity, Prometheus (and the BMCs); the run over the window."""


from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.redfishkit import Bmc

from .bmc import CHASSIS, BmcLoad, mockup, sushy_static
from .hosts import HostLoad
from .pages import Capture, Reference, page_conservation, page_mig, series_key
from .plan import (
    HELD_IDLE_ALERT,
    METRICS,
    NODE_ENERGY,
    POLLS,
    REPO,
    RULE_TIME_SCALE,
    STEP,
    Node,
    Plan,
    SeriesKey,
    StackError,
    Window,
    config_yaml,
    iso,
)
from .procs import (
    AlertWatch,
    Proc,
    StaticPage,
    command,
    free_port,
    idle_trace,
    ksm_page,
    replay_uuids,
    scaled_rules,
    wait_ready,
)


class Stack:
    """Exporters, serve-intensity and Prometheus on free loopback ports under `work`; close() stops them."""

    def __init__(self, plan: Plan, work: Path, *, seconds: int, scrape_interval: float = 1.0, step: int = STEP,
                 log: Any = print) -> None:
        self.plan = plan
        self.work = work
        self.seconds = seconds
        self.scrape = scrape_interval
        self.step = step
        self.log = log
        self.procs: list[Proc] = []
        self.exporters: dict[str, str] = {}  # instance -> node
        self.prometheus_url = ""
        self.window: Window | None = None
        self._next_note = 0.0
        self.hosts: HostLoad | None = None
        self._contexts = contextlib.ExitStack()   # the kubelet's gRPC server, kube-state-metrics' page
        self.alerts: AlertWatch | None = None
        self.kube_started = 0.0
        self.ksm = ""                              # kube-state-metrics' instance, when the plan has pods
        self.bmc_load: BmcLoad | None = None       # the BMC nodes' Redfish readings, kept to their wall power

    # lifecycle
    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:
            proc = Proc(name, subprocess.Popen(argv, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT), log)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        if self.bmc_load is not None:
            self.bmc_load.__exit__(None, None, None)
            self.bmc_load = None
        if self.alerts is not None:
            self.alerts.stop()
            self.alerts = None
        if self.hosts is not None:
            self.hosts.__exit__(None, None, None)
            self.hosts = None
        for p in self.procs:
            if p.proc.poll() is None:
                p.proc.terminate()
        for p in self.procs:
            try:
                p.proc.wait(10)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(10)
        self.procs.clear()
        self._contexts.close()

    def log_tails(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    def write_mapping(self, node: str, phase: str) -> None:
        if self.plan.node(node).kind == "kube":   # the kubelet says which pod holds which device
            return
        d = self.work / "jobs" / node
        d.mkdir(parents=True, exist_ok=True)
        mapping = self.plan.mapping(node, phase)
        slots = {str(g) for g in range(self.plan.node(node).gpus)} | {
            g for j in self.plan.jobs if j.node == node for g in j.gpus}
        for g in sorted(slots):
            path = d / g
            ids = mapping.get(g, [])
            if ids:
                tmp = d / f".{g}.tmp"   # dot files are not GPU indexes; renamed into place atomically, as the
                tmp.write_text("\n".join(ids) + "\n")  # Slurm prolog/epilog do
                os.replace(tmp, path)
            elif path.exists():
                path.unlink()

    def start(self) -> None:
        prometheus = shutil.which("prometheus")
        if not prometheus:
            raise StackError("prometheus not found on PATH: run `make e2e` as root (it installs Debian's "
                             "prometheus), or apt-get install --no-install-recommends prometheus")
        (self.work / "wattprint.yaml").write_text(config_yaml(self.plan))
        retention = str(max(300, 3 * self.seconds + 600))  # a finished job's counter outlives the window
        ready: list[tuple[Proc, str]] = []
        rule_files = scaled_rules(self.work / "rules")
        self.hosts = HostLoad(self.plan, self.work / "hosts").__enter__()
        node_power = self._bmcs()
        for node in self.plan.nodes:
            self.write_mapping(node.name, "before")
            port = free_port()
            if node.kind == "kube":
                discovery = self._kubelet(node)
                self.kube_started = time.time()
            else:
                discovery = ["--job-discovery", "mapping-dir", "--mapping-dir", str(self.work / "jobs" / node.name)]
                if node.kind == "mig":
                    discovery += ["--replay-mig", ",".join(node.mig)]
            p = self._spawn(f"exporter-{node.name}", [
                *command("wattprint-exporter"), "--backend", "replay", "--replay-gpus", str(node.gpus),
                "--replay-epoch", str(node.epoch), *discovery, "--label", f"cluster={node.cluster}",
                "--path.sysfs", str(self.hosts.sysfs(node.name)), "--path.procfs", str(self.hosts.procfs(node.name)),
                *node_power.get(node.name, ()),
                "--hostname", node.name, "--job-retention", retention, "--log.level", "warning",
                "--web.listen-address", f"127.0.0.1:{port}"])
            self.exporters[f"127.0.0.1:{port}"] = node.name
            ready.append((p, f"http://127.0.0.1:{port}/-/healthy"))
        scrape_configs: list[dict[str, Any]] = []
        if self.plan.pods:
            self.ksm = self._contexts.enter_context(contextlib.closing(StaticPage(ksm_page(self.plan)))).address
            scrape_configs.append({"job_name": "kube-state-metrics", "static_configs": [{"targets": [self.ksm]}]})
        port = free_port()
        intensity = f"127.0.0.1:{port}"
        p = self._spawn("serve-intensity", [
            *command("wattprint"), "serve-intensity", "--source", "annual", "--config",
            str(self.work / "wattprint.yaml"), "--refresh-interval", "5", "--log.level", "warning",
            "--web.listen-address", intensity])
        ready.append((p, f"http://{intensity}/metrics"))
        for proc, url in ready:
            wait_ready(proc, url)

        scrape = f"{self.scrape:g}s"
        config = {
            # rules every second: the scaled rules' windows are a minute
            "global": {"scrape_interval": scrape, "scrape_timeout": scrape, "evaluation_interval": "1s"},
            "rule_files": [str(f) for f in rule_files],
            "scrape_configs": [
                {"job_name": "wattprint-exporter", "static_configs": [{"targets": sorted(self.exporters)}]},
                {"job_name": "wattprint-intensity", "static_configs": [{"targets": [intensity]}]},
                *scrape_configs,
            ],
        }
        (self.work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        p = self._spawn("prometheus", [
            prometheus, f"--config.file={self.work / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.work / 'prometheus-data'}", f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d"])
        self.prometheus_url = f"http://127.0.0.1:{port}"
        wait_ready(p, self.prometheus_url + "/-/ready")
        self.alerts = AlertWatch(self.prometheus_url)
        self.alerts.start()

        targets = len(self.exporters) + 1 + len(scrape_configs)
        gpus = sum(n.gpus for n in self.plan.nodes)
        bmcs = len(node_power)
        deadline = time.monotonic() + 60
        while True:
            up = self.instant("sum(up)", time.time())
            seen = self.instant(f"count({METRICS['gpu']})", time.time())
            nodes = self.instant(f"count({NODE_ENERGY})", time.time()) if bmcs else [{"value": [0, "0"]}]
            if up and seen and nodes and float(up[0]["value"][1]) == targets and \
                    float(seen[0]["value"][1]) == gpus and float(nodes[0]["value"][1]) == bmcs:
                break
            if time.monotonic() > deadline:
                raise StackError(f"Prometheus did not see {targets} targets up, {gpus} GPUs and {bmcs} BMC nodes "
                                 "within 60 s:\n" + self.log_tails())
            time.sleep(0.2)

    def _bmcs(self) -> dict[str, list[str]]:
        """The BMC nodes' Redfish servers (sushy-static, one per node, each over its own mockup tree) and the thread
        keeping their readings to the nodes' wall power (bmc.py); returns each BMC node's exporter flags."""
        nodes = [n for n in self.plan.nodes if n.bmc]
        if not nodes:
            return {}
        exe = sushy_static()
        flags: dict[str, list[str]] = {}
        ready: list[tuple[Proc, str]] = []
        servers = {}
        for node in nodes:
            root = mockup(node, self.work / "bmc" / node.name)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            p = self._spawn(f"bmc-{node.name}", [exe, "-m", str(root), "-i", "127.0.0.1", "-p", str(port)])
            ready.append((p, url + "/redfish/v1/Chassis"))
            servers[node.name] = (node, Bmc(root, url, p.log))
            # the BMC polled every second, as the GPUs: the residual compares readings of the same moments
            flags[node.name] = ["--node-power", "redfish", "--redfish-url", url + "/",
                                "--redfish-chassis", CHASSIS[node.bmc], "--node-power-interval", "1"]
        for proc, url in ready:
            wait_ready(proc, url)
        assert self.hosts is not None
        self.bmc_load = BmcLoad(self.hosts, servers).__enter__()
        return flags

    def _kubelet(self, node: Node) -> list[str]:
        """The Kubernetes node's discovery: a real gRPC server of the kubelet's PodResources v1 API on a unix socket
        (tests/kubelet_podresources.py) allocating the plan's pods their devices, the kubelet's pod log directory
        (<namespace>_<pod>_<uid>), and the idle trace."""
        from tests.kubelet_podresources import Kubelet, pod, serving  # grpc: imported only with a Kubernetes node

        trace = idle_trace(self.work / "idle_trace.csv")
        uuids = replay_uuids(node, trace)
        kubelet = Kubelet()
        logs = self.work / "pod-logs" / node.name
        logs.mkdir(parents=True, exist_ok=True)
        for j in self.plan.pods:
            if j.node != node.name:
                continue
            assert j.pod is not None
            gpu, _, replica = j.device.partition("::")
            device = uuids[int(gpu)] + (f"::{replica}" if replica else "")
            kubelet.pods.append(pod(*j.pod, ("main", "nvidia.com/gpu", [device])))
            (logs / f"{j.pod[0]}_{j.pod[1]}_{j.job_id}").mkdir(exist_ok=True)
        _, socket_path = self._contexts.enter_context(serving(kubelet))
        return ["--replay-trace", str(trace), "--job-discovery", "kubernetes",
                "--kubelet-podresources-socket", socket_path, "--kubelet-pod-logs-dir", str(logs)]

    # Prometheus
    def instant(self, expr: str, at: float) -> list[dict[str, Any]]:
        r = requests.post(self.prometheus_url + "/api/v1/query", data={"query": expr, "time": repr(at)}, timeout=30)
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise StackError(f"Prometheus query {expr!r} failed: HTTP {r.status_code} {body}")
        return list(body["data"]["result"])

    # the run
    def run(self) -> Reference:
        """Choose [S, E], switch jobs mid-way, read the exporters throughout; return their counters at S and E."""
        now = time.time()
        s = math.ceil((now + 2 * self.scrape + 1) / self.step) * self.step
        e = s + math.ceil(self.seconds / self.step) * self.step
        w = Window(s, e, s + 0.4 * (e - s), s + 0.5 * (e - s))
        self.window = w
        self._next_note = s + 30.0
        self.log(f"window: {iso(s)} .. {iso(e)} ({e - s} s); jobs change on one GPU at +{w.switch_end - s:.0f} s "
                 f"(one ends) and +{w.switch_start - s:.0f} s (another starts)")
        with Capture(self.exporters) as cap:
            self._sleep_until(w.switch_end, s, e)
            for node in self.plan.nodes:
                self.write_mapping(node.name, "between")
            assert self.hosts is not None
            self.hosts.set_phase("between")
            self._sleep_until(w.switch_start, s, e)
            for node in self.plan.nodes:
                self.write_mapping(node.name, "after")
            self.hosts.set_phase("after")
            self._sleep_until(e + self.scrape + 1.0, s, e)  # Prometheus' last scrape before E has landed
        if cap.errors:
            self.log(f"  ({cap.errors} of {cap.reads + cap.errors} direct reads of /metrics failed)")
        ref = self._reference(cap, w)
        ref.rapl_wraps = self.hosts.wraps
        self._node_reference(ref, w)
        ref.kube_started = self.kube_started
        return ref

    def _node_reference(self, ref: Reference, w: Window) -> None:
        if self.bmc_load is None:
            return
        at = [{r["metric"].get("hostname", ""): float(r["value"][1])
               for r in self.instant(f'{NODE_ENERGY}{{job="wattprint-exporter"}}', t)} for t in (w.start, w.end)]
        for name, meter in self.bmc_load.meters.items():
            if name not in at[0] or name not in at[1]:
                raise StackError(f"Prometheus has no {NODE_ENERGY} of {name} at {iso(w.start)} and {iso(w.end)}")
            ref.node_at[name] = (at[0][name], at[1][name])
            ref.window_s = w.end - w.start
            ref.bmc_overhead_j[name] = meter.overhead_at(w.end) - meter.overhead_at(w.start)

    def held_idle_alerts(self) -> list[dict[str, Any]]:
        """The WattprintJobHoldingIdleGpus alerts seen firing (Prometheus' alerts are read in the background from
        the start; the pipeline runs meanwhile). Waits until every pod holding a whole GPU has one, or until three
        times what the scaled rules need (the GPU-seconds threshold, then `for:`) has passed since its exporter
        started. Not firing by then fails the check (exit 1)."""
        held = {j.job_id for j in self.plan.pods if "::" not in j.device}
        if not held or self.alerts is None:
            return []
        deadline = self.kube_started + 3 * (1800 + 900) / RULE_TIME_SCALE + 30
        said = False
        while not held <= {a["labels"].get("job_id") for a in self.alerts.firing(HELD_IDLE_ALERT)}:
            if time.time() > deadline:
                break
            if not said:
                self.log(f"  waiting for {HELD_IDLE_ALERT} to fire for the idle-held pod")
                said = True
            self._sleep_until(time.time() + 0.5, 0, 0)
        return self.alerts.firing(HELD_IDLE_ALERT)

    def _sleep_until(self, at: float, s: int, e: int) -> None:
        """Sleep until `at`, saying every 30 s how far the window is, and stop if a process died."""
        while (left := at - time.time()) > 0:
            time.sleep(min(left, 1.0))
            now = time.time()
            if now >= self._next_note and now < e:
                self._next_note = now + 30
                if now > s:
                    self.log(f"  ... {now - s:.0f} s of {e - s} s")
            for p in self.procs:
                if p.proc.poll() is not None:
                    raise StackError(f"{p.name} exited during the run:\n{p.tail()}")

    def _reference(self, cap: Capture, w: Window) -> Reference:
        pages_checked = 0
        conservation: list[str] = []
        mig_pages = 0
        mig_errors: list[str] = []
        for instance, pages in cap.pages.items():
            node = self.exporters[instance]
            for page in pages.values():
                pages_checked += 1
                conservation.extend(page_conservation(node, page))
                if self.plan.node(node).kind == "mig":
                    mig_pages += 1
                    mig_errors.extend(page_mig(self.plan, node, page))
        edge_polls: dict[str, list[int]] = defaultdict(list)
        mismatches: list[str] = []
        notes: list[str] = []
        edges: list[dict[SeriesKey, float]] = []
        names = "|".join([*METRICS.values(), POLLS])
        for at in (w.start, w.end):
            rows = self.instant(f'{{__name__=~"{names}", job="wattprint-exporter"}}', at)
            polls = {r["metric"]["instance"]: int(float(r["value"][1]))
                     for r in rows if r["metric"]["__name__"] == POLLS}
            prom: dict[str, dict[SeriesKey, float]] = defaultdict(dict)
            kinds = {v: k for k, v in METRICS.items()}
            for r in rows:
                name = r["metric"]["__name__"]
                if name in kinds:
                    prom[r["metric"]["instance"]][series_key(kinds[name], r["metric"])] = float(r["value"][1])
            values: dict[SeriesKey, float] = {}
            for instance, node in self.exporters.items():
                if instance not in polls:
                    raise StackError(f"Prometheus has no sample of {node} ({instance}) at {iso(at)}")
                edge_polls[node].append(polls[instance])
                page = cap.pages[instance].get(polls[instance])
                if page is None:  # the direct reads missed that poll: take the values Prometheus scraped
                    notes.append(f"{node}: poll {polls[instance]} (Prometheus' sample at {iso(at)}) was not among "
                                 "the pages read directly; used Prometheus' values for it")
                    values.update(prom[instance])
                    continue
                values.update(page.values)
                for key in sorted(set(page.values) | set(prom[instance])):
                    a, b = page.values.get(key), prom[instance].get(key)
                    if a != b:
                        mismatches.append(f"{node} {key} at {iso(at)}: exporter page {a}, Prometheus {b}")
            edges.append(values)
        intensity = {r["metric"]["zone"]: float(r["value"][1])
                      for r in self.instant("wattprint_grid_intensity_grams_per_kwh", w.end)}
        wall: list[dict[SeriesKey, float]] = []
        for at in (w.start, w.end):
            values = {}
            for pages in cap.pages.values():
                before = [p for p in pages.values() if p.read_at <= at]
                if before:
                    values.update(max(before, key=lambda p: p.read_at).values)
            wall.append(values)
        return Reference(edges[0], edges[1], pages_checked, conservation, mismatches, intensity, wall[0], wall[1],
                         notes, mig_pages=mig_pages, mig_errors=mig_errors,
                         edge_polls={n: (p[0], p[1]) for n, p in edge_polls.items()})
