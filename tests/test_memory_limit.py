"""DuckDB's memory limit: 3 GiB by default (its own default, 80 % of RAM, lets the buffer pool keep everything a
build read), $WATTPRINT_MEMORY_LIMIT to change it, a clear error for a value that is not a size."""

from __future__ import annotations

import pytest

from wattprint.pipeline import db
from wattprint.pipeline.errors import InputError


def _limit(con) -> int:  # type: ignore[no-untyped-def]
    (value,) = con.execute("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'").fetchall()[0]
    size = db.size_bytes(value.replace(" ", ""))
    assert size is not None, value
    return size


def test_the_default_is_three_gib_at_most(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(db.MEMORY_LIMIT_ENV, raising=False)
    con = db.connect(tmp_path / "w.duckdb")
    try:
        assert 0 < _limit(con) <= db.DEFAULT_MEMORY_LIMIT
    finally:
        con.close()


@pytest.mark.parametrize(("text", "expected"), [("8GiB", 8 * 2**30), ("512 MiB", 512 * 2**20), ("2GB", 2 * 10**9)])
def test_the_environment_sets_it(tmp_path, monkeypatch: pytest.MonkeyPatch, text: str, expected: int) -> None:
    monkeypatch.setenv(db.MEMORY_LIMIT_ENV, text)
    con = db.connect(tmp_path / "w.duckdb")
    try:
        assert abs(_limit(con) - expected) <= expected * 0.06       # DuckDB shows one decimal: 2 GB is "1.8 GiB"
    finally:
        con.close()


@pytest.mark.parametrize("text", ["lots", "3 parsecs", "-1GB", "0"])
def test_a_value_that_is_not_a_size_is_named(tmp_path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv(db.MEMORY_LIMIT_ENV, text)
    with pytest.raises(InputError) as e:
        db.connect(tmp_path / "w.duckdb")
    assert e.value.where == db.MEMORY_LIMIT_ENV and "not a memory size" in str(e.value)
