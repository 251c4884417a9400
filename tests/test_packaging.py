"""The distribution: one version everywhere, a wheel holding only `wattprint`, and the extras split.

The install tests build the wheel from the tree (`pip wheel --no-deps --no-build-isolation`: the pinned setuptools
that scripts/bootstrap.sh put into .venv) and install it into fresh venvs without network: the wheel with
--no-deps, and its dependencies by linking, from .venv's site-packages, exactly the distributions one lock file
names (requirements/exporter.txt: the base install; requirements/pipeline.txt: with the `pipeline` extra).
`pip check` then proves the wheel's own requirements are met by that set alone.
"""

from __future__ import annotations

import email
import importlib.metadata
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import wattprint

REPO = Path(__file__).resolve().parent.parent
PIPELINE_ONLY = {"duckdb", "pyarrow", "pytz"}


# -- one version source ----------------------------------------------------------------------------------------


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((REPO / "helm" / "wattprint" / "Chart.yaml").read_text())
    assert chart["appVersion"] == wattprint.__version__


def test_dockerfile_versions_are_the_package_version() -> None:
    text = (REPO / "Dockerfile").read_text()
    found = re.findall(r'org\.opencontainers\.image\.version="([^"]*)"', text)
    assert found, "the Dockerfile labels each image with its version"
    assert set(found) == {wattprint.__version__}
    # any other version-looking literal in an instruction (not the base image's Python) would be a second source
    for line in text.splitlines():
        if line.startswith("#") or line.startswith("FROM"):
            continue
        for v in re.findall(r"\b\d+\.\d+\.\d+\b", line):
            assert v == wattprint.__version__, line


def test_amdsmi_image_layers_on_the_exporter_image() -> None:
    """Dockerfile.amdsmi (not built here: it fetches ROCm) adds amd-smi to the exporter image and keeps its version
    label (inherited) and its non-root user; the ROCm release is the builder's choice, never a default."""
    lines = [x for x in (REPO / "Dockerfile.amdsmi").read_text().splitlines() if x and not x.startswith("#")]
    froms = [x for x in lines if x.startswith("FROM")]
    assert froms[-1] == "FROM ${EXPORTER_IMAGE}"
    assert "ARG ROCM_VERSION" in lines and "ARG EXPORTER_IMAGE" in lines   # no default value
    assert not [x for x in lines if "org.opencontainers.image.version" in x]
    assert [x for x in lines if x.startswith("USER")][-1] == "USER 65534"
    assert lines[-1] == "USER 65534"


def test_pyproject_reads_the_version_from_the_package() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["project"]["dynamic"] == ["version"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "wattprint.__version__"}


# -- the lock files ----------------------------------------------------------------------------------------------


def locked(name: str) -> dict[str, str]:
    """{normalized name: version} of a lock file; every entry carries hashes."""
    out: dict[str, str] = {}
    text = (REPO / "requirements" / name).read_text()
    for block in re.split(r"\n(?=\S)", text):
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block)
        if not m:
            continue
        assert "--hash=sha256:" in block, f"{name}: {m.group(1)} without a hash"
        out[norm(m.group(1))] = m.group(2)
    assert out, name
    return out


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_files_agree_and_split_the_extras() -> None:
    test, pipeline, exporter = locked("test.txt"), locked("pipeline.txt"), locked("exporter.txt")
    assert set(exporter) <= set(pipeline) <= set(test)
    for name, version in pipeline.items():
        assert test[name] == version, f"{name}: pipeline.txt {version}, test.txt {test[name]}"
    assert PIPELINE_ONLY <= set(pipeline)
    assert not PIPELINE_ONLY & set(exporter), "the exporter lock pulls a pipeline dependency"
    assert "wattprint" not in test, "wattprint itself is installed from the tree, not from the lock"
    build = locked("build.txt")
    assert set(build) == {"setuptools"}


def test_dependency_tool_ranges_are_pinned() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    test_extra = meta["project"]["optional-dependencies"]["test"]
    for tool in ("ruff", "mypy"):
        (spec,) = [s for s in test_extra if re.match(rf"{tool}\b", s)]
        assert ">=" in spec and "<" in spec.replace("<=", ""), spec
    assert not PIPELINE_ONLY & {norm(re.split(r"[<>=!~;\[ ]", d)[0]) for d in meta["project"]["dependencies"]}


