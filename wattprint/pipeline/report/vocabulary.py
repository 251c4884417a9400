"""The data-quality vocabulary: what each quality key of the report (data_quality.energy, .cpu_energy, .intensity)
is called in every human format. One list, read by the Markdown and HTML renderers, so a share has one name."""

from __future__ import annotations

# (key of the JSON share, label), in the order the reports list them
ENERGY_QUALITY = (("counter", "hardware energy counter"),
                  ("counter_across_gap", "energy counter across a telemetry gap"),
                  ("power_integrated", "integrated power samples"),
                  ("estimated", "estimated (TDP \u00d7 GPU-hours, no telemetry)"))
CPU_ENERGY_QUALITY = (("counter", "RAPL energy counter"),
                      ("counter_across_gap", "RAPL counter across a telemetry gap"),
                      ("estimated", "estimated (watts per core \u00d7 core-hours, no telemetry)"))
INTENSITY_QUALITY = (("hourly", "hourly grid intensity"),
                     ("nearest_hour", "nearest stored hour"),
                     ("monthly_mean", "zone's monthly mean (fallback)"),
                     ("annual_default", "zone's annual default (fallback)"),
                     ("world_default", "world average (fallback)"),
                     ("declared", "declared in manual phases (estimates)"))


def labelled(values: dict[str, float], known: tuple[tuple[str, str], ...]) -> list[tuple[str, float]]:
    """(label, share) for each share, in the vocabulary's order; a key it does not know keeps its own name."""
    names = dict(known)
    keys = [k for k, _ in known if k in values] + [k for k in values if k not in names]
    return [(names.get(k, k), values[k]) for k in keys]
