"""Phase rules: map jobs to a lifecycle phase (and optionally a project) by their name, account, labels...

A rules file is YAML, a list of rules (or ``{rules: [...]}``), tried in order; the first rule whose
every ``match`` entry matches decides::

    - match: {account: "llm-*", name: "/^(pt|pretrain)[-_]/"}
      phase: pretraining
    - match: {label.wattprint.io/phase: "*"}      # any pod carrying that label
      project: platform
    - match: {}                                   # catch-all (optional)
      phase: experimentation

Match keys: name, account, project, user, wckey, comment, cluster, namespace and ``label.<key>``
(a Kubernetes pod label; ``label.wattprint.io/team`` and ``label.wattprint_io_team`` are the same key,
written the way kube-state-metrics sanitises it). A value is a shell glob matched against the whole field,
case-sensitive (``llm-*``), or ``/regex/`` searched anywhere in it (anchor with ^ and $; ``(?i)`` for
case-insensitive). A field the job does not have never matches (not even ``*``).

A rule gives ``phase`` (one of records.PHASES), ``project`` (overrides the project the source would
use), or both. Parsers use an explicit value first (a ledger's phase column, a ``phase=`` hint in a
Slurm WCKey/Comment, a pod's phase label), then the first matching rule, then ``unclassified``.
Errors name the file, line and rule number (1-based).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from ...errors import InputError
from ...files import MAX_SMALL_FILE_BYTES, read_regular
from ...records import PHASES
from . import yamlmarks
from .common import suggest

MATCH_KEYS = ("name", "account", "project", "user", "wckey", "comment", "cluster", "namespace")
RULE_KEYS = ("match", "phase", "project")
_HINT_RX = re.compile(r"(?:^|[\s;,&|])phase\s*[=:]\s*([A-Za-z_-]+)", re.IGNORECASE)


def label_key(key: str) -> str:
    """'label.<key>' with the key sanitised like kube-state-metrics does (non [A-Za-z0-9_] -> _)."""
    return "label." + re.sub(r"[^A-Za-z0-9_]", "_", key)


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern[str] | None = None

    def matches(self, value: str) -> bool:
        return bool(self.regex.search(value)) if self.regex is not None else fnmatchcase(value, self.text)


@dataclass(frozen=True)
class Rule:
    number: int                   # 1-based position in the file
    line: int | None
    match: tuple[tuple[str, Pattern], ...]
    phase: str | None
    project: str | None

    def matches(self, fields: Mapping[str, str]) -> bool:
        for key, pattern in self.match:
            value = fields.get(key)
            if value is None or not pattern.matches(value):
                return False
        return True


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...] = ()
    source: str = ""

    def apply(self, fields: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(phase, project) of the first rule that matches these fields, else (None, None).

        Field keys are the match keys; labels as 'label.<sanitised key>' (see label_key).
        """
        for rule in self.rules:
            if rule.matches(fields):
                return rule.phase, rule.project
        return None, None

    @classmethod
    def load(cls, path: str | Path) -> Rules:
        name = str(path)
        try:
            text = read_regular(path, MAX_SMALL_FILE_BYTES, what="phase rules file").decode("utf-8")
        except OSError as exc:
            raise InputError(name, f"cannot read the phase rules file: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise InputError(name, "the phase rules file is not UTF-8 text") from None
        return cls.from_text(text, name)

    @classmethod
    def from_text(cls, text: str, name: str) -> Rules:
        data = yamlmarks.load(text, name, typed=False)
        if data is None:
            return cls((), name)
        if isinstance(data, dict):
            extra = [k for k in data if k != "rules"]
            if extra:
                raise InputError(yamlmarks.where(name, data, extra[0]), f"unknown top-level key {extra[0]!r}",
                                 "a rules file is a list of rules, or a mapping with only 'rules:'")
            data = data.get("rules") or yamlmarks.YList()
        if not isinstance(data, list):
            raise InputError(name, "a rules file must be a list of rules", "see docs/config.md (phase rules)")
        return cls(tuple(_rule(data, i, name) for i in range(len(data))), name)


def _rule(items: list[object], i: int, name: str) -> Rule:
    item = items[i]
    where = yamlmarks.where(name, items, i)
    label = f"rule #{i + 1}"
    if not isinstance(item, dict):
        raise InputError(where, f"{label} must be a mapping with 'match' and 'phase' and/or 'project'")
    for key in item:
        if key not in RULE_KEYS:
            raise InputError(yamlmarks.where(name, item, key),
                             f"{label}: unknown key {key!r}{suggest(str(key), RULE_KEYS)}",
                             f"a rule has {', '.join(RULE_KEYS)}")
    match = item.get("match")
    if not isinstance(match, dict):
        raise InputError(where, f"{label}: 'match' must be a mapping of field: pattern (use {{}} to match every job)")
    patterns: list[tuple[str, Pattern]] = []
    for key, value in match.items():
        kwhere = yamlmarks.where(name, match, key)
        skey = str(key)
        if skey.startswith("label.") and len(skey) > len("label."):
            field = label_key(skey[len("label."):])
        elif skey in MATCH_KEYS:
            field = skey
        else:
            raise InputError(kwhere, f"{label}: unknown match key {skey!r}{suggest(skey, MATCH_KEYS)}",
                             f"use one of {', '.join(MATCH_KEYS)} or label.<key>")
        if not isinstance(value, str):
            raise InputError(kwhere, f"{label}: match {skey!r} needs a glob or /regex/ string")
        patterns.append((field, _pattern(value, kwhere, label)))
    phase = item.get("phase")
    project = item.get("project")
    if phase is not None:
        if not isinstance(phase, str) or phase.strip().lower() not in PHASES:
            raise InputError(yamlmarks.where(name, item, "phase"),
                             f"{label}: unknown phase {phase!r}{suggest(str(phase).lower(), PHASES)}",
                             f"use one of {', '.join(PHASES)}")
        phase = phase.strip().lower()
    if project is not None and (not isinstance(project, str) or not project.strip()):
        raise InputError(yamlmarks.where(name, item, "project"), f"{label}: 'project' must be a non-empty string")
    if phase is None and project is None:
        raise InputError(where, f"{label} sets neither 'phase' nor 'project'", "give at least one")
    return Rule(i + 1, yamlmarks.line_of(items, i), tuple(patterns), phase, project)


def _pattern(value: str, where: str, label: str) -> Pattern:
    if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
        try:
            return Pattern(value, re.compile(value[1:-1]))
        except re.error as exc:
            raise InputError(where, f"{label}: bad regular expression {value!r}: {exc}") from None
    return Pattern(value)


def phase_hint(text: str, *, bare: bool = False) -> str | None:
    """The phase a user wrote into a Slurm WCKey/Comment, lower-cased and not yet validated.

    ``phase=finetuning;ticket=42`` (also ``phase:x``, separated by ; , & | or spaces) anywhere in the
    text; with `bare`, a text that is only a phase word (a WCKey ``pretraining``, or ``*pretraining``,
    Slurm's mark of a default WCKey) counts too.
    """
    if not text:
        return None
    m = _HINT_RX.search(text)
    if m:
        return m.group(1).lower()
    if bare:
        word = text.strip().lstrip("*").strip().lower()
        if word in PHASES:
            return word
    return None
