"""The node's energy counter across an exporter restart (--state-file), against a real Redfish server (sushy-static).

In process: one NodePowerPoller saves (through the state file's own dump and load), a second one restores, with the
BMC's readings changed in between as they would while the exporter is down. The BMC's counter is resumed only from
the same BMC, chassis and reading; anything else continues the total and counts the downtime as a gap.
tests/test_node_redfish_process.py runs the same restart with the exporter process itself.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tests.redfishkit import Bmc, sushy_static
from wattprint.exporter.node import source as S
from wattprint.exporter.node.accounting import NodePowerPoller
from wattprint.exporter.node.redfish import RedfishSource
from wattprint.exporter.node.redfish_http import RedfishHttp, bmc_address
from wattprint.exporter.state import SavedNode, SavedNodeCounter, dump_state, load_state_doc, write_state

MODERN = "/redfish/v1/Chassis/Modern"


@pytest.fixture
def bmc(tmp_path: Path):
    with sushy_static(tmp_path) as b:
        yield b


class Clocks:
    """The poll's monotonic clock and the wall clock, driven by the test (a restart keeps the wall clock only)."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1.7e9

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def poller(bmc: Bmc, clocks: Clocks, chassis: str = "Modern", hostname: str = "gpu-node-7") -> NodePowerPoller:
    source = RedfishSource(RedfishHttp(bmc.url, timeout=5.0), chassis=chassis, clock=lambda: clocks.mono)
    source.open()
    return NodePowerPoller(source, interval=10.0, max_gap=60.0, clock=lambda: clocks.mono,
                           wallclock=lambda: clocks.wall, hostname=hostname)


def through_the_file(saved: SavedNode | None, tmp_path: Path) -> SavedNode:
    """The node part as the next process reads it: written and loaded by the state file's own code."""
    path = tmp_path / "state.json"
    write_state(path, dump_state([], 1.7e9, node=saved))
    node = load_state_doc(path).node
    assert node is not None and node == saved
    return node


def energy_j(p: NodePowerPoller) -> float | None:
    return p.snapshot.energy_mj / 1000.0 if p.snapshot.up else None


def first_process(bmc: Bmc, clocks: Clocks, tmp_path: Path) -> SavedNode:
    """Reads the BMC's counter at 1,000,000 J then 1,000,250.125 J: 250.125 J exported, then stops."""
    p = poller(bmc, clocks)
    bmc.set_environment(EnergyJoules=1_000_000.0)
    p.poll_once()
    clocks.advance(10)
    bmc.set_environment(EnergyJoules=1_000_250.125)
    p.poll_once()
    assert energy_j(p) == 250.125
    return through_the_file(p.saved(), tmp_path)


