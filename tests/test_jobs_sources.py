"""Job ledgers: CSV/YAML ledgers, sacct JSON (old and new layouts) and parsable, Kubernetes series, phase rules.

Real fixtures: tests/fixtures/slurm/clockwork_sacct_1.json (Slurm 21.08) and
tests/fixtures/kubernetes/nri-kubernetes_1_35_ksm_metrics.prom (kube-state-metrics on k8s 1.35);
tests/fixtures/slurm/sacct_v0041_constructed.json is constructed (see SOURCE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wattprint.pipeline.errors import InputError
from wattprint.pipeline.sources.jobs import read_jobs
from wattprint.pipeline.sources.jobs.kubernetes import (
    jobs_from_kube_series,
    series_from_ksm_text,
    series_from_scrapes,
    sync_from_prometheus,
)
from wattprint.pipeline.sources.jobs.ledger import parse_csv, parse_yaml
from wattprint.pipeline.sources.jobs.rules import Rules, phase_hint
from wattprint.pipeline.sources.jobs.sacct import parse_json, parse_parsable

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CLOCKWORK = FIXTURES / "slurm" / "clockwork_sacct_1.json"
V0041 = FIXTURES / "slurm" / "sacct_v0041_constructed.json"
KSM = FIXTURES / "kubernetes" / "nri-kubernetes_1_35_ksm_metrics.prom"
HEADER = "job_id,project,phase,cluster,user,start,end,nodes,gpus\n"
HOSTILE = ("say \"hi\"", "a;b;c", "'); DROP TABLE jobs; --", "é漢")


def utc(s: str) -> datetime:
    return datetime.fromisoformat(s).astimezone(UTC)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error(fn: Callable[..., object], *args: object, **kw: object) -> str:
    with pytest.raises(InputError) as exc:
        fn(*args, **kw)
    return str(exc.value)


# -- CSV ledger ------------------------------------------------------------------------------------

def test_csv_ledger_reads_every_column(tmp_path: Path) -> None:
    p = write(tmp_path, "jobs.csv", HEADER
              + '101,llm,Pretraining,jz,alice,2024-03-01T10:00:00+01:00,2024-03-01T12:00:00Z,"gpu[01-02],cpu7",8\n'
              + "102,llm,,jz,bob,2024-03-01T09:00:00Z,,n1,\n")
    result = parse_csv(p)
    a, b = result.records
    assert (a.cluster, a.job_id, a.project, a.phase, a.user) == ("jz", "101", "llm", "pretraining", "alice")
    assert a.start == utc("2024-03-01T09:00:00Z") and a.end == utc("2024-03-01T12:00:00Z")
    assert a.nodes == ("gpu01", "gpu02", "cpu7") and a.gpus_per_node == 8
    assert a.source == "csv" and a.origin == f"{p}:2"
    assert b.phase == "unclassified" and b.end is None and b.gpus_per_node is None
    assert result.skipped == {} and result.warnings == []


def test_csv_header_any_order_case_and_optional_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "jobs.csv", "END,Start,PROJECT,Job_ID\n2024-03-01T11:00:00Z,2024-03-01T10:00:00Z,p,7\n")
    (rec,) = parse_csv(p, default_cluster="jz").records
    assert (rec.cluster, rec.job_id, rec.project, rec.phase, rec.nodes) == ("jz", "7", "p", "unclassified", ())


def test_csv_strange_values_come_through_verbatim(tmp_path: Path) -> None:
    rows = "".join(
        f'"{i}","{v.replace(chr(34), chr(34) * 2)}",,jz,"{v.replace(chr(34), chr(34) * 2)}",'
        f"2024-03-01T10:00:00Z,2024-03-01T11:00:00Z,,\n"
        for i, v in enumerate(HOSTILE)
    )
    result = parse_csv(write(tmp_path, "jobs.csv", HEADER + rows))
    assert [r.project for r in result.records] == list(HOSTILE)
    assert [r.user for r in result.records] == list(HOSTILE)


def test_csv_identical_duplicates_are_dropped(tmp_path: Path) -> None:
    row = "1,p,,jz,u,2024-03-01T10:00:00Z,2024-03-01T11:00:00Z,n1,1\n"
    result = parse_csv(write(tmp_path, "jobs.csv", HEADER + row + row + row.replace(",jz,", ",other,")))
    assert len(result.records) == 2 and result.skipped == {"duplicate": 1}


def test_csv_rules_decide_empty_phase_and_never_override_explicit(tmp_path: Path) -> None:
    rules = Rules.from_text("- match: {project: 'llm-*'}\n  phase: pretraining\n  project: ignored\n", "rules.yaml")
    p = write(tmp_path, "jobs.csv", HEADER
              + "1,llm-a,,jz,u,2024-03-01T10:00:00Z,,,\n"
              + "2,llm-a,inference,jz,u,2024-03-01T10:00:00Z,,,\n"
              + "3,other,,jz,u,2024-03-01T10:00:00Z,,,\n")
    a, b, c = parse_csv(p, rules=rules).records
    assert (a.phase, a.project) == ("pretraining", "llm-a")
    assert (b.phase, b.project) == ("inference", "llm-a")
    assert (c.phase, c.project) == ("unclassified", "other")


def test_csv_cluster_default_and_missing(tmp_path: Path) -> None:
    p = write(tmp_path, "jobs.csv", HEADER + "1,p,,,u,2024-03-01T10:00:00Z,,,\n")
    assert parse_csv(p, default_cluster="dflt").records[0].cluster == "dflt"
    msg = error(parse_csv, p)
    assert f"{p}:2" in msg and "--cluster" in msg


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("job_id,project,phse,start,end\n", 1, "unknown column 'phse' (did you mean 'phase'?)"),
        ("job_id,project,start\n", 1, "missing required column(s) end"),
        ("job_id,project,start,end,start\n", 1, "'start' appears twice"),
        (HEADER + "1,p,,jz,u,2024-03-01T10:00:00,,,\n", 2, "has no timezone"),
        (HEADER + "1,p,,jz,u,2024-03-01T10:00:00Z,2024-03-01T09:00:00Z,,\n", 2, "before it starts"),
        (HEADER + "1,p,,jz,u,2024-03-01T10:00:00Z,,,\n1,p,,jz,u\n", 3, "expected 9 fields as in the header, got 5"),
        (HEADER + "1,p,,jz,u,2024-03-01T10:00:00Z,,gpu[01-,\n", 2, "never closed"),
        (HEADER + "1,p,pretrain,jz,u,2024-03-01T10:00:00Z,,,\n", 2, "did you mean 'pretraining'"),
        (HEADER + "1,p,,jz,u,2024-03-01T10:00:00Z,,,-1\n", 2, "gpus -1 is negative"),
        (HEADER + "1,p,,jz,u,2024-03-01T10:00:00Z,,,eight\n", 2, "not a whole number"),
        (HEADER + ",p,,jz,u,2024-03-01T10:00:00Z,,,\n", 2, "empty job_id"),
        (HEADER + "1,,,jz,u,2024-03-01T10:00:00Z,,,\n", 2, "empty project"),
        (HEADER + '1,"p,,jz,u,2024-03-01T10:00:00Z,,,\n', 2, "malformed CSV"),
        ("\n\n", 0, "no header line"),
    ],
)
def test_csv_bad_input_names_file_and_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    p = write(tmp_path, "ledger.csv", text)
    msg = error(parse_csv, p)
    assert msg.startswith(f"{p}:{line}" if line else str(p)), msg
    assert fragment in msg


UNITS_HEADER = "job_id,project,cluster,start,end,units,unit_name\n"


def test_csv_units_and_unit_name_are_optional_columns(tmp_path: Path) -> None:
    p = write(tmp_path, "jobs.csv", UNITS_HEADER
              + "1,p,jz,2024-03-01T10:00:00Z,,3.2e9,tokens\n"
              + "2,p,jz,2024-03-01T10:00:00Z,, 1200 , samples \n"
              + "3,p,jz,2024-03-01T10:00:00Z,,,\n")
    a, b, c = parse_csv(p).records
    assert (a.units, a.unit_name) == (3.2e9, "tokens")
    assert (b.units, b.unit_name) == (1200.0, "samples")
    assert (c.units, c.unit_name) == (None, "")
    assert parse_csv(write(tmp_path, "plain.csv", HEADER + "1,p,,jz,u,2024-03-01T10:00:00Z,,,\n")).records[0].units \
        is None


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("0,tokens", "units 0 is not positive"),
        ("-5,tokens", "units -5 is not positive"),
        ("many,tokens", "units 'many' is not a finite number"),
        ("inf,tokens", "units 'inf' is not a finite number"),
        ("nan,tokens", "units 'nan' is not a finite number"),
        ("1e999,tokens", "units '1e999' is not a finite number"),
        ("1_000,tokens", "not a finite number"),
        ("100,", "units '100' without a unit_name"),
        (",tokens", "unit_name 'tokens' without units"),
        ("100," + "t" * 41, "is not a short name"),
        ("100,tok\tens", "is not a short name"),
    ],
)
def test_csv_bad_units_name_the_line_the_column_and_the_fix(tmp_path: Path, row: str, fragment: str) -> None:
    p = write(tmp_path, "ledger.csv", UNITS_HEADER + "1,p,jz,2024-03-01T10:00:00Z,,1,tokens\n"
              + f"2,p,jz,2024-03-01T10:00:00Z,,{row}\n")
    msg = error(parse_csv, p)
    assert msg.startswith(f"{p}:3"), msg
    assert fragment in msg
    assert "units" in msg and ("e.g." in msg or "leave" in msg), msg   # what to do


def test_yaml_ledger_units(tmp_path: Path) -> None:
    p = write(tmp_path, "jobs.yaml", "- {job_id: 1, project: p, cluster: c, start: '2024-03-01T10:00:00Z', end: '',"
              " units: 5.0e+8, unit_name: tokens}\n"
              "- {job_id: 2, project: p, cluster: c, start: '2024-03-01T10:00:00Z', end: ''}\n")
    a, b = parse_yaml(p).records
    assert (a.units, a.unit_name, b.units, b.unit_name) == (5e8, "tokens", None, "")
    bad = write(tmp_path, "bad.yaml", "- {job_id: 1, project: p, cluster: c, start: '2024-03-01T10:00:00Z', end: '',"
                " units: 12}\n")
    msg = error(parse_yaml, bad)
    assert msg.startswith(f"{bad}:1") and "without a unit_name" in msg


def test_csv_conflicting_duplicates_name_both_lines(tmp_path: Path) -> None:
    p = write(tmp_path, "jobs.csv", HEADER
              + "1,p,,jz,u,2024-03-01T10:00:00Z,,,\n"
              + "2,p,,jz,u,2024-03-01T10:00:00Z,,,\n"
              + "1,q,,jz,u,2024-03-01T10:00:00Z,,,\n")
    msg = error(parse_csv, p)
    assert msg.startswith(f"{p}:4:") and f"{p}:2" in msg and "'p' vs 'q'" in msg


def test_csv_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "jobs.csv"
    p.write_bytes(HEADER.encode() + "1,caf\xe9,,jz,u,2024-03-01T10:00:00Z,,,\n".encode("latin-1"))
    assert "not UTF-8" in error(parse_csv, p)


# -- YAML ledger -----------------------------------------------------------------------------------

YAML_LEDGER = """\
jobs:
  - job_id: 0123
    project: "'); DROP TABLE jobs; --"
    phase: finetuning
    cluster: jz
    user: é漢
    start: 2024-03-01T10:00:00Z
    end: 2024-03-01T11:00:00+01:00
    nodes: [gpu01, "gpu[02-03]"]
    gpus: 4
  - {job_id: 124, project: 'a;b "c"', start: "2024-03-01T10:00:00Z", end: ~}
