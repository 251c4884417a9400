"""Grid carbon intensity sources: files (parse_file), APIs (fetch), the shipped annual table (embedded).

All points are gCO2eq/kWh over UTC [start, end) intervals; run check_points over everything that will be
stored together so duplicates, conflicts and overlaps are caught before they reach the database.
"""

from __future__ import annotations

from ._common import MOER_WARNING, ParseResult
from .checks import check_points
from .fetching import SOURCES, fetch
from .files import FORMATS, parse, parse_file

__all__ = ["FORMATS", "MOER_WARNING", "SOURCES", "ParseResult", "check_points", "fetch", "parse", "parse_file"]
