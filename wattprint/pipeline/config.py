"""The optional cluster config (YAML): what each cluster is, where its power comes from, how to ingest.

Without a config (``load(None)``) everything has a default and the pipeline still runs: series with no
cluster go to no cluster, prices use the world-average intensity (and reports flag it), PUE is unknown.
Full schema (every key optional; docs/config.md explains each)::

    clusters:
      jean-zay:
        provider: onprem          # onprem | aws | gcp | azure                       (default onprem)
        region: fr-idf            # free text / cloud region id                      (default "")
        zone: FR                  # carbon-intensity zone id, non-empty, compared case-insensitively (fr is FR);
                                  # null/absent: unknown (world average)
        pue: 1.2                  # number >= 1.0; absent: unknown (the caller applies 1.0 and flags it)
        nodes: ["jz-gpu*", "r1i*"]  # host-name globs (case-insensitive; also tried on the short name)
        hardware:
          "NVIDIA H100 80GB HBM3": {tdp_watts: 700, embodied_kgco2eq: 150}   # tdp > 0, embodied >= 0
    default_cluster: jean-zay     # for series with no cluster label and no node match; must be under clusters
                                  # when clusters is not empty
    intensity:
      nearest_hour_bound_hours: 3 # number >= 0                                       (default 3)
      basis: lifecycle            # lifecycle | direct | marginal                      (default lifecycle)
    ingest:
      step_seconds: 60            # whole number > 0                                   (default 60)
      max_gap_seconds: 300        # whole number >= step_seconds                       (default 300)
      max_points_per_request: 3000000  # series x steps one query_range may return     (default 3,000,000)
      cluster_label: cluster      # label key carrying the cluster on exporter series  (default cluster)
      metrics:
        wattprint:
          enabled: true           # false: this source is not queried
          job_energy: wattprint_job_energy_joules_total
          job_gpu_seconds: wattprint_job_gpu_seconds_total        # seconds each job held each GPU (GPU-hours)
          job_held_idle_energy: wattprint_job_held_idle_energy_joules_total  # part of the job energy: GPU held, idle
          job_held_idle_seconds: wattprint_job_held_idle_seconds_total       # the held time of those intervals
          job_equal_share_seconds: wattprint_job_equal_share_seconds_total   # held time split equally (shared GPU)
          gpu_energy: wattprint_gpu_energy_joules_total
          idle_energy: wattprint_gpu_idle_energy_joules_total
          cpu_energy: wattprint_cpu_energy_joules_total            # host (RAPL) series: socket and domain
          cpu_idle_energy: wattprint_cpu_idle_energy_joules_total  # come from the `socket` / `domain` labels
          job_cpu_energy: wattprint_job_cpu_energy_joules_total
          job_cpu_seconds: wattprint_job_cpu_seconds_total
          cpu_rapl_up: wattprint_cpu_rapl_up
          labels: {hostname: hostname, gpu: gpu, uuid: uuid, job_id: job_id, model: model}
        dcgm:
          enabled: true           # false: not queried (e.g. a wattprint exporter on the dcgm backend reads it already)
          energy: DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION
          energy_unit: mJ         # J | mJ | kJ | Wh | kWh | uJ
          power: DCGM_FI_DEV_POWER_USAGE
          power_unit: W           # W | mW | kW
          labels: {hostname: [Hostname, hostname], gpu: gpu, uuid: [UUID, uuid], job_id: [hpc_job, pod],
                   model: modelName}
        amd:                      # AMD's ROCm device-metrics-exporter (wattprint/pipeline/amd.py has the rules)
          enabled: true           # false: not queried
          energy: gpu_energy_consumed   # gauge holding the energy accumulator, uJ (read as a counter)
          energy_unit: uJ         # uJ | J | mJ | kJ | Wh | kWh
          power: gpu_package_power      # socket power, W (MI3xx)
          power_fallback: gpu_power_usage  # read too (W; MI2xx and MI3xx): per step the larger; null: not read
          power_unit: W           # W | mW | kW
          labels: {hostname: hostname, gpu: gpu_id, uuid: [gpu_uuid, serial_number], job_id: [job_id, pod],
                   model: [card_series, card_model], partition: gpu_partition_id,
                   partition_type: gpu_compute_partition_type}
        power:
          metric: null            # a power gauge; no default (this source is off without it)
          unit: W                 # W | mW | kW
          labels: {hostname: [hostname, Hostname], gpu: gpu, uuid: [uuid, UUID], job_id: [], model: []}
        node:                     # whole-node power from the BMC: the node accounting layer
          enabled: true           # false: not queried
          energy: wattprint_node_energy_joules_total   # counter (the exporter's Redfish / IPMI collector); null: off
          energy_unit: J          # J | mJ | kJ | Wh | kWh
          power: ipmi_dcmi_power_consumption_watts      # gauge (ipmi_exporter), integrated for the node-hours the
          power_unit: W           # W | mW | kW          counter does not cover; null: off
          labels: {hostname: [hostname, instance], reading: [source]}   # instance: a :port suffix is dropped
    phase_rules: rules.yaml       # path relative to this file (see wattprint/pipeline/sources/jobs/rules.py)
    report:
      layers: [gpu, cpu, idle, pue]  # in the headline: gpu | cpu | node | idle | pue | embodied, or [all]
                                  # (default shown; node, the BMC's residual, is listed but not in it by default)
      idle_policy: pro-rata       # pro-rata (idle GPU / host energy shared per cluster-hour by GPU- / CPU-seconds)
                                  # | separate
      scope2_basis: location      # the headline's Scope 2 method: location | market      (default location)
      embodied:
        lifetime_years: 6         # number > 0      (default 6, BLOOM study)
        utilisation: 0.85         # 0 < number <= 1 (default 0.85, BLOOM study)
    scope2:                       # market-based Scope 2: instruments and residual mixes (wattprint/pipeline/scope2.py);
      matching: monthly           # or a path to a file holding this mapping, relative to this file
      instruments: [...]
      residual_mix: [...]
    budgets:                      # monthly carbon budgets, served by `wattprint serve-intensity` (in grams)
      projects:
        idefics:                  # project name as in the job ledger (non-empty)
          monthly_kgco2eq: 2000   # number > 0, required

A label entry is one key or a list of keys tried in order (the first present on a series wins); an
override replaces that one entry and keeps the other defaults. Unknown keys are errors (with the
closest valid key suggested), as are wrong types; errors name the file, line and key path, e.g.
``wattprint.yaml:7: clusters.jean-zay.pue: expected a number >= 1.0, got 0.9``. Only ``true``/``false``
are booleans and timestamps stay text, so a zone ``NO`` (Norway) needs no quotes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, NoReturn

from .. import contract as C
from .errors import InputError
from .files import MAX_SMALL_FILE_BYTES, read_regular
from .nodes import node_matches
from .records import INTENSITY_BASES
from .scope2 import BASES as SCOPE2_BASES
from .scope2 import Scope2Config
from .scope2 import parse as parse_scope2
from .sources.jobs import yamlmarks
from .sources.jobs.common import suggest
from .sources.jobs.rules import Rules
from .verb_requests import IDLE_POLICIES
from .zones import canonical_zone

PROVIDERS = ("onprem", "aws", "gcp", "azure")
ENERGY_UNITS: Mapping[str, float] = MappingProxyType({"J": 1.0, "mJ": 1e-3, "kJ": 1e3, "Wh": 3600.0, "kWh": 3.6e6,
                                                      "uJ": 1e-6})
POWER_UNITS: Mapping[str, float] = MappingProxyType({"W": 1.0, "mW": 1e-3, "kW": 1e3})
_METRIC_RX = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RX = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class HardwareSpec:
    tdp_watts: float | None = None
    embodied_kgco2eq: float | None = None


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    provider: str = "onprem"
    region: str = ""
    zone: str | None = None           # None: unknown -> the caller prices at world average and flags it
    pue: float | None = None          # None: unknown -> the caller applies 1.0 and flags it
    nodes: tuple[str, ...] = ()
    hardware: Mapping[str, HardwareSpec] = field(default_factory=lambda: MappingProxyType({}))
    configured: bool = False          # False: not in the config file, all defaults

    def hardware_for(self, model: str) -> HardwareSpec | None:
        """The spec of a GPU model name (exact, then case-insensitive), or None."""
        spec = self.hardware.get(model)
        if spec is None:
            low = model.strip().lower()
            spec = next((s for m, s in self.hardware.items() if m.strip().lower() == low), None)
        return spec

    def matches_host(self, hostname: str) -> bool:
        """The rule the model applies to series hosts (wattprint/pipeline/nodes.py, sql/macros.sql)."""
        return any(node_matches(hostname, p) for p in self.nodes)


@dataclass(frozen=True)
class IntensityConfig:
    nearest_hour_bound_hours: float = 3.0
    basis: str = "lifecycle"


@dataclass(frozen=True)
class LabelKeys:
    """Label keys of one meaning each; the first present on a series wins."""

    hostname: tuple[str, ...] = (C.HOSTNAME,)
    gpu: tuple[str, ...] = (C.GPU,)
    uuid: tuple[str, ...] = (C.UUID,)
    job_id: tuple[str, ...] = (C.JOB_ID,)
    model: tuple[str, ...] = (C.MODEL,)

    @staticmethod
    def pick(labels: Mapping[str, str], keys: tuple[str, ...]) -> str:
        """The value of the first key present and non-empty in labels, else ''."""
        return next((labels[k] for k in keys if labels.get(k)), "")


@dataclass(frozen=True)
class WattprintMetrics:
    enabled: bool = True            # false: not queried (another source measures these GPUs)
    job_energy: str = C.series(C.JOB_ENERGY)
    job_gpu_seconds: str = C.series(C.JOB_GPU_SECONDS)     # the seconds each job held each GPU
    # shared GPUs: the part of a job's energy (and its held time) while the GPU it held was idle; the held time its
    # GPU's split fell back to equal shares. Not energy of their own (inside job_energy): reports, never priced twice
    job_held_idle_energy: str = C.series(C.JOB_HELD_IDLE_ENERGY)
    job_held_idle_seconds: str = C.series(C.JOB_HELD_IDLE_SECONDS)
    job_equal_share_seconds: str = C.series(C.JOB_EQUAL_SHARE_SECONDS)
    gpu_energy: str = C.series(C.GPU_ENERGY)
    idle_energy: str = C.series(C.GPU_IDLE_ENERGY)
    # host energy (the exporter's RAPL collector); socket and domain are read from the `socket` / `domain` labels
    cpu_energy: str = C.series(C.CPU_ENERGY)
    cpu_idle_energy: str = C.series(C.CPU_IDLE_ENERGY)
    job_cpu_energy: str = C.series(C.JOB_CPU_ENERGY)
    job_cpu_seconds: str = C.series(C.JOB_CPU_SECONDS)
    cpu_rapl_up: str = C.series(C.CPU_RAPL_UP)
    labels: LabelKeys = LabelKeys()


class _Units:
    """The unit conversions of a source that reads an energy counter and a power gauge (energy_unit, power_unit)."""

    energy_unit: str
    power_unit: str

    @property
    def joules_per_energy_unit(self) -> float:
        return ENERGY_UNITS[self.energy_unit]

    @property
    def watts_per_power_unit(self) -> float:
        return POWER_UNITS[self.power_unit]


@dataclass(frozen=True)
class DcgmMetrics(_Units):
    enabled: bool = True            # false: not queried, e.g. beside a wattprint exporter on the dcgm backend
    energy: str = C.DCGM_ENERGY
    energy_unit: str = "mJ"
    power: str = C.DCGM_POWER
    power_unit: str = "W"
    labels: LabelKeys = LabelKeys(hostname=("Hostname", "hostname"), uuid=("UUID", "uuid"),
                                  job_id=("hpc_job", "pod"), model=("modelName",))


@dataclass(frozen=True)
class AmdLabelKeys(LabelKeys):
    """The device-metrics-exporter's label keys: those of every source, and the partition ones (amd.py)."""

    partition: tuple[str, ...] = ("gpu_partition_id",)              # "0": the primary partition, or unpartitioned
    partition_type: tuple[str, ...] = ("gpu_compute_partition_type",)  # spx | none: unpartitioned; cpx, dpx...