"""


def test_yaml_ledger(tmp_path: Path) -> None:
    p = write(tmp_path, "jobs.yaml", YAML_LEDGER)
    a, b = parse_yaml(p, default_cluster="dflt").records
    assert a.job_id == "0123" and a.project == "'); DROP TABLE jobs; --" and a.user == "é漢"
    assert a.end == a.start == utc("2024-03-01T10:00:00Z")
    assert a.nodes == ("gpu01", "gpu02", "gpu03") and a.gpus_per_node == 4 and a.phase == "finetuning"
    assert a.origin == f"{p}:2 (jobs[0])" and a.source == "yaml"
    assert (b.job_id, b.project, b.cluster, b.end) == ("124", 'a;b "c"', "dflt", None)


def test_yaml_bare_list(tmp_path: Path) -> None:
    p = write(tmp_path, "jobs.yml", "- {job_id: 1, project: p, cluster: c, start: '2024-03-01T10:00:00Z', end: ''}\n")
    assert read_jobs(p).records[0].end is None


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("- {job_id: 1, project: p, cluster: c, start: '2024-03-01T10:00:00Z', end: ''}\n"
         "- job_id: 2\n  projet: p\n", 3, "unknown key 'projet' (did you mean 'project'?)"),
        ("- job_id: 1\n  project: p\n  cluster: c\n  start: 2024-03-01 10:00:00\n  end:\n", 1, "has no timezone"),
        ("- job_id: 1\n  project: p\n  cluster: c\n  start: 2024-03-01T10:00:00Z\n  end: 2024-03-01T09:00:00Z\n", 1,
         "before it starts"),
        ("- job_id: 1\n  project: p\n", 1, "missing required key(s) start, end"),
        ("- just a string\n", 1, "must be a mapping"),
        ("jobs: []\nextra: 1\n", 2, "unknown top-level key 'extra'"),
        ("- job_id: 1\n  job_id: 2\n", 2, "appears twice"),
        ("- job_id: [1\n", 2, "invalid YAML"),
        ("- {job_id: 1, project: p, cluster: c, phase: warmup, start: '2024-03-01T10:00:00Z', end: ''}\n", 1,
         "not a known phase"),
        ("- {job_id: 1, project: p, cluster: c, nodes: 'gpu[2-1]', start: '2024-03-01T10:00:00Z', end: ''}\n", 1,
         "backwards"),
        ("- {job_id: 1, project: {a: 1}, cluster: c, start: '2024-03-01T10:00:00Z', end: ''}\n", 1,
         "plain value"),
    ],
)
def test_yaml_bad_input_names_file_line_and_item(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    p = write(tmp_path, "jobs.yaml", text)
    msg = error(parse_yaml, p)
    assert msg.startswith(f"{p}:{line}"), msg
    assert fragment in msg


def test_yaml_conflicting_duplicates_name_both_items(tmp_path: Path) -> None:
    item = "- {{job_id: 1, project: {p}, cluster: c, start: '2024-03-01T10:00:00Z', end: ''}}\n"
    p = write(tmp_path, "jobs.yaml", item.format(p="a") + item.format(p="a") + item.format(p="b"))
    msg = error(parse_yaml, p)
    assert msg.startswith(f"{p}:3 (jobs[2])") and f"{p}:1 (jobs[0])" in msg


# -- sacct --json ---------------------------------------------------------------------------------

def test_sacct_json_clockwork_fixture() -> None:
    result = parse_json(CLOCKWORK)
    a, b = result.records
    assert (a.cluster, a.job_id, a.name, a.account, a.project, a.user) == (
        "cedar", "10", "test-job-1", "def-cerise-rrg", "def-cerise-rrg", "nobody")
    assert a.nodes == ("cdr1",) and a.gpus_per_node == 1 and a.phase == "unclassified"
    assert a.start == datetime.fromtimestamp(1680193504, tz=UTC) == utc("2023-03-30T16:25:04Z")
    # NODE_FAIL with time.end 0: end = start + elapsed (20615 s), and the user is told.
    assert a.end == datetime.fromtimestamp(1680193504 + 20615, tz=UTC)
    assert any("NODE_FAIL" in w and "20615" in w for w in result.warnings)
    assert (b.job_id, b.user, b.nodes) == ("20", "nobody2", ("cdr2",))
    assert b.start == datetime.fromtimestamp(1680127992, tz=UTC) and b.end == datetime.fromtimestamp(1680215981, tz=UTC)
    assert a.source == b.source == "sacct-json" and result.skipped == {}


def test_sacct_json_v0041_layout() -> None:
    result = parse_json(V0041)
    recs = {r.job_id: r for r in result.records}
    assert set(recs) == {"4242", "4243", "4245", "4246"}
    assert result.skipped == {"pending": 1, "requeued_run_merged": 1}
    pt = recs["4242"]
    assert (pt.phase, pt.project, pt.nodes, pt.gpus_per_node) == ("pretraining", "llm-pt", ("jz-gpu01", "jz-gpu02"), 8)
    assert pt.start == utc("2024-03-01T09:00:00Z") and pt.end == utc("2024-03-01T11:00:00Z")
    ft = recs["4243"]
    assert (ft.phase, ft.end, ft.gpus_per_node) == ("finetuning", None, 4)
    assert ft.start == utc("2024-03-01T10:00:00Z")
    hostile = recs["4245"]
    assert hostile.name == "'); DROP TABLE jobs; --" and hostile.project == "proj-é漢" and hostile.gpus_per_node == 0
    assert hostile.phase == "unclassified"
    assert any("'bogus'" in w and "4245" in w for w in result.warnings)
    rq = recs["4246"]
    assert (rq.phase, rq.nodes) == ("evaluation", ("jz-gpu04", "jz-gpu05"))
    assert rq.start == utc("2024-03-01T09:00:00Z") and rq.end == utc("2024-03-01T10:23:20Z")


def test_sacct_json_rules_set_project_and_phase() -> None:
    rules = Rules.from_text("- match: {account: llm-ft}\n  project: finetune-team\n  phase: inference\n"
                            "- match: {name: '/^pt-/'}\n  phase: experimentation\n", "r.yaml")
    recs = {r.job_id: r for r in parse_json(V0041, rules=rules).records}
    # the Comment hint beats the rule's phase, the rule's project beats the account
    assert (recs["4243"].phase, recs["4243"].project) == ("finetuning", "finetune-team")
    assert recs["4242"].phase == "pretraining"          # WCKey hint beats the name rule


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("{\"jobs\": [", "invalid JSON"), ("[]", "no top-level 'jobs'"), ('{"jobs": [{"name": "x"}]}', "without a job_id"),
     ('{"jobs": [{"job_id": 1, "account": "a", "state": {"current": ["RUNNING"]}, '
      '"time": {"start": 1700000000}, "nodes": "n[1-"}]}', "never closed")],
)
def test_sacct_json_bad_input(tmp_path: Path, text: str, fragment: str) -> None:
    p = write(tmp_path, "sacct.json", text)
    msg = error(parse_json, p, default_cluster="c")
    assert msg.startswith(str(p)) and fragment in msg


def test_sacct_json_needs_a_cluster(tmp_path: Path) -> None:
    p = write(tmp_path, "sacct.json", '{"jobs": [{"job_id": 5, "account": "a", "time": {"start": 1700000000}}]}')
    msg = error(parse_json, p)
    assert f"{p} jobs[0] (job 5)" in msg and "--cluster" in msg
    assert parse_json(p, default_cluster="c").records[0].end is None


# -- sacct --parsable2 ----------------------------------------------------------------------------

PARSABLE = """\
JobID|JobName|Account|WCKey|Comment|User|Start|End|NodeList|AllocTRES|State
1001|train|llm|pretraining||alice|2024-03-01T10:00:00|2024-03-01T12:00:00|gpu[01-02]|billing=16,cpu=16,gres/gpu:h100=16,gres/gpu=16,mem=200G,node=2|COMPLETED
1001.batch|batch|llm|||alice|2024-03-01T10:00:00|2024-03-01T12:00:00|gpu01|cpu=8,gres/gpu=8|COMPLETED
1001.extern|extern|llm|||alice|2024-03-01T10:00:00|2024-03-01T12:00:00|gpu[01-02]|cpu=16|COMPLETED
1001.0|python|llm|||alice|2024-03-01T10:01:00|2024-03-01T11:59:00|gpu[01-02]|cpu=16|COMPLETED
1002_4|sweep|llm||phase=finetuning;ticket=42|bob|2024-03-01T11:00:00|Unknown|gpu03|cpu=4,gres/gpu=4,node=1|RUNNING
1002_4.batch|batch|llm|||bob|2024-03-01T11:00:00|Unknown|gpu03|cpu=4|RUNNING
1003|queued|llm|||bob|Unknown|Unknown|None assigned|cpu=4|PENDING
1004_[1-9]|arr|llm|||bob|None|Unknown|None assigned||PENDING
1005|cancelled|llm|||bob|None|2024-03-01T12:00:00|None assigned||CANCELLED by 1000
1006|x'); DROP TABLE jobs; --|é漢|||carol|2024-03-01T13:00:00|2024-03-01T13:30:00|cpu7||FAILED
"""


def test_sacct_parsable_allocations_only(tmp_path: Path) -> None:
    p = write(tmp_path, "sacct.txt", PARSABLE)
    result = parse_parsable(p, timezone="Europe/Paris", default_cluster="jz")
    recs = {r.job_id: r for r in result.records}
    assert set(recs) == {"1001", "1002_4", "1006"}
    assert result.skipped == {"steps": 4, "pending": 2, "never_started": 1}
    a = recs["1001"]
    assert a.start == utc("2024-03-01T09:00:00Z") and a.end == utc("2024-03-01T11:00:00Z")   # Paris is UTC+1 in March
    assert (a.phase, a.project, a.nodes, a.gpus_per_node) == ("pretraining", "llm", ("gpu01", "gpu02"), 8)
    assert a.origin == f"{p}:2" and a.source == "sacct-parsable" and a.cluster == "jz"
    b = recs["1002_4"]
    assert (b.phase, b.end, b.gpus_per_node, b.user) == ("finetuning", None, 4, "bob")
    c = recs["1006"]
    assert (c.name, c.project, c.gpus_per_node) == ("x'); DROP TABLE jobs; --", "é漢", 0)
    assert any("JobIDRaw" in w for w in result.warnings)       # array id 1002_4 will not join exporter energy


def test_sacct_parsable_jobidraw_epoch_offsets_and_trailing_bar(tmp_path: Path) -> None:
    text = ("JobID|JobIDRaw|Account|Start|End|Cluster|NodeList|AllocTRES|State|\n"
            "77_3|80|a|1709283600|1709287200|jz|n1|gres/gpu:a100=2,gres/gpu:v100=1|COMPLETED|\n"
            "78|78|a|2024-03-01T10:00:00+0100|2024-03-01T10:30:00Z|jz|n[1-2]|gres/gpu=3|COMPLETED|\n")
    result = parse_parsable(write(tmp_path, "s.txt", text))          # no timezone needed
    a, b = result.records
    assert (a.job_id, a.cluster, a.gpus_per_node) == ("80", "jz", 3)
    assert a.start == utc("2024-03-01T09:00:00Z") and a.end == utc("2024-03-01T10:00:00Z")
    assert b.start == utc("2024-03-01T09:00:00Z") and b.gpus_per_node == 2
    assert not any("JobIDRaw" in w for w in result.warnings)
    assert any("uneven" in w for w in result.warnings)


def test_sacct_parsable_dst_fold_is_warned(tmp_path: Path) -> None:
    text = "JobID|Account|Start|End\n1|a|2024-10-27T02:30:00|2024-10-27T04:00:00\n"
    result = parse_parsable(write(tmp_path, "s.txt", text), timezone="Europe/Paris", default_cluster="c")
    assert result.records[0].start == utc("2024-10-27T00:30:00Z")     # the earlier (summer) reading
    assert any("daylight-saving" in w for w in result.warnings)


def test_sacct_parsable_terminal_without_end_uses_elapsed(tmp_path: Path) -> None:
    text = "JobID|Account|Start|End|Elapsed|State\n9|a|1709283600|Unknown|1-01:00:00|NODE_FAIL\n"
    rec = parse_parsable(write(tmp_path, "s.txt", text), default_cluster="c").records[0]
    assert rec.end == utc("2024-03-02T10:00:00Z")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (PARSABLE, 2, "--timezone"),
        ("JobID|Start|End\n1|2024-03-01T10:00:00Z|x\n", 2, "not a time sacct prints"),
        ("JobID|Start\n", 1, "lacks column(s) end"),
        ("JobID|Start|End|Comment\n1|1709283600|Unknown|a|b\n", 2, "expected 4 '|'-separated fields"),
        ("JobID|Start|End|Account\n1|1709287200|1709283600|a\n", 2, "before it starts"),
        ("JobID|Start|End\n1|1709283600|Unknown\n", 2, "no account"),
        ("JobID|Start|End|Account|NodeList\n1|1709283600|Unknown|a|n[1-\n", 2, "never closed"),
        ("", 0, "no header line"),
    ],
)
def test_sacct_parsable_bad_input(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    p = write(tmp_path, "sacct.txt", text)
    msg = error(parse_parsable, p, default_cluster="c")
    assert msg.startswith(f"{p}:{line}" if line else str(p)), msg
    assert fragment in msg


def test_sacct_parsable_bad_timezone(tmp_path: Path) -> None:
    msg = error(parse_parsable, write(tmp_path, "s.txt", PARSABLE), timezone="Europe/Pariss")
    assert msg.startswith("--timezone") and "Europe/Pariss" in msg


# -- phase rules --------------------------------------------------------------------------------------

RULES = """\
rules:
  - match: {account: "llm-*", name: "/^(pt|pretrain)[-_]/"}
    phase: pretraining
  - match: {label.wattprint.io/team: "research*"}
    phase: experimentation
    project: research
  - match: {comment: "/(?i)eval/"}
    phase: Evaluation
  - match: {}
    project: catch-all
