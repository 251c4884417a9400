"""wattprint_job_gpu_seconds_total: how long each job held each GPU, the pipeline's GPU time.

The pipeline once took a job's GPU time from the span of its energy series, which the exporter keeps
for --job-retention after the job left: a 10-minute job read 0.25 GPU-h. These tests pin the counter
that replaces it: the summed length of the intervals whose energy was split among the job, on a scripted
board whose reading times the test sets.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from wattprint.exporter.backends.base import BackendError, GpuInfo, GpuReading
from wattprint.exporter.collectors import WattprintCollector
from wattprint.exporter.jobs.base import Assignment, Job
from wattprint.exporter.poller import Poller
from wattprint.exporter.state import load_state

UUID = "GPU-a"


class Board:
    """One GPU whose reading time, raw counter and health the test sets before each poll."""

    name = "scripted"

    def __init__(self) -> None:
        self.t = 0.0
        self.raw_mj = 1_000_000
        self.ok = True
        self.backend_down = False

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self) -> list[GpuReading]:
        if self.backend_down:
            raise BackendError("endpoint down")
        info = GpuInfo(index="0", uuid=UUID)
        if not self.ok:
            return [GpuReading(info=info, timestamp=self.t, ok=False, failed_calls=("energy",))]
        return [GpuReading(info=info, timestamp=self.t, energy_mj=self.raw_mj, power_watts=300.0)]


class Jobs:
    name = "mapping-dir"

    def __init__(self) -> None:
        self.errors: collections.Counter[str] = collections.Counter()
        self.on: list[str] = []

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        return {"0": {Job(j, "mapping-dir"): frozenset() for j in self.on}}


class Rig:
    """A poller on the scripted board; its clock is the board's, so retention runs on the same time."""

    def __init__(self, state_file: str | None = None, retention: float = 300.0) -> None:
        self.board, self.jobs = Board(), Jobs()
        self.poller = Poller(self.board, self.jobs, job_retention=retention, clock=lambda: self.board.t,
                             wallclock=lambda: 1.7e9 + self.board.t, state_file=state_file, state_interval=0.0)

    def poll(self, at: float, jobs: Sequence[str] = (), mj: int = 0):
        self.board.t = at
        self.board.raw_mj += mj
        self.jobs.on = list(jobs)
        return self.poller.poll_once()

    def held_us(self) -> dict[str, int]:
        (g,) = self.poller.snapshot.gpus
        return {j.job.job_id: j.gpu_us for j in g.jobs}

    def energy_mj(self) -> dict[str, int]:
        (g,) = self.poller.snapshot.gpus
        return {j.job.job_id: j.energy_mj for j in g.jobs}

    def page(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """The /metrics families as the pipeline parses them: name -> label set -> value."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(WattprintCollector(lambda: self.poller.snapshot, "node-a", (("cluster", "jz"),), "scripted"))
        out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for fam in text_string_to_metric_families(generate_latest(registry).decode()):
            for s in fam.samples:
                out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
        return out

    def seconds_on_page(self) -> dict[str, float]:
        return {dict(k)["job_id"]: v for k, v in self.page().get("wattprint_job_gpu_seconds_total", {}).items()}


def test_held_time_is_the_sum_of_the_intervals_booked_to_the_job_and_the_first_poll_books_none():
    rig = Rig()
    rig.poll(10.0, ["j1"])                 # no previous reading: a baseline, for time as for energy
    assert rig.held_us() == {"j1": 0} and rig.energy_mj() == {"j1": 0}
    rig.poll(10.5, ["j1"], mj=150)
    rig.poll(11.75, ["j1"], mj=375)
    rig.poll(13.0, [], mj=200)             # j1 gone before this poll: the interval is idle
    assert rig.held_us() == {"j1": 1_750_000} and rig.energy_mj() == {"j1": 525}
    assert rig.seconds_on_page() == {"j1": 1.75}


def test_a_job_that_joins_gets_the_whole_interval_that_ends_when_it_is_first_seen():
    rig = Rig()
    rig.poll(0.0)
    rig.poll(1.0, mj=100)                  # idle interval
    rig.poll(2.0, ["j1"], mj=100)          # the interval's energy goes to j1, and so does its length
    assert rig.held_us() == {"j1": 1_000_000} and rig.energy_mj() == {"j1": 100}


def test_shared_gpu_each_job_holds_the_whole_interval():
    rig = Rig()
    rig.poll(0.0, ["a", "b"])
    rig.poll(2.0, ["a", "b"], mj=1_000)
    rig.poll(3.0, ["a", "b", "c"], mj=900)
    rig.poll(4.5, ["c"], mj=600)
    assert rig.held_us() == {"a": 3_000_000, "b": 3_000_000, "c": 2_500_000}
    # energy is split, time is not: the three together hold more seconds than the GPU was up
    assert rig.energy_mj() == {"a": 800, "b": 800, "c": 900}
    page = rig.page()
    assert sum(page["wattprint_job_energy_joules_total"].values()) == 2.5
    assert sorted(rig.seconds_on_page().values()) == [2.5, 3.0, 3.0]


def test_same_labels_as_the_job_energy_and_only_while_the_gpu_is_up():
    rig = Rig()
    rig.poll(0.0, ["j1"])
    rig.poll(1.0, ["j1"], mj=100)
    page = rig.page()
    energy, seconds = page["wattprint_job_energy_joules_total"], page["wattprint_job_gpu_seconds_total"]
    assert set(seconds) == set(energy) and len(seconds) == 1
    labels = dict(next(iter(seconds)))
    assert labels == {"gpu": "0", "uuid": UUID, "model": "", "hostname": "node-a", "cluster": "jz", "job_id": "j1"}
    rig.board.ok = False
    rig.poll(2.0, ["j1"])
    # an unreadable GPU exports neither: the pipeline sees one gap, not energy without time or the reverse
    page = rig.page()
    assert "wattprint_job_energy_joules_total" not in page and "wattprint_job_gpu_seconds_total" not in page


def test_outage_over_several_polls_books_the_whole_span_with_its_energy_at_the_next_good_poll():
    rig = Rig()
    rig.poll(0.0, ["j1"])
    rig.poll(1.0, ["j1"], mj=100)
    rig.board.ok = False
    for at in (2.0, 3.0, 4.0):             # the board is lost; its counter keeps running
        rig.poll(at, ["j1"], mj=100)
    assert rig.held_us() == {"j1": 1_000_000}
    rig.board.backend_down = True          # then the whole backend fails for a poll
    rig.poll(5.0, mj=100)
    rig.board.backend_down, rig.board.ok = False, True
    rig.poll(6.0, ["j1"], mj=100)
    assert rig.energy_mj() == {"j1": 600} and rig.held_us() == {"j1": 6_000_000}
    assert rig.seconds_on_page() == {"j1": 6.0}


def test_counter_reset_drops_the_interval_energy_but_not_the_time_the_job_held_the_gpu():
    rig = Rig()
    rig.poll(0.0, ["j1"])
    rig.poll(1.0, ["j1"], mj=100)
    rig.board.raw_mj = 5                   # driver reload: the counter starts again
    rig.poll(2.0, ["j1"])
    rig.poll(3.0, ["j1"], mj=100)
    assert rig.energy_mj() == {"j1": 200} and rig.held_us() == {"j1": 3_000_000}


def test_ten_minute_job_reads_ten_minutes_through_its_whole_retention_tail():
    rig = Rig(retention=300.0)
    rig.poll(0.0)
    for t in range(1, 601):               # on the GPU at polls 1..600 of a 1 s poll
        rig.poll(float(t), ["j1"], mj=300_000)
    held = rig.seconds_on_page()
    assert held == {"j1": 600.0}
    for t in range(601, 901):             # gone; its series stay for --job-retention
        rig.poll(float(t), mj=70_000)
        assert rig.seconds_on_page() == held
    assert set(rig.page()["wattprint_job_energy_joules_total"]) == set(rig.page()["wattprint_job_gpu_seconds_total"])
    rig.poll(901.5, mj=70_000)
    assert rig.seconds_on_page() == {} and "wattprint_job_energy_joules_total" not in rig.page()


def test_one_second_job_reads_one_second():
    rig = Rig()
    rig.poll(0.0)
    rig.poll(1.0, ["short"], mj=690_000)
    for t in (2.0, 3.0, 200.0):
        rig.poll(t, mj=70_000)
    assert rig.seconds_on_page() == {"short": 1.0}


def test_whole_microseconds_do_not_drift_over_many_jittered_intervals():
    rig = Rig()
    t = 1_000.0
    rig.poll(t, ["j1"])
    for _ in range(20_000):                # real intervals are not whole microseconds: rounding each would
        t += 0.2500004                     # lose 0.4 us a poll, 8 ms here
        rig.poll(t, ["j1"], mj=1)
    assert rig.held_us() == {"j1": round(t * 1e6) - 1_000_000_000}
    assert abs(rig.held_us()["j1"] - 5_000_008_000) <= 1


def test_restart_with_a_state_file_continues_from_the_saved_held_time(tmp_path):
    state = tmp_path / "state.json"
    rig = Rig(str(state))
    rig.poll(0.0, ["j1", "j2"])
    rig.poll(1.0, ["j1", "j2"], mj=200)
    rig.poll(3.0, ["j1"], mj=200)
    assert rig.poller.save_state()        # as on SIGTERM
    saved = {j["job_id"]: j["gpu_us"] for j in json.loads(state.read_text())["gpus"][UUID]["jobs"]}
    assert saved == {"j1": 3_000_000, "j2": 1_000_000}
    before = rig.seconds_on_page()

    rig2 = Rig(str(state))
    rig2.board.raw_mj = rig.board.raw_mj + 500   # the downtime's energy, counted by the hardware
    rig2.poll(50.0, ["j1"])
    # Restored and exported at once, never below what the old process exported. The downtime's energy goes
    # to j1 (the jobs at the first poll, as documented) but no held time: reading times are per process.
    assert rig2.seconds_on_page() == before == {"j1": 3.0, "j2": 1.0}
    assert rig2.energy_mj()["j1"] == rig.energy_mj()["j1"] + 500
    rig2.poll(51.0, ["j1"], mj=100)
    assert rig2.held_us() == {"j1": 4_000_000, "j2": 1_000_000}


def test_state_file_from_before_the_field_loads_and_held_time_starts_from_zero(tmp_path):
    state = tmp_path / "state.json"
    state.write_text(json.dumps({
        "format": "wattprint-exporter-state", "version": 1, "saved_unixtime": 1.7e9,
        "gpus": {UUID: {"index": "0", "raw_counter_mj": 1_000_000, "energy_mj": 9_000, "idle_mj": 1_000, "resets": 0,
                        "jobs": [{"job_id": "old", "source": "mapping-dir", "pod_uid": "", "container": "",
                                  "energy_mj": 8_000}]}},
    }))
    loaded = load_state(state)[UUID]
    assert [(s.job.job_id, s.energy_mj, s.gpu_us) for s in loaded.jobs] == [("old", 8_000, 0)]
    rig = Rig(str(state))
    rig.poll(0.0, ["old"])
    assert rig.energy_mj() == {"old": 8_000} and rig.seconds_on_page() == {"old": 0.0}
    rig.poll(2.0, ["old"], mj=100)
    assert rig.energy_mj() == {"old": 8_100} and rig.held_us() == {"old": 2_000_000}
    # written back with the field: the next restart continues from it
    (job,) = json.loads(state.read_text())["gpus"][UUID]["jobs"]
    assert (job["energy_mj"], job["gpu_us"]) == (8_100, 2_000_000)