@dataclass(frozen=True)
class AmdMetrics(_Units):
    """AMD's ROCm device-metrics-exporter. Names, units and labels from its docs/configuration/metricslist.md and
    pkg/amdgpu/gpuagent/gpuagent_gpu_metrics.go (ROCm/device-metrics-exporter, commit 0778d3ab); see amd.py."""

    enabled: bool = True
    energy: str = "gpu_energy_consumed"      # GPU_ENERGY_CONSUMED: "Accumulated energy consumed by the GPU in uJ"
    energy_unit: str = "uJ"
    power: str = "gpu_package_power"         # GPU_PACKAGE_POWER [MI3xx]: "Current socket power in Watts"
    NULLABLE: ClassVar[tuple[str, ...]] = ("power_fallback",)     # null: that series is not queried
    power_fallback: str | None = "gpu_power_usage"  # GPU_POWER_USAGE [MI2xx, MI3xx]: "GPU Power usage in Watts"
    power_unit: str = "W"
    labels: AmdLabelKeys = AmdLabelKeys(hostname=("hostname",), gpu=("gpu_id",), uuid=("gpu_uuid", "serial_number"),
                                        job_id=("job_id", "pod"), model=("card_series", "card_model"))


@dataclass(frozen=True)
class PowerMetrics:
    NULLABLE: ClassVar[tuple[str, ...]] = ("metric",)     # null: this source is off
    metric: str | None = None
    unit: str = "W"
    labels: LabelKeys = LabelKeys(hostname=("hostname", "Hostname"), uuid=("uuid", "UUID"), job_id=(), model=())

    @property
    def watts_per_unit(self) -> float:
        return POWER_UNITS[self.unit]


