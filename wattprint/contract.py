"""The metric contract: every metric and label name the exporter writes and the pipeline reads.

Both sides import these names, so a rename happens in one place; tests/test_contract.py holds them against
the golden /metrics page (tests/golden/metrics.txt), which the exporter's own test regenerates. Counter
families are named without `_total` (prometheus_client adds it on exposition); `series()` gives the name
a query reads. Imports nothing, so the exporter can use it without pulling in anything else.
"""

from __future__ import annotations

# -- GPU series (per board) -----------------------------------------------------------------------------
GPU_ENERGY = "wattprint_gpu_energy_joules"              # counter, J: the board's hardware energy counter
GPU_IDLE_ENERGY = "wattprint_gpu_idle_energy_joules"    # counter, J: the part no job was on
JOB_ENERGY = "wattprint_job_energy_joules"              # counter, J: per job and GPU
JOB_GPU_SECONDS = "wattprint_job_gpu_seconds"           # counter, s: the time each job held each GPU
# counter, J: the part of a job's energy on a GPU from intervals in which the GPU (or its MIG instance) it held was
# idle (utilisation below the exporter's --held-idle-utilization threshold): energy of held but idle GPUs
JOB_HELD_IDLE_ENERGY = "wattprint_job_held_idle_energy_joules"
JOB_HELD_IDLE_SECONDS = "wattprint_job_held_idle_seconds"   # counter, s: the held time of those intervals
# counter, s: the held time of intervals in which the job shared its GPU (or MIG instance) with other jobs and the
# split fell back to equal shares (no per-process utilisation)
JOB_EQUAL_SHARE_SECONDS = "wattprint_job_equal_share_seconds"

# -- host series (RAPL, per socket and domain) ------------------------------------------------------------
CPU_ENERGY = "wattprint_cpu_energy_joules"
CPU_IDLE_ENERGY = "wattprint_cpu_idle_energy_joules"
JOB_CPU_ENERGY = "wattprint_job_cpu_energy_joules"
JOB_CPU_SECONDS = "wattprint_job_cpu_seconds"
CPU_RAPL_UP = "wattprint_cpu_rapl_up"                   # gauge, 1 when every RAPL zone was read

# -- node series (the whole node, from its BMC: the exporter's --node-power collector) ---------------------------
NODE_ENERGY = "wattprint_node_energy_joules"            # counter, J: the BMC's energy counter, or its power integrated
NODE_POWER = "wattprint_node_power_watts"               # gauge, W: the BMC's last power reading
NODE_SOURCE = "source"                                  # label of both: how the BMC was read, redfish | ipmi

COUNTERS = (GPU_ENERGY, GPU_IDLE_ENERGY, JOB_ENERGY, JOB_GPU_SECONDS, JOB_HELD_IDLE_ENERGY, JOB_HELD_IDLE_SECONDS,
            JOB_EQUAL_SHARE_SECONDS, CPU_ENERGY, CPU_IDLE_ENERGY, JOB_CPU_ENERGY,
            JOB_CPU_SECONDS, NODE_ENERGY)

# Prometheus community ipmi_exporter (collector_dcmi.go): a gauge in W with no labels of its own; the host is the
# scrape's `instance` (or a `hostname` label added by relabelling)
IPMI_DCMI_POWER = "ipmi_dcmi_power_consumption_watts"

# -- labels -------------------------------------------------------------------------------------------------
HOSTNAME = "hostname"
GPU = "gpu"            # the board's index on its node
UUID = "uuid"          # the board's identity across exporters (dcgm-exporter spells it UUID)
MODEL = "model"
JOB_ID = "job_id"
SOCKET = "socket"
DOMAIN = "domain"      # RAPL domain: package or dram
GPU_LABELS = (GPU, UUID, MODEL, HOSTNAME)
GPU_INSTANCE = "gpu_instance"   # a MIG GPU instance's id (dcgm-exporter's GPU_I_ID), on the per-instance series
MIG_PROFILE = "mig_profile"     # its profile, e.g. 1g.10gb (dcgm-exporter's GPU_I_PROFILE)
CPU_LABELS = (SOCKET, DOMAIN, MODEL, HOSTNAME)
SOURCE = NODE_SOURCE    # where a node's power comes from: redfish (the exporter's collector) or ipmi (ipmi_exporter)
NODE_LABELS = (HOSTNAME, SOURCE)

# -- dcgm-exporter, read by the pipeline beside (or instead of) the exporter ---------------------------------
DCGM_ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"    # counter, mJ
DCGM_POWER = "DCGM_FI_DEV_POWER_USAGE"                  # gauge, W


def series(family: str) -> str:
    """The name a query reads: counters carry `_total` on the page."""
    return f"{family}_total" if family in COUNTERS else family
