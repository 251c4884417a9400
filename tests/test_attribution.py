"""The energy split: exact conservation, proportional to utilisation, equal without it."""

from __future__ import annotations

import random

import pytest

from wattprint.exporter.attribution import split_energy_mj


def test_one_job_takes_all():
    assert split_energy_mj(1234, ["a"]) == {"a": 1234}


def test_equal_split_without_weights_and_remainder_is_deterministic():
    assert split_energy_mj(10, ["a", "b", "c"]) == {"a": 4, "b": 3, "c": 3}
    assert split_energy_mj(10, ["a", "b", "c"], {"a": 0, "b": 0}) == {"a": 4, "b": 3, "c": 3}


def test_spare_millijoules_rotate_so_equal_jobs_stay_equal_over_time():
    totals = {"a": 0, "b": 0, "c": 0}
    for k in range(3000):
        for j, v in split_energy_mj(1001, ["a", "b", "c"], rotate=k).items():
            totals[j] += v
    assert max(totals.values()) - min(totals.values()) <= 1


def test_split_by_utilisation():
    assert split_energy_mj(1000, ["heavy", "light"], {"heavy": 99.0, "light": 1.0}) == {"heavy": 990, "light": 10}


def test_conservation_holds_exactly_on_random_inputs():
    rng = random.Random(7)
    for _ in range(5000):
        n = rng.randint(1, 9)
        jobs = [f"j{i}" for i in range(n)]
        weights = {j: rng.choice([0.0, rng.random() * 100]) for j in jobs} if rng.random() < 0.7 else None
        delta = rng.randint(0, 10**9)
        parts = split_energy_mj(delta, jobs, weights)
        assert sum(parts.values()) == delta
        assert all(v >= 0 for v in parts.values())


def test_negative_delta_is_refused():
    with pytest.raises(ValueError):
        split_energy_mj(-1, ["a"])
