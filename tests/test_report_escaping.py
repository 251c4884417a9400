"""Hostile names against the real `wattprint report` (docs/reports.md, "Names in reports").

The known fleet of tests/reportkit.py, with its job ledger, a hostname, a GPU model and a region renamed to
attacks (spreadsheet formulas, Markdown and HTML, a YAML front matter, terminal escapes, bidi overrides),
rebuilt by `wattprint build` and reported by the real CLI in a child process, in every format. Each output is
then read the way its consumer reads it: the CSV with the csv module, the model card's front matter with
yaml.safe_load, the Markdown tables cell by cell, the JSON with json.loads.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import db
from pipeline.report import tables
from tests import reportkit
from tests.conftest import REPO

HYPERLINK = '=HYPERLINK("http://evil","x")'
FRONT_MATTER = "x\n---\nlicense: evil\n<script>alert(1)</script>|a|b"
CONTROLS = "ev\u202eil\x1b[31m\x07\x85\x9b\u2066!"
MARKDOWN = "*b* _e_ [l](http://evil) ![i](x) `c` # h &amp; \\| <b>"
QUOTED = 'a,b "c"\nd'
USER = "</td><script>alert(2)</script>\n|u|\x1b[2J"
JOB = "=cmd|' /C calc'!A0"
HOST = "jz2\x1b[2J\u202e"
GPU_MODEL = "H100\n---\nlicense: evil\u202e"
REGION = "us-west-2\n---\nbase_model: evil\x1b[2J"
BAD_PHASE = "exp\x1b]0;pwned\x07"

# job -> (project, phase): the ledger rewritten
LEDGER = {
    "e1": (HYPERLINK, "+1+1"),
    "e2": ("-2+3", "@SUM(A1)"),
    "p1": (FRONT_MATTER, "\t=1"),        # aws-usw2: the hostile region and GPU model
    "f1": (QUOTED, "\r=1"),
    "f2": (CONTROLS, "  =2+2"),
    "b1": (MARKDOWN, "pretraining"),
    "d1": ("idefics", BAD_PHASE),
}

# the CSV cell each hostile project or phase must become (items of the `projects` and `phases` sections)
CSV_PROJECTS = {
    HYPERLINK: "'" + HYPERLINK,
    "-2+3": "'-2+3",
    FRONT_MATTER: "x --- license: evil <script>alert(1)</script>|a|b",
    QUOTED: 'a,b "c" d',
    CONTROLS: "evil[31m !",
    MARKDOWN: MARKDOWN,
}
CSV_PHASES = {"+1+1": "'+1+1", "@SUM(A1)": "'@SUM(A1)", "\t=1": "' =1", "\r=1": "' =1", "  =2+2": "'  =2+2"}
FORMULA_NAMES = [HYPERLINK, "-2+3", "+1+1", "@SUM(A1)", "\t=1", "\r=1", "  =2+2"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# what no human format may carry: C0 but the line feed, DEL, C1, line/paragraph separators, bidi controls
FORBIDDEN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
RAW_HTML = re.compile(r"<[A-Za-z/!?]")


@pytest.fixture(scope="module")
def hostile(report_fleet, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(database, config, output folder): the known fleet with hostile names, rebuilt by `wattprint build`."""
    src_db, src_cfg = report_fleet
    d = tmp_path_factory.mktemp("hostile")
    path, cfg = d / "hostile.duckdb", d / "wattprint.yaml"
    shutil.copy(src_db, path)
    config = src_cfg.read_text(encoding="utf-8")
    assert "region: us-west-2\n" in config
    cfg.write_text(config.replace("region: us-west-2\n", f"region: {json.dumps(REGION)}\n"), encoding="utf-8")
    con = db.connect(path)
    try:
        for job, (project, phase) in LEDGER.items():
            con.execute("UPDATE jobs SET project = ?, phase = ?, user_name = ? WHERE job_id = ?",
                        [project, phase, USER, job])
        for table in ("jobs", "job_nodes", "series"):
            con.execute(f"UPDATE {table} SET job_id = ? WHERE job_id = 'f2'", [JOB])
        con.execute("UPDATE series SET hostname = ? WHERE hostname = 'jz2'", [HOST])
        con.execute("UPDATE job_nodes SET node = ? WHERE node = 'jz2'", [HOST])
        con.execute("UPDATE series SET model = ? WHERE model = ?", [GPU_MODEL, reportkit.H100])
    finally:
        con.close()
    res = _cli("build", "--db", str(path), "--config", str(cfg), "-q")
    assert res.returncode == 0, res.stderr
    out = d / "out"
    out.mkdir()
    return path, cfg, out


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real program, as a user runs it (`wattprint` is `python -m pipeline.cli`)."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, capture_output=True, text=True,
                          encoding="utf-8", timeout=300)


