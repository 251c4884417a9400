# The two commands a newcomer runs (see README.md):
#   make demo   set up, then run the main job
#   make test   set up (Python venv + Debian tools when root), then lint and run every test
.PHONY: demo test setup tools lint bench bench-pipeline clean

demo: setup
	.venv/bin/wattprint demo

test: tools lint
	.venv/bin/python -m pytest -q

setup:
	@scripts/bootstrap.sh

tools:
	@scripts/bootstrap.sh --tools

lint: setup
	.venv/bin/ruff check exporter pipeline tests benchmarks grafana scripts
	.venv/bin/mypy

bench: setup
	.venv/bin/python benchmarks/bench_scrape.py
	.venv/bin/python benchmarks/bench_poller.py

bench-pipeline: tools
	.venv/bin/python benchmarks/bench_ingest.py
	.venv/bin/python benchmarks/bench_model.py
	.venv/bin/python benchmarks/bench_report.py

clean:
	rm -rf .venv .pytest_cache .ruff_cache *.egg-info
