"""--state-file: the exported counters survive an exporter restart, and the downtime's energy is booked."""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
from collections.abc import Sequence

import pytest

from tests.fake_nvml import make_fake_nvml
from wattprint.exporter.app import App
from wattprint.exporter.backends.base import GpuInfo, GpuReading
from wattprint.exporter.backends.nvml import NvmlBackend
from wattprint.exporter.backends.replay import ReplayBackend
from wattprint.exporter.collectors import WattprintCollector
from wattprint.exporter.config import parse_config
from wattprint.exporter.jobs.base import Assignment, Job
from wattprint.exporter.node import source as node_source
from wattprint.exporter.node.accounting import NodePowerPoller
from wattprint.exporter.poller import Poller
from wattprint.exporter.state import (
    SavedNode,
    SavedNodeCounter,
    StateError,
    dump_state,
    load_state,
    load_state_doc,
    write_state,
)


class Board:
    """A scripted backend: each GPU's raw counter is whatever the test sets."""

    name = "scripted"

    def __init__(self, uuids: Sequence[str]) -> None:
        self.raw = {u: 1_000_000 for u in uuids}
        self.t = 0.0

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self) -> list[GpuReading]:
        self.t += 1.0
        return [GpuReading(info=GpuInfo(index=str(i), uuid=u), timestamp=self.t, energy_mj=mj, power_watts=100.0)
                for i, (u, mj) in enumerate(self.raw.items())]


class Jobs:
    name = "mapping-dir"

    def __init__(self) -> None:
        self.errors: collections.Counter[str] = collections.Counter()
        self.on: dict[str, list[str]] = {}

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        return {gpu: {Job(j, "mapping-dir"): frozenset() for j in ids} for gpu, ids in self.on.items()}


def _poller(backend, discovery, path, interval=10.0) -> Poller:
    clock = itertools.count(0.0, 1.0)
    return Poller(backend, discovery, clock=lambda: next(clock), wallclock=lambda: 1.7e9,
                  state_file=str(path), state_interval=interval)


def _gpu(snap, uuid):
    return next(g for g in snap.gpus if g.info.uuid == uuid)


def _jobs(g) -> dict[str, int]:
    return {j.job.job_id: j.energy_mj for j in g.jobs}


def test_restart_restores_totals_and_books_the_downtime_to_the_jobs_found_first(tmp_path):
    state = tmp_path / "state.json"
    board, jobs = Board(["GPU-a", "GPU-b"]), Jobs()
    jobs.on = {"0": ["j1"]}
    p = _poller(board, jobs, state)
    p.poll_once()
    board.raw["GPU-a"] += 5_000
    board.raw["GPU-b"] += 7_000
    p.poll_once()
    jobs.on = {"0": ["j1"], "1": ["j2"]}
    board.raw["GPU-a"] += 1_000
    board.raw["GPU-b"] += 2_000
    before = p.poll_once()
    assert p.save_state()  # as on SIGTERM
    a0, b0 = _gpu(before, "GPU-a"), _gpu(before, "GPU-b")
    assert (a0.energy_mj, _jobs(a0), b0.energy_mj, b0.idle_mj, _jobs(b0)) == (6_000, {"j1": 6_000}, 9_000,
                                                                              7_000, {"j2": 2_000})
    # down for a while: the hardware keeps counting; j3 replaced j2 on GPU 1 meanwhile
    board.raw["GPU-a"] += 3_000
    board.raw["GPU-b"] += 4_000
    jobs.on = {"0": ["j1"], "1": ["j3"]}
    p2 = _poller(board, jobs, state)
    after = p2.poll_once()
    a1, b1 = _gpu(after, "GPU-a"), _gpu(after, "GPU-b")
    assert a1.energy_mj == 9_000 and _jobs(a1) == {"j1": 9_000} and a1.idle_mj == 0
    # the downtime goes to the job found at the first poll; j2 keeps its restored total (not running)
    assert b1.energy_mj == 13_000 and b1.idle_mj == 7_000 and _jobs(b1) == {"j2": 2_000, "j3": 4_000}
    assert {j.job.job_id: j.running for j in b1.jobs} == {"j2": False, "j3": True}
    assert a1.counter_resets == 0 and b1.counter_resets == 0
    for g in after.gpus:
        assert g.idle_mj + sum(j.energy_mj for j in g.jobs) == g.energy_mj


