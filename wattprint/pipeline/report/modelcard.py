"""Write the Hugging Face ``co2_eq_emissions`` metadata into a model card's YAML front matter.

A Hub model card (README.md) starts with a YAML front matter: a first line ``---``, the YAML,
and a line ``---``. The Hub reads carbon data from its ``co2_eq_emissions`` key (see
https://huggingface.co/docs/hub/model-cards-co2)::

    co2_eq_emissions:
      emissions: 1234.5          # a number, in GRAMS of CO2eq
      source: wattprint          # where the number comes from
      training_type: fine-tuning # "pre-training" or "fine-tuning"
      geographical_location: ... # as granular as possible
      hardware_used: 8 x NVIDIA H100 80GB HBM3

The update is textual and narrow: only the lines of the top-level ``co2_eq_emissions`` key are
replaced (or a new block is appended at the end of the front matter). Every other byte of the file
stays as it was: other keys, their comments, order and quoting, the Markdown body, CRLF line
endings, a UTF-8 BOM, a missing final newline. Before anything is written the new front matter is
parsed again and must give back exactly the block we meant to write and the same values for every
other key; on any doubt the file is left untouched and an InputError says where and why.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import InputError

KEY = "co2_eq_emissions"
TRAINING_TYPES = ("pre-training", "fine-tuning")
STANDARD_FIELDS = ("emissions", "source", "training_type", "geographical_location", "hardware_used")
# what wattprint adds after them (co2_block's `extra`): the EU AI Act Annex XI training energy of the report
# (report.annex_xi). The Hub reads the standard fields and keeps the others as plain metadata.
DISCLOSURE_FIELDS = ("training_energy_kwh", "training_energy_method")
# and, when the training jobs' ledger rows give functional units, the SCI of training (report.sci, sci_card.py):
# grams of CO2eq per unit and per million units (the same grams as `emissions`), the unit's name, how many, the
# functional unit in words and the method. One flat set of scalars, prefixed, as the Hub's own keys are.
SCI_FIELDS = ("sci_g_per_unit", "sci_g_per_million_units", "sci_unit_name", "sci_units", "sci_functional_unit",
              "sci_method")
EMISSIONS_DECIMALS = 2  # grams: 0.01 g is far below any measurement's uncertainty

_BOM = "\ufeff"
_FENCE = re.compile(r"---[ \t]*")
_KEY_LINE = re.compile(r"""(?:co2_eq_emissions|"co2_eq_emissions"|'co2_eq_emissions')[ \t]*:(?:[ \t]|$)""")
_SEQ_ITEM = re.compile(r"-(?:[ \t]|$)")


class ModelCardError(InputError):
    """A model card we cannot update safely. `where` is 'PATH' or 'PATH:LINE' (1-based, in the file)."""


@dataclass(frozen=True)
class UpdateResult:
    """What `update_file` did.

    created: the file did not exist and was written from the front matter + `body_if_new`.
    added_front_matter: the text had no front matter, so a new one (holding only the block) was put
        on top; the body is byte-identical. The caller should warn: a card without metadata is unusual.
    replaced: an existing `co2_eq_emissions` key was replaced (False: the block was appended).
    """

    created: bool
    added_front_matter: bool
    replaced: bool


# --------------------------------------------------------------------------- the block


def co2_block(emissions_g: float, source: str, training_type: str | None, geographical_location: str | None,
              hardware_used: str | None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `co2_eq_emissions` mapping, validated, in the Hub's key order; None values are dropped.

    emissions_g is in grams of CO2eq (the Hub's unit; not kg), finite and >= 0, rounded to 0.01 g.
    `extra` adds further keys after the standard ones (they must not repeat a standard key).
    """
    block: dict[str, Any] = {"emissions": _emissions(emissions_g, f"{KEY}.emissions")}
    block["source"] = _text(source, "source", required=True)
    if training_type is not None:
        if training_type not in TRAINING_TYPES:
            raise ModelCardError(f"{KEY}.training_type", f"{training_type!r} is not a Hub training type",
                                 f"use one of: {', '.join(TRAINING_TYPES)}")
        block["training_type"] = training_type
    for name, value in (("geographical_location", geographical_location), ("hardware_used", hardware_used)):
        if value is not None:
            block[name] = _text(value, name, required=False)
    for k, v in (extra or {}).items():
        if not isinstance(k, str) or not k:
            raise ModelCardError(f"{KEY}", f"extra key {k!r} is not a non-empty string")
        if k in STANDARD_FIELDS:
            raise ModelCardError(f"{KEY}.{k}", "is a standard field; pass it as an argument, not in extra")
        if v is not None:
            block[k] = v
    return block


