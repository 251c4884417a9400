"""Checks on decoded JSON/YAML text that every source shares."""

from __future__ import annotations

import re
from typing import Any

from ..errors import InputError

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_no_surrogates(obj: Any, where: str) -> None:
    """InputError when a string (or key) holds a lone surrogate.

    JSON's ``"\\ud800"`` and YAML's ``"\\ud800"`` escapes decode to half of a UTF-16 pair, which is not a
    character: it cannot be written as UTF-8, so the database (and a UTF-8 terminal) would refuse it later.
    """
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise InputError(where, f"text {item!r} holds a \\uD800-\\uDFFF escape that is half a character "
                                 "(a lone surrogate)", "fix or drop that escape")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