def test_no_state_file_option_starts_from_zero(tmp_path):
    board, jobs = Board(["GPU-a"]), Jobs()
    p = _poller(board, jobs, tmp_path / "s.json")
    p.poll_once()
    board.raw["GPU-a"] += 5_000
    p.poll_once()
    p.save_state()
    board.raw["GPU-a"] += 1_000
    fresh = Poller(board, jobs)  # no --state-file: today's behaviour
    assert _gpu(fresh.poll_once(), "GPU-a").energy_mj == 0


def test_periodic_save_after_a_kill_loses_nothing_on_the_gpu_counter(tmp_path):
    state = tmp_path / "state.json"
    board, jobs = Board(["GPU-a"]), Jobs()
    p = _poller(board, jobs, state, interval=3.0)   # clock ticks 1 s per poll: saves at polls 1, 4, 7
    last = None
    for _ in range(5):
        board.raw["GPU-a"] += 1_000
        last = p.poll_once()
    assert json.loads(state.read_text())["gpus"]["GPU-a"]["energy_mj"] == 3_000  # saved at the 4th poll
    # SIGKILL: no save at exit. The raw delta since the saved baseline covers the unsaved polls too.
    board.raw["GPU-a"] += 500
    g = _gpu(_poller(board, jobs, state).poll_once(), "GPU-a")
    assert g.energy_mj == _gpu(last, "GPU-a").energy_mj + 500
    assert g.counter_resets == 0


def test_driver_reload_counts_a_reset_and_never_goes_backwards(tmp_path):
    nv = make_fake_nvml(gpus=1)
    state = tmp_path / "state.json"
    backend = NvmlBackend(nv)
    backend.open()
    p = _poller(backend, Jobs(), state)
    p.poll_once()
    nv.advance(10)
    before = p.poll_once().gpus[0]
    p.save_state()
    assert before.energy_mj > 0
    nv.gpus[0].energy_mj = 1_234   # reboot / driver reload: the counter starts again, below the saved one
    p2 = _poller(backend, Jobs(), state)
    g = p2.poll_once().gpus[0]
    assert g.energy_mj == before.energy_mj and g.counter_resets == before.counter_resets + 1
    nv.advance(5)
    g2 = p2.poll_once().gpus[0]
    assert g2.energy_mj == before.energy_mj + nv.gpus[0].energy_mj - 1_234   # fresh baseline
    assert json.loads(state.read_text())["gpus"][g.info.uuid]["resets"] == 1


@pytest.mark.parametrize(
    "content",
    ["{not json", "", json.dumps({"format": "wattprint-exporter-state", "version": 99, "gpus": {}}),
     json.dumps({"format": "wattprint-exporter-state", "version": 1,
                 "gpus": {"GPU-a": {"index": "0", "raw_counter_mj": 5, "energy_mj": -3, "idle_mj": 0,
                                    "resets": 0, "jobs": []}}}),
     json.dumps([1, 2])],
)
def test_corrupt_or_foreign_file_starts_fresh_with_one_log_line(tmp_path, caplog, content):
    state = tmp_path / "state.json"
    state.write_text(content)
    with pytest.raises(StateError):
        load_state(state)
    board = Board(["GPU-a"])
    with caplog.at_level(logging.INFO, logger="wattprint.poller"):
        p = _poller(board, Jobs(), state)
    assert [r.message for r in caplog.records if "state file" in r.message][0].startswith("state file not used")
    board.raw["GPU-a"] += 900
    assert _gpu(p.poll_once(), "GPU-a").energy_mj == 0
    assert load_state(state)["GPU-a"].raw_counter_mj == board.raw["GPU-a"]   # rewritten, valid again


def test_unknown_gpu_in_the_file_is_ignored_and_known_ones_restored(tmp_path):
    state = tmp_path / "state.json"
    board = Board(["GPU-a", "GPU-gone"])
    p = _poller(board, Jobs(), state)
    p.poll_once()
    board.raw["GPU-a"] += 2_000
    board.raw["GPU-gone"] += 2_000
    p.poll_once()
    p.save_state()
    board2 = Board(["GPU-new", "GPU-a"])   # the board was swapped; GPU-a moved to index 1
    board2.raw["GPU-a"] = board.raw["GPU-a"] + 100
    snap = _poller(board2, Jobs(), state).poll_once()
    assert {g.info.uuid: g.energy_mj for g in snap.gpus} == {"GPU-new": 0, "GPU-a": 2_100}
    assert _gpu(snap, "GPU-a").info.index == "1"
    assert set(load_state(state)) == {"GPU-new", "GPU-a"}


