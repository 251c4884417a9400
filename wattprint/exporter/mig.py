"""Split one poll interval's board energy among the MIG instances of a board (docs/exporter.md, "MIG").

A board in MIG mode measures energy for the whole board only. The rule, per interval of length dt with board energy
E (integer millijoules):

  floor   F = min(E, P0 * dt): the board's idle floor, P0 being the lowest power the board has shown over an
          interval since the exporter started (or --mig-idle-floor-watts). F is what the board draws whatever
          runs on it, so every compute slice carries an equal part of it: instance i gets F * s_i / S, and the
          slices no instance holds (S - sum s_i) get theirs, booked as idle.
  rest    E - F, the energy the work added, goes to the instances by slices x activity: s_i * a_i / sum(s_j * a_j),
          a_i being the instance's graphics-engine activity (DCGM_FI_PROF_GR_ENGINE_ACTIVE). Where no instance
          has an activity (NVML gives none per instance; dcgm-exporter without profiling counters), or every
          activity is 0, the rest is shared by slices like the floor.

The parts are rounded by the largest-remainder method (attribution.split_energy_mj), so the instances and the
unpartitioned slices add up to E exactly, to the millijoule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .attribution import split_energy_mj
from .backends.base import MigInstance, id_order

UNPARTITIONED = ""   # the key of the slices no instance holds


@dataclass(frozen=True)
class BoardShares:
    instances_mj: dict[str, int]   # GPU instance id -> its energy
    unpartitioned_mj: int          # the floor's part of the slices no instance holds
    by_activity: bool              # False: the rest was shared by slices (no activity known)


def board_shares(energy_mj: int, instances: Sequence[MigInstance], board_slices: int, seconds: float,
                 floor_watts: float | None, rotate: int = 0) -> BoardShares:
    """The board's `energy_mj` over `seconds` shared among `instances` by the rule above."""
    slices = {i.gi_id: max(0, i.slices) for i in instances}
    total = max(board_slices, sum(slices.values()))
    free = total - sum(slices.values())
    if total <= 0:
        # no slice known at all: nothing to weigh by, every instance alike
        slices = {k: 1 for k in slices}
        total, free = len(slices), 0
    floor = energy_mj if floor_watts is None else min(float(energy_mj), max(0.0, floor_watts) * seconds * 1000.0)
    rest = energy_mj - floor
    active = {i.gi_id: slices[i.gi_id] * max(0.0, min(1.0, i.activity))
              for i in instances if i.activity is not None}
    by_activity = sum(active.values()) > 0.0
    weights: dict[str, float] = {}
    for gi, s in slices.items():
        share = (rest * active.get(gi, 0.0) / sum(active.values())) if by_activity else rest * s / total
        weights[gi] = floor * s / total + share
    keys = sorted(weights, key=id_order)
    if free:
        weights[UNPARTITIONED] = floor * free / total + (0.0 if by_activity else rest * free / total)
        keys.append(UNPARTITIONED)
    parts = split_energy_mj(energy_mj, keys, weights, rotate=rotate)
    return BoardShares({k: v for k, v in parts.items() if k != UNPARTITIONED}, parts.get(UNPARTITIONED, 0),
                       by_activity)


# Compute slices of a whole board: 7 on A100/H100/H200/B200 (GB200 too), 4 on an A30 (its largest profile is
# 4g.24gb). Neither NVML's MIG attributes nor dcgm-exporter's lines say it for the board.
_FOUR_SLICE_MODELS = ("A30",)
BOARD_SLICES = 7


def board_slices(model: str) -> int:
    return 4 if any(m in model for m in _FOUR_SLICE_MODELS) else BOARD_SLICES


def profile_slices(profile: str) -> int:
    """Compute slices of a MIG profile name: 3 for "3g.40gb" (and for a compute-instance "1c.3g.40gb"), 0 if none."""
    for part in profile.split("."):
        if part.endswith("g") and part[:-1].isdigit():
            return int(part[:-1])
    return 0
