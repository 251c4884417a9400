"""`wattprint estimate`: carbon of a run that has no telemetry, from hardware facts alone (as model cards do).

    energy_kwh   = gpu_hours x tdp_watts / 1000 x pue
    emissions_kg = energy_kwh x intensity (gCO2eq/kWh) / 1000

The TDP comes from the shipped hardware table (`pipeline/hardware.py`) or `--tdp-watts`; the intensity from
`--intensity` or the shipped annual table row of `--region`. Every GPU is assumed to draw its rated maximum for
every GPU-hour, so this is an upper-bound style estimate, labelled `estimated (TDP)` wherever it appears.

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
| intensity | 0 ..= 2000 gCO2eq/kWh (the dirtiest grids are near 1000) |
| PUE | 1.0 ..= 3.0 |

NaN and infinities are refused everywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import equivalences, hardware
from .errors import InputError
from .records import PHASES
from .sources.intensity import embedded
from .sources.jobs import yamlmarks
from .sources.jobs.common import mapping_key, read_text, suggest
from .timeutil import iso, parse_instant

METHOD = "estimated (TDP)"

MAX_TDP_WATTS = hardware.MAX_TDP_WATTS
MAX_GPUS = 1_000_000
MAX_HOURS = 100_000.0
MAX_GPU_HOURS = 10_000_000_000.0
MAX_INTENSITY = 2000.0
MIN_PUE, MAX_PUE = 1.0, 3.0

Number = int | float | str

_EXAMPLE_ZONES = ("FR", "DE", "GB", "aws:us-west-2", "gcp:europe-west1", "azure:westeurope", "world")


@dataclass(frozen=True)
class EstimateResult:
    """One estimate: its inputs, where each came from, and the result."""

    gpu_model: str | None            # as given (a table key or an NVML name), None when only a TDP was given
    hardware_key: str | None         # gpu_hardware.csv row, None when the model is not in the table
    hardware_name: str               # marketing name from the table, else what was given
    tdp_watts: float
    tdp_source: str                  # "table" or "given"
    tdp_reference: str               # the table row's source, or where the TDP was given (flag or file:line)
    gpus: int | None
    hours: float | None
    gpu_hours: float
    intensity_g_per_kwh: float
    intensity_source: str            # "table" or "given"
    intensity_reference: str         # the annual table row (zone, year, basis, source), or where it was given
    region: str | None               # zone id (looked up, or just recorded when the intensity was given)
    intensity_year: int | None
    intensity_basis: str | None
    pue: float
    pue_source: str                  # "default" or where it was given
    energy_kwh: float
    emissions_kg: float
    embodied_kg: float               # manufacturing share of these GPU-hours; NOT included in emissions_kg
    embodied_reference: str
    method: str = METHOD

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
) -> EstimateResult:
    """Estimate energy and emissions from hardware facts; InputError naming the flag (or key) on bad input.

    Numbers may be given as numbers or strings (as typed on the command line). With `where_prefix` empty, errors
    name the CLI flags (`--gpu-hours`); otherwise they read '<where_prefix> gpu_hours', unless `wheres` gives a
    location for that input (a manual phases file passes 'file:line' of each key).

    GPU-hours come from exactly one of gpus x hours or gpu_hours. The intensity is `intensity` when given (then
    `region` is only recorded), else the annual table row for `region`. `tdp_watts` overrides the table.
    """
    cli = not where_prefix
    locations = dict(wheres or {})

    def label(key: str) -> str:
        return "--" + key.replace("_", "-") if cli else key

    def where(key: str) -> str:
        if key in locations:
            return locations[key]
        return label(key) if cli else f"{where_prefix} {key}"

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

    # TDP
    tdp_given: float | None = None
    if tdp_watts is not None:
        tdp_given = _bounded(tdp_watts, where("tdp_watts"), label("tdp_watts"), 0.0, MAX_TDP_WATTS,
                             low_inclusive=False, hint="give the board power in watts, e.g. 400 for an A100 SXM4")
    spec: hardware.GpuSpec | None = None
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
        raise InputError(where("gpu_model"), f"no GPU given: give {label('gpu_model')} or {label('tdp_watts')}",
                         f"known models: {', '.join(hardware.keys())}")
    if tdp_given is not None:
        tdp, tdp_source, tdp_reference = tdp_given, "given", where("tdp_watts")
    else:
        assert spec is not None
        tdp, tdp_source = spec.tdp_watts, "table"
        tdp_reference = f"{hardware.FILE} row {spec.key}: {spec.source}"

    # GPU-hours
    n_gpus: int | None = None
    n_hours: float | None = None
    if gpu_hours is not None and (gpus is not None or hours is not None):
        raise InputError(where("gpu_hours"),
                         f"give either {label('gpus')} with {label('hours')}, or {label('gpu_hours')}, not both")
    if gpu_hours is not None:
        total = _bounded(gpu_hours, where("gpu_hours"), label("gpu_hours"), 0.0, MAX_GPU_HOURS,
                         low_inclusive=False, hint="give the GPU-hours used, e.g. 44800 for 128 GPUs x 350 h")
    elif gpus is not None or hours is not None:
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
    else:
        raise InputError(where("gpu_hours"), "no usage given",
                         f"give {label('gpus')} N with {label('hours')} H, or {label('gpu_hours')} GH")

    # intensity
    zone = region.strip() if isinstance(region, str) else None
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
                             f"pipeline/data/intensity_annual.csv); or give {label('intensity')} G")
        g_per_kwh, year, basis, zone = row.g_per_kwh, row.year, row.basis, row.zone
        intensity_source = "table"
        intensity_reference = (f"{embedded.FILE} row {row.zone} ({row.name}), {row.year}, {row.basis}: "
                               f"{row.source}")
    else:
        raise InputError(where("intensity"), "no grid carbon intensity given",
                         f"give {label('intensity')} G (gCO2eq/kWh) or {label('region')} R (e.g. FR, aws:us-west-2)")

    energy_kwh = total * tdp / 1000.0 * pue_value
    emissions_kg = energy_kwh * g_per_kwh / 1000.0
    _, embodied_reference = hardware.embodied_kgco2eq_per_gpu(spec)
    embodied_kg = total * hardware.embodied_kg_per_gpu_hour(spec)
    embodied_reference = (f"{embodied_reference} (charged per GPU-hour: per-GPU footprint / "
                          f"({hardware.DEFAULT_LIFETIME_YEARS:g} years x 8760 h x {hardware.DEFAULT_UTILISATION:g}))")
    return EstimateResult(
        gpu_model=model, hardware_key=spec.key if spec else None,
        hardware_name=spec.name if spec else (model or f"GPU of {tdp:g} W"),
        tdp_watts=tdp, tdp_source=tdp_source, tdp_reference=tdp_reference,
        gpus=n_gpus, hours=n_hours, gpu_hours=total,
        intensity_g_per_kwh=g_per_kwh, intensity_source=intensity_source, intensity_reference=intensity_reference,
        region=zone, intensity_year=year, intensity_basis=basis,
        pue=pue_value, pue_source=pue_source,
        energy_kwh=energy_kwh, emissions_kg=emissions_kg,
        embodied_kg=embodied_kg, embodied_reference=embodied_reference,
    )


# ---------------------------------------------------------------------------------------------------- manual phases

PHASE_KEYS = ("project", "phase", "name", "cluster", "provider", "region", "gpu_model", "tdp_watts", "gpus", "hours",
              "gpu_hours", "intensity", "pue", "start", "end")
TEXT_KEYS = ("project", "phase", "name", "cluster", "provider", "region", "gpu_model")
NUMBER_KEYS = ("tdp_watts", "gpus", "hours", "gpu_hours", "intensity", "pue")


def load_manual_phases(path: str | Path) -> list[ManualPhase]:
    """The phases of a manual phases YAML file (see `parse_manual_phases`); InputError naming file:line."""
    return parse_manual_phases(read_text(path), str(path))


def parse_manual_phases(text: str, name: str) -> list[ManualPhase]:
    """Phases from YAML text: `phases:` followed by a list of mappings (a bare list is accepted too).

    Each entry: project and phase (one of PHASES) are required; name, cluster, provider, region, start and end
    (ISO 8601 with an offset, both or neither) are optional; the hardware and usage keys are those of `compute`
    (gpu_model and/or tdp_watts; gpu_hours or gpus + hours; intensity and/or region; pue, default 1.0).
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
    )
    return ManualPhase(
        project=str(values["project"]), phase=phase, name=str(values.get("name", "")),
        cluster=values.get("cluster") or None, provider=values.get("provider") or None,
        region=result.region, start=start, end=end, estimate=result, origin=origin, inputs=dict(values),
    )


