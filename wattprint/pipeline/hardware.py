"""The shipped GPU hardware table (`wattprint/pipeline/data/gpu_hardware.csv`): board power and embodied carbon per
model.

Used by `wattprint estimate` (runs without telemetry: energy = GPU-hours x TDP) and by the reports for the
embodied share. Every row's source is cited in `wattprint/pipeline/data/HARDWARE_SOURCES.md`.

`lookup(name)` accepts a table key (`A100`, `h100-pcie`; case-insensitive) or a model name as NVML / dcgm report
it (`NVIDIA A100-SXM4-80GB`, `NVIDIA H100 PCIe`, `Tesla V100-SXM2-32GB`, `AMD Instinct MI300X`). Each row's
`match` column is a regular expression searched case-insensitively in that name; when several rows match, the
row whose match covers the most characters wins (so `NVIDIA H100 PCIe` is `H100-PCIE`, not `H100`), ties going to
the earlier row.

`tdp_watts` is the board's maximum rated power (TDP / TBP). An estimate from it assumes every GPU drew its
maximum for every GPU-hour; measured energy is normally lower.

`embodied_kgco2eq` (manufacturing footprint of one GPU) is filled only where a published per-model figure exists.
Where it is empty, `embodied_kgco2eq_per_gpu()` falls back to the BLOOM paper's generic figure below.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .errors import InputError

FILE = "gpu_hardware.csv"
COLUMNS = ("key", "vendor", "name", "tdp_watts", "embodied_kgco2eq", "match", "source")
MAX_TDP_WATTS = 2000.0
HOURS_PER_YEAR = 8760.0

# Luccioni, Viguier & Ligozat (2022), "Estimating the Carbon Footprint of BLOOM, a 176B Parameter Language Model",
# arXiv:2211.02001 (JMLR 24(253), 2023), section on embodied emissions: "recent estimates put the lower bound of
# this amount at approximately 150 kg of CO2eq" per GPU; "a replacement rate of 6 years and 85% average usage
# (which are the figures provided to us by IDRIS)", giving ~0.003 kg CO2eq per GPU-hour.
DEFAULT_EMBODIED_KGCO2EQ_PER_GPU = 150.0
DEFAULT_LIFETIME_YEARS = 6.0
DEFAULT_UTILISATION = 0.85
EMBODIED_DEFAULT_SOURCE = (
    "Luccioni, Viguier & Ligozat (2022), Estimating the Carbon Footprint of BLOOM, a 176B Parameter Language Model, "
    "arXiv:2211.02001: ~150 kgCO2eq per GPU (a lower-bound estimate; NVIDIA publishes no figure), amortised over a "
    "6-year replacement rate at 85% average usage (IDRIS figures)"
)


@dataclass(frozen=True)
class GpuSpec:
    key: str
    vendor: str
    name: str
    tdp_watts: float
    embodied_kgco2eq: float | None
    source: str
    match: str = ""


def _float(text: str, column: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(where, f"{column} {text!r} is not a number", "fix the shipped table") from None
    if not math.isfinite(value):
        raise InputError(where, f"{column} {text!r} is not a finite number", "fix the shipped table")
    return value


def _row(fields: dict[str, str | None], where: str) -> tuple[GpuSpec, re.Pattern[str]]:
    if None in fields or any(v is None for v in fields.values()):
        raise InputError(where, f"expected {len(COLUMNS)} fields", f"columns are {','.join(COLUMNS)}")
    f = {k: (v or "").strip() for k, v in fields.items() if k is not None}
    for column in ("key", "vendor", "name", "tdp_watts", "match", "source"):
        if not f[column]:
            raise InputError(where, f"empty {column}", "every row needs key, vendor, name, tdp_watts, match, source")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", f["key"]):
        raise InputError(where, f"key {f['key']!r} must be letters, digits, '.', '_' or '-'", "fix the shipped table")
    tdp = _float(f["tdp_watts"], "tdp_watts", where)
    if not 0 < tdp <= MAX_TDP_WATTS:
        raise InputError(where, f"tdp_watts {tdp:g} is outside (0, {MAX_TDP_WATTS:g}] W", "fix the shipped table")
    embodied = None
    if f["embodied_kgco2eq"]:
        embodied = _float(f["embodied_kgco2eq"], "embodied_kgco2eq", where)
        if embodied < 0:
            raise InputError(where, f"embodied_kgco2eq {embodied:g} is negative", "fix the shipped table")
    try:
        pattern = re.compile(f["match"], re.IGNORECASE)
    except re.error as exc:
        raise InputError(where, f"match {f['match']!r} is not a regular expression: {exc}",
                         "fix the shipped table") from None
    spec = GpuSpec(f["key"], f["vendor"], f["name"], tdp, embodied, f["source"], f["match"])
    return spec, pattern


def parse_entries(text: str, name: str = FILE) -> list[tuple[GpuSpec, re.Pattern[str]]]:
    """Rows of a hardware table and their compiled `match` patterns; InputError 'name:LINE' on a bad row."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise InputError(f"{name}:1", f"header is {reader.fieldnames}", f"expected {','.join(COLUMNS)}")
    entries: list[tuple[GpuSpec, re.Pattern[str]]] = []
    seen: dict[str, int] = {}
    try:
        for fields in reader:
            where = f"{name}:{reader.line_num}"
            spec, pattern = _row(fields, where)
            if spec.key.lower() in seen:
                raise InputError(where, f"key {spec.key} appears twice (first at line {seen[spec.key.lower()]})",
                                 "keep one row per key")
            seen[spec.key.lower()] = reader.line_num
            entries.append((spec, pattern))
    except csv.Error as exc:
        raise InputError(f"{name}:{reader.line_num}", f"malformed CSV: {exc}", "fix the shipped table") from None
    if not entries:
        raise InputError(name, "no rows", "the shipped table must list at least one GPU")
    return entries


