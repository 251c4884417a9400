"""Helpers shared by the intensity parsers: reading files, checking values, JSON paths."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...records import INTENSITY_BASES, IntensityPoint
from ...timeutil import parse_instant
from .._text import check_no_surrogates

MAX_G_PER_KWH = 5000.0  # no grid has ever averaged above ~1,300 g/kWh; 5,000 catches unit mix-ups (lbs, kg/MWh x1000)

MOER_WARNING = (
    "WattTime co2_moer is a marginal emission rate (the plant that responds to extra load), "
    "not an average grid intensity; do not compare or mix it with average (lifecycle/direct) figures"
)


@dataclass(frozen=True)
class ParseResult:
    """Points read from one file or response, plus warnings the caller should show once."""

    points: list[IntensityPoint]
    warnings: list[str] = field(default_factory=list)


def read_text(path: Path) -> str:
    """The file as text (UTF-8, BOM tolerated); empty or unreadable files are input errors."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(name, "file not found", "check the path") from None
    except OSError as e:
        raise InputError(name, f"cannot read file ({e.strerror})", "check the path and its permissions") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{name}:{line}", "not UTF-8 text", "save the file as UTF-8") from None
    if not text.strip():
        raise InputError(name, "file is empty", "export the data again; an empty file holds no intensity values")
    return text


def load_json(text: str, name: str) -> Any:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"{name}:{e.lineno}", f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}",
            "check the file is a complete API response (not truncated or HTML)",
        ) from None
    except RecursionError:
        raise InputError(name, "JSON nested too deeply", "check the file is an API response") from None
    except ValueError as e:     # e.g. an integer of more than 4300 digits
        raise InputError(name, f"invalid JSON: {e}", "check the file is an API response") from None
    check_no_surrogates(data, name)
    return data


def csv_rows(text: str, name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank CSV record; line numbers count physical lines from 1."""
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    line = 1
    try:
        for fields in reader:
            start = line
            line = reader.line_num + 1
            if not fields or all(not f.strip() for f in fields):
                continue
            yield start, fields
    except csv.Error as e:
        raise InputError(f"{name}:{reader.line_num}", f"malformed CSV ({e})", "fix the quoting on that line") from None


def number(value: object, where: str, what: str = "intensity") -> float:
    """A finite, non-negative, plausible gCO2eq/kWh value."""
    return check_value(to_float(value, where, what), where, what)


def to_float(value: object, where: str, what: str = "intensity") -> float:
    """A JSON number or numeric string as a float (range not checked)."""
    if isinstance(value, bool) or value is None or value == "":
        raise InputError(where, f"missing {what} value (got {value!r})", "give a number in gCO2eq/kWh")
    if isinstance(value, int | float):
        try:
            x = float(value)
        except OverflowError:   # a JSON integer beyond any float
            raise InputError(where, f"{what} is out of range (an integer of {len(str(abs(value)))} digits)",
                             "give a number in gCO2eq/kWh") from None
    else:
        try:
            x = float(str(value).strip())
        except ValueError:
            raise InputError(where, f"{what} {value!r} is not a number", "give a number in gCO2eq/kWh") from None
    return x


def check_value(x: float, where: str, what: str = "intensity") -> float:
    if not math.isfinite(x):
        raise InputError(where, f"{what} is {x} (not a finite number)", "give a finite number in gCO2eq/kWh")
    if x < 0:
        raise InputError(where, f"negative {what} {x:g}", "carbon intensity cannot be negative; fix the source value")
    if x > MAX_G_PER_KWH:
        raise InputError(
            where, f"{what} {x:g} g/kWh is implausible (above {MAX_G_PER_KWH:g})",
            "check the units: wattprint expects gCO2eq/kWh (not lbs/MWh or kg/kWh x1000)",
        )
    return x


def instant(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise InputError(where, f"expected a timestamp string, got {value!r}", "give an ISO 8601 time with Z or offset")
    return parse_instant(value, where)


def check_basis(basis: str | None, allowed: tuple[str, ...] = INTENSITY_BASES, *, default: str) -> str:
    b = (basis or default).strip().lower()
    if b not in allowed:
        raise InputError("--basis", f"basis {basis!r} is not available for this format",
                         f"use one of {', '.join(allowed)}")
    return b


def require_zone(zone: str | None, name: str, fmt: str) -> str:
    if zone is None or not zone.strip():
        raise InputError(name, f"the {fmt} data carries no zone", "pass --zone (e.g. --zone DE)")
    return zone.strip()


def json_where(name: str, path: str) -> str:
    return f"{name}: {path}" if path else name


def get(obj: Any, key: str, name: str, path: str, *, kind: type | tuple[type, ...] | None = None) -> Any:
    """obj[key], with an error naming the JSON path when it is missing or of the wrong type."""
    if not isinstance(obj, dict):
        raise InputError(json_where(name, path), f"expected an object, got {type(obj).__name__}",
                         "check this is the API response the format names")
    sub = f"{path}.{key}" if path else key
    if key not in obj:
        raise InputError(json_where(name, sub), "missing field", "check this is the API response the format names")
    value = obj[key]
    if kind is not None and not isinstance(value, kind):
        raise InputError(json_where(name, sub), f"unexpected {type(value).__name__} value {value!r}",
                         "check this is the API response the format names")
    return value
