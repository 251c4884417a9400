"""Flags (and WATTPRINT_* environment defaults) -> a frozen Config.

Every flag can also be set by an environment variable named WATTPRINT_ plus
the flag in upper case with dots and dashes as underscores (e.g.
--poll-interval -> WATTPRINT_POLL_INTERVAL); a flag on the command line wins.
Secrets never come from flags: the web-config file holds password hashes, and the dcgm-exporter
password comes from --dcgm-password-file (a path) or $WATTPRINT_DCGM_PASSWORD, which has no flag
(the BMC's: --redfish-password-file or $WATTPRINT_REDFISH_PASSWORD).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from ..common.web import MAX_CONNECTIONS
from . import __version__

# 9100 is node_exporter, 9400 dcgm-exporter, 9102 and 8888 Kepler.
DEFAULT_LISTEN = ":9835"
BACKENDS = ("nvml", "dcgm", "amdsmi", "replay")
DISCOVERIES = ("none", "slurm", "mapping-dir", "kubernetes")
NODE_POWER = ("none", "redfish")
_LABEL_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


@dataclass(frozen=True)
class Config:
    backend: str = "nvml"
    poll_interval: float = 1.0
    listen_address: str = DEFAULT_LISTEN
    web_config_file: str | None = None
    web_max_connections: int = MAX_CONNECTIONS
    dcgm_url: str = "http://localhost:9400/metrics"
    dcgm_timeout: float = 2.0
    dcgm_retries: int = 2
    dcgm_username: str | None = None
    dcgm_password_file: str | None = None
    replay_trace: str | None = None
    replay_gpus: int = 1
    replay_epoch: float | None = None
    replay_fail_file: str | None = None
    replay_mig: tuple[str, ...] = ()
    job_discovery: str = "none"
    mapping_dir: str | None = None
    procfs: str = "/proc"
    kubelet_podresources_socket: str = "/var/lib/kubelet/pod-resources/kubelet.sock"
    kubelet_pod_logs_dir: str = "/var/log/pods"
    sysfs: str = "/sys"
    collector_rapl: bool = True
    labels: tuple[tuple[str, str], ...] = ()
    hostname: str = ""
    job_retention: float = 300.0
    held_idle_utilization: float = 0.05
    mig_idle_floor_watts: float | None = None
    state_file: str | None = None
    state_interval: float = 1.0
    log_level: str = "info"
    log_format: str = "logfmt"
    # node power from the BMC (docs/exporter.md, "Node power (BMC)")
    node_power: str = "none"
    node_power_interval: float = 10.0
    node_power_timeout: float = 5.0
    node_power_max_gap: float = 60.0
    redfish_url: str | None = None
    redfish_user: str | None = None
    redfish_password_file: str | None = None
    redfish_ca_file: str | None = None
    redfish_chassis: str | None = None


def _env(flag: str) -> str | None:
    return os.environ.get("WATTPRINT_" + flag.lstrip("-").upper().replace(".", "_").replace("-", "_"))


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return v


def _ratio(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (0.05 is 5 %), got {text}")
    return v


def _profiles(text: str | tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(text, tuple):
        return text
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return v


def _positive_int(text: str) -> int:
    v = _nonneg_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return v


def _label(text: str) -> tuple[str, str]:
    from .collectors import RESERVED_LABELS

    key, sep, value = text.partition("=")
    if not sep or not _LABEL_KEY.match(key):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY matching [a-zA-Z_][a-zA-Z0-9_]*, got {text!r}")
    if key in RESERVED_LABELS or key.startswith("__"):
        raise argparse.ArgumentTypeError(f"label {key!r} is set by the exporter itself; choose another key")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wattprint-exporter",
        description="Per-node GPU energy exporter for Prometheus: hardware energy counters per GPU, "
        "split exactly among the jobs on each GPU, and the CPU sockets' RAPL energy split among the jobs by CPU time.",
        epilog="Every flag may also be set as WATTPRINT_<FLAG> in the environment "
        "(e.g. WATTPRINT_POLL_INTERVAL=2); WATTPRINT_LABEL takes comma-separated KEY=VALUE pairs.",
    )

    def add(flag: str, **kw: object) -> None:
        env = _env(flag)
        if env is not None:
            kw["default"] = env  # argparse converts and checks string defaults with the flag's type
        p.add_argument(flag, **kw)  # type: ignore[arg-type]

    add("--backend", choices=BACKENDS, default="nvml",
        help="GPU source: nvml (NVIDIA, through NVML), dcgm (a dcgm-exporter page), amdsmi (AMD Instinct, through "
        "ROCm's amdsmi), replay (a recorded trace, no GPU) (default: %(default)s)")
    add("--poll-interval", type=_positive_float, default=1.0, metavar="SECONDS",
        help="how often the background poller reads the GPUs (default: %(default)s)")
    add("--web.listen-address", dest="listen_address", default=DEFAULT_LISTEN, metavar="HOST:PORT",
        help="address to serve /metrics on (default: %(default)s)")
    add("--web.config.file", dest="web_config_file", default=None, metavar="PATH",
        help="exporter-toolkit web config YAML: tls_server_config, basic_auth_users (bcrypt)")
    add("--web.max-connections", dest="web_max_connections", type=_positive_int, default=MAX_CONNECTIONS, metavar="N",
        help="connections kept open at most; when full, a new one replaces the oldest that never completed an "
        "authorised request, else the least recently used idle one (default: %(default)s)")
    add("--dcgm-url", default="http://localhost:9400/metrics", metavar="URL",
        help="dcgm-exporter /metrics URL for --backend dcgm (default: %(default)s)")
    add("--dcgm-timeout", type=_positive_float, default=2.0, metavar="SECONDS",
        help="timeout per dcgm-exporter request (default: %(default)s)")
    add("--dcgm-retries", type=_nonneg_int, default=2, metavar="N",
        help="extra attempts per poll when dcgm-exporter fails (default: %(default)s)")
    add("--dcgm-username", default=None, metavar="USER",
        help="basic-auth user for --dcgm-url (credentials in the URL itself are refused)")
    add("--dcgm-password-file", default=None, metavar="PATH",
        help="file holding the basic-auth password for --dcgm-username, re-read when it changes "
        "(else $WATTPRINT_DCGM_PASSWORD)")
    add("--replay-trace", default=None, metavar="PATH",
        help="trace CSV for --backend replay (default: the shipped real H100 trace)")
    add("--replay-gpus", type=_nonneg_int, default=1, metavar="N", help="virtual GPUs to replay (default: %(default)s)")
    add("--replay-epoch", type=float, default=None, metavar="UNIXTIME",
        help="unix time at which GPU 0 is at the trace's first row (default: start-up); "
        "exporters given the same epoch replay in step")
    add("--replay-mig", type=_profiles, default=(), metavar="PROFILES",
        help="for --backend replay: every virtual GPU in MIG mode with these GPU instances, comma separated, "
        "e.g. 3g.40gb,2g.20gb,1g.10gb (default: no MIG)")
    add("--replay-fail-file", default=None, metavar="PATH",
        help="fault injection for --backend replay: a file listing virtual GPU indices (whitespace or comma "
        "separated), re-read every poll; while listed, every read of that GPU fails as a lost board does")
    add("--job-discovery", choices=DISCOVERIES, default="none",
        help="how jobs on each GPU are found (default: %(default)s)")
    add("--mapping-dir", default=None, metavar="PATH",
        help="for --job-discovery mapping-dir: a directory with one file per GPU index (or <gpu>.<GPU_I_ID>) "
        "listing job ids, as dcgm-exporter's --hpc-job-mapping-dir")
    add("--kubelet-podresources-socket", default="/var/lib/kubelet/pod-resources/kubelet.sock", metavar="PATH",
        help="for --job-discovery kubernetes: the kubelet's PodResources API socket; pods are charged for the GPUs "
        "allocated to them, and found from /proc while it cannot be read; '' uses /proc alone (default: %(default)s)")
    add("--kubelet-pod-logs-dir", default="/var/log/pods", metavar="PATH",
        help="for --job-discovery kubernetes: the kubelet's pod log directory, whose <namespace>_<pod>_<uid> entry "
        "names give the UID of each pod the PodResources API names (default: %(default)s)")
    add("--path.procfs", dest="procfs", default="/proc", metavar="PATH",
        help="procfs mount point, for slurm and kubernetes discovery and the node's CPU time (default: %(default)s)")
    add("--path.sysfs", dest="sysfs", default="/sys", metavar="PATH",
        help="sysfs mount point, for RAPL (class/powercap), job cgroups (fs/cgroup) and, with --backend amdsmi, the "
        "device names AMD's Kubernetes device plugin allocates by (class/kfd, class/drm) (default: %(default)s)")
    add("--collector.rapl", dest="collector_rapl", action=argparse.BooleanOptionalAction, default=True,
        help="host CPU package and DRAM energy from RAPL, split among the jobs by cgroup v2 CPU time "
        "(default: on; WATTPRINT_COLLECTOR_RAPL=false turns it off)")
    p.add_argument("--label", dest="labels", type=_label, action="append", default=None, metavar="KEY=VALUE",
                   help="static label on every GPU and job series, e.g. --label cluster=jz --label region=fr "
                   "(repeatable)")
    add("--hostname", default="", help="value of the hostname label (default: this machine's hostname)")
    add("--job-retention", type=_positive_float, default=300.0, metavar="SECONDS",
        help="keep exporting a finished job's energy counter this long, so its final value is scraped "
        "(default: %(default)s)")
    add("--held-idle-utilization", type=_ratio, default=0.05, metavar="RATIO",
        help="a job's GPU (or MIG instance) counts as held but idle in a poll interval whose utilisation is below "
        "this (0-1), for wattprint_job_held_idle_energy_joules_total (default: %(default)s)")
    add("--mig-idle-floor-watts", type=_positive_float, default=None, metavar="WATTS",
        help="a MIG board's idle floor, shared among its instances by compute slices before the rest is shared "
        "by slices x activity (default: the lowest power the board has shown over a poll interval)")
    add("--state-file", default=None, metavar="PATH",
        help="keep the exported counters across restarts: save them (with the last raw hardware counter) to "
        "this JSON file and restore them at start, booking the energy the GPUs used while the exporter was "
        "down (default: none; counters start from 0 in each process)")
    add("--state-interval", type=_positive_float, default=1.0, metavar="SECONDS",
        help="save the --state-file at most this often, after a poll, and on SIGTERM/SIGINT (default: "
        "%(default)s, i.e. every poll at the default --poll-interval)")
    add("--log.level", dest="log_level", choices=("debug", "info", "warning", "error"), default="info")
    add("--log.format", dest="log_format", choices=("logfmt", "json"), default="logfmt",
        help="log line format on stderr: logfmt (key=value, as go-kit writes it) or json, one object per line "
        "(default: %(default)s)")
    _add_node_power(add)
    p.add_argument("--version", action="version", version=f"wattprint-exporter {__version__}")
    return p


def _add_node_power(add: Callable[..., None]) -> None:
    """The node-power collector's flags (docs/exporter.md, "Node power (BMC)")."""
    add("--node-power", choices=NODE_POWER, default="none",
        help="whole-node power from the BMC: redfish reads its Redfish service (--redfish-url), on a thread and "
        "interval of its own; IPMI BMCs: scrape ipmi_exporter, which the pipeline reads (default: %(default)s)")
    add("--node-power-interval", type=_positive_float, default=10.0, metavar="SECONDS",
        help="how often the BMC is read (default: %(default)s)")
    add("--node-power-timeout", type=_positive_float, default=5.0, metavar="SECONDS",
        help="timeout of each request to the BMC (default: %(default)s)")
    add("--node-power-max-gap", type=_positive_float, default=60.0, metavar="SECONDS",
        help="two power readings further apart than this are not integrated (energy is not invented across an "
        "outage; counted in wattprint_node_power_gaps_total); a BMC energy counter is booked across any gap "
        "(default: %(default)s)")
    add("--redfish-url", default=None, metavar="URL",
        help="the BMC's address for --node-power redfish, e.g. https://bmc.node1.example/ (credentials in the URL "
        "are refused)")
    add("--redfish-user", default=None, metavar="USER", help="basic-auth user of the Redfish service")
    add("--redfish-password-file", default=None, metavar="PATH",
        help="file holding the password of --redfish-user, re-read when it changes (else $WATTPRINT_REDFISH_PASSWORD)")
    add("--redfish-ca-file", default=None, metavar="PATH",
        help="PEM file of the CA (or the self-signed certificate) the BMC's certificate is verified against "
        "(default: the system's CAs; verification cannot be turned off)")
    add("--redfish-chassis", default=None, metavar="ID",
        help="the chassis whose power is the node's, by Id or @odata.id (default: the first top-level chassis "
        "that offers a power or energy reading)")


