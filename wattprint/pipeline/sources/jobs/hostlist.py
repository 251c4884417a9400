"""Slurm hostlist expressions, expanded to host names.

``gpu[01-04]`` -> gpu01 gpu02 gpu03 gpu04 (zero padding kept: the width is that of the range's lower bound),
``gpu[01-02,07]`` -> gpu01 gpu02 gpu07, ``a[1-2]-b[3-4]`` -> a1-b3 a1-b4 a2-b3 a2-b4 (every bracket multiplies),
``n1,n2`` and ``gpu[01-02],cpu7`` -> the items in order. Commas inside brackets do not split items.
Duplicates are dropped (first one kept); an empty text is no hosts.
"""

from __future__ import annotations

import itertools
import re

from ...errors import InputError

MAX_HOSTS = 100_000  # a typo such as gpu[1-99999999] must not eat the memory
_RANGE = re.compile(r"(\d{1,18})(?:-(\d{1,18}))?", re.ASCII)   # 18 digits: int() never refuses them
_HINT = "write e.g. gpu[01-04], gpu[01-02,07] or n1,n2"


def expand(text: str, where: str) -> tuple[str, ...]:
    """Host names of a Slurm hostlist; InputError naming `where` on bad syntax."""
    s = text.strip()
    if not s:
        return ()
    hosts: dict[str, None] = {}
    for item in _split_items(s, where):
        for host in _expand_item(item, where):
            hosts.setdefault(host, None)
            if len(hosts) > MAX_HOSTS:
                raise InputError(where, f"hostlist {text!r} expands to more than {MAX_HOSTS} hosts", _HINT)
    return tuple(hosts)


def _split_items(s: str, where: str) -> list[str]:
    items: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(s):
        if ch == "[":
            if depth:
                raise InputError(where, f"hostlist {s!r}: nested '[' at character {i + 1}", _HINT)
            depth = 1
        elif ch == "]":
            if not depth:
                raise InputError(where, f"hostlist {s!r}: ']' without '[' at character {i + 1}", _HINT)
            depth = 0
        elif ch == "," and not depth:
            items.append(s[start:i].strip())
            start = i + 1
    if depth:
        raise InputError(where, f"hostlist {s!r}: '[' is never closed", _HINT)
    items.append(s[start:].strip())
    for item in items:
        if not item:
            raise InputError(where, f"hostlist {s!r} has an empty item (two commas, or a comma at an end)", _HINT)
    return items


def _expand_item(item: str, where: str) -> list[str]:
    parts: list[list[str]] = []
    pos = 0
    for m in re.finditer(r"\[([^\]]*)\]", item):
        parts.append([_literal(item[pos:m.start()], item, where)])
        parts.append(_ranges(m.group(1), item, where))
        pos = m.end()
    parts.append([_literal(item[pos:], item, where)])
    total = 1
    for p in parts:
        total *= len(p)
        if total > MAX_HOSTS:
            raise InputError(where, f"hostlist item {item!r} expands to more than {MAX_HOSTS} hosts", _HINT)
    return ["".join(combo) for combo in itertools.product(*parts)]


def _literal(text: str, item: str, where: str) -> str:
    if any(c.isspace() for c in text):
        raise InputError(where, f"hostlist item {item!r} contains whitespace", _HINT)
    return text


def _ranges(body: str, item: str, where: str) -> list[str]:
    out: list[str] = []
    for part in body.split(","):
        m = _RANGE.fullmatch(part.strip())
        if not m:
            raise InputError(where, f"hostlist item {item!r}: {part.strip()!r} is not a number or a range lo-hi", _HINT)
        lo_s, hi_s = m.group(1), m.group(2)
        lo = int(lo_s)
        hi = int(hi_s) if hi_s is not None else lo
        if hi < lo:
            raise InputError(where, f"hostlist item {item!r}: range {part.strip()!r} goes backwards", _HINT)
        if hi - lo + 1 > MAX_HOSTS:
            raise InputError(where, f"hostlist item {item!r} expands to more than {MAX_HOSTS} hosts", _HINT)
        width = len(lo_s)
        out.extend(str(n).zfill(width) for n in range(lo, hi + 1))
    return out