def test_the_bmc_s_count_over_the_downtime_is_booked_exactly(bmc: Bmc, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wattprint")
    clocks = Clocks()
    saved = first_process(bmc, clocks, tmp_path)
    assert saved.counter == SavedNodeCounter(method="counter", reading="EnvironmentMetrics.EnergyJoules",
                                             chassis=MODERN, bmc=bmc.url.split("//", 1)[1], raw_mj=1_000_250_125)
    assert (saved.source, saved.hostname) == ("redfish", "gpu-node-7")
    assert (saved.energy_mj, saved.resets, saved.gaps, saved.last_unixtime) == (250_125, 0, 0, 1.7e9 + 10)
    # down for a day: the BMC counts 6,750.375 J meanwhile
    clocks.advance(86_400)
    clocks.mono = 5.0   # a new process: its monotonic clock has nothing to do with the last one's
    bmc.set_environment(EnergyJoules=1_007_000.5)
    p = poller(bmc, clocks)
    p.restore(saved)
    assert p.saved() == saved   # nothing read yet: the file's values are written back unchanged
    assert energy_j(p) is None and p.snapshot.polls == 0
    p.poll_once()
    assert energy_j(p) == 7000.5   # 250.125 saved + 1,007,000.5 - 1,000,250.125, exactly
    assert (p.snapshot.resets, p.snapshot.gaps, p.snapshot.gap_seconds) == (0, 0, 0.0)
    clocks.advance(10)
    bmc.set_environment(EnergyJoules=1_007_010.5)
    p.poll_once()
    assert energy_j(p) == 7010.5
    assert "node energy counter resumed" in caplog.text


@pytest.mark.parametrize(("change", "why"), [
    ({"bmc": "bmc.other-node.example"}, "saved for bmc 'bmc.other-node.example'"),
    ({"chassis": "/redfish/v1/Chassis/Legacy"}, "saved for chassis '/redfish/v1/Chassis/Legacy'"),
    ({"reading": "EnvironmentMetrics.EnergykWh"}, "saved for reading 'EnvironmentMetrics.EnergykWh'"),
    (None, "no saved counter"),
])
def test_a_baseline_that_is_not_this_counter_s_books_nothing(bmc: Bmc, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture,
                                                             change: dict[str, str] | None, why: str) -> None:
    """A file moved to another node, pointed at another BMC or chassis, or a reading changed by a firmware update:
    the foreign counter's delta would be anything. The total continues, the downtime is a gap."""
    caplog.set_level(logging.INFO, logger="wattprint")
    clocks = Clocks()
    saved = first_process(bmc, clocks, tmp_path)
    assert saved.counter is not None
    saved = replace(saved, counter=None if change is None else replace(saved.counter, **change))
    clocks.advance(120)
    bmc.set_environment(EnergyJoules=1_009_000.0)
    p = poller(bmc, clocks)
    p.restore(through_the_file(saved, tmp_path))
    p.poll_once()
    assert energy_j(p) == 250.125   # nothing booked
    assert (p.snapshot.gaps, p.snapshot.gap_seconds, p.snapshot.resets) == (1, 120.0, 0)
    infos = [str(r.fields["why"]) for r in caplog.records   # type: ignore[attr-defined]
             if "downtime's energy is not booked" in r.getMessage()]
    assert len(infos) == 1 and why in infos[0]
    clocks.advance(10)
    bmc.set_environment(EnergyJoules=1_009_040.0)
    p.poll_once()
    assert energy_j(p) == 290.125   # this BMC's counter is the baseline from here on
    assert p.saved() == SavedNode(
        source="redfish", hostname="gpu-node-7", energy_mj=290_125, gaps=1, gap_seconds=120.0,
        last_unixtime=clocks.wall,
        counter=SavedNodeCounter(method="counter", reading="EnvironmentMetrics.EnergyJoules", chassis=MODERN,
                                 bmc=bmc.url.split("//", 1)[1], raw_mj=1_009_040_000))


def test_a_counter_below_the_saved_one_was_reset_while_down(bmc: Bmc, tmp_path: Path) -> None:
    clocks = Clocks()
    saved = first_process(bmc, clocks, tmp_path)
    clocks.advance(600)
    bmc.set_environment(EnergyJoules=80.0)   # ResetMetrics, or the BMC rebooted
    p = poller(bmc, clocks)
    p.restore(saved)
    p.poll_once()
    assert energy_j(p) == 250.125 and p.snapshot.resets == 1 and p.snapshot.gaps == 0
    clocks.advance(10)
    bmc.set_environment(EnergyJoules=100.0)
    p.poll_once()
    assert energy_j(p) == 270.125


def test_integrated_power_continues_its_total_and_the_downtime_is_a_gap(bmc: Bmc, tmp_path: Path) -> None:
    clocks = Clocks()
    p = poller(bmc, clocks, chassis="Legacy")
    bmc.set_power(300)
    p.poll_once()
    clocks.advance(10)
    p.poll_once()
    saved = through_the_file(p.saved(), tmp_path)
    assert (saved.energy_mj, saved.counter, saved.last_unixtime) == (3_000_000, None, 1.7e9 + 10)
    clocks.advance(45)   # a restart shorter than --node-power-max-gap is a gap all the same: nothing to bridge
    q = poller(bmc, clocks, chassis="Legacy")
    q.restore(saved)
    q.poll_once()
    assert energy_j(q) == 3000.0 and (q.snapshot.gaps, q.snapshot.gap_seconds) == (1, 45.0)
    clocks.advance(10)
    q.poll_once()
    assert energy_j(q) == 6000.0


@pytest.mark.parametrize("series", [{"hostname": "gpu-node-8"}, {"source": "ipmi"}])
def test_another_series_totals_are_not_taken_over(bmc: Bmc, tmp_path: Path, series: dict[str, str]) -> None:
    """A file moved to another node (or --hostname changed): that node's series is new to Prometheus and must start
    at 0, since the pipeline counts a new series' first value as energy used since it started."""
    clocks = Clocks()
    saved = replace(first_process(bmc, clocks, tmp_path), **series)
    p = poller(bmc, clocks)
    p.restore(saved)
    assert p.saved() is None and p.snapshot.resets == 0
    clocks.advance(10)
    p.poll_once()
    assert energy_j(p) == 0.0 and p.snapshot.gaps == 0


def test_the_bmc_address_leaves_out_the_scheme_and_its_default_port() -> None:
    assert bmc_address("https://BMC.node1.example/") == "bmc.node1.example"
    assert bmc_address("http://bmc.node1.example:80") == "bmc.node1.example"
    assert bmc_address("https://bmc.node1.example:443/redfish/v1") == "bmc.node1.example"
    assert bmc_address("https://bmc.node1.example:8443/") == "bmc.node1.example:8443"
    assert bmc_address("https://[fd00::7]:8443/") == "[fd00::7]:8443"
    assert bmc_address("not a url") == ""


class _Stuck:
    """A BMC request that does not return until released (as a busy BMC's, up to --node-power-timeout)."""

    name = "redfish"
    bmc = "bmc.node1.example"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reading = threading.Event()
        self.n = 0

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self) -> S.NodeReading:
        self.n += 1
        if self.n > 1:
            self.reading.set()
            self.release.wait(10)
        return S.NodeReading(timestamp=float(self.n), method=S.METHOD_COUNTER, energy_joules=100.0 * self.n,
                             power_watts=None, reading="EnvironmentMetrics.EnergyJoules", chassis=MODERN)


def test_saving_never_waits_for_a_bmc_request_in_flight() -> None:
    """The GPU poller writes the file: it must not wait for the node poller's request to the BMC."""
    src = _Stuck()
    p = NodePowerPoller(src, wallclock=lambda: 1.7e9)
    p.poll_once()
    t = threading.Thread(target=p.poll_once)
    t.start()
    try:
        assert src.reading.wait(5)
        start = time.perf_counter()
        saved = p.saved()
        took = time.perf_counter() - start
    finally:
        src.release.set()
        t.join(5)
    assert took < 0.5
    assert saved is not None and saved.counter is not None and saved.counter.raw_mj == 100_000
    assert p.saved() is not None and p.saved().counter.raw_mj == 200_000   # type: ignore[union-attr]
