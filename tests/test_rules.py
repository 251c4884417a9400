"""Prometheus recording rules and alerts (rules/): promtool check and unit tests, plus what promtool cannot
see: every alert has a test where it fires and one where it stays silent, the annotations an on-call engineer
needs, the thresholds file and the alerts agree, and the recording rules are those docs/operations.md names.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require_tool

RULES = REPO / "rules"
RULES_FILE = RULES / "wattprint.rules.yml"
THRESHOLDS_FILE = RULES / "wattprint-thresholds.rules.yml"
TEST_FILES = sorted((RULES / "tests").glob("*.yml"))
OPERATIONS = REPO / "docs" / "operations.md"
THRESHOLD_PREFIX = "wattprint:alert_threshold_"
SEVERITIES = {"critical", "warning", "info"}


def load(path: Path) -> dict:
    with path.open() as fh:
        return yaml.safe_load(fh)


def rules_of(path: Path) -> list[dict]:
    return [rule for group in load(path)["groups"] for rule in group["rules"]]


def alerts() -> list[dict]:
    return [r for r in rules_of(RULES_FILE) if "alert" in r]


def records(path: Path = RULES_FILE) -> list[str]:
    return [r["record"] for r in rules_of(path) if "record" in r]


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *map(str, args)], capture_output=True, text=True, timeout=120)


# -- promtool -------------------------------------------------------------------------------------------------


def test_promtool_check_rules() -> None:
    r = promtool("check", "rules", RULES_FILE, THRESHOLDS_FILE)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == 2, r.stdout


def test_there_are_unit_tests() -> None:
    assert len(TEST_FILES) >= 4, TEST_FILES


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file: Path) -> None:
    r = promtool("test", "rules", test_file)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout and "FAILED" not in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize(("rule", "old", "new", "error"), [
    # an unbalanced parenthesis in a recording rule
    ("job:wattprint_power_watts", "rate(wattprint_job_energy_joules_total[5m])",
     "rate(wattprint_job_energy_joules_total[5m]", "unclosed left parenthesis"),
    # an unknown function in an alert
    ("WattprintIntensityFallback", "max by (zone) (wattprint_grid_intensity_fallback)",
     "max by (zone) (wattprint_grid_intensity_fallbak(1))", "unknown function"),
    # a range where an instant vector belongs
    ("WattprintIntensityStale", "max by (zone) (wattprint_grid_intensity_age_seconds)",
     "max by (zone) (wattprint_grid_intensity_age_seconds[5m])", "expected type instant vector"),
])
def test_broken_expression_is_caught(tmp_path: Path, rule: str, old: str, new: str, error: str) -> None:
    """Bad input: an edit that breaks one expression fails `promtool check rules` (as in CI), naming the rule."""
    text = RULES_FILE.read_text()
    assert text.count(old) == 1, f"the test's expression moved: {old!r}"
    broken = tmp_path / RULES_FILE.name
    broken.write_text(text.replace(old, new))
    shutil.copy(THRESHOLDS_FILE, tmp_path / THRESHOLDS_FILE.name)
    r = promtool("check", "rules", broken, tmp_path / THRESHOLDS_FILE.name)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f'"{rule}"' in out and error in out, out
    assert "wattprint-thresholds.rules.yml\n  SUCCESS" in out, out  # the other file still checks


# -- what promtool cannot check -------------------------------------------------------------------------------


def alert_tests() -> list[tuple[Path, str, str, list[dict]]]:
    """(test file, alertname, eval_time, exp_alerts) for every alert_rule_test."""
    out = []
    for path in TEST_FILES:
        for group in load(path)["tests"]:
            for t in group.get("alert_rule_test") or []:
                out.append((path, t["alertname"], str(t["eval_time"]), t.get("exp_alerts") or []))
    return out


def test_every_alert_has_a_firing_and_a_silent_test() -> None:
    names = {a["alert"] for a in alerts()}
    tested = alert_tests()
    firing = {name for _, name, _, exp in tested if exp}
    silent = {name for _, name, _, exp in tested if not exp}
    assert not names - firing, f"alerts with no promtool test where they fire: {sorted(names - firing)}"
    assert not names - silent, f"alerts with no promtool test where they stay silent: {sorted(names - silent)}"
    unknown = {name for _, name, _, _ in tested} - names
    assert not unknown, f"tests of alerts that do not exist: {sorted(unknown)}"


def test_firing_tests_check_labels_and_annotations() -> None:
    """promtool compares only what a test lists: every expected alert lists its severity and all annotations."""
    by_name = {a["alert"]: a for a in alerts()}
    for path, name, at, exp_alerts in alert_tests():
        for exp in exp_alerts:
            where = f"{path.name}: {name} at {at}"
            assert exp.get("exp_labels", {}).get("severity") == by_name[name]["labels"]["severity"], where
            assert set(exp.get("exp_annotations", {})) == set(by_name[name]["annotations"]), where


def test_alerts_have_what_on_call_needs() -> None:
    anchors = {re.sub(r"[^a-z0-9 -]", "", m.group(1).strip().lower()).replace(" ", "-")
               for m in re.finditer(r"^#+ (.+)$", OPERATIONS.read_text(), re.M)}
    for a in alerts():
        name = a["alert"]
        assert re.fullmatch(r"Wattprint[A-Z][A-Za-z]+", name), name
        assert a.get("for"), f"{name}: no `for:` duration"
        assert a.get("labels", {}).get("severity") in SEVERITIES, name
        ann = a.get("annotations", {})
        assert ann.get("summary") and ann.get("description"), f"{name}: summary and description"
        assert "$value" in ann["description"] or "$labels" in ann["description"], name
        assert ann.get("runbook_url", "").startswith("docs/operations.md#"), name
        anchor = ann["runbook_url"].split("#", 1)[1]
        assert anchor == name.lower(), f"{name}: runbook anchor {anchor}"
        assert anchor in anchors, f"{name}: docs/operations.md has no heading for #{anchor}"


def test_job_alerts_name_job_project_cluster_zone() -> None:
    for a in alerts():
        if a["alert"] in ("WattprintHighIntensityRun", "WattprintJobHighEmissionRate"):
            text = a["annotations"]["description"]
            for label in ("job_id", "project", "cluster", "zone"):
                assert f"$labels.{label}" in text, (a["alert"], label)


def test_thresholds_are_constants_used_by_the_alerts() -> None:
    thresholds = rules_of(THRESHOLDS_FILE)
    assert [g["name"] for g in load(THRESHOLDS_FILE)["groups"]] == ["wattprint-thresholds"]
    names = [r["record"] for r in thresholds]
    assert len(names) == len(set(names)) and names, names
    for r in thresholds:
        assert r["record"].startswith(THRESHOLD_PREFIX), r
        assert re.fullmatch(r"vector\(\d+(\.\d+)?\)", r["expr"].strip()), r  # the chart renders vector(<value>)
        assert not r.get("labels"), r
    exprs = "\n".join(a["expr"] for a in alerts())
    missing_alert = next(a for a in alerts() if a["alert"] == "WattprintAlertThresholdsMissing")["expr"]
    for name in names:
        assert re.search(rf"on \(\) group_left \(\) {re.escape(name)}\b", exprs), f"{name}: used by no alert"
        assert f"absent({name})" in missing_alert, f"{name}: not in WattprintAlertThresholdsMissing"
    used = set(re.findall(rf"{re.escape(THRESHOLD_PREFIX)}\w+", RULES_FILE.read_text()))
    assert used == set(names), f"thresholds used but not recorded: {sorted(used - set(names))}"


def test_recording_rules_are_the_documented_ones() -> None:
    doc = OPERATIONS.read_text()
    section = doc.split("## Recording rules", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+:[a-z_:0-9]+)` \|", section, re.M)
    assert documented, "no recording rule table in docs/operations.md"
    assert sorted(records()) == sorted(documented)


def test_no_aggregation_keeps_the_scrape_job_label() -> None:
    """`job` is Prometheus' scrape job: GPU/job aggregations use job_id and drop job/instance."""
    for r in rules_of(RULES_FILE):
        for clause in re.findall(r"\b(?:by|on|group_left|without)\s*\(([^)]*)\)", r["expr"]):
            labels = {x.strip() for x in clause.split(",")}
            assert "job" not in labels and "instance" not in labels, (r.get("record") or r.get("alert"), clause)


def test_unit_tests_pin_the_group_order() -> None:
    """promtool evaluates rule groups in a random order unless group_eval_order lists them all."""
    for path in TEST_FILES:
        t = load(path)
        groups = [g["name"] for f in t["rule_files"] for g in load(path.parent / f)["groups"]]
        assert sorted(t.get("group_eval_order") or []) == sorted(groups), path.name
