"""Recording stand-ins for the verbs `wattprint run` calls, for tests of the run and of the units that start it.

Not a test module. `record_steps(monkeypatch)` replaces the step functions in wattprint.pipeline.verbs with
recorders and returns the list they append (verb, request) to; each stand-in checks that it got its verb's typed
request, and the report stand-in writes a one-line file at the request's `out`. `single_verb_request(argv)` is
the request the single verb's own command line gives: a step of the run must be the same call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wattprint.pipeline import verbs
from wattprint.pipeline.cli import build_parser
from wattprint.pipeline.cli import compact as compact_cli
from wattprint.pipeline.cli import ingest as ingest_cli
from wattprint.pipeline.cli import intensity as intensity_cli
from wattprint.pipeline.cli import jobs as jobs_cli
from wattprint.pipeline.cli import report as report_cli
from wattprint.pipeline.report.run import ReportRequest

STEP_VERBS = {"ingest": "ingest", "jobs_sync_kubernetes": "jobs sync-kubernetes", "jobs_import": "jobs import",
              "intensity_fetch": "intensity fetch", "intensity_import": "intensity import", "report": "report",
              "compact": "compact"}
REQUEST_TYPES: dict[str, type] = {
    "ingest": verbs.IngestRequest, "jobs sync-kubernetes": verbs.JobsSyncRequest,
    "jobs import": verbs.JobsImportRequest, "intensity fetch": verbs.IntensityFetchRequest,
    "intensity import": verbs.IntensityImportRequest, "report": ReportRequest, "compact": verbs.CompactRequest}
CLI_REQUESTS = {
    ("ingest", None): ingest_cli.request, ("jobs", "sync-kubernetes"): jobs_cli.sync_request,
    ("jobs", "import"): jobs_cli.import_request, ("intensity", "fetch"): intensity_cli.fetch_request,
    ("intensity", "import"): intensity_cli.import_request, ("report", None): report_cli.request,
    ("compact", None): compact_cli.request}


class Calls(list[tuple[str, Any]]):
    """(verb, request) in call order; `sacct_output`: what the sacct stand-in wrote, by the imported file's path
    (the run removes the file after the step)."""

    sacct_output: dict[str, Any]


def record_steps(monkeypatch: pytest.MonkeyPatch, fail: dict[str, BaseException | int] | None = None) -> Calls:
    calls = Calls()
    calls.sacct_output = {}
    fail = fail or {}

    def stand_in(verb: str) -> Any:
        def step(request: Any, settings: Any) -> int:
            assert type(request) is REQUEST_TYPES[verb], f"{verb} called with {type(request).__name__}"
            if verb == "jobs import" and request.format == "sacct-json":
                calls.sacct_output[request.path] = json.loads(Path(request.path).read_text())
            calls.append((verb, request))
            outcome = fail.get(verb, 0)
            if isinstance(outcome, BaseException):
                raise outcome
            if verb == "report" and not outcome:
                Path(request.out).write_text(f"{request.format}\n")
            return outcome
        return step

    for name, verb in STEP_VERBS.items():
        monkeypatch.setattr(verbs, name, stand_in(verb))
    return calls


def single_verb_request(argv: list[str]) -> Any:
    """The typed request `wattprint ARGV` hands its verb function."""
    args = build_parser().parse_args(argv)
    return CLI_REQUESTS[args.verb, getattr(args, "action", None)](args)
