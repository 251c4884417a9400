"""`wattprint estimate`: carbon of a run that has no telemetry, from hardware facts alone (as model cards do).

    gpu_energy_kwh = gpu_hours x tdp_watts / 1000 x pue
    cpu_energy_kwh = cpu_hours (core-hours) x watts per core / 1000 x pue
                     watts per core = --cpu-watts-per-core, or --cpu-watts-per-socket / --cores-per-socket
    energy_kwh     = gpu_energy_kwh + cpu_energy_kwh
    emissions_kg   = emissions_g(energy before PUE in J, intensity, pue) / 1000: the one emissions formula
                     (pipeline/emissions.py, the twin of the model's SQL macro emissions_g)

The GPU part, the CPU part or both may be given. The TDP comes from the shipped hardware table
(`wattprint/pipeline/hardware.py`) or `--tdp-watts`; the CPU power is always given (a socket's TDP over its cores is the
usual figure: there is no silent default); the intensity from `--intensity` or the shipped annual table row of
`--region`. Every GPU is assumed to draw its rated maximum for every GPU-hour and every core its share of the
socket's TDP for every core-hour, so this is an upper-bound style estimate, labelled `estimated (TDP)` wherever it
appears.

The same arithmetic serves the reports: `compute()` takes the inputs (strings or numbers) and returns an
`EstimateResult`, and `load_manual_phases()` reads a YAML file of phases that ran without telemetry (e.g. the
preliminary experiments of a model trained on a cluster without the exporter), one `ManualPhase` per entry.

Inputs are refused (InputError, exit 2) outside these bounds; they catch unit mistakes (kW for W, kg for g):

| input | accepted |
|---|---|
| TDP | 0 < W <= 2000 |
| GPUs | whole number, 1 ..= 1,000,000 |
| hours | 0 < h <= 100,000 (about 11 years) |
| GPU-hours (given, or GPUs x hours) | 0 < GPU-h <= 10,000,000,000 |
| CPU hours (core-hours) | 0 < h <= 100,000,000,000 |
| CPU watts per core | 0 < W <= 100 |
| CPU watts per socket | 0 < W <= 1000 |
| cores per socket | whole number, 1 ..= 1024 |
| intensity | 0 ..= 2000 gCO2eq/kWh (the dirtiest grids are near 1000) |
| PUE | 1.0 ..= 3.0 |

NaN and infinities are refused everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import equivalences, hardware
from .emissions import emissions_g
from .errors import InputError
from .records import PHASES
from .sources.intensity import embedded
from .sources.jobs import yamlmarks
from .sources.jobs.common import mapping_key, read_text, suggest
from .timeutil import iso, parse_instant
from .zones import canonical_zone

METHOD = "estimated (TDP)"

MAX_TDP_WATTS = hardware.MAX_TDP_WATTS
MAX_GPUS = 1_000_000
MAX_HOURS = 100_000.0
MAX_GPU_HOURS = 10_000_000_000.0
MAX_INTENSITY = 2000.0
MIN_PUE, MAX_PUE = 1.0, 3.0
MAX_CPU_HOURS = 100_000_000_000.0
MAX_WATTS_PER_CORE = 100.0
MAX_WATTS_PER_SOCKET = 1000.0
MAX_CORES_PER_SOCKET = 1024

Number = int | float | str

_EXAMPLE_ZONES = ("FR", "DE", "GB", "aws:us-west-2", "gcp:europe-west1", "azure:westeurope", "world")


@dataclass(frozen=True)
class EstimateResult:
    """One estimate: its inputs, where each came from, and the result. A part that was not given (GPU or CPU) has
    0 hours, 0 energy and None for its hardware facts."""

    gpu_model: str | None            # as given (a table key or an NVML name), None when only a TDP was given
    hardware_key: str | None         # gpu_hardware.csv row, None when the model is not in the table
    hardware_name: str               # marketing name from the table, else what was given ("" without a GPU part)
    tdp_watts: float | None          # None without a GPU part
    tdp_source: str                  # "table" or "given" ("" without a GPU part)
    tdp_reference: str               # the table row's source, or where the TDP was given (flag or file:line)
    gpus: int | None
    hours: float | None
    gpu_hours: float
    cpu_model: str | None            # as given (a label only: it sets no wattage)
    cpu_hours: float                 # core-hours; 0 without a CPU part
    cpu_watts_per_core: float | None
    cpu_watts_per_socket: float | None
    cores_per_socket: int | None
    cpu_power_reference: str | None  # where the CPU wattage was given (flags or file:line)
    intensity_g_per_kwh: float
    intensity_source: str            # "table" or "given"
    intensity_reference: str         # the annual table row (zone, year, basis, source), or where it was given
    region: str | None               # zone id (looked up, or just recorded when the intensity was given)
    intensity_year: int | None
    intensity_basis: str | None
    pue: float
    pue_source: str                  # "default" or where it was given
    gpu_energy_kwh: float            # x PUE
    cpu_energy_kwh: float            # x PUE
    energy_kwh: float                # GPU + CPU, x PUE
    gpu_emissions_kg: float
    cpu_emissions_kg: float
    emissions_kg: float              # GPU + CPU
    embodied_kg: float               # manufacturing share of these GPU-hours; NOT included in emissions_kg
    embodied_reference: str
    method: str = METHOD

    @property
    def gpu_it_j(self) -> float:
        """GPU energy before PUE, in joules."""
        return self.gpu_hours * (self.tdp_watts or 0.0) * 3600.0

    @property
    def cpu_it_j(self) -> float:
        """CPU energy before PUE, in joules."""
        return self.cpu_hours * (self.cpu_watts_per_core or 0.0) * 3600.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["equivalents"] = equivalences.equivalents(self.emissions_kg)
        return d


@dataclass(frozen=True)
class ManualPhase:
    """One entry of a manual phases file: a phase (or part of one) that ran without telemetry."""

    project: str
    phase: str
    name: str
    cluster: str | None
    provider: str | None
    region: str | None
    start: datetime | None
    end: datetime | None
    estimate: EstimateResult
    origin: str                      # file:line of the entry
    inputs: dict[str, Any] = field(default_factory=dict, compare=False)   # the entry's keys as written


# ---------------------------------------------------------------------------------------------------- numbers


def _finite(value: object, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InputError(where, f"expected a number, got {value!r}", f"give {what} as a number")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InputError(where, f"{value!r} is not a number", f"give {what} as a number") from None
    else:
        number = float(value)
    if not math.isfinite(number):
        raise InputError(where, f"{value!r} is not a finite number", f"give {what} as an ordinary number")
    return number


def _plain(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:g}"


def _bounded(value: object, where: str, what: str, low: float, high: float, *, low_inclusive: bool,
             hint: str) -> float:
    number = _finite(value, where, what)
    too_low = number < low if low_inclusive else number <= low
    if too_low or number > high:
        allowed = f"{_plain(low)} to {_plain(high)}" if low_inclusive else \
            f"more than {_plain(low)} and at most {_plain(high)}"
        raise InputError(where, f"{number:g} is out of range for {what} (allowed: {allowed})", hint)
    return number


def _whole(value: object, where: str, what: str, low: int, high: int, hint: str) -> int:
    number = _finite(value, where, what)
    if not number.is_integer():
        raise InputError(where, f"{value!r} is not a whole number of {what}", hint)
    if not low <= number <= high:
        raise InputError(where, f"{number:g} is out of range for {what} (allowed: {low:,} to {high:,})", hint)
    return int(number)


# ---------------------------------------------------------------------------------------------------- compute


def compute(
    gpu_model: str | None = None,
    tdp_watts: Number | None = None,
    gpus: Number | None = None,
    hours: Number | None = None,
    gpu_hours: Number | None = None,
    intensity: Number | None = None,
    region: str | None = None,
    pue: Number | None = 1.0,
    where_prefix: str = "",
    *,
    wheres: Mapping[str, str] | None = None,
    cpu_hours: Number | None = None,
    cpu_model: str | None = None,
    cpu_watts_per_core: Number | None = None,
    cpu_watts_per_socket: Number | None = None,
    cores_per_socket: Number | None = None,
) -> EstimateResult:
    """Estimate energy and emissions from hardware facts; InputError naming the flag (or key) on bad input.

    Numbers may be given as numbers or strings (as typed on the command line). With `where_prefix` empty, errors
    name the CLI flags (`--gpu-hours`); otherwise they read '<where_prefix> gpu_hours', unless `wheres` gives a
    location for that input (a manual phases file passes 'file:line' of each key).

    A GPU part, a CPU part or both. GPU-hours come from exactly one of gpus x hours or gpu_hours; `tdp_watts`
    overrides the table. CPU: `cpu_hours` (core-hours) with exactly one of `cpu_watts_per_core` or
    `cpu_watts_per_socket` + `cores_per_socket`; `cpu_model` is a label. The intensity is `intensity` when given
    (then `region` is only recorded), else the annual table row for `region`.
    """
    cli = not where_prefix
    locations = dict(wheres or {})

    def label(key: str) -> str:
        return "--" + key.replace("_", "-") if cli else key

    def where(key: str) -> str:
        if key in locations:
            return locations[key]
        return label(key) if cli else f"{where_prefix} {key}"

    cpu_inputs = {"cpu_hours": cpu_hours, "cpu_model": cpu_model, "cpu_watts_per_core": cpu_watts_per_core,
                  "cpu_watts_per_socket": cpu_watts_per_socket, "cores_per_socket": cores_per_socket}
    has_cpu = any(v is not None for v in cpu_inputs.values())
    has_gpu = not has_cpu or any(v is not None for v in (gpu_model, tdp_watts, gpus, hours, gpu_hours))

    # PUE
    pue_source = "default"
    if pue is None:
        pue_value = 1.0
    else:
        pue_value = _bounded(pue, where("pue"), label("pue"), MIN_PUE, MAX_PUE, low_inclusive=True,
                             hint="PUE is facility energy / IT energy: 1.0 (none) to 3.0; typical 1.1 to 1.6")
        if "pue" in locations or (cli and isinstance(pue, str)):
            pue_source = where("pue")       # typed on the command line, or a key of a manual phases file
        elif pue_value != 1.0:
            pue_source = "given"

    # GPU
    spec: hardware.GpuSpec | None = None
    model: str | None = None
    tdp: float | None = None
    tdp_source = tdp_reference = hardware_name = ""
    n_gpus: int | None = None
    n_hours: float | None = None
    total = 0.0
    if has_gpu:
        tdp_given: float | None = None
        if tdp_watts is not None:
            tdp_given = _bounded(tdp_watts, where("tdp_watts"), label("tdp_watts"), 0.0, MAX_TDP_WATTS,
                                 low_inclusive=False, hint="give the board power in watts, e.g. 400 for an A100 SXM4")
        model = gpu_model.strip() if isinstance(gpu_model, str) else None
        if gpu_model is not None and not isinstance(gpu_model, str):
            raise InputError(where("gpu_model"), f"{label('gpu_model')} must be text, got {gpu_model!r}")
        if model is not None:
            if not model:
                raise InputError(where("gpu_model"), f"empty {label('gpu_model')}",
                                 f"use one of {', '.join(hardware.keys())}")
            spec = hardware.lookup(model)
            if spec is None and tdp_given is None:
                raise InputError(where("gpu_model"), f"unknown GPU model {model!r}",
                                 f"known models: {', '.join(hardware.keys())}; for another GPU give "
                                 f"{label('tdp_watts')} W")
        elif tdp_given is None:
            raise InputError(where("gpu_model"),
                             f"no GPU given: give {label('gpu_model')} or {label('tdp_watts')}",
                             f"known models: {', '.join(hardware.keys())}; for CPU work give {label('cpu_hours')} "
                             "with a CPU wattage")
        if tdp_given is not None:
            tdp, tdp_source, tdp_reference = tdp_given, "given", where("tdp_watts")
        else:
            assert spec is not None
            tdp, tdp_source = spec.tdp_watts, "table"
            tdp_reference = f"{hardware.FILE} row {spec.key}: {spec.source}"
        hardware_name = spec.name if spec else (model or f"GPU of {tdp:g} W")
        total, n_gpus, n_hours = _gpu_hours(gpus, hours, gpu_hours, label, where)

    # CPU
    cpu = _cpu_part(cpu_inputs, label, where) if has_cpu else None

    # intensity
    zone = canonical_zone(region) if isinstance(region,
                                                str) else None   # the one spelling (wattprint/pipeline/zones.py)
    if region is not None and not isinstance(region, str):
        raise InputError(where("region"), f"{label('region')} must be a zone id, got {region!r}")
    if zone is not None and not zone:
        raise InputError(where("region"), f"empty {label('region')}", f"zone ids look like {', '.join(_EXAMPLE_ZONES)}")
    year: int | None = None
    basis: str | None = None
    if intensity is not None:
        g_per_kwh = _bounded(intensity, where("intensity"), label("intensity"), 0.0, MAX_INTENSITY,
                             low_inclusive=True, hint="give gCO2eq/kWh, e.g. 57 for France, 288 for aws:us-west-2")
        intensity_source, intensity_reference = "given", where("intensity")
    elif zone is not None:
        row = embedded.lookup(zone)
        if row is None:
            known = [r.zone for r in embedded.load()]
            raise InputError(where("region"), f"unknown zone {zone!r}{suggest(zone, known)}",
                             f"zone ids look like {', '.join(_EXAMPLE_ZONES)} (all {len(known)}: "
                             f"wattprint/pipeline/data/intensity_annual.csv); or give {label('intensity')} G")
        g_per_kwh, year, basis, zone = row.g_per_kwh, row.year, row.basis, row.zone
        intensity_source = "table"
        intensity_reference = (f"{embedded.FILE} row {row.zone} ({row.name}), {row.year}, {row.basis}: "
                               f"{row.source}")
    else:
        raise InputError(where("intensity"), "no grid carbon intensity given",
                         f"give {label('intensity')} G (gCO2eq/kWh) or {label('region')} R (e.g. FR, aws:us-west-2)")

    gpu_energy_kwh = total * (tdp or 0.0) / 1000.0 * pue_value
    cpu_energy_kwh = cpu.core_hours * cpu.watts_per_core / 1000.0 * pue_value if cpu else 0.0
    gpu_j = total * (tdp or 0.0) * 3600.0                # before PUE: emissions_g applies it
    cpu_j = cpu.core_hours * cpu.watts_per_core * 3600.0 if cpu else 0.0
    gpu_kg = emissions_g(gpu_j, g_per_kwh, pue_value) / 1000.0
    cpu_kg = emissions_g(cpu_j, g_per_kwh, pue_value) / 1000.0
    embodied_kg, embodied_reference = 0.0, ""
    if has_gpu:
        _, embodied_reference = hardware.embodied_kgco2eq_per_gpu(spec)
        embodied_kg = total * hardware.embodied_kg_per_gpu_hour(spec)
        embodied_reference = (f"{embodied_reference} (charged per GPU-hour: per-GPU footprint / "
                              f"({hardware.DEFAULT_LIFETIME_YEARS:g} years x 8760 h x "
                              f"{hardware.DEFAULT_UTILISATION:g}))")
    return EstimateResult(
        gpu_model=model, hardware_key=spec.key if spec else None, hardware_name=hardware_name,
        tdp_watts=tdp, tdp_source=tdp_source, tdp_reference=tdp_reference,
        gpus=n_gpus, hours=n_hours, gpu_hours=total,
        cpu_model=cpu.model if cpu else None, cpu_hours=cpu.core_hours if cpu else 0.0,
        cpu_watts_per_core=cpu.watts_per_core if cpu else None,
        cpu_watts_per_socket=cpu.watts_per_socket if cpu else None,
        cores_per_socket=cpu.cores_per_socket if cpu else None,
        cpu_power_reference=cpu.reference if cpu else None,
        intensity_g_per_kwh=g_per_kwh, intensity_source=intensity_source, intensity_reference=intensity_reference,
        region=zone, intensity_year=year, intensity_basis=basis,
        pue=pue_value, pue_source=pue_source,
        gpu_energy_kwh=gpu_energy_kwh, cpu_energy_kwh=cpu_energy_kwh, energy_kwh=gpu_energy_kwh + cpu_energy_kwh,
        gpu_emissions_kg=gpu_kg, cpu_emissions_kg=cpu_kg,
        emissions_kg=emissions_g(gpu_j + cpu_j, g_per_kwh, pue_value) / 1000.0,
        embodied_kg=embodied_kg, embodied_reference=embodied_reference,
    )


def _gpu_hours(gpus: Number | None, hours: Number | None, gpu_hours: Number | None, label: Any, where: Any
               ) -> tuple[float, int | None, float | None]:
    """(GPU-hours, GPUs, hours) from exactly one of gpus x hours or gpu_hours."""
    if gpu_hours is not None and (gpus is not None or hours is not None):
        raise InputError(where("gpu_hours"),
                         f"give either {label('gpus')} with {label('hours')}, or {label('gpu_hours')}, not both")
    if gpu_hours is not None:
        total = _bounded(gpu_hours, where("gpu_hours"), label("gpu_hours"), 0.0, MAX_GPU_HOURS,
                         low_inclusive=False, hint="give the GPU-hours used, e.g. 44800 for 128 GPUs x 350 h")
        return total, None, None
    if gpus is not None or hours is not None:
        if hours is None:
            raise InputError(where("gpus"), f"{label('gpus')} needs {label('hours')}",
                             f"give {label('hours')} H (wall-clock hours), or {label('gpu_hours')} alone")
        if gpus is None:
            raise InputError(where("hours"), f"{label('hours')} needs {label('gpus')}",
                             f"give {label('gpus')} N, or {label('gpu_hours')} alone")
        n_gpus = _whole(gpus, where("gpus"), label("gpus"), 1, MAX_GPUS, "give the number of GPUs, e.g. 128")
        n_hours = _bounded(hours, where("hours"), label("hours"), 0.0, MAX_HOURS, low_inclusive=False,
                           hint="give wall-clock hours, e.g. 350")
        total = n_gpus * n_hours
        if total > MAX_GPU_HOURS:
            raise InputError(where("hours"), f"{label('gpus')} x {label('hours')} = {_plain(total)} GPU-hours is "
                             f"more than {_plain(MAX_GPU_HOURS)}", "check the units")
        return total, n_gpus, n_hours
    raise InputError(where("gpu_hours"), "no usage given",
                     f"give {label('gpus')} N with {label('hours')} H, or {label('gpu_hours')} GH")


@dataclass(frozen=True)
class _Cpu:
    model: str | None
    core_hours: float
    watts_per_core: float
    watts_per_socket: float | None
    cores_per_socket: int | None
    reference: str


def _cpu_part(inputs: Mapping[str, Any], label: Any, where: Any) -> _Cpu:
    """The CPU part: core-hours and watts per core (given, or a socket's watts over its cores)."""
    model = inputs["cpu_model"]
    if model is not None:
        if not isinstance(model, str):
            raise InputError(where("cpu_model"), f"{label('cpu_model')} must be text, got {model!r}")
        model = model.strip()
        if not model:
            raise InputError(where("cpu_model"), f"empty {label('cpu_model')}",
                             "name the CPU, e.g. 'Intel Xeon Gold 6248' (a label: it sets no wattage)")
    per_core, per_socket, cores = (inputs["cpu_watts_per_core"], inputs["cpu_watts_per_socket"],
                                   inputs["cores_per_socket"])
    if inputs["cpu_hours"] is None:
        given = next(k for k in ("cpu_watts_per_core", "cpu_watts_per_socket", "cores_per_socket", "cpu_model")
                     if inputs[k] is not None)
        raise InputError(where(given), f"{label(given)} needs {label('cpu_hours')}",
                         f"give {label('cpu_hours')} H: the CPU time in core-hours (e.g. 460000)")
    core_hours = _bounded(inputs["cpu_hours"], where("cpu_hours"), label("cpu_hours"), 0.0, MAX_CPU_HOURS,
                          low_inclusive=False, hint="give the CPU time in core-hours, e.g. 460000")
    socket_hint = (f"give {label('cpu_watts_per_core')} W, or {label('cpu_watts_per_socket')} W with "
                   f"{label('cores_per_socket')} N (a socket's TDP over its cores, e.g. 150 W and 20 cores for an "
                   "Intel Xeon Gold 6248)")
    if per_core is not None and (per_socket is not None or cores is not None):
        other = "cpu_watts_per_socket" if per_socket is not None else "cores_per_socket"
        raise InputError(where(other), f"give either {label('cpu_watts_per_core')}, or {label('cpu_watts_per_socket')}"
                         f" with {label('cores_per_socket')}, not both", socket_hint)
    if per_core is not None:
        w = _bounded(per_core, where("cpu_watts_per_core"), label("cpu_watts_per_core"), 0.0, MAX_WATTS_PER_CORE,
                     low_inclusive=False, hint="watts per core, e.g. 7.5 (a 150 W socket of 20 cores)")
        return _Cpu(model, core_hours, w, None, None, where("cpu_watts_per_core"))
    if per_socket is None and cores is None:
        raise InputError(where("cpu_watts_per_core"), "no CPU power given", socket_hint)
    if per_socket is None:
        raise InputError(where("cores_per_socket"), f"{label('cores_per_socket')} needs "
                         f"{label('cpu_watts_per_socket')}", socket_hint)
    if cores is None:
        raise InputError(where("cpu_watts_per_socket"), f"{label('cpu_watts_per_socket')} needs "
                         f"{label('cores_per_socket')}", socket_hint)
    ws = _bounded(per_socket, where("cpu_watts_per_socket"), label("cpu_watts_per_socket"), 0.0,
                  MAX_WATTS_PER_SOCKET, low_inclusive=False, hint="a socket's TDP in watts, e.g. 150")
    n = _whole(cores, where("cores_per_socket"), label("cores_per_socket"), 1, MAX_CORES_PER_SOCKET,
               "give the physical cores of one socket, e.g. 20")
    if ws / n > MAX_WATTS_PER_CORE:
        raise InputError(where("cpu_watts_per_socket"), f"{ws:g} W over {n} cores is {ws / n:g} W per core, more "
                         f"than {MAX_WATTS_PER_CORE:g}", "check the units and the core count")
    return _Cpu(model, core_hours, ws / n, ws, n, f"{where('cpu_watts_per_socket')} / {where('cores_per_socket')}")


# ---------------------------------------------------------------------------------------------------- manual phases

PHASE_KEYS = ("project", "phase", "name", "cluster", "provider", "region", "gpu_model", "tdp_watts", "gpus", "hours",
              "gpu_hours", "cpu_model", "cpu_hours", "cpu_watts_per_core", "cpu_watts_per_socket", "cores_per_socket",
              "intensity", "pue", "start", "end")
TEXT_KEYS = ("project", "phase", "name", "cluster", "provider", "region", "gpu_model", "cpu_model")
NUMBER_KEYS = ("tdp_watts", "gpus", "hours", "gpu_hours", "cpu_hours", "cpu_watts_per_core", "cpu_watts_per_socket",
               "cores_per_socket", "intensity", "pue")


def load_manual_phases(path: str | Path) -> list[ManualPhase]:
    """The phases of a manual phases YAML file (see `parse_manual_phases`); InputError naming file:line."""
    return parse_manual_phases(read_text(path), str(path))


def parse_manual_phases(text: str, name: str) -> list[ManualPhase]:
    """Phases from YAML text: `phases:` followed by a list of mappings (a bare list is accepted too).

    Each entry: project and phase (one of PHASES) are required; name, cluster, provider, region, start and end
    (ISO 8601 with an offset, both or neither) are optional; the hardware and usage keys are those of `compute`
    (gpu_model and/or tdp_watts; gpu_hours or gpus + hours; cpu_hours with cpu_watts_per_core or
    cpu_watts_per_socket + cores_per_socket, cpu_model a label; intensity and/or region; pue, default 1.0).
    Several entries may share a project and phase (the report sums them).
    """
    data = yamlmarks.load(text, name, typed=True)
    data = yamlmarks.under_key(data, "phases", name,
                               "a manual phases file is a mapping with only 'phases:' (a list of phases)")
    if data is None:
        return []
    if not isinstance(data, list):
        raise InputError(yamlmarks.where(name, data), "'phases' must be a list of phases",
                         "write phases: followed by '- project: ...' items")
    return [_manual_phase(item, i, data, name) for i, item in enumerate(data)]


def _manual_phase(item: object, i: int, items: list[Any], name: str) -> ManualPhase:
    origin = yamlmarks.where(name, items, i)
    if not isinstance(item, dict):
        raise InputError(f"{origin} (phases[{i}])", f"phases[{i}] must be a mapping of {', '.join(PHASE_KEYS)}")
    values: dict[str, Any] = {}
    wheres: dict[str, str] = {}
    for key, value in item.items():
        kwhere = f"{yamlmarks.where(name, item, key)} (phases[{i}].{key})"
        k = mapping_key(key, PHASE_KEYS, values, kwhere)
        if isinstance(value, dict | list):
            kind = "list" if isinstance(value, list) else "mapping"
            raise InputError(kwhere, f"{k} must be a plain value, not a {kind}")
        wheres[k] = kwhere
        if value is None:
            continue
        if k in TEXT_KEYS:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise InputError(kwhere, f"{k} must be text, got {value!r}")
            value = str(value).strip()
        values[k] = value
    entry_where = f"{origin} (phases[{i}])"
    for required in ("project", "phase"):
        if not values.get(required):
            raise InputError(wheres.get(required, entry_where), f"missing {required}",
                             f"each phase needs project and phase (one of {', '.join(PHASES)})")
    phase = str(values["phase"]).lower()
    if phase not in PHASES:
        raise InputError(wheres["phase"], f"phase {values['phase']!r} is not a known phase{suggest(phase, PHASES)}",
                         f"use one of {', '.join(PHASES)}")
    start = parse_instant(values["start"], wheres["start"]) if "start" in values else None
    end = parse_instant(values["end"], wheres["end"]) if "end" in values else None
    if (start is None) != (end is None):
        missing = "end" if end is None else "start"
        raise InputError(wheres.get("start") or wheres.get("end") or entry_where, f"{missing} is missing",
                         "give both start and end (the window the phase ran in), or neither")
    if start is not None and end is not None and end <= start:
        raise InputError(wheres["end"], f"end {iso(end)} is not after start {iso(start)}", "check the window")
    result = compute(
        gpu_model=values.get("gpu_model"), tdp_watts=values.get("tdp_watts"), gpus=values.get("gpus"),
        hours=values.get("hours"), gpu_hours=values.get("gpu_hours"), intensity=values.get("intensity"),
        region=values.get("region"), pue=values.get("pue"), where_prefix=entry_where, wheres=wheres,
        cpu_hours=values.get("cpu_hours"), cpu_model=values.get("cpu_model"),
        cpu_watts_per_core=values.get("cpu_watts_per_core"), cpu_watts_per_socket=values.get("cpu_watts_per_socket"),
        cores_per_socket=values.get("cores_per_socket"),
    )
    return ManualPhase(
        project=str(values["project"]), phase=phase, name=str(values.get("name", "")),
        cluster=values.get("cluster") or None, provider=values.get("provider") or None,
        region=result.region, start=start, end=end, estimate=result, origin=origin, inputs=dict(values),
    )


def _num(x: float, decimals: int = 0) -> str:
    return f"{x:,.{decimals}f}"


def _short(x: float) -> str:
    """A readable number: thousands separated, decimals only when small."""
    if x >= 100:
        return _num(x)
    if x >= 1:
        return f"{x:,.2f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"


def render_text(r: EstimateResult) -> str:
    """The model-card style block for one estimate."""
    gpu, cpu = r.gpu_hours > 0, r.cpu_hours > 0
    hw_lines, usage = [], []
    if gpu:
        hw = f"{r.hardware_name} ({r.hardware_key})" if r.hardware_key else r.hardware_name
        tdp_from = f"{hardware.FILE}" if r.tdp_source == "table" else r.tdp_reference
        hw_lines.append(f"{hw}, {_short(r.tdp_watts or 0.0)} W TDP ({tdp_from})")
        if r.gpus is not None and r.hours is not None:
            usage.append(f"{_short(r.gpus)} GPUs x {_short(r.hours)} h = {_short(r.gpu_hours)} GPU-hours")
        else:
            usage.append(f"{_short(r.gpu_hours)} GPU-hours")
    if cpu:
        per_core = _short(r.cpu_watts_per_core or 0.0)
        how = (f"{_short(r.cpu_watts_per_socket)} W per socket / {r.cores_per_socket} cores = {per_core} W per core"
               if r.cpu_watts_per_socket is not None else f"{per_core} W per core")
        hw_lines.append(f"{r.cpu_model or 'CPUs'}, {how} (given by {r.cpu_power_reference})")
        usage.append(f"{_short(r.cpu_hours)} CPU core-hours")
    if r.intensity_source == "table":
        grid = (f"{r.region}, {_short(r.intensity_g_per_kwh)} gCO2eq/kWh "
                f"({embedded.FILE}, {r.intensity_year}, {r.intensity_basis})")
    else:
        place = f"{r.region}, " if r.region else ""
        grid = f"{place}{_short(r.intensity_g_per_kwh)} gCO2eq/kWh (given by {r.intensity_reference})"
    eq = equivalences.equivalents(r.emissions_kg)
    homes = eq["homes_energy_years"]
    counted = " and ".join(x for x, on in (("every GPU counted at its rated board power (TDP) for every GPU-hour",
                                            gpu),
                                           ("every CPU core at its share of the socket's power for every "
                                            "core-hour", cpu)) if on)
    split = f" (GPU {_short(r.gpu_energy_kwh)}, CPU {_short(r.cpu_energy_kwh)})" if gpu and cpu else ""
    esplit = f" (GPU {_short(r.gpu_emissions_kg)}, CPU {_short(r.cpu_emissions_kg)})" if gpu and cpu else ""
    lines = [
        f"Method: {r.method}: {counted}; no energy was measured.",
        f"Hardware Type: {'; '.join(hw_lines)}",
        f"Hours used: {', '.join(usage)}",
        f"Compute Region: {grid}",
        f"PUE: {r.pue:.2f}",
        f"Energy: {_short(r.energy_kwh)} kWh{split}",
        f"Carbon Emitted: {_short(r.emissions_kg)} kg of CO2eq{esplit}",
        f"  roughly {_num(eq['miles_driven'])} miles driven by an average gasoline-powered car, or "
        f"{_short(homes)} homes' energy use for one year (US EPA factors: {equivalences.FILE})",
    ]
    if gpu:
        lines.append(f"Embodied (manufacturing, not included above): {_short(r.embodied_kg)} kg of CO2eq")
    return "\n".join(lines) + "\n"
