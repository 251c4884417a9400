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
import yaml

from tests import reportkit
from tests.conftest import REPO
from wattprint.pipeline import db
from wattprint.pipeline.report import tables
from wattprint.pipeline.report.modelcard import DISCLOSURE_FIELDS, STANDARD_FIELDS

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
    return subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=REPO, capture_output=True,
                          text=True, encoding="utf-8", timeout=300)


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


# --------------------------------------------------------------------------- Markdown, model card


def _cells(line: str) -> list[str]:
    """A GFM table row's cells: split on pipes that are not backslash-escaped."""
    cells, cur, i = [], "", 0
    body = line.strip()
    assert body.startswith("|") and body.endswith("|") and not body.endswith("\\|"), line
    body = body[1:-1]
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            cur += body[i:i + 2]
            i += 2
            continue
        if body[i] == "|":
            cells.append(cur)
            cur = ""
        else:
            cur += body[i]
        i += 1
    return cells + [cur]


def _check_markdown(text: str, reference: str) -> None:
    """No control character, no raw HTML, the same headings as a report with ordinary names, tables intact."""
    assert not FORBIDDEN.search(text)
    assert not RAW_HTML.search(text), RAW_HTML.search(text)
    assert "<script" not in text.lower()
    lines = text.split("\n")
    headings = [x for x in lines if x.startswith("#")]
    assert [x for x in headings if x.startswith("## ")] == [x for x in reference.split("\n") if x.startswith("## ")]
    assert len(headings) - len([x for x in headings if x.startswith("## ")]) == 1
    assert "---" not in lines
    tables_seen = 0
    block: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            widths = {len(_cells(x)) for x in block}
            assert len(widths) == 1, block
            assert re.fullmatch(r"\|(---\|)+", block[1])
            tables_seen += 1
            block = []
    assert tables_seen >= 5


def _reference(report_fleet, *args: str) -> str:
    db_path, cfg = report_fleet
    res = _cli("report", "--db", str(db_path), "--config", str(cfg), "--month", "2024-03", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_markdown_keeps_names_as_plain_text(hostile, report_fleet):
    text = _written(hostile, "all.md", "--format", "md")
    _check_markdown(text, _reference(report_fleet))
    # the names, escaped: punctuation backslashed, HTML as entities, line breaks as spaces
    assert r"\*b\* \_e\_ \[l\](http://evil) !\[i\](x) \`c\` \# h &amp;amp; \\\| &lt;b&gt;" in text
    assert r"x --- license: evil &lt;script&gt;alert(1)&lt;/script&gt;\|a\|b" in text
    assert r"&lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt; \|u\|\[2J" in text
    assert r"| =cmd\|' /C calc'!A0 | evil\[31m ! |   =2+2 |" in text
    assert r"| jean-zay | jz2\[2J | no RAPL series" in text
    assert r"| aws-usw2 | us-west-2 --- base_model: evil\[2J |" in text       # `_` inside a word stays


def test_model_card_front_matter_holds_only_its_key(hostile, report_fleet):
    card = hostile[2] / "README.md"
    card.write_text("---\nlicense: mit\n---\n# My model\n", encoding="utf-8")
    _report(hostile, "--project", FRONT_MATTER, "--format", "model-card", "--out", str(card))
    new = hostile[2] / "NEW.md"
    _report(hostile, "--project", FRONT_MATTER, "--format", "model-card", "--out", str(new))
    location = "us-west-2 --- base_model: evil[2J"
    for path, keys in ((card, {"license", "co2_eq_emissions"}), (new, {"co2_eq_emissions"})):
        text = path.read_text(encoding="utf-8")
        assert not FORBIDDEN.search(text)
        lines = text.split("\n")
        assert lines[0] == "---"
        close = lines.index("---", 1)
        assert text.index("\n---\n") == len("\n".join(lines[:close]))     # the first fence after the top
        meta = yaml.safe_load("\n".join(lines[1:close]))
        assert set(meta) == keys
        co2 = meta["co2_eq_emissions"]
        assert set(co2) <= set(STANDARD_FIELDS) | set(DISCLOSURE_FIELDS) and co2["emissions"] > 0
        assert co2["geographical_location"] == location
        assert "4 x H100 --- license: evil" in co2["hardware_used"]
        if "license" in keys:
            assert meta["license"] == "mit" and "\n".join(lines[close + 1:]) == "# My model\n"
        else:
            _check_markdown("\n".join(lines[close + 1:]),
                            _reference(report_fleet, "--project", "idefics", "--phase", "pretraining"))
            assert r"# Carbon report: project x --- license: evil &lt;script&gt;alert(1)&lt;/script&gt;\|a\|b" in text


# --------------------------------------------------------------------------- HTML, JSON, terminal


def test_html_has_no_control_characters(hostile):
    text = _written(hostile, "all.html", "--format", "html")
    assert not FORBIDDEN.search(text)
    assert "<script" not in text.lower()
    assert "&lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt; |u|[2J" in text
    assert "evil[31m !" in text


def test_json_keeps_the_exact_names(fleet_json):
    text, report = fleet_json
    assert not FORBIDDEN.search(text)                 # written as \u escapes: the same strings once parsed
    assert {p["project"] for p in report["projects"]} >= set(CSV_PROJECTS)
    assert {ph["phase"] for p in report["projects"] for ph in p["phases"]} >= set(CSV_PHASES)
    assert {j["user"] for j in report["top_jobs"]} - {""} == {USER}       # "": the job not in the ledger
    assert JOB in {j["job_id"] for j in report["top_jobs"]}
    assert HOST in {n["hostname"] for n in report["data_quality"]["rapl"]["without"]}


def test_terminal_output_has_no_control_characters(hostile):
    res = _report(hostile)                                   # Markdown on stdout, warnings on stderr
    assert not FORBIDDEN.search(res.stdout) and not FORBIDDEN.search(res.stderr)
    assert "jz2[2J" in res.stderr                            # the hostname's warning, cleaned
    path, cfg, _ = hostile
    for args, hint in ((("--project", "idefics", "--phase", "nosuch"), "exp]0;pwned"),
                       (("--project", "nosuch"), "evil[31m !")):
        res = _cli("report", "--db", str(path), "--config", str(cfg), "--month", "2024-03", *args)
        assert res.returncode == 2 and hint in res.stderr, res.stderr
        assert not FORBIDDEN.search(res.stderr)


def test_a_block_line_at_column_0_is_refused(tmp_path, monkeypatch):
    """safe_dump indents every line of a value; should it ever not, the card is left as it was."""
    from wattprint.pipeline.report import modelcard

    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\n---\nbody\n", encoding="utf-8")
    monkeypatch.setattr(modelcard.yaml, "safe_dump",
                        lambda *a, **k: "co2_eq_emissions:\n  emissions: 1.0\n  source: 'x\n---\nlicense: evil'\n")
    with pytest.raises(modelcard.ModelCardError, match="would not stay inside its key"):
        modelcard.update_file(card, modelcard.co2_block(1.0, "x", None, None, None))
    assert card.read_text(encoding="utf-8") == "---\nlicense: mit\n---\nbody\n"