def test_replay_restart_with_the_same_epoch_counts_the_whole_trace(tmp_path):
    state = tmp_path / "state.json"
    wall = [2_000.0]
    jobs = Jobs()
    jobs.on = {"1": ["train"]}

    def replay():
        b = ReplayBackend(gpus=2, epoch=2_000.0, hostname="n1", wallclock=lambda: wall[0])
        b.open()
        return b

    first = replay()
    p = _poller(first, jobs, state)
    start = {r.info.uuid: r.energy_mj for r in first.read()}
    p.poll_once()
    for _ in range(20):
        wall[0] += 0.5
        p.poll_once()
    p.save_state()
    wall[0] += 7.3   # down 7.3 s
    second = replay()
    p2 = _poller(second, jobs, state)
    snap = p2.poll_once()
    truth = {r.info.uuid: r.energy_mj - start[r.info.uuid] for r in second.read()}
    assert {g.info.uuid: g.energy_mj for g in snap.gpus} == truth
    g1 = next(g for g in snap.gpus if g.info.index == "1")
    assert _jobs(g1) == {"train": g1.energy_mj}


def test_a_file_from_another_node_restores_none_of_its_gpus(tmp_path, caplog):
    """GPUs are keyed by UUID, unique to a board (replay's derive from --hostname): a state file copied to or shared
    with another node holds none of that node's GPUs, so they start from 0 and the foreign ones are dropped."""
    state = tmp_path / "state.json"
    jobs = Jobs()
    jobs.on = {"0": ["train"]}

    def replay(hostname):
        b = ReplayBackend(gpus=2, epoch=2_000.0, hostname=hostname, wallclock=lambda: 2_010.0)
        b.open()
        return b

    p = _poller(replay("n1"), jobs, state)
    p.poll_once()
    p.save_state()
    foreign = set(load_state(state))
    with caplog.at_level(logging.INFO, logger="wattprint.poller"):
        snap = _poller(replay("n2"), jobs, state).poll_once()
    assert {g.info.uuid for g in snap.gpus}.isdisjoint(foreign)
    assert [(g.energy_mj, g.idle_mj, _jobs(g), g.counter_resets) for g in snap.gpus] == [(0, 0, {"train": 0}, 0),
                                                                                       (0, 0, {}, 0)]
    dropped = {r.fields["uuid"] for r in caplog.records   # type: ignore[attr-defined]
               if r.message == "state file: GPU not found, its saved totals are dropped"}
    assert dropped == foreign and set(load_state(state)) == {g.info.uuid for g in snap.gpus}


def test_write_failures_are_counted_logged_once_and_not_fatal(tmp_path, caplog):
    state = tmp_path / "no-such-dir" / "state.json"
    board = Board(["GPU-a"])
    p = _poller(board, Jobs(), state, interval=1.0)
    with caplog.at_level(logging.ERROR, logger="wattprint.poller"):
        for _ in range(3):
            snap = p.poll_once()
    assert snap.state_save_errors == 3
    assert len([r for r in caplog.records if "cannot write the state file" in r.message]) == 1
    page = {m.name: m for m in WattprintCollector(lambda: snap, "n1").collect()}
    assert page["wattprint_exporter_state_save_errors"].samples[0].value == 3.0
    assert "wattprint_exporter_state_save_errors" not in {
        m.name for m in WattprintCollector(lambda: Poller(board, Jobs()).poll_once(), "n1").collect()}


def test_file_is_replaced_atomically_and_leaves_no_temporaries(tmp_path):
    state = tmp_path / "state.json"
    board = Board(["GPU-a"])
    p = _poller(board, Jobs(), state, interval=1.0)
    for _ in range(3):
        board.raw["GPU-a"] += 10
        p.poll_once()
    assert os.listdir(tmp_path) == ["state.json"]
    doc = json.loads(state.read_text())
    assert doc["version"] == 1 and doc["gpus"]["GPU-a"]["energy_mj"] == 20


def test_flags_and_app_shutdown_save(tmp_path, monkeypatch):
    state = tmp_path / "s.json"
    monkeypatch.setenv("WATTPRINT_STATE_INTERVAL", "2.5")
    cfg = parse_config(["--backend", "replay", "--state-file", str(state), "--hostname", "n1",
                        "--web.listen-address", "127.0.0.1:0"])
    assert cfg.state_file == str(state) and cfg.state_interval == 2.5
    assert parse_config([]).state_file is None
    app = App(cfg)
    app.start()
    try:
        assert state.exists()
        state.unlink()
    finally:
        app.shutdown()
    assert load_state(state)   # written again on shutdown


