"""The phase blocks of a report, in the words of the IDEFICS model card's "Environmental Impact" section: per phase
its hardware, hours, provider, region, energy and emissions (measured phases from the scope's rows; manual phases,
declared in an --estimates file, as their own blocks estimated from TDP), and the hardware of the whole report."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import duckdb

from ..emissions import emissions_g
from ..estimate import ManualPhase
from ..records import PHASES
from ..settings import Settings
from .layers import Sums, share
from .query import inline, rows
from .scope import ReportOptions, embodied_rate, ts
from .types import CpuHardware, GpuHardware, Phase, PhaseCluster, PhaseCpu, PhaseGpu
from .window import Window

PROVIDER_NAMES = {"aws": "AWS", "gcp": "Google Cloud", "azure": "Azure", "onprem": "on-premises"}


def phase_order(phase: str) -> tuple[int, str]:
    return (PHASES.index(phase) if phase in PHASES else len(PHASES) - 1, phase)


def phase_blocks(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions,
                 estimates: list[ManualPhase]) -> list[tuple[Phase, Sums]]:
    """The phase blocks, each with the sums behind it: the measured phases, and a block per group of manual phases
    (same phase and name), in phase order, measured first."""
    sums = {r["phase"]: Sums.of(r) for r in rows(con, "rpt_sums_by_phase")}
    jobs = {r["phase"]: r["jobs"] for r in inline(
        con, "SELECT phase, count(DISTINCT (cluster, job_id)) AS jobs FROM rpt_rows GROUP BY 1")}
    hw: dict[str, list[PhaseGpu]] = defaultdict(list)
    for r in rows(con, "rpt_phase_gpus"):
        hw[r["phase"]].append(PhaseGpu(model=r["gpu_model"] or "unknown model", gpus=int(r["gpus"]),
                                       gpu_hours=float(r["gpu_seconds"]) / 3600))
    cpu_hw: dict[str, list[PhaseCpu]] = defaultdict(list)
    for r in rows(con, "rpt_phase_cpus"):
        cpu_hw[r["phase"]].append(PhaseCpu(model=r["cpu_model"] or "unknown CPU model", sockets=int(r["sockets"]),
                                           hosts=int(r["hosts"])))
    cl: dict[str, list[PhaseCluster]] = defaultdict(list)
    for r in rows(con, "rpt_phase_clusters"):
        e, ce = r["energy_j"], r["cpu_j"]
        cl[r["phase"]].append(PhaseCluster(
            cluster=r["cluster"], provider=r["provider"], region=r["region"], zone=r["zone"], pue=r["pue"],
            pue_known=bool(r["pue_known"]), energy_kwh=e / 3.6e6, cpu_energy_kwh=ce / 3.6e6,
            intensity_g_per_kwh=share(r["gpu_g"] + r["cpu_g"], (e + ce) / 3.6e6)))
    wall = wall_clock(con, o.window)

    blocks: list[tuple[Phase, Sums]] = []
    for phase in sorted(sums, key=phase_order):
        s = sums[phase]
        blocks.append((_block(o, phase, "measured", s, hw[phase], cpu_hw[phase], cl[phase], wall.get(phase, 0.0),
                              int(jobs.get(phase, 0))), s))
    for key, group in _group_estimates(estimates).items():
        s, hw_e, cpu_e, cl_e, hours = _estimate_sums(settings, o, group)
        blocks.append((_block(o, key[0], "estimated (TDP)", s, hw_e, cpu_e, cl_e, hours, 0, group), s))
    blocks.sort(key=lambda b: (phase_order(b[0].phase), b[0].label != "measured"))
    return blocks


def cpu_name(model: str) -> str:
    """A CPU model name as /proc/cpuinfo gives it, without the clock or 'Processor' suffix, for the phase text:
    'Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz' -> 'Intel(R) Xeon(R) Gold 6248',
    'AMD EPYC 7763 64-Core Processor' -> 'AMD EPYC 7763'."""
    name = re.sub(r"\s*@\s*[\d.]+\s*[GM]Hz$", "", model.strip())
    name = re.sub(r"\s+(?:\d+-Core\s+)?Processor$", "", name)
    return re.sub(r"\s+CPU$", "", name) or model


def _hardware_text(gpus: Sequence[PhaseGpu], cpus: Sequence[PhaseCpu]) -> str:
    """CPUs, then GPUs, in the model card's words: "2 Intel(R) Xeon(R) Gold 6248 CPUs, 4 NVIDIA A100 ... GPUs"."""
    parts = [f"{h.sockets:,} {cpu_name(h.model)} CPUs" if h.sockets else f"{cpu_name(h.model)} CPUs" for h in cpus]
    parts += [f"{h.gpus:,} {h.model} GPUs" if h.gpus else f"{h.model} GPUs" for h in gpus]
    return ", ".join(parts) or "no GPU measured"