def _report(hostile, *args: str) -> subprocess.CompletedProcess[str]:
    path, cfg, _ = hostile
    res = _cli("report", "--db", str(path), "--config", str(cfg), "--month", "2024-03", *args)
    assert res.returncode == 0, res.stderr
    return res


def _written(hostile, name: str, *args: str) -> str:
    out = hostile[2] / name
    _report(hostile, *args, "--out", str(out))
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def fleet_csv_text(hostile) -> str:
    return _written(hostile, "all.csv", "--format", "csv")


@pytest.fixture(scope="module")
def fleet_csv(fleet_csv_text) -> list[list[str]]:
    return list(csv.reader(io.StringIO(fleet_csv_text, newline=""), strict=True))


@pytest.fixture(scope="module")
def fleet_json(hostile) -> tuple[str, dict]:
    text = _written(hostile, "all.json", "--format", "json")
    return text, json.loads(text)


# --------------------------------------------------------------------------- CSV


def test_csv_text_cells_that_a_spreadsheet_would_run_are_prefixed(fleet_csv):
    head, *rows = fleet_csv
    assert head == list(tables.COLUMNS)
    text_cells = [c for r in rows for i, c in enumerate(r) if i != 3]
    for cell in text_cells:
        assert cell.startswith("'") or not cell.lstrip(" ").startswith(FORMULA_START), cell
    items = {(r[0], r[1]) for r in rows}
    for name, cell in CSV_PROJECTS.items():
        assert ("projects", cell) in items, (name, cell)
    for name, cell in CSV_PHASES.items():
        assert ("phases", cell + "/measured") in items, (name, cell)
    # a name inside an item is not at the start of the cell: left as it is (still quoted by the csv module)
    assert ("projects", "'" + HYPERLINK + "/+1+1") in items
    assert any(r[0] == "top_jobs" and r[1].endswith("/" + JOB) for r in rows)
    prefixed = {n for n in FORMULA_NAMES if any(c.startswith("'") and c[1:].lstrip(" ").startswith(
        re.sub(r"[\t\r]", " ", n).lstrip(" ")) for c in text_cells)}
    assert prefixed == set(FORMULA_NAMES)


def test_csv_numbers_are_written_unchanged(fleet_csv, fleet_json):
    _, report = fleet_json
    head, *rows = fleet_csv
    expected = list(tables.rows(report))
    assert len(rows) == len(expected)
    negative = 0
    for row, (_, _, field, value, unit) in zip(rows, expected, strict=True):
        assert row[2] == field and row[4] == unit
        assert row[3] == (repr(value) if isinstance(value, float) else str(value))
        negative += row[3].startswith("-")
    assert negative > 0          # what-if deltas: negative numbers stay numbers, never prefixed


def test_csv_quotes_per_rfc_4180_and_has_no_control_characters(fleet_csv_text, fleet_csv):
    text = fleet_csv_text
    assert not FORBIDDEN.search(text)
    assert len(fleet_csv) == text.count("\n")       # one physical line per row: no name carries a line break
    assert '\nprojects,"a,b ""c"" d",' in text
    assert "\nprojects,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\"," in text

