"""MappingDirDiscovery against real directories (dcgm-exporter --hpc-job-mapping-dir), plus
an end-to-end check that the Poller books all of each GPU's energy to its jobs and idle."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from wattprint.exporter.backends.base import GpuInfo, GpuReading
from wattprint.exporter.jobs.base import Job
from wattprint.exporter.jobs.mapping_dir import MappingDirDiscovery
from wattprint.exporter.poller import Poller


def reading(index: str) -> GpuReading:
    return GpuReading(info=GpuInfo(index=index, uuid=f"GPU-{index}"), timestamp=0.0, pids=None)


READINGS = [reading("0"), reading("1"), reading("2")]


def jobs(*ids: str) -> dict[Job, frozenset[int]]:
    return {Job(i, "mapping-dir"): frozenset() for i in ids}


def test_one_file_per_gpu(tmp_path: Path) -> None:
    (tmp_path / "0").write_text("1001\n1002\n")
    (tmp_path / "1").write_text("\n  1003_[1-4]  \r\n\n1003_[1-4]\n")  # blanks, CRLF, a duplicate
    (tmp_path / "2").write_text("")  # no job: left out
    (tmp_path / "7").write_text("1004\n")  # a GPU the backend does not report: ignored
    d = MappingDirDiscovery(str(tmp_path))
    assert d.discover(READINGS) == {"0": jobs("1001", "1002"), "1": jobs("1003_[1-4]")}
    assert d.name == "mapping-dir"
    assert not d.errors


def test_mig_instances_book_to_their_gpu(tmp_path: Path) -> None:
    (tmp_path / "0.3").write_text("2001\n")
    (tmp_path / "0.5").write_text("2002\n2001\n")  # 2001 also on another instance: once
    (tmp_path / "1.1").write_text("2003\n")
    (tmp_path / "1").write_text("2003\n2004\n")
    d = MappingDirDiscovery(tmp_path)
    assert d.discover(READINGS) == {"0": jobs("2001", "2002"), "1": jobs("2003", "2004")}
    assert not d.errors


def test_missing_dir_counted_every_poll_until_created(tmp_path: Path) -> None:
    path = tmp_path / "mapping"
    d = MappingDirDiscovery(path)
    assert d.discover(READINGS) == {}
    assert d.discover(READINGS) == {}
    assert d.errors == {"missing_dir": 2}
    path.mkdir()
    (path / "0").write_text("3001\n")
    assert d.discover(READINGS) == {"0": jobs("3001")}
    assert d.errors == {"missing_dir": 2}


def test_path_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("0\n")
    d = MappingDirDiscovery(tmp_path / "file")
    assert d.discover(READINGS) == {}
    assert d.errors == {"unreadable": 1}


def test_bad_files_are_counted_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "0").write_text("4001\n")
    (tmp_path / "gpu0").write_text("4002\n")
    (tmp_path / ".0.swp").write_text("4003\n")
    (tmp_path / "0.").write_text("4004\n")
    (tmp_path / "\u0661").write_text("4005\n")  # ARABIC-INDIC DIGIT ONE is not a GPU index
    (tmp_path / "1").write_bytes(b"4006\n\x00\x01\x02binary")
    (tmp_path / "2").write_bytes(b"4007\n\xff\xfe\n")
    (tmp_path / "2.1").write_bytes(b"4008\n" * (64 * 1024 // 5 + 1))
    d = MappingDirDiscovery(tmp_path)
    assert d.discover(READINGS) == {"0": jobs("4001")}
    assert d.errors == {"bad_filename": 4, "bad_content": 2, "too_large": 1}


def test_file_at_size_limit_is_read(tmp_path: Path) -> None:
    line = b"5001\n"
    (tmp_path / "0").write_bytes(line + b"\n" * (64 * 1024 - len(line)))
    d = MappingDirDiscovery(tmp_path)
    assert d.discover(READINGS) == {"0": jobs("5001")}
    assert not d.errors


def test_bad_job_ids_skip_only_their_line(tmp_path: Path) -> None:
    ok = "a" * 128
    (tmp_path / "0").write_text(f"6001\n{'9' * 129}\n6002 6003\n{ok}\njob;rm -rf\n6004\n")
    d = MappingDirDiscovery(tmp_path)
    assert d.discover(READINGS) == {"0": jobs("6001", ok, "6004")}
    assert d.errors == {"bad_job_id": 3}


def test_unreadable_entries(tmp_path: Path) -> None:
    (tmp_path / "0").write_text("7001\n")
    (tmp_path / "1").mkdir()  # a directory named like a GPU
    os.mkfifo(tmp_path / "2")  # must not block the poller
    (tmp_path / "0.1").symlink_to(tmp_path / "gone")  # a link, dangling or not, is never followed
    d = MappingDirDiscovery(tmp_path)
    assert d.discover(READINGS) == {"0": jobs("7001")}
    assert d.errors == {"unreadable": 2, "symlink": 1}


def test_warns_once_per_reason_without_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "gpu0").write_text("1\n")
    d = MappingDirDiscovery(tmp_path)
    with caplog.at_level(logging.DEBUG, logger="wattprint.jobs"):
        for _ in range(3):
            d.discover(READINGS)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in caplog.records)
    assert d.errors == {"bad_filename": 3}


# -- end to end: Poller + MappingDirDiscovery ------------------------------------------------------


class RisingBackend:
    """Three GPUs whose energy counters rise by odd, differing amounts each read."""

    name = "test"

    def __init__(self) -> None:
        self.counters = {"0": 10_000_000, "1": 20_000_000, "2": 0}
        self.t = 0.0

    def open(self) -> None:
        pass

    def read(self) -> list[GpuReading]:
        self.t += 1.0
        for step, index in enumerate(sorted(self.counters), 1):
            self.counters[index] += 1001 * step + int(self.t) * 7
        return [
            GpuReading(info=GpuInfo(index=i, uuid=f"GPU-{i}"), timestamp=self.t, energy_mj=mj)
            for i, mj in sorted(self.counters.items())
        ]

    def close(self) -> None:
        pass


def test_poller_books_every_millijoule(tmp_path: Path) -> None:
    clock = [0.0]
    poller = Poller(RisingBackend(), MappingDirDiscovery(tmp_path), clock=lambda: clock[0])
    a, b = Job("100", "mapping-dir"), Job("101", "mapping-dir")
    # Files between polls: GPU 0 always runs jobs 100 and 101 (however the files spell it),
    # GPU 1 runs 200, then 201; GPU 2 never runs a job, even with junk files naming it.
    layouts = [
        {"0": "100\n101\n", "1": "200\n"},
        {"0": "101\n100\n100\n", "1": "200\n"},
        {"0.1": "100\n", "0.2": "101\n", "1": "200\n", "2": "bad id\n"},
        {"0": "100\n", "0.4": "101\n100\n", "1": "201\n", "gpu2": "300\n"},
        {"0": "101\n100\n", "1": "201\n", "2": "\x00"},
        {"0": "100\n101\n", "1": "\n201\n"},
    ]
    last: dict[tuple[str, Job], int] = {}
    last_share: dict[Job, int] = {a: 0, b: 0}
    for layout in layouts:
        for f in tmp_path.iterdir():
            f.unlink()
        for name, text in layout.items():
            (tmp_path / name).write_text(text)
        clock[0] += 1.0
        snap = poller.poll_once()

        assert [g.info.index for g in snap.gpus] == ["0", "1", "2"]
        for g in snap.gpus:
            assert g.up
            assert sum(j.energy_mj for j in g.jobs) + g.idle_mj == g.energy_mj
            for j in g.jobs:
                assert j.energy_mj >= last.get((g.info.index, j.job), 0)
                last[(g.info.index, j.job)] = j.energy_mj
        gpu0, gpu1, gpu2 = snap.gpus
        assert gpu0.idle_mj == 0
        assert {j.job for j in gpu0.jobs if j.running} == {a, b}
        share = {j.job: j.energy_mj for j in gpu0.jobs}
        # This interval's energy went half to each job.
        assert abs((share[a] - last_share[a]) - (share[b] - last_share[b])) <= 1
        last_share = share
        assert gpu2.jobs == () and gpu2.idle_mj == gpu2.energy_mj

    assert gpu0.energy_mj > 0 and gpu1.energy_mj > 0
    assert {j.job.job_id: j.running for j in gpu1.jobs} == {"200": False, "201": True}
    assert {j.job.job_id for j in gpu1.jobs} == {"200", "201"}
    assert dict(snap.discovery_errors) == {"bad_job_id": 1, "bad_filename": 1, "bad_content": 1}
