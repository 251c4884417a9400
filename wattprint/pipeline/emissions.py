"""The emissions formula in Python, for figures computed outside SQL (manual phases estimated from TDP). Its SQL
twin is the macro emissions_g in sql/macros.sql, which every result and report query calls; tests/test_emissions.py
holds the two to the same bits."""

from __future__ import annotations

J_PER_KWH = 3600000.0


def emissions_g(energy_j: float, g_per_kwh: float, pue: float = 1.0) -> float:
    """Grams CO2eq of `energy_j` joules priced at `g_per_kwh` gCO2eq/kWh with the facility's PUE (1.0: before PUE)."""
    return energy_j / J_PER_KWH * pue * g_per_kwh
