"""The commands the README and the operations guide show work as written.

* every `helm install` / `helm upgrade` line (README.md, docs/operations.md, the chart's README) runs as
  `helm template` with the same release, chart and flags, and renders the exporter DaemonSet;
* every `wattprint ...` command in README.md's shell blocks is accepted by the CLI's own parser (the flags exist,
  the values parse), and the `wattprint estimate` ones, which need no server or database, run and exit 0.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_helm import helm, run_helm  # noqa: F401  (helm: the pinned binary, a fixture)

HELM_DOCS = [REPO / "README.md", REPO / "docs" / "operations.md", REPO / "helm" / "wattprint" / "README.md"]
# install/upgrade flags that `helm template` has no use for (they act on a cluster)
CLUSTER_ONLY = {"--create-namespace", "--install", "--wait", "--atomic", "--reuse-values", "--reset-values",
                "--dry-run", "--force"}
SEPARATORS = {"&&", "||", "|", ";"}


def shell_lines(path: Path) -> list[str]:
    """The lines of the shell code blocks of a Markdown file, continuation lines joined."""
    text = path.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(?:bash|sh|shell|console)\n(.*?)^```", text, re.S | re.M)
    return [line.strip().removeprefix("$ ") for b in blocks for line in b.replace("\\\n", " ").splitlines()]


def commands(path: Path) -> list[list[str]]:
    """Each simple command of the shell blocks as argv (comments dropped; split at && || | ;)."""
    out: list[list[str]] = []
    for line in shell_lines(path):
        lexer = shlex.shlex(line, posix=True, punctuation_chars="&|;")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        argv: list[str] = []
        for token in [*lexer, ";"]:
            if token in SEPARATORS:
                if argv:
                    out.append(argv)
                argv = []
            else:
                argv.append(token)
    return out


def helm_commands() -> list[tuple[str, list[str]]]:
    return [(f"{p.relative_to(REPO)}: {' '.join(argv)}", argv) for p in HELM_DOCS for argv in commands(p)
            if argv[:2] in (["helm", "install"], ["helm", "upgrade"])]


def wattprint_commands() -> list[tuple[str, list[str]]]:
    return [(" ".join(argv), argv) for argv in commands(REPO / "README.md")
            if argv[0] in ("wattprint", ".venv/bin/wattprint")]


def test_the_docs_have_the_commands_this_checks() -> None:
    helms = helm_commands()
    quickstart = "README.md: helm install wattprint helm/wattprint --set cluster.name=gpu-a"
    assert any(c.startswith(quickstart) for c, _ in helms)
    assert {c.split(":")[0] for c, _ in helms} == {str(p.relative_to(REPO)) for p in HELM_DOCS}
    verbs = {argv[1] for _, argv in wattprint_commands()}
    assert {"ingest", "jobs", "intensity", "report", "run", "estimate", "serve-intensity"} <= verbs


@pytest.mark.parametrize("argv", [pytest.param(a, id=c[:90]) for c, a in helm_commands()])
def test_helm_install_and_upgrade_lines_render(helm: str, argv: list[str]) -> None:  # noqa: F811
    args = [a for a in argv[2:] if a not in CLUSTER_ONLY]
    if "--namespace" not in args and "-n" not in args:
        args += ["--namespace", "default"]
    proc = run_helm(helm, "template", *args, check=False)
    assert proc.returncode == 0, f"helm {' '.join(argv[1:])}\n{proc.stderr}"
    assert "kind: DaemonSet" in proc.stdout


@pytest.mark.parametrize("argv", [pytest.param(a, id=c[:90]) for c, a in wattprint_commands()])
def test_wattprint_lines_parse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from wattprint.pipeline.cli import build_parser, main

    args = build_parser().parse_args(argv[1:])  # SystemExit (a failure) on a flag or value the CLI refuses
    if args.verb == "estimate":
        assert main(argv[1:]) == 0, capsys.readouterr().err