@dataclass(frozen=True)
class NodeLabelKeys:
    """Label keys of the node (BMC) series; the first present on a series wins."""

    # `instance` is the scrape target: ipmi_exporter's gauge carries no host label of its own. Its `:port` is not
    # part of the node (sql/macros.sql host_part drops it, as for every host name)
    hostname: tuple[str, ...] = (C.HOSTNAME, "instance")
    # how the BMC was read (the exporter's `source`: redfish | ipmi): two readings of one node stay two streams
    reading: tuple[str, ...] = (C.NODE_SOURCE,)


@dataclass(frozen=True)
class NodeMetrics(_Units):
    """Whole-node power from the BMC (the `node` layer): the energy counter where a node has one, the power gauge
    integrated for the node-hours it does not cover (node_hour.sql)."""

    NULLABLE: ClassVar[tuple[str, ...]] = ("energy", "power")     # null: that series is not queried
    enabled: bool = True
    energy: str | None = C.NODE_ENERGY + "_total"
    energy_unit: str = "J"
    power: str | None = C.IPMI_DCMI_POWER
    power_unit: str = "W"
    labels: NodeLabelKeys = NodeLabelKeys()


@dataclass(frozen=True)
class MetricsConfig:
    wattprint: WattprintMetrics = WattprintMetrics()
    dcgm: DcgmMetrics = DcgmMetrics()
    power: PowerMetrics = PowerMetrics()
    amd: AmdMetrics = AmdMetrics()
    node: NodeMetrics = NodeMetrics()


