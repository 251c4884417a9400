"""The one SCI figure a model card states: the training phases' grams of CO2eq per functional unit.

A project report's `sci` has a row per phase and unit name; a model card describes the trained model, so it takes the
rows of the training phases (disclosure.TRAINING_PHASES, as the Annex XI training energy does). When they carry
several unit names (pretraining in tokens, finetuning in samples) the card states the one whose jobs used the most
energy, and says which; the rows of one unit name in both phases add up (grams over units, as the report's `all` row
does for every phase). The Hub's `co2_eq_emissions` and the Markdown's "Environmental Impact" both read it from here,
so the metadata and the body say the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from .disclosure import TRAINING_PHASES
from .fmt import num, pct
from .types import Sci, SciRow


@dataclass(frozen=True)
class TrainingSci:
    unit_name: str
    units: float                     # R of the training rows of this unit name
    jobs: int
    rows: tuple[SciRow, ...]         # the training rows it sums (one per phase)
    g_per_unit: float                # (E x I + M) / R, grams of CO2eq
    g_per_million_units: float

    @property
    def functional_unit(self) -> str:
        """The functional unit in words: what a unit is, whose, and how much of the phases' energy it covers."""
        phases = " and ".join(r.phase for r in self.rows)
        if len(self.rows) == 1:
            share = f"{pct(self.rows[0].energy_share)} of the phase's energy"
        else:
            share = ", ".join(f"{r.phase} {pct(r.energy_share)}" for r in self.rows) + " of each phase's energy"
        jobs = f"{self.jobs} job{'s' if self.jobs != 1 else ''}"
        return (f"one of the {num(self.units)} {self.unit_name} of the {phases} jobs that give units ({jobs}"
                f"{', ' if len(self.rows) == 1 else '; '}{share})")


def training_sci(c: Sci | None) -> TrainingSci | None:
    """The training phases' SCI (None: no training job carries units)."""
    rows = [r for r in (c.rows if c is not None else ()) if r.phase in TRAINING_PHASES]
    if not rows:
        return None
    energy: dict[str, float] = {}
    for r in rows:
        energy[r.unit_name] = energy.get(r.unit_name, 0.0) + r.energy_kwh
    name = min(energy, key=lambda n: (-energy[n], n))
    picked = tuple(r for r in rows if r.unit_name == name)
    if len(picked) == 1:            # the report's own figures, not recomputed
        (r,) = picked
        return TrainingSci(unit_name=name, units=r.units, jobs=r.jobs, rows=picked, g_per_unit=r.g_per_unit,
                           g_per_million_units=r.g_per_million_units)
    units = sum(r.units for r in picked)
    per = sum(r.sci_g for r in picked) / units
    return TrainingSci(unit_name=name, units=units, jobs=sum(r.jobs for r in picked), rows=picked, g_per_unit=per,
                       g_per_million_units=per * 1e6)