class Bmc:
    """A scripted BMC energy counter (tests/test_node_redfish_state.py uses a real Redfish server)."""

    name = "redfish"
    bmc = "bmc.node-a.example"

    def __init__(self) -> None:
        self.joules = 5_000.0
        self.t = 0.0

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self) -> node_source.NodeReading:
        self.t += 1.0
        return node_source.NodeReading(timestamp=self.t, method=node_source.METHOD_COUNTER, energy_joules=self.joules,
                                       power_watts=None, reading="EnvironmentMetrics.EnergyJoules",
                                       chassis="/redfish/v1/Chassis/1")


def _with_node(board, path, bmc, interval=10.0) -> tuple[Poller, NodePowerPoller]:
    node = NodePowerPoller(bmc, wallclock=lambda: 1.7e9, hostname="node-a")
    clock = itertools.count(0.0, 1.0)
    return Poller(board, Jobs(), clock=lambda: next(clock), wallclock=lambda: 1.7e9, state_file=str(path),
                  state_interval=interval, node=node), node


def test_the_node_counter_is_saved_beside_the_gpus_and_resumed(tmp_path):
    state = tmp_path / "state.json"
    board, bmc = Board(["GPU-a"]), Bmc()
    p, node = _with_node(board, state, bmc)
    node.poll_once()
    bmc.joules = 5_012.345
    node.poll_once()
    p.poll_once()
    assert p.save_state()
    doc = json.loads(state.read_text())
    assert doc["version"] == 1 and doc["gpus"]["GPU-a"]["energy_mj"] == 0
    assert doc["node"] == {"source": "redfish", "hostname": "node-a", "energy_mj": 12_345, "resets": 0, "gaps": 0,
                           "gap_seconds": 0.0, "last_unixtime": 1.7e9,
                           "counter": {"method": "counter", "reading": "EnvironmentMetrics.EnergyJoules",
                                       "chassis": "/redfish/v1/Chassis/1", "bmc": "bmc.node-a.example",
                                       "raw_mj": 5_012_345}}
    # the next process: down while the BMC counted 100 J
    bmc.joules = 5_112.345
    p2, node2 = _with_node(board, state, bmc)
    assert node2.snapshot.energy_mj == 12_345 and not node2.snapshot.up
    p2.poll_once()   # saved before the node's first poll: the file's node part is kept as it was
    assert json.loads(state.read_text())["node"] == doc["node"]
    assert node2.poll_once().energy_mj == 112_345


def test_files_without_a_node_part_load_and_a_bad_one_is_refused(tmp_path):
    state = tmp_path / "state.json"
    base = {"format": "wattprint-exporter-state", "version": 1, "gpus": {}}
    state.write_text(json.dumps(base))
    assert load_state_doc(state).node is None   # a file from before the node part
    good = {"source": "redfish", "hostname": "node-a", "energy_mj": 7, "counter": None}
    state.write_text(json.dumps({**base, "node": good}))
    # the fields after energy_mj take their defaults
    assert load_state_doc(state).node == SavedNode(source="redfish", hostname="node-a", energy_mj=7)
    assert load_state(state) == {}   # the GPU reader passes over it, as an older exporter does
    for bad, what in [({**good, "energy_mj": -1}, "node.energy_mj"), ({**good, "gap_seconds": float("nan")},
                                                                       "node.gap_seconds"),
                      ({**good, "counter": {"method": "counter", "reading": "r", "chassis": "c", "bmc": "b",
                                            "raw_mj": "12"}}, "node.counter.raw_mj"),
                      ({**good, "counter": {"method": "counter", "reading": "r", "chassis": "c", "raw_mj": 12}},
                       "node.counter.bmc"),
                      ({k: v for k, v in good.items() if k != "hostname"}, "node.hostname"), ([1], "node")]:
        state.write_text(json.dumps({**base, "node": bad}))
        with pytest.raises(StateError, match=what):
            load_state_doc(state)


def test_the_node_part_round_trips_exactly(tmp_path):
    node = SavedNode(source="redfish", hostname="gpu-node-7.cluster.example", energy_mj=123_456_789_012, resets=2,
                     gaps=3, gap_seconds=0.1 + 0.2,
                     last_unixtime=1_712_345_678.123456,
                     counter=SavedNodeCounter(method="counter", reading="EnvironmentMetrics.EnergykWh",
                                              chassis="/redfish/v1/Chassis/1U", bmc="[fd00::7]:8443",
                                              raw_mj=9_007_199_254_740_993))
    path = tmp_path / "state.json"
    write_state(path, dump_state([], 1.7e9, node=node))
    assert load_state_doc(path).node == node
    write_state(path, dump_state([], 1.7e9))
    assert load_state_doc(path).node is None
