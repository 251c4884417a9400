"""Read an intensity file in one of the supported formats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...records import IntensityPoint
from . import electricitymaps, generic_csv, uk, watttime
from ._common import ParseResult, iter_lines, load_json, open_regular, read_text
from .checks import canonical_points

_Parser = Callable[..., ParseResult]


def _json(parse_obj: Callable[..., ParseResult]) -> _Parser:
    def parse_text(text: str, name: str, **kw: Any) -> ParseResult:
        return parse_obj(load_json(text, name), name, **kw)
    return parse_text


PARSERS: dict[str, _Parser] = {
    "electricitymaps-csv": electricitymaps.parse_csv,
    "electricitymaps-json": _json(electricitymaps.parse_obj),
    "uk-json": _json(uk.parse_obj),
    "watttime-json": _json(watttime.parse_obj),
    "csv": generic_csv.parse_csv,
}
FORMATS = tuple(PARSERS)


def parse(path: str | Path, fmt: str, *, zone: str | None = None, basis: str | None = None) -> ParseResult:
    """Points (zones in canonical spelling, `pipeline.zones`) and warnings of one file. Every error names the file
    and line (or JSON path)."""
    parser = PARSERS.get(fmt)
    if parser is None:
        raise InputError("--format", f"unknown intensity format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    p = Path(path)
    zone = zone.strip() if zone and zone.strip() else None
    if fmt == "csv":
        # read as a stream: the file's bytes, text and lines are never held next to its points
        f, _ = open_regular(p)
        try:
            with f:
                result = generic_csv.parse_csv(iter_lines(f, str(path)), str(path), zone=zone, basis=basis)
        except OSError as e:
            raise InputError(str(path), f"cannot read file ({e.strerror})", "check the path and its permissions") \
                from None
    else:
        result = parser(read_text(p), str(path), zone=zone, basis=basis)
    return ParseResult(canonical_points(result.points), result.warnings)


def parse_file(path: str | Path, fmt: str, *, zone: str | None = None,
               basis: str | None = None) -> list[IntensityPoint]:
    """The points of one file (warnings, e.g. WattTime's marginal basis, ride on each point's notes)."""
    return parse(path, fmt, zone=zone, basis=basis).points