@dataclass(frozen=True)
class IngestConfig:
    step_seconds: int = 60
    max_gap_seconds: int = 300
    # points (series x steps) one query_range response may hold: bounds the memory of a response on both sides and
    # stays under Prometheus's --query.max-samples (50,000,000 by default); the time chunks shrink as series grow
    max_points_per_request: int = 3_000_000
    cluster_label: str = "cluster"
    metrics: MetricsConfig = MetricsConfig()


# canonical order; node: the BMC's whole-node energy less the GPU boards and RAPL (the node residual), not in the
# default headline, so a site's existing figures do not move when its BMC power is ingested (docs/methodology.md)
LAYERS = ("gpu", "cpu", "node", "idle", "pue", "embodied")


@dataclass(frozen=True)
class ReportConfig:
    layers: tuple[str, ...] = ("gpu", "cpu", "idle", "pue")
    idle_policy: str = "pro-rata"
    lifetime_years: float | None = None     # None: the shipped default (pipeline.hardware)
    utilisation: float | None = None
    scope2_basis: str = "location"          # the headline's Scope 2 method: location | market


@dataclass(frozen=True)
class ProjectBudget:
    monthly_kgco2eq: float


@dataclass(frozen=True)
class BudgetsConfig:
    projects: Mapping[str, ProjectBudget] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Config:
    clusters: Mapping[str, ClusterConfig] = field(default_factory=lambda: MappingProxyType({}))
    default_cluster: str | None = None
    intensity: IntensityConfig = IntensityConfig()
    ingest: IngestConfig = IngestConfig()
    phase_rules: Path | None = None
    rules: Rules = Rules()
    report: ReportConfig = ReportConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    scope2: Scope2Config = Scope2Config()
    source: str = "<defaults>"

    def cluster(self, name: str) -> ClusterConfig:
        """The configured cluster, or an all-defaults one (zone and PUE unknown) for a name not in the file."""
        return self.clusters.get(name) or ClusterConfig(name=name)


def load(path: str | Path | None) -> Config:
    """The config at path; None -> all defaults. InputError naming file, line and key path on any problem."""
    if path is None:
        return Config()
    name = str(path)
    try:
        text = read_regular(path, MAX_SMALL_FILE_BYTES, what="config").decode("utf-8-sig")
    except OSError as exc:
        raise InputError(name, f"cannot read the config: {exc.strerror or exc}", "check --config") from None
    except UnicodeDecodeError:
        raise InputError(name, "the config is not UTF-8 text") from None
    return load_text(text, name, base_dir=Path(path).parent)


