"""deploy/slurm: the Slurm prolog/epilog run for real (concurrently, and against a running exporter), the
systemd units through the programs' own parsers (and `systemd-analyze verify` where installed), the monthly
report unit's `wattprint run` with recording stand-ins for the step verbs and sacct, and the Prometheus scrape
config.
"""

from __future__ import annotations

import configparser
import datetime as dt
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, require_tool
from tests.exporter_proc import running_exporter, wait_until

SLURM = REPO / "deploy" / "slurm"
PROLOG = SLURM / "prolog.sh"
EPILOG = SLURM / "epilog.sh"
SCRIPTS = (PROLOG, EPILOG)
UNITS = ("wattprint-exporter.service", "wattprint-serve-intensity.service", "wattprint-report.service",
         "wattprint-report.timer")
# The exporter unit's drop-in for AMD Instinct nodes, and where the README installs it.
AMD_DROP_IN = "wattprint-exporter-amdsmi.conf"
AMD_DROP_IN_PATH = "wattprint-exporter.service.d/amdsmi.conf"
# The prolog and epilog are POSIX sh: run them under every shell of this machine that slurmd might use.
SHELLS = [s for s in ("sh", "dash", "bash") if shutil.which(s)]


# -- running the prolog and epilog -------------------------------------------------------------------------


def slurm_script(script: Path, mapping_dir: Path, job: str | None = None, gpus: str | None = None,
                 shell: str = "sh", as_user: tuple[str, ...] = (), **extra: str) -> subprocess.CompletedProcess[str]:
    """Run a prolog/epilog as slurmd would: a fresh environment with only the SLURM_* variables it sets.
    `as_user`: a command prefix that drops privileges (setpriv), for the read-only directory case."""
    env = {"WATTPRINT_MAPPING_DIR": str(mapping_dir), **extra}
    if job is not None:
        env["SLURM_JOB_ID"] = job
    if gpus is not None:
        env["SLURM_JOB_GPUS"] = gpus
    return subprocess.run([*as_user, shutil.which(shell) or shell, str(script)], env=env, capture_output=True,
                          text=True, timeout=60)


def prolog(mapping_dir: Path, job: str, gpus: str | None, shell: str = "sh", **extra: str) -> str:
    res = slurm_script(PROLOG, mapping_dir, job, gpus, shell, **extra)
    assert res.returncode == 0, res.stderr
    return res.stderr


def epilog(mapping_dir: Path, job: str, gpus: str | None = None, shell: str = "sh", **extra: str) -> str:
    res = slurm_script(EPILOG, mapping_dir, job, gpus, shell, **extra)
    assert res.returncode == 0, res.stderr
    return res.stderr


def mapping(mapping_dir: Path) -> dict[str, list[str]]:
    """{file name: its lines}; every file in the directory must be a <gpu> file (the exporter counts others)."""
    out = {}
    for f in sorted(mapping_dir.iterdir()):
        assert re.fullmatch(r"\d+", f.name), f"unexpected file in the mapping directory: {f.name}"
        out[f.name] = f.read_text().splitlines()
    return out


def leftovers(mapping_dir: Path) -> list[str]:
    """What the scripts left beside the directory other than the directory and its lock file (temp files)."""
    mine = (mapping_dir.name, f"{mapping_dir.name}.lock")
    return sorted(p.name for p in mapping_dir.parent.iterdir() if p.name not in mine)


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    return tmp_path / "run" / "wattprint" / "jobs"


