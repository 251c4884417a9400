"""The `wattprint` command loads only what the verb it runs needs.

Every call pays its imports (cron, Slurm epilogs, the few hundred CLI runs of the test suite): building the parser
and any `--help` load no verb, DuckDB, pyarrow or requests; `jobs import` loads its verb but not the reports,
`wattprint run` or the live server. Each check runs in a fresh interpreter and lists what got loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

PARSER_FREE = ("duckdb", "pyarrow", "pandas", "requests", "prometheus_client", "wattprint.pipeline.verbs",
               "wattprint.pipeline.settings", "wattprint.pipeline.model", "wattprint.pipeline.store",
               "wattprint.pipeline.month", "wattprint.pipeline.estimate", "wattprint.pipeline.demo",
               "wattprint.pipeline.report", "wattprint.pipeline.live")
JOBS_IMPORT_FREE = ("requests", "prometheus_client", "wattprint.pipeline.report", "wattprint.pipeline.live",
                    "wattprint.pipeline.month", "wattprint.pipeline.estimate", "wattprint.pipeline.demo")


def _loaded(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", "import json, sys\n" + code +
                           "\nprint(json.dumps(sorted(sys.modules)))"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def _among(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def test_the_parser_and_every_help_load_no_verb() -> None:
    code = """
import argparse, contextlib, io
from wattprint.pipeline.cli import build_parser

def leaves(parser, path):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaves(sub, [*path, name])

parser = build_parser()
for argv in [[], *leaves(parser, [])]:
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    assert "usage: wattprint" in out.getvalue(), argv
"""
    loaded = _loaded(code)
    assert "wattprint.pipeline.cli.serve_intensity" in loaded
    assert not _among(loaded, PARSER_FREE)


def test_jobs_import_loads_its_verb_only(tmp_path) -> None:
    ledger = tmp_path / "jobs.csv"
    ledger.write_text("job_id,project,phase,cluster,user,start,end,nodes,gpus\n"
                      "42,p,pretraining,c1,ana,2024-03-01T00:00:00Z,2024-03-01T01:00:00Z,gpu01,1\n", encoding="utf-8")
    argv = ["jobs", "import", str(ledger), "--format", "csv", "--db", str(tmp_path / "w.duckdb"), "-q"]
    loaded = _loaded(f"from wattprint.pipeline.cli import main\nassert main({argv!r}) == 0")
    assert "wattprint.pipeline.verbs" in loaded and "duckdb" in loaded
    assert not _among(loaded, JOBS_IMPORT_FREE)
