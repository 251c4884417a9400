"""Generate wattprint's Grafana dashboards from code (grafana-foundation-sdk).

    python grafana/build.py           # (re)write grafana/dashboards/*.json
    python grafana/build.py --check   # exit 1 when a committed file differs from what this script writes

The JSON files are committed (Helm ships them as ConfigMaps, Grafana's file provider reads them); a test
regenerates them and compares byte for byte, so edit this file, never the JSON.

Conventions every dashboard follows (tests/test_dashboards.py checks them):

* a `datasource` variable of type `datasource` (query `prometheus`); every panel, query and query variable
  points at `${datasource}`, so the files are provisioning-ready without `__inputs`;
* query variables `cluster`, `node` (the `hostname` label), `project`, `phase`, `job` (`job_id`), chained
  (a node list follows the cluster selection), multi-valued, with an All value of `.*`;
* unique panel ids, non-overlapping grid positions, a description and a unit on every panel;
* emission *rates* are shown per hour (`si:gCO₂eq/h`), masses in grams (`massg`, SI-scaled to kg, Mg),
  intensity as `suffix:gCO₂eq/kWh`, energy in `kwatth` or SI-scaled `joule`, power in `watt`;
* totals over the dashboard's time range integrate rates step by step (`sum_over_time((…)[$__range:$__interval])
  * $__interval_ms / 1000`) from the energy counters, so a job that ran between two steps is still counted and
  each step is priced at the intensity of its own time; "now" panels use the recording rules of
  rules/wattprint.rules.yml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["wattprint"]
REFRESH = "1m"

# Units (Grafana unit ids; custom ones use Grafana's `suffix:` / `si:` syntax).
W = "watt"
KWH = "kwatth"
J = "joule"
G = "massg"
G_PER_H = "si:gCO₂eq/h"
G_PER_KWH = "suffix:gCO₂eq/kWh"
RATIO = "percentunit"
S = "s"
COUNT = "none"

# -- PromQL building blocks ---------------------------------------------------------------------------------

INTENSITY = "cluster:wattprint_grid_intensity_grams_per_kwh:max"
PUE = "cluster:wattprint_pue_ratio:max"
STEP_SECONDS = "$__interval_ms / 1000"  # width of one dashboard step, for integrals


def sel(**labels: str) -> str:
    """A selector `{a=~"$a", …}`; values are Grafana variables or regexes, always matched with `=~`."""
    return "{" + ", ".join(f'{k}=~"{v}"' for k, v in labels.items()) + "}"


def integral(per_second: str, by: str = "") -> str:
    """The integral over the dashboard range of a per-second rate, summed (by `by`) before integrating:
    Σ over the range's steps of rate(t) × step width, at the dashboard's `$__interval` resolution."""
    summed = f"sum by ({by}) ({per_second})" if by else f"sum({per_second})"
    return f"sum_over_time(({summed})[$__range:$__interval]) * {STEP_SECONDS}"


# cluster dashboard: all GPUs of the selected clusters and nodes
GPU = sel(cluster="$cluster", hostname="$node")
# carbon dashboard: the ledger's running jobs (project, phase) of the selection, one series per (cluster, job_id)
LEDGER = ('group by (cluster, job_id, project, phase) '
          f'(wattprint_job_project_info{sel(cluster="$cluster", project="$project", phase="$phase", job_id="$job")})')
JOB_SEL = sel(cluster="$cluster", hostname="$node", job_id="$job")
JOB_POWER = f"rate(wattprint_job_energy_joules_total{JOB_SEL}[$__rate_interval])"
# per job and GPU: W × gCO2eq/kWh × PUE, with the job's project and phase; / 3.6e6 makes it g/s
JOB_EMISSION_RATE = (f"{JOB_POWER} * on (cluster) group_left () {INTENSITY} * on (cluster) group_left () {PUE} "
                     f"* on (cluster, job_id) group_left (project, phase) {LEDGER} / 3.6e6")
JOB_POWER_IN_LEDGER = f"{JOB_POWER} * on (cluster, job_id) group_left (project, phase) {LEDGER}"
# a project's emissions whatever the cluster, node, phase and job selection (budgets are per project)
PROJECT_EMISSION_RATE = (
    "rate(wattprint_job_energy_joules_total[$__rate_interval]) * on (cluster) group_left () "
    f"{INTENSITY} * on (cluster) group_left () {PUE} * on (cluster, job_id) group_left (project) "
    f'group by (cluster, job_id, project) (wattprint_job_project_info{sel(project="$project")}) / 3.6e6')
# exporter dashboard: the (cluster, hostname) of each GPU exporter target, by its scrape (job, instance)
EXPORTER_NODE = ("group by (job, instance, cluster, hostname) "
                 f"(wattprint_gpu_info{GPU})")
# ... of those seen in the last hour, so a target that is down keeps its node (one node per target: a reused
# pod IP must not make the join ambiguous)
EXPORTER_NODE_SEEN = ("topk by (job, instance) (1, group by (job, instance, cluster, hostname) "
                      f"(last_over_time(wattprint_gpu_info{GPU}[1h])))")
CLUSTER_ZONES = f'group by (zone) (wattprint_cluster_info{sel(cluster="$cluster")})'


# -- panels -------------------------------------------------------------------------------------------------


@dataclass
class Target:
    expr: str
    legend: str = "__auto"
    instant: bool = False
    table: bool = False


@dataclass
class PanelSpec:
    kind: str  # timeseries | stat | bargauge | table
    title: str
    description: str
    unit: str
    targets: Sequence[Target]
    w: int
    h: int
    options: dict[str, Any] = field(default_factory=dict)


def _query(t: Target, ref: str) -> prometheus.Dataquery:
    q = prometheus.Dataquery().ref_id(ref).expr(t.expr).legend_format(t.legend).datasource(DS)
    q = q.instant() if t.instant else q.range()
    if t.table:
        q = q.format(pm.PromQueryFormat.TABLE)
    return q


def timeseries_panel(title: str, description: str, unit: str, *targets: Target, w: int = 12, h: int = 8,
                     stack: bool = False, bars: bool = False, min_val: float | None = 0,
                     max_val: float | None = None, interval: str | None = None) -> PanelSpec:
    return PanelSpec("timeseries", title, description, unit, targets, w, h,
                     {"stack": stack, "bars": bars, "min": min_val, "max": max_val, "interval": interval})


def stat_panel(title: str, description: str, unit: str, *targets: Target, w: int = 4, h: int = 4,
               mappings: dict[str, tuple[str, str]] | None = None, thresholds: Sequence[tuple[float | None, str]] = (),
               decimals: int | None = None) -> PanelSpec:
    return PanelSpec("stat", title, description, unit, [_instant(t) for t in targets], w, h,
                     {"mappings": mappings, "thresholds": thresholds, "decimals": decimals})


def bargauge_panel(title: str, description: str, unit: str, *targets: Target, w: int = 12, h: int = 8,
                   max_val: float | None = None, thresholds: Sequence[tuple[float | None, str]] = (),
                   time_from: str | None = None) -> PanelSpec:
    return PanelSpec("bargauge", title, description, unit, [_instant(t) for t in targets], w, h,
                     {"max": max_val, "thresholds": thresholds, "time_from": time_from})


def table_panel(title: str, description: str, unit: str, *targets: Target, w: int = 24, h: int = 9,
                columns: dict[str, tuple[str, str]] | None = None, sort_by: str | None = None) -> PanelSpec:
    """columns: Prometheus field name (e.g. "Value #A") -> (display name, unit)."""
    tt = [Target(t.expr, t.legend, instant=True, table=True) for t in targets]
    return PanelSpec("table", title, description, unit, tt, w, h, {"columns": columns or {}, "sort_by": sort_by})


def _instant(t: Target) -> Target:
    return Target(t.expr, t.legend, instant=True, table=t.table)


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> dashboard.ThresholdsConfig:
    return dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=v, color=c) for v, c in steps])


def _build_panel(spec: PanelSpec, pid: int, pos: dm.GridPos) -> Any:
    o = spec.options
    p: Any  # one of the SDK's panel builders; they share the generic Panel methods
    if spec.kind == "timeseries":
        p = (timeseries.Panel()
             .legend(common.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST)
                     .placement(cm.LegendPlacement.BOTTOM).show_legend(True))
             .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
             .fill_opacity(40 if o["stack"] else 10)
             .line_width(1)
             .show_points(cm.VisibilityMode.NEVER))
        if o["stack"]:
            p = p.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
        if o["bars"]:
            p = p.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
        if o["min"] is not None:
            p = p.min(o["min"])
        if o["max"] is not None:
            p = p.max(o["max"])
        if o["interval"]:
            p = p.interval(o["interval"])
    elif spec.kind == "stat":
        p = (stat.Panel()
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
             .graph_mode(cm.BigValueGraphMode.NONE)
             .color_mode(cm.BigValueColorMode.VALUE)
             .text_mode(cm.BigValueTextMode.AUTO)
             .orientation(cm.VizOrientation.AUTO))
        if o["mappings"]:
            p = p.mappings([dm.ValueMap(options={
                k: dm.ValueMappingResult(text=text, color=color, index=i)
                for i, (k, (text, color)) in enumerate(sorted(o["mappings"].items()))})])
        if o["decimals"] is not None:
            p = p.decimals(o["decimals"])
    elif spec.kind == "bargauge":
        p = (bargauge.Panel()
             .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
             .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
             .orientation(cm.VizOrientation.HORIZONTAL)
             .show_unfilled(True)
             .min(0))
        if o["max"] is not None:
            p = p.max(o["max"])
        if o["time_from"]:
            p = p.time_from(o["time_from"])
    elif spec.kind == "table":
        p = table.Panel().show_header(True).cell_height(cm.TableCellHeight.SM)
        p = p.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        p = p.with_transformation(dm.DataTransformerConfig(
            id_val="organize", options={"excludeByName": {"Time": True}, "indexByName": {}, "renameByName": {}}))
        for name, (display, unit) in sorted(o["columns"].items()):
            p = p.override_by_name(name, [dm.DynamicConfigValue(id_val="displayName", value=display),
                                          dm.DynamicConfigValue(id_val="unit", value=unit)])
        if o["sort_by"]:
            p = p.sort_by([common.TableSortByFieldState().display_name(o["sort_by"]).desc(True)])
    else:  # pragma: no cover - a typo in this file
        raise ValueError(spec.kind)
    if spec.kind in ("stat", "bargauge") and not o.get("thresholds"):
        p = p.thresholds(_thresholds([(None, "green")]))
    elif o.get("thresholds"):
        p = p.thresholds(_thresholds(o["thresholds"]))
    p = (p.id(pid).title(spec.title).description(spec.description).datasource(DS).unit(spec.unit)
         .grid_pos(pos))
    for i, t in enumerate(spec.targets):
        p = p.with_target(_query(t, chr(ord("A") + i)))
    return p


class Layout:
    """Places rows and panels on Grafana's 24-column grid, left to right, and numbers them from 1."""

    def __init__(self, board: dashboard.Dashboard) -> None:
        self.board = board
        self.next_id = 1
        self.x = 0
        self.y = 0
        self.line_h = 0

    def _newline(self) -> None:
        if self.x:
            self.x, self.y, self.line_h = 0, self.y + self.line_h, 0

    def row(self, title: str) -> None:
        self._newline()
        self.board.with_row(dashboard.Row(title).id(self.next_id).grid_pos(dm.GridPos(h=1, w=24, x=0, y=self.y)))
        self.next_id += 1
        self.y += 1

    def panels(self, *specs: PanelSpec) -> None:
        for spec in specs:
            if self.x + spec.w > 24:
                self._newline()
            pos = dm.GridPos(h=spec.h, w=spec.w, x=self.x, y=self.y)
            self.board.with_panel(_build_panel(spec, self.next_id, pos))
            self.next_id += 1
            self.x += spec.w
            self.line_h = max(self.line_h, spec.h)
            if self.x >= 24:
                self._newline()