def test_scripts_are_executable_posix_sh_and_parse() -> None:
    for script in SCRIPTS:
        assert script.read_text().startswith("#!/bin/sh\n"), script
        assert os.access(script, os.X_OK), f"{script} is not executable"
        for shell in SHELLS:
            res = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, timeout=30)
            assert res.returncode == 0 and not res.stderr, f"{shell} -n {script.name}: {res.stderr}"
    shellcheck = shutil.which("shellcheck")
    if shellcheck:  # optional: not a required tool
        res = subprocess.run([shellcheck, "--shell=sh", *map(str, SCRIPTS)], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_two_jobs_share_a_gpu_and_the_epilog_of_one_leaves_the_other(jobs_dir: Path, shell: str) -> None:
    assert prolog(jobs_dir, "101", "0", shell) == ""
    assert prolog(jobs_dir, "102", "0,2", shell) == ""
    assert mapping(jobs_dir) == {"0": ["101", "102"], "2": ["102"]}
    assert (jobs_dir / "0").stat().st_mode & 0o777 == 0o644  # the exporter runs as another user

    assert epilog(jobs_dir, "101", "0", shell) == ""
    assert mapping(jobs_dir) == {"0": ["102"], "2": ["102"]}
    assert epilog(jobs_dir, "102", "0,2", shell) == ""
    assert mapping(jobs_dir) == {}  # a file left with no job is removed
    assert leftovers(jobs_dir) == []


def test_epilog_removes_exactly_its_own_lines(jobs_dir: Path) -> None:
    jobs_dir.mkdir(parents=True)
    (jobs_dir / "0").write_text("123\n12\r\n  12 \n4512\n120")  # CRLF, blanks, prefixes, no final newline
    (jobs_dir / "1").write_text("7\n")
    (jobs_dir / "3.2").write_text("12\n9\n")  # a MIG instance file written by another tool
    untouched = (jobs_dir / "1").stat()
    # No SLURM_JOB_GPUS: older Slurm releases documented it for the Prolog only, so every file is searched.
    assert epilog(jobs_dir, "12") == ""
    assert (jobs_dir / "0").read_text() == "123\n4512\n120\n"
    assert (jobs_dir / "3.2").read_text() == "9\n"
    after = (jobs_dir / "1").stat()
    assert (after.st_ino, after.st_mtime_ns) == (untouched.st_ino, untouched.st_mtime_ns)  # not rewritten


def test_prolog_is_idempotent_and_keeps_a_last_line_without_newline(jobs_dir: Path) -> None:
    jobs_dir.mkdir(parents=True)
    (jobs_dir / "1").write_text("7")
    prolog(jobs_dir, "8", "1")
    prolog(jobs_dir, "8", "1")  # a prolog run again for the same job adds nothing
    assert (jobs_dir / "1").read_text() == "7\n8\n"


def test_gpu_list_entries_that_are_not_numbers_are_logged_and_skipped(jobs_dir: Path) -> None:
    err = prolog(jobs_dir, "55", "0,abc,2")
    assert "'abc' is not a GPU number" in err
    assert mapping(jobs_dir) == {"0": ["55"], "2": ["55"]}


def test_jobs_without_gpus_change_nothing(jobs_dir: Path) -> None:
    for gpus in (None, ""):
        res = slurm_script(PROLOG, jobs_dir, "300", gpus)
        assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
        res = slurm_script(EPILOG, jobs_dir, "300", gpus)
        assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert not jobs_dir.parent.exists()  # not even the directory or its lock file

    prolog(jobs_dir, "301", "1")
    before = (jobs_dir / "1").stat()
    assert epilog(jobs_dir, "302") == ""  # a CPU-only job ending on a GPU node
    after = (jobs_dir / "1").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert mapping(jobs_dir) == {"1": ["301"]}


@pytest.mark.parametrize("script", [PROLOG, EPILOG], ids=["prolog", "epilog"])
def test_errors_never_fail_the_job(tmp_path: Path, script: Path) -> None:
    # Slurm drains the node (and requeues the job, for a Prolog) when these exit non-zero.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    res = slurm_script(script, blocker / "jobs", "400", "0")  # cannot be created, even by root
    assert res.returncode == 0
    if script is PROLOG:
        assert "job 400: cannot create" in res.stderr and "not recorded" in res.stderr
    res = slurm_script(script, tmp_path / "jobs", "4x0", "0")
    assert res.returncode == 0 and "SLURM_JOB_ID '4x0' is not a job id" in res.stderr
    res = slurm_script(script, tmp_path / "jobs", None, "0")
    assert res.returncode == 0 and "SLURM_JOB_ID '' is not a job id" in res.stderr


def test_unwritable_directory_exits_0_with_a_message(jobs_dir: Path) -> None:
    prolog(jobs_dir, "500", "0")
    # root writes into read-only directories, so as root the scripts run as nobody (setpriv, util-linux)
    as_user = (require_tool("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups") \
        if os.geteuid() == 0 else ()
    for d in (jobs_dir, *jobs_dir.parents):
        if d == Path(tempfile.gettempdir()):
            break
        d.chmod(d.stat().st_mode | 0o005)      # nobody may walk to it, not write
    jobs_dir.chmod(0o555)
    jobs_dir.parent.chmod(0o555)
    try:
        res = slurm_script(PROLOG, jobs_dir, "501", "0", as_user=as_user)
        assert res.returncode == 0 and "job 501" in res.stderr
        res = slurm_script(EPILOG, jobs_dir, "500", "0", as_user=as_user)
        assert res.returncode == 0 and "job 500" in res.stderr
    finally:
        jobs_dir.parent.chmod(0o755)
        jobs_dir.chmod(0o755)
    assert mapping(jobs_dir) == {"0": ["500"]}


def test_scripts_wait_for_the_lock(jobs_dir: Path) -> None:
    """While another process holds the lock, nothing is written; the script gives up, logs, and exits 0."""
    prolog(jobs_dir, "600", "0")
    lock = Path(f"{jobs_dir}.lock")
    with lock.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # the same flock(2) lock as flock(1)
        res = slurm_script(PROLOG, jobs_dir, "601", "0", WATTPRINT_LOCK_WAIT="1")
        assert res.returncode == 0 and "still held" in res.stderr
        res = slurm_script(EPILOG, jobs_dir, "600", "0", WATTPRINT_LOCK_WAIT="1")
        assert res.returncode == 0 and "still held" in res.stderr
        assert mapping(jobs_dir) == {"0": ["600"]}
    prolog(jobs_dir, "601", "0")
    assert mapping(jobs_dir) == {"0": ["600", "601"]}


def gpus_of(job: int) -> list[str]:
    return sorted({str(job % 4), str((job // 4) % 4)})


def run_concurrently(calls: Iterable[tuple[Path, str, str]], jobs_dir: Path) -> None:
    """Start every (script, job, gpus) at once from its own thread, each a real subprocess."""
    calls = list(calls)
    barrier = threading.Barrier(len(calls))

    def one(call: tuple[Path, str, str]) -> subprocess.CompletedProcess[str]:
        barrier.wait()
        return slurm_script(call[0], jobs_dir, call[1], call[2])

    # Meanwhile list the directory as the exporter does: it must never hold anything but <gpu> files,
    # not even for an instant (temporary files are made beside it).
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                seen.update(os.listdir(jobs_dir))
            except FileNotFoundError:
                pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            results = list(pool.map(one, calls))
    finally:
        done.set()
        watcher.join()
    for (script, job, _), res in zip(calls, results, strict=True):
        assert res.returncode == 0 and res.stderr == "", f"{script.name} {job}: {res.stderr}"
    assert all(re.fullmatch(r"\d+", name) for name in seen), sorted(seen)


def expected(jobs: Iterable[int]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for j in jobs:
        for g in gpus_of(j):
            out.setdefault(g, set()).add(str(j))
    return {g: sorted(ids) for g, ids in sorted(out.items())}


def as_sets(m: dict[str, list[str]]) -> dict[str, list[str]]:
    for g, ids in m.items():
        assert len(ids) == len(set(ids)), f"GPU {g} lists a job twice: {ids}"
    return {g: sorted(ids) for g, ids in m.items()}


def test_concurrent_prologs_and_epilogs_lose_no_line(jobs_dir: Path) -> None:
    first = range(1000, 1020)
    run_concurrently(((PROLOG, str(j), ",".join(gpus_of(j))) for j in first), jobs_dir)
    assert as_sets(mapping(jobs_dir)) == expected(first)

    # Half of them end while 10 new jobs start, all at once, on the same GPUs.
    ending, staying, starting = first[::2], first[1::2], range(2000, 2010)
    run_concurrently([*((EPILOG, str(j), ",".join(gpus_of(j))) for j in ending),
                      *((PROLOG, str(j), ",".join(gpus_of(j))) for j in starting)], jobs_dir)
    assert as_sets(mapping(jobs_dir)) == expected([*staying, *starting])

    run_concurrently(((EPILOG, str(j), "") for j in [*staying, *starting]), jobs_dir)
    assert mapping(jobs_dir) == {}
    assert leftovers(jobs_dir) == []


# -- the real exporter reads what the prolog wrote ----------------------------------------------------------


def scrape(port: int) -> tuple[set[tuple[str, str]], dict[str, float]]:
    """({(gpu, job_id)} of wattprint_job_info, {reason: count} of wattprint_job_discovery_errors_total)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    jobs: set[tuple[str, str]] = set()
    errors: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "wattprint_job_info" and s.value == 1:
                assert s.labels["job_source"] == "mapping-dir" and s.labels["cluster"] == "jean-zay"
                jobs.add((s.labels["gpu"], s.labels["job_id"]))
            elif s.name == "wattprint_job_discovery_errors_total":
                errors[s.labels["reason"]] = s.value
    return jobs, errors


def test_exporter_reports_the_jobs_the_prolog_wrote_until_the_epilog(jobs_dir: Path) -> None:
    prolog(jobs_dir, "4242", "1,3")
    prolog(jobs_dir, "4243", "1")
    with running_exporter("--backend", "replay", "--replay-gpus", "4", "--job-discovery", "mapping-dir",
                          "--mapping-dir", str(jobs_dir), "--label", "cluster=jean-zay",
                          "--poll-interval", "0.2") as (_, port):
        want = {("1", "4242"), ("3", "4242"), ("1", "4243")}
        assert wait_until(lambda: scrape(port)[0] == want, timeout=20), scrape(port)

        prolog(jobs_dir, "4244", "0")  # a job starting while the exporter runs
        want |= {("0", "4244")}
        assert wait_until(lambda: scrape(port)[0] == want, timeout=20), scrape(port)

        epilog(jobs_dir, "4242", "1,3")
        want -= {("1", "4242"), ("3", "4242")}
        assert wait_until(lambda: scrape(port)[0] == want, timeout=20), scrape(port)
        epilog(jobs_dir, "4243", "1")
        epilog(jobs_dir, "4244", "0")
        assert wait_until(lambda: scrape(port)[0] == set(), timeout=20), scrape(port)
        # The lock and temporary files live beside the directory: the exporter never sees a stray file.
        assert scrape(port)[1].get("bad_filename", 0) == 0


# -- systemd units --------------------------------------------------------------------------------------------


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """{section: {key: [values in order]}}; systemd keys repeat (Environment=, DeviceAllow=)."""
    path = SLURM / name
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    cp.read(path)  # configparser keeps one value per key; it checks the layout, the loop below keeps them all
    out: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), "no continuation lines, so that this reader sees every setting"
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
            continue
        key, sep, value = line.partition("=")
        assert section and sep, f"{name}: {line!r}"
        out[section].setdefault(key.strip(), []).append(value.strip())
    assert set(out) == set(cp.sections())
    for sec, items in out.items():
        for key, values in items.items():
            assert cp.get(sec, key) == values[-1]
    return out


def one(u: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = u[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of an EnvironmentFile (comments and blank lines skipped, one level of quotes removed)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = shlex.split(value)[0] if value else ""
    return out


def unit_env(u: dict[str, dict[str, list[str]]], default_file: Path | None,
             drop_ins: Iterable[dict[str, dict[str, list[str]]]] = ()) -> dict[str, str]:
    """The environment systemd gives the service: Environment= lines (the unit's, then its drop-ins' in order,
    the last assignment of a variable winning), then the EnvironmentFile= on top."""
    env: dict[str, str] = {}
    for part in (u, *drop_ins):
        for item in part["Service"].get("Environment", []):
            for assignment in shlex.split(item):
                key, _, value = assignment.partition("=")
                env[key] = value
    if default_file is not None:
        env.update(env_file(default_file))
    return env


def expand(command: str, env: dict[str, str]) -> list[str]:
    """A systemd command line -> argv: "${VAR}" inside a word is that value as is; "$VAR" as a whole word is
    the value split at whitespace (quotes respected) into zero or more words; "$$" is a "$" (systemd.service(5))."""
    argv: list[str] = []
    for word in shlex.split(command):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            argv.extend(shlex.split(env.get(whole.group(1), "")))
            continue
        word = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word.replace("$$", "\0"))
        argv.append(word.replace("\0", "$"))
    return argv


def console_scripts() -> dict[str, str]:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def exporter_argv(env: dict[str, str]) -> list[str]:
    u = unit("wattprint-exporter.service")
    argv = expand(one(u, "Service", "ExecStart"), env)
    assert argv[0] == "/opt/wattprint/bin/wattprint-exporter"
    assert Path(argv[0]).name in console_scripts()
    return argv


def parse_exporter(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    from wattprint.exporter.config import parse_config

    for key in list(os.environ):
        if key.startswith("WATTPRINT_"):
            monkeypatch.delenv(key)
    for key, value in env.items():  # the service's environment: the exporter reads WATTPRINT_<FLAG> itself
        monkeypatch.setenv(key, value)
    return parse_config(argv[1:])


def test_exporter_unit_command_line_is_accepted_by_the_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    u = unit("wattprint-exporter.service")
    env = unit_env(u, SLURM / "wattprint-exporter.default")
    assert one(u, "Service", "EnvironmentFile") == "-/etc/default/wattprint-exporter"
    cfg = parse_exporter(exporter_argv(env), env, monkeypatch)
    assert (cfg.backend, cfg.job_discovery, cfg.listen_address) == ("nvml", "mapping-dir", ":9835")
    assert dict(cfg.labels) == {"cluster": "jean-zay", "region": "FR"}
    # The state file lies in the unit's StateDirectory, the one place it may write.
    assert one(u, "Service", "StateDirectory") == "wattprint-exporter"
    assert cfg.state_file == "/var/lib/wattprint-exporter/state.json"

    # The directory the exporter reads is the one the prolog and epilog write and tmpfiles.d creates.
    for script in (PROLOG, EPILOG):
        assert f"DIR=${{WATTPRINT_MAPPING_DIR:-{cfg.mapping_dir}}}" in script.read_text()
    tmpfiles = [line.split()[:2] for line in (SLURM / "wattprint.tmpfiles.conf").read_text().splitlines()
                if line and not line.startswith("#")]
    assert ["d", cfg.mapping_dir] in tmpfiles

    # A flag repeated in WATTPRINT_EXPORTER_ARGS wins, as the unit's comments promise.
    env2 = {**env, "WATTPRINT_EXPORTER_ARGS": '--web.listen-address 10.0.0.7:9835 --label "site=Paris Saclay"'}
    cfg2 = parse_exporter(exporter_argv(env2), env2, monkeypatch)
    assert cfg2.listen_address == "10.0.0.7:9835" and dict(cfg2.labels)["site"] == "Paris Saclay"
    # With no EnvironmentFile at all the command line still parses (the start check below stops it).
    bare = unit_env(u, None)
    parse_exporter(exporter_argv(bare), bare, monkeypatch)


def test_exporter_default_file_node_power_example_parses(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The commented --node-power redfish example of wattprint-exporter.default, uncommented, is a valid setup."""
    u = unit("wattprint-exporter.service")
    text = (SLURM / "wattprint-exporter.default").read_text()
    example = [line[1:] for line in text.splitlines() if re.match(r"#WATTPRINT_(NODE_POWER|REDFISH_)", line)]
    assert len(example) == 5, example
    uncommented = tmp_path / "wattprint-exporter"
    uncommented.write_text(text + "\n".join(example) + "\n")
    env = unit_env(u, uncommented)
    cfg = parse_exporter(exporter_argv(env), env, monkeypatch)
    assert (cfg.node_power, cfg.redfish_url, cfg.redfish_user) == (
        "redfish", "https://node1-bmc.mgmt.example/", "wattprint")
    assert cfg.redfish_password_file == "/run/credentials/wattprint-exporter.service/redfish-password"
    assert "LoadCredential=redfish-password:" in text


def test_exporter_unit_refuses_to_start_without_a_cluster() -> None:
    u = unit("wattprint-exporter.service")
    pre = expand(one(u, "Service", "ExecStartPre"), {})
    assert pre[:2] == ["/bin/sh", "-c"]
    res = subprocess.run(pre, env={"WATTPRINT_CLUSTER": ""}, capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "set WATTPRINT_CLUSTER" in res.stderr
    res = subprocess.run(pre, env={"WATTPRINT_CLUSTER": "jean-zay"}, capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr


def test_exporter_unit_is_hardened_but_sees_the_gpus() -> None:
    s = unit("wattprint-exporter.service")["Service"]
    for key, value in {"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "DevicePolicy": "closed",
                       "CapabilityBoundingSet": ""}.items():
        assert s.get(key) == [value], key
    # PrivateDevices=yes would give it a /dev without /dev/nvidia*, and NVML would find no GPU.
    assert s.get("PrivateDevices", ["no"]) == ["no"]
    assert s["DeviceAllow"] == ["char-nvidia* rw"]
    assert [p.lstrip("-") for p in s["ReadOnlyPaths"]] == ["/run/wattprint"]
    assert "ProcSubset" not in s  # would hide /proc/driver/nvidia


def test_amd_drop_in_sets_the_backend_and_its_devices_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """wattprint-exporter-amdsmi.conf: --backend amdsmi, the amdgpu device groups instead of NVIDIA's, the render and
    video groups ROCm documents; no other key, so nothing else of the unit's hardening can change."""
    u = unit("wattprint-exporter.service")
    d = unit(AMD_DROP_IN)
    assert set(d) == {"Service"} and set(d["Service"]) == {"Environment", "DeviceAllow", "SupplementaryGroups"}
    # The empty assignment first: it drops char-nvidia*, so the AMD node's service reaches no NVIDIA device.
    assert d["Service"]["DeviceAllow"] == ["", "char-drm rw", "char-kfd rw"]
    assert d["Service"]["SupplementaryGroups"] == ["render video"]
    text = (SLURM / "wattprint-exporter.default").read_text()
    assert "WATTPRINT_BACKEND" not in text   # the backend comes and goes with the drop-in's device access
    env = unit_env(u, SLURM / "wattprint-exporter.default", [d])
    cfg = parse_exporter(exporter_argv(env), env, monkeypatch)
    assert (cfg.backend, cfg.job_discovery, cfg.mapping_dir) == ("amdsmi", "mapping-dir", "/run/wattprint/jobs")
    assert dict(cfg.labels) == {"cluster": "jean-zay", "region": "FR"}
    # The default file's commented AMD example, uncommented, still parses and hands ROCM_PATH to the service.
    example = [line[1:] for line in text.splitlines() if line.startswith("#ROCM_PATH=")]
    assert example == ["ROCM_PATH=/opt/rocm-6.4.1"]
    uncommented = tmp_path / "wattprint-exporter"
    uncommented.write_text(text + "\n".join(example) + "\n")
    env = unit_env(u, uncommented, [d])
    assert env["ROCM_PATH"] == "/opt/rocm-6.4.1"
    assert parse_exporter(exporter_argv(env), env, monkeypatch).backend == "amdsmi"
    # The README installs it where systemd reads the unit's drop-ins.
    assert f"/etc/systemd/system/{AMD_DROP_IN_PATH}" in (SLURM / "README.md").read_text()


@pytest.mark.parametrize("name", ["wattprint-exporter.service", "wattprint-serve-intensity.service"])
def test_daemons_have_a_memory_limit_their_http_bound_fits_in(name: str) -> None:
    from wattprint.common.web import MAX_CONNECTIONS

    s = unit(name)["Service"]
    mib = {"K": 1 / 1024, "M": 1, "G": 1024}
    limit = {k: float(s[k][0][:-1]) * mib[s[k][0][-1]] for k in ("MemoryHigh", "MemoryMax")}
    # the flood test's bound (tests/test_security_http_server.py) plus the ~50 MiB a daemon uses at rest
    assert limit["MemoryHigh"] >= 64 + 50 and limit["MemoryMax"] > limit["MemoryHigh"], limit
    assert int(s["TasksMax"][0]) > MAX_CONNECTIONS


def test_management_units_are_hardened() -> None:
    for name in ("wattprint-serve-intensity.service", "wattprint-report.service"):
        s = unit(name)["Service"]
        for key, value in {"User": "wattprint", "Group": "wattprint", "NoNewPrivileges": "yes",
                           "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                           "PrivateDevices": "yes", "CapabilityBoundingSet": ""}.items():
            assert s.get(key) == [value], f"{name}: {key}"
    sysusers = (SLURM / "wattprint.sysusers.conf").read_text()
    assert re.search(r"^u wattprint - .* /var/lib/wattprint$", sysusers, re.M)


def test_serve_intensity_unit_command_line_is_accepted(tmp_path: Path) -> None:
    from wattprint.pipeline.cli import build_parser
    from wattprint.pipeline.cli.serve_intensity import request as serve_request
    from wattprint.pipeline.live.intensity_server import options

    (tmp_path / "wattprint.yaml").write_text(
        "clusters:\n  jean-zay:\n    provider: onprem\n    zone: FR\n    pue: 1.2\n")
    (tmp_path / "em-token").write_text("secret\n")
    u = unit("wattprint-serve-intensity.service")
    assert one(u, "Service", "EnvironmentFile") == "-/etc/default/wattprint-serve-intensity"
    for extra in ({}, {"WATTPRINT_INTENSITY_SOURCE": "electricitymaps",
                       "WATTPRINT_INTENSITY_ARGS": "--token-file /etc/wattprint/em-token --zone DE"}):
        env = {**unit_env(u, SLURM / "wattprint-serve-intensity.default"), **extra}
        argv = expand(one(u, "Service", "ExecStart"), env)
        assert argv[0] == "/opt/wattprint/bin/wattprint" and Path(argv[0]).name in console_scripts()
        assert argv[1] == "serve-intensity"
        argv = [a.replace("/etc/wattprint/", f"{tmp_path}/") for a in argv]
        opts = options(serve_request(build_parser().parse_args(argv[1:])), environ={})
        assert opts.source == (extra.get("WATTPRINT_INTENSITY_SOURCE") or "annual")
        assert opts.listen == ":9837" and opts.db == "/var/lib/wattprint/wattprint.duckdb"
        assert ("jean-zay", "FR") in {(c.cluster, c.zone) for c in opts.clusters}
    # The ledger it reads is the one the report service writes.
    report_env = unit_env(unit("wattprint-report.service"), None)
    assert report_env["WATTPRINT_DB"] == opts.db


def test_report_timer_fires_monthly_in_utc() -> None:
    t = unit("wattprint-report.timer")
    assert one(t, "Timer", "OnCalendar") == "*-*-01 06:00:00 UTC"
    assert one(t, "Timer", "Persistent") == "yes"
    assert one(t, "Install", "WantedBy") == "timers.target"
    r = unit("wattprint-report.service")
    assert one(r, "Service", "Type") == "oneshot"
    assert expand(one(r, "Service", "ExecStart"), {})[:2] == ["/opt/wattprint/bin/wattprint", "run"]
    analyze = shutil.which("systemd-analyze")
    if analyze:
        res = subprocess.run([analyze, "calendar", "--iterations=2", one(t, "Timer", "OnCalendar")],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        elapses = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d) 06:00:00 UTC", res.stdout)
        assert len(elapses) == 2 and all(d.endswith("-01") for d in elapses), res.stdout


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    venv_bin = Path(sys.executable).parent
    for name in UNITS:
        text = (SLURM / name).read_text()
        # verify insists that ExecStart= programs exist: point them at this checkout's.
        text = text.replace("/opt/wattprint/bin/", f"{venv_bin}/")
        (tmp_path / name).write_text(text)
    assert (venv_bin / "wattprint-exporter").exists() and (venv_bin / "wattprint").exists()
    res = subprocess.run([analyze, "verify", *(str(tmp_path / n) for n in UNITS)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr


def security(analyze: str, unit_dir: Path) -> dict[str, tuple[bool, str | None, str]]:
    """systemd-analyze security --offline of the exporter unit in unit_dir (with the drop-ins beside it): each
    setting it scores -> (set, exposure, description)."""
    res = subprocess.run([analyze, "security", "--offline=true", "--json=short",
                          str(unit_dir / "wattprint-exporter.service")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return {c["name"]: (c["set"], c["exposure"], c["description"]) for c in json.loads(res.stdout)}


def test_systemd_reads_the_amd_drop_in_and_it_loosens_nothing_else(tmp_path: Path) -> None:
    """systemd's own parser: the unit with the AMD drop-in verifies cleanly, and its security scan differs from the
    NVIDIA unit's only in the supplementary groups and in which devices the allow-list names."""
    analyze = require_tool("systemd-analyze")
    venv_bin = Path(sys.executable).parent
    text = (SLURM / "wattprint-exporter.service").read_text().replace("/opt/wattprint/bin/", f"{venv_bin}/")
    nvidia, amd = tmp_path / "nvidia", tmp_path / "amd"
    for d in (nvidia, amd):
        d.mkdir()
        (d / "wattprint-exporter.service").write_text(text)
    (amd / AMD_DROP_IN_PATH).parent.mkdir()
    shutil.copy(SLURM / AMD_DROP_IN, amd / AMD_DROP_IN_PATH)
    # verify reads the drop-ins beside a unit file (a misspelt key there is reported like one in the unit)
    res = subprocess.run([analyze, "verify", str(amd / "wattprint-exporter.service")], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr
    before, after = security(analyze, nvidia), security(analyze, amd)
    assert set(before) == set(after)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {"SupplementaryGroups=", "DeviceAllow="}, changed
    assert before["SupplementaryGroups="][:2] == (True, None)     # no exposure without groups
    assert after["SupplementaryGroups="][:2] == (False, "0.1")
    assert before["DeviceAllow="][:2] == after["DeviceAllow="][:2]   # same score: a closed list either way
    assert "char-nvidia" in before["DeviceAllow="][2]
    devices = set(after["DeviceAllow="][2].split(": ", 1)[1].split())
    assert devices == {"char-drm:rw", "char-kfd:rw", "char-rtc:r"}   # char-rtc r: ProtectClock=yes adds it


# -- the monthly report: the unit's `wattprint run` ------------------------------------------------------------


@pytest.fixture
def sacct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sacct on the PATH that prints its arguments and TZ as the jobs JSON the import reads."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sacct").write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "print(json.dumps({'jobs': [], 'argv': sys.argv[1:], 'tz': os.environ.get('TZ')}))\n")
    (bindir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return bindir


def report_argv(env: dict[str, str]) -> list[str]:
    """The report unit's command line with this environment (Environment=, then the given overrides)."""
    u = unit("wattprint-report.service")
    argv = expand(one(u, "Service", "ExecStart"), {**unit_env(u, None), **env})
    assert argv[0] == "/opt/wattprint/bin/wattprint" and Path(argv[0]).name in console_scripts()
    return argv[1:]


@pytest.mark.parametrize("now, month, start, end", [
    ("2024-03", "2024-02", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"),  # leap February
    ("2024-01", "2023-12", "2023-12-01T00:00:00Z", "2024-01-01T00:00:00Z"),  # across the year
])
def test_report_unit_runs_the_previous_month_with_the_default_file(
        sacct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, now: str, month: str, start: str,
        end: str) -> None:
    """The unit's ExecStart with /etc/default/wattprint-report as shipped (sacct on), plus an intensity fetch,
    through the CLI's parser; then the run, as the timer fires it on the 1st at 06:00 UTC."""
    from tests.monthkit import record_steps
    from wattprint.pipeline.cli import build_parser
    from wattprint.pipeline.cli.run import request
    from wattprint.pipeline.month import run
    from wattprint.pipeline.settings import load_settings

    default = env_file(SLURM / "wattprint-report.default")
    default["WATTPRINT_RUN_ARGS"] += " --intensity-source uk --intensity-zone GB --intensity-base-url https://api.example.org"
    args = build_parser().parse_args(report_argv({**default, "REPORT_DIR": str(tmp_path / "reports")}))
    assert (args.verb, args.prometheus, args.sacct) == ("run", "http://prometheus:9090", True)
    calls = record_steps(monkeypatch)
    first = dt.datetime.strptime(now, "%Y-%m").replace(day=1, hour=6, tzinfo=dt.UTC)
    assert run(request(args), load_settings(None), now=first) == 0
    assert [v for v, _ in calls] == ["ingest", "jobs import", "intensity fetch", "report", "report"]
    ingest, jobs, fetch, *reports = (f for _, f in calls)
    assert ingest.prometheus.url == "http://prometheus:9090"
    assert (ingest.start, ingest.end) == (start, end)
    assert jobs.format == "sacct-json"
    sacct_argv = calls.sacct_output[jobs.path]["argv"]
    assert "--json" in sacct_argv and "--allusers" in sacct_argv and calls.sacct_output[jobs.path]["tz"] == "UTC"
    assert sacct_argv[sacct_argv.index("--starttime") + 1] == start.rstrip("Z")
    assert sacct_argv[sacct_argv.index("--endtime") + 1] == end.rstrip("Z")
    assert (fetch.source, fetch.zone, fetch.base_url) == ("uk", "GB", "https://api.example.org")
    assert (fetch.start, fetch.end) == (start, end)
    assert [(r.month, r.format, r.out) for r in reports] == [
        (month, fmt, str(tmp_path / "reports" / month / f"wattprint-{month}.{fmt}")) for fmt in ("html", "json")]
    assert (tmp_path / "reports" / month).is_dir()
    # the unit's default report directory is the one the docs and serve-intensity's ledger sit beside
    assert build_parser().parse_args(report_argv(default)).out_dir == "/var/lib/wattprint/reports"


def test_report_unit_month_override_and_failures(sacct: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tests.monthkit import record_steps
    from wattprint.pipeline.cli import main
    from wattprint.pipeline.errors import UpstreamError

    monkeypatch.delenv("WATTPRINT_CONFIG", raising=False)
    base = {"PROMETHEUS_URL": "http://p:9090", "REPORT_DIR": str(tmp_path / "r")}
    calls = record_steps(monkeypatch)
    assert main(report_argv({**base, "WATTPRINT_RUN_ARGS": "--month 2023-12 --format md"})) == 0
    assert [v for v, _ in calls] == ["ingest", "report"]  # no sacct, no fetch unless asked
    assert calls[0][1].end == "2024-01-01T00:00:00Z"
    assert (calls[1][1].month, calls[1][1].format) == ("2023-12", "md")

    calls.clear()
    assert main(report_argv({**base, "WATTPRINT_RUN_ARGS": "--month 2023-13"})) == 2
    assert "--month: '2023-13' is not a month" in capsys.readouterr().err and calls == []

    calls = record_steps(monkeypatch, fail={"ingest": UpstreamError("http://p:9090", "connection refused")})
    assert main(report_argv(base)) == 1  # Prometheus unreachable: no report
    assert "step 1/2 (ingest) failed: http://p:9090: connection refused" in capsys.readouterr().err
    assert [v for v, _ in calls] == ["ingest"]

    calls.clear()
    assert main(report_argv({"REPORT_DIR": str(tmp_path / "r")})) == 2  # no PROMETHEUS_URL: not retried (exit 2)
    assert "--prometheus: empty URL" in capsys.readouterr().err and calls == []
    assert "2" in one(unit("wattprint-report.service"), "Service", "RestartPreventExitStatus").split()


# -- Prometheus -------------------------------------------------------------------------------------------------


def test_prometheus_scrape_config(tmp_path: Path) -> None:
    config = yaml.safe_load((SLURM / "prometheus-scrape.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    # WattprintExporterDown: up{job=~".*wattprint.*"}
    assert jobs and all(re.fullmatch(".*wattprint.*", name) for name in jobs)
    ports = {t.rsplit(":", 1)[1] for j in jobs.values() for sc in j["static_configs"] for t in sc["targets"]}
    assert ports == {"9835", "9837"}  # the units' --web.listen-address
    assert "--web.listen-address :9835" in one(unit("wattprint-exporter.service"), "Service", "ExecStart")
    assert "--web.listen-address :9837" in one(unit("wattprint-serve-intensity.service"), "Service", "ExecStart")

    promtool = require_tool("promtool")
    config["rule_files"] = [str(REPO / "rules" / "*.rules.yml")]  # the real rules, so promtool loads them too
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    res = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "wattprint.rules.yml" in res.stdout
