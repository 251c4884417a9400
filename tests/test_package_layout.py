"""One package, two sides: the exporter never imports the pipeline, duckdb or pyarrow.

The node daemon runs on every GPU node; what it imports is what it must carry and what can break it. Checked
twice: statically (every import statement under wattprint/exporter/) and at run time (a fresh interpreter that
imports every exporter module, the backends and discoveries included, then lists what got loaded).
"""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import REPO

EXPORTER = REPO / "wattprint" / "exporter"
COMMON = REPO / "wattprint" / "common"      # what both sides import: it must be as light as the exporter
FORBIDDEN = ("wattprint.pipeline", "duckdb", "pyarrow", "pandas")


def _imports(path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in `path`, relative ones resolved against its package."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found += [(node.lineno, name)] + [(node.lineno, f"{name}.{a.name}") for a in node.names]
    return found


def _bad(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_no_exporter_module_imports_the_pipeline_or_its_dependencies() -> None:
    offenders = [f"{p.relative_to(REPO)}:{line} imports {name}"
                 for root in (EXPORTER, COMMON) for p in sorted(root.rglob("*.py"))
                 for line, name in _imports(p) if _bad(name)]
    assert not offenders, offenders


def test_loading_every_exporter_module_loads_none_of_them() -> None:
    modules = sorted(".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                     for root in (EXPORTER, COMMON) for p in root.rglob("*.py"))
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n"
            "    try:\n"
            "        importlib.import_module(m)\n"
            "    except ImportError as e:\n"
            "        if 'pynvml' not in str(e): raise\n"  # NVML's binding may be absent on a laptop
            "print('\\n'.join(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = [m for m in done.stdout.split() if _bad(m)]
    assert not loaded, loaded
    assert "wattprint.exporter.app" in done.stdout.split()


def test_only_wattprint_at_the_top_level() -> None:
    tops = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").is_file())
    assert tops == ["tests", "wattprint"], tops


def test_flags_stay_in_the_cli() -> None:
    """Only wattprint/pipeline/cli/ parses flags: every verb below it is a typed function taking a request, so
    tests, the demo and `wattprint run` call it without building an argparse.Namespace."""
    pipeline = REPO / "wattprint" / "pipeline"
    offenders = [f"{p.relative_to(REPO)}:{line}" for p in sorted(pipeline.rglob("*.py"))
                 if "cli" not in p.relative_to(pipeline).parts[:1]
                 for line, name in _imports(p) if name == "argparse" or name.startswith("argparse.")]
    assert not offenders, offenders
