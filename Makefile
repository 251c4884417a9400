# The two commands a newcomer runs (see README.md):
#   make demo   set up, then run the main job
#   make test   set up (Python venv + Debian tools when root), then lint and run every test
.PHONY: demo test e2e setup tools lint lock bench bench-pipeline clean

demo: setup
	.venv/bin/wattprint demo

# Test files run in parallel, one worker per CPU (pytest-xdist), each file's tests in one worker: the live-stack
# modules wait on real time (scrape windows, restarts), so two cores finish the suite in about half the time.
test: tools lint
	.venv/bin/python -m pytest -q -n auto --dist loadfile

# The live stack end to end (docs/operations.md, "End to end"): replay exporters, serve-intensity and a real
# Prometheus for two minutes, then `wattprint ingest` and `wattprint report`, checked against the exporters' counters.
# Installs Debian's prometheus first when it is missing (as root). More: make e2e E2E_ARGS="--seconds 300 --keep"
E2E_ARGS ?=
e2e: setup
	@command -v prometheus >/dev/null || scripts/bootstrap.sh --tools
	.venv/bin/python scripts/e2e.py $(E2E_ARGS)

setup:
	@scripts/bootstrap.sh

tools:
	@scripts/bootstrap.sh --tools

# Regenerate the hash-pinned lock files in requirements/ (pip-compile from a throwaway venv, PyPI only) after a
# change to pyproject.toml's dependencies; `scripts/lock.sh --upgrade` moves every pin to the newest release.
lock:
	scripts/lock.sh

lint: setup
	.venv/bin/ruff check wattprint tests benchmarks grafana scripts
	.venv/bin/mypy

bench: setup
	.venv/bin/python benchmarks/bench_scrape.py
	.venv/bin/python benchmarks/bench_poller.py
	.venv/bin/python benchmarks/bench_host.py

# bench_model.py compares with pandas, which the test environment leaves out (requirements/bench.txt adds it).
bench-pipeline: tools
	.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements/bench.txt
	.venv/bin/python benchmarks/bench_ingest.py
	.venv/bin/python benchmarks/bench_model.py
	.venv/bin/python benchmarks/bench_report.py
	.venv/bin/python benchmarks/bench_cli_startup.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache *.egg-info
