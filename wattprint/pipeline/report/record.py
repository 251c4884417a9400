"""The base of the report's dataclasses (types.py): one way to the JSON contract (`to_dict`) and one way back
(`from_dict`).

A record's field names are the JSON keys and their order is the key order, so `to_dict` writes exactly the
objects of report-v1.schema.json. Values are written as they are (an int stays an int, a float keeps its repr), so
the JSON report is byte for byte what the builder computed. Two kinds of fields are marked:

* `optional()`: a key the schema does not require (added to schema_version 1 after its first reports, such as the
  host (CPU) figures). None means the key is absent: `to_dict` leaves it out, `from_dict` gives None for a
  report without it. A field that is None but not marked is written as null (the schema's nullable keys).
* `flattened()`: a record whose keys sit in its parent's object (the fleet sections of the report). None: absent.

`from_dict` reads any schema_version 1 report, including the hand-made and older ones that renderers and tests
feed in. Where a required key is missing or holds the wrong type it gives the type's empty value: NaN for a
number (every human format shows a non-finite number as a dash, as it showed a missing one), 0 for a count, ""
for text, False, an empty list, or the nested record read from {}.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Self

_OMIT = "omit_if_none"
_FLATTEN = "flatten"


def optional() -> Any:
    """A field for a key the schema does not require: absent from the JSON when None."""
    return dataclasses.field(default=None, metadata={_OMIT: True})


def flattened() -> Any:
    """A record field whose keys are written into the parent's object (absent when None)."""
    return dataclasses.field(default=None, metadata={_FLATTEN: True})


class Record:
    """Mixed into every frozen dataclass of the report."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, omit, flat, _ in _fields(type(self)):
            value = getattr(self, name)
            if value is None and (omit or flat):
                continue
            if flat:
                out.update(value.to_dict())
            else:
                out[name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        kw: dict[str, Any] = {}
        for name, omit, flat, tp in _fields(cls):
            if flat:
                inner = _record_type(tp)
                present = any(f[0] in data for f in _fields(inner))
                kw[name] = inner.from_dict(data) if present else None
            elif omit and data.get(name) is None:
                kw[name] = None
            else:
                kw[name] = _read(tp, data.get(name))
        return cls(**kw)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


_FIELDS: dict[type, tuple[tuple[str, bool, bool, Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, bool, bool, Any], ...]:
    """(name, optional, flattened, type) of each field, in order (worked out once per class)."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = tuple((f.name, bool(f.metadata.get(_OMIT)), bool(f.metadata.get(_FLATTEN)),
                                      hints[f.name]) for f in dataclasses.fields(cls))
    return found


def _record_type(tp: Any) -> type[Record]:
    for t in typing.get_args(tp) or (tp,):
        if isinstance(t, type) and issubclass(t, Record):
            return t
    raise TypeError(f"{tp!r} is not a record type")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _read(tp: Any, value: Any) -> Any:
    """`value` from a JSON object as the field's type `tp` (see the module docstring for missing values)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        if inner is float and not _number(value):
            return None
        return _read(inner, value)
    if tp is type(None):
        return None
    if origin is tuple:
        item = typing.get_args(tp)[0]
        seq = value if isinstance(value, list | tuple) else []
        if isinstance(item, type) and issubclass(item, Record):
            return tuple(item.from_dict(v) for v in seq if isinstance(v, Mapping))
        return tuple(_read(item, v) for v in seq)
    if isinstance(tp, type) and issubclass(tp, Record):
        return tp.from_dict(value if isinstance(value, Mapping) else {})
    if tp is float:
        return value if _number(value) else math.nan
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return int(value) if isinstance(value, float) and math.isfinite(value) else 0
    if tp is bool:
        return value if isinstance(value, bool) else False
    if tp is str:
        return value if isinstance(value, str) else "" if value is None else str(value)
    return value
