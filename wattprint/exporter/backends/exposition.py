"""A forgiving reader of the Prometheus text format, line by line, for pages written by other exporters.

prometheus_client's parser rejects a whole page for one bad line. Real dcgm-exporter pages carry such lines: an A800
node with MIG (driver 535) served sample values reading `ERROR - FAILED TO CONVERT TO STRING` in a family unrelated to
energy, and with the strict parser the node exported no GPU energy at all. Here each line stands alone: a line that
parses is a sample, one that does not is skipped and counted under its family (the metric name it starts with), so
the energy counters are read from whatever else the page holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_VALUES = {"nan": math.nan, "+inf": math.inf, "inf": math.inf, "-inf": -math.inf}
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Skipped:
    line: int          # 1-based line number on the page
    family: str        # the metric name the line starts with, "" when it does not start with one
    reason: str


class _Bad(ValueError):
    pass


def parse(text: str) -> Iterator[Sample | Skipped]:
    """Every sample line of `text` as a Sample, every other non-comment, non-blank line as a Skipped."""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if m is None:
            yield Skipped(n, "", "no metric name")
            continue
        try:
            yield _sample(line, m.group(), m.end())
        except _Bad as exc:
            yield Skipped(n, m.group(), str(exc))


def _sample(line: str, name: str, pos: int) -> Sample:
    labels: dict[str, str] = {}
    if pos < len(line) and line[pos] == "{":
        labels, pos = _labels(line, pos + 1)
    rest = line[pos:]
    if not rest[:1].isspace():
        raise _Bad("no space before the value")
    fields = rest.split()
    if not fields:
        raise _Bad("no value")
    value = _value(fields[0])
    if len(fields) > 2:
        raise _Bad("text after the value and timestamp")
    return Sample(name, labels, value)


def _value(token: str) -> float:
    special = _VALUES.get(token.lower())
    if special is not None:
        return special
    try:
        return float(token)
    except ValueError:
        raise _Bad(f"value {token[:40]!r} is not a number") from None


def _labels(line: str, pos: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    while True:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return labels, pos + 1
        m = _LABEL.match(line, pos)
        if m is None:
            raise _Bad("bad label name")
        pos = m.end()
        if line[pos:pos + 2] != '="':
            raise _Bad(f"label {m.group()} has no quoted value")
        value, pos = _quoted(line, pos + 2)
        labels[m.group()] = value
        if pos < len(line) and line[pos] == ",":
            pos += 1
        elif pos >= len(line) or line[pos] != "}":
            raise _Bad("labels not closed")


def _quoted(line: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    while pos < len(line):
        c = line[pos]
        if c == '"':
            return "".join(out), pos + 1
        if c == "\\" and pos + 1 < len(line):
            out.append(_ESCAPES.get(line[pos + 1], "\\" + line[pos + 1]))
            pos += 2
            continue
        out.append(c)
        pos += 1
    raise _Bad("label value not closed")
