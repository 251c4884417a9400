"""The JSON Schema of the report (wattprint/pipeline/report/report-v1.schema.json) against real reports on the known
fleet
(tests/reportkit.py), the committed example, the contract in docs/reports.md, and reports broken on purpose."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from wattprint.pipeline.cli import main

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = "report-v1.schema.json"
ESTIMATES = ("phases:\n  - project: idefics\n    phase: experimentation\n    name: preliminary experimentation\n"
             "    cluster: jean-zay\n    gpu_model: V100\n    gpu_hours: 1000\n    intensity: 57\n"
             "  - {project: idefics, phase: evaluation, cpu_hours: 100, cpu_watts_per_core: 7.5, intensity: 57}\n")
RUNS: dict[str, tuple[str, ...]] = {
    "project": ("--project", "idefics", "--month", "2024-03"),
    "fleet": ("--month", "2024-03"),
    "project_with_estimates": ("--project", "idefics", "--month", "2024-03", "--estimates", "{estimates}"),
    "fleet_window": ("--start", "2024-03-02T00:00:00Z", "--end", "2024-03-03T00:00:00Z"),
    "project_all_layers_separate": ("--project", "idefics", "--month", "2024-03", "--layers", "all",
                                    "--idle-policy", "separate"),
}


def load_schema() -> dict[str, Any]:
    """From the installed package, where consumers find it (it ships as package data)."""
    text = resources.files("wattprint.pipeline.report").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return load_schema()


@pytest.fixture(scope="module")
def validator(schema) -> Draft202012Validator:
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def reports(tmp_path_factory, report_fleet) -> dict[str, dict[str, Any]]:
    """Every run of RUNS over the known fleet (built once per session), as parsed JSON."""
    tmp = tmp_path_factory.mktemp("schema-fleet")
    db_path, cfg = report_fleet
    estimates = tmp / "estimates.yaml"
    estimates.write_text(ESTIMATES, encoding="utf-8")
    out: dict[str, dict[str, Any]] = {}
    for name, args in RUNS.items():
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["report", "--db", str(db_path), "--config", str(cfg),
                         *(a.format(estimates=estimates) for a in args), "--format", "json"])
        assert code == 0, f"{name}: {stderr.getvalue()}"
        out[name] = json.loads(stdout.getvalue())
    return out


def errors(validator: Draft202012Validator, report: dict[str, Any]) -> list[tuple[list[str | int], str]]:
    return [(list(e.absolute_path), e.message) for e in validator.iter_errors(report)]


# -- the schema itself ---------------------------------------------------------------------------------

def test_schema_is_valid_draft_2020_12(schema):
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"] == {"const": 1}


def test_schema_ships_in_the_wheel():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["wattprint.pipeline"]
    assert any(Path("report", SCHEMA_FILE).match(g) for g in globs), globs
    assert (REPO / "wattprint" / "pipeline" / "report" / SCHEMA_FILE).is_file()


def _contract_keys() -> tuple[list[str], list[str], list[str]]:
    """Top-level keys of the contract block in docs/reports.md: (every report's, the all-projects report's, the
    optional ones: marked † there, added to schema_version 1 after its first reports)."""
    text = (REPO / "docs" / "reports.md").read_text(encoding="utf-8")
    section = text.split("## JSON contract", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    always: list[str] = []
    fleet: list[str] = []
    optional: list[str] = []
    into = always
    for line in block.splitlines():
        if line.startswith("# all-projects report only"):
            into = fleet
        elif line and not line[0].isspace() and not line.startswith("#"):
            names = re.split(r"\s{2,}", line, maxsplit=1)[0]
            for n in names.split(","):
                n = n.strip().removesuffix("[]")
                (optional if n.endswith("\u2020") else into).append(n.removesuffix("\u2020"))
    return always, fleet, optional


def test_schema_requires_exactly_the_documented_top_level_keys(schema):
    always, fleet, optional = _contract_keys()
    assert len(always) > 10 and len(fleet) > 3          # the parse found the block
    assert schema["required"] == always
    (rule,) = schema["allOf"]
    assert rule["if"]["properties"]["kind"] == {"const": "fleet"}
    assert rule["then"]["required"] == fleet
    assert set(schema["properties"]) == set(always) | set(fleet) | set(optional)


# -- real reports --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(RUNS))
def test_real_reports_validate(validator, reports, name):
    assert errors(validator, reports[name]) == []


def test_real_reports_cover_the_nullable_branches(reports):
    """The runs above are only worth something if they reach both sides of the schema's null/non-null choices."""
    assert reports["project"]["kind"] == "project" and reports["project"]["project"] == "idefics"
    assert reports["fleet"]["kind"] == "fleet" and reports["fleet"]["project"] is None
    assert reports["fleet"]["previous"] is None and reports["fleet"]["change"] is None
    window = reports["fleet_window"]
    assert window["window"]["label"] is None and window["previous"] is not None and window["change"] is not None
    assert any(p["previous_emissions_kg"] is not None for p in window["projects"])
    estimated = [p for p in reports["project_with_estimates"]["phases"] if p["label"] == "estimated (TDP)"]
    assert estimated and estimated[0]["wall_clock_hours"] is None and estimated[0]["sources"]
    assert reports["project_all_layers_separate"]["method"]["idle_policy"] == "separate"
    assert any(o["delta_kg"] < 0 for o in reports["project"]["whatif"]["options"])


