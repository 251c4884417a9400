"""The model's shape: every derived table is one query in sql/<table>.sql, built by the runner in the order of
model.MODELS; migrations create only stored inputs; a query reads only inputs and the models before it."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO
from wattprint.pipeline import db
from wattprint.pipeline.model import DERIVED, MODELS, BuildSettings, build

SQL = REPO / "wattprint" / "pipeline" / "sql"
# sql/ files that are not models: the report's queries (rpt_*), the intensity import's plan (it writes stored input)
# the hours an import changes (dirty_*: incremental builds) and what compaction keeps of a closed month (close_*)
NOT_MODELS = re.compile(r"^(rpt_|stg_intensity_import|dirty_|close_)")
STORED = {"series", "samples", "ingest_coverage", "jobs", "job_nodes", "intensity_points", "intensity_hourly",
          "marginal_points", "marginal_hourly",
          "intensity_annual", "clusters", "cluster_nodes", "build_info", "schema_migrations",
          "closed_months", "closed_gpu_gaps", "closed_gpu_stepbacks", "closed_node_rapl_hour"}


def _query(name: str) -> str:
    """The file without its comments."""
    return re.sub(r"--[^\n]*", "", (SQL / f"{name}.sql").read_text(encoding="utf-8")).strip()


def test_every_sql_file_is_a_model_and_every_model_a_file() -> None:
    files = {p.stem for p in SQL.glob("*.sql") if not NOT_MODELS.match(p.stem)}
    assert files == {m.name for m in MODELS}
    assert len({m.name for m in MODELS}) == len(MODELS)


@pytest.mark.parametrize("m", [m for m in MODELS if m.kind != "macro"], ids=lambda m: m.name)
def test_a_model_is_one_query(m) -> None:  # type: ignore[no-untyped-def]
    q = _query(m.name)
    assert re.match(r"(?i)^(WITH|SELECT)\b", q), f"{m.name}.sql is not a query"
    assert not re.search(r"(?i)\b(INSERT|CREATE|UPDATE|DELETE|DROP)\b", q), f"{m.name}.sql writes"
    assert ";" not in q, f"{m.name}.sql holds more than one statement"
    assert set(re.findall(r"\$([a-z_]+)", q)) == set(m.params), f"{m.name}: bound parameters"


@pytest.mark.parametrize("m", [m for m in MODELS if m.kind == "macro"], ids=lambda m: m.name)
def test_a_macro_file_only_makes_macros(m) -> None:  # type: ignore[no-untyped-def]
    statements = [s.strip() for s in _query(m.name).split(";") if s.strip()]
    assert statements and all(s.startswith("CREATE OR REPLACE TEMP MACRO") for s in statements), m.name


def test_a_model_reads_only_inputs_and_the_models_before_it() -> None:
    names = [m.name for m in MODELS]
    for i, m in enumerate(MODELS):
        q = _query(m.name)
        for later in names[i:]:
            if later != m.name:
                assert not re.search(rf"\b{later}\b", q), f"{m.name} reads {later}, built after it"


def test_migrations_make_only_stored_inputs_and_the_build_makes_the_rest() -> None:
    con = db.connect(":memory:")
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == STORED
    build(con, BuildSettings())
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    assert tables == STORED | set(DERIVED)
    temp = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert temp == set(), temp   # the build's temp tables are dropped at its end
