"""The data-quality section: how the scope's energy was measured and priced, telemetry gaps and the GPU counter
check (gpu_checks.py), ledger jobs without energy, clusters without a PUE, nodes without readable RAPL, and the
warnings that put a banner on top of the report (thresholds in docs/reports.md)."""

from __future__ import annotations

import duckdb

from ..estimate import ManualPhase
from . import gpu_checks, node_checks
from .layers import Sums, fraction
from .query import one, rows
from .scope import ReportOptions
from .types import CpuEnergyShares, DataQuality, EnergyShares, IntensityShares, Rapl, RaplNode

COUNTER_QUALITIES = ("counter", "counter_reset", "counter_stepback", "first_sample")
INTENSITY_QUALITIES = ("hourly", "nearest_hour", "monthly_mean", "annual_default", "world_default", "declared")
# thresholds of the data-quality banner (docs/reports.md)
MIN_COUNTER_SHARE = 0.9
MIN_HOURLY_SHARE = 0.9
POOR_SHARE = 0.8
RAPL_WARN_SHARE = 0.01       # nodes without readable RAPL carrying at least this share of the GPU energy: warn
NO_RAPL = "no RAPL series (collector off or exporter without it)"


def quality(con: duckdb.DuckDBPyConnection, o: ReportOptions, estimates: list[ManualPhase],
            total: Sums) -> DataQuality:
    est_j = sum(e.estimate.gpu_it_j for e in estimates)
    est_cpu_j = sum(e.estimate.cpu_it_j for e in estimates)
    whole = total.energy_j
    by_energy = {r["quality"]: r["energy_j"] for r in rows(con, "rpt_quality_gpu_energy")}
    energy = EnergyShares(
        counter=fraction(sum(by_energy.get(q, 0.0) for q in COUNTER_QUALITIES), whole),
        counter_across_gap=fraction(by_energy.get("gap", 0.0) + by_energy.get("gap_reset", 0.0), whole),
        power_integrated=fraction(by_energy.get("power_integrated", 0.0), whole),
        estimated=fraction(est_j, whole),
    )
    by_cpu = {r["quality"]: r["cpu_j"] for r in rows(con, "rpt_quality_cpu_energy")}
    cpu_energy = CpuEnergyShares(
        counter=fraction(sum(by_cpu.get(q, 0.0) for q in COUNTER_QUALITIES), total.cpu_j),
        counter_across_gap=fraction(by_cpu.get("gap", 0.0) + by_cpu.get("gap_reset", 0.0), total.cpu_j),
        estimated=fraction(est_cpu_j, total.cpu_j),
    )
    all_j = whole + total.cpu_j
    by_int = {r["quality"]: r["energy_j"] for r in rows(con, "rpt_quality_intensity")}
    by_int["declared"] = est_j + est_cpu_j
    intensity = IntensityShares(**{q: fraction(by_int.get(q, 0.0), all_j) for q in INTENSITY_QUALITIES})
    gaps = gpu_checks.gaps(con, o.window)
    counters = gpu_checks.counters(con, o.window, fleet=o.kind == "fleet")
    amd = gpu_checks.amd_exporter(con, o.window, fleet=o.kind == "fleet")
    silent = one(con, "rpt_jobs_without_telemetry", {"project": o.project, "phases": list(o.phases),
                                                     "start": o.window.start, "end": o.window.end})["jobs"]
    unknown_pue = tuple(r["cluster"] for r in rows(con, "rpt_clusters_without_pue"))
    rapl = _rapl(con, o, whole - est_j)
    measured = energy.counter + energy.counter_across_gap + energy.power_integrated
    measured_all = fraction(all_j - est_j - est_cpu_j, all_j)
    counter_share = fraction(energy.counter + energy.counter_across_gap, measured)
    hourly_share = fraction(intensity.hourly + intensity.nearest_hour, measured_all)
    estimated_all = fraction(est_j + est_cpu_j, all_j)
    warnings = []
    if rapl.nodes and o.inc_cpu and all(n.samples == 0 for n in rapl.without) and rapl.nodes_without == rapl.nodes:
        warnings.append("no node in this report exported RAPL series, so its jobs' CPU energy (layer cpu) is not "
                        "measured: run the exporter with its RAPL collector where /sys/class/powercap is readable, "
                        "or leave cpu out of report.layers")
    elif rapl.nodes_without and o.inc_cpu and (rapl.unreadable_gpu_energy_share >= RAPL_WARN_SHARE
                                                or whole - est_j <= 0):
        shown = rapl.without[:5]
        more = f"; and {len(rapl.without) - len(shown)} more" if len(rapl.without) > len(shown) else ""
        warnings.append(
            f"{rapl.nodes_without} of the {rapl.nodes} nodes in this report had no readable RAPL for all or "
            "part of the window (" + "; ".join(f"{n.hostname}, {n.gpu_energy_share:.1%} of the GPU energy: "
                                               f"{n.reason}" for n in shown) + more +
            f"): about {rapl.unreadable_gpu_energy_share:.1%} of the measured GPU energy ran where the jobs' CPU "
            "energy is missing; enable the exporter's RAPL collector and make the powercap energy_uj files "
            "readable to it")
    if measured > 0 and counter_share < MIN_COUNTER_SHARE:
        warnings.append(f"only {counter_share:.1%} of the measured GPU energy comes from hardware energy counters; "
                        "the rest is integrated from power gauges, which can miss 5-30 % on bursty jobs")
    if measured_all > 0 and hourly_share < MIN_HOURLY_SHARE:
        fallbacks = ", ".join(f"{q.replace('_', ' ')} {getattr(intensity, q):.1%}" for q in
                              ("monthly_mean", "annual_default", "world_default") if getattr(intensity, q) > 0)
        warnings.append(f"only {hourly_share:.1%} of the measured energy is priced with hourly grid intensity "
                        f"(fallbacks: {fallbacks}); import hourly intensity for these zones")
    if intensity.world_default > 0:
        warnings.append(f"{intensity.world_default:.1%} of the energy is priced at the world-average intensity "
                        "because its cluster has no known zone; set clusters.<name>.zone in the config")
    if estimated_all > 0:
        warnings.append(f"{estimated_all:.1%} of the energy is estimated from TDP, not measured")
    if gaps.count:
        warnings.append(f"{gaps.count} telemetry gaps ({gaps.hours:,.1f} GPU-hours) on this report's GPUs: "
                        "energy across a counter gap is kept, power-gauge gaps are not filled")
    warnings += gpu_checks.warnings(gaps, counters, amd is not None)
    warnings += gpu_checks.amd_warnings(amd)
    if silent:
        warnings.append(f"{silent} jobs of the ledger ran in this window but have no measured energy")
    if unknown_pue and "pue" in o.layers:
        warnings.append(f"PUE unknown for cluster {', '.join(unknown_pue)}: 1.0 applied; set clusters.<name>.pue")
    node = node_checks.node_power(con, o)
    warnings += node_checks.warnings(node, o)
    poor = measured > 0 and (counter_share < POOR_SHARE or hourly_share < POOR_SHARE
                             or intensity.world_default > 0 or silent > 0 or counters.difference_gpu_hours > 0)
    return DataQuality(energy=energy, cpu_energy=cpu_energy, intensity=intensity, gaps=gaps, gpu_counters=counters,
                       jobs_without_telemetry=int(silent), clusters_without_pue=unknown_pue, rapl=rapl,
                       amd_exporter=amd, node=node, warnings=tuple(warnings), poor=bool(poor))


