"""Wire config -> backend, discovery, poller, registry and HTTP server; run until signalled."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector

from ..common.logs import kv
from ..common.redact import redact_text
from ..common.web import CachedRenderer
from .backends.base import GpuBackend
from .collectors import WattprintCollector
from .config import Config
from .host.accounting import HostPoller
from .jobs.base import JobDiscovery, NoDiscovery
from .poller import Poller

if TYPE_CHECKING:
    from ..common.web import MetricsServer
    from .node.accounting import NodePowerPoller

log = logging.getLogger("wattprint.app")


class StartupError(Exception):
    """A fault the operator must fix before the exporter can run (exit status 2)."""

    def __init__(self, message: str) -> None:
        # printed as is by main(), not through the log formatter: URLs lose their credentials here
        super().__init__(redact_text(message))


def build_backend(cfg: Config) -> GpuBackend:
    if cfg.backend == "nvml":
        from .backends.nvml import NvmlBackend

        return NvmlBackend()
    if cfg.backend == "amdsmi":
        from .backends.amdsmi import AmdSmiBackend

        return AmdSmiBackend(sysfs=cfg.sysfs)
    if cfg.backend == "dcgm":
        from .backends.dcgm import DcgmBackend

        return DcgmBackend(cfg.dcgm_url, timeout=cfg.dcgm_timeout, retries=cfg.dcgm_retries,
                           username=cfg.dcgm_username, password_file=cfg.dcgm_password_file,
                           password=os.environ.get("WATTPRINT_DCGM_PASSWORD") or None)
    from .backends.replay import ReplayBackend

    return ReplayBackend(cfg.replay_trace, gpus=cfg.replay_gpus, epoch=cfg.replay_epoch, hostname=cfg.hostname,
                         fail_file=cfg.replay_fail_file, mig=cfg.replay_mig)


def build_discovery(cfg: Config) -> JobDiscovery:
    if cfg.job_discovery == "slurm":
        from .jobs.slurm import SlurmDiscovery

        return SlurmDiscovery(cfg.procfs)
    if cfg.job_discovery == "kubernetes":
        from .jobs.kubernetes import KubernetesDiscovery

        # The allocations of the backend's vendor's device plugin: AMD's with amdsmi, NVIDIA's with the others.
        return KubernetesDiscovery(cfg.procfs, cfg.kubelet_podresources_socket, cfg.kubelet_pod_logs_dir,
                                   vendor="amd" if cfg.backend == "amdsmi" else "nvidia")
    if cfg.job_discovery == "mapping-dir":
        from .jobs.mapping_dir import MappingDirDiscovery

        assert cfg.mapping_dir is not None
        return MappingDirDiscovery(cfg.mapping_dir)
    return NoDiscovery()


def build_host(cfg: Config) -> HostPoller | None:
    """The rapl and cgroups collectors, or None with --no-collector.rapl."""
    if not cfg.collector_rapl:
        return None
    from .host.cgroups import CgroupCollector
    from .host.rapl import RaplCollector

    # Without job discovery there are no jobs to split among: no cgroup scan, every joule is host idle.
    cgroups = None if cfg.job_discovery == "none" else CgroupCollector(cfg.sysfs, cfg.procfs, cfg.job_discovery)
    return HostPoller(RaplCollector(cfg.sysfs), cgroups, cfg.procfs, cfg.job_retention, hostname=cfg.hostname)


def build_node_power(cfg: Config) -> NodePowerPoller | None:
    """The node-power collector (--node-power), or None: a poller of its own, apart from the GPU poll."""
    if cfg.node_power == "none":
        return None
    from .node.accounting import NodePowerPoller
    from .node.redfish import RedfishSource
    from .node.redfish_http import RedfishHttp, password_from_env

    assert cfg.redfish_url is not None
    http = RedfishHttp(cfg.redfish_url, timeout=cfg.node_power_timeout, user=cfg.redfish_user,
                       password_file=cfg.redfish_password_file, password=password_from_env(),
                       ca_file=cfg.redfish_ca_file)
    return NodePowerPoller(RedfishSource(http, chassis=cfg.redfish_chassis), interval=cfg.node_power_interval,
                           max_gap=cfg.node_power_max_gap, hostname=cfg.hostname)


class App:
    def __init__(self, cfg: Config, backend: GpuBackend | None = None) -> None:
        self.cfg = cfg
        self.backend = backend or build_backend(cfg)
        self.discovery = build_discovery(cfg)
        self.node = build_node_power(cfg)
        # The GPU poller writes the state file, the node's totals included (restored before its first poll).
        self.poller = Poller(self.backend, self.discovery, cfg.poll_interval, cfg.job_retention,
                             state_file=cfg.state_file, state_interval=cfg.state_interval, host=build_host(cfg),
                             held_idle_utilization=cfg.held_idle_utilization,
                             mig_idle_floor_watts=cfg.mig_idle_floor_watts, node=self.node)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            WattprintCollector(lambda: self.poller.snapshot, cfg.hostname, cfg.labels, self.backend.name,
                               more_collectors=self._node_collectors)
        )
        if self.node is not None:
            from .node.collector import NodePowerCollector

            node = self.node
            self.registry.register(NodePowerCollector(lambda: node.snapshot, cfg.hostname, cfg.labels))
        ProcessCollector(registry=self.registry)
        self.renderer = CachedRenderer(self.registry, lambda: self.poller.snapshot.generation)
        self.server: MetricsServer | None = None
        self._stop = threading.Event()

    def _node_collectors(self) -> tuple[tuple[str, bool, float], ...]:
        """The node-power collector's last poll, for wattprint_exporter_collector_success (none before its first)."""
        if self.node is None or self.node.snapshot.polls == 0:
            return ()
        from .node.accounting import COLLECTOR

        snap = self.node.snapshot
        return ((COLLECTOR, snap.up, snap.duration_seconds),)

    def start(self) -> None:
        from ..common.web import MetricsServer, parse_listen_address
        from ..common.webconfig import WebConfigError, load_web_config
        from .backends.base import BackendUnavailable

        try:
            address = parse_listen_address(self.cfg.listen_address)
        except ValueError as exc:
            raise StartupError(f"--web.listen-address: {exc}") from None
        web_config = None
        if self.cfg.web_config_file:
            try:
                web_config = load_web_config(self.cfg.web_config_file)
            except WebConfigError as exc:
                raise StartupError(f"--web.config.file: {exc}") from None
        try:
            self.backend.open()
        except BackendUnavailable as exc:
            raise StartupError(f"--backend {self.backend.name}: {exc}") from None
        self._open_node_power()
        self.poller.poll_once()  # the first scrape already has data
        try:
            self.server = MetricsServer(address, self.renderer, web_config,
                                        max_connections=self.cfg.web_max_connections)
        except OSError as exc:
            raise StartupError(
                f"--web.listen-address {self.cfg.listen_address}: cannot listen ({exc.strerror}); "
                "is another exporter on that port?"
            ) from None
        self.registry.register(self.server.collector())
        self.server.start()
        self.poller.start()
        if self.node is not None:
            self.node.start()   # its first read runs on its own thread: a slow BMC never delays the GPUs
        log.info("listening", extra=kv(
            address=f"{address[0]}:{self.server.port}", tls=bool(web_config and web_config.ssl_context()),
            backend=self.backend.name, discovery=self.discovery.name, poll_interval=f"{self.cfg.poll_interval}s",
        ))

    def _open_node_power(self) -> None:
        """The node-power configuration is checked at start (URL, password and CA files); the BMC is not asked."""
        if self.node is None:
            return
        from .node.source import NodePowerUnavailable

        try:
            self.node.source.open()
        except NodePowerUnavailable as exc:
            raise StartupError(f"--node-power {self.cfg.node_power}: {exc}") from None

    def handle_signals(self) -> None:
        """SIGTERM and SIGINT stop the exporter cleanly from here on. Installed before start(): the health endpoint
        answers as soon as the server starts, and a signal sent on that cue must not find Python's default
        SIGINT handler (a KeyboardInterrupt traceback) still in place."""
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("stopping", extra=kv(signal=signal.Signals(signum).name))
            self._stop.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def run_until_signalled(self) -> None:
        self._stop.wait()
        self.shutdown()

    def shutdown(self) -> None:
        if self.server is not None:
            self.server.shutdown()
        self.poller.stop()
        if self.node is not None:
            self.node.stop()   # before the save, so that its last poll is in the file (a read still in flight is not)
        self.poller.save_state()  # the totals of the last poll, for the next process
        self.backend.close()
        if self.node is not None:
            self.node.source.close()
