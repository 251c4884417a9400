"""The accounting layers: `Sums` (the joules, grams and seconds of every layer over some rows of the scope, read by
column name from the rpt_sums*.sql statements), the arithmetic that turns them into each layer's energy and
emissions and the headline, and the sections that explain it (method, layers table, equivalences)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from .. import equivalences as epa
from .. import hardware
from ..config import LAYERS
from .scope import ReportOptions
from .types import (
    CpuLayer,
    Embodied,
    EmbodiedLayer,
    EmbodiedRate,
    Equivalences,
    IdleLayer,
    LayerFigures,
    LayerRow,
    Method,
    NodeLayer,
    PhaseLayers,
)

LAYER_TITLES = {
    "gpu": "GPU energy of the jobs (measured)",
    "cpu": "CPU energy of the jobs (measured: package + DRAM)",
    "node": "node residual of the jobs (BMC node energy less GPU boards and RAPL: fans, NICs, PSU losses)",
    "idle": "share of idle and unallocated GPU energy and host idle energy",
    "pue": "data-centre overhead (PUE)",
    "embodied": "embodied emissions of the GPUs (amortised)",
}


@dataclass(frozen=True)
class Sums:
    """Joules, grams and seconds of every layer over some rows (see rpt_scope.sql for each column). The rpt_sums*.sql
    statements return one column named as each field."""

    energy_j: float = 0.0          # GPU energy of the jobs
    gpu_g: float = 0.0
    idle_j: float = 0.0            # share of idle GPU energy
    idle_g: float = 0.0
    pue_gpu_j: float = 0.0
    pue_gpu_g: float = 0.0
    pue_idle_j: float = 0.0
    pue_idle_g: float = 0.0
    emb_g: float = 0.0
    gpu_s: float = 0.0
    cpu_j: float = 0.0             # host energy of the jobs (package + DRAM)
    cpu_g: float = 0.0
    cpu_pkg_j: float = 0.0         # of which package
    cpu_dram_j: float = 0.0        # of which DRAM (estimated phases split neither)
    cpu_s: float = 0.0             # CPU time, core-seconds
    cpu_idle_j: float = 0.0        # share of host idle energy
    cpu_idle_g: float = 0.0
    pue_cpu_j: float = 0.0
    pue_cpu_g: float = 0.0
    pue_cpu_idle_j: float = 0.0
    pue_cpu_idle_g: float = 0.0
    node_j: float = 0.0            # the jobs' share of the node residual (BMC node energy - GPU boards - RAPL)
    node_g: float = 0.0
    node_idle_j: float = 0.0       # share of node idle (the residual no job's share of a node accounts for)
    node_idle_g: float = 0.0
    pue_node_j: float = 0.0
    pue_node_g: float = 0.0
    pue_node_idle_j: float = 0.0
    pue_node_idle_g: float = 0.0

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Sums:
        """From a row with a column named as each field (NULL: 0)."""
        return cls(**{name: float(row[name] or 0.0) for name in SUM_FIELDS})

    def add(self, other: Sums) -> Sums:
        return Sums(**{name: getattr(self, name) + getattr(other, name) for name in SUM_FIELDS})

    def layers(self, o: ReportOptions) -> PhaseLayers:
        """Each layer's energy and emissions. The host parts of idle and pue follow the cpu layer, the node parts the
        node layer: without them, they are 0 and the figures are those of a GPU-only report. The node layer is there
        when the store has node (BMC) data in the window (o.node_data), selected or not."""
        k = 1.0 if o.inc_idle else 0.0
        c = 1.0 if o.inc_cpu else 0.0
        n = 1.0 if o.inc_node else 0.0
        return PhaseLayers(
            gpu=LayerFigures(energy_kwh=self.energy_j / 3.6e6, emissions_kg=self.gpu_g / 1000.0),
            cpu=CpuLayer(energy_kwh=self.cpu_j / 3.6e6, emissions_kg=self.cpu_g / 1000.0,
                         package_kwh=self.cpu_pkg_j / 3.6e6, dram_kwh=self.cpu_dram_j / 3.6e6,
                         cpu_hours=self.cpu_s / 3600.0),
            node=NodeLayer(energy_kwh=self.node_j / 3.6e6, emissions_kg=self.node_g / 1000.0) if o.node_data else None,
            idle=IdleLayer(energy_kwh=(self.idle_j + c * self.cpu_idle_j + n * self.node_idle_j) / 3.6e6,
                           emissions_kg=(self.idle_g + c * self.cpu_idle_g + n * self.node_idle_g) / 1000.0,
                           gpu_energy_kwh=self.idle_j / 3.6e6, cpu_energy_kwh=c * self.cpu_idle_j / 3.6e6,
                           node_energy_kwh=self.node_idle_j / 3.6e6 if o.inc_node else None),
            pue=LayerFigures(energy_kwh=(self.pue_gpu_j + c * self.pue_cpu_j + n * self.pue_node_j
                                         + k * (self.pue_idle_j + c * self.pue_cpu_idle_j
                                                + n * self.pue_node_idle_j)) / 3.6e6,
                             emissions_kg=(self.pue_gpu_g + c * self.pue_cpu_g + n * self.pue_node_g
                                           + k * (self.pue_idle_g + c * self.pue_cpu_idle_g
                                                  + n * self.pue_node_idle_g)) / 1000.0),
            embodied=EmbodiedLayer(emissions_kg=self.emb_g / 1000.0, gpu_hours=self.gpu_s / 3600.0),
        )

    def headline_kg(self, o: ReportOptions) -> float:
        layers = self.layers(o)
        return sum(float(_layer(layers, name).emissions_kg or 0.0) for name in included(o))

    def operational_g(self, o: ReportOptions) -> float:
        """Headline without embodied: what moving the work to another region changes."""
        k = 1.0 if o.inc_idle else 0.0
        c = 1.0 if o.inc_cpu else 0.0
        n = 1.0 if o.inc_node else 0.0
        p = 1.0 if "pue" in o.layers else 0.0
        return (self.gpu_g + c * self.cpu_g + n * self.node_g
                + k * (self.idle_g + c * self.cpu_idle_g + n * self.node_idle_g)
                + p * (self.pue_gpu_g + c * self.pue_cpu_g + n * self.pue_node_g
                       + k * (self.pue_idle_g + c * self.pue_cpu_idle_g + n * self.pue_node_idle_g)))

    def facility_kwh(self, o: ReportOptions) -> float:
        layers = self.layers(o)
        return sum(float(_layer(layers, n).energy_kwh or 0.0) for n in ("gpu", "cpu", "node", "idle", "pue")
                   if n in included(o))

    def intensity(self) -> float:
        """Energy-weighted intensity applied to the own GPU and CPU energy (gCO2eq/kWh)."""
        return share(self.gpu_g + self.cpu_g, (self.energy_j + self.cpu_j) / 3.6e6)


SUM_FIELDS = tuple(f.name for f in fields(Sums))


def _layer(layers: PhaseLayers, name: str) -> LayerFigures | EmbodiedLayer:
    value = layers.layer(name)
    if value is None:                 # Sums.layers fills every layer but node, which needs node data
        assert name == "node"
        return NodeLayer(energy_kwh=0.0, emissions_kg=0.0)
    return value


def included(o: ReportOptions) -> tuple[str, ...]:
    """The layers in the headline: the selected ones, idle only under the pro-rata policy, node only with node data."""
    return tuple(n for n in LAYERS if n in o.layers and (n != "idle" or o.idle_policy == "pro-rata")
                 and (n != "node" or o.node_data))


def share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def fraction(part: float, whole: float) -> float:
    """A share of a whole summed separately: kept in [0, 1] against floating-point rounding."""
    return min(1.0, max(0.0, share(part, whole)))


# -- the sections that explain the layers ----------------------------------------------------------------

def method(o: ReportOptions, rates: list[EmbodiedRate]) -> Method:
    inc = included(o)
    host = " and the host idle energy (RAPL energy of the CPU sockets no job's CPU time accounts for) by CPU-seconds" \
        if o.inc_cpu else ""
    idle = ("each cluster-hour's idle and unallocated GPU energy is shared among the jobs that ran in it, "
            f"pro rata by GPU-hours{host}" if o.idle_policy == "pro-rata"
            else "idle and unallocated GPU energy and host idle energy are reported per cluster, not charged to "
                 "projects")
    cpu = ("CPU energy (package and DRAM of each socket) comes from the hosts' RAPL energy counters, split among "
           "the jobs on a host by their share of its CPU time, and is priced the same way; " if o.inc_cpu else
           "CPU energy is shown but not in the headline (nor in the idle share and overhead); ")
    if o.inc_node:      # the sentences are there only with the layer: reports without it read as before
        idle = (idle + ", and the node idle energy by the jobs' node residual" if o.idle_policy == "pro-rata" else
                idle.replace(" and host idle energy are", ", host idle energy and node idle energy are"))
        cpu += ("the node residual is each node-hour's whole-node energy from its BMC less what its GPU boards and "
                "RAPL domains measured (never below 0: hours the BMC read less are flagged), shared among the node's "
                "jobs by their GPU-seconds (CPU-seconds on a node without GPU jobs), the unallocated rest node idle; ")
    statement = (
        "Headline = " + " + ".join(layer_title(n, o) for n in inc) + ". "
        "GPU energy comes from the GPUs' hardware energy counters (power gauges integrated only where no counter "
        "exists) and is priced hour by hour with the grid carbon intensity of the cluster's zone; " + cpu + idle +
        "; the data-centre overhead is (PUE - 1) x that energy; embodied emissions are each GPU model's "
        f"manufacturing footprint over {o.lifetime_years:g} years at {o.utilisation:.0%} utilisation, "
        "per GPU-hour." + ("" if "embodied" in inc else " Embodied emissions are shown but not in the headline.")
    )
    return Method(layers_selected=inc, idle_policy=o.idle_policy, statement=statement,
                  embodied=Embodied(lifetime_years=o.lifetime_years, utilisation=o.utilisation,
                                    default_kgco2eq_per_gpu=hardware.DEFAULT_EMBODIED_KGCO2EQ_PER_GPU,
                                    source=hardware.EMBODIED_DEFAULT_SOURCE, rates=tuple(rates)))


def layer_rows(total: Sums, o: ReportOptions) -> tuple[LayerRow, ...]:
    """The accounting-layers table: every layer, selected or not, with how it is computed."""
    values = total.layers(o)
    inc = included(o)
    host = " (GPU-seconds), and host idle energy by CPU-seconds" if o.inc_cpu else ""
    methods = {
        "gpu": "sum over the jobs' (job, GPU, hour) rows of energy x that hour's intensity",
        "cpu": "sum over the jobs' (job, host, socket, RAPL domain, hour) rows of energy x that hour's intensity",
        "idle": (f"pro rata by GPU-hours within each cluster-hour{host}"
                 + (", and node idle energy by the jobs' node residual" if o.inc_node else "")
                 if o.idle_policy == "pro-rata"
                 else "reported separately per cluster (idle policy 'separate'): not charged"),
        "node": ("per node-hour, the BMC's node energy less the GPU boards and RAPL (0 where the BMC read less), "
                 "shared among the node's jobs by allocated GPU-seconds (CPU-seconds without GPU jobs), x that hour's "
                 "intensity"),
        "pue": "(PUE - 1) x the " + _and(["GPU", *(["CPU"] if o.inc_cpu else []),
                                          *(["node residual"] if o.inc_node else [])])
               + " energy in the headline, at the same hours' intensity",
        "embodied": "GPU-hours x per-GPU kgCO2eq / (lifetime hours x utilisation)",
    }
    out = []
    for n in LAYERS:
        if n == "node" and not o.node_data:      # no BMC data in the window: the layer is not listed
            continue
        v = _layer(values, n)
        cpu = v if isinstance(v, CpuLayer) else None
        idle = v if isinstance(v, IdleLayer) else None
        out.append(LayerRow(layer=n, title=layer_title(n, o), energy_kwh=v.energy_kwh, emissions_kg=v.emissions_kg,
                            included=n in inc, method=methods[n],
                            package_kwh=cpu.package_kwh if cpu is not None else None,
                            dram_kwh=cpu.dram_kwh if cpu is not None else None,
                            gpu_energy_kwh=idle.gpu_energy_kwh if idle is not None else None,
                            cpu_energy_kwh=idle.cpu_energy_kwh if idle is not None else None,
                            node_energy_kwh=idle.node_energy_kwh if idle is not None else None))
    return tuple(out)


def layer_title(name: str, o: ReportOptions) -> str:
    """A layer's title; the idle layer names node idle too when the node layer is selected."""
    if name == "idle" and o.inc_node:
        return "share of idle and unallocated GPU energy, host idle energy and node idle energy"
    return LAYER_TITLES[name]


def _and(words: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def equivalences(kg: float) -> Equivalences:
    e = epa.equivalents(kg)
    return Equivalences(miles_driven=e["miles_driven"], homes_energy_years=e["homes_energy_years"],
                        kg_per_mile=e["kg_per_mile"], kg_per_home_year=e["kg_per_home_year"],
                        source=f"{e['edition']}, {e['date']}, {e['url']}", edition=e["edition"],
                        sentence=epa.sentence(kg))
