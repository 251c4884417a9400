"""The cluster config: defaults without a file, the documented example, lookups, and every kind of bad value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wattprint.pipeline import config
from wattprint.pipeline.config import ClusterConfig, Config, LabelKeys
from wattprint.pipeline.errors import InputError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)


def write(tmp_path: Path, text: str, name: str = "wattprint.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error(tmp_path: Path, text: str) -> tuple[Path, str]:
    p = write(tmp_path, text)
    with pytest.raises(InputError) as exc:
        config.load(p)
    return p, str(exc.value)


def test_no_config_is_all_defaults() -> None:
    c = config.load(None)
    assert c == Config() and c.clusters == {} and c.default_cluster is None and c.rules.rules == ()
    assert c.intensity.nearest_hour_bound_hours == 3 and c.intensity.basis == "lifecycle"
    assert (c.ingest.step_seconds, c.ingest.max_gap_seconds, c.ingest.cluster_label) == (60, 300, "cluster")
    m = c.ingest.metrics
    assert m.wattprint.job_energy == "wattprint_job_energy_joules_total"
    assert m.wattprint.gpu_energy == "wattprint_gpu_energy_joules_total"
    assert m.wattprint.idle_energy == "wattprint_gpu_idle_energy_joules_total"
    assert (m.wattprint.labels.hostname, m.wattprint.labels.job_id) == (("hostname",), ("job_id",))
    assert m.dcgm.energy == "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION" and m.dcgm.joules_per_energy_unit == 1e-3
    assert m.dcgm.power == "DCGM_FI_DEV_POWER_USAGE" and m.dcgm.watts_per_power_unit == 1.0
    assert m.dcgm.labels.hostname == ("Hostname", "hostname") and m.dcgm.labels.uuid == ("UUID", "uuid")
    assert m.dcgm.labels.job_id == ("hpc_job", "pod")
    assert m.power.metric is None and m.power.watts_per_unit == 1.0
    assert not any(cluster.matches_host("gpu01") for cluster in c.clusters.values())
    unknown = c.cluster("anything")
    assert unknown == ClusterConfig(name="anything") and unknown.zone is None and unknown.pue is None
    assert not unknown.configured


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    c = config.load(write(tmp_path, "# nothing yet\n"))
    assert c.clusters == {} and c.source.endswith("wattprint.yaml")


def test_documented_example_loads(tmp_path: Path) -> None:
    example, rules = yaml_blocks()[:2]
    write(tmp_path, rules, "rules.yaml")
    c = config.load(write(tmp_path, example))
    jz = c.cluster("jean-zay")
    assert (jz.provider, jz.region, jz.zone, jz.pue, jz.nodes) == ("onprem", "fr-idf", "FR", 1.2, ("jz-gpu*", "r1i*"))
    assert jz.configured and jz.hardware_for("NVIDIA H100 80GB HBM3") == config.HardwareSpec(700.0, 150.0)
    assert jz.hardware_for("nvidia h100 80gb hbm3") is not None and jz.hardware_for("A100") is None
    assert c.cluster("oslo-lab").zone == "NO"                    # not the boolean false
    assert c.default_cluster == "jean-zay"
    assert c.ingest.metrics.dcgm.labels.job_id == ("hpc_job",)
    assert c.ingest.metrics.dcgm.labels.hostname == ("Hostname", "hostname")       # other entries keep defaults
    assert c.ingest.metrics.power.metric == "gpu_board_power_watts"
    assert c.ingest.metrics.power.labels.hostname == ("instance",)
    assert c.ingest.metrics.node.power == "ipmi_dcmi_power_consumption_watts"
    assert c.ingest.metrics.node.energy == "wattprint_node_energy_joules_total"          # the default kept
    assert c.ingest.metrics.node.labels.hostname == ("hostname", "instance")
    assert c.phase_rules == tmp_path / "rules.yaml"
    assert c.rules.apply({"account": "llm-x", "name": "pt-1"}) == ("pretraining", None)
    assert c.rules.apply({"label.wattprint_io_team": "research-a"}) == ("experimentation", "research")


def test_node_source_defaults_and_overrides(tmp_path: Path) -> None:
    """The node (BMC) source: the exporter's counter and ipmi_exporter's gauge, host from hostname then instance;
    null turns one series off; a GPU power gauge on the node's series is refused (priced twice) unless the node
    source leaves it."""
    from wattprint.pipeline.settings import Settings

    node = Config().ingest.metrics.node
    assert (node.enabled, node.energy, node.power, node.energy_unit, node.power_unit) == (
        True, "wattprint_node_energy_joules_total", "ipmi_dcmi_power_consumption_watts", "J", "W")
    assert (node.labels.hostname, node.labels.reading) == (("hostname", "instance"), ("source",))
    qs = {q.kind: q for q in Settings(Config(), None).queries() if q.source == "node"}
    assert {k: (q.metric, q.host_labels, q.domain_labels, q.is_counter) for k, q in qs.items()} == {
        "node_energy": ("wattprint_node_energy_joules_total", ("hostname", "instance"), ("source",), True),
        "node_power": ("ipmi_dcmi_power_consumption_watts", ("hostname", "instance"), ("source",), False)}
    c = config.load(write(tmp_path, "ingest:\n  metrics:\n    node:\n      energy: null\n      power: bmc_kw\n"
                                    "      power_unit: kW\n      labels: {hostname: [node]}\n"
                                    "    power:\n      metric: ipmi_dcmi_power_consumption_watts\n"))
    qs = {q.kind: q for q in Settings(c, None).queries() if q.source == "node"}
    assert list(qs) == ["node_power"] and qs["node_power"].scale == 1000.0
    assert qs["node_power"].host_labels == ("node",) and c.ingest.metrics.node.labels.reading == ("source",)
    off = config.load(write(tmp_path, "ingest:\n  metrics:\n    node: {enabled: false}\n"))
    assert not [q for q in Settings(off, None).queries() if q.source == "node"]
    with pytest.raises(InputError) as exc:
        Settings(Config(), None).queries("ipmi_dcmi_power_consumption_watts")
    assert str(exc.value).startswith("--power-metric: ipmi_dcmi_power_consumption_watts is read as a GPU power gauge")


def test_cluster_node_patterns(tmp_path: Path) -> None:
    c = config.load(write(tmp_path, "clusters:\n  a: {nodes: ['gpu*', 'login1']}\n  b: {nodes: 'gpu0*'}\n"
                                    "  c: {nodes: ['n[0-4]*']}\n"))
    a, b, n = c.cluster("a"), c.cluster("b"), c.cluster("c")
    assert a.matches_host("gpu01") and b.matches_host("gpu01")      # both match: the first in file order wins,
    assert list(c.clusters) == ["a", "b", "c"]                         # and the model keeps file order
    from wattprint.pipeline.model import _renumber_cluster_nodes
    from wattprint.pipeline.settings import Settings

    assert [(name, ord_) for name, _, ord_ in _renumber_cluster_nodes(Settings(c, None).build_settings().clusters)] \
        == [("a", 0), ("a", 1), ("b", 2), ("c", 3)]
    assert a.matches_host("GPU07.cluster.example.org")                # case-insensitive, short name tried
    assert a.matches_host("login1") and not any(x.matches_host("login2") for x in (a, b, n))
    assert n.matches_host("n3x") and not any(x.matches_host("n7") for x in (a, b, n))
    assert not any(x.matches_host("") for x in (a, b, n))
    assert c.cluster("b").nodes == ("gpu0*",)


def test_label_keys_pick() -> None:
    keys = LabelKeys(hostname=("Hostname", "hostname"))
    assert LabelKeys.pick({"hostname": "n1"}, keys.hostname) == "n1"
    assert LabelKeys.pick({"Hostname": "", "hostname": "n1"}, keys.hostname) == "n1"
    assert LabelKeys.pick({}, keys.hostname) == ""


def test_step_raises_default_gap(tmp_path: Path) -> None:
    c = config.load(write(tmp_path, "ingest: {step_seconds: 600}\n"))
    assert (c.ingest.step_seconds, c.ingest.max_gap_seconds) == (600, 600)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("clusterz: {}\n", 1, "unknown key clusterz (did you mean 'clusters'?)"),
        ("clusters:\n  jz:\n    zonne: FR\n", 3, "unknown key clusters.jz.zonne (did you mean 'zone'?)"),
        ("clusters:\n  jz:\n    hardware:\n      A100: {tdp: 400}\n", 4,
         "unknown key clusters.jz.hardware['A100'].tdp (did you mean 'tdp_watts'?)"),
        ("ingest:\n  metrics:\n    dcgm:\n      energy_units: J\n", 4,
         "unknown key ingest.metrics.dcgm.energy_units (did you mean 'energy_unit'?)"),
        ("ingest:\n  metrics:\n    wattprint:\n      labels: {host: h}\n", 4,
         "unknown key ingest.metrics.wattprint.labels.host (did you mean 'hostname'?)"),
        ("clusters:\n  jz:\n    pue: 0.9\n", 3, "clusters.jz.pue: expected a number >= 1.0, got 0.9"),
        ("clusters:\n  jz:\n    pue: '1.2'\n", 3, "clusters.jz.pue: expected a number >= 1.0, got the string '1.2'"),
        ("clusters:\n  jz:\n    pue: .nan\n", 3, "clusters.jz.pue: expected a number"),
        ("clusters:\n  jz:\n    zone: ''\n", 3, "clusters.jz.zone: expected a non-empty string"),
        ("clusters:\n  jz:\n    zone: 44\n", 3, "clusters.jz.zone: expected a string, got the number 44"),
        ("clusters:\n  jz:\n    zone: false\n", 3, "clusters.jz.zone: expected a string, got the boolean false"),
        ("clusters:\n  jz:\n    provider: ovh\n", 3, "clusters.jz.provider: unknown provider 'ovh'"),
        ("clusters:\n  jz:\n    nodes: 3\n", 3, "clusters.jz.nodes: expected a list of non-empty strings"),
        ("clusters:\n  jz:\n    nodes: [a, 2]\n", 3, "clusters.jz.nodes: expected a list"),
        ("clusters:\n  jz: [1]\n", 2, "clusters.jz: expected a mapping of keys, got a list"),
        ("clusters:\n  jz:\n    hardware:\n      A100: {tdp_watts: 0}\n", 4,
         "clusters.jz.hardware['A100'].tdp_watts: expected a number > 0.0, got 0"),
        ("clusters:\n  jz:\n    hardware:\n      A100: {embodied_kgco2eq: -1}\n", 4, "embodied_kgco2eq: expected"),
        ("clusters:\n  123: {}\n", 2, "a cluster name must be a non-empty string"),
        ("clusters: {jean-zay: {}}\ndefault_cluster: jean-zai\n", 2,
         "default_cluster: 'jean-zai' is not under clusters (did you mean 'jean-zay'?)"),
        ("default_cluster: 7\n", 1, "default_cluster: expected a string, got the number 7"),
        ("intensity:\n  basis: lifecycel\n", 2,
         "intensity.basis: unknown basis 'lifecycel' (did you mean 'lifecycle'?)"),
        ("intensity:\n  nearest_hour_bound_hours: -1\n", 2,
         "intensity.nearest_hour_bound_hours: expected a number >= 0"),
        ("ingest:\n  step_seconds: '60'\n", 2,
         "ingest.step_seconds: expected a whole number >= 1, got the string '60'"),
        ("ingest:\n  step_seconds: 1.5\n", 2, "ingest.step_seconds: expected a whole number"),
        ("ingest:\n  step_seconds: true\n", 2, "got the boolean true"),
        ("ingest:\n  step_seconds: 60\n  max_gap_seconds: 30\n", 3, "ingest.max_gap_seconds: expected a whole number "
         ">= step_seconds (60), got 30"),
        ("ingest:\n  cluster_label: 'my-cluster'\n", 2, "ingest.cluster_label: 'my-cluster' is not a Prometheus label"),
        ("ingest:\n  metrics:\n    wattprint:\n      job_energy: 'job energy'\n", 4,
         "ingest.metrics.wattprint.job_energy: 'job energy' is not a Prometheus metric name"),
        ("ingest:\n  metrics:\n    wattprint:\n      job_energy: ~\n", 4,
         "ingest.metrics.wattprint.job_energy: expected a metric name, got null"),
        ("ingest:\n  metrics:\n    dcgm:\n      energy_unit: nJ\n", 4, "ingest.metrics.dcgm.energy_unit: unknown unit"),
        ("ingest:\n  metrics:\n    power:\n      labels: {hostname: [host-name]}\n", 4,
         "ingest.metrics.power.labels.hostname: 'host-name' is not a Prometheus label name"),
        ("ingest:\n  metrics: []\n", 2, "ingest.metrics: expected a mapping"),
        ("ingest:\n  metrics:\n    node:\n      labels: {gpu: gpu}\n", 4,
         "unknown key ingest.metrics.node.labels.gpu"),
        ("ingest:\n  metrics:\n    node:\n      power_unit: dW\n", 4, "ingest.metrics.node.power_unit: unknown unit"),
        ("ingest:\n  metrics:\n    power:\n      metric: ipmi_dcmi_power_consumption_watts\n", 3,
         "ingest.metrics.power.metric: ipmi_dcmi_power_consumption_watts is read as a GPU power gauge and as "
         "whole-node power (ingest.metrics.node): its energy would be priced twice"),
        ("report:\n  layers: [gpu, nodes]\n", 2, "unknown layer 'nodes' (did you mean 'node'?)"),
        ("phase_rules: missing.yaml\n", 1, "phase_rules: no such file"),
        ("phase_rules: 3\n", 1, "phase_rules: expected a string"),
        ("clusters: {}\nclusters: {}\n", 2, "key 'clusters' appears twice"),
        ("clusters: {a: 1\n", 2, "invalid YAML"),
    ],
)
def test_bad_config_names_file_line_and_key(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    p, msg = error(tmp_path, text)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert fragment in msg, msg


def test_not_a_mapping(tmp_path: Path) -> None:
    p, msg = error(tmp_path, "- a\n- b\n")
    assert msg.startswith(str(p)) and "must be a mapping" in msg


def test_unknown_key_lists_valid_keys(tmp_path: Path) -> None:
    _, msg = error(tmp_path, "clusters:\n  jz:\n    zonne: FR\n")
    assert "valid keys under clusters.jz: provider, region, zone, pue, nodes, hardware" in msg


def test_errors_in_the_rules_file_name_the_rules_file(tmp_path: Path) -> None:
    rules = write(tmp_path, "- match: {account: a}\n  phase: pretrain\n", "rules.yaml")
    _, msg = error(tmp_path, "phase_rules: rules.yaml\n")
    assert msg.startswith(f"{rules}:2: rule #1: unknown phase 'pretrain'")


def test_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        config.load(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(exc.value) and "cannot read" in str(exc.value)


def test_budgets(tmp_path: Path) -> None:
    c = config.load(write(tmp_path, "budgets:\n  projects:\n    idefics: {monthly_kgco2eq: 2000}\n"
                                    "    \"vision lab\":\n      monthly_kgco2eq: 12.5\n"))
    assert dict(c.budgets.projects) == {"idefics": config.ProjectBudget(2000.0),
                                        "vision lab": config.ProjectBudget(12.5)}
    assert config.load(None).budgets.projects == {}
    assert config.load(write(tmp_path, "budgets:\n")).budgets.projects == {}
    example = yaml_blocks()[0]                       # the documented full example has one
    write(tmp_path, yaml_blocks()[1], "rules.yaml")
    assert config.load(write(tmp_path, example)).budgets.projects["idefics"].monthly_kgco2eq == 2000.0


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("budget: {}\n", 1, "unknown key budget (did you mean 'budgets'?)"),
        ("budgets:\n  project: {}\n", 2, "unknown key budgets.project (did you mean 'projects'?)"),
        ("budgets: [a]\n", 1, "budgets: expected a mapping of keys, got a list"),
        ("budgets:\n  projects:\n    p: {monthly_kgco2eq: 0}\n", 3,
         "budgets.projects.p.monthly_kgco2eq: expected a number > 0.0, got 0"),
        ("budgets:\n  projects:\n    p: {monthly_kgco2eq: '5'}\n", 3, "expected a number > 0.0, got the string '5'"),
        ("budgets:\n  projects:\n    p: {monthly_kgco2eq: .inf}\n", 3, "expected a number > 0.0"),
        ("budgets:\n  projects:\n    p: {monthly_kg: 5}\n", 3,
         "unknown key budgets.projects.p.monthly_kg (did you mean 'monthly_kgco2eq'?)"),
        ("budgets:\n  projects:\n    p:\n", 3, "budgets.projects.p.monthly_kgco2eq: missing"),
        ("budgets:\n  projects:\n    p: 500\n", 3, "budgets.projects.p: expected a mapping of keys, got the number"),
        ("budgets:\n  projects:\n    2024: {monthly_kgco2eq: 5}\n", 3, "a project name must be a non-empty string"),
    ],
)
def test_bad_budgets_name_file_line_and_key(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    p, msg = error(tmp_path, text)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert fragment in msg, msg