# -- the wheel and installs from it --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    build = tmp_path_factory.mktemp("build")
    # a copy of the sources: building in the tree would leave build/ and *.egg-info behind
    src = build / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (src / name).write_bytes((REPO / name).read_bytes())
    subprocess.run(["cp", "-r", str(REPO / "wattprint"), str(src / "wattprint")], check=True)
    subprocess.run(["find", str(src), "-name", "__pycache__", "-prune", "-exec", "rm", "-rf", "{}", "+"], check=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "license" not in proc.stderr.lower(), f"license warning while building:\n{proc.stderr}"
    (whl,) = out.glob("wattprint-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_holds_only_wattprint(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        dist_info = f"wattprint-{wattprint.__version__}.dist-info"
        assert {n.split("/")[0] for n in names} == {"wattprint", dist_info}
        meta = email.message_from_bytes(z.read(f"{dist_info}/METADATA"))
        assert z.read(f"{dist_info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
    assert meta["Version"] == wattprint.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get("License") is None, "the deprecated License field next to License-Expression"
    base = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert not PIPELINE_ONLY & {norm(re.split(r"[<>=!~;\[ ]", r)[0]) for r in base}, base
    assert {"pipeline", "all", "test"} <= set(meta.get_all("Provides-Extra") or [])


def venv_with(tmp: Path, wheel: Path, lock: str) -> Path:
    """A fresh venv holding the wheel (--no-deps) and, linked from .venv, exactly the distributions of `lock`."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = tmp / "deps"
    deps.mkdir()
    for name in locked(lock):
        dist = importlib.metadata.distribution(name)
        root = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if top.endswith(".dist-info") or (root / top).exists():
                link = deps / top
                if not link.exists():
                    link.symlink_to(root / top)
    (site / "wattprint-test-deps.pth").write_text(f"{deps}\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    proc = subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, f"{lock} does not satisfy the wheel's requirements:\n{check.stdout}{check.stderr}"
    return venv


def run(venv: Path, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=venv.parent, env=env,
                          **kw)  # type: ignore[call-overload]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def exporter_only(tmp_path: Path, wheel: Path) -> Iterator[Path]:
    yield venv_with(tmp_path, wheel, "exporter.txt")


@pytest.mark.slow
def test_exporter_only_install_serves_metrics_without_the_pipeline(exporter_only: Path) -> None:
    bin_ = exporter_only / "bin"
    for mod in ("duckdb", "pyarrow"):
        proc = run(exporter_only, str(bin_ / "python"), "-c", f"import {mod}")
        assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr, proc.stderr
    where = run(exporter_only, str(bin_ / "python"), "-c", "import wattprint; print(wattprint.__file__)")
    assert str(exporter_only) in where.stdout, "wattprint imported from the tree, not the installed wheel"

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    exporter = subprocess.Popen([str(bin_ / "wattprint-exporter"), "--backend", "replay",
                                 "--web.listen-address", f"127.0.0.1:{port}"], cwd=exporter_only.parent, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        body = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and exporter.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    body = resp.read().decode()
                if "wattprint_gpu" in body:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert exporter.poll() is None, exporter.communicate()[0]
        assert "wattprint_gpu" in body, body[:2000]
    finally:
        exporter.terminate()
        exporter.wait(timeout=30)


@pytest.mark.slow
def test_pipeline_cli_without_its_extra_says_what_to_install(exporter_only: Path) -> None:
    bin_ = exporter_only / "bin"
    proc = run(exporter_only, str(bin_ / "wattprint-exporter"), "--version")
    assert proc.stdout.strip() == f"wattprint-exporter {wattprint.__version__}", proc.stderr
    wp = str(bin_ / "wattprint")
    for args in (["demo", "--out", "demo-out", "--quiet"], ["--version"]):
        proc = run(exporter_only, wp, *args)
        if args == ["--version"] and proc.returncode == 0:   # a parser that imports no pipeline module may answer
            assert proc.stdout.strip() == f"wattprint {wattprint.__version__}"
            continue
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("wattprint: the pipeline needs its dependencies")
        assert "pip install 'wattprint[pipeline]'" in lines[0]


@pytest.mark.slow
def test_full_install_runs_both_clis(tmp_path: Path, wheel: Path) -> None:
    venv = venv_with(tmp_path, wheel, "pipeline.txt")
    bin_ = venv / "bin"
    assert run(venv, str(bin_ / "wattprint"), "--version").stdout.strip() == f"wattprint {wattprint.__version__}"
    proc = run(venv, str(bin_ / "wattprint-exporter"), "--help")
    assert proc.returncode == 0 and "--backend" in proc.stdout, proc.stderr
    proc = run(venv, str(bin_ / "python"), "-c", "import duckdb, pyarrow, wattprint.pipeline.db")
    assert proc.returncode == 0, proc.stderr
