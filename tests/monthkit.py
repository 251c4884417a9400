"""Recording stand-ins for the verbs `wattprint run` calls, for tests of the run and of the units that start it.

Not a test module. `record_steps(monkeypatch)` replaces the step functions in wattprint.pipeline.verbs with
recorders and returns the list they append (verb, flags) to; the report stand-in writes a one-line file at --out.
`parsed_flags(argv)` is what the single verb's own parser gives for a command line: a recorded call must carry
every flag the verb reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from wattprint.pipeline import verbs
from wattprint.pipeline.cli import build_parser

STEP_VERBS = {"ingest": "ingest", "jobs_sync_kubernetes": "jobs sync-kubernetes", "jobs_import": "jobs import",
              "intensity_fetch": "intensity fetch", "intensity_import": "intensity import", "report": "report"}


def record_steps(monkeypatch: pytest.MonkeyPatch, fail: dict[str, BaseException | int] | None = None
                 ) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    fail = fail or {}

    def stand_in(verb: str) -> Any:
        def step(args: argparse.Namespace, settings: Any) -> int:
            flags = dict(vars(args))
            if verb == "jobs import" and flags.get("format") == "sacct-json":
                flags["content"] = json.loads(Path(flags["path"]).read_text())  # the temp file goes after the step
            calls.append((verb, flags))
            outcome = fail.get(verb, 0)
            if isinstance(outcome, BaseException):
                raise outcome
            if verb == "report" and not outcome:
                Path(flags["out"]).write_text(f"{flags['format']}\n")
            return outcome
        return step

    for name, verb in STEP_VERBS.items():
        monkeypatch.setattr(verbs, name, stand_in(verb))
    return calls


def parsed_flags(argv: list[str]) -> set[str]:
    """The attribute names the single verb's parser sets for argv (a verb line that parses)."""
    return set(vars(build_parser().parse_args(argv)))


SINGLE_VERB_ARGV = {
    "ingest": ["ingest", "--prometheus", "http://p:9090", "--start", "2024-03-01T00:00:00Z",
               "--end", "2024-04-01T00:00:00Z"],
    "jobs sync-kubernetes": ["jobs", "sync-kubernetes", "--prometheus", "http://p:9090", "--cluster", "c",
                             "--start", "2024-03-01T00:00:00Z", "--end", "2024-04-01T00:00:00Z"],
    "jobs import": ["jobs", "import", "x.json", "--format", "sacct-json"],
    "intensity fetch": ["intensity", "fetch", "--source", "uk", "--zone", "GB", "--start", "2024-03-01T00:00:00Z",
                        "--end", "2024-04-01T00:00:00Z"],
    "intensity import": ["intensity", "import", "x.csv", "--format", "csv"],
    "report": ["report", "--month", "2024-03"],
}


def assert_complete(calls: list[tuple[str, dict[str, Any]]]) -> None:
    """Each recorded step got every flag its verb's parser defines (what the verb function may read)."""
    for verb, flags in calls:
        missing = parsed_flags(SINGLE_VERB_ARGV[verb]) - set(flags) - {"verb", "action"}
        assert not missing, f"{verb}: no {sorted(missing)}"
