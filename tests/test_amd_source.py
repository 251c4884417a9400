"""AMD's ROCm device-metrics-exporter as a pipeline source (wattprint/pipeline/amd.py), end to end: one exporter page
of an MI300X node (tests/fixtures/amd/, see its SOURCE.md) turned into a three-hour history, backfilled into a real
Prometheus beside a dcgm-exporter node, then `wattprint ingest` and `report` as a user runs them, into a real DuckDB
file. Every truth is computed here from the page's accumulators and the history's watts and seconds (uJ -> J), never
read back from wattprint.

The history: GPUs 0-3 run job 4242 at 650 W from 00:30 to 02:30 (labelled job_id on their lines meanwhile), GPU 2's
accumulator restarts from 0 at 02:45:30 (a GPU reset), GPU 4's energy reads 0 from 01:00 to 01:10 (failed reads
written as 0), GPU 5's energy and package power read 0 (unsupported) while its power usage reads, GPUs 6 and 7 are in
CPX mode with 8 partitions each. A second node, mi300x-02, is the same page as the exporter writes
it with its default labels (no card_series, no gpu_uuid), and its GPU 5 reads 0 for power too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cluster_sim import MODEL as H100
from tests.cluster_sim import Node, Run, dcgm_samples, iso
from tests.conftest import FIXTURES, REPO
from tests.promstack import start_prometheus_with_history
from wattprint.pipeline import amd, config
from wattprint.pipeline.errors import InputError
from wattprint.pipeline.promapi import selector
from wattprint.pipeline.settings import Settings

PAGE = FIXTURES / "amd" / "mi300x-8gpu-cpx.metrics.txt"
MI300X = "AMD Instinct MI300X OAM"
H = 3600
T0 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp())
START, END = T0, T0 + 3 * H                 # the ingest window; the reports' is [START, END)
FIRST = START - 900                         # the first scrape: the page as it is in the fixture
SCRAPE_S, STEP_S = 15, 60
JOB = ("4242", T0 + 1800, T0 + 9000, 650)   # job, start, end, watts on GPUs 0-3
RESET = (2, T0 + 9930)                      # GPU 2's accumulator restarts from 0 then
FAILED_READS = (4, T0 + 3600, T0 + 4200)    # GPU 4's energy reads 0 over (start, end]: reads that failed, written 0
STEPS = list(range(START, END + 1, STEP_S))


# -- the page and its history ------------------------------------------------------------------------------------

def page() -> list[tuple[str, dict[str, str], float]]:
    """The fixture's lines: (metric, labels, value)."""
    text = PAGE.read_text(encoding="utf-8")
    return [(s.name, dict(s.labels), float(s.value)) for f in text_string_to_metric_families(text) for s in f.samples]


