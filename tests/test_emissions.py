"""One emissions formula: the SQL macro (sql/macros.sql) and its Python twin (pipeline/emissions.py) give the same
bits, and no other query prices energy itself."""

from __future__ import annotations

import random
import re

from tests.conftest import REPO
from wattprint.pipeline import db
from wattprint.pipeline.emissions import emissions_g


def test_the_sql_macro_and_the_python_twin_agree_bit_for_bit() -> None:
    rnd = random.Random(0)
    cases = [(rnd.uniform(0, 5e7), rnd.uniform(0, 900), rnd.choice([1.0, 1.1, 1.2, rnd.uniform(1, 3)]))
             for _ in range(500)] + [(0.0, 50.0, 1.2), (3.6e6, 1.0, 1.0)]
    con = db.connect(":memory:")
    db.run_sql(con, "macros")
    got = con.execute("SELECT emissions_g(e, g, p) FROM (SELECT unnest(?::DOUBLE[]) AS e, unnest(?::DOUBLE[]) AS g,"
                      " unnest(?::DOUBLE[]) AS p)", [[c[0] for c in cases], [c[1] for c in cases],
                                                     [c[2] for c in cases]]).fetchall()
    assert [r[0] for r in got] == [emissions_g(*c) for c in cases]
    assert emissions_g(3.6e6, 100.0) == 100.0


def test_the_formula_is_written_once() -> None:
    """Only the macro divides by the joules in a kWh to price energy; other queries call it (a division by
    3,600,000 left elsewhere turns grams per joule into an intensity, not energy into grams)."""
    sql = REPO / "wattprint" / "pipeline" / "sql"
    pricing = re.compile(r"energy_j\s*\*\s*\w*\.?(intensity_g_per_kwh|g_per_kwh)|/\s*3600000\.0\s*\*\s*\w*\.?pue")
    offenders = [f"{p.name}:{i}" for p in sorted(sql.glob("*.sql"))
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if not line.lstrip().startswith("--") and pricing.search(line) and p.name != "macros.sql"]
    assert not offenders, offenders