# the keys host energy added (issue 7): optional in the schema (a report of an older wattprint lacks them and
# stays valid), so here: every report of this version carries them
HOST_KEYS = {
    "total": ("cpu_energy_kwh", "cpu_package_kwh", "cpu_dram_kwh", "cpu_hours", "cpu_hardware"),
    "phase": ("cpu_hardware", "cpu_hours", "cpu_energy_kwh", "cpu_package_kwh", "cpu_dram_kwh"),
    "phase.layers": ("cpu",),
    "data_quality": ("cpu_energy", "rapl"),
    "daily": ("cpu_energy_kwh",),
    "hourly": ("cpu_power_w",),
    "projects": ("cpu_energy_kwh", "cpu_hours"),
    "clusters": ("cpu_sockets", "cpu_energy_kwh", "cpu_job_energy_kwh", "cpu_idle_energy_kwh", "cpu_idle_share"),
    "top_jobs": ("cpu_hours", "cpu_energy_kwh"),
    "reconciliation": ("cpu",),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_reports_carry_the_host_energy_keys(schema, reports, name):
    r = reports[name]
    objects: dict[str, list[dict[str, Any]]] = {
        "total": [r["total"]], "phase": r["phases"], "phase.layers": [p["layers"] for p in r["phases"]],
        "data_quality": [r["data_quality"]], "daily": r["daily"], "hourly": r["hourly"],
        "projects": r.get("projects", []), "clusters": r.get("clusters", []), "top_jobs": r.get("top_jobs", []),
        "reconciliation": [r["reconciliation"]] if "reconciliation" in r else [],
    }
    for where, keys in HOST_KEYS.items():
        for obj in objects[where]:
            assert set(keys) <= set(obj), (where, set(keys) - set(obj))
    assert "cpu" in schema["$defs"]["layerName"]["enum"]
    assert [x["layer"] for x in r["layers"]] == ["gpu", "cpu", "idle", "pue", "embodied"]


def test_committed_example_validates(validator):
    example = json.loads((REPO / "docs" / "examples" / "idefics-2024-03.json").read_text(encoding="utf-8"))
    assert errors(validator, example) == []


# -- broken reports ------------------------------------------------------------------------------------

def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(r: dict[str, Any]) -> None:
        target: Any = r
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return apply


def _delete(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def apply(r: dict[str, Any]) -> None:
        target: Any = r
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return apply


BROKEN = [
    # (id, which report, mutation, where the error is, what it says)
    ("missing total.emissions_kg", "project", _delete(("total", "emissions_kg")),
     ["total"], "'emissions_kg' is a required property"),
    ("a string for a number", "project", _set(("total", "energy_kwh"), "12.5"),
     ["total", "energy_kwh"], "is not of type 'number'"),
    ("null where null is not allowed", "project", _set(("total", "gpu_hours"), None),
     ["total", "gpu_hours"], "None is not of type 'number'"),
    ("a negative energy", "project", _set(("phases", 0, "energy_kwh"), -1.0),
     ["phases", 0, "energy_kwh"], "less than the minimum of 0"),
    ("negative emissions in a daily row", "project", _set(("daily", 0, "emissions_kg"), -0.1),
     ["daily", 0, "emissions_kg"], "less than the minimum of 0"),
    ("fleet without reconciliation", "fleet", _delete(("reconciliation",)),
     [], "'reconciliation' is a required property"),
    ("fleet without previous", "fleet", _delete(("previous",)),
     [], "'previous' is a required property"),
    ("a data-quality share of 1.5", "project", _set(("data_quality", "energy", "counter"), 1.5),
     ["data_quality", "energy", "counter"], "greater than the maximum of 1"),
    ("an hourly_share of 1.5", "project", _set(("whatif", "options", 0, "hourly_share"), 1.5),
     ["whatif", "options", 0, "hourly_share"], "greater than the maximum of 1"),
    ("schema_version 2", "project", _set(("schema_version",), 2),
     ["schema_version"], "1 was expected"),
    ("an unknown kind", "project", _set(("kind",), "team"),
     ["kind"], "is not one of"),
    ("an unknown phase label", "project", _set(("phases", 0, "label"), "guessed"),
     ["phases", 0, "label"], "is not one of"),
    ("an unknown layer", "project", _set(("layers", 0, "layer"), "network"),
     ["layers", 0, "layer"], "is not one of"),
    ("an unknown idle policy", "project", _set(("method", "idle_policy"), "none"),
     ["method", "idle_policy"], "is not one of"),
    ("a time with an offset, not Z", "project", _set(("generated_at",), "2024-03-01T00:00:00+00:00"),
     ["generated_at"], "does not match"),
    ("an hour with fractional seconds", "project", _set(("hourly", 0, "hour"), "2024-03-01T01:00:00.5Z"),
     ["hourly", 0, "hour"], "does not match"),
    ("a daily date with a time", "project", _set(("daily", 0, "date"), "2024-03-01T00:00:00Z"),
     ["daily", 0, "date"], "does not match"),
    ("a project report without its project", "project", _set(("project",), None),
     ["project"], "None is not of type 'string'"),
    ("a fleet report naming a project", "fleet", _set(("project",), "idefics"),
     ["project"], "'idefics' is not of type 'null'"),
    ("an energy on the embodied layer", "project", _set(("layers", 4, "energy_kwh"), 1.0),
     ["layers", 4, "energy_kwh"], "1.0 is not of type 'null'"),
    ("a null energy on the gpu layer", "project", _set(("layers", 0, "energy_kwh"), None),
     ["layers", 0, "energy_kwh"], "None is not of type 'number'"),
    ("a measured phase without wall-clock hours", "project", _set(("phases", 0, "wall_clock_hours"), None),
     ["phases", 0, "wall_clock_hours"], "None is not of type 'number'"),
    ("a PUE under 1", "fleet", _set(("clusters", 0, "pue"), 0.9),
     ["clusters", 0, "pue"], "less than the minimum of 1"),
    ("a fractional GPU count", "project", _set(("total", "hardware", 0, "gpus"), 1.5),
     ["total", "hardware", 0, "gpus"], "is not of type 'integer'"),
    ("a what-if best that is not an option", "project", _set(("whatif", "best"), {"cluster": "x"}),
     ["whatif", "best"], "is not valid under any of the given schemas"),
    ("a previous window without its energy", "fleet_window", _delete(("previous", "energy_kwh")),
     ["previous"], "is not valid under any of the given schemas"),
    ("no phases at all", "project", _set(("phases",), []),
     ["phases"], "should be non-empty"),
    ("a negative CPU energy", "project", _set(("phases", 0, "cpu_energy_kwh"), -1.0),
     ["phases", 0, "cpu_energy_kwh"], "less than the minimum of 0"),
    ("a RAPL share of 2", "project", _set(("data_quality", "rapl", "gpu_energy_share"), 2.0),
     ["data_quality", "rapl", "gpu_energy_share"], "greater than the maximum of 1"),
    ("a RAPL node without its reason", "project", _delete(("data_quality", "rapl", "without", 0, "reason")),
     ["data_quality", "rapl", "without", 0], "'reason' is a required property"),
    ("a fractional socket count", "project", _set(("total", "cpu_hardware", 0, "sockets"), 1.5),
     ["total", "cpu_hardware", 0, "sockets"], "is not of type 'integer'"),
    ("a host reconciliation without its fleet energy", "fleet", _delete(("reconciliation", "cpu", "fleet_energy_kwh")),
     ["reconciliation", "cpu"], "'fleet_energy_kwh' is a required property"),
]


@pytest.mark.parametrize("name, mutate, path, message",
                         [pytest.param(*case[1:], id=case[0]) for case in BROKEN])
def test_broken_reports_are_rejected(validator, reports, name, mutate, path, message):
    report = copy.deepcopy(reports[name])
    assert errors(validator, report) == []
    mutate(report)
    found = errors(validator, report)
    assert any(p == path and message in m for p, m in found), found


ALLOWED = [
    # what the contract permits and a too-strict schema would refuse
    ("a key added at the top", _set(("carbon_budget_kg",), 12.0)),
    ("a key added deep inside", _set(("phases", 0, "layers", "gpu", "uncertainty_kg"), 0.3)),
    ("a negative what-if delta", _set(("whatif", "options", 0, "delta_kg"), -12.0)),
    ("no what-if option", lambda r: r["whatif"].update(options=[], best=None, saving_kg=0.0, saving_pct=0.0)),
    ("a window that is not a month", _set(("window", "label"), None)),
    ("a cluster without a zone", _set(("phases", 0, "clusters", 0, "zone"), None)),
    ("an estimated phase of unknown duration",
     lambda r: r["phases"][0].update(label="estimated (TDP)", wall_clock_hours=None, jobs=0)),
    ("a report from before host energy (no CPU keys)", lambda r: [
        r["total"].pop(k) for k in HOST_KEYS["total"]] + [p.pop(k) for p in r["phases"] for k in HOST_KEYS["phase"]]
     + [p["layers"].pop("cpu") for p in r["phases"]] + [r["data_quality"].pop(k) for k in HOST_KEYS["data_quality"]]
     + [r["layers"].pop(1)]),
]


@pytest.mark.parametrize("mutate", [pytest.param(m, id=i) for i, m in ALLOWED])
def test_what_the_contract_allows_is_accepted(validator, reports, mutate):
    report = copy.deepcopy(reports["project"])
    mutate(report)
    assert errors(validator, report) == []


def test_fleet_changes_can_be_negative_but_not_below_minus_one(validator, reports):
    report = copy.deepcopy(reports["fleet_window"])
    report["change"] = {"energy_pct": -0.4, "emissions_pct": -1.0}
    report["projects"][0]["change_pct"] = -0.4
    report["projects"][0]["previous_emissions_kg"] = None
    assert errors(validator, report) == []
    report["change"]["energy_pct"] = -1.5
    assert any(p == ["change"] for p, _ in errors(validator, report))