def load_text(text: str, name: str, *, base_dir: Path | None = None) -> Config:
    """Parse config text; `name` appears in errors, `base_dir` resolves phase_rules (default: cwd)."""
    data = yamlmarks.load(text, name, typed=True)
    if data is None:
        return Config(source=name)
    ctx = _Ctx(name)
    if not isinstance(data, dict):
        raise InputError(name, "the config must be a mapping of keys (clusters, default_cluster, intensity, ...)")
    ctx.keys(data, ("clusters", "default_cluster", "intensity", "ingest", "phase_rules", "report", "budgets",
                    "scope2"), "")
    clusters = _clusters(ctx, data)
    default = ctx.opt_str(data, "default_cluster", "default_cluster", empty_ok=False)
    if default is not None and clusters and default not in clusters:
        ctx.fail(data, "default_cluster", "default_cluster", f"{default!r} is not under clusters"
                 f"{suggest(default, list(clusters))}", f"configured clusters: {', '.join(clusters)}")
    rules_path, rules = _phase_rules(ctx, data, base_dir or Path.cwd())
    return Config(clusters=MappingProxyType(clusters), default_cluster=default, intensity=_intensity(ctx, data),
                  ingest=_ingest(ctx, data), phase_rules=rules_path, rules=rules, report=_report(ctx, data),
                  budgets=_budgets(ctx, data), scope2=_scope2(ctx, data, clusters, base_dir or Path.cwd()),
                  source=name)


# -- sections -------------------------------------------------------------------------------------------

def _clusters(ctx: _Ctx, data: dict[Any, Any]) -> dict[str, ClusterConfig]:
    section = ctx.section(data, "clusters", "clusters")
    out: dict[str, ClusterConfig] = {}
    for cname, body in section.items():
        if not isinstance(cname, str) or not cname.strip():
            ctx.fail(section, cname, f"clusters.{cname}", "a cluster name must be a non-empty string",
                     "quote it, e.g. \"2024\":")
        path = f"clusters.{cname}"
        body = ctx.section(section, cname, path)
        ctx.keys(body, ("provider", "region", "zone", "pue", "nodes", "hardware"), path)
        provider = ctx.opt_str(body, "provider", f"{path}.provider") or "onprem"
        if provider not in PROVIDERS:
            ctx.fail(body, "provider", f"{path}.provider", f"unknown provider {provider!r}"
                     f"{suggest(provider, PROVIDERS)}", f"use one of {', '.join(PROVIDERS)}")
        pue = ctx.opt_number(body, "pue", f"{path}.pue", minimum=1.0)
        out[cname] = ClusterConfig(
            name=cname, provider=provider, region=ctx.opt_str(body, "region", f"{path}.region") or "",
            zone=_zone(ctx.opt_str(body, "zone", f"{path}.zone", empty_ok=False)), pue=pue,
            nodes=ctx.str_list(body, "nodes", f"{path}.nodes", ()), hardware=_hardware(ctx, body, path),
            configured=True)
    return out


def _zone(zone: str | None) -> str | None:
    """The zone in its canonical spelling (wattprint/pipeline/zones.py): `fr` is the zone of imported `FR` hours."""
    return canonical_zone(zone) if zone is not None else None


def _hardware(ctx: _Ctx, body: dict[Any, Any], path: str) -> Mapping[str, HardwareSpec]:
    section = ctx.section(body, "hardware", f"{path}.hardware")
    out: dict[str, HardwareSpec] = {}
    for model, spec in section.items():
        mpath = f"{path}.hardware[{model!r}]"
        if not isinstance(model, str) or not model.strip():
            ctx.fail(section, model, mpath, "a GPU model name must be a non-empty string", "quote it")
        spec = ctx.section(section, model, mpath)
        ctx.keys(spec, ("tdp_watts", "embodied_kgco2eq"), mpath)
        tdp = ctx.opt_number(spec, "tdp_watts", f"{mpath}.tdp_watts", minimum=0.0, exclusive=True)
        emb = ctx.opt_number(spec, "embodied_kgco2eq", f"{mpath}.embodied_kgco2eq", minimum=0.0)
        out[model] = HardwareSpec(tdp_watts=tdp, embodied_kgco2eq=emb)
    return MappingProxyType(out)


def _intensity(ctx: _Ctx, data: dict[Any, Any]) -> IntensityConfig:
    section = ctx.section(data, "intensity", "intensity")
    ctx.keys(section, ("nearest_hour_bound_hours", "basis"), "intensity")
    d = IntensityConfig()
    bound = ctx.opt_number(section, "nearest_hour_bound_hours", "intensity.nearest_hour_bound_hours", minimum=0.0)
    basis = ctx.opt_str(section, "basis", "intensity.basis") or d.basis
    if basis not in INTENSITY_BASES:
        ctx.fail(section, "basis", "intensity.basis", f"unknown basis {basis!r}{suggest(basis, INTENSITY_BASES)}",
                 f"use one of {', '.join(INTENSITY_BASES)}")
    return IntensityConfig(nearest_hour_bound_hours=d.nearest_hour_bound_hours if bound is None else bound, basis=basis)


