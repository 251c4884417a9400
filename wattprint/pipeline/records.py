"""Plain records that sources produce and the store writes. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

PHASES = ("experimentation", "pretraining", "finetuning", "inference", "evaluation", "unclassified")
INTENSITY_BASES = ("lifecycle", "direct", "marginal")
# Average intensity (lifecycle, direct: what the grid emitted per kWh) and a marginal rate (what the plant answering
# extra load emits) are two signals, stored side by side and never mixed (migrations/0010_intensity_signals.sql).
INTENSITY_SIGNALS = ("average", "marginal")


def intensity_signal(basis: str) -> str:
    """The signal a basis belongs to: 'marginal' for the marginal basis, else 'average' (the CHECK of the tables)."""
    return "marginal" if basis == "marginal" else "average"


@dataclass(frozen=True)
class JobRecord:
    """One job of the ledger. `nodes` are expanded host names; `gpus_per_node` is None when unknown."""

    cluster: str
    job_id: str
    project: str
    phase: str
    start: datetime
    end: datetime | None          # None: still running
    user: str = ""
    name: str = ""
    account: str = ""
    nodes: tuple[str, ...] = ()
    gpus_per_node: int | None = None
    source: str = ""              # csv, yaml, sacct-json, sacct-parsable, kubernetes
    origin: str = ""              # file:line (or series) it came from, for error messages and lineage
    units: float | None = None    # functional units the job produced (ledger column `units`): > 0, or None
    unit_name: str = ""           # what a unit is (tokens, samples): set exactly when units is


@dataclass(frozen=True)
class IntensityPoint:
    """Grid carbon intensity of a zone over [start, end), in gCO2eq/kWh."""

    zone: str
    start: datetime
    end: datetime
    g_per_kwh: float
    basis: str                    # one of INTENSITY_BASES
    source: str                   # electricitymaps, uk-carbon-intensity, watttime, csv
    is_estimated: bool = False
    origin: str = ""              # file:line or URL, for error messages and lineage
    notes: tuple[str, ...] = field(default=())
