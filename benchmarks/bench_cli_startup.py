"""What a `wattprint` call pays to start: three commands as whole processes, this checkout against another one.

Timed, each as a fresh `python -m wattprint.pipeline.cli ...` subprocess (what the console script runs), --runs
times after one untimed run of each (which also writes the __pycache__ of a freshly extracted tree):

  --help        `wattprint --help`
  report-help   `wattprint report --help`
  jobs-import   `wattprint jobs import jobs.csv --format csv --db NEW.duckdb -q`: a two-job ledger into a new
                DuckDB file each run; creating the schema and building the (empty) results is the verb's own work,
                the rest is start-up.

Baseline: the same commands run from another checkout of this repository, `--compare-rev REV` (its wattprint/
extracted with `git archive` into a temporary folder) or `--compare-root PATH`, with the same interpreter, the same
installed packages and the same files, interleaved with this checkout run by run (the order alternating), so that
both see the same machine. The code is then the only difference. Floor: `python -c pass` (interpreter and site
start-up, which no change to wattprint can remove), timed the same way; "above the floor" is a command's time
less the floor's median, the part the project's imports and work make.

Also, once per command and checkout, with `-X importtime`: the modules loaded when the call ends (sys.modules,
the interpreter's own included), the summed import time (self times; -X importtime itself slows imports, so
compare these between checkouts only), and which of duckdb, pyarrow, pandas, requests and wattprint's report/live
packages were loaded.

    .venv/bin/python benchmarks/bench_cli_startup.py [--compare-rev REV | --compare-root PATH] [--runs 20]
        [--markdown-out PATH] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from pathlib import Path

from machinefacts import cpu_model  # noqa: E402  (benchmarks/, beside this script)

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ("job_id,project,phase,cluster,user,start,end,nodes,gpus\n"
          "42,vision,pretraining,c1,ana,2024-03-01T00:00:00Z,2024-03-01T06:00:00Z,gpu01,4\n"
          "43,vision,finetuning,c1,bo,2024-03-01T02:00:00Z,,gpu02,1\n")
COMMANDS = ("--help", "report-help", "jobs-import")
WATCHED = ("duckdb", "pyarrow", "pandas", "requests", "wattprint.pipeline.report", "wattprint.pipeline.live")
# The import pass runs the CLI as -m does (runpy, cwd first on sys.path), then lists sys.modules: -X importtime also
# prints the imports that failed (pandas, when pyarrow looks for it and it is not installed).
LISTING = """import json, os, runpy, sys
sys.argv = ["wattprint", *json.loads(os.environ["BENCH_ARGV"])]
try:
    runpy.run_module("wattprint.pipeline.cli", run_name="__main__", alter_sys=True)
finally:
    with open(os.environ["BENCH_MODULES"], "w") as f:
        json.dump(sorted(sys.modules), f)
"""


def argv(command: str, work: Path, n: int) -> list[str]:
    if command == "--help":
        return ["--help"]
    if command == "report-help":
        return ["report", "--help"]
    return ["jobs", "import", str(work / "jobs.csv"), "--format", "csv", "--db", str(work / f"run-{n}.duckdb"), "-q"]


def run_once(root: Path | None, command: str, work: Path, n: int, importtime: bool = False) -> tuple[float, str]:
    """Wall seconds of one call (root None: the floor, `python -c pass`), and its stderr."""
    env = {**os.environ, "PYTHONPATH": str(root or ROOT)}
    if root is None:
        cmd = [sys.executable, "-c", "pass"]
    elif importtime:
        cmd = [sys.executable, "-X", "importtime", "-c", LISTING]
        env |= {"BENCH_ARGV": json.dumps(argv(command, work, n)), "BENCH_MODULES": str(work / "modules.json")}
    else:
        cmd = [sys.executable, "-m", "wattprint.pipeline.cli", *argv(command, work, n)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=root or ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, timeout=300)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} (in {root}) exited {done.returncode}:\n{done.stderr[-2000:]}")
    for db in work.glob(f"run-{n}.duckdb*"):
        db.unlink()
    return seconds, done.stderr


def imports(stderr: str, modules: list[str]) -> dict:
    """Modules loaded at exit, the summed self time (s) of -X importtime's lines, the watched packages loaded."""
    total = sum(int(line[len("import time:"):].split("|")[0]) for line in stderr.splitlines()
                if line.startswith("import time:") and "self [us]" not in line)
    loaded = [w for w in WATCHED if any(m == w or m.startswith(w + ".") for m in modules)]
    return {"modules": len(modules), "seconds": total / 1e6, "loaded": loaded}