def _ingest(ctx: _Ctx, data: dict[Any, Any]) -> IngestConfig:
    section = ctx.section(data, "ingest", "ingest")
    ctx.keys(section, ("step_seconds", "max_gap_seconds", "max_points_per_request", "cluster_label", "metrics"),
             "ingest")
    d = IngestConfig()
    step = ctx.opt_int(section, "step_seconds", "ingest.step_seconds", minimum=1)
    step = d.step_seconds if step is None else step
    gap = ctx.opt_int(section, "max_gap_seconds", "ingest.max_gap_seconds", minimum=1)
    gap = max(d.max_gap_seconds, step) if gap is None else gap
    if gap < step:
        ctx.fail(section, "max_gap_seconds", "ingest.max_gap_seconds",
                 f"expected a whole number >= step_seconds ({step}), got {gap}")
    label = ctx.opt_str(section, "cluster_label", "ingest.cluster_label", empty_ok=False)
    if label is not None and not _LABEL_RX.match(label):
        ctx.fail(section, "cluster_label", "ingest.cluster_label", f"{label!r} is not a Prometheus label name")
    msec = ctx.section(section, "metrics", "ingest.metrics")
    ctx.keys(msec, ("wattprint", "dcgm", "power", "amd", "node"), "ingest.metrics")
    metrics = MetricsConfig(
        wattprint=_source(ctx, msec, "wattprint", WattprintMetrics(), {}),
        dcgm=_source(ctx, msec, "dcgm", DcgmMetrics(), {"energy_unit": ENERGY_UNITS, "power_unit": POWER_UNITS}),
        power=_source(ctx, msec, "power", PowerMetrics(), {"unit": POWER_UNITS}),
        amd=_source(ctx, msec, "amd", AmdMetrics(), {"energy_unit": ENERGY_UNITS, "power_unit": POWER_UNITS}),
        node=_source(ctx, msec, "node", NodeMetrics(), {"energy_unit": ENERGY_UNITS, "power_unit": POWER_UNITS}),
    )
    twice = double_read(metrics, metrics.power.metric)
    if twice:
        ctx.fail(msec, "power", "ingest.metrics.power.metric", twice[0], twice[1])
    points = ctx.opt_int(section, "max_points_per_request", "ingest.max_points_per_request", minimum=1)
    return IngestConfig(step_seconds=step, max_gap_seconds=gap, cluster_label=label or d.cluster_label,
                        metrics=metrics, max_points_per_request=d.max_points_per_request if points is None else points)


def double_read(metrics: MetricsConfig, power_metric: str | None) -> tuple[str, str] | None:
    """(problem, hint) when the GPU power gauge is a series the node source reads too: one BMC's energy would be
    priced as GPU energy and again in the node layer."""
    node = metrics.node
    if not power_metric or not node.enabled or power_metric not in (node.energy, node.power):
        return None
    return (f"{power_metric} is read as a GPU power gauge and as whole-node power (ingest.metrics.node): its energy "
            "would be priced twice",
            "a BMC's power is the node's: leave it to the node source (drop the GPU power gauge), or set "
            "ingest.metrics.node.power: null to keep it a GPU power gauge")


def _source(ctx: _Ctx, msec: dict[Any, Any], key: str, default: Any, units: Mapping[str, Mapping[str, float]]) -> Any:
    path = f"ingest.metrics.{key}"
    section = ctx.section(msec, key, path)
    names = [f for f in default.__dataclass_fields__ if f != "labels"]
    ctx.keys(section, (*names, "labels"), path)
    changes: dict[str, Any] = {}
    for f in names:
        if f not in section:
            continue
        if f == "enabled":
            if not isinstance(section[f], bool):
                ctx.fail(section, f, f"{path}.{f}", f"expected true or false, got {_kind(section[f])}")
            changes[f] = section[f]
            continue
        if f in units:
            unit = ctx.opt_str(section, f, f"{path}.{f}") or getattr(default, f)
            if unit not in units[f]:
                ctx.fail(section, f, f"{path}.{f}", f"unknown unit {unit!r}{suggest(unit, list(units[f]))}",
                         f"use one of {', '.join(units[f])}")
            changes[f] = unit
            continue
        value = ctx.opt_str(section, f, f"{path}.{f}", empty_ok=False)
        if value is None and f not in getattr(default, "NULLABLE", ()):
            ctx.fail(section, f, f"{path}.{f}", "expected a metric name, got null")
        if value is not None and not _METRIC_RX.match(value):
            ctx.fail(section, f, f"{path}.{f}", f"{value!r} is not a Prometheus metric name")
        changes[f] = value
    labels_sec = ctx.section(section, "labels", f"{path}.labels")
    fields = tuple(type(default.labels).__dataclass_fields__)
    ctx.keys(labels_sec, fields, f"{path}.labels")
    label_changes: dict[str, tuple[str, ...]] = {}
    for f in labels_sec:
        keys = ctx.str_list(labels_sec, f, f"{path}.labels.{f}", ())
        bad = [k for k in keys if not _LABEL_RX.match(k)]
        if bad:
            ctx.fail(labels_sec, f, f"{path}.labels.{f}", f"{bad[0]!r} is not a Prometheus label name")
        label_changes[str(f)] = keys
    return replace(default, **changes, labels=replace(default.labels, **label_changes))


