"""The records of shared and held GPUs: the held-but-idle section (`held_idle`) and the equal-share fallback of the
data quality (`data_quality.equal_share`); see types/__init__.py. Both were added to schema_version 1 after its first
reports, so they are optional keys there."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import Record


@dataclass(frozen=True, kw_only=True)
class HeldIdleJob(Record):
    """A job of the scope by the energy of the GPUs it held while they were idle."""

    cluster: str
    job_id: str
    project: str                     # NOT_IN_LEDGER for jobs the ledger does not know
    phase: str
    user: str                        # "" when unknown
    gpus: int                        # GPUs it held idle at some time
    gpu_hours: float                 # held-idle GPU-hours
    energy_kwh: float                # held-idle energy: a part of its GPU energy
    emissions_kg: float              # that energy priced as the headline prices its GPU energy (PUE if in it)
    gpu_energy_share: float          # of the job's own GPU energy in the window (0..1)


@dataclass(frozen=True, kw_only=True)
class HeldIdle(Record):
    """Energy of held but idle GPUs: the part of the scope's jobs' own GPU energy from the exporter's poll intervals
    in which the GPU (or MIG instance) a job held was idle (utilisation below its --held-idle-utilization). Already in
    the GPU energy and the headline: shown, never added."""

    energy_kwh: float
    emissions_kg: float
    gpu_energy_share: float          # of the scope's measured GPU energy (0..1)
    gpu_hours: float                 # held-idle GPU-hours
    jobs: int                        # jobs with held-idle time
    top_jobs: tuple[HeldIdleJob, ...]   # the most held-idle energy first, at most --top-jobs


@dataclass(frozen=True, kw_only=True)
class EqualShare(Record):
    """The time-slicing fallback: GPU time split equally among the jobs sharing a GPU for want of per-process
    utilisation."""

    gpu_hours: float                 # equal-share GPU-hours of the scope's jobs
    shared_gpu_hours: float          # the scope's GPU-hours on GPU-hours with two or more jobs (an upper bound)
    share: float                     # gpu_hours / shared_gpu_hours (0..1; 0 when nothing was shared)