# -- variables ----------------------------------------------------------------------------------------------


def datasource_variable() -> dashboard.DatasourceVariable:
    return (dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
            .description("The Prometheus that scrapes the wattprint exporters and evaluates "
                         "rules/wattprint.rules.yml."))


def query_variable(name: str, label: str, query: str, description: str) -> dashboard.QueryVariable:
    return (dashboard.QueryVariable(name).label(label).description(description).datasource(DS).query(query)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True).include_all(True).all_value(".*")
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))


def cluster_variable() -> dashboard.QueryVariable:
    return query_variable("cluster", "Cluster", "label_values(wattprint_gpu_info, cluster)",
                          "The `cluster` label of the GPU exporters (their `--label cluster=NAME`).")


def node_variable() -> dashboard.QueryVariable:
    return query_variable("node", "Node", f'label_values(wattprint_gpu_info{sel(cluster="$cluster")}, hostname)',
                          "GPU nodes (the exporter's `hostname` label) of the selected clusters.")


def project_variable() -> dashboard.QueryVariable:
    return query_variable("project", "Project",
                          f'label_values(wattprint_job_project_info{sel(cluster="$cluster")}, project)',
                          "Projects with running jobs in the ledger (`wattprint serve-intensity --db`).")


def phase_variable() -> dashboard.QueryVariable:
    return query_variable("phase", "Phase",
                          f'label_values(wattprint_job_project_info{sel(cluster="$cluster", project="$project")}, '
                          "phase)",
                          "Phases (pretraining, finetuning, …) of the selected projects' running jobs.")


