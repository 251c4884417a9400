"""The typed report (wattprint/pipeline/report/types.py): its records mirror report-v1.schema.json key for key,
`to_dict` is the JSON report and `from_dict` reads it back, older and hand-made reports included."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES
from wattprint.pipeline import db
from wattprint.pipeline.report import record
from wattprint.pipeline.report.compute import build_report, finite
from wattprint.pipeline.report.run import render
from wattprint.pipeline.report.scope import ReportOptions
from wattprint.pipeline.report.types import Report, as_report
from wattprint.pipeline.report.window import month
from wattprint.pipeline.settings import load_settings

OPTIONS = {
    "project": {"project": "idefics"},
    "fleet": {},
    "project_all_layers_separate": {"project": "idefics", "layers": ("gpu", "cpu", "idle", "pue", "embodied"),
                                    "idle_policy": "separate"},
    "fleet_gpu_only": {"layers": ("gpu",), "top_jobs": 2},
}


@pytest.fixture(scope="module")
def built(report_fleet: tuple[Path, Path]) -> dict[str, Report]:
    db_path, cfg = report_fleet
    settings = load_settings(str(cfg))
    con = db.connect(db_path, read_only=True)
    con.execute("SET threads = 1")
    try:
        return {name: build_report(con, settings, ReportOptions(window=month("2024-03"), **kw))
                for name, kw in OPTIONS.items()}
    finally:
        con.close()


# --------------------------------------------------------------------------- the records mirror the schema


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """An object schema with its $ref and allOf parts merged: properties and required."""
    if "$ref" in node:
        node = {**defs[node["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    props = dict(node.get("properties", {}))
    required = set(node.get("required", []))
    for part in node.get("allOf", []) + [a for a in node.get("anyOf", []) if a.get("type") != "null"]:
        sub = _resolve(part, defs)
        props.update(sub["properties"])
        required |= sub["required"]
    return {"properties": props, "required": required, "items": node.get("items")}


def _record_of(tp: Any) -> type[record.Record] | None:
    for t in typing.get_args(tp) or (tp,):
        if isinstance(t, type) and issubclass(t, record.Record):
            return t
        inner = _record_of(t) if typing.get_args(t) else None
        if inner is not None:
            return inner
    return None


def _check(cls: type[record.Record], schema: dict[str, Any], defs: dict[str, Any], path: str,
           seen: list[str]) -> None:
    obj = _resolve(schema, defs)
    keys: dict[str, tuple[bool, Any]] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("flatten"):
            inner = _record_of(hints[f.name])
            assert inner is not None
            keys.update({g.name: (True, typing.get_type_hints(inner)[g.name])
                         for g in dataclasses.fields(inner)})
        else:
            keys[f.name] = (bool(f.metadata.get("omit_if_none")), hints[f.name])
    assert set(keys) == set(obj["properties"]), f"{path} ({cls.__name__}): fields differ from the schema's keys"
    for name, (optional, tp) in keys.items():
        if cls is Report and name in ("projects", "clusters", "top_jobs", "previous", "change", "reconciliation"):
            optional = True                      # the fleet sections: absent from a project report
        assert optional == (name not in obj["required"]), f"{path}.{name}: optional in one, required in the other"
        sub = obj["properties"][name]
        inner = _record_of(tp)
        if inner is None:
            continue
        seen.append(inner.__name__)
        sub_obj = _resolve(sub, defs)
        if sub_obj["items"] is not None:
            _check(inner, sub_obj["items"], defs, f"{path}.{name}[]", seen)
        else:
            _check(inner, sub, defs, f"{path}.{name}", seen)


def test_every_record_is_an_object_of_the_schema() -> None:
    schema = json.loads(resources.files("wattprint.pipeline.report").joinpath("report-v1.schema.json")
                        .read_text(encoding="utf-8"))
    seen: list[str] = []
    _check(Report, schema, schema["$defs"], "", seen)
    from wattprint.pipeline.report import types
    records = {n for n, v in vars(types).items() if isinstance(v, type) and issubclass(v, record.Record)
               and v.__module__.startswith(types.__name__)}
    assert records - set(seen) == {"Report", "FleetSections"}


# --------------------------------------------------------------------------- to_dict / from_dict


@pytest.mark.parametrize("name", list(OPTIONS))
def test_the_json_report_is_to_dict_and_reads_back(built: dict[str, Report], name: str) -> None:
    report = built[name]
    assert finite(report)
    text = render(report, "json")
    data = json.loads(text)
    assert data == report.to_dict()
    assert list(data) == list(report.to_dict())
    back = Report.from_dict(data)
    assert back == report
    assert render(back, "json") == text
    assert (back.fleet is not None) == (report.kind == "fleet")


def test_optional_keys_are_absent_not_null(built: dict[str, Report]) -> None:
    project = built["project"].to_dict()
    assert "projects" not in project and "reconciliation" not in project
    fleet = built["fleet"].to_dict()
    assert list(fleet)[-6:] == ["projects", "clusters", "top_jobs", "previous", "change", "reconciliation"]
    assert fleet["previous"] is None and fleet["change"] is None           # nullable: written as null
    layers = {row["layer"]: row for row in project["layers"]}
    assert "package_kwh" in layers["cpu"] and "package_kwh" not in layers["gpu"]
    assert "gpu_energy_kwh" in layers["idle"] and "gpu_energy_kwh" not in layers["pue"]
    assert project["phases"][0]["layers"]["embodied"]["energy_kwh"] is None


@pytest.mark.parametrize("name", ["project", "fleet"])
def test_an_older_report_reads_with_its_optional_keys_absent(name: str) -> None:
    """tests/fixtures/report/*.json predate the host (CPU) keys and the GPU counter check."""
    data = json.loads((FIXTURES / "report" / f"{name}.json").read_text(encoding="utf-8"))
    report = Report.from_dict(data)
    assert report.total.cpu_energy_kwh is None and report.data_quality.rapl is None
    assert all(p.cpu_hours is None and p.layers.cpu is None for p in report.phases)
    assert (report.fleet is not None) == (name == "fleet")
    # a required key the old report lacks reads as the empty value of its type
    assert report.data_quality.gpu_counters.gpu_hours == 0 and report.data_quality.gpu_counters.differences == ()
    out = report.to_dict()
    assert "cpu_energy_kwh" not in out["total"] and "rapl" not in out["data_quality"]
    assert out["phases"] == data["phases"] and out["window"] == data["window"]


def test_a_hand_made_report_reads_with_empty_values() -> None:
    report = as_report({"schema_version": 1, "kind": "project", "title": "empty", "daily": [{"date": "2024-03-01",
                                                                                              "energy_kwh": None}]})
    assert report.title == "empty" and report.phases == () and report.fleet is None
    assert math.isnan(report.total.emissions_kg) and report.whatif.best is None
    assert report.daily[0].date == "2024-03-01" and math.isnan(report.daily[0].energy_kwh)
    assert report.daily[0].cpu_energy_kwh is None
    with pytest.raises(TypeError):
        as_report([])  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["md", "html", "csv", "json"])
def test_every_format_renders_the_typed_report_as_its_json(built: dict[str, Report], fmt: str) -> None:
    for report in built.values():
        assert render(report, fmt) == render(json.loads(render(report, "json")), fmt)


@pytest.mark.parametrize("name", ["project", "fleet"])
def test_the_html_of_an_older_report_dict_is_that_of_its_typed_report(name: str) -> None:
    from wattprint.pipeline.report import html

    data = json.loads((FIXTURES / "report" / f"{name}.json").read_text(encoding="utf-8"))
    assert html.render(data) == html.render(Report.from_dict(data))