def _emissions(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelCardError(where, f"{value!r} is not a number", "give the emissions in grams of CO2eq")
    if not math.isfinite(value):
        raise ModelCardError(where, f"{value!r} is not a finite number", "the measurement is missing or broken")
    if value < 0:
        raise ModelCardError(where, f"{value!r} g is negative", "emissions are grams of CO2eq, >= 0")
    return round(float(value), EMISSIONS_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _text(value: Any, name: str, *, required: bool) -> str:
    if not isinstance(value, str):
        raise ModelCardError(f"{KEY}.{name}", f"{value!r} is not a string")
    if required and not value.strip():
        raise ModelCardError(f"{KEY}.{name}", "is empty", "say where the number comes from, e.g. 'wattprint'")
    return value


# --------------------------------------------------------------------------- text


@dataclass(frozen=True)
class _Parsed:
    bom: str
    lines: list[str]           # the text without BOM, split after each "\n"
    close: int | None          # index of the closing "---" line; None: no front matter
    data: dict[str, Any]       # the loaded front matter ({} when there is none or it is empty)
    eol: str                   # line ending for lines we write


def update_text(text: str, co2: Mapping[str, Any], *, path: str = "README.md") -> str:
    """`text` with its front matter's `co2_eq_emissions` set to `co2`; everything else unchanged.

    A text without front matter gets a new one on top holding only the block. `path` names the file
    in errors. Raises ModelCardError (an InputError) on any problem.
    """
    return _update(text, co2, path)[0]


def _update(text: str, co2: Mapping[str, Any], path: str) -> tuple[str, bool, bool]:
    """(new text, added_front_matter, replaced)."""
    block = _check_co2(co2, path)
    p = _parse(text, path)
    rendered = _render(block, p.eol, path)
    if p.close is None:
        new_fm = [rendered]
        new_text = p.bom + "---" + p.eol + rendered + "---" + p.eol + "".join(p.lines)
        _verify("".join(new_fm), {}, block, path)
        return new_text, True, False
    fm = p.lines[1:p.close]
    span = _key_span(fm, path)
    replaced = span is not None
    if replaced != (KEY in p.data):
        raise ModelCardError(f"{path}:{(span[0] if span else 0) + 2}",
                             f"cannot tell which lines hold the top-level {KEY} key",
                             f"edit {KEY} by hand; the file was not changed")
    if span is not None:
        new_fm = fm[:span[0]] + [rendered] + fm[span[1]:]
    else:
        placeholder = _empty_flow_mapping(fm) if not p.data else None
        if placeholder is not None:
            new_fm = fm[:placeholder] + [rendered] + fm[placeholder + 1:]
        else:
            new_fm = fm + [rendered]
    _verify("".join(new_fm), p.data, block, path)
    return p.bom + p.lines[0] + "".join(new_fm) + "".join(p.lines[p.close:]), False, replaced


def _check_co2(co2: Mapping[str, Any], path: str) -> dict[str, Any]:
    if not isinstance(co2, Mapping) or not co2:
        raise ModelCardError(path, f"the {KEY} block must be a non-empty mapping", "build it with co2_block()")
    if "emissions" not in co2:
        raise ModelCardError(path, f"the {KEY} block has no 'emissions'", "give the emissions in grams of CO2eq")
    _emissions(co2["emissions"], f"{KEY}.emissions")
    block: dict[str, Any] = _plain(co2)
    return block


def _split_lines(text: str) -> list[str]:
    """Split after each "\\n" only (str.splitlines also splits on \\x0b, \\x1c, U+2028, ...)."""
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _bare(line: str) -> str:
    return line.rstrip("\n").rstrip("\r")


def _parse(text: str, path: str) -> _Parsed:
    bom = _BOM if text.startswith(_BOM) else ""
    lines = _split_lines(text[len(bom):])
    if not lines or not _FENCE.fullmatch(_bare(lines[0])):
        first = next((i for i, line in enumerate(lines) if _bare(line).strip()), None)
        if first is not None and _FENCE.fullmatch(_bare(lines[first]).strip()):
            raise ModelCardError(f"{path}:{first + 1}",
                                 "the '---' that seems to open the front matter is not on line 1",
                                 "remove what is above it (the Hub may or may not read it as metadata); "
                                 "the file was not changed")
        first_nl = text.find("\n")
        eol = "\r\n" if first_nl > 0 and text[first_nl - 1] == "\r" else "\n"
        return _Parsed(bom, lines, None, {}, eol)
    eol = "\r\n" if lines[0].endswith("\r\n") else "\n"
    close = next((i for i in range(1, len(lines)) if _FENCE.fullmatch(_bare(lines[i]))), None)
    if close is None:
        raise ModelCardError(f"{path}:1", "the front matter opened by '---' on line 1 has no closing '---' line",
                             "end the metadata with a line '---'; the file was not changed")
    data = _load(_fm_text(lines[1:close]), path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ModelCardError(f"{path}:2", f"the front matter is a YAML {type(data).__name__}, not a mapping",
                             "model card metadata is 'key: value' lines; the file was not changed")
    return _Parsed(bom, lines, close, data, eol)


def _fm_text(fm: list[str]) -> str:
    return "".join(fm)


def _load(fm_text: str, path: str) -> Any:
    """yaml.safe_load the front matter; errors name the file line (front matter line 1 is file line 2)."""
    try:
        return yaml.safe_load(fm_text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 2}" if mark is not None else path
        raise ModelCardError(where, f"the front matter is not valid YAML: {exc.problem or exc.context}",
                             "fix the YAML between the '---' lines at that line; the file was not changed") from None
    except yaml.YAMLError as exc:
        raise ModelCardError(path, f"the front matter is not valid YAML: {exc}",
                             "fix the YAML between the '---' lines; the file was not changed") from None


def _is_top_level_key(line: str) -> bool:
    """A line that starts a new top-level entry: column 0, not blank, not a comment, not a '- ' item."""
    bare = _bare(line)
    return bool(bare) and bare[0] not in " \t#" and not _SEQ_ITEM.match(bare)


def _is_trailing_filler(line: str) -> bool:
    """Blank lines and column-0 comments: after a block they more likely belong to the next key."""
    bare = _bare(line)
    return not bare.strip() or bare.startswith("#")


def _key_span(fm: list[str], path: str) -> tuple[int, int] | None:
    """[start, end) of the co2_eq_emissions key's lines within the front matter, or None."""
    starts = [i for i, line in enumerate(fm) if _KEY_LINE.match(_bare(line))]
    if len(starts) > 1:
        raise ModelCardError(f"{path}:{starts[1] + 2}", f"{KEY} appears more than once in the front matter",
                             f"keep one {KEY} key (YAML keeps only the last); the file was not changed")
    if not starts:
        return None
    start = starts[0]
    end = start + 1
    while end < len(fm) and not _is_top_level_key(fm[end]):
        end += 1
    while end > start + 1 and _is_trailing_filler(fm[end - 1]):
        end -= 1
    return start, end


def _empty_flow_mapping(fm: list[str]) -> int | None:
    """Index of a lone `{}` line (the Hub's template writes one for empty metadata), if that is all there is."""
    content = [i for i, line in enumerate(fm) if not _is_trailing_filler(line)]
    if len(content) == 1 and _bare(fm[content[0]]).strip() == "{}":
        return content[0]
    return None


def _render(block: dict[str, Any], eol: str, path: str) -> str:
    try:
        out = yaml.safe_dump({KEY: block}, sort_keys=False, default_flow_style=False, allow_unicode=True,
                             width=1_000_000, line_break=eol)
    except yaml.YAMLError as exc:
        raise ModelCardError(path, f"cannot write the {KEY} block as YAML: {exc}",
                             "use only strings, numbers, booleans, lists and mappings") from None
    # safe_dump indents every line of a value under the key; a value line at column 0 could be a '---' that
    # ends the front matter for the Hub, or a key of its own. Refuse rather than trust that.
    if any(line.strip() and not line.startswith(" ") for line in _split_lines(str(out))[1:]):
        raise ModelCardError(path, f"the {KEY} block would not stay inside its key",
                             "the file was not changed")
    return str(out)


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (a `.nan` elsewhere in the card must not fail the check)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _verify(new_fm: str, old: dict[str, Any], block: dict[str, Any], path: str) -> None:
    """The new front matter must load to a mapping: `block` under KEY and every other key as before."""
    hint = f"edit {KEY} by hand; the file was not changed"
    try:
        new = yaml.safe_load(new_fm)
    except yaml.YAMLError as exc:
        raise ModelCardError(path, f"the updated front matter would not be valid YAML ({_first_line(exc)})",
                             hint) from None
    if not isinstance(new, dict):
        raise ModelCardError(path, "the updated front matter would not be a mapping", hint)
    if not _same(new.get(KEY), block):
        raise ModelCardError(path, f"{KEY} would not read back as written", hint)
    rest_old = {k: v for k, v in old.items() if k != KEY}
    rest_new = {k: v for k, v in new.items() if k != KEY}
    if not _same(rest_old, rest_new):
        changed = sorted(str(k) for k in rest_old.keys() | rest_new.keys()
                         if not _same(rest_old.get(k), rest_new.get(k)))
        raise ModelCardError(path, f"the update would change other keys: {', '.join(changed)}", hint)


def _plain(value: Any) -> Any:
    """The block as safe_dump can write it and safe_load gives it back: dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# --------------------------------------------------------------------------- file


def update_file(path: str | Path, co2: Mapping[str, Any], *, body_if_new: str = "") -> UpdateResult:
    """Set `co2_eq_emissions` in the card at `path`, atomically; create it from `body_if_new` if missing.

    The file keeps its mode; the new content is written to a temporary file in the same directory,
    fsynced and renamed over it (a symlink is followed: its target is updated). On any error the
    file's bytes are unchanged and a ModelCardError (an InputError) is raised.
    """
    name = str(path)
    target = Path(os.path.realpath(path))
    created = not target.exists()
    if created:
        if not target.parent.is_dir():
            raise ModelCardError(name, "the directory for the new model card does not exist",
                                 f"create {target.parent} first")
        old_bytes = None
        text = body_if_new
        mode = _default_mode()
    else:
        if target.is_dir():
            raise ModelCardError(name, "is a directory, not a model card file", "give the path of the README.md")
        if not target.is_file():
            raise ModelCardError(name, "is not a regular file", "give the path of the README.md")
        try:
            old_bytes = target.read_bytes()
            mode = target.stat().st_mode & 0o7777
        except OSError as exc:
            raise ModelCardError(name, f"cannot read the model card: {exc.strerror or exc}") from None
        try:
            text = old_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelCardError(name, f"is not UTF-8 text (byte {exc.start})",
                                 "model cards are UTF-8; re-encode the file") from None
    new_text, added, replaced = _update(text, co2, name)
    new_bytes = new_text.encode("utf-8")
    if new_bytes != old_bytes:
        _atomic_write(target, new_bytes, mode, name)
    return UpdateResult(created=created, added_front_matter=added, replaced=replaced)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _atomic_write(target: Path, data: bytes, mode: int, name: str) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ModelCardError(name, f"cannot write next to the model card: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ModelCardError(name, f"cannot write the model card: {exc.strerror or exc}",
                             "the file was not changed") from None
    try:
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
