"""How text from the report (project, phase, user, job, cluster, host and model names, and the sentences built
around them) is written in each format. Names come from job ledgers, schedulers, exporters and configs, so
anyone who can name a job can put anything in them.

* `clean` (every human format: Markdown, HTML, CSV, terminal): line breaks and tabs become one space; other
  control characters (C0, DEL, C1) and the bidirectional overrides and isolates (U+202A-U+202E,
  U+2066-U+2069, "Trojan Source") are dropped: they could forge lines in a terminal or a table, or show a
  reader text other than the stored one.
* `md`: `clean`, then Markdown escaping, so that a name stays one piece of plain text in a cell or a sentence.
* `csv_cell`: `clean`, then the OWASP "CSV Injection" rule, so that a spreadsheet never runs a name.

JSON is data, not display: it keeps every value exactly (json.dumps escapes what JSON needs).
"""

from __future__ import annotations

import re

_BREAKS = re.compile("[\t\n\v\f\r\x1c-\x1f\x85\u2028\u2029]+")
_DROP = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\u202a-\u202e\u2066-\u2069]")

# `_` is left alone between two letters or digits (hostnames, file names), where CommonMark can never read it
# as emphasis; that keeps every ordinary name byte for byte as before.
_MD = re.compile(r"[\\`*\[\]|#<>]|&(?=[#0-9A-Za-z])|_+")
_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}

# OWASP "CSV Injection": a cell starting with one of these is a formula (or becomes one once a spreadsheet
# trims it) in Excel, LibreOffice and Google Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean(text: object) -> str:
    return _DROP.sub("", _BREAKS.sub(" ", str(text)))


def _md_sub(m: re.Match[str]) -> str:
    s = m.group()
    if s in _ENTITIES:
        return _ENTITIES[s]
    if s[0] == "_":
        text, a, b = m.string, m.start(), m.end()
        if 0 < a and b < len(text) and text[a - 1].isalnum() and text[b].isalnum():
            return s
        return "\\_" * len(s)
    return "\\" + s


def md(text: object) -> str:
    """Plain text for a Markdown line or table cell: no markup, link, raw HTML, entity or line break survives."""
    return _MD.sub(_md_sub, clean(text))


def csv_cell(text: object) -> str:
    """A text cell, prefixed with `'` when a spreadsheet would read it as a formula (numbers are not text cells).

    Leading spaces are looked through: some importers trim them, and a tab or carriage return has become one."""
    s = clean(text)
    return "'" + s if s.startswith(FORMULA_START) or s.lstrip(" ").startswith(FORMULA_START) else s
