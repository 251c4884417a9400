"""Fuzzing the job-ledger and intensity importers (issue 6): whatever the file holds, an import either
returns records that hold the invariants below or raises `InputError` naming the file (or the flag); never
another exception. End to end, `wattprint jobs import` / `intensity import` exits 0, or exits 2 with one
line on stderr and every stored table exactly as it was.

Inputs are (a) valid records from the real fixtures with a few fields replaced by hostile values (empty,
whitespace, unicode, control characters, NUL, huge/negative/NaN/Inf numbers, bad or offset-less timestamps,
wrong JSON types, nested garbage), rows and columns dropped, repeated or added, BOM and CRLF; (b) byte-level
mutations of the fixtures (flips, inserts, cuts); (c) raw random bytes and text.

The ledgers' optional `units` and `unit_name` columns (the SCI's functional units) are fuzzed twice: in the
chaotic CSV and YAML ledgers above, and in ledgers valid but for those two columns, against an oracle: every row
imported with exactly the value and name written (stripped), or an InputError naming file:line of the first bad
row, and through the CLI every row stored so or nothing stored.

CI=true runs derandomized (the same examples every run). WATTPRINT_FUZZ_SCALE multiplies every example
count (e.g. 20 for a long local run); WATTPRINT_FUZZ_STATS=FILE writes the examples run and seconds per
property as JSON. Minimal failing inputs found by this file are kept below as regression tests.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import itertools
import json
import math
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.conftest import FIXTURES, REPO
from wattprint.pipeline import cli
from wattprint.pipeline.errors import InputError
from wattprint.pipeline.records import INTENSITY_BASES, PHASES, IntensityPoint, JobRecord, intensity_signal
from wattprint.pipeline.settings import load_settings
from wattprint.pipeline.sources.intensity import check_points, parse
from wattprint.pipeline.sources.jobs import read_jobs
from wattprint.pipeline.sources.jobs.ledger import MAX_UNIT_NAME
from wattprint.pipeline.store import SIGNAL_TABLES

pytestmark = pytest.mark.fuzz

CI = os.environ.get("CI", "").lower() == "true"
SCALE = float(os.environ.get("WATTPRINT_FUZZ_SCALE", "1") or 1)
EXAMPLES: Counter[str] = Counter()
SECONDS: Counter[str] = Counter()

JOB_FORMATS = ("csv", "yaml", "sacct-json", "sacct-parsable")
INTENSITY_FORMATS = ("electricitymaps-csv", "electricitymaps-json", "uk-json", "watttime-json", "csv")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_POINT = timedelta(days=1)
INT32_MAX = 2**31 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def fuzz(n: int) -> settings:
    """n examples (times WATTPRINT_FUZZ_SCALE); derandomized in CI; failures replay from .pytest_cache locally."""
    return settings(
        max_examples=max(1, round(n * SCALE)), deadline=None, derandomize=CI, print_blob=True,
        database=None if CI else DirectoryBasedExampleDatabase(str(REPO / ".pytest_cache" / "hypothesis")),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                               HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# -- bookkeeping: examples run and time per property ----------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not EXAMPLES:
        return
    lines = [f"{name}: {EXAMPLES[name]} examples, {SECONDS[name]:.1f} s" for name in sorted(EXAMPLES)]
    lines.append(f"total: {sum(EXAMPLES.values())} examples, {sum(SECONDS[name] for name in EXAMPLES):.1f} s")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None:
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            reporter.write_line("")
            for line in ["fuzz examples run (tests/test_fuzz_importers.py):", *lines]:
                reporter.write_line("  " + line)
    out = os.environ.get("WATTPRINT_FUZZ_STATS")
    if out:
        Path(out).write_text(json.dumps({"ci": CI, "scale": SCALE, "examples": dict(EXAMPLES),
                                         "seconds": {k: round(v, 2) for k, v in SECONDS.items()}}, indent=2) + "\n")


@pytest.fixture(autouse=True)
def _timed(request: pytest.FixtureRequest) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    SECONDS[_name(request.node.name)] += time.perf_counter() - t0


def _name(node_name: str) -> str:
    return node_name.removeprefix("test_")


def ran(name: str) -> None:
    EXAMPLES[name] += 1


_SEQ = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@contextlib.contextmanager
def input_file(workdir: Path, data: bytes, suffix: str) -> Iterator[Path]:
    path = workdir / f"in{next(_SEQ)}{suffix}"
    path.write_bytes(data)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


# -- invariants ------------------------------------------------------------------------------------

def is_utc(dt: object) -> bool:
    return isinstance(dt, datetime) and dt.tzinfo is not None and dt.utcoffset() == timedelta(0)


def check_job(rec: JobRecord) -> None:
    assert isinstance(rec, JobRecord)
    for name in ("cluster", "job_id", "project"):
        value = getattr(rec, name)
        assert isinstance(value, str) and value.strip(), (name, rec)
    assert rec.phase in PHASES, rec
    assert is_utc(rec.start), rec
    assert rec.end is None or (is_utc(rec.end) and rec.end >= rec.start), rec
    assert rec.gpus_per_node is None or (isinstance(rec.gpus_per_node, int) and 0 <= rec.gpus_per_node <= INT32_MAX)
    assert all(isinstance(n, str) and n and n == n.strip() for n in rec.nodes), rec.nodes
    assert len(set(rec.nodes)) == len(rec.nodes)
    for name in ("user", "name", "account", "source", "origin"):
        assert isinstance(getattr(rec, name), str)
    # functional units: both or neither; a positive finite number and a short printable name
    assert isinstance(rec.unit_name, str)
    if rec.units is None:
        assert rec.unit_name == "", rec
    else:
        assert isinstance(rec.units, float) and math.isfinite(rec.units) and rec.units > 0, rec
        assert rec.unit_name and rec.unit_name == rec.unit_name.strip() and rec.unit_name.isprintable(), rec
        assert len(rec.unit_name) <= MAX_UNIT_NAME, rec


def check_point(p: IntensityPoint) -> None:
    assert isinstance(p, IntensityPoint)
    assert isinstance(p.zone, str) and p.zone and p.zone == p.zone.strip(), p
    assert is_utc(p.start) and is_utc(p.end), p
    assert p.start >= EPOCH, p
    assert timedelta(0) < p.end - p.start <= MAX_POINT, p
    assert isinstance(p.g_per_kwh, float) and math.isfinite(p.g_per_kwh) and 0 <= p.g_per_kwh <= 5000, p
    assert p.basis in INTENSITY_BASES, p


def check_error(exc: InputError, path: Path) -> None:
    """The message says where: the file (with line or JSON path when there is one) or the flag at fault."""
    assert exc.where, exc
    assert str(path) in exc.where or exc.where.startswith("--"), exc.where
    message = exc.message()
    assert message.strip(), exc
    assert not _CONTROL.search(message), f"raw control character in the message: {message!r}"


def import_jobs(path: Path, fmt: str, *, cluster: str | None, timezone_: str | None) -> list[JobRecord] | None:
    """The records, or None after checking the InputError. Any other exception fails the test."""
    try:
        result = read_jobs(path, fmt, default_cluster=cluster, timezone=timezone_)
    except InputError as exc:
        check_error(exc, path)
        return None
    keys = [(r.cluster, r.job_id) for r in result.records]
    assert len(keys) == len(set(keys)), "a job twice in one import"
    for rec in result.records:
        check_job(rec)
    assert all(n > 0 for n in result.skipped.values())
    assert all(isinstance(w, str) and not _CONTROL.search(w) for w in result.warnings), result.warnings
    return result.records


def import_intensity(path: Path, fmt: str, *, zone: str | None, basis: str | None) -> list[IntensityPoint] | None:
    try:
        points = check_points(parse(path, fmt, zone=zone, basis=basis).points)
    except InputError as exc:
        check_error(exc, path)
        return None
    assert points, "an import that succeeds holds at least one point"
    for p in points:
        check_point(p)
    return points


# -- hostile values --------------------------------------------------------------------------------

ODD_STRINGS = [
    "", " ", "\t", "\u00a0", "\u3000", "NaN", "nan", "-nan", "inf", "-inf", "Infinity", "-Infinity", "-1", "0", "-0",
    "1e309", "-1e309", "1e-320", "9" * 400, "9" * 5000, "0x10", "1_000", "\u0661\u0662", "\uff18", "\u00b2", "null",
    "None", "true", "~", "Unknown", "n/a", "0001-01-01T00:00:00+01:00", "0001-01-01T00:30:00Z",
    "9999-12-31T23:59:59-01:00", "9999-12-31T23:30:00Z", "9999-12-31T23:59:59.999999Z", "1969-12-31T23:30:00Z",
    "1900-01-01T00:00:00Z", "2024-03-01T00:00:00", "2024-03-01 00:00:00", "2024-03-01", "2024-02-30T00:00:00Z",
    "2024-03-01T25:00:00Z", "2024-03-01T00:00:00+25:00", "2024-03-01T00:00:00+23:59", "2024-03-01T00:00:00Z ",
    "\ufeff2024-03-01T00:00:00Z", "2024-03-01T00:00:00.123456789Z", "2024-W09-5T00:00:00Z", "20240301T000000Z",
    "1709251200", "-1709251200", "99999999999999999999", "253402300800", "gpu[1-99999999]", "gpu[01-", "gpu]",
    "a[1-2]-b[3-4]", "gpu[01-04],gpu[03-05]", "n1,,n2", "[]", "{}", "\x00", "a\x00b", "\r", "\n", "\r\n", "\x1b[31m",
    '"', '""', "'", ",", "|", ";", "\\", "#", "- x", "key: value", "&a", "*a", "!!binary", "%", "@", "`",
    "\u00e9\u6f22\U0001f600", "\u202e", "\u200b", "\ud7ff", "x" * 10_000, "phase=pretraining", "PRETRAINING",
    "pre-training", "Unclassified", "COMPLETED", "PENDING", "RUNNING", "NODE_FAIL", "CANCELLED by 0",
    "1-00:00:00", "99999999999-00:00:00", "00:00", "gres/gpu=99999999999", "gres/gpu=-4", "gres/gpu=nan",
    "'); DROP TABLE jobs; --",
]

TIMEZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)),
                             timezone(timedelta(hours=23, minutes=59)), timezone(-timedelta(hours=23, minutes=59))])


def instant_text(dt: datetime, style: int) -> str:
    text = dt.isoformat(sep=" " if style == 1 else "T")
    return text.replace("+00:00", "Z") if style == 2 else text


ANY_INSTANTS = st.builds(instant_text, st.datetimes(timezones=TIMEZONES), st.integers(0, 2))
GOOD_TIMES = st.datetimes(min_value=datetime(2016, 1, 1), max_value=datetime(2034, 12, 31),
                          timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=7))]))
GOOD_INSTANTS = st.builds(instant_text, GOOD_TIMES, st.sampled_from([0, 2]))
NUMBERS = st.one_of(st.integers().map(str), st.floats().map(repr), st.floats(-1e4, 1e4).map(lambda x: f"{x:.3f}"))
ODD_TEXT = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=30), ANY_INSTANTS, NUMBERS,
                     st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=12))

ODD_JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64, -1, 0, 1e308, -1e308, 5e-324, float("nan"), float("inf")]),
    st.sampled_from(["\ud800", "x\udfff", "\ud83d\ude00"]),      # lone surrogates: valid JSON escapes
    st.sampled_from(ODD_STRINGS), st.text(max_size=20),
)
ODD_JSON = st.one_of(
    ODD_JSON_SCALARS,
    st.recursive(ODD_JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6),
)



# -- functional units: the ledgers' units and unit_name, and what the importer must make of them -----------------

# (as written, the number it means): plain decimal numbers, positive and finite
GOOD_UNITS = [("1", 1.0), ("3.2e9", 3.2e9), ("+7", 7.0), ("0.001", 0.001), (".5", 0.5), ("5.", 5.0), ("1E3", 1000.0),
              ("007", 7.0), ("49608000000", 49608000000.0), ("1e-300", 1e-300), ("5e-324", 5e-324),
              ("1.7976931348623157e308", 1.7976931348623157e308), ("9" * 300, float("9" * 300))]
BAD_UNITS = ["0", "-0", "0.0", "0e5", "-1", "-3.2e9", "1e-400", "NaN", "nan", "-nan", "inf", "-inf", "Infinity",
             "1e400", "1e309", "9" * 400, ".nan", ".NaN", ".inf", "-.inf", "abc", "many", "1,5", "1_000", "0x10",
             "1 000", "--1", "1e", "e5", ".", "+", "1e+", "\u0661\u0662", "\uff11", "\U0001d7cf", "\u00bd", "\u00b2",
             "true", "null", "~", "3.2e9 tokens", "'1'", '"1"', "1\x00", "\x1b[31m1"]
GOOD_UNIT_NAMES = ["tokens", "samples", "images (224 px)", "\u0442\u043e\u043a\u0435\u043d\u044b",
                   "\u30c8\u30fc\u30af\u30f3", "\U0001f642 emoji", "x" * MAX_UNIT_NAME, "tokens/s",
                   "'; DROP TABLE jobs; --", "=1+1", "e\u0301", "\u00e9\u6f22", " tokens ", "\u3000samples\u3000",
                   "null", "~", "- x", "#", '"', "a,b", "\\"]
BAD_UNIT_NAMES = ["x" * (MAX_UNIT_NAME + 1), "x" * 10_000, "a\x00b", "a\x1bb", "a\u202eb", "a\u200bb", "a\u00a0b",
                  "a\tb", "a\nb", "a\rb", "a\r\nb", "a\x85b", "a\u2028b", "\U000e0001x", "a\x7fb", "a\ufeffb"]
_PAD = st.sampled_from(["", "", "", " ", "\t", "\u00a0", "\u3000"])
UNITS_TEXT = st.one_of(
    st.just(""), st.just(""), st.sampled_from([t for t, _ in GOOD_UNITS]), st.sampled_from(BAD_UNITS),
    st.floats().map(repr), st.integers(-10**30, 10**30).map(str), st.text(max_size=8),
).flatmap(lambda t: st.builds(lambda a, b: a + t + b, _PAD, _PAD))
UNIT_NAMES = st.one_of(st.just(""), st.just(""), st.sampled_from(GOOD_UNIT_NAMES), st.sampled_from(BAD_UNIT_NAMES),
                       st.text(max_size=MAX_UNIT_NAME + 10), st.text(alphabet=st.characters(max_codepoint=0x7f),
                                                                      max_size=12))
# a row's (units, unit_name) cells: often a valid pair or none, so that a ledger holds several good rows and a bad
# one anywhere among them, not only a first row that fails
_VALID_UNITS = st.one_of(st.sampled_from([t for t, _ in GOOD_UNITS]), st.integers(1, 10**30).map(str),
                         st.floats(min_value=0, exclude_min=True, allow_infinity=False).map(repr))
_VALID_NAMES = st.one_of(st.sampled_from(GOOD_UNIT_NAMES),
                         st.text(min_size=1, max_size=MAX_UNIT_NAME).filter(lambda t: t.strip().isprintable()))
UNIT_CELLS = st.one_of(
    st.tuples(_VALID_UNITS.flatmap(lambda t: st.builds(lambda a, b: a + t + b, _PAD, _PAD)), _VALID_NAMES),
    st.tuples(_VALID_UNITS, _VALID_NAMES), st.tuples(_VALID_UNITS, _VALID_NAMES), st.just(("", "")),
    st.tuples(UNITS_TEXT, UNIT_NAMES), st.tuples(UNITS_TEXT, UNIT_NAMES),
)
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def expected_units(units: str, unit_name: str) -> tuple[float | None, str] | None:
    """What the importer must make of a row's units and unit_name cells (ledger.py's contract: both or neither, a
    plain positive finite number and a short printable name, each trimmed), or None: it must refuse the row."""
    units, unit_name = units.strip(), unit_name.strip()
    if not units and not unit_name:
        return None, ""
    if not units or not unit_name or len(unit_name) > MAX_UNIT_NAME or not unit_name.isprintable():
        return None
    value = float(units) if _PLAIN_NUMBER.fullmatch(units) else math.nan
    return (value, unit_name) if math.isfinite(value) and value > 0 else None


def test_the_units_oracle_agrees_with_the_hand_labels() -> None:
    """The oracle is checked against values labelled by hand, so that it is not only the importer's own rule."""
    for text, value in GOOD_UNITS:
        assert expected_units(f" {text}\t", "tokens") == (value, "tokens"), text
    for text in BAD_UNITS:
        assert expected_units(text, "tokens") is None, text
    for name in GOOD_UNIT_NAMES:
        assert expected_units("1", name) == (1.0, name.strip()), name
    for name in BAD_UNIT_NAMES:
        assert expected_units("1", name) is None, name
    assert expected_units("", "") == (None, "") and expected_units(" ", "\u3000") == (None, "")
    assert expected_units("5", "") is None and expected_units("", "tokens") is None


