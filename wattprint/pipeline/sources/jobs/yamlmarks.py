"""YAML loading that remembers line numbers and does not guess types behind the user's back.

Two modes:

* ``strings``: every scalar stays a string (only ``null``/``~``/empty become None). Ledgers and
  rules use it: ``job_id: 0123`` stays "0123" (YAML 1.1 would read octal 83), ``project: no`` stays "no",
  and timestamps stay text so the strict ISO 8601 parser sees them (YAML would turn a naive one into a
  naive datetime).
* ``typed``: ints, floats, null, and only ``true``/``false`` as booleans (YAML 1.2 style, so the
  Norway zone ``NO`` stays a string); timestamps stay text. The config uses it.

Mappings load as `YDict` and sequences as `YList`, which carry the 1-based line of themselves and of
each key/item. Duplicate keys are an error (PyYAML silently keeps the last one). An alias is converted
once and shared (so nested aliases cannot blow up exponentially); an alias inside itself is an error.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from ...errors import InputError
from .._text import check_no_surrogates

_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_KEEP_TYPED = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
               "tag:yaml.org,2002:merge"}


class YDict(dict[Any, Any]):
    """A mapping with `line` (its own) and `key_lines` (each key's)."""

    line: int = 0
    key_lines: dict[Any, int]


class YList(list[Any]):
    """A sequence with `line` (its own) and `item_lines` (each item's)."""

    line: int = 0
    item_lines: list[int]


MAX_FLOW_DEPTH = 100   # PyYAML's scanner is quadratic in [ / { nesting: 3,000 of them take seconds


def _flow_start(self: Any, token_class: Any) -> None:
    if self.flow_level >= MAX_FLOW_DEPTH:
        raise yaml.scanner.ScannerError(None, None, f"[ or {{ nested deeper than {MAX_FLOW_DEPTH} levels",
                                        self.get_mark())
    yaml.SafeLoader.fetch_flow_collection_start(self, token_class)


def _loader_class(typed: bool) -> type[yaml.SafeLoader]:
    keep = _KEEP_TYPED if typed else {"tag:yaml.org,2002:null"}
    resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items():
        kept = [(tag, rx) for tag, rx in entries if tag in keep]
        if kept:
            resolvers[first] = kept
    name = "TypedLoader" if typed else "StringLoader"
    cls: type[yaml.SafeLoader] = type(name, (yaml.SafeLoader,), {"yaml_implicit_resolvers": resolvers,
                                                                 "fetch_flow_collection_start": _flow_start})
    if typed:
        cls.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_12, list("tTfF"))
    return cls


_LOADERS = {True: _loader_class(True), False: _loader_class(False)}


def load(text: str, name: str, *, typed: bool) -> Any:
    """Parse one YAML document; InputError 'name:line' on syntax errors and duplicate keys."""
    loader = None
    try:
        loader = _LOADERS[typed](text)      # the reader refuses control characters here
        node = loader.get_single_node()
        return None if node is None else _Converter(loader, name).convert(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise InputError(where, f"invalid YAML: {_one_line(exc.problem or exc.context)}",
                         "fix the syntax at that line") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else None
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise InputError(f"{name}:{line}" if line else name, f"invalid YAML: character {char}: {exc.reason}",
                         "remove control characters (YAML allows tab, CR and LF only)") from None
    except yaml.YAMLError as exc:
        raise InputError(name, f"invalid YAML: {_one_line(str(exc))}") from None
    except RecursionError:
        raise InputError(name, "invalid YAML: nested too deeply", "a ledger or config is a few levels deep") from None
    finally:
        if loader is not None:
            loader.dispose()


def _one_line(text: str | None) -> str:
    return " ".join(str(text).split())


class _Converter:
    """Nodes -> YDict/YList/scalars. Each node is converted once (aliases share the result)."""

    def __init__(self, loader: yaml.SafeLoader, name: str) -> None:
        self.loader = loader
        self.name = name
        self.done: dict[int, Any] = {}
        self.open: set[int] = set()

    def convert(self, node: yaml.Node) -> Any:
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.open:
            raise InputError(f"{self.name}:{node.start_mark.line + 1}", "invalid YAML: an alias refers to itself",
                             "an anchor (&a) cannot be used (*a) inside its own value")
        self.open.add(key)
        try:
            value = self._convert(node)
        finally:
            self.open.discard(key)
        self.done[key] = value
        return value

    def _convert(self, node: yaml.Node) -> Any:
        name = self.name
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            d = YDict()
            d.line = node.start_mark.line + 1
            d.key_lines = {}
            for knode, vnode in node.value:
                key = self.convert(knode)
                line = knode.start_mark.line + 1
                if isinstance(key, YDict | YList):
                    raise InputError(f"{name}:{line}", "a mapping key must be a plain value, not a mapping or list")
                try:
                    seen = key in d
                except TypeError:     # defensive: an explicit tag that builds an unhashable value
                    raise InputError(f"{name}:{line}", "a mapping key must be a plain value") from None
                if seen:
                    raise InputError(f"{name}:{line}", f"key {key!r} appears twice (first at line {d.key_lines[key]})",
                                     "keep one")
                d[key] = self.convert(vnode)
                d.key_lines[key] = line
            return d
        if isinstance(node, yaml.SequenceNode):
            lst = YList()
            lst.line = node.start_mark.line + 1
            lst.item_lines = []
            for item in node.value:
                lst.append(self.convert(item))
                lst.item_lines.append(item.start_mark.line + 1)
            return lst
        try:
            value = self.loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            # an explicit tag whose text PyYAML cannot build (!!timestamp '2000-0-01', !!int 'x') raises
            # plain Python errors from its constructors rather than a YAMLError
            why = f" ({exc})" if isinstance(exc, ValueError) else ""
            raise InputError(f"{name}:{node.start_mark.line + 1}",
                             f"value {node.value!r} cannot be read as {node.tag.rsplit(':', 1)[-1]}{why}",
                             "fix the value or drop its !! tag") from None
        check_no_surrogates(value, f"{name}:{node.start_mark.line + 1}")
        return value


def line_of(container: Any, key: Any = None) -> int | None:
    """Line of `container[key]` (or of the container when key is None), if known."""
    if key is None:
        return getattr(container, "line", None) or None
    if isinstance(container, YDict):
        return container.key_lines.get(key)
    if isinstance(container, YList) and isinstance(key, int) and 0 <= key < len(container.item_lines):
        return container.item_lines[key]
    return None


def where(name: str, container: Any, key: Any = None) -> str:
    """'name:line' for an error about container[key], or just 'name' when the line is unknown."""
    line = line_of(container, key)
    if line is None:
        line = line_of(container)
    return f"{name}:{line}" if line else name


def under_key(data: Any, key: str, name: str, hint: str) -> Any:
    """A file that is a list, or a mapping with only `key:` holding it: the list (or None when absent)."""
    if not isinstance(data, dict):
        return data
    extra = [k for k in data if k != key]
    if extra:
        raise InputError(where(name, data, extra[0]), f"unknown top-level key {extra[0]!r}", hint)
    return data.get(key)