def _region_text(c: PhaseCluster) -> str:
    where = c.region or c.cluster or "unknown region"
    zone = f"zone {c.zone}, " if c.zone else "zone unknown, "
    return f"{where} ({zone}{c.intensity_g_per_kwh:,.0f} gCO2eq/kWh)"


def _block(o: ReportOptions, phase: str, label: str, s: Sums, hw: Sequence[PhaseGpu], cpu_hw: Sequence[PhaseCpu],
           clusters: Sequence[PhaseCluster], wall_h: float | None, jobs: int,
           estimates: Sequence[ManualPhase] = ()) -> Phase:
    title = f"{o.project} {phase}" if o.project else phase
    if estimates and estimates[0].name:
        title = f"{o.project or estimates[0].project} {estimates[0].name}"
    return Phase(
        phase=phase,
        label=label,
        title=title,
        hardware=tuple(hw),
        cpu_hardware=tuple(cpu_hw),
        hardware_text=_hardware_text(hw, cpu_hw),
        gpu_hours=s.gpu_s / 3600.0,
        cpu_hours=s.cpu_s / 3600.0,
        wall_clock_hours=wall_h,
        jobs=jobs,
        clusters=tuple(clusters),
        provider_text="; ".join(
            f"{PROVIDER_NAMES.get(c.provider, c.provider)} (cluster {c.cluster})" if c.cluster
            else PROVIDER_NAMES.get(c.provider, c.provider) for c in clusters),
        region_text="; ".join(_region_text(c) for c in clusters),
        energy_kwh=s.energy_j / 3.6e6,
        cpu_energy_kwh=s.cpu_j / 3.6e6,
        cpu_package_kwh=s.cpu_pkg_j / 3.6e6,
        cpu_dram_kwh=s.cpu_dram_j / 3.6e6,
        intensity_g_per_kwh=s.intensity(),
        emissions_kg=s.headline_kg(o),
        layers=s.layers(o),
        sources=tuple(e.origin for e in estimates),
    )


def hardware_total(con: duckdb.DuckDBPyConnection, phases: Sequence[Phase]) -> tuple[GpuHardware, ...]:
    """Distinct measured GPUs per model over the whole scope (a GPU used by two phases counts once), then
    the estimated phases' declared GPUs."""
    out = [GpuHardware(model=r["gpu_model"] or "unknown model", gpus=int(r["gpus"]), measured=True)
           for r in rows(con, "rpt_gpus")]
    for p in phases:
        if p.label != "measured":
            out += [GpuHardware(model=h.model, gpus=h.gpus, measured=False) for h in p.hardware]
    return tuple(out)


def cpu_hardware_total(con: duckdb.DuckDBPyConnection, phases: Sequence[Phase]) -> tuple[CpuHardware, ...]:
    """Distinct measured CPU sockets (with RAPL energy) per CPU model over the whole scope, then the estimated
    phases' CPU models (sockets unknown: 0)."""
    out = [CpuHardware(model=r["cpu_model"] or "unknown CPU model", sockets=int(r["sockets"]), hosts=int(r["hosts"]),
                       measured=True) for r in rows(con, "rpt_cpus")]
    for p in phases:
        if p.label != "measured":
            out += [CpuHardware(model=h.model, sockets=h.sockets, hosts=h.hosts, measured=False)
                    for h in p.cpu_hardware or ()]
    return tuple(out)


