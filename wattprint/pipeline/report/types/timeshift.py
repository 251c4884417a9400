"""The records of the time-shift what-if (`time_shift`): the same hourly energy started later, at the cleanest start
within the slack. Added to schema_version 1 after its first reports, so an optional key there."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import Record


@dataclass(frozen=True, kw_only=True)
class TimeShiftOption(Record):
    """One phase, or one job, of the scope: its hourly energy profile priced where it ran and at the cleanest later
    start within the slack (same zones, the model's intensity rule at the moved hours)."""

    kind: str                        # "phase" or "job"
    phase: str                       # the phase (a job's own phase)
    project: str | None              # a job's project (NOT_IN_LEDGER when unknown); None for a phase
    cluster: str | None              # a job's cluster; None for a phase
    job_id: str | None               # None for a phase
    energy_kwh: float                # the profile's energy, as the headline counts it
    actual_kg: float                 # priced at the hours it ran
    best_shift_hours: int            # 0: no later start within the slack is cleaner
    best_kg: float                   # priced at the hours of the best start
    saving_kg: float                 # actual - best (>= 0)
    saving_pct: float                # of actual (0..1)
    shifts_measured: int             # later starts priced from measured intensity only, of `slack_hours`


@dataclass(frozen=True, kw_only=True)
class TimeShift(Record):
    """What starting the same work later would have emitted: per phase and for the top jobs."""

    slack_hours: int                 # later starts considered: 1 .. slack_hours hours
    phases: tuple[TimeShiftOption, ...]
    jobs: tuple[TimeShiftOption, ...]    # the scope's top jobs by headline emissions, at most --top-jobs
    saving_kg: float                 # the phases' savings together (each phase moved on its own)
    saving_pct: float                # of the phases' actual emissions (0..1)
    note: str
