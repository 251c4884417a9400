"""The Markdown report's building blocks (markdown.py and md_disclosure.py): a table, and a cell that is either a
name from the report (escaped by `names.md`) or Markdown this package wrote (`Md`, kept as it is)."""

from __future__ import annotations

from typing import Any

from .names import md


class Md(str):
    """Markdown this package wrote (bold, emphasis), kept as it is in a table cell."""


def cell(text: Any) -> str:
    return text if isinstance(text, Md) else md(text)


def table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out + [""]