def parse_config(argv: Sequence[str] | None = None) -> Config:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if isinstance(ns.collector_rapl, str):  # from the environment: argparse converts no default for a switch
        value = ns.collector_rapl.strip().lower()
        if value not in _BOOLEANS:
            parser.error(f"WATTPRINT_COLLECTOR_RAPL: expected true or false, got {ns.collector_rapl!r}")
        ns.collector_rapl = _BOOLEANS[value]
    labels = ns.labels
    if labels is None:
        env = _env("--label")
        try:
            labels = [_label(x.strip()) for x in env.split(",") if x.strip()] if env else []
        except argparse.ArgumentTypeError as exc:
            parser.error(f"WATTPRINT_LABEL: {exc}")
    keys = [k for k, _ in labels]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        parser.error(f"--label: key(s) given more than once: {', '.join(dupes)}")
    if ns.job_discovery == "mapping-dir" and not ns.mapping_dir:
        parser.error("--job-discovery mapping-dir needs --mapping-dir PATH")
    if ns.log_format not in ("logfmt", "json"):  # from the environment: argparse checks no default's choice
        parser.error(f"WATTPRINT_LOG_FORMAT: expected logfmt or json, got {ns.log_format!r}")
    if ns.backend == "replay" and ns.replay_gpus < 1:
        parser.error("--replay-gpus must be at least 1")
    _check_node_power(parser, ns)
    # Every Config field has a flag whose argparse dest is the field's name.
    values = {f.name: getattr(ns, f.name) for f in fields(Config)}
    values.update(labels=tuple(sorted(labels)), hostname=ns.hostname or socket.gethostname())
    return Config(**values)


def _check_node_power(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> None:
    if ns.node_power not in NODE_POWER:   # from the environment: argparse checks no default's choice
        parser.error(f"WATTPRINT_NODE_POWER: expected one of {', '.join(NODE_POWER)}, got {ns.node_power!r}")
    if ns.node_power == "redfish" and not ns.redfish_url:
        parser.error("--node-power redfish needs --redfish-url URL (the BMC's address, e.g. https://bmc.node1.example/)")
    if ns.node_power != "none" and ns.node_power_max_gap < ns.node_power_interval:
        parser.error(f"--node-power-max-gap ({ns.node_power_max_gap:g} s) must be at least --node-power-interval "
                     f"({ns.node_power_interval:g} s), or no interval would ever be integrated")