def wall_clock(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, float]:
    """Hours during which at least one job of the phase ran (ledger start/end, else the hours with energy)."""
    spans: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for r in rows(con, "rpt_job_spans"):
        start, end = r["start_ts"], r["end_ts"]
        s = max(ts(start) if start is not None else ts(r["first_hour"]), w.start)
        e = min(ts(end) if end is not None else ts(r["last_hour"]) + timedelta(hours=1), w.end)
        if e > s:
            spans[r["phase"]].append((s, e))
    return {phase: _union_hours(iv) for phase, iv in spans.items()}


def _union_hours(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None and cur_s is not None:
                total += (cur_e - cur_s).total_seconds()
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None and cur_s is not None:
        total += (cur_e - cur_s).total_seconds()
    return total / 3600.0


# -- manual phases (estimates) ---------------------------------------------------------------------------

def _group_estimates(estimates: list[ManualPhase]) -> dict[tuple[str, str], list[ManualPhase]]:
    out: dict[tuple[str, str], list[ManualPhase]] = defaultdict(list)
    for e in estimates:
        out[(e.phase, e.name or "")].append(e)
    return out


def estimate_sums(settings: Settings, o: ReportOptions, e: ManualPhase) -> Sums:
    """One manual phase's sums, as its block would count it (the SCI's share of a project's phase, per project)."""
    return _estimate_sums(settings, o, [e])[0]


def _estimate_sums(settings: Settings, o: ReportOptions, group: list[ManualPhase]
                   ) -> tuple[Sums, list[PhaseGpu], list[PhaseCpu], list[PhaseCluster], float | None]:
    """A group of manual phases as the sums of a block: TDP energy priced at the declared intensity, PUE overhead,
    embodied emissions of the declared GPU-hours; the GPU and CPU models; one cluster line per entry."""
    s = Sums()
    hw: dict[str, PhaseGpu] = {}
    cpu_hw: dict[str, PhaseCpu] = {}
    clusters: list[PhaseCluster] = []
    hours: float | None = 0.0
    for e in group:
        r = e.estimate
        gpu_j = r.gpu_it_j
        gpu_g = emissions_g(gpu_j, r.intensity_g_per_kwh)
        cpu_j = r.cpu_it_j
        cpu_g = emissions_g(cpu_j, r.intensity_g_per_kwh)
        rate = embodied_rate(settings, e.cluster, r.gpu_model or "", o).kg_per_gpu_hour if r.gpu_hours else 0.0
        s = s.add(Sums(energy_j=gpu_j, gpu_g=gpu_g, pue_gpu_j=(r.pue - 1) * gpu_j, pue_gpu_g=(r.pue - 1) * gpu_g,
                       emb_g=r.gpu_hours * rate * 1000.0, gpu_s=r.gpu_hours * 3600.0,
                       cpu_j=cpu_j, cpu_g=cpu_g, cpu_s=r.cpu_hours * 3600.0,
                       pue_cpu_j=(r.pue - 1) * cpu_j, pue_cpu_g=(r.pue - 1) * cpu_g))
        if r.gpu_hours:
            model = r.gpu_model or "unknown model"
            entry = hw.get(model, PhaseGpu(model=model, gpus=0, gpu_hours=0.0))
            hw[model] = PhaseGpu(model=model, gpus=entry.gpus + int(r.gpus or 0),
                                 gpu_hours=entry.gpu_hours + r.gpu_hours)
        if r.cpu_hours:
            cpu = r.cpu_model or "unknown CPU model"
            cpu_hw.setdefault(cpu, PhaseCpu(model=cpu, sockets=0, hosts=0))
        hours = None if hours is None or r.hours is None else max(hours, r.hours)
        clusters.append(PhaseCluster(cluster=e.cluster or "", provider=e.provider or "onprem", region=e.region or "",
                                     zone=r.region, pue=r.pue, pue_known=True, energy_kwh=gpu_j / 3.6e6,
                                     cpu_energy_kwh=cpu_j / 3.6e6, intensity_g_per_kwh=r.intensity_g_per_kwh))
    return s, list(hw.values()), list(cpu_hw.values()), clusters, hours