"""


def test_rules_first_match_wins(tmp_path: Path) -> None:
    rules = Rules.load(write(tmp_path, "rules.yaml", RULES))
    assert rules.apply({"account": "llm-a", "name": "pt-7b"}) == ("pretraining", None)
    assert rules.apply({"account": "llm-a", "name": "ft-7b", "comment": "EVAL run"}) == ("evaluation", None)
    assert rules.apply({"label.wattprint_io_team": "research-nlp"}) == ("experimentation", "research")
    assert rules.apply({"account": "x"}) == (None, "catch-all")
    assert Rules().apply({"account": "x"}) == (None, None)


def test_rules_missing_field_never_matches() -> None:
    rules = Rules.from_text("- match: {wckey: '*'}\n  phase: inference\n", "r.yaml")
    assert rules.apply({"wckey": ""}) == ("inference", None)
    assert rules.apply({}) == (None, None)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("- match: {account: a}\n  phase: pretrain\n", 2,
         "rule #1: unknown phase 'pretrain' (did you mean 'pretraining'?)"),
        ("- match: {account: a}\n  phase: inference\n- match: {acount: a}\n  phase: inference\n", 3,
         "rule #2: unknown match key 'acount' (did you mean 'account'?)"),
        ("- match: {account: a}\n  phasee: inference\n", 2, "rule #1: unknown key 'phasee'"),
        ("- match: {account: '/[/'}\n  phase: inference\n", 1, "bad regular expression"),
        ("- match: {account: a}\n", 1, "sets neither"),
        ("- phase: inference\n", 1, "'match' must be a mapping"),
        ("rules: x\nother: 1\n", 2, "unknown top-level key 'other'"),
    ],
)
def test_rules_bad_file(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    p = write(tmp_path, "rules.yaml", text)
    msg = error(Rules.load, p)
    assert msg.startswith(f"{p}:{line}"), msg
    assert fragment in msg


@pytest.mark.parametrize(
    ("text", "bare", "hint"),
    [("phase=finetuning;ticket=42", False, "finetuning"), ("ticket=42, phase=Inference", False, "inference"),
     ("pretraining", True, "pretraining"), ("*evaluation", True, "evaluation"), ("pretraining", False, None),
     ("myphase=x", False, None), ("phase=bogus", False, "bogus"), ("", True, None)],
)
def test_phase_hint(text: str, bare: bool, hint: str | None) -> None:
    assert phase_hint(text, bare=bare) == hint


# -- Kubernetes ---------------------------------------------------------------------------------------

T0 = 1_709_283_600.0


def test_kube_fixture_joins_25_pods_by_uid() -> None:
    info, labels = series_from_ksm_text(KSM.read_text(encoding="utf-8"), at=T0)
    assert len(info) == 25 and len(labels) == 25
    result = jobs_from_kube_series(info, labels, cluster="kind", step_s=60)
    assert len(result.records) == 24 and result.skipped == {"unscheduled": 1}
    rec = next(r for r in result.records if r.job_id == "b5812e37-ce78-41e2-9d8d-d93a88e481d6")
    assert (rec.name, rec.project, rec.account, rec.nodes) == ("scraper/e2e-statefulset-0", "scraper", "scraper",
                                                                ("datagen-1-35",))
    assert rec.start == datetime.fromtimestamp(T0, tz=UTC) and rec.end == datetime.fromtimestamp(T0 + 60, tz=UTC)
    assert rec.phase == "unclassified" and rec.source == "kubernetes" and rec.cluster == "kind"


def test_kube_fixture_labelled_pod() -> None:
    info, labels = series_from_ksm_text(KSM.read_text(encoding="utf-8"), at=T0)
    result = jobs_from_kube_series(info, labels, cluster="kind", step_s=60, project_label="label_team",
                                   phase_label="label_environment", include_unscheduled=True)
    assert len(result.records) == 25 and result.skipped == {}
    (pod,) = [r for r in result.records if r.job_id == "90b2ad66-b670-40da-af18-73688a3e4654"]
    assert (pod.name, pod.project, pod.nodes, pod.phase) == ("scraper/e2e-container-pending", "k8-team", (),
                                                             "unclassified")
    assert any("label_environment='dev'" in w for w in result.warnings)
    rules = Rules.from_text("- match: {label.team: 'k8-*', namespace: scraper}\n  phase: inference\n", "r.yaml")
    again = jobs_from_kube_series(info, labels, cluster="kind", step_s=60, rules=rules, include_unscheduled=True)
    assert {r.job_id for r in again.records if r.phase == "inference"} == {"90b2ad66-b670-40da-af18-73688a3e4654"}


def _info(uid: str, node: str, times: list[float]) -> dict[str, object]:
    return {"metric": {"__name__": "kube_pod_info", "namespace": "ml", "pod": "trainer-0", "uid": uid, "node": node},
            "values": [[t, "1"] for t in times]}


def test_kube_window_node_change_labels_and_running() -> None:
    info = [_info("u1", "", [T0, T0 + 60]), _info("u1", "gpu-a", [T0 + 120, T0 + 180]),
            _info("u1", "gpu-b", [T0 + 240]), _info("u2", "gpu-c", [T0, T0 + 60, T0 + 120, T0 + 180, T0 + 240])]
    labels = [
        {"metric": {"uid": "u1", "label_wattprint_io_project": "old"}, "values": [[T0, "1"]]},
        {"metric": {"uid": "u1", "label_wattprint_io_project": "é漢; DROP", "label_wattprint_io_phase": "Pretraining"},
         "values": [[T0 + 240, "1"]]},
        {"metric": {"uid": "ghost"}, "values": [[T0, "1"]]},
    ]
    result = jobs_from_kube_series(info, labels, cluster="k8s", step_s=60, query_end=T0 + 300)
    u1, u2 = sorted(result.records, key=lambda r: r.job_id)
    assert u1.nodes == ("gpu-a", "gpu-b") and u1.start == datetime.fromtimestamp(T0 + 120, tz=UTC)
    assert u1.end is None                                         # last sample + step reaches the query end
    assert (u1.project, u1.phase) == ("é漢; DROP", "pretraining")
    assert (u2.project, u2.phase) == ("ml", "unclassified")
    assert result.skipped == {"labels_without_pod_info": 1}
    ended = jobs_from_kube_series(info, labels, cluster="k8s", step_s=60, query_end=T0 + 3600)
    assert {r.end for r in ended.records} == {datetime.fromtimestamp(T0 + 300, tz=UTC)}


def test_kube_series_from_scrapes_merges_times() -> None:
    text = KSM.read_text(encoding="utf-8")
    info, _ = series_from_scrapes([(T0, text), (T0 + 30, text)])
    assert len(info) == 25 and all(len(s["values"]) == 2 for s in info)
    result = jobs_from_kube_series(info, [], cluster="kind", step_s=30)
    assert {r.end for r in result.records} == {datetime.fromtimestamp(T0 + 60, tz=UTC)}


def test_kube_bad_arguments() -> None:
    assert "--cluster" in error(jobs_from_kube_series, [], [], cluster="", step_s=60)
    assert "step" in error(jobs_from_kube_series, [], [], cluster="c", step_s=0)
    msg = error(jobs_from_kube_series, [{"metric": {"uid": "u"}, "values": [["x", "1"]]}], [], cluster="c", step_s=60)
    assert "kube_pod_info[0]" in msg


# -- dispatcher ---------------------------------------------------------------------------------------

def test_read_jobs_detects_format(tmp_path: Path) -> None:
    assert [r.job_id for r in read_jobs(CLOCKWORK).records] == ["10", "20"]
    assert "--format" in error(read_jobs, tmp_path / "jobs.xlsx")
    assert "unknown job format" in error(read_jobs, CLOCKWORK, "xml")


def test_read_jobs_default_cluster_is_for_jobs_that_name_none(tmp_path: Path) -> None:
    p = write(tmp_path, "jobs.csv", HEADER + "1,p,,,u,2024-03-01T10:00:00Z,,,\n")
    assert read_jobs(p, "csv", default_cluster="dflt").records[0].cluster == "dflt"
    assert read_jobs(CLOCKWORK, "sacct-json", default_cluster="dflt").records[0].cluster == "cedar"


class _Chunk:
    def __init__(self, series: list[dict[str, object]]) -> None:
        self.series = series


class _FakeProm:
    def __init__(self, info: list[dict[str, object]], labels: list[dict[str, object]]) -> None:
        self.data = {"kube_pod_info": info, "kube_pod_labels": labels}
        self.queries: list[tuple[str, float]] = []

    def query_range(self, query: str, start: datetime, end: datetime, step_s: float) -> list[_Chunk]:
        self.queries.append((query, step_s))
        series = self.data[query.split("{")[0]]
        half = len(series) // 2
        return [_Chunk(series[:half]), _Chunk(series[half:])]       # two chunks, as PromClient may return


def test_sync_from_prometheus_runs_both_queries() -> None:
    info, labels = series_from_ksm_text(KSM.read_text(encoding="utf-8"), at=T0)
    prom = _FakeProm(info, labels)
    start, end = datetime.fromtimestamp(T0 - 3600, tz=UTC), datetime.fromtimestamp(T0 + 3600, tz=UTC)
    result = sync_from_prometheus(prom, start, end, cluster="kind", step_s=300, selector='cluster="kind"')
    assert prom.queries == [('kube_pod_info{cluster="kind"}', 300), ('kube_pod_labels{cluster="kind"}', 300)]
    assert len(result.records) == 24 and result.skipped == {"unscheduled": 1}
    assert {r.end for r in result.records} == {datetime.fromtimestamp(T0 + 300, tz=UTC)}
    running = sync_from_prometheus(prom, start, datetime.fromtimestamp(T0, tz=UTC), cluster="kind", step_s=300)
    assert {r.end for r in running.records} == {None}