def job_variable() -> dashboard.QueryVariable:
    return query_variable("job", "Job",
                          "label_values(wattprint_job_project_info"
                          f'{sel(cluster="$cluster", project="$project", phase="$phase")}, job_id)',
                          "Running jobs (`job_id`) of the selected projects and phases.")


def new_dashboard(uid: str, title: str, description: str,
                  variables: Sequence[dashboard.QueryVariable | dashboard.DatasourceVariable]) -> dashboard.Dashboard:
    board = (dashboard.Dashboard(title).uid(uid).description(description).tags(TAGS).refresh(REFRESH)
             .time("now-24h", "now").timezone("utc").tooltip(dm.DashboardCursorSync.CROSSHAIR).editable()
             .timepicker(dashboard.TimePicker().refresh_intervals(["30s", "1m", "5m", "15m", "1h"]))
             # Grafana's own "Annotations & Alerts" query, as every dashboard saved by Grafana has it
             .annotation(dashboard.AnnotationQuery().name("Annotations & Alerts").type("dashboard").built_in(1)
                         .datasource(dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
                         .enable(True).hide(True).icon_color("rgba(0, 211, 255, 1)")))
    for v in variables:
        board = board.with_variable(v)
    return board


# -- the dashboards -----------------------------------------------------------------------------------------


def cluster_overview() -> dashboard.Dashboard:
    board = new_dashboard(
        "wattprint-cluster", "wattprint / Cluster overview",
        "GPU power, energy, emissions, grid intensity and idle share per cluster, from the wattprint exporters and "
        "the intensity exporter.",
        [datasource_variable(), cluster_variable(), node_variable()])
    energy_rate = f"rate(wattprint_gpu_energy_joules_total{GPU}[$__rate_interval])"
    idle_rate = f"rate(wattprint_gpu_idle_energy_joules_total{GPU}[$__rate_interval])"
    grid = Layout(board)
    grid.row("Now and over the selected range")
    grid.panels(
        stat_panel("GPU power", "Power the selected GPUs draw now (sum of `wattprint_gpu_power_watts`).", W,
                   Target(f"sum(wattprint_gpu_power_watts{GPU})", "power")),
        stat_panel("Emission rate", "Emissions per hour at the current power, grid intensity and PUE "
                   "(recording rule `gpu:wattprint_emission_rate_grams_per_second`, × 3600).", G_PER_H,
                   Target(f"sum(gpu:wattprint_emission_rate_grams_per_second{GPU}) * 3600", "emission rate")),
        stat_panel("Energy in range", "GPU energy over the dashboard's time range, from the hardware energy "
                   "counters (`increase(wattprint_gpu_energy_joules_total[$__range])`).", KWH,
                   Target(f"sum(increase(wattprint_gpu_energy_joules_total{GPU}[$__range])) / 3.6e6", "energy")),
        stat_panel("Emissions in range", "GPU energy × the grid intensity of each step's time × PUE, summed over the "
                   "dashboard's time range (operational emissions, CO₂eq).", G,
                   Target(integral(f"sum by (cluster) ({energy_rate}) * on (cluster) group_left () {INTENSITY} "
                                   f"* on (cluster) group_left () {PUE} / 3.6e6"), "emissions")),
        stat_panel("Idle share", "Share of the GPU energy in the range spent with no job on the GPU "
                   "(`wattprint_gpu_idle_energy_joules_total` / `wattprint_gpu_energy_joules_total`).", RATIO,
                   Target(f"sum(increase(wattprint_gpu_idle_energy_joules_total{GPU}[$__range])) / "
                          f"sum(increase(wattprint_gpu_energy_joules_total{GPU}[$__range]))", "idle share"),
                   thresholds=[(None, "green"), (0.3, "orange"), (0.6, "red")], decimals=1),
        stat_panel("GPUs reporting", "GPUs whose last poll read their energy (`wattprint_gpu_up`), and all GPUs "
                   "the exporters know.", COUNT,
                   Target(f"sum(wattprint_gpu_up{GPU})", "up"), Target(f"count(wattprint_gpu_up{GPU})", "known")),
    )
    grid.row("Power and emissions")
    grid.panels(
        timeseries_panel("GPU power by cluster", "Sum of `wattprint_gpu_power_watts` per cluster.", W,
                         Target(f"sum by (cluster) (wattprint_gpu_power_watts{GPU})", "{{cluster}}")),
        timeseries_panel("Emission rate by cluster", "Emissions per hour: GPU power × the cluster's zone intensity × "
                         "PUE (recording rule `gpu:wattprint_emission_rate_grams_per_second`, × 3600).", G_PER_H,
                         Target(f"sum by (cluster) (gpu:wattprint_emission_rate_grams_per_second{GPU}) * 3600",
                                "{{cluster}}")),
        timeseries_panel("Energy per day", "GPU energy per cluster over the 24 hours before each point "
                         "(`increase(wattprint_gpu_energy_joules_total[1d])`): the daily energy, rolling.", KWH,
                         Target(f"sum by (cluster) (increase(wattprint_gpu_energy_joules_total{GPU}[1d])) / 3.6e6",
                                "{{cluster}}")),
        timeseries_panel("Grid intensity by zone", "Carbon intensity in force in each zone of the selected clusters "
                         "(recording rule `cluster:wattprint_grid_intensity_grams_per_kwh:max`, from "
                         "`wattprint serve-intensity`).", G_PER_KWH,
                         Target(f'max by (zone) ({INTENSITY}{sel(cluster="$cluster")})', "{{zone}}")),
        timeseries_panel("Idle share by cluster", "Share of GPU energy drawn with no job on the GPU, per cluster "
                         "(idle energy counter rate / GPU energy counter rate).", RATIO,
                         Target(f"sum by (cluster) ({idle_rate}) / sum by (cluster) ({energy_rate})", "{{cluster}}"),
                         max_val=1),
        bargauge_panel("Power by node", "Power each node's GPUs draw now, largest first.", W,
                       Target(f"sort_desc(sum by (cluster, hostname) (wattprint_gpu_power_watts{GPU}))",
                              "{{cluster}} / {{hostname}}")),
    )
    return board


def project_carbon() -> dashboard.Dashboard:
    board = new_dashboard(
        "wattprint-carbon", "wattprint / Project and job carbon",
        "Emissions of projects, phases and jobs: running jobs come from the ledger (`wattprint_job_project_info`), "
        "energy from the exporters' per-job counters, intensity and PUE from the recording rules.",
        [datasource_variable(), cluster_variable(), node_variable(), project_variable(), phase_variable(),
         job_variable()])
    job_rule = f"job:wattprint_emission_rate_grams_per_second{JOB_SEL}"
    job_rule_ledger = f"{job_rule} * on (cluster, job_id) group_left (project, phase) {LEDGER}"
    per_job = "cluster, job_id, project, phase"
    top_emissions = f"topk(10, {integral(JOB_EMISSION_RATE, per_job)})"
    grid = Layout(board)
    grid.row("Selection")
    grid.panels(
        stat_panel("Emission rate", "Emissions per hour of the selected running jobs, now (recording rule "
                   "`job:wattprint_emission_rate_grams_per_second` joined to the ledger, × 3600).", G_PER_H,
                   Target(f"sum({job_rule_ledger}) * 3600", "emission rate"), w=6),
        stat_panel("Emissions in range", "Emissions of the selected jobs over the dashboard's time range: per-job "
                   "energy × intensity at each step × PUE.", G,
                   Target(integral(JOB_EMISSION_RATE), "emissions"), w=6),
        stat_panel("Energy in range", "GPU energy of the selected jobs over the dashboard's time range "
                   "(per-job energy counters of the exporters).", KWH,
                   Target(integral(JOB_POWER_IN_LEDGER) + " / 3.6e6", "energy"), w=6),
        stat_panel("Running jobs", "Jobs of the selection the ledger has running and an exporter sees on a GPU.",
                   COUNT,
                   Target(f"count({LEDGER} * on (cluster, job_id) group_left () group by (cluster, job_id) "
                          f"(wattprint_job_info{JOB_SEL}))", "jobs"), w=6),
    )
    grid.row("Projects and phases")
    grid.panels(
        timeseries_panel("Emission rate by project and phase", "Emissions per hour of the selected jobs, stacked by "
                         "project and phase (job recording rule joined to the ledger, × 3600).", G_PER_H,
                         Target(f"sum by (project, phase) ({job_rule_ledger}) * 3600", "{{project}} / {{phase}}"),
                         stack=True),
        bargauge_panel("Cumulative emissions by phase", "Emissions accumulated over the dashboard's time range, per "
                       "project and phase.", G,
                       Target(integral(JOB_EMISSION_RATE, "project, phase"), "{{project}} / {{phase}}")),
        timeseries_panel("Project emission rate and budget pace", "Emissions per hour of each selected project "
                         "(recording rule `project:wattprint_emission_rate_grams_per_second`, × 3600: all its running "
                         "jobs, whatever the phase, job and node selection) against the pace its monthly budget "
                         "allows (`wattprint_project_carbon_budget_grams` / 720 h).", G_PER_H,
                         Target(f'project:wattprint_emission_rate_grams_per_second{sel(project="$project")} * 3600',
                                "{{project}}"),
                         Target(f'max by (project) (wattprint_project_carbon_budget_grams{sel(project="$project")}) '
                                "/ 720", "{{project}} budget pace")),
        bargauge_panel("Budget used, last 30 days", "Emissions of each selected project over the last 30 days "
                       "(this panel's own time range; all its jobs), as a share of its monthly budget "
                       "(`wattprint_project_carbon_budget_grams`, config `budgets`). Projects without a budget are "
                       "not shown. The alert uses the same quantity, `project:wattprint_emissions_grams:30d`.", RATIO,
                       Target(f"{integral(PROJECT_EMISSION_RATE, 'project')} / on (project) group_left () "
                              f'max by (project) (wattprint_project_carbon_budget_grams{sel(project="$project")})',
                              "{{project}}"),
                       max_val=1, thresholds=[(None, "green"), (0.8, "orange"), (1, "red")], time_from="30d"),
    )
    grid.row("Jobs")
    grid.panels(
        table_panel("Top jobs by emissions", "The 10 jobs of the selection that emitted most over the dashboard's "
                    "time range, with their GPU energy.", G,
                    Target(top_emissions),
                    Target(f"{integral(JOB_POWER_IN_LEDGER, per_job)} and on (cluster, job_id) {top_emissions}"),
                    columns={"Value #A": ("Emissions", G), "Value #B": ("Energy", J)}, sort_by="Emissions", w=12),
        timeseries_panel("Job power", "Power of each selected job, all its GPUs (recording rule "
                         "`job:wattprint_power_watts`).", W,
                         Target(f"sum by (cluster, job_id) (job:wattprint_power_watts{JOB_SEL} "
                                f"* on (cluster, job_id) group_left () {LEDGER})", "{{cluster}} {{job_id}}")),
        timeseries_panel("Energy of held but idle GPUs", "Energy of the GPUs each selected job held while they "
                         "were idle (utilisation under the exporter's `--held-idle-utilization`) over the last hour, "
                         "all its GPUs and nodes (recording rule `job:wattprint_held_idle_energy_joules:increase1h`, "
                         "from `wattprint_job_held_idle_energy_joules_total`): a part of its energy, charged to it. "
                         "The alert WattprintJobHoldingIdleGpus fires on the held-idle share of its GPU time.", J,
                         Target(f"sum by (cluster, job_id, project) (job:wattprint_held_idle_energy_joules:increase1h"
                                f"{JOB_SEL} * on (cluster, job_id) group_left (project) {LEDGER})",
                                "{{cluster}} {{job_id}} ({{project}})"), w=24),
        bargauge_panel("What the selection would have emitted elsewhere", "The selected jobs' GPU energy over the "
                       "range priced at each zone's intensity of the same hours (PUE left out, so zones compare on "
                       "grid carbon alone).", G,
                       Target(integral(f"sum({JOB_POWER_IN_LEDGER}) * on () group_right () "
                                       "zone:wattprint_grid_intensity_grams_per_kwh:max / 3.6e6", "zone"),
                              "{{zone}}"), w=24, h=7),
    )
    return board


def exporter_health() -> dashboard.Dashboard:
    board = new_dashboard(
        "wattprint-exporter", "wattprint / Exporter health",
        "Are the GPU exporters and the intensity exporter up, polling on time and reading without errors?",
        [datasource_variable(), cluster_variable(), node_variable()])
    per_node = "on (job, instance) group_left (cluster, hostname)"
    no_errors = f"0 * group by (cluster, hostname) (wattprint_gpu_info{GPU})"
    grid = Layout(board)
    grid.row("Targets")
    grid.panels(
        stat_panel("GPU exporters up", "GPU exporter targets Prometheus scraped successfully (`up`), of those seen "
                   "in the last hour.", COUNT,
                   Target(f"sum(up * on (job, instance) {EXPORTER_NODE_SEEN})", "up"),
                   Target(f"count(up * on (job, instance) {EXPORTER_NODE_SEEN})", "known")),
        stat_panel("Intensity exporter up", "`up` of the `wattprint serve-intensity` target(s).", COUNT,
                   Target("sum(up * on (job, instance) group by (job, instance) "
                          "(last_over_time(wattprint_intensity_exporter_build_info[1h])))", "up"),
                   thresholds=[(None, "red"), (1, "green")]),
        stat_panel("GPUs reporting", "GPUs whose last poll read their energy, of all GPUs the exporters know.",
                   COUNT,
                   Target(f"sum(wattprint_gpu_up{GPU})", "up"), Target(f"count(wattprint_gpu_up{GPU})", "known")),
        stat_panel("Slowest poll", "Longest last-poll duration among the selected exporters.", S,
                   Target(f"max(wattprint_exporter_poll_duration_seconds * {per_node} {EXPORTER_NODE})", "poll"),
                   thresholds=[(None, "green"), (0.5, "orange"), (1, "red")]),
        stat_panel("Collection errors in range", "Failed GPU reads over the dashboard's time range "
                   "(`wattprint_gpu_collection_errors_total`; 0 when none was ever counted).", COUNT,
                   Target(f"sum(increase(wattprint_gpu_collection_errors_total{GPU}[$__range])) or vector(0)",
                          "errors"),
                   thresholds=[(None, "green"), (1, "orange")]),
        stat_panel("Oldest intensity", "Age of the stalest intensity value served for the zones of the selected "
                   "clusters (`wattprint_grid_intensity_age_seconds`).", S,
                   Target(f"max(wattprint_grid_intensity_age_seconds * on (zone) group_left () {CLUSTER_ZONES})",
                          "age"),
                   thresholds=[(None, "green"), (7200, "orange"), (21600, "red")]),
    )
    grid.row("GPU exporters")
    grid.panels(
        stat_panel("Up, by node", "`up` of each GPU exporter seen in the last hour.", COUNT,
                   Target(f"max by (cluster, hostname) (up * {per_node} {EXPORTER_NODE_SEEN})",
                          "{{cluster}} / {{hostname}}"),
                   mappings={"0": ("DOWN", "red"), "1": ("UP", "green")},
                   thresholds=[(None, "red"), (1, "green")], w=24, h=4),
        timeseries_panel("Poll duration", "Duration of each exporter's last poll of its GPUs and jobs "
                         "(`wattprint_exporter_poll_duration_seconds`).", S,
                         Target(f"max by (cluster, hostname) (wattprint_exporter_poll_duration_seconds "
                                f"* {per_node} {EXPORTER_NODE})", "{{cluster}} / {{hostname}}")),
        timeseries_panel("Time since last successful poll", "Seconds since each exporter last read its backend "
                         "(`wattprint_exporter_last_successful_poll_timestamp_seconds`); alert above 60 s.", S,
                         Target(f"time() - max by (cluster, hostname) "
                                f"(wattprint_exporter_last_successful_poll_timestamp_seconds * {per_node} "
                                f"{EXPORTER_NODE})", "{{cluster}} / {{hostname}}")),
        timeseries_panel("Collector success", "1 when the collector (`gpu`, `jobs`, `rapl`, `cgroups`, `render`) "
                         "succeeded in the exporter's last poll (`wattprint_exporter_collector_success`); `rapl` "
                         "stays 0 on nodes without readable RAPL (VMs, root-only energy_uj: docs/exporter.md).", COUNT,
                         Target(f"min by (cluster, hostname, collector) (wattprint_exporter_collector_success "
                                f"* {per_node} {EXPORTER_NODE})", "{{cluster}} / {{hostname}} {{collector}}"),
                         max_val=1),
        bargauge_panel("Errors in range, by node", "Failed GPU reads (`wattprint_gpu_collection_errors_total`) and "
                       "skipped job-discovery entries (`wattprint_job_discovery_errors_total`) over the dashboard's "
                       "time range; 0 for a node with none.", COUNT,
                       Target(f"sum by (cluster, hostname) (increase(wattprint_gpu_collection_errors_total{GPU}"
                              f"[$__range])) or on (cluster, hostname) {no_errors}",
                              "{{cluster}} / {{hostname}} collection"),
                       Target(f"sum by (cluster, hostname) (increase(wattprint_job_discovery_errors_total[$__range]) "
                              f"* {per_node} {EXPORTER_NODE}) or on (cluster, hostname) {no_errors}",
                              "{{cluster}} / {{hostname}} job discovery"),
                       thresholds=[(None, "green"), (1, "orange")]),
        timeseries_panel("Scrape duration", "How long Prometheus took to scrape each GPU exporter "
                         "(`scrape_duration_seconds`).", S,
                         Target(f"max by (cluster, hostname) (scrape_duration_seconds * {per_node} {EXPORTER_NODE})",
                                "{{cluster}} / {{hostname}}"), w=24, h=7),
    )
    grid.row("Intensity exporter")
    grid.panels(
        timeseries_panel("Intensity age by zone", "Seconds since each zone's served intensity was refreshed from its "
                         "source (`wattprint_grid_intensity_age_seconds`).", S,
                         Target(f"max by (zone) (wattprint_grid_intensity_age_seconds * on (zone) group_left () "
                                f"{CLUSTER_ZONES})", "{{zone}}")),
        bargauge_panel("Intensity refresh errors in range", "Failed refreshes per zone over the dashboard's time "
                       "range (`wattprint_grid_intensity_refresh_errors_total`), 0 for a zone with none.", COUNT,
                       Target(f"sum by (zone) (increase(wattprint_grid_intensity_refresh_errors_total[$__range]) "
                              f"* on (zone) group_left () {CLUSTER_ZONES}) or on (zone) "
                              f"0 * sum by (zone) (wattprint_grid_intensity_refreshes_total * on (zone) group_left () "
                              f"{CLUSTER_ZONES})", "{{zone}}"),
                       thresholds=[(None, "green"), (1, "orange")]),
        table_panel("Intensity sources", "What each zone serves now: value, source, basis, and whether it is the "
                    "shipped annual fallback (1).", G_PER_KWH,
                    Target(f"max by (zone, source, basis) (wattprint_grid_intensity_grams_per_kwh * on (zone) "
                           f"group_left () {CLUSTER_ZONES})"),
                    Target(f"max by (zone) (wattprint_grid_intensity_fallback * on (zone) group_left () "
                           f"{CLUSTER_ZONES})"),
                    columns={"Value #A": ("Intensity", G_PER_KWH), "Value #B": ("Fallback", COUNT)}),
    )
    return board


DASHBOARDS = {
    "wattprint-cluster.json": cluster_overview,
    "wattprint-carbon.json": project_carbon,
    "wattprint-exporter.json": exporter_health,
}


def render(builder: dashboard.Dashboard) -> str:
    """Stable JSON: the SDK's encoding, keys sorted, UTF-8, one trailing newline."""
    model = json.loads(JSONEncoder().encode(builder.build()))
    return json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    return {name: render(make()) for name, make in DASHBOARDS.items()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help=f"output directory (default {OUT_DIR})")
    args = ap.parse_args(argv)
    stale = []
    for name, text in generate().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run: python grafana/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