def _rapl(con: duckdb.DuckDBPyConnection, o: ReportOptions, gpu_j: float) -> Rapl:
    """The nodes in scope (hosts where the scope's jobs have GPU, CPU or CPU-time rows) whose RAPL could not be
    read in the window: no RAPL series at all, unreadable samples, or hours with jobs but no RAPL series."""
    nodes = rows(con, "rpt_rapl", {"start": o.window.start, "end": o.window.end})
    without: list[RaplNode] = []
    for node in nodes:
        hours, samples, readable, missing = node["hours"], node["samples"], node["readable"], node["missing"]
        reasons = []
        if samples == 0:
            reasons.append(NO_RAPL)
        else:
            if readable < samples:
                reasons.append(f"RAPL not readable in {samples - readable:,} of {samples:,} samples")
            if missing:
                reasons.append(f"no RAPL series in {missing:,} of its {hours:,} hours with jobs")
        if not reasons:
            continue
        # the part of the node's time without readable RAPL: all of it, else unreadable samples + hours without
        unreadable = 1.0 if samples == 0 else fraction((samples - readable) / samples + missing / hours, 1.0)
        without.append(RaplNode(cluster=node["cluster"], hostname=node["hostname"], reason="; ".join(reasons),
                                samples=int(samples), readable_samples=int(readable), hours=int(hours),
                                hours_without_rapl=int(missing), unreadable_share=unreadable,
                                gpu_energy_share=fraction(float(node["gpu_j"] or 0.0), gpu_j)))
    return Rapl(nodes=len(nodes), nodes_without=len(without),
                gpu_energy_share=fraction(sum(n.gpu_energy_share for n in without), 1.0),
                unreadable_gpu_energy_share=fraction(sum(n.gpu_energy_share * n.unreadable_share
                                                         for n in without), 1.0),
                without=tuple(without))
