#!/usr/bin/env bash
# Regenerate the hash-pinned lock files under requirements/ (`make lock`), for Linux x86_64 and Python 3.11
# (run it there: markers and wheels are resolved for the interpreter that runs pip-compile).
#   requirements/test.txt      the base + pipeline + test extras: what scripts/bootstrap.sh installs into .venv
#   requirements/pipeline.txt  the base + pipeline + kubernetes extras: the full image (Dockerfile target `full`)
#   requirements/exporter.txt  the base + kubernetes extra (grpcio for the kubelet's PodResources API): the exporter
#                              image (Dockerfile target `exporter`)
#   requirements/build.txt     the build backend (setuptools), so wattprint builds with --no-build-isolation
#   requirements/bench.txt     the base + bench extra (pandas): the model benchmark's baseline, `make bench-pipeline`
# pipeline.txt and exporter.txt are constrained by test.txt: the same version of a package everywhere.
# pip-tools runs from a throwaway venv (never .venv); the resolution uses PyPI alone, not local mirrors.
# Upgrade every pin: scripts/lock.sh --upgrade (or --upgrade-package NAME); otherwise the existing pins are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
tools=${LOCK_VENV:-${TMPDIR:-/tmp}/wattprint-lock-venv}
if [ ! -x "$tools/bin/pip-compile" ]; then
  "$PY" -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check 'pip-tools>=7.4,<8'
fi

export CUSTOM_COMPILE_COMMAND="scripts/lock.sh"
export PIP_CONFIG_FILE=/dev/null   # PyPI only: no site index, find-links or constraints
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT || true
compile() {
  "$tools/bin/pip-compile" -q --generate-hashes --strip-extras --no-emit-index-url \
    --index-url https://pypi.org/simple "$@"
}

compile --allow-unsafe -o requirements/build.txt requirements/build.in
compile --extra test --extra pipeline -o requirements/test.txt "$@" pyproject.toml
compile --extra pipeline --extra kubernetes -c requirements/test.txt -o requirements/pipeline.txt pyproject.toml
compile --extra kubernetes -c requirements/test.txt -o requirements/exporter.txt pyproject.toml
compile --extra bench -c requirements/test.txt -o requirements/bench.txt pyproject.toml

# The test extra names wattprint[pipeline]: pip-compile lists wattprint itself (by its local path, unhashable).
# wattprint is installed from the tree (pip install --no-deps), never from a lock file: drop that entry.
"$PY" - requirements/test.txt requirements/pipeline.txt requirements/exporter.txt requirements/bench.txt <<'PYEOF'
import re
import sys

for path in sys.argv[1:]:
    text = open(path).read()
    text = re.sub(r"# WARNING: pip install will require the following package to be hashed\.\n"
                  r"# Consider using a hashable URL[^\n]*\n", "", text)
    text = re.sub(r"^wattprint @ file:[^\n]*\n(    #[^\n]*\n)*", "", text, flags=re.M)
    open(path, "w").write(text)
PYEOF
echo "lock: requirements/{build,test,pipeline,exporter,bench}.txt written"
