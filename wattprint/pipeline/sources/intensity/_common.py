"""Helpers shared by the intensity parsers: reading files, checking values, JSON paths."""

from __future__ import annotations

import codecs
import csv
import json
import math
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ...errors import InputError
from ...files import MAX_INTENSITY_FILE_BYTES, MIB, file_kind
from ...records import INTENSITY_BASES, IntensityPoint
from ...timeutil import parse_instant
from .._text import check_no_surrogates

MAX_G_PER_KWH = 5000.0  # no grid has ever averaged above ~1,300 g/kWh; 5,000 catches unit mix-ups (lbs, kg/MWh x1000)

MAX_INPUT_BYTES = MAX_INTENSITY_FILE_BYTES     # files.py holds the limit (and why), beside the others
CHUNK_BYTES = MIB

MOER_WARNING = (
    "WattTime co2_moer is a marginal emission rate (the plant that responds to extra load), "
    "not an average grid intensity; it is stored as the zone's marginal signal, beside its average intensity, and "
    "reports show it only in their marginal section, never in the headline or mixed with average figures"
)


@dataclass(frozen=True)
class ParseResult:
    """Points read from one file or response, plus warnings the caller should show once."""

    points: list[IntensityPoint]
    warnings: list[str] = field(default_factory=list)


class UnreadableFile(InputError):
    """The file could not be opened as a regular file (missing, no permission, a FIFO, device or directory);
    `why` says which in a few words (e.g. "Permission denied", "a FIFO, not a regular file")."""

    def __init__(self, where: str, problem: str, hint: str, why: str) -> None:
        super().__init__(where, problem, hint)
        self.why = why


def open_regular(path: Path, max_bytes: int = MAX_INPUT_BYTES, *, hint: str = "") -> tuple[BinaryIO, os.stat_result]:
    """The file opened for binary reading and its fstat: UnreadableFile when it is not a regular file, InputError
    (naming the file, its size and the limit) when it is larger than `max_bytes`.

    O_NONBLOCK makes opening a FIFO return at once instead of waiting for a writer (then refused by fstat,
    which describes what was opened, not what the path named a moment before). Symbolic links are followed:
    the path is the operator's own (a Kubernetes ConfigMap mount is links all the way down).
    """
    name = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise UnreadableFile(name, "file not found", "check the path", e.strerror or "not found") from None
    except OSError as e:
        raise UnreadableFile(name, f"cannot read file ({e.strerror})", "check the path and its permissions",
                             e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = file_kind(st.st_mode)
            raise UnreadableFile(name, f"not a regular file ({kind})", "give the path of a plain file",
                                 f"{kind}, not a regular file")
        if st.st_size > max_bytes:
            raise InputError(name, f"file is {st.st_size:,} bytes, above the limit of {max_bytes:,} bytes "
                             f"({max_bytes / MIB:g} MiB)", hint or "split it (e.g. by zone or by year) and import "
                             "each part")
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def read_text(path: Path, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The file as text (UTF-8, BOM tolerated); empty, unreadable, non-regular or too large files are input errors."""
    name = str(path)
    f, _ = open_regular(path, max_bytes)
    try:
        with f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise InputError(name, f"cannot read file ({e.strerror})", "check the path and its permissions") from None
    if len(raw) > max_bytes:        # it grew after the size check
        raise InputError(name, f"file is more than {max_bytes:,} bytes ({max_bytes / MIB:g} MiB)",
                         "split it (e.g. by zone or by year) and import each part")
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: bom + e.start].count(b"\n") + 1
        raise InputError(f"{name}:{line}", "not UTF-8 text", "save the file as UTF-8") from None
    if not text.strip():
        raise InputError(name, "file is empty", "export the data again; an empty file holds no intensity values")
    return text


def iter_lines(f: BinaryIO, name: str, max_bytes: int = MAX_INPUT_BYTES, *, hint: str = "") -> Iterator[str]:
    """The lines of a UTF-8 file (BOM tolerated) as `text.splitlines(keepends=True)` gives them for the whole text,
    decoded a chunk at a time, so neither the bytes nor the text of the whole file are ever held."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    carry, newlines = "", 0
    for chunk in _chunks(f, name, max_bytes, hint):
        pending = len(decoder.getstate()[0])      # bytes of a character cut by the previous chunk
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            line = newlines + chunk[: max(0, e.start - pending)].count(b"\n") + 1
            raise InputError(f"{name}:{line}", "not UTF-8 text", "save the file as UTF-8") from None
        newlines += chunk.count(b"\n")
        parts = (carry + text).splitlines(keepends=True)
        if not chunk:
            yield from parts
            return
        # the last piece may be a line cut by the chunk (or a CR whose LF comes next): it goes with the next one
        carry = parts.pop() if parts else ""
        yield from parts


def _chunks(f: BinaryIO, name: str, max_bytes: int, hint: str) -> Iterator[bytes]:
    """The file's bytes in chunks, without a leading BOM, then b"" at the end."""
    total = 0

    def read() -> bytes:
        nonlocal total
        chunk = f.read(CHUNK_BYTES)
        total += len(chunk)
        if total > max_bytes:        # it grew after the size check
            raise InputError(name, f"file is more than {max_bytes:,} bytes ({max_bytes / MIB:g} MiB)",
                             hint or "split it (e.g. by zone or by year) and import each part")
        return chunk

    head = b""
    while len(head) < len(codecs.BOM_UTF8) and (chunk := read()):
        head += chunk
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8):]
    if head:
        yield head
    while chunk := read():
        yield chunk
    yield b""


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


def csv_rows(text: str | Iterable[str], name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank CSV record; line numbers count physical lines from 1.
    `text` is the whole text, or its lines (`iter_lines`) to read a file as a stream."""
    reader = csv.reader(text.splitlines(keepends=True) if isinstance(text, str) else text, strict=True)
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
