"""Split one poll interval's GPU energy among the jobs on that GPU.

Energies are integer millijoules so that conservation is exact: the parts
returned always add up to the delta given, to the millijoule.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def split_energy_mj(
    delta_mj: int,
    jobs: Sequence[K],
    weights: Mapping[K, float] | None = None,
    rotate: int = 0,
) -> dict[K, int]:
    """Divide ``delta_mj`` among ``jobs``.

    With positive ``weights`` for at least one job (per-process utilisation),
    the split is proportional to them; otherwise it is equal. Rounding uses the
    largest-remainder method, so the result sums to ``delta_mj`` exactly. Ties
    go to jobs in an order rotated by ``rotate`` (the poller passes its poll
    count): with a fixed order the first job would win every spare millijoule
    of an equal split, a small but steady bias.
    """
    if delta_mj < 0:
        raise ValueError(f"energy delta must not be negative, got {delta_mj} mJ")
    if not jobs:
        return {}
    w = [max(0.0, float(weights.get(j, 0.0))) if weights else 0.0 for j in jobs]
    total = sum(w)
    if total <= 0.0:
        w = [1.0] * len(jobs)
        total = float(len(jobs))
    exact = [delta_mj * x / total for x in w]
    parts = [int(e) for e in exact]
    short = delta_mj - sum(parts)
    n = len(jobs)
    order = sorted(range(n), key=lambda i: (-(exact[i] - parts[i]), (i - rotate) % n))
    for i in order[:short]:
        parts[i] += 1
    return dict(zip(jobs, parts, strict=True))
