"""Grid carbon intensity sources: files (parse_file), APIs (fetch), the shipped annual table (embedded).

All points are gCO2eq/kWh over UTC [start, end) intervals; run check_points over everything that will be
stored together so duplicates, conflicts and overlaps are caught before they reach the database.
"""

from __future__ import annotations

from typing import Any

from ._common import MOER_WARNING, ParseResult
from .checks import check_points
from .files import FORMATS, parse, parse_file


def __getattr__(name: str) -> Any:
    # the API clients pull in requests; reports and imports never need them, so load them on first use
    if name in ("SOURCES", "fetch"):
        from . import fetching

        return getattr(fetching, name)
    raise AttributeError(name)

__all__ = ["FORMATS", "MOER_WARNING", "SOURCES", "ParseResult", "check_points", "fetch", "parse", "parse_file"]