def parse(text: str, name: str = FILE) -> list[GpuSpec]:
    """The rows of a hardware table's text, validated (see `parse_entries`)."""
    return [spec for spec, _ in parse_entries(text, name)]


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[GpuSpec, re.Pattern[str]], ...]:
    text = resources.files("wattprint.pipeline.data").joinpath(FILE).read_text(encoding="utf-8")
    return tuple(parse_entries(text))


def load() -> list[GpuSpec]:
    """Every shipped row, in file order."""
    return [spec for spec, _ in _table()]


def keys() -> list[str]:
    """The table keys, in file order (A100, H100-PCIE, ...)."""
    return [spec.key for spec, _ in _table()]


def find(name: str, entries: tuple[tuple[GpuSpec, re.Pattern[str]], ...] | list[tuple[GpuSpec, re.Pattern[str]]],
         ) -> GpuSpec | None:
    """`lookup` against the given entries (for tests and alternative tables)."""
    text = " ".join(name.split())
    if not text:
        return None
    for spec, _ in entries:
        if spec.key.lower() == text.lower():
            return spec
    best: GpuSpec | None = None
    best_len = -1
    for spec, pattern in entries:
        m = pattern.search(text)
        if m is not None and m.end() - m.start() > best_len:
            best, best_len = spec, m.end() - m.start()
    return best


def lookup(name: str) -> GpuSpec | None:
    """The row for a table key or an NVML/dcgm model name (see the module doc), or None."""
    return find(name, _table())


def embodied_kgco2eq_per_gpu(spec: GpuSpec | None) -> tuple[float, str]:
    """Manufacturing footprint of one GPU and where the figure comes from (the row, else the BLOOM default)."""
    if spec is not None and spec.embodied_kgco2eq is not None:
        return spec.embodied_kgco2eq, f"{FILE} row {spec.key}: {spec.source}"
    return DEFAULT_EMBODIED_KGCO2EQ_PER_GPU, EMBODIED_DEFAULT_SOURCE


def embodied_kg_per_gpu_hour(spec: GpuSpec | None = None) -> float:
    """Embodied kgCO2eq charged to one GPU-hour: per-GPU footprint / (lifetime x hours per year x utilisation).

    With the defaults, 150 / (6 x 8760 x 0.85) = 0.00336 kg per GPU-hour (the BLOOM paper's "0.003 kg").
    """
    per_gpu, _ = embodied_kgco2eq_per_gpu(spec)
    return per_gpu / (DEFAULT_LIFETIME_YEARS * HOURS_PER_YEAR * DEFAULT_UTILISATION)