def parse_layers(items: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Layer names in canonical order; 'all' means every layer. ValueError names the bad one."""
    names = [i.strip().lower() for i in items if i.strip()]
    if "all" in names:
        return LAYERS
    for n in names:
        if n not in LAYERS:
            raise ValueError(f"unknown layer {n!r}{suggest(n, LAYERS)}")
    if "gpu" not in names:
        raise ValueError("the gpu layer (the jobs' own measured energy) is always part of the headline")
    return tuple(x for x in LAYERS if x in names)


def _report(ctx: _Ctx, data: dict[Any, Any]) -> ReportConfig:
    section = ctx.section(data, "report", "report")
    ctx.keys(section, ("layers", "idle_policy", "embodied", "scope2_basis"), "report")
    d = ReportConfig()
    layers = d.layers
    if "layers" in section:
        try:
            layers = parse_layers(ctx.str_list(section, "layers", "report.layers", d.layers))
        except ValueError as exc:
            ctx.fail(section, "layers", "report.layers", str(exc), f"use some of {', '.join(LAYERS)}, or all")
    policy = ctx.opt_str(section, "idle_policy", "report.idle_policy") or d.idle_policy
    if policy not in IDLE_POLICIES:
        ctx.fail(section, "idle_policy", "report.idle_policy", f"unknown policy {policy!r}"
                 f"{suggest(policy, IDLE_POLICIES)}", f"use one of {', '.join(IDLE_POLICIES)}")
    emb = ctx.section(section, "embodied", "report.embodied")
    ctx.keys(emb, ("lifetime_years", "utilisation"), "report.embodied")
    life = ctx.opt_number(emb, "lifetime_years", "report.embodied.lifetime_years", minimum=0.0, exclusive=True)
    util = ctx.opt_number(emb, "utilisation", "report.embodied.utilisation", minimum=0.0, exclusive=True)
    if util is not None and util > 1.0:
        ctx.fail(emb, "utilisation", "report.embodied.utilisation", f"expected a share in (0, 1], got {util!r}",
                 "0.85 means the GPUs are busy 85 % of their life")
    basis = ctx.opt_str(section, "scope2_basis", "report.scope2_basis") or d.scope2_basis
    if basis not in SCOPE2_BASES:
        ctx.fail(section, "scope2_basis", "report.scope2_basis", f"unknown basis {basis!r}"
                 f"{suggest(basis, SCOPE2_BASES)}", "use location (grid average, the default) or market (contracts)")
    return ReportConfig(layers=layers, idle_policy=policy, lifetime_years=life, utilisation=util, scope2_basis=basis)


def _scope2(ctx: _Ctx, data: dict[Any, Any], clusters: Mapping[str, ClusterConfig], base_dir: Path) -> Scope2Config:
    """The scope2 section, inline or in its own file (whose errors then name that file and its lines)."""
    zones = {name: c.zone for name, c in clusters.items()}
    value = data.get("scope2")
    if isinstance(value, str):
        rel = ctx.opt_str(data, "scope2", "scope2", empty_ok=False) or ""
        path = Path(rel).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            ctx.fail(data, "scope2", "scope2", f"no such file {str(path)!r}",
                     "the path is relative to the config file's folder")
        try:
            text = read_regular(path, MAX_SMALL_FILE_BYTES, what="instruments file").decode("utf-8-sig")
        except OSError as exc:
            ctx.fail(data, "scope2", "scope2", f"cannot read {str(path)!r}: {exc.strerror or exc}")
        except UnicodeDecodeError:
            ctx.fail(data, "scope2", "scope2", f"{str(path)!r} is not UTF-8 text")
        inner = yamlmarks.load(text, str(path), typed=True)
        fctx = _Ctx(str(path))
        if inner is None:
            return Scope2Config(source=str(path))
        if not isinstance(inner, dict):
            raise InputError(str(path), "an instruments file must be a mapping (matching, instruments, residual_mix)")
        return replace(parse_scope2(fctx, inner, "scope2", zones), source=str(path))
    return parse_scope2(ctx, ctx.section(data, "scope2", "scope2"), "scope2", zones)


def _budgets(ctx: _Ctx, data: dict[Any, Any]) -> BudgetsConfig:
    section = ctx.section(data, "budgets", "budgets")
    ctx.keys(section, ("projects",), "budgets")
    projects = ctx.section(section, "projects", "budgets.projects")
    out: dict[str, ProjectBudget] = {}
    for name in projects:
        if not isinstance(name, str) or not name.strip():
            ctx.fail(projects, name, f"budgets.projects.{name}", "a project name must be a non-empty string",
                     "quote it, e.g. \"2024\":")
        path = f"budgets.projects.{name}"
        body = ctx.section(projects, name, path)
        ctx.keys(body, ("monthly_kgco2eq",), path)
        kg = ctx.opt_number(body, "monthly_kgco2eq", f"{path}.monthly_kgco2eq", minimum=0.0, exclusive=True)
        if kg is None:
            ctx.fail(projects, name, f"{path}.monthly_kgco2eq", "missing: a project's budget needs monthly_kgco2eq",
                     "set monthly_kgco2eq: N (kgCO2eq per calendar month, > 0), or remove the project")
        out[name] = ProjectBudget(monthly_kgco2eq=kg)
    return BudgetsConfig(projects=MappingProxyType(out))


def _phase_rules(ctx: _Ctx, data: dict[Any, Any], base_dir: Path) -> tuple[Path | None, Rules]:
    rel = ctx.opt_str(data, "phase_rules", "phase_rules", empty_ok=False)
    if rel is None:
        return None, Rules()
    path = Path(rel).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        ctx.fail(data, "phase_rules", "phase_rules", f"no such file {str(path)!r}",
                 "the path is relative to the config file's folder")
    return path, Rules.load(path)


# -- checks ---------------------------------------------------------------------------------------------

class _Ctx:
    """Type checks that fail with 'file:line: key.path: expected ..., got ...'."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, parent: Any, key: Any, path: str, problem: str, hint: str = "") -> NoReturn:
        raise InputError(yamlmarks.where(self.name, parent, key), f"{path}: {problem}", hint)

    def keys(self, d: dict[Any, Any], allowed: tuple[str, ...], path: str) -> None:
        for k in d:
            if k not in allowed:
                full = f"{path}.{k}" if path else str(k)
                raise InputError(yamlmarks.where(self.name, d, k), f"unknown key {full}{suggest(str(k), allowed)}",
                                 f"valid keys {'under ' + path if path else 'at the top level'}: {', '.join(allowed)}")

    def section(self, parent: dict[Any, Any], key: Any, path: str) -> dict[Any, Any]:
        value = parent.get(key)
        if value is None:
            return yamlmarks.YDict()
        if not isinstance(value, dict):
            self.fail(parent, key, path, f"expected a mapping of keys, got {_kind(value)}")
        return value

    def opt_str(self, parent: dict[Any, Any], key: str, path: str, *, empty_ok: bool = True) -> str | None:
        value = parent.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(parent, key, path, f"expected a string, got {_kind(value)}", "quote it")
        value = value.strip()
        if not value and not empty_ok:
            self.fail(parent, key, path, "expected a non-empty string", "remove the key to use the default")
        return value

    def opt_number(self, parent: dict[Any, Any], key: str, path: str, *, minimum: float,
                   exclusive: bool = False) -> float | None:
        value = parent.get(key)
        if value is None:
            return None
        op = ">" if exclusive else ">="
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(parent, key, path, f"expected a number {op} {minimum}, got {_kind(value)}")
        if value < minimum or (exclusive and value == minimum):
            self.fail(parent, key, path, f"expected a number {op} {minimum}, got {value!r}")
        return float(value)

    def opt_int(self, parent: dict[Any, Any], key: str, path: str, *, minimum: int) -> int | None:
        value = parent.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(parent, key, path, f"expected a whole number >= {minimum}, got {_kind(value)}")
        if value < minimum:
            self.fail(parent, key, path, f"expected a whole number >= {minimum}, got {value!r}")
        return value

    def str_list(self, parent: dict[Any, Any], key: Any, path: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = parent.get(key)
        if value is None:
            return default
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
            self.fail(parent, key, path, f"expected a list of non-empty strings, got {_kind(value)}",
                      'e.g. ["gpu*", "node[0-9]*"]')
        return tuple(v.strip() for v in items)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
