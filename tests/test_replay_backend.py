"""Replay backend on the shipped real H100 trace."""

from __future__ import annotations

import csv

import pytest

from wattprint.exporter.backends.base import BackendUnavailable
from wattprint.exporter.backends.replay import ReplayBackend, default_trace_path, load_trace


def _trace_rows():
    with default_trace_path().open() as fh:
        return list(csv.DictReader(fh))


def test_trace_energy_matches_the_recorded_counter():
    rows = _trace_rows()
    tr = load_trace(default_trace_path())
    t0, e0 = float(rows[0]["ts"]), float(rows[0]["energy_mj"])
    for r in rows[::97]:
        assert tr.energy_at(float(r["ts"]) - t0) == pytest.approx(float(r["energy_mj"]) - e0, abs=1e-6)
    # 131 s of real load: 55,381.5 J by the counter (tests/fixtures/nvml-h100/SOURCE.md)
    assert (float(rows[-1]["energy_mj"]) - e0) / 1000 == pytest.approx(55381.5, abs=1)


def test_counter_is_monotonic_across_loops_and_gpus_are_distinct():
    wall = [1_000.0]
    b = ReplayBackend(gpus=3, epoch=1_000.0, hostname="n1", wallclock=lambda: wall[0])
    b.open()
    assert len({i.uuid for i in b.infos}) == 3
    assert all(i.uuid.startswith("GPU-") for i in b.infos)
    last = [0, 0, 0]
    powers = set()
    duration = b.trace.duration
    while wall[0] < 1_000.0 + 2.5 * duration:
        for i, r in enumerate(b.read()):
            assert r.energy_mj >= last[i]
            last[i] = r.energy_mj
            powers.add(round(r.power_watts))
        wall[0] += 0.37
    # one loop's energy per loop, and real power levels (idle ~117 W to matmul ~690 W)
    assert min(powers) < 140 and max(powers) > 650
    # GPUs are offset in time: at the same instant they draw different power
    wall[0] = 1_000.0 + 30.0
    assert len({round(r.power_watts) for r in b.read()}) == 3


def test_same_epoch_replays_in_step_on_two_exporters():
    a = ReplayBackend(gpus=1, epoch=500.0, hostname="a", wallclock=lambda: 560.0)
    b = ReplayBackend(gpus=1, epoch=500.0, hostname="b", wallclock=lambda: 560.0)
    a.open()
    b.open()
    assert a.read()[0].energy_mj == b.read()[0].energy_mj
    assert a.infos[0].uuid != b.infos[0].uuid


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ts,power_mw\n1,2\n", r":1: replay trace lacks column\(s\) energy_mj"),
        ("ts,power_mw,energy_mj\n1,100,5\n2,abc,6\n", r":3: not a number"),
        ("ts,power_mw,energy_mj\n1,100,5\n2,100,4\n", r":3: energy_mj goes backwards"),
        ("ts,power_mw,energy_mj\n2,100,5\n1,100,6\n", r":3: ts 1.0 does not increase"),
        ("ts,power_mw,energy_mj\n1,100,5\n", r"at least 2 rows"),
    ],
)
def test_bad_trace_names_file_and_line(tmp_path, content, message):
    p = tmp_path / "t.csv"
    p.write_text(content)
    with pytest.raises(BackendUnavailable, match=message) as exc:
        ReplayBackend(p).open()
    assert str(p) in str(exc.value)


def test_missing_trace_file(tmp_path):
    with pytest.raises(BackendUnavailable, match="cannot read replay trace .*--replay-trace"):
        ReplayBackend(tmp_path / "nope.csv").open()


def test_fail_file_makes_listed_gpus_fail_like_a_lost_board_and_recover(tmp_path, caplog):
    from wattprint.exporter.jobs.base import NoDiscovery
    from wattprint.exporter.poller import Poller

    fail = tmp_path / "fail"
    wall = [1_000.0]
    b = ReplayBackend(gpus=3, epoch=1_000.0, hostname="n1", wallclock=lambda: wall[0], fail_file=fail)
    b.open()
    clock = iter(range(1_000_000))
    poller = Poller(b, NoDiscovery(), clock=lambda: next(clock))
    poller.poll_once()                     # no file: nothing fails
    assert all(g.up for g in poller.snapshot.gpus)
    fail.write_text("1, 7\nx\n")          # unknown indices are ignored with a warning
    for _ in range(3):
        wall[0] += 5
        snap = poller.poll_once()
    by_gpu = {g.info.index: g for g in snap.gpus}
    assert [by_gpu[i].up for i in "012"] == [True, False, True]
    assert dict(by_gpu["1"].errors)["energy"] == 3 and by_gpu["1"].power_watts is None
    assert by_gpu["1"].energy_mj == 0      # the last good counter is kept while the board is lost
    assert "ignoring '7', 'x'" in caplog.text
    fail.unlink()                          # the board answers again: the hardware kept counting
    wall[0] += 5
    by_gpu = {g.info.index: g for g in poller.poll_once().gpus}
    assert by_gpu["1"].up
    truth = [b.trace.energy_at(b.elapsed(i, wall[0])) - b.trace.energy_at(b.elapsed(i, 1_000.0)) for i in range(3)]
    for i in range(3):
        assert by_gpu[str(i)].energy_mj == pytest.approx(truth[i], abs=2)


def test_fail_file_flag_reaches_the_backend():
    from wattprint.exporter.app import build_backend
    from wattprint.exporter.config import parse_config

    backend = build_backend(parse_config(["--backend", "replay", "--replay-fail-file", "/run/fail"]))
    assert isinstance(backend, ReplayBackend) and str(backend.fail_file) == "/run/fail"