class Mi300xNode:
    """The fixture's node over time: one socket per physical GPU (by serial number), its page values at FIRST."""

    def __init__(self, host: str, *, default_labels: bool = False, power_unread: tuple[int, ...] = ()) -> None:
        self.host, self.default_labels, self.power_unread = host, default_labels, power_unread
        lines = page()
        serials = sorted({lab["serial_number"] for _, lab, _ in lines if "serial_number" in lab})
        self.socket = {s: i for i, s in enumerate(serials)}
        self.lines = lines
        self.e0 = {self.socket[lab["serial_number"]]: int(v) for name, lab, v in lines
                   if name == "gpu_energy_consumed" and lab["gpu_partition_id"] == "0"}
        self.idle_w = {self.socket[lab["serial_number"]]: int(v) for name, lab, v in lines
                       if name == "gpu_power_usage" and lab["gpu_partition_id"] == "0"}

    def watts(self, s: int, t: float) -> int:
        """Power during (t - dt, t]: the job's on GPUs 0-3 over (start, end], else the page's."""
        return JOB[3] if s < 4 and JOB[1] < t <= JOB[2] else self.idle_w[s]

    def joules(self, s: int, t0: int, t1: int) -> int:
        """Energy of socket s over (t0, t1], exactly (whole watts x whole seconds)."""
        busy = max(0, min(t1, JOB[2]) - max(t0, JOB[1])) if s < 4 else 0
        return self.idle_w[s] * (t1 - t0) + (JOB[3] - self.idle_w[s]) * busy

    def acc_uj(self, s: int, t: int) -> int:
        """The accumulator in uJ: the page's value plus what the GPU drew since, or since its reset."""
        if s == RESET[0] and t >= RESET[1]:
            return self.joules(s, RESET[1], t) * 1_000_000
        return self.e0[s] + self.joules(s, FIRST, t) * 1_000_000

    def samples(self) -> list[tuple[str, dict[str, str], float, float]]:
        out = []
        for t in range(FIRST, END + 1, SCRAPE_S):
            for name, lab, v in self.lines:
                lab = {**lab, "hostname": self.host}
                if self.default_labels:          # the exporter's defaults: neither label is enabled
                    lab.pop("card_series", None)
                    lab.pop("gpu_uuid", None)
                    if "serial_number" in lab:
                        lab["serial_number"] = str(int(lab["serial_number"]) + 100)
                if "serial_number" not in lab:   # gpu_nodes_total
                    out.append((name, lab, t, v))
                    continue
                s = self._socket_of(lab)
                if s < 4 and JOB[1] < t <= JOB[2]:
                    lab.update(job_id=JOB[0], job_user="alice", job_partition="mi300x")
                reads = v != 0           # the page's 0: not supported on that line, all along
                if name == "gpu_energy_consumed":
                    failed = s == FAILED_READS[0] and FAILED_READS[1] < t <= FAILED_READS[2]
                    value = float(self.acc_uj(s, t)) if reads and not failed else 0.0
                elif name in ("gpu_package_power", "gpu_power_usage"):
                    value = float(self.watts(s, t)) if reads and s not in self.power_unread else 0.0
                else:
                    value = v
                out.append((name, lab, float(t), value))
        return out

    def _socket_of(self, lab: dict[str, str]) -> int:
        serial = lab["serial_number"]
        if self.default_labels:
            serial = str(int(serial) - 100)
        return self.socket[serial]

    # -- truths --

    def counted_j(self, s: int) -> float:
        """Energy of socket s over the ingest window by its counter at the ingest steps (a drop: a restart from 0),
        the steps its reads failed left out (the counter counted across them)."""
        steps = [t for t in STEPS if not (s == FAILED_READS[0] and FAILED_READS[1] < t <= FAILED_READS[2])]
        uj = 0
        for a, b in zip(steps, steps[1:], strict=False):
            v0, v1 = self.acc_uj(s, a), self.acc_uj(s, b)
            uj += v1 - v0 if v1 >= v0 else v1
        return uj / 1e6


NODE1 = Mi300xNode("mi300x-01")
NODE2 = Mi300xNode("mi300x-02", default_labels=True, power_unread=(5,))
GPU_OF = {0: "0", 1: "1", 2: "2", 3: "3", 4: "4", 5: "5", 6: "6", 7: "14"}   # socket -> gpu_id of its primary line
NV = Node("h100-01", gpus=2, runs=[Run("7001", 0, T0 + 600, T0 + 7800, 500.0)], uuid_prefix="h100")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("amd")
    nv = dcgm_samples(NV, FIRST, END, {"instance": "h100-01:9400", "job": "dcgm-exporter"},
                      hpc_job=lambda g, t: next(iter(NV.jobs_at(g, t)), ""))
    store = start_prometheus_with_history(tmp / "prometheus", NODE1.samples() + NODE2.samples() + nv)
    yield store.base_url
    store.stop()


# -- running wattprint as a user does ---------------------------------------------------------------------------

