"""AMD's ROCm device-metrics-exporter as an energy source (`ingest.metrics.amd`): which of its series are read, how.

What the exporter writes, from ROCm/device-metrics-exporter at commit 0778d3ab (release v1.5.x):

* `docs/configuration/metricslist.md`, "Power Metrics": GPU_ENERGY_CONSUMED [MI2xx, MI3xx] "Accumulated energy
  consumed by the GPU in Micro Jules (uJ)"; GPU_PACKAGE_POWER [MI3xx] "Current socket power in Watts";
  GPU_POWER_USAGE [MI2xx, MI3xx] "GPU power usage in Watts"; GPU_AVERAGE_PACKAGE_POWER [MI2xx].
* `pkg/amdgpu/gpuagent/gpuagent_gpu_metrics.go`: the Prometheus names are the field names in lower case
  (`gpu_energy_consumed`, `gpu_package_power`, `gpu_power_usage`), every one a gauge; a partition's
  `serial_number` and `card_model` are its parent GPU's, its `gpu_id` and `gpu_uuid` its own.
* `docs/configuration/configmap.md`: `gpu_id`, `serial_number`, `card_model`, `hostname`, `gpu_partition_id`,
  `gpu_compute_partition_type`, `job_id`, `pod` (and others) are always set; `gpu_uuid`, `card_series` optional.
* `docs/releasenotes.md`: up to v1.3.1 a field the platform does not support is exported as 0; from v1.4.0 it is
  left out.

The rules (docs/pipeline.md, "AMD device-metrics-exporter"):

1. Energy is `gpu_energy_consumed`, a gauge holding the GPU's energy accumulator (uJ since the GPU's last reset),
   read as a counter: a drop is a reset, as for every energy counter (sql/macros_counter_deltas.sql). x 1e-6 = J.
2. One line per physical GPU. In a partitioned mode (CPX, DPX, ...) the exporter writes one line per partition,
   `gpu_partition_id` 0..n-1, and the socket's energy and power belong to the GPU, not to a partition: the other
   partitions' lines may repeat them. Energy and power are read from the lines whose partition label is "0" or
   absent (an unpartitioned exporter's); the other partitions' energy lines are stored as kind `partition_energy`,
   never priced, and counted in the reports (`data_quality.amd_exporter`). Their power lines are not read.
3. The job label of a partitioned GPU's line (compute-partition type other than spx or none) names the job on its
   partition only, while its energy is the whole GPU's: it is not read, and the model shares that energy among the
   ledger's jobs on the node as any GPU energy without a job label.
4. Zero is not a reading. An accumulator counting uJ since the GPU's reset, and the socket power of a GPU that
   answers, are never exactly 0, but older exporters write 0 for a field the platform does not support. The model
   drops the source's 0 samples (sql/macros.sql, zero_unread): a GPU whose counter reads 0 is priced from its power
   gauge where that reads, and the reports count the GPU-hours of 0 readings.
5. Power: `gpu_package_power` and `gpu_power_usage` (`power_fallback`) both go into the GPU's power stream and the
   larger is integrated at each step, so the one a platform does not support (0 or absent) never hides the other.
   Power is a fallback only: wherever the energy counter reads, it is priced and the power is not.
6. The model is `card_series` (optional, e.g. "AMD Instinct MI300X OAM"), else `card_model`, which holds the board's
   part number (e.g. "102-G30211-0C"); a part number of a family in PART_NUMBERS is named as `card_series` names it.
"""

from __future__ import annotations

import re

from .config import AmdMetrics
from .ingest import SeriesQuery

PRIMARY = "0|"        # a partition label matching this (anchored, as PromQL regexes are): "0", or none at all

# Board part-number families (the part number without its two-character suffix) -> the name `card_series` gives the
# same boards. 102-G30211: ROCm/device-metrics-exporter pull request #16 shows
# card_model="102-G30211-0C",card_series="AMD Instinct MI300X OAM" on one line, as does amd-smi's product number
# 102-G30211-00 beside product name "AMD Instinct MI300X OAM". Families not listed keep their part number.
PART_NUMBERS = {"102-G30211": "AMD Instinct MI300X OAM"}
_PART = re.compile(r"^(102-[A-Z][0-9]{5})-[0-9A-Z]{2}$", re.IGNORECASE)


def model_name(label: str) -> str:
    """The model a series' model label names: a known part number's family name, else the label as it is."""
    m = _PART.match(label.strip())
    return PART_NUMBERS.get(m.group(1).upper(), label) if m else label


def queries(m: AmdMetrics, cluster_labels: tuple[str, ...]) -> list[SeriesQuery]:
    """The series this source reads (none when disabled): the primary lines' energy and power, and the other
    partitions' energy lines (stored to be counted). The partition matchers use the first `partition` label."""
    if not m.enabled:
        return []
    lab = m.labels
    part = lab.partition[:1]
    primary = tuple((k, "=~", PRIMARY) for k in part)
    others = tuple((k, "!~", PRIMARY) for k in part)

    def q(kind: str, metric: str, scale: float, matchers: tuple[tuple[str, str, str], ...], jobs: tuple[str, ...],
          named: bool = False) -> SeriesQuery:
        return SeriesQuery("amd", kind, metric, scale, lab.hostname, lab.gpu, lab.uuid, jobs, cluster_labels,
                           lab.model, matchers=matchers, name_in_identity=named,
                           partition_type_labels=lab.partition_type, model_name=model_name)

    out = [q("gpu_energy", m.energy, m.joules_per_energy_unit, primary, lab.job_id)]
    if others:
        out.append(q("partition_energy", m.energy, m.joules_per_energy_unit, others, ()))
    out += [q("gpu_power", metric, m.watts_per_power_unit, primary, lab.job_id, named=True)
            for metric in (m.power, m.power_fallback) if metric]
    return out