# every other column valid, so that only the units can make a row fail
UNIT_LEDGER_ROW = {"project": "p", "phase": "pretraining", "cluster": "c1", "user": "u",
                   "start": "2024-03-01T00:00:00Z", "end": "2024-03-01T01:00:00Z"}
_EOL = re.compile("\r\n|\r|\n")


class UnitsLedger:
    """A generated ledger valid but for its units: the file, each row's (units, unit_name) cells as written ("" for
    an absent one), and where an error about each row must point ('LINE' or 'LINE (jobs[i])' after 'file:')."""

    def __init__(self, data: bytes, cells: list[tuple[str, str]], wheres: list[str]) -> None:
        self.data, self.cells, self.wheres = data, cells, wheres

    def job_id(self, i: int) -> str:
        return str(5000 + i)

    def __repr__(self) -> str:
        return f"UnitsLedger({self.data!r})"


@st.composite
def units_ledger_csv(draw: st.DrawFn) -> UnitsLedger:
    cells = draw(st.lists(UNIT_CELLS, min_size=1, max_size=5))
    cols = ["job_id", *UNIT_LEDGER_ROW, "units", "unit_name"]
    if draw(st.integers(0, 9)) == 0:                      # one of the two columns only
        cols.remove(draw(st.sampled_from(["units", "unit_name"])))
    cols = list(draw(st.permutations(cols)))
    # a line break inside a cell needs quotes (csv.writer leaves a lone CR unquoted when lines end in LF)
    breaks = any(_EOL.search(u + n) for u, n in cells)
    out = io.StringIO()
    w = csv.writer(out, quoting=csv.QUOTE_ALL if breaks or draw(st.booleans()) else csv.QUOTE_MINIMAL,
                   lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    w.writerow(cols)
    written, wheres = [], []
    for i, (units, name) in enumerate(cells):
        wheres.append(str(1 + len(_EOL.findall(out.getvalue()))))     # the line the row starts on
        row = {"job_id": str(5000 + i), **UNIT_LEDGER_ROW, "units": units, "unit_name": name}
        w.writerow([row[c] for c in cols])
        written.append((units if "units" in cols else "", name if "unit_name" in cols else ""))
    bom = "\ufeff" if draw(st.integers(0, 4)) == 0 else ""
    return UnitsLedger((bom + out.getvalue()).encode("utf-8"), written, wheres)


def yaml_quoted(text: str) -> str:
    """A YAML double-quoted scalar of exactly `text`, in ASCII (the YAML reader refuses some characters raw)."""
    out = []
    for ch in text:
        code = ord(ch)
        if 0x20 <= code < 0x7f and ch not in '"\\':
            out.append(ch)
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


_YAML_PLAIN = re.compile(r"-?[0-9A-Za-z.+][0-9A-Za-z.+-]*")


@st.composite
def yaml_value(draw: st.DrawFn, key: str, text: str) -> str:
    """`key: value` for a flow mapping: plain where YAML reads the same text back (the ledger reads every scalar as
    text), else double-quoted; an empty value absent, null or ""."""
    if not text:
        return draw(st.sampled_from(["", f"{key}: null", f"{key}: ~", f'{key}: ""']))
    plain = _YAML_PLAIN.fullmatch(text) and text not in ("null", "Null", "NULL") and draw(st.booleans())
    return f"{key}: {text if plain else yaml_quoted(text)}"


@st.composite
def units_ledger_yaml(draw: st.DrawFn) -> UnitsLedger:
    cells = draw(st.lists(UNIT_CELLS, min_size=1, max_size=5))
    under_jobs = draw(st.booleans())
    lines = ["jobs:"] if under_jobs else []
    wheres = []
    for i, (units, name) in enumerate(cells):
        wheres.append(f"{len(lines) + 1} (jobs[{i}])")
        keys = [f"job_id: '{5000 + i}'", *(f"{k}: {yaml_quoted(v)}" for k, v in UNIT_LEDGER_ROW.items()),
                draw(yaml_value("units", units)), draw(yaml_value("unit_name", name))]
        keys = [k for k in draw(st.permutations(keys)) if k]
        lines.append(("  - {" if under_jobs else "- {") + ", ".join(keys) + "}")
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    return UnitsLedger((eol.join(lines) + eol).encode("utf-8"), cells, wheres)


UNITS_LEDGERS: dict[str, Callable[[], st.SearchStrategy[UnitsLedger]]] = {"csv": units_ledger_csv,
                                                                          "yaml": units_ledger_yaml}


def check_units_import(path: Path, fmt: str, ledger: UnitsLedger) -> list[tuple[float | None, str]] | None:
    """Every row imported with exactly its units and name, or an InputError at file:line of the first bad row."""
    want = [expected_units(u, n) for u, n in ledger.cells]
    bad = next((i for i, w in enumerate(want) if w is None), None)
    try:
        result = read_jobs(path, fmt, default_cluster=None)
    except InputError as exc:
        check_error(exc, path)
        assert bad is not None, f"a ledger with valid units refused: {exc.message()}"
        assert exc.where == f"{path}:{ledger.wheres[bad]}", (exc.where, bad, ledger.cells[bad])
        assert "unit" in exc.message(), exc.message()
        return None
    assert bad is None, f"row {bad} imported: {ledger.cells[bad]!r}"
    for rec in result.records:
        check_job(rec)
    got = {r.job_id: (r.units, r.unit_name) for r in result.records}
    assert got == {ledger.job_id(i): w for i, w in enumerate(want)}
    return [w for w in want if w is not None]


# -- byte-level finishing: BOM, line endings, damage ----------------------------------------------

@st.composite
def finish(draw: st.DrawFn, text: str) -> bytes:
    """Encode, sometimes with a BOM or CRLF/CR line endings, and sometimes damage the bytes."""
    eol = draw(st.sampled_from(["\n", "\n", "\r\n", "\r"]))
    if eol != "\n":
        text = text.replace("\n", eol)
    data = text.encode("utf-8", "surrogatepass")    # a lone surrogate becomes bytes that are not UTF-8
    if draw(st.integers(0, 5)) == 0:
        data = b"\xef\xbb\xbf" + data
    return draw(damage(data))


@st.composite
def damage(draw: st.DrawFn, data: bytes, max_ops: int = 2) -> bytes:
    """Byte flips, inserted garbage, cut ranges, truncation, duplicated ranges; often nothing."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, max_ops)) if draw(st.booleans()) else 0):
        op = draw(st.sampled_from(["flip", "insert", "cut", "truncate", "repeat"]))
        i = draw(st.integers(0, len(buf)))
        if op == "flip" and buf:
            buf[min(i, len(buf) - 1)] = draw(st.integers(0, 255))
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"\x00", b"\r", b"\"", b"\xff",
                                                                               b"\xed\xa0\x80", b"\n\n"]))
        elif op == "cut":
            del buf[i:i + draw(st.integers(1, 16))]
        elif op == "truncate":
            del buf[i:]
        elif op == "repeat":
            buf[i:i] = buf[i:i + draw(st.integers(1, 64))]
    return bytes(buf)


# -- JSON mutation ---------------------------------------------------------------------------------

def _children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


@st.composite
def json_path(draw: st.DrawFn, doc: Any, hot: tuple[tuple[Any, ...], ...] = ()) -> tuple[Any, ...]:
    """A path to some node: one of the `hot` paths (where '*' picks an index) or a random walk from the root."""
    if hot and draw(st.booleans()):
        path: list[Any] = []
        node = doc
        for step in draw(st.sampled_from(hot)):
            if step == "*":
                if not isinstance(node, list) or not node:
                    break
                step = draw(st.integers(0, len(node) - 1))
            if isinstance(node, list) and not isinstance(step, int):
                break
            if not isinstance(node, dict | list) or (isinstance(node, dict) and step not in node):
                path.append(step)   # a missing key: the mutation adds it
                break
            path.append(step)
            node = node[step]
        return tuple(path)
    path = []
    node = doc
    while _children(node) and draw(st.integers(0, 3)) > 0:
        step = draw(st.sampled_from(_children(node)))
        path.append(step)
        node = node[step]
    return tuple(path)


@st.composite
def mutate_json(draw: st.DrawFn, base: Any, hot: tuple[tuple[Any, ...], ...] = (), max_ops: int = 3) -> Any:
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(0, max_ops))):
        path = draw(json_path(doc, hot))
        if not path:
            if draw(st.integers(0, 9)) == 0:
                doc = draw(ODD_JSON)
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        if not isinstance(parent, dict | list):
            continue
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "duplicate", "stringify"]))
        exists = isinstance(parent, dict) and key in parent or isinstance(parent, list) and 0 <= key < len(parent)
        if op == "delete" and exists:
            del parent[key]
        elif op == "duplicate" and exists and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "stringify" and exists and not isinstance(parent[key], dict | list):
            parent[key] = str(parent[key]) if parent[key] is not None else "null"
        elif isinstance(parent, dict) or exists:
            parent[key] = draw(ODD_JSON)
    return doc


def json_file(base: Any, hot: tuple[tuple[Any, ...], ...] = ()) -> st.SearchStrategy[bytes]:
    """A mutated JSON document, sometimes with text-level damage (truncation, deep nesting, duplicate keys)."""
    def text_of(draw: st.DrawFn) -> bytes:
        doc = draw(mutate_json(base, hot))
        text = json.dumps(doc, allow_nan=True, ensure_ascii=draw(st.booleans()))
        trick = draw(st.integers(0, 9))
        if trick == 0:
            text = "[" * draw(st.integers(500, 100_000)) + text
        elif trick == 1 and text.startswith("{"):
            text = '{"jobs": 1, "data": 1, "meta": 1, ' + text[1:]     # duplicate keys: the last one wins
        return draw(finish(text))
    return st.composite(text_of)()


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# -- job strategies --------------------------------------------------------------------------------

LEDGER_COLUMNS = ("job_id", "project", "phase", "cluster", "user", "start", "end", "nodes", "gpus", "units",
                  "unit_name")


@st.composite
def ledger_rows(draw: st.DrawFn, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        start = draw(GOOD_TIMES)
        end = start + timedelta(seconds=draw(st.integers(-3600, 10**7)))
        row: dict[str, Any] = {
            "job_id": str(draw(st.integers(1, 5)) if draw(st.booleans()) else 1000 + i),
            "project": draw(st.sampled_from(["llm", "vision", "\u00e9\u6f22", "a;b"])),
            "phase": draw(st.sampled_from(["", *PHASES, "Pretraining"])),
            "cluster": draw(st.sampled_from(["c1", "", "jean-zay"])),
            "user": "ana", "start": instant_text(start, draw(st.integers(0, 2))),
            "end": "" if draw(st.integers(0, 4)) == 0 else instant_text(end, draw(st.integers(0, 2))),
            "nodes": draw(st.sampled_from(["", "gpu01", "gpu[01-04]", "gpu[01-02,07],cpu7", "a[1-2]-b[3-4]"])),
            "gpus": draw(st.sampled_from(["", "0", "4", "8"])),
            "units": draw(UNITS_TEXT), "unit_name": draw(UNIT_NAMES),      # often both empty: units on some rows
        }
        for col in draw(st.sets(st.sampled_from(LEDGER_COLUMNS), max_size=3)):
            row[col] = draw(ODD_TEXT)
        rows.append({c: row[c] for c in columns if c in row})
    if rows and draw(st.integers(0, 3)) == 0:                       # a repeated job: identical or not
        again = dict(draw(st.sampled_from(rows)))
        if draw(st.booleans()):
            col = draw(st.sampled_from(list(again)))
            again[col] = draw(ODD_TEXT)
        rows.insert(draw(st.integers(0, len(rows))), again)
    return rows


@st.composite
def ledger_columns(draw: st.DrawFn) -> tuple[str, ...]:
    cols = list(LEDGER_COLUMNS)
    for op in draw(st.lists(st.sampled_from(["drop", "repeat", "extra", "shuffle"]), max_size=2)):
        if op == "drop" and cols:
            cols.remove(draw(st.sampled_from(cols)))
        elif op == "repeat" and cols:
            cols.append(draw(st.sampled_from(cols)))
        elif op == "extra":
            cols.insert(draw(st.integers(0, len(cols))), draw(st.sampled_from(["colour", "", "JOB_ID ", "Start"])
                                                               | st.text(max_size=6)))
        elif op == "shuffle":
            cols = draw(st.permutations(cols))
    return tuple(cols)


@st.composite
def ledger_csv(draw: st.DrawFn) -> bytes:
    header = draw(ledger_columns())
    rows = draw(ledger_rows(tuple(dict.fromkeys(header))))
    out = io.StringIO()
    how = draw(st.sampled_from(["minimal", "all", "raw"]))
    if how == "raw":                                                    # no quoting: commas and quotes break rows
        out.write(",".join(header) + "\n")
        for row in rows:
            out.write(",".join(str(row.get(c, "")) for c in header) + "\n")
    else:
        w = csv.writer(out, quoting=csv.QUOTE_ALL if how == "all" else csv.QUOTE_MINIMAL, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            cells = [row.get(c, "") for c in header]
            if draw(st.integers(0, 9)) == 0:                            # a short or long row
                cells = cells[:-1] if draw(st.booleans()) else [*cells, "extra"]
            w.writerow(cells)
    return draw(finish(out.getvalue()))


YAML_ODD = st.one_of(ODD_TEXT, st.integers(), st.floats(), st.none(), st.booleans(), st.datetimes(timezones=TIMEZONES),
                     st.lists(ODD_TEXT, max_size=3), st.dictionaries(st.text(max_size=5), ODD_TEXT, max_size=2))
YAML_TRICKS = [
    "jobs: &a [*a]\n",
    "- &a {job_id: *a}\n",
    "- job_id: 1\n  job_id: 2\n",
    "- job_id: 1\n  JOB_ID: 2\n",
    "- {job_id: !!binary aGVsbG8=, project: p, start: '2024-03-01T00:00:00Z', end: ''}\n",
    "- {job_id: !!python/object/apply:os.system ['true'], project: p}\n",
    "- {job_id: 1, project: p, start: !!timestamp 2024-03-01, end: ''}\n",
    "- {job_id: 1, project: p, start: '2024-03-01T00:00:00Z', end: !!int 5}\n",
    "- {job_id: 1, project: !!set {a, b}, start: '2024-03-01T00:00:00Z', end: ''}\n",
    "- ? [a]\n  : b\n",
    "- ? {a: 1}\n  : b\n",
    "- <<: *nothing\n",
    "- base: &b {job_id: 1, project: p}\n",
    "- {<<: {job_id: 1, project: p, start: '2024-03-01T00:00:00Z', end: ''}, cluster: c1}\n",
    "--- []\n--- []\n",
    "%YAML 1.1\n---\n[]\n",
    "%TAG ! tag:x,2000:\n--- !foo []\n",
    "jobs:\n",
    "jobs: 5\n",
    "jobs: {a: 1}\n",
    "[" * 3000 + "]" * 3000 + "\n",
    "- " * 3000 + "x\n",
    "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n",
    "\t- a\n",
    "- \x00\n",
    "- \x85\n",
    "- \"\\ud800\"\n",
    "- {job_id: \"\\udc00\", project: p, start: '2024-03-01T00:00:00Z', end: ''}\n",
]


@st.composite
def ledger_yaml(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 5)) == 0:
        return draw(finish(draw(st.sampled_from(YAML_TRICKS))))
    rows = draw(ledger_rows(LEDGER_COLUMNS))
    items: list[Any] = []
    for row in rows:
        item: dict[Any, Any] = {k: v for k, v in row.items() if v != "" or draw(st.booleans())}
        for key in draw(st.sets(st.sampled_from([*LEDGER_COLUMNS, "colour", "Start"]), max_size=2)):
            item[key] = draw(YAML_ODD)
        items.append(item if draw(st.integers(0, 19)) else draw(YAML_ODD))
    doc: Any = {"jobs": items} if draw(st.booleans()) else items
    text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), default_flow_style=draw(st.sampled_from([None,
                                                                                                       False, True])))
    if draw(st.integers(0, 5)) == 0:
        text += draw(st.sampled_from(YAML_TRICKS))
    return draw(finish(text))


SACCT_BASES = [_load("slurm/clockwork_sacct_1.json"), _load("slurm/sacct_v0041_constructed.json")]
SACCT_HOT = (
    ("jobs", "*", "job_id"), ("jobs", "*", "time", "start"), ("jobs", "*", "time", "end"),
    ("jobs", "*", "time", "elapsed"), ("jobs", "*", "state", "current"), ("jobs", "*", "state"),
    ("jobs", "*", "tres", "allocated", "*", "count"), ("jobs", "*", "tres", "allocated", "*", "name"),
    ("jobs", "*", "tres", "allocated"), ("jobs", "*", "cluster"), ("jobs", "*", "account"),
    ("jobs", "*", "association", "account"), ("jobs", "*", "association", "cluster"), ("jobs", "*", "nodes"),
    ("jobs", "*", "wckey"), ("jobs", "*", "wckey", "wckey"), ("jobs", "*", "comment"), ("jobs", "*", "comment", "job"),
    ("jobs", "*", "user"), ("jobs", "*", "name"), ("jobs", "*"), ("jobs",), ("errors",), ("errors", "*"),
    ("jobs", "*", "time", "start", "number"), ("jobs", "*", "time", "end", "set"), ("jobs", "*", "job_id", "number"),
)


@st.composite
def sacct_json(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(SACCT_BASES))
    if draw(st.booleans()):                                              # jobs repeated: requeues, conflicts
        base = {**base, "jobs": [*base["jobs"], *draw(st.lists(st.sampled_from(base["jobs"]), max_size=2))]}
    return draw(json_file(base, SACCT_HOT))


PARSABLE_COLUMNS = ("JobID", "JobIDRaw", "JobName", "Account", "WCKey", "Comment", "User", "Start", "End", "NodeList",
                    "AllocTRES", "State", "Cluster", "Elapsed")


@st.composite
def sacct_time(draw: st.DrawFn, dt: datetime) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return str(int(dt.timestamp()))
    if kind == 1:
        return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
    if kind == 2:
        return dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    return draw(st.sampled_from(["Unknown", "None", "", "0"]))


@st.composite
def sacct_parsable(draw: st.DrawFn) -> bytes:
    cols = [c for c in PARSABLE_COLUMNS if c in ("JobID", "Start", "End") or draw(st.booleans())]
    for op in draw(st.lists(st.sampled_from(["drop", "repeat", "extra", "shuffle", "case"]), max_size=2)):
        if op == "drop":
            cols.remove(draw(st.sampled_from(cols)))
        elif op == "repeat":
            cols.append(draw(st.sampled_from(cols)))
        elif op == "extra":
            cols.append(draw(st.sampled_from(["Partition", "", "ReqTRES"]) | st.text(max_size=5)))
        elif op == "shuffle":
            cols = list(draw(st.permutations(cols)))
        elif op == "case" and cols:
            i = draw(st.integers(0, len(cols) - 1))
            cols[i] = cols[i].upper()
    if not cols:
        cols = ["JobID"]
    trailing = draw(st.booleans())
    lines = ["|".join(cols) + ("|" if trailing else "")]
    for i in range(draw(st.integers(0, 4))):
        start = draw(GOOD_TIMES)
        end = start + timedelta(seconds=draw(st.integers(-3600, 10**6)))
        jid = str(2000 + draw(st.integers(0, 3)))
        values = {
            "jobid": draw(st.sampled_from([jid, f"{jid}_4", f"{jid}.batch", f"{jid}.0", f"{jid}_[1-3]"])),
            "jobidraw": str(3000 + i), "jobname": "train", "account": draw(st.sampled_from(["llm", ""])),
            "wckey": draw(st.sampled_from(["", "pretraining", "phase=finetuning", "phase=bogus"])),
            "comment": draw(st.sampled_from(["", "phase=inference;x=1"])), "user": "ana",
            "start": draw(sacct_time(start)), "end": draw(sacct_time(end)),
            "nodelist": draw(st.sampled_from(["gpu[01-02]", "None assigned", "gpu03", "(null)"])),
            "alloctres": draw(st.sampled_from(["billing=8,cpu=8,gres/gpu=4,node=1", "cpu=4",
                                               "gres/gpu:h100=3,gres/gpu:a100=2,node=2", ""])),
            "state": draw(st.sampled_from(["COMPLETED", "RUNNING", "PENDING", "NODE_FAIL", "CANCELLED by 0",
                                           "FAILED"])),
            "cluster": draw(st.sampled_from(["jz", ""])), "elapsed": draw(st.sampled_from(["01:00:00", "2-03:04:05",
                                                                                        "", "00:00"])),
        }
        for col in draw(st.sets(st.sampled_from(list(values)), max_size=3)):
            values[col] = draw(ODD_TEXT).replace("\n", " ").replace("\r", " ")
        cells = [values.get(c.strip().lower(), "") for c in cols]
        if draw(st.integers(0, 9)) == 0:
            cells.append("x|y")
        lines.append("|".join(cells) + ("|" if trailing else ""))
    return draw(finish("\n".join(lines) + "\n"))


# -- intensity strategies --------------------------------------------------------------------------

GENERIC_COLUMNS = ("timestamp", "zone", "intensity_g_per_kwh")
INTENSITY_VALUES = st.one_of(st.floats(0, 1200).map(lambda x: f"{x:.2f}"), st.integers(0, 900).map(str),
                             NUMBERS, st.sampled_from(ODD_STRINGS))


@st.composite
def generic_csv(draw: st.DrawFn) -> bytes:
    cols = list(GENERIC_COLUMNS)
    for op in draw(st.lists(st.sampled_from(["drop", "repeat", "extra", "shuffle", "case"]), max_size=2)):
        if op == "drop":
            cols.remove(draw(st.sampled_from(cols)))
        elif op == "repeat":
            cols.append(draw(st.sampled_from(cols)))
        elif op == "extra":
            cols.append(draw(st.sampled_from(["source", "", " zone "])))
        elif op == "shuffle":
            cols = list(draw(st.permutations(cols)))
        elif op == "case" and cols:
            i = draw(st.integers(0, len(cols) - 1))
            cols[i] = cols[i].upper()
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(cols)
    t0 = draw(GOOD_TIMES).replace(minute=0, second=0, microsecond=0)
    for i in range(draw(st.integers(0, 5))):
        hour = t0 + timedelta(hours=draw(st.sampled_from([i, i, i, 0]))) + timedelta(
            minutes=draw(st.sampled_from([0, 0, 0, 30])))
        row = {"timestamp": instant_text(hour, draw(st.integers(0, 2))),
               "zone": draw(st.sampled_from(["FR", "FR", "DE", "", " FR "])),
               "intensity_g_per_kwh": draw(INTENSITY_VALUES)}
        for col in draw(st.sets(st.sampled_from(GENERIC_COLUMNS), max_size=2)):
            row[col] = draw(ODD_TEXT)
        w.writerow([row.get(c.strip().lower(), "") for c in cols])
    return draw(finish(out.getvalue()))


EM_CSV_BASES = [list(csv.reader(io.StringIO((FIXTURES / "intensity" / name).read_text(encoding="utf-8"))))
                for name in ("electricitymaps_hourly_DE_2023-01-01_constructed.csv",
                             "electricitymaps_hourly_FR_2021-06-01_older_header_constructed.csv")]


@st.composite
def em_csv(draw: st.DrawFn) -> bytes:
    table = [list(r) for r in draw(st.sampled_from(EM_CSV_BASES))]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["cell", "cell", "cell", "drop_col", "dup_row", "drop_row", "header"]))
        r = draw(st.integers(0, len(table) - 1))
        c = draw(st.integers(0, len(table[0]) - 1))
        if op == "cell" and c < len(table[r]):
            table[r][c] = draw(ODD_TEXT | INTENSITY_VALUES)
        elif op == "drop_col":
            for row in table:
                if c < len(row):
                    del row[c]
        elif op == "dup_row":
            table.insert(r, list(table[r]))
        elif op == "drop_row" and len(table) > 1:
            del table[r]
        elif op == "header" and c < len(table[0]):
            table[0][c] = draw(st.sampled_from(["Datetime (UTC)", "Zone id", "Data estimated", "",
                                                "Carbon intensity gCO2eq/kWh (direct)"]))
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(table)
    return draw(finish(out.getvalue()))


EM_JSON_BASES = [_load("intensity/aioelectricitymaps_carbon_intensity_history.json"),
                 _load("intensity/aioelectricitymaps_latest_carbon_intensity.json")]
EM_HOT = (("history", "*", "datetime"), ("history", "*", "carbonIntensity"), ("history", "*", "emissionFactorType"),
          ("history", "*", "temporalGranularity"), ("history", "*", "zone"), ("history", "*", "isEstimated"),
          ("history", "*"), ("history",), ("zone",), ("datetime",), ("carbonIntensity",), ("temporalGranularity",),
          ("data",), ("history", "*", "estimationMethod"))
UK_BASES = [_load("intensity/nmpowell_national_pt24h_2023-03-14T1201Z.json"),
            _load("intensity/uk_regional_regionid13_constructed.json")]
UK_BASES.append({"data": [UK_BASES[1]["data"], {**UK_BASES[1]["data"], "regionid": 14}]})
UK_HOT = (("data", "*", "from"), ("data", "*", "to"), ("data", "*", "intensity", "actual"),
          ("data", "*", "intensity", "forecast"), ("data", "*", "intensity"), ("data", "*"), ("data",),
          ("data", "data", "*", "from"), ("data", "data", "*", "to"), ("data", "data", "*", "intensity", "forecast"),
          ("data", "regionid"), ("data", "data"), ("data", "*", "regionid"), ("data", "*", "data", "*", "from"))
WT_BASES = [_load("intensity/aiowatttime_historical_emissions_response.json")]
WT_HOT = (("data", "*", "point_time"), ("data", "*", "value"), ("data", "*"), ("data",), ("meta", "units"),
          ("meta", "region"), ("meta", "signal_type"), ("meta", "data_point_period_seconds"), ("meta",),
          ("data", "*", "imputed_data_used"))


def intensity_json(bases: list[Any], hot: tuple[tuple[Any, ...], ...]) -> st.SearchStrategy[bytes]:
    return st.sampled_from(bases).flatmap(lambda base: json_file(base, hot))


STRUCTURED_JOBS: dict[str, Callable[[], st.SearchStrategy[bytes]]] = {
    "csv": ledger_csv, "yaml": ledger_yaml, "sacct-json": sacct_json, "sacct-parsable": sacct_parsable}
STRUCTURED_INTENSITY: dict[str, Callable[[], st.SearchStrategy[bytes]]] = {
    "csv": generic_csv, "electricitymaps-csv": em_csv,
    "electricitymaps-json": lambda: intensity_json(EM_JSON_BASES, EM_HOT),
    "uk-json": lambda: intensity_json(UK_BASES, UK_HOT),
    "watttime-json": lambda: intensity_json(WT_BASES, WT_HOT),
}
FIXTURE_BYTES = {
    "csv": [b"job_id,project,phase,cluster,user,start,end,nodes,gpus\n42,p,pretraining,c1,u,2024-03-01T00:00:00Z,"
            b"2024-03-01T01:00:00Z,\"gpu[01-02]\",4\n",
            b"job_id,project,cluster,start,end,units,unit_name\n42,p,c1,2024-03-01T00:00:00Z,2024-03-01T01:00:00Z,"
            b"3.2e9,tokens\n43,p,c1,2024-03-01T00:00:00Z,2024-03-01T02:00:00Z,,\n"],
    "yaml": [b"jobs:\n  - {job_id: '42', project: p, start: '2024-03-01T00:00:00Z', end: '', nodes: [gpu01]}\n",
             b"- {job_id: '42', project: p, start: '2024-03-01T00:00:00Z', end: '2024-03-01T01:00:00Z', units: 5.0e+8,"
             b" unit_name: tokens}\n- {job_id: '43', project: p, start: '2024-03-01T00:00:00Z', end: ''}\n"],
    "sacct-json": [(FIXTURES / "slurm" / n).read_bytes() for n in ("clockwork_sacct_1.json",
                                                                  "sacct_v0041_constructed.json")],
    "sacct-parsable": [b"JobID|JobIDRaw|Account|Start|End|NodeList|AllocTRES|State|Cluster\n"
                       b"7_1|8|llm|2024-03-01T10:00:00|2024-03-01T12:00:00|gpu[01-02]|gres/gpu=8|COMPLETED|jz\n"],
    "electricitymaps-csv": [(FIXTURES / "intensity" / "electricitymaps_hourly_DE_2023-01-01_constructed.csv")
                            .read_bytes()],
    "electricitymaps-json": [(FIXTURES / "intensity" / "aioelectricitymaps_carbon_intensity_history.json")
                             .read_bytes()],
    "uk-json": [(FIXTURES / "intensity" / n).read_bytes() for n in ("nmpowell_national_pt24h_2023-03-14T1201Z.json",
                                                                   "uk_regional_regionid13_constructed.json")],
    "watttime-json": [(FIXTURES / "intensity" / "aiowatttime_historical_emissions_response.json").read_bytes()],
    "intensity-csv": [b"timestamp,zone,intensity_g_per_kwh\n2024-03-01T00:00:00Z,FR,42\n"
                      b"2024-03-01T01:00:00+01:00,FR,43.5\n"],
}


def raw_input(key: str) -> st.SearchStrategy[bytes]:
    """Random bytes, random text, or a fixture with its bytes damaged."""
    return st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(lambda t: t.encode("utf-8")),
        st.sampled_from(FIXTURE_BYTES[key]).flatmap(lambda data: damage(data, max_ops=6)),
    )


JOB_CLUSTERS = st.sampled_from([None, None, "c1", " ", "\u00e9\u6f22"])
TZ_NAMES = st.sampled_from([None, None, "UTC", "Europe/Paris", "America/New_York", "Mars/Olympus", "", "../etc",
                            "/etc/passwd", "Europe/Paris\x00", "x" * 300])
ZONES = st.sampled_from([None, None, "FR", " DE ", "", "   ", "GB-13", "\u00e9\u6f22"])
BASES = st.sampled_from([None, None, "lifecycle", "direct", "marginal", "LIFECYCLE", "", "bogus"])


# -- parser properties: structured-but-perturbed ---------------------------------------------------

@pytest.mark.parametrize("fmt", JOB_FORMATS)
@fuzz(250)
@given(data=st.data())
def test_job_files_import_or_name_the_file(workdir: Path, fmt: str, data: st.DataObject) -> None:
    ran(f"job_files_import_or_name_the_file[{fmt}]")
    content = data.draw(STRUCTURED_JOBS[fmt](), label="file")
    cluster = data.draw(JOB_CLUSTERS, label="cluster")
    tz = data.draw(TZ_NAMES, label="timezone") if fmt == "sacct-parsable" else None
    with input_file(workdir, content, "." + fmt) as path:
        import_jobs(path, fmt, cluster=cluster, timezone_=tz)


@pytest.mark.parametrize("fmt", sorted(UNITS_LEDGERS))
@fuzz(250)
@given(data=st.data())
def test_ledger_units_import_exactly_or_name_the_first_bad_line(workdir: Path, fmt: str, data: st.DataObject) -> None:
    ran(f"ledger_units_import_exactly_or_name_the_first_bad_line[{fmt}]")
    ledger = data.draw(UNITS_LEDGERS[fmt](), label="ledger")
    with input_file(workdir, ledger.data, "." + fmt) as path:
        check_units_import(path, fmt, ledger)


@pytest.mark.parametrize("fmt", INTENSITY_FORMATS)
@fuzz(250)
@given(data=st.data())
def test_intensity_files_import_or_name_the_file(workdir: Path, fmt: str, data: st.DataObject) -> None:
    ran(f"intensity_files_import_or_name_the_file[{fmt}]")
    content = data.draw(STRUCTURED_INTENSITY[fmt](), label="file")
    zone = data.draw(ZONES, label="zone")
    basis = data.draw(BASES, label="basis")
    with input_file(workdir, content, ".in") as path:
        import_intensity(path, fmt, zone=zone, basis=basis)


# -- parser properties: raw bytes and damaged fixtures ---------------------------------------------

@pytest.mark.parametrize("fmt", JOB_FORMATS)
@fuzz(150)
@given(data=st.data())
def test_raw_bytes_as_job_files(workdir: Path, fmt: str, data: st.DataObject) -> None:
    ran(f"raw_bytes_as_job_files[{fmt}]")
    content = data.draw(raw_input(fmt), label="file")
    with input_file(workdir, content, ".bin") as path:
        import_jobs(path, fmt, cluster=data.draw(JOB_CLUSTERS, label="cluster"),
                    timezone_="UTC" if fmt == "sacct-parsable" and data.draw(st.booleans()) else None)


@pytest.mark.parametrize("fmt", INTENSITY_FORMATS)
@fuzz(150)
@given(data=st.data())
def test_raw_bytes_as_intensity_files(workdir: Path, fmt: str, data: st.DataObject) -> None:
    ran(f"raw_bytes_as_intensity_files[{fmt}]")
    content = data.draw(raw_input("intensity-csv" if fmt == "csv" else fmt), label="file")
    with input_file(workdir, content, ".bin") as path:
        import_intensity(path, fmt, zone=data.draw(ZONES, label="zone"), basis=None)


# -- the CLI end to end: exit 0, or exit 2 with one line and nothing stored changed ---------------

TABLES = {
    "jobs": "SELECT * FROM jobs ORDER BY ALL",
    "job_nodes": "SELECT * FROM job_nodes ORDER BY ALL",
    "intensity_hourly": "SELECT * FROM intensity_hourly ORDER BY ALL",
    "intensity_points": "SELECT * FROM intensity_points ORDER BY ALL",
    "marginal_hourly": "SELECT * FROM marginal_hourly ORDER BY ALL",
    "marginal_points": "SELECT * FROM marginal_points ORDER BY ALL",
    "fct_job_gpu_hour": "SELECT * FROM fct_job_gpu_hour ORDER BY ALL",
}


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {name: con.execute(sql).fetchall() for name, sql in TABLES.items()}
    finally:
        con.close()


def stored_units(path: Path) -> dict[tuple[str, str], tuple[float | None, str | None]]:
    """(cluster, job_id) -> (units, unit_name) as stored (migration 0009's columns)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {(c, j): (u, n) for c, j, u, n in con.execute("SELECT cluster, job_id, units, unit_name FROM jobs")
                .fetchall()}
    finally:
        con.close()


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def no_env() -> Iterator[None]:
    """No config or database from the environment: the CLI runs with its defaults."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("WATTPRINT_CONFIG", raising=False)
        mp.delenv("WATTPRINT_DB", raising=False)
        yield


class Seed:
    """The seeded database file and its tables (a short repr, for hypothesis' failure reports)."""

    def __init__(self, path: Path, tables: dict[str, list[tuple[Any, ...]]]) -> None:
        self.path, self.tables = path, tables

    def __repr__(self) -> str:
        return f"Seed({self.path.name})"


@pytest.fixture(scope="module")
def seeded(workdir: Path, no_env: None) -> Seed:
    """A database with jobs, nodes, intensity hours and exporter energy, and its tables."""
    from tests.modelkit import add_series
    from wattprint.pipeline import db

    path = workdir / "seed.duckdb"
    con = db.connect(path)
    base = {"cluster": "c1", "hostname": "gpu01", "uuid": "GPU-x"}
    add_series(con, "wattprint", "job_energy", {**base, "gpu": "0", "job_id": "42"}, [(0, 0), (60, 3.6e6)])
    add_series(con, "wattprint", "job_energy", {**base, "gpu": "1", "job_id": "1001"}, [(0, 0), (60, 7.2e6)])
    con.close()
    ledger = workdir / "seed.csv"
    ledger.write_text("job_id,project,phase,cluster,user,start,end,nodes,gpus\n"
                      "42,kept,pretraining,c1,u,2024-03-01T00:00:00Z,2024-03-01T02:00:00Z,\"gpu[01-02]\",4\n"
                      "1001,kept,inference,c1,u,2024-03-01T00:00:00Z,,gpu01,\n"
                      "10,kept,evaluation,cedar,u,2023-03-30T00:00:00Z,,cdr1,1\n")
    assert run_cli(["jobs", "import", str(ledger), "--format", "csv", "--db", str(path), "-q"])[0] == 0
    for fixture, fmt in (("aioelectricitymaps_carbon_intensity_history.json", "electricitymaps-json"),
                         ("nmpowell_national_pt24h_2023-03-14T1201Z.json", "uk-json")):
        rc = run_cli(["intensity", "import", str(FIXTURES / "intensity" / fixture), "--format", fmt,
                      "--db", str(path), "-q"])[0]
        assert rc == 0
    inten = workdir / "seed-fr.csv"
    inten.write_text("timestamp,zone,intensity_g_per_kwh\n" + "".join(
        f"2024-03-01T{h:02d}:00:00Z,FR,{40 + h}\n" for h in range(3)))
    assert run_cli(["intensity", "import", str(inten), "--format", "csv", "--db", str(path), "-q"])[0] == 0
    snap = tables(path)
    assert snap["jobs"] and snap["job_nodes"] and snap["intensity_hourly"] and snap["fct_job_gpu_hour"]
    return Seed(path, snap)


def check_cli(verb: str, rc: int, out: str, err: str, dbfile: Path, before: dict[str, list[tuple[Any, ...]]]) -> bool:
    assert "Traceback" not in err and "Traceback" not in out
    assert rc in (0, 2), (rc, err)
    if rc == 0:
        return True
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err
    assert errors[0].startswith(f"wattprint {verb} import: error: "), err
    assert err.splitlines() == errors, f"a refused import prints only its error line: {err!r}"
    assert tables(dbfile) == before, "a refused import changed stored data"
    return False


def job_cases() -> st.SearchStrategy[tuple[str, bytes]]:
    return st.sampled_from(JOB_FORMATS).flatmap(
        lambda fmt: st.tuples(st.just(fmt), STRUCTURED_JOBS[fmt]() | raw_input(fmt)))


def intensity_cases() -> st.SearchStrategy[tuple[str, bytes]]:
    return st.sampled_from(INTENSITY_FORMATS).flatmap(
        lambda fmt: st.tuples(st.just(fmt), STRUCTURED_INTENSITY[fmt]() | raw_input("intensity-csv" if fmt == "csv"
                                                                                     else fmt)))


@fuzz(40)
@given(case=job_cases(), cluster=st.sampled_from([None, "c1", "cedar"]),
       tz=st.sampled_from([None, "UTC", "Europe/Paris"]))
def test_cli_jobs_import_is_all_or_nothing(workdir: Path, seeded: Seed, no_env: None,
                                           case: tuple[str, bytes], cluster: str | None, tz: str | None) -> None:
    ran("cli_jobs_import_is_all_or_nothing")
    fmt, content = case
    seed, before = seeded.path, seeded.tables
    dbfile = workdir / f"db{next(_SEQ)}.duckdb"
    shutil.copyfile(seed, dbfile)
    try:
        with input_file(workdir, content, "." + fmt) as path:
            argv = ["jobs", "import", str(path), "--format", fmt, "--db", str(dbfile), "-q"]
            argv += ["--cluster", cluster] if cluster else []
            argv += ["--timezone", tz] if tz and fmt == "sacct-parsable" else []
            rc, out, err = run_cli(argv)
            if not check_cli("jobs", rc, out, err, dbfile, before):
                return
            records = read_jobs(path, fmt, default_cluster=cluster or load_settings(None).default_cluster,
                                timezone=tz if fmt == "sacct-parsable" else None).records
        after = tables(dbfile)
        stored = {(r[0], r[1]): r for r in after["jobs"]}
        units = stored_units(dbfile)
        for rec in records:                     # every job of the file, as parsed
            row = stored[(rec.cluster, rec.job_id)]
            assert (row[2], row[3], row[7], row[8]) == (rec.project, rec.phase, rec.start, rec.end)
            assert units[(rec.cluster, rec.job_id)] == (rec.units, rec.unit_name or None)
        imported = {(r.cluster, r.job_id) for r in records}
        for row in before["jobs"]:              # and every other job as it was
            if (row[0], row[1]) not in imported:
                assert stored[(row[0], row[1])] == row
    finally:
        dbfile.unlink(missing_ok=True)


@pytest.mark.parametrize("fmt", sorted(UNITS_LEDGERS))
@fuzz(30)
@given(data=st.data())
def test_cli_ledger_units_are_stored_exactly_or_not_at_all(workdir: Path, seeded: Seed, no_env: None, fmt: str,
                                                          data: st.DataObject) -> None:
    ran(f"cli_ledger_units_are_stored_exactly_or_not_at_all[{fmt}]")
    ledger = data.draw(UNITS_LEDGERS[fmt](), label="ledger")
    want = [expected_units(u, n) for u, n in ledger.cells]
    dbfile = workdir / f"db{next(_SEQ)}.duckdb"
    shutil.copyfile(seeded.path, dbfile)
    try:
        with input_file(workdir, ledger.data, "." + fmt) as path:
            rc, out, err = run_cli(["jobs", "import", str(path), "--format", fmt, "--db", str(dbfile), "-q"])
        if not check_cli("jobs", rc, out, err, dbfile, seeded.tables):     # refused: nothing stored changed
            assert None in want, f"a ledger with valid units refused: {err}"
            return
        assert None not in want, f"a bad row stored: {ledger.cells}"
        units = stored_units(dbfile)
        for i, w in enumerate(want):
            assert w is not None
            assert units[("c1", ledger.job_id(i))] == (w[0], w[1] or None)
    finally:
        dbfile.unlink(missing_ok=True)


@fuzz(40)
@given(case=intensity_cases(), zone=st.sampled_from([None, "FR", "DE"]),
       basis=st.sampled_from([None, "lifecycle", "direct"]))
def test_cli_intensity_import_is_all_or_nothing(workdir: Path, seeded: Seed, no_env: None,
                                                case: tuple[str, bytes], zone: str | None, basis: str | None) -> None:
    ran("cli_intensity_import_is_all_or_nothing")
    fmt, content = case
    seed, before = seeded.path, seeded.tables
    dbfile = workdir / f"db{next(_SEQ)}.duckdb"
    shutil.copyfile(seed, dbfile)
    try:
        with input_file(workdir, content, ".in") as path:
            argv = ["intensity", "import", str(path), "--format", fmt, "--db", str(dbfile), "-q"]
            argv += ["--zone", zone] if zone else []
            argv += ["--basis", basis] if basis else []
            rc, out, err = run_cli(argv)
            if not check_cli("intensity", rc, out, err, dbfile, before):
                return
            points = check_points(parse(path, fmt, zone=zone, basis=basis).points)
        after = tables(dbfile)
        touched: set[tuple[str, str, datetime]] = set()
        for p in points:                        # each point's hours, in its signal's table (store.SIGNAL_TABLES)
            hourly = SIGNAL_TABLES[intensity_signal(p.basis)][1]
            hours = {(r[0], r[1]) for r in after[hourly]}
            h = p.start.replace(minute=0, second=0, microsecond=0)
            while h < p.end:
                assert (p.zone, h) in hours
                touched.add((hourly, p.zone, h))
                h += timedelta(hours=1)
        for hourly in ("intensity_hourly", "marginal_hourly"):     # every other hour of either signal as it was
            kept = {(r[0], r[1]): r for r in after[hourly]}
            for row in before[hourly]:
                if (hourly, row[0], row[1]) not in touched:
                    assert kept[(row[0], row[1])] == row
    finally:
        dbfile.unlink(missing_ok=True)


# -- found by this fuzzing: the minimal inputs, kept as regression tests --------------------------
# Each raised something other than InputError (a traceback in the CLI), stored nonsense, or printed a raw
# control character, before the fix named in the comment.

LEDGER = "job_id,project,phase,cluster,user,start,end,nodes,gpus\n"
SACCT_JOB = {"job_id": 5, "cluster": "c", "account": "a", "state": {"current": ["COMPLETED"]},
             "time": {"start": 1709283600, "end": 1709290800, "elapsed": 7200}}


def sacct_doc(**changes: Any) -> str:
    job = copy.deepcopy(SACCT_JOB)
    for key, value in changes.items():
        if key.startswith("time_"):
            job["time"][key[5:]] = value
        else:
            job[key] = value
    return json.dumps({"jobs": [job]})


JOB_REGRESSIONS = {
    # timeutil.to_utc: astimezone overflowed (OverflowError)
    "offset before year 1": ("csv", LEDGER + "1,p,,c,u,0001-01-01T00:00:00+01:00,,,\n", {}, ":2 start",
                             "out of range"),
    # read_jobs: a blank --cluster was a cluster named ' '
    "blank --cluster": ("csv", LEDGER + "1,p,,,u,2024-03-01T00:00:00Z,,,\n", {"default_cluster": " "}, ":2",
                        "has no cluster"),
    # ledger._gpus: overflowed the INT32 column on insert (pyarrow error)
    "gpus beyond any node": ("csv", LEDGER + "1,p,,c,u,2024-03-01T00:00:00Z,,n1,99999999999\n", {}, ":2",
                             "more than any node"),
    # hostlist: int() refuses more than 4300 digits (ValueError)
    "hostlist of 5000 digits": ("csv", LEDGER + f'1,p,,c,u,2024-03-01T00:00:00Z,,"n[{"9" * 5000}]",\n', {},
                                ":2 nodes", "not a number or a range"),
    # yamlmarks: the reader's ReaderError escaped, its message on two lines
    "yaml NUL": ("yaml", "- \x00\n", {}, ":1", "character #x0000"),
    # yamlmarks: PyYAML's scanner is quadratic in flow nesting, then RecursionError
    "yaml deep flow": ("yaml", "[" * 3000, {}, ":1", "nested deeper than 100"),
    "yaml deep block": ("yaml", "- " * 3000 + "x\n", {}, "", "nested too deeply"),
    # yamlmarks: an alias inside its own anchor recursed forever (RecursionError)
    "yaml recursive alias": ("yaml", "jobs: &a [*a]\n", {}, ":1", "refers to itself"),
    # yamlmarks: an explicit tag PyYAML cannot build raised ValueError / AttributeError from its constructor
    "yaml bad !!timestamp month": ("yaml", "- {start: !!timestamp '2000-0-01 00:00:00'}\n", {}, ":1",
                                   "cannot be read as timestamp"),
    "yaml bad !!timestamp shape": ("yaml", "- {start: !!timestamp 2000-01-01 00:00:00'}\n", {}, ":1",
                                   "cannot be read as timestamp"),
    "yaml bad !!int": ("yaml", "- {gpus: !!int x}\n", {}, ":1", "cannot be read as int"),
    # yamlmarks: a lone surrogate escape reached pyarrow (UnicodeEncodeError on insert)
    "yaml lone surrogate": ("yaml", '- {job_id: "\\ud800"}\n', {}, ":1", "lone surrogate"),
    # sacct.parse_json_text: RecursionError / ValueError escaped json.loads
    "sacct json nested 100000 deep": ("sacct-json", "[" * 100_000, {}, "", "nested too deeply"),
    "sacct json 5000-digit integer": ("sacct-json", '{"jobs": [' + "1" * 5000 + "]}", {}, "", "invalid JSON"),
    "sacct json lone surrogate": ("sacct-json", sacct_doc(account="\ud800"), {}, "", "lone surrogate"),
    # sacct: iterating a JSON true (TypeError)
    "sacct errors not a list": ("sacct-json", '{"jobs": [], "errors": true}', {}, " errors", "not a list"),
    "sacct tres.allocated not a list": ("sacct-json", sacct_doc(tres={"allocated": True}), {}, "tres.allocated",
                                        "expected a list"),
    # sacct JSON: stored silently before (only the parsable path compared the times)
    "sacct end before start": ("sacct-json", sacct_doc(time_end=1709280000), {}, "(job 5)", "before it starts"),
    "sacct negative elapsed": ("sacct-json", sacct_doc(time_end=0, time_elapsed=-3600), {}, "(job 5)",
                               "not a job's run time"),
    "sacct negative start": ("sacct-json", sacct_doc(time_start=-5), {}, "time.start", "negative epoch"),
    "sacct job_id 1.5": ("sacct-json", sacct_doc(job_id=1.5), {}, "job_id", "positive whole number"),
    "sacct negative GPU count": ("sacct-json", sacct_doc(tres={"allocated": [{"type": "gres", "name": "gpu",
                                                                              "count": -4}]}), {}, "(job 5)",
                                 "-4 allocated GPUs"),
    "sacct cluster is an object": ("sacct-json", sacct_doc(cluster={"name": "c"}), {}, ".cluster", "expected text"),
    # sacct: OverflowError from fromtimestamp / timedelta
    "sacct start 1e20": ("sacct-json", sacct_doc(time_start=1e20), {}, "time.start", "out of range"),
    "sacct elapsed 1e300": ("sacct-json", sacct_doc(time_end=0, time_elapsed=1e300), {}, "(job 5)",
                            "not a job's run time"),
    # sacct._zone: a 300-character --timezone raised OSError (file name too long)
    "timezone of 300 characters": ("sacct-parsable", "JobID|Start|End\n1|2024-03-01T00:00:00|\n",
                                   {"timezone": "x" * 300}, "--timezone", "not an IANA time zone"),
    # sacct: the raw job id went into the message (a terminal escape sequence)
    "escape in a job id": ("sacct-parsable", "JobID|Start|End\n\x1b|1451606400|1451606400\n", {}, ":2", "'\\x1b'"),
    # sacct._Clock: a naive year-1 time east of UTC overflowed
    "naive year 1 in Paris": ("sacct-parsable", "JobID|Start|End|Cluster|Account\n1|0001-01-01T00:00:00||c|a\n",
                              {"timezone": "Europe/Paris"}, ":2 Start", "out of range"),
}


@pytest.mark.parametrize("case", sorted(JOB_REGRESSIONS))
def test_job_file_regressions(tmp_path: Path, case: str) -> None:
    fmt, text, kw, where, fragment = JOB_REGRESSIONS[case]
    path = tmp_path / f"jobs.{fmt}"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    with pytest.raises(InputError) as exc:
        read_jobs(path, fmt, default_cluster=kw.get("default_cluster"), timezone=kw.get("timezone"))
    check_error(exc.value, path)
    assert where in exc.value.where and fragment in exc.value.message(), exc.value.message()


def uk(start: str, end: str) -> str:
    return json.dumps({"data": [{"from": start, "to": end, "intensity": {"forecast": 50, "actual": 55}}]})


def em(**record: Any) -> str:
    return json.dumps({"zone": "DE", "history": [{"datetime": "2024-03-01T00:00:00Z", "carbonIntensity": 5,
                                                  **record}]})


WT_META = {"units": "lbs_co2_per_mwh", "signal_type": "co2_moer", "region": "CAISO_NORTH"}
INTENSITY_REGRESSIONS = {
    # generic_csv / electricitymaps: start + 1 h overflowed (OverflowError)
    "last hour of year 9999": ("csv", "timestamp,zone,intensity_g_per_kwh\n9999-12-31T23:00:00Z,FR,5\n", ":2",
                               "past year 9999"),
    "em csv last hour of year 9999": ("electricitymaps-csv", "Datetime (UTC),Zone id,Carbon intensity gCO2eq/kWh "
                                      "(Life cycle)\n9999-12-31 23:00:00,DE,5\n", ":2", "past year 9999"),
    # checks.check_points: DuckDB's // truncates toward zero, so a 1969 half-hour was stored in the wrong hour,
    # and 23:30-00:00 as NaN g/kWh for 1970-01-01T00:00 with covered_s 0
    "half-hour before 1970": ("uk-json", uk("1969-12-31T23:30Z", "1970-01-01T00:00Z"), "data[0]", "before 1970"),
    # checks.check_points: one record over a century became 876,600 stored hours
    "record spanning a century": ("uk-json", uk("2000-01-01T00:00Z", "2100-01-01T00:00Z"), "data[0]",
                                  "longer than a day"),
    # electricitymaps.parse_obj: a list is unhashable in `gran not in GRANULARITY` (TypeError)
    "granularity is a list": ("electricitymaps-json", em(temporalGranularity=["hourly"]), "temporalGranularity",
                              "unsupported granularity"),
    # _common.to_float: float(10**400) (OverflowError)
    "intensity integer beyond float": ("electricitymaps-json", em(carbonIntensity=10**400), "carbonIntensity",
                                       "out of range"),
    # _common.load_json: RecursionError / ValueError escaped json.loads
    "json nested 100000 deep": ("electricitymaps-json", "[" * 100_000, "", "nested too deeply"),
    "json 5000-digit integer": ("uk-json", "[" + "1" * 5000 + "]", "", "invalid JSON"),
    # _common.load_json: a lone surrogate reached pyarrow (UnicodeEncodeError on insert)
    "zone with a lone surrogate": ("electricitymaps-json", em(zone="D\ud800"), "", "lone surrogate"),
    # uk: a JSON true or "" as regionid made the zones 'GB-True' and 'GB-'
    "uk regionid true": ("uk-json", json.dumps({"data": {"regionid": True, "data": []}}), "data.regionid",
                         "is not a region"),
    # watttime: timedelta(seconds=10**20) (OverflowError)
    "watttime period 1e20 s": ("watttime-json", json.dumps({"meta": {**WT_META, "data_point_period_seconds": 10**20},
                                                             "data": []}), "data_point_period_seconds",
                               "invalid period"),
}


@pytest.mark.parametrize("case", sorted(INTENSITY_REGRESSIONS))
def test_intensity_file_regressions(tmp_path: Path, case: str) -> None:
    fmt, text, where, fragment = INTENSITY_REGRESSIONS[case]
    path = tmp_path / "intensity.in"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    with pytest.raises(InputError) as exc:
        check_points(parse(path, fmt).points)
    check_error(exc.value, path)
    assert where in exc.value.where and fragment in exc.value.message(), exc.value.message()


def test_yaml_aliases_are_converted_once(tmp_path: Path) -> None:
    """30 levels of doubling aliases: 2**30 strings if each alias is expanded (it was: the run never ended)."""
    levels = ", ".join(["&l0 [x, x]", *(f"&l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 31))])
    path = tmp_path / "jobs.yaml"
    path.write_text(f"jobs:\n  - job_id: '1'\n    nodes: [{levels}]\n")
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="nodes must be a list of host names"):
        read_jobs(path, "yaml", default_cluster="c")
    assert time.perf_counter() - t0 < 5


CLI_REGRESSIONS = {
    # a traceback from pyarrow (INT32 overflow) after parsing
    "gpus beyond int32": ("jobs", "csv", LEDGER + "7,p,,c1,u,2024-03-01T00:00:00Z,,gpu01,99999999999\n"),
    # a traceback from pyarrow (UnicodeEncodeError) after parsing
    "lone surrogate in a sacct account": ("jobs", "sacct-json", sacct_doc(account="\ud800")),
    # stored NaN g/kWh for 1970-01-01T00:00 (exit 0)
    "UK half-hour before 1970": ("intensity", "uk-json", uk("1969-12-31T23:30Z", "1970-01-01T00:00Z")),
    # stored 876,600 invented hours (exit 0)
    "UK record over a century": ("intensity", "uk-json", uk("2000-01-01T00:00Z", "2100-01-01T00:00Z")),
}


@pytest.mark.parametrize("case", sorted(CLI_REGRESSIONS))
def test_cli_regressions_exit_2_and_change_nothing(workdir: Path, seeded: Seed,
                                                   no_env: None, case: str) -> None:
    verb, fmt, text = CLI_REGRESSIONS[case]
    seed, before = seeded.path, seeded.tables
    dbfile = workdir / f"db{next(_SEQ)}.duckdb"
    shutil.copyfile(seed, dbfile)
    with input_file(workdir, text.encode("utf-8", "surrogatepass"), ".in") as path:
        rc, out, err = run_cli([verb, "import", str(path), "--format", fmt, "--db", str(dbfile), "-q"])
    assert rc == 2, (out, err)
    assert not check_cli(verb, rc, out, err, dbfile, before)