# ---------------------------------------------------------------------------------------------------- CLI

DESCRIPTION = """\
Estimate the energy and carbon of a run with no telemetry, from hardware facts alone (as ML model cards do):

  energy (kWh)      = GPU-hours x TDP (W) / 1000 x PUE
  emissions (kg)    = energy x grid intensity (gCO2eq/kWh) / 1000

Every GPU is assumed to draw its rated maximum (TDP) the whole time: an estimate, never a measurement.
Known GPU models (--gpu-model takes these keys or NVML names such as "NVIDIA A100-SXM4-80GB"):
  {keys}
Bounds: TDP <= 2000 W, GPUs <= 1,000,000, hours <= 100,000, intensity 0-2000 g/kWh, PUE 1.0-3.0.

example (IDEFICS-80B, 128 A100 for 350 h on aws:us-west-2):
  wattprint estimate --gpu-model A100 --gpus 128 --hours 350 --region aws:us-west-2
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        keys = ", ".join(hardware.keys())
    except InputError as exc:   # a broken shipped table must not break --help of every verb
        keys = f"(hardware table unreadable: {exc.message()})"
    p = sub.add_parser("estimate", help="estimate energy and carbon from hardware facts (no telemetry needed)",
                       description=DESCRIPTION.format(keys=keys), formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("hardware")
    g.add_argument("--gpu-model", metavar="NAME",
                   help="GPU model: a table key (A100, H100-PCIE, ...) or an NVML name; gives the TDP")
    g.add_argument("--tdp-watts", metavar="W",
                   help="board power per GPU in watts; overrides the table, required for models not in it")
    u = p.add_argument_group("usage (either --gpus with --hours, or --gpu-hours)")
    u.add_argument("--gpus", metavar="N", help="number of GPUs")
    u.add_argument("--hours", metavar="H", help="wall-clock hours they ran")
    u.add_argument("--gpu-hours", metavar="GH", help="total GPU-hours")
    c = p.add_argument_group("grid (either --intensity or --region)")
    c.add_argument("--intensity", metavar="G", help="grid carbon intensity in gCO2eq/kWh")
    c.add_argument("--region", metavar="ZONE",
                   help="zone id looked up in the shipped annual table: FR, DE, aws:us-west-2, gcp:europe-west1, ...")
    p.add_argument("--pue", metavar="P", help="data centre PUE, 1.0 to 3.0 (default: 1.0)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def run(args: argparse.Namespace) -> int:
    if args.intensity is not None and args.region is not None:
        raise InputError("--region", "give either --intensity or --region, not both",
                         "--intensity G overrides the table; drop --region (or --intensity)")
    result = compute(gpu_model=args.gpu_model, tdp_watts=args.tdp_watts, gpus=args.gpus, hours=args.hours,
                     gpu_hours=args.gpu_hours, intensity=args.intensity, region=args.region,
                     pue=args.pue)
    if args.format == "json":
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result))
    return 0


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
    hw = f"{r.hardware_name} ({r.hardware_key})" if r.hardware_key else r.hardware_name
    tdp_from = f"{hardware.FILE}" if r.tdp_source == "table" else r.tdp_reference
    if r.gpus is not None and r.hours is not None:
        usage = f"{_short(r.gpus)} GPUs x {_short(r.hours)} h = {_short(r.gpu_hours)} GPU-hours"
    else:
        usage = f"{_short(r.gpu_hours)} GPU-hours"
    if r.intensity_source == "table":
        grid = (f"{r.region}, {_short(r.intensity_g_per_kwh)} gCO2eq/kWh "
                f"({embedded.FILE}, {r.intensity_year}, {r.intensity_basis})")
    else:
        place = f"{r.region}, " if r.region else ""
        grid = f"{place}{_short(r.intensity_g_per_kwh)} gCO2eq/kWh (given by {r.intensity_reference})"
    eq = equivalences.equivalents(r.emissions_kg)
    homes = eq["homes_energy_years"]
    lines = [
        f"Method: {r.method}: every GPU counted at its rated board power (TDP) for every GPU-hour; "
        "no energy was measured.",
        f"Hardware Type: {hw}, {_short(r.tdp_watts)} W TDP ({tdp_from})",
        f"Hours used: {usage}",
        f"Compute Region: {grid}",
        f"PUE: {r.pue:.2f}",
        f"Energy: {_short(r.energy_kwh)} kWh",
        f"Carbon Emitted: {_short(r.emissions_kg)} kg of CO2eq",
        f"  roughly {_num(eq['miles_driven'])} miles driven by an average gasoline-powered car, or "
        f"{_short(homes)} homes' energy use for one year (US EPA factors: {equivalences.FILE})",
        f"Embodied (manufacturing, not included above): {_short(r.embodied_kg)} kg of CO2eq",
    ]
    return "\n".join(lines) + "\n"