def extract(rev: str, into: Path) -> Path:
    """wattprint/ of `rev` (git archive) under `into`."""
    archive = into / "tree.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "archive", rev, "wattprint"], cwd=ROOT, stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def measure(trees: dict[str, Path], runs: int, work: Path) -> dict:
    times: dict[tuple[str, str], list[float]] = {(t, c): [] for t in trees for c in COMMANDS}
    floor: list[float] = []
    n = 0
    for root in trees.values():                 # untimed: page cache, __pycache__
        for command in COMMANDS:
            n += 1
            run_once(root, command, work, n)
    for i in range(runs):
        floor.append(run_once(None, "", work, 0)[0])
        order = list(trees.items()) if i % 2 == 0 else list(reversed(trees.items()))
        for command in COMMANDS:
            for name, root in order:
                n += 1
                times[name, command].append(run_once(root, command, work, n)[0])
    found = {}
    for name, root in trees.items():
        for command in COMMANDS:
            n += 1
            stderr = run_once(root, command, work, n, importtime=True)[1]
            found[name, command] = imports(stderr, json.loads((work / "modules.json").read_text()))
    return {"times": times, "floor": floor, "imports": found}


def machine() -> str:
    model = cpu_model()
    system = f"Linux {platform.release()}"
    try:
        pretty = next(ln.split("=", 1)[1].strip('"') for ln in Path("/etc/os-release").read_text().splitlines()
                      if ln.startswith("PRETTY_NAME="))
        system = f"{pretty}, {system}"
    except (OSError, StopIteration):
        pass

    def ver(pkg: str) -> str:
        try:
            return f"{pkg} {metadata.version(pkg)}"
        except metadata.PackageNotFoundError:
            return f"{pkg} not installed"

    return (f"{os.cpu_count()} CPU cores ({model}), {system}, Python {platform.python_version()}, "
            + ", ".join(ver(p) for p in ("duckdb", "pyarrow", "numpy", "pandas", "requests")))


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms"


def markdown(r: dict, trees: dict[str, Path], a: argparse.Namespace) -> str:
    floor = statistics.median(r["floor"])
    base = "baseline" if "baseline" in trees else None
    label = {"--help": "`wattprint --help`", "report-help": "`wattprint report --help`",
             "jobs-import": "`wattprint jobs import` (2 jobs, new DuckDB file)"}
    lines = [f"Machine: {machine()}. Run: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.", ""]
    if base:
        lines += [f"Baseline: {a.compare_rev or a.compare_root} ({trees['baseline']}); this checkout: {ROOT}.", ""]
    lines += [f"Wall time of the whole process, median of {a.runs} (best in brackets); floor, `python -c pass`: "
              f"{ms(floor)} ({ms(min(r['floor']))}).", ""]
    head = "| command | checkout | time (best) | above the floor |"
    rule = "|---|---|---:|---:|"
    if base:
        head += " baseline / this | above the floor: baseline / this |"
        rule += "---:|---:|"
    lines += [head, rule]
    for command in COMMANDS:
        for name in trees:
            t = r["times"][name, command]
            med = statistics.median(t)
            row = f"| {label[command]} | {name} | {ms(med)} ({ms(min(t))}) | {ms(med - floor)} |"
            if base:
                b = statistics.median(r["times"][base, command])
                row += f" {b / med:.2f}× | {(b - floor) / max(med - floor, 1e-6):.2f}× |"
            lines.append(row)
    watched = ", ".join(WATCHED).replace("wattprint.pipeline.", "")
    lines += ["", "Imports (one `-X importtime` run each): modules loaded at exit (sys.modules), the sum of the "
              "self times -X importtime printed, and which of the watched packages were loaded:", "",
              f"| command | checkout | modules | import time | loaded of {watched} |", "|---|---|---:|---:|---|"]
    for command in COMMANDS:
        for name in trees:
            x = r["imports"][name, command]
            loaded = ", ".join(w.replace("wattprint.pipeline.", "") for w in x["loaded"]) or "none"
            lines.append(f"| {label[command]} | {name} | {x['modules']} | {ms(x['seconds'])} | {loaded} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--compare-rev", metavar="REV", help="also run the wattprint/ of this git revision (git archive)")
    g.add_argument("--compare-root", type=Path, metavar="PATH",
                   help="also run the checkout at PATH (its wattprint/ package)")
    p.add_argument("--runs", type=int, default=20, help="timed runs of each command and checkout (default 20)")
    p.add_argument("--markdown-out", metavar="PATH", help="also write the Markdown tables to PATH")
    p.add_argument("--quick", action="store_true", help="2 runs: a smoke test")
    a = p.parse_args()
    if a.quick:
        a.runs = 2
    if a.runs < 1:
        raise SystemExit("--runs must be >= 1")
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        (work / "jobs.csv").write_text(LEDGER, encoding="utf-8")
        trees = {"this": ROOT}
        if a.compare_rev:
            trees["baseline"] = extract(a.compare_rev, work)
        elif a.compare_root:
            trees["baseline"] = a.compare_root.resolve()
        text = markdown(measure(trees, a.runs, work), trees, a)
    print(text)
    if a.markdown_out:
        Path(a.markdown_out).write_text(text)


if __name__ == "__main__":
    main()
