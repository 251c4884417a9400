"""Disclosure-ready restatements of figures the report already has, never new arithmetic on the measurements:

* `esrs_e1` (the all-projects report): energy consumption in MWh (ESRS E1-5) and gross Scope 2 location-based and
  market-based in tCO2eq (E1-6), from the Scope 2 section's total; the GPUs' embodied emissions (the embodied layer)
  apart, as Scope 3 category 2 (capital goods), never added to Scope 2.
* `annex_xi` (a project report): the energy of training in kWh, for the "known or estimated energy consumption of
  the model" of the EU AI Act, Annex XI, section 1, point 2(e), with the method: the electricity of the headline's
  layers of the training phases, measured and estimated apart.

The SCI-style intensity per functional unit (`sci`, both reports), which divides emissions by the jobs' units, is
in sci.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from .layers import Sums, included
from .scope import ReportOptions
from .types import Phase, Scope2
from .types.disclosure import AnnexXi, AnnexXiPhase, EsrsE1

# the phases whose energy is "the energy consumption of training": pretraining and finetuning of the model itself.
# Experimentation (runs that did not produce the model), evaluation and inference are development or use, not its
# training; they are reported as other_phases_kwh so a provider who counts them can add them.
TRAINING_PHASES = ("pretraining", "finetuning")

_LAYER_WORDS = {"gpu": "the jobs' GPU energy", "cpu": "their CPU energy (RAPL package + DRAM)",
                "node": "their share of the node residual (BMC node energy less GPU boards and RAPL)",
                "idle": "their share of idle GPU and host energy", "pue": "the data-centre overhead (PUE)"}


def energy_included(o: ReportOptions) -> str:
    """The electricity of the headline's layers, in words."""
    parts = [_LAYER_WORDS[n] for n in included(o) if n in _LAYER_WORDS]
    return ", ".join(parts) + ("" if "pue" in included(o) else " (no PUE overhead: the pue layer is not selected)")


def esrs_e1(scope2: Scope2, total: Sums, o: ReportOptions) -> EsrsE1:
    t = scope2.total
    embodied_kg = total.layers(o).embodied.emissions_kg
    fallback = ("no contractual instrument covered any of it and no residual mix priced it, so market-based equals "
                "location-based (the GHG Protocol's fallback to grid averages)"
                if t.covered_kwh == 0 and t.residual_mix_kwh == 0 else
                f"{t.location_fallback_kwh / 1000:,.3f} MWh had neither an instrument nor a residual mix and is "
                "priced at the location-based factor in the market-based figure" if t.location_fallback_kwh > 0 else
                "every MWh of the market-based figure is priced by an instrument or a residual mix")
    note = ("energy consumption: electricity only (GPU and host energy measured or estimated for the jobs, as the "
            "headline counts it); gross Scope 2 both ways from the Scope 2 section; " + fallback + "; Scope 3 "
            "category 2 (capital goods): the GPUs' manufacturing emissions amortised per GPU-hour over "
            f"{o.lifetime_years:g} years at {o.utilisation:.0%} utilisation, reported apart and never added to "
            "Scope 2; no Scope 1 (no fuel is burnt by the measured hardware)")
    return EsrsE1(energy_mwh=t.energy_kwh / 1000.0, energy_included=energy_included(o),
                  scope2_location_tco2eq=t.location_kg / 1000.0, scope2_market_tco2eq=t.market_kg / 1000.0,
                  market_covered_share=t.covered_share, market_location_fallback_mwh=t.location_fallback_kwh / 1000.0,
                  scope3_embodied_tco2eq=embodied_kg / 1000.0, embodied_in_headline="embodied" in included(o),
                  note=note)


def _method(p: Phase, o: ReportOptions) -> str:
    if p.label == "measured":
        return ("measured: the GPUs' hardware energy counters (power integrated only where no counter exists)"
                + (", the hosts' RAPL counters" if o.inc_cpu else "")
                + (", the nodes' BMC power less GPUs and RAPL" if o.inc_node else "")
                + (", idle energy shared pro rata" if "idle" in included(o) else "")
                + (", facility energy with the clusters' PUE" if "pue" in included(o) else ""))
    where = f" ({', '.join(p.sources)})" if p.sources else ""
    return ("estimated: declared GPUs x hours x TDP x utilisation (manual phase)" + where
            + (", facility energy with PUE" if "pue" in included(o) else ""))


def annex_xi(blocks: Sequence[tuple[Phase, Sums]], o: ReportOptions) -> AnnexXi:
    rows = [AnnexXiPhase(phase=p.phase, label=p.label, energy_kwh=s.facility_kwh(o), method=_method(p, o))
            for p, s in blocks if p.phase in TRAINING_PHASES]
    other = sum((s.facility_kwh(o) for p, s in blocks if p.phase not in TRAINING_PHASES), 0.0)
    measured = sum((r.energy_kwh for r in rows if r.label == "measured"), 0.0)
    estimated = sum((r.energy_kwh for r in rows if r.label != "measured"), 0.0)
    kinds = (["measured"] if measured else []) + (["estimated"] if estimated else [])
    method = (f"{' and '.join(kinds) or 'no'} energy of the phases {', '.join(TRAINING_PHASES)} in the report's "
              f"window: {energy_included(o)}; measured from hardware energy counters, estimated phases from TDP, "
              "each labelled; other phases (experimentation, evaluation, inference) are not counted")
    return AnnexXi(training_phases=TRAINING_PHASES, energy_kwh=measured + estimated, measured_kwh=measured,
                   estimated_kwh=estimated, other_phases_kwh=other, phases=tuple(rows), method=method)

