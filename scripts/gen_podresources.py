#!/usr/bin/env python3
"""Generate the kubelet PodResources v1 client modules from the vendored api.proto (grpcio-tools).

    .venv/bin/python scripts/gen_podresources.py            # rewrite them in the tree
    .venv/bin/python scripts/gen_podresources.py OUTDIR     # write them under OUTDIR (the drift test compares)

The modules are committed so that installing the exporter needs no compiler; the pinned grpcio-tools of the test
extra makes the output reproducible, and tests/test_podresources.py fails when the committed files differ from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTO = "wattprint/exporter/jobs/podresources_v1/api.proto"


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc  # the test extra's pinned grpcio-tools

    out.mkdir(parents=True, exist_ok=True)
    # Relative to the repository root, so the generated imports name the package (wattprint.exporter.jobs...).
    args = ["protoc", f"-I{REPO}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
            str(REPO / PROTO)]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")
    stem = out / Path(PROTO).parent
    return sorted(stem.glob("api_pb2*"))


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else REPO
    for path in generate(out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