def wattprint(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, f"wattprint {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done


CONFIG = """\
clusters:
  amd:
    zone: FR
    pue: 1.0
    nodes: ["mi300x-*"]
  nv:
    zone: FR
    pue: 1.0
    nodes: ["h100-*"]
default_cluster: amd
ingest:
  metrics:
    dcgm:
      enabled: true
    amd:
      enabled: true
"""


def setup(tmp: Path, url: str, cfg: str = CONFIG) -> tuple[Path, list[str]]:
    db = tmp / "amd.duckdb"
    path = tmp / "wattprint.yaml"
    path.write_text(cfg, encoding="utf-8")
    common = ["--db", str(db), "--config", str(path)]
    wattprint("ingest", "--prometheus", url, "--start", iso(START), "--end", iso(END), *common)
    rows = ["timestamp,zone,intensity_g_per_kwh"] + [f"{iso(START + h * H)},FR,100" for h in range(4)]
    (tmp / "intensity.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    wattprint("intensity", "import", "--format", "csv", str(tmp / "intensity.csv"), *common)
    return db, common


def q(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def report(common: list[str], fmt: str = "json") -> Any:
    out = wattprint("report", "--format", fmt, "--start", iso(START), "--end", iso(END), *common).stdout
    return json.loads(out) if fmt == "json" else out


@pytest.fixture(scope="module")
def built(prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    return setup(tmp_path_factory.mktemp("built"), prometheus)


def gpu_j(db: Path, host: str) -> dict[str, float]:
    return dict(q(db, "SELECT gpu, sum(energy_j) FROM fct_job_gpu_hour WHERE hostname = ? GROUP BY 1", [host]))


# -- the tests --------------------------------------------------------------------------------------------------

def test_energy_is_the_accumulators_deltas_one_line_per_physical_gpu(built: tuple[Path, list[str]]) -> None:
    db, _ = built
    for node in (NODE1, NODE2):
        got = gpu_j(db, node.host)
        assert set(got) == {GPU_OF[s] for s in range(8) if not (node is NODE2 and s == 5)}, got
        for s in (0, 1, 2, 3, 4, 6, 7):
            want = node.counted_j(s)
            assert got[GPU_OF[s]] == pytest.approx(want, abs=1e-3), (node.host, s)
        if node is NODE1:                  # energy unread: priced from its power gauge, 301 W all along
            assert got["5"] == pytest.approx(301.0 * (END - START), abs=1e-6)
    # GPU 2's reset is a restart from 0, not a loss of the accumulator's days of energy nor a jump
    assert q(db, "SELECT count(*) FROM energy_intervals i JOIN streams s USING (stream_id) WHERE s.source = 'amd'"
                 " AND s.hostname = 'mi300x-01' AND s.gpu = '2' AND i.quality = 'counter_reset'")[0][0] == 1
    # the CPX GPUs' other partitions are stored, never priced
    assert q(db, "SELECT count(DISTINCT gpu) FROM series WHERE source = 'amd' AND kind = 'partition_energy'"
                 " AND hostname = 'mi300x-01'")[0][0] == 14
    priced = {g for (g,) in q(db, "SELECT DISTINCT gpu FROM fct_job_gpu_hour WHERE hostname = 'mi300x-01'")}
    assert priced == set(GPU_OF.values())
    node_j = q(db, "SELECT sum(energy_j) FROM fct_job_gpu_hour WHERE hostname = 'mi300x-01'")[0][0]
    assert node_j == pytest.approx(sum(NODE1.counted_j(s) for s in range(8) if s != 5) + 301.0 * (END - START),
                                   abs=1e-2)
    off = q(db, "SELECT hour_ts, hostname, gpu, counter_j, priced_j FROM fct_gpu_hour WHERE cause IS NOT NULL")
    assert off == [], off


def test_job_labels_of_whole_gpus_only(built: tuple[Path, list[str]]) -> None:
    db, _ = built
    jobs = dict(q(db, "SELECT job_id, sum(energy_j) FROM fct_job_gpu_hour WHERE job_id IS NOT NULL GROUP BY 1"))
    # GPUs 0-3 on both nodes: job 4242 at 650 W over (00:30, 02:30]; the CPX GPU's line names job 4250 on partition
    # 0 only, and the GPU's energy is not that job's: unallocated (no ledger here)
    assert jobs["4242"] == pytest.approx(2 * 4 * 650.0 * (JOB[2] - JOB[1]), abs=1e-3)
    assert "4250" not in jobs and "4251" not in jobs
    cpx = q(db, "SELECT DISTINCT job_id FROM fct_job_gpu_hour WHERE hostname = 'mi300x-01' AND gpu = '6'")
    assert cpx == [(None,)]


def test_hardware_type_names_the_amd_model(built: tuple[Path, list[str]]) -> None:
    db, common = built
    models = dict(q(db, "SELECT hostname, string_agg(DISTINCT model, '/') FROM series"
                        " WHERE source = 'amd' AND kind = 'gpu_energy' GROUP BY 1"))
    assert models == {"mi300x-01": MI300X, "mi300x-02": MI300X}      # card_series; card_model's part number named
    raw = {json.loads(r[0]).get("card_model") for r in q(db, "SELECT labels FROM series WHERE hostname = 'mi300x-02'"
                                                                 " AND kind = 'gpu_energy'")}
    assert raw == {"102-G30211-0C"}
    md = report(common, "md")
    hardware = [line for line in md.splitlines() if line.startswith("- Hardware Type:")]
    assert hardware and all(MI300X in line for line in hardware), hardware
    assert any(H100 in line for line in hardware), hardware
    r = report(common)
    assert {p["hardware_text"] for p in r["phases"]} and all(MI300X in p["hardware_text"] for p in r["phases"])


def test_partitions_and_unread_counters_are_counted_and_shown(built: tuple[Path, list[str]]) -> None:
    db, common = built
    r = report(common)
    a = r["data_quality"]["amd_exporter"]
    assert a == {"partitions": 28, "partition_nodes": 2, "unread_energy_gpus": 4, "unread_energy_gpu_hours": 8,
                 "unread_power_gpu_hours": 3}, a
    warnings = r["data_quality"]["warnings"]
    unread = [w for w in warnings if "AMD GPUs read 0" in w]
    assert len(unread) == 1 and "of 4 AMD GPUs" in unread[0] and "in 8 GPU-hours" in unread[0], warnings
    assert "in 3 of those GPU-hours every power gauge read 0 too: energy is missing" in unread[0], unread
    assert not any("two sources" in w for w in warnings), warnings     # a GPU's power and energy are one source
    # the GPU whose counter reads 0 is priced from its power gauge (no job on it: the scope's shares do not see it)
    assert q(db, "SELECT DISTINCT energy_quality FROM fct_job_gpu_hour WHERE hostname = 'mi300x-01' AND gpu = '5'"
             ) == [("power_integrated",)]
    md = report(common, "md")
    assert "AMD GPU partitions: 28 secondary partitions on 2 nodes" in md
    html = report(common, "html")
    assert "AMD GPU partitions" in html


def test_dcgm_and_amd_on_different_hosts(built: tuple[Path, list[str]], prometheus: str, tmp_path: Path) -> None:
    db, _ = built
    got = gpu_j(db, "h100-01")
    for g in range(2):        # dcgm's counter in whole mJ at each step
        assert got[str(g)] == pytest.approx(NV.joules(g, START, END), abs=0.01)
    sources = dict(q(db, "SELECT hostname, string_agg(DISTINCT sources, '/') FROM fct_gpu_hour GROUP BY 1"))
    assert sources == {"h100-01": "dcgm", "mi300x-01": "amd/power", "mi300x-02": "amd"}, sources
    clusters = dict(q(db, "SELECT hostname, string_agg(DISTINCT cluster, '/') FROM fct_job_gpu_hour GROUP BY 1"))
    assert clusters == {"h100-01": "nv", "mi300x-01": "amd", "mi300x-02": "amd"}
    # the amd source can be switched off, as dcgm's
    off = CONFIG.replace("    amd:\n      enabled: true\n", "    amd:\n      enabled: false\n")
    db2, common2 = setup(tmp_path, prometheus, off)
    assert q(db2, "SELECT count(*) FROM series WHERE source = 'amd'")[0][0] == 0
    assert "amd_exporter" not in report(common2)["data_quality"]


def test_reingesting_the_window_changes_nothing(built: tuple[Path, list[str]], prometheus: str) -> None:
    db, common = built
    before = q(db, "SELECT count(*), sum(value) FROM samples")
    wattprint("ingest", "--prometheus", prometheus, "--start", iso(START), "--end", iso(END), *common)
    assert q(db, "SELECT count(*), sum(value) FROM samples") == before


# -- the rules, piece by piece ------------------------------------------------------------------------------------

def test_model_names_part_numbers_of_known_families_only() -> None:
    assert amd.model_name("102-G30211-0C") == MI300X == amd.model_name(" 102-g30211-00 ")
    assert amd.model_name("102-D65209-0C") == "102-D65209-0C"          # not cited: kept as the exporter wrote it
    assert amd.model_name(MI300X) == MI300X


def test_queries_and_their_selectors() -> None:
    qs = amd.queries(config.AmdMetrics(), ("cluster",))
    assert [(x.kind, x.metric) for x in qs] == [("gpu_energy", "gpu_energy_consumed"),
                                                ("partition_energy", "gpu_energy_consumed"),
                                                ("gpu_power", "gpu_package_power"), ("gpu_power", "gpu_power_usage")]
    assert qs[0].scale == 1e-6 and qs[2].scale == 1.0 and qs[2].name_in_identity and not qs[0].name_in_identity
    assert selector(qs[0].metric, {"site": "a"}, qs[0].matchers) == \
        '{__name__="gpu_energy_consumed",site="a",gpu_partition_id=~"0|"}'
    assert selector(qs[1].metric, None, qs[1].matchers) == '{__name__="gpu_energy_consumed",gpu_partition_id!~"0|"}'
    with pytest.raises(InputError, match="not a PromQL matcher"):
        selector("x", None, (("a", "==", "b"),))
    assert amd.queries(config.AmdMetrics(enabled=False), ("cluster",)) == []
    nofb = amd.queries(config.AmdMetrics(power_fallback=None), ("cluster",))
    assert [x.metric for x in nofb if x.kind == "gpu_power"] == ["gpu_package_power"]
    # queried beside every other source, after those that came before it and before the node source that came
    # after it (each source's series ids are those they were)
    assert [x.source for x in Settings(config.Config(), None).queries()][-6:] == ["amd"] * 4 + ["node"] * 2


def test_config(tmp_path: Path) -> None:
    m = config.load(None).ingest.metrics.amd
    assert m.enabled and (m.energy, m.energy_unit, m.joules_per_energy_unit) == ("gpu_energy_consumed", "uJ", 1e-6)
    assert (m.power, m.power_fallback, m.watts_per_power_unit) == ("gpu_package_power", "gpu_power_usage", 1.0)
    assert m.labels.uuid == ("gpu_uuid", "serial_number") and m.labels.model == ("card_series", "card_model")
    assert m.labels.partition == ("gpu_partition_id",) and m.labels.job_id == ("job_id", "pod")
    path = tmp_path / "w.yaml"
    path.write_text("ingest:\n  metrics:\n    amd:\n      power_fallback: null\n      energy_unit: mJ\n"
                    "      labels: {partition: xcp_id, hostname: [instance]}\n", encoding="utf-8")
    c = config.load(path).ingest.metrics.amd
    assert c.power_fallback is None and c.joules_per_energy_unit == 1e-3 and c.labels.partition == ("xcp_id",)
    assert c.labels.hostname == ("instance",) and c.labels.gpu == ("gpu_id",)       # the others keep defaults
    for text, where in (
            ("    amd:\n      energy: null\n", "ingest.metrics.amd.energy: expected a metric name"),
            ("    dcgm:\n      labels: {partition: x}\n", "unknown key ingest.metrics.dcgm.labels.partition"),
            ("    amd:\n      energy_unit: nJ\n", "ingest.metrics.amd.energy_unit: unknown unit")):
        path.write_text("ingest:\n  metrics:\n" + text, encoding="utf-8")
        with pytest.raises(InputError) as exc:
            config.load(path)
        assert where in str(exc.value), str(exc.value)


def test_two_source_advice_names_the_amd_source_where_it_is_read() -> None:
    from wattprint.pipeline.report import gpu_checks
    from wattprint.pipeline.report.types import Gaps, GpuCounters

    c = GpuCounters(gpu_hours=1, counter_kwh=1.0, priced_kwh=1.0, residual_kwh=0.0, residual_jobs=0,
                    residual_to_jobs_kwh=0.0, excess_kwh=0.0, stepped_back_gpus=0, unpriced_kwh=0.5, two_source_gpus=1,
                    difference_gpu_hours=0, difference_kwh=0.0, differences=())
    gap = Gaps(count=0, hours=0.0, restarts=0)
    (plain,) = gpu_checks.warnings(gap, c)
    (with_amd,) = gpu_checks.warnings(gap, c, amd=True)
    assert plain.endswith("set ingest.metrics.dcgm.enabled: false to stop reading it")
    assert with_amd == plain + " (ingest.metrics.amd.enabled: false for AMD's device-metrics-exporter)"
    assert gpu_checks.amd_warnings(None) == []
