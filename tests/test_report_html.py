"""The self-contained HTML report: structure, escaping, numbers, edge cases, and a real headless-Chromium render."""

from __future__ import annotations

import copy
import json
import math
import os
import random
import re
import shutil
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests import browser
from tests.conftest import FIXTURES, require_tool
from wattprint.pipeline.cli import main as cli_main
from wattprint.pipeline.report import fmt as md_fmt
from wattprint.pipeline.report.html import CHART_IDS, fmt, render

REPORTS = FIXTURES / "report"
NUMERIC_ATTRS = {"x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "width", "height"}


def load(name: str) -> dict[str, Any]:
    return json.loads((REPORTS / f"{name}.json").read_text(encoding="utf-8"))


class Page(HTMLParser):
    """What the tests look at: elements with their attributes and ancestors, text per element id, figures."""

    BLOCK = {"td", "th", "tr", "li", "p", "div", "section", "article", "ul", "h1", "h2", "h3", "br", "table",
             "figure", "figcaption", "text", "title", "desc", "header", "footer", "tspan", "g"}
    VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.elements: list[tuple[str, dict[str, str], tuple[str, ...]]] = []  # tag, attrs, ids of ancestors
        self.text_by_id: dict[str, list[str]] = {}
        self.text: list[str] = []
        self.order: list[str] = []  # ids in document order
        self.feed(text)
        self.close()

    def _ids(self) -> tuple[str, ...]:
        return tuple(a["id"] for _, a in self.stack if "id" in a)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._break(tag)
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a, self._ids()))
        if "id" in a:
            self.order.append(a["id"])
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a, self._ids()))

    def handle_endtag(self, tag: str) -> None:
        self._break(tag)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for i in self._ids():
            self.text_by_id.setdefault(i, []).append(data)

    def _break(self, tag: str) -> None:
        if tag in self.BLOCK:  # a cell or block boundary separates words; inline tags do not
            self.handle_data(" ")

    def within(self, element_id: str, tag: str | None = None) -> list[dict[str, str]]:
        return [a for t, a, ids in self.elements if element_id in ids and (tag is None or t == tag)]

    def tags(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a, _ in self.elements if t == tag]

    def section_text(self, element_id: str) -> str:
        return " ".join("".join(self.text_by_id.get(element_id, [])).split())

    def all_text(self) -> str:
        return " ".join("".join(self.text).split())


def parse(report: dict[str, Any]) -> tuple[str, Page]:
    out = render(report)
    return out, Page(out)


def drawn_marks(page: Page, figure_id: str) -> int:
    """rects with positive width and height, paths with a non-empty d, circles with r > 0 inside the figure's svg."""
    n = 0
    for t, a, ids in page.elements:
        if figure_id not in ids:
            continue
        if t == "rect" and "url(#" not in a.get("fill", "") and not a.get("fill", "").startswith("#fff") \
                and float(a.get("width", 0)) > 0 and float(a.get("height", 0)) > 0:
            n += 1
        elif t == "rect" and "url(#" in a.get("fill", "") and float(a.get("width", 0)) > 0:
            n += 1
        elif t == "path" and a.get("d", "").strip():
            n += 1
        elif t == "circle" and float(a.get("r", 0)) > 0:
            n += 1
    return n


def assert_finite_svg(page: Page) -> None:
    for t, a, _ in page.elements:
        for k, v in a.items():
            if k in NUMERIC_ATTRS and v and not v.endswith("%"):
                assert math.isfinite(float(v)), f"<{t} {k}={v!r}>"
        if t == "path":
            assert not re.search(r"nan|inf", a.get("d", ""), re.I), a["d"][:200]
        if t == "svg":
            assert re.fullmatch(r"0 0 \d+ \d+", a["viewbox"]), a["viewbox"]


# --------------------------------------------------------------------------- the number formatter


@pytest.mark.parametrize(("value", "kind", "kw", "expected"), [
    (428.343352, "qty", {}, "428"),
    (38.94, "qty", {}, "38.9"),
    (99.96, "qty", {}, "100.0"),           # as the Markdown report (fmt.num): 1 decimal below 100
    (1234567.8, "qty", {}, "1,234,568"),
    (0.5, "qty", {}, "0.5"),
    (0.0712, "qty", {}, "0.071"),
    (0, "qty", {}, "0.0"),
    (-0.0, "qty", {}, "0.0"),
    (-0.04, "share", {}, "-4.0"),
    (-0.2, "qty", {"decimals": 0}, "0"),
    (-0.0001, "share", {"signed": True}, "-0.0"),   # as fmt.signed_pct
    (-104.6, "qty", {"signed": True}, "-105"),
    (2095.2, "qty", {"signed": True}, "+2,095"),
    (0.1367, "share", {}, "13.7"),
    (0.244449, "share", {}, "24.4"),
    (-0.5674, "share", {"signed": True}, "-56.7"),
    (287.4, "intensity", {}, "287"),
    (1234.5, "int", {}, "1,234"),
    (1.2, "pue", {}, "1.20"),
    (12500.0, "qty", {"decimals": 0}, "12,500"),
    (0.25, "qty", {"decimals": 2}, "0.25"),
    (None, "qty", {}, "\u2014"),
    (float("nan"), "qty", {}, "\u2014"),
    (float("inf"), "share", {}, "\u2014"),
    (True, "qty", {}, "\u2014"),
    ("12", "qty", {}, "\u2014"),
])
def test_fmt(value: Any, kind: str, kw: dict[str, Any], expected: str) -> None:
    assert fmt(value, kind, **kw) == expected


@pytest.mark.parametrize("value", [0.0, 0.004, 0.0712, 0.1, 0.5, 0.96, 1.0, 38.94, 99.94, 99.96, 100.0, 428.34,
                                   12345.678, 1e7, -3.21, -250.5])
def test_fmt_agrees_with_the_markdown_report(value: float) -> None:
    """The HTML and the Markdown report print the same rounded figures (docs/reports.md, "Formats")."""
    assert fmt(value) == md_fmt.num(value)
    assert f"{fmt(value / 1000, 'share')} %" == md_fmt.pct(value / 1000)
    assert f"{fmt(value / 1000, 'share', signed=True)} %" == md_fmt.signed_pct(value / 1000)
    assert f"{fmt(value, 'intensity')} gCO2eq/kWh" == md_fmt.intensity(value)


def test_fmt_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown number kind"):
        fmt(1.0, "kilograms")


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("name", ["project", "fleet"])
def test_structure(name: str) -> None:
    report = load(name)
    out, page = parse(report)
    assert out.startswith("<!DOCTYPE html>")
    assert page.tags("title") and page.all_text().startswith(report["title"])
    figures = [a["id"] for a in page.tags("figure") if "chart" in a.get("class", "").split()]
    assert figures == list(CHART_IDS)
    for cid in CHART_IDS:
        svgs = page.within(cid, "svg")
        assert len(svgs) == 1, cid
        assert svgs[0]["role"] == "img" and svgs[0]["aria-labelledby"] == f"{cid}-title {cid}-desc"
        assert page.within(cid, "title") and page.within(cid, "desc")
        assert drawn_marks(page, cid) >= 3, cid
        ticks = [a for a in page.within(cid, "text") if "tick" in a.get("class", "")]
        assert len(ticks) >= 5, cid
        assert [a for a in page.within(cid, "text") if "axis-title" in a.get("class", "")], cid
        assert page.within(cid, "figcaption") is not None
    assert_finite_svg(page)
    # units on the axes
    assert "kg CO\u2082eq" in page.section_text("chart-phases")
    assert "energy (kWh)" in page.section_text("chart-daily")
    assert "GPU power (kW)" in page.section_text("chart-power-intensity")
    assert "intensity (gCO\u2082eq/kWh)" in page.section_text("chart-power-intensity")
    # every phase, in a block, with the model-card fields
    articles = page.section_text("phases")
    for phase in report["phases"]:
        assert phase["title"] in articles
    for field in ("Hardware Type:", "Hours used:", "Cloud Provider:", "Compute Region:", "Energy:", "Carbon Emitted:"):
        assert articles.count(field) == len(report["phases"]), field
    # one intensity line per zone, one power area per (cluster, run of hours)
    zones = {h["zone"] for h in report["hourly"]}
    lines = {a["stroke"] for a in page.within("chart-power-intensity", "path") if "intensity" in a.get("class", "")}
    assert len(lines) == len(zones)
    # sections in the order asked for
    want = ["headline", "phases", "chart-phases", "equivalences", "layers", "chart-daily", "chart-power-intensity",
            "data-quality", "whatif"]
    if name == "fleet":
        want += ["projects", "clusters", "top-jobs", "reconciliation"]
    assert [i for i in page.order if i in want] == want


def test_estimated_phase_is_labelled() -> None:
    report = load("project")
    _, page = parse(report)
    estimated = [a for a in page.tags("article") if "estimated" in a.get("class", "")]
    assert len(estimated) == sum(p["label"] != "measured" for p in report["phases"]) == 1
    assert "estimated (TDP)" in page.section_text("phases")
    badges = [a for a in page.within("phases", "span") if "badge" in a.get("class", "")]
    assert sorted(a["class"] for a in badges) == ["badge estimated", "badge measured", "badge measured"]
    assert page.section_text("phases").count("of GPU energy (estimated from TDP)") == 1


@pytest.mark.parametrize("name", ["project", "fleet"])
def test_banner_iff_warnings(name: str) -> None:
    report = load(name)
    _, page = parse(report)
    warnings = report["data_quality"]["warnings"]
    has_banner = "data-quality-warnings" in page.order
    assert has_banner == bool(warnings)
    for w in warnings:
        assert w in page.section_text("data-quality-warnings")
    if warnings:  # at the top: right after the header, before the headline
        assert page.order.index("data-quality-warnings") < page.order.index("headline")
    flipped = copy.deepcopy(report)
    flipped["data_quality"]["warnings"] = [] if warnings else ["1 hour priced at the world average", "poor coverage"]
    flipped["data_quality"]["poor"] = not warnings
    _, page2 = parse(flipped)
    assert ("data-quality-warnings" in page2.order) == (not warnings)
    if not warnings:
        banner = [a for a in page2.tags("section") if a.get("id") == "data-quality-warnings"][0]
        assert "poor" in banner["class"].split()
        assert "poor coverage" in page2.section_text("data-quality-warnings")


EXTERNAL = re.compile(r"""(?:src|href|action|poster|srcset|data)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


@pytest.mark.parametrize("name", ["project", "fleet"])
def test_self_contained(name: str) -> None:
    out, page = parse(load(name))
    assert not EXTERNAL.search(out)
    assert not re.search(r"<script\b", out, re.I)          # no script at all, so none with src either
    assert not re.search(r"<(?:link|img|iframe|object|embed|base)\b", out, re.I)
    assert not re.search(r"@import|@font-face", out, re.I)
    for m in re.finditer(r"url\(([^)]*)\)", out):
        assert m.group(1).startswith("#"), m.group(0)   # only references to patterns in the same svg
    for _, attrs, _ in page.elements:
        for k, v in attrs.items():
            assert "//" not in v or k == "d", (k, v)       # no URL in any attribute
            assert not k.startswith("on"), k               # no event handlers


HOSTILE = {
    "title": "Report for <script>alert(1)</script>",
    "project": "<script>alert(1)</script>",
    "phase_title": '<img src=x onerror="alert(2)">',
    "cluster": 'jz" onmouseover="alert(3)',
    "provider_text": "a & b <i>",
    "user": "</td></tr></table><script>alert(4)</script>",
    "hourly_cluster": "</svg><script>alert(5)</script>",
    "zone": "Z<1>",
    "warning": "<b>bold</b> & <script>alert(6)</script>",
    "statement": '"><svg onload=alert(7)>',
}


def _with_strings(values: dict[str, str]) -> dict[str, Any]:
    r = load("fleet")
    r["title"] = values["title"]
    r["projects"][0]["project"] = values["project"]
    r["phases"][0]["title"] = values["phase_title"]
    r["phases"][0]["clusters"][0]["cluster"] = values["cluster"]
    r["whatif"]["options"][0]["cluster"] = r["whatif"]["best"]["cluster"] = values["cluster"]
    r["phases"][0]["provider_text"] = values["provider_text"]
    r["top_jobs"][0]["user"] = values["user"]
    for row in r["hourly"]:
        if row["cluster"] == "jean-zay":
            row["cluster"] = values["hourly_cluster"]
            row["zone"] = values["zone"]
    r["data_quality"]["warnings"] = [values["warning"]]
    r["method"]["statement"] = values["statement"]
    return r


def test_hostile_strings_are_inert() -> None:
    out, page = parse(_with_strings(HOSTILE))
    _, benign = parse(_with_strings({k: f"plain {k}" for k in HOSTILE}))
    # escaping changed no element: the same tags in the same order as with harmless names
    assert [t for t, _, _ in page.elements] == [t for t, _, _ in benign.elements]
    assert not page.tags("script") and not page.tags("img") and len(page.tags("svg")) == 3
    assert "alert(" not in "".join(v for _, a, _ in page.elements for v in a.values())
    assert not [k for _, a, _ in page.elements for k in a if k.startswith("on")]
    text = page.all_text()
    for s in HOSTILE.values():
        assert s in text, s
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out


# --------------------------------------------------------------------------- the numbers are the report's


def test_numbers_match_the_report() -> None:
    report = load("project")
    _, page = parse(report)
    headline = page.section_text("headline")
    total = report["total"]
    assert f"{fmt(total['emissions_kg'])} kg CO\u2082eq" in headline
    assert f"{fmt(total['energy_kwh'])} kWh" in headline
    assert f"{fmt(total['gpu_hours'])} GPU-hours" in headline
    assert f"{fmt(total['intensity_g_per_kwh'], 'intensity')} gCO\u2082eq/kWh" in headline
    blocks = [" ".join(t.split()) for t in _article_texts(render(report))]
    assert len(blocks) == len(report["phases"])
    for phase, block in zip(report["phases"], blocks, strict=True):
        assert f"Carbon Emitted: {fmt(phase['emissions_kg'])} kg CO\u2082eq" in block
        assert f"Energy: {fmt(phase['energy_kwh'])} kWh" in block
        assert f"{fmt(phase['gpu_hours'])} GPU-hours" in block
        if phase["wall_clock_hours"] is not None:
            assert f"{fmt(phase['wall_clock_hours'])} hours wall-clock" in block
        weighted = fmt(phase["intensity_g_per_kwh"], "intensity")
        assert f"{weighted} gCO2eq/kWh" in block or f"energy-weighted {weighted} gCO\u2082eq/kWh" in block
        assert phase["hardware_text"] in block
        assert phase["provider_text"] in block
    layers = page.section_text("layers")
    for row in report["layers"]:
        assert f"{fmt(row['energy_kwh'])} {fmt(row['emissions_kg'])} {'yes' if row['included'] else 'no'}" in layers
    included = [r for r in report["layers"] if r["included"]]
    assert f"Total included (headline) {fmt(total['facility_energy_kwh'])} {fmt(total['emissions_kg'])}" in layers
    assert fmt(sum(r["emissions_kg"] for r in included)) == fmt(total["emissions_kg"])
    eq = report["equivalences"]
    equiv = page.section_text("equivalences")
    assert f"{fmt(eq['miles_driven'])} miles" in equiv and f"{fmt(eq['homes_energy_years'])} homes" in equiv
    dq = page.section_text("data-quality")
    for share in list(report["data_quality"]["energy"].values()) + list(report["data_quality"]["intensity"].values()):
        assert f"{fmt(share, 'share')} %" in dq
    w = report["whatif"]
    whatif = page.section_text("whatif")
    for o in w["options"]:
        assert f"{fmt(o['emissions_kg'])} {fmt(o['delta_kg'], signed=True)}" in whatif
    assert f"saving of {fmt(w['saving_kg'])} kg ({fmt(w['saving_pct'], 'share')} %)" in whatif
    best_rows = [a for a in page.within("whatif", "tr") if "best" in a.get("class", "").split()]
    assert len(best_rows) == 1
    # the bar labels of the phase chart are the phases' reported emissions
    values = [t for t in page.section_text("chart-phases").split(" kg") if t]
    for phase in report["phases"]:
        assert any(v.endswith(fmt(phase["emissions_kg"])) for v in values)


def _article_texts(out: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", m).replace("&nbsp;", " ").replace("&amp;", "&")
            for m in re.findall(r"<article\b.*?</article>", out, re.S)]


def test_fleet_tables_match_the_report() -> None:
    report = load("fleet")
    _, page = parse(report)
    projects = page.section_text("projects")
    for p in report["projects"]:
        assert p["project"] in projects
        change = "\u2014" if p["change_pct"] is None else f"{fmt(p['change_pct'], 'share', signed=True)} %"
        assert (f"{fmt(p['gpu_hours'])} {fmt(p.get('cpu_hours'))} {fmt(p['energy_kwh'])} "
                f"{fmt(p.get('cpu_energy_kwh'))} {fmt(p['emissions_kg'])} {fmt(p['previous_emissions_kg'])} "
                f"{change}") in projects
    clusters = page.section_text("clusters")
    for c in report["clusters"]:
        assert (f"{fmt(c['energy_kwh'])} {fmt(c['job_energy_kwh'])} {fmt(c['idle_energy_kwh'])} "
                f"{fmt(c['idle_share'], 'share')}") in clusters
    jobs = page.section_text("top-jobs")
    for j in report["top_jobs"]:
        assert f"{j['job_id']} {j['project']} {j['phase']} {j['user'] or fmt(None)} {fmt(j['gpu_hours'])}" in jobs
    rec = page.section_text("reconciliation")
    r = report["reconciliation"]
    for k, v in r.items():
        if isinstance(v, dict):
            continue                    # the host reconciliation: test_host_energy_numbers_match_the_report
        assert (fmt(v) if k.endswith("_kwh") else v) in rec
    parts = ("projects_energy_kwh", "not_in_ledger_kwh", "idle_apportioned_kwh", "idle_unapportioned_kwh")
    assert f"sum of the parts {fmt(sum(r[k] for k in parts))}" in rec
    assert fmt(sum(r[k] for k in parts)) == fmt(r["fleet_energy_kwh"])
    headline = page.section_text("headline")
    assert f"emissions {fmt(report['change']['emissions_pct'], 'share', signed=True)} %" in headline


def test_host_energy_numbers_match_the_report(report_fleet: tuple[Path, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The host (CPU) figures of a real report of the known fleet (tests/reportkit.py) on the page: per phase, in
    the headline, data quality (RAPL nodes), and the all-projects tables with the host reconciliation."""
    report = json.loads(_cli(report_fleet, capsys, "--project", "idefics", "--format", "json"))
    _, page = parse(report)
    total = report["total"]
    headline = page.section_text("headline")
    assert f"{fmt(total['cpu_energy_kwh'])} kWh of CPU energy" in headline
    assert f"{fmt(total['cpu_hours'])} CPU core-hours" in headline
    blocks = [" ".join(t.split()) for t in _article_texts(render(report))]
    for phase, block in zip(report["phases"], blocks, strict=True):
        assert (f"Energy: {fmt(phase['energy_kwh'])} kWh of GPU energy, {fmt(phase['cpu_energy_kwh'])} kWh of CPU "
                f"energy (package {fmt(phase['cpu_package_kwh'])} kWh, DRAM {fmt(phase['cpu_dram_kwh'])} kWh) "
                "(measured)") in block
        assert f"{fmt(phase['gpu_hours'])} GPU-hours, {fmt(phase['cpu_hours'])} CPU core-hours" in block
        assert phase["hardware_text"] in block
    layers = page.section_text("layers")
    cpu = next(r for r in report["layers"] if r["layer"] == "cpu")
    assert f"{cpu['title']} {cpu['method']} {fmt(cpu['energy_kwh'])} {fmt(cpu['emissions_kg'])} yes" in layers
    dq = page.section_text("data-quality")
    for share in report["data_quality"]["cpu_energy"].values():
        assert f"{fmt(share, 'share')} %" in dq
    rapl = report["data_quality"]["rapl"]
    assert f"Nodes without readable RAPL {rapl['nodes_without']} of {rapl['nodes']}" in dq
    for n in rapl["without"]:
        assert f"{n['cluster']} {n['hostname']} {n['reason']} {fmt(n['gpu_energy_share'], 'share')} %" in dq
    fleet = json.loads(_cli(report_fleet, capsys, "--format", "json"))
    _, page = parse(fleet)
    projects = page.section_text("projects")
    for p in fleet["projects"]:
        assert (f"{fmt(p['gpu_hours'])} {fmt(p['cpu_hours'])} {fmt(p['energy_kwh'])} {fmt(p['cpu_energy_kwh'])} "
                f"{fmt(p['emissions_kg'])}") in projects
    clusters = page.section_text("clusters")
    for c in fleet["clusters"]:
        assert (f"{fmt(c['idle_share'], 'share')} {fmt(c['cpu_sockets'], 'int')} {fmt(c['cpu_energy_kwh'])} "
                f"{fmt(c['cpu_idle_energy_kwh'])} {fmt(c['cpu_idle_share'], 'share')}") in clusters
    jobs = page.section_text("top-jobs")
    for j in fleet["top_jobs"]:
        assert (f"{fmt(j['gpu_hours'])} {fmt(j['cpu_hours'])} {fmt(j['energy_kwh'])} {fmt(j['cpu_energy_kwh'])} "
                f"{fmt(j['emissions_kg'])}") in jobs
    rec = page.section_text("reconciliation")
    host = fleet["reconciliation"]["cpu"]
    assert f"whole fleet (host CPU energy) {fmt(host['fleet_energy_kwh'])}" in rec
    for k, label in (("projects_energy_kwh", "projects' jobs"), ("not_in_ledger_kwh", "jobs not in the ledger"),
                     ("idle_apportioned_kwh", "host idle, apportioned to jobs"),
                     ("idle_unapportioned_kwh", "host idle, not apportioned")):
        assert f"{label} {fmt(host[k])}" in rec
    parts = ("projects_energy_kwh", "not_in_ledger_kwh", "idle_apportioned_kwh", "idle_unapportioned_kwh")
    assert rec.count(f"sum of the parts {fmt(sum(host[k] for k in parts))}") == 1
    assert fmt(sum(host[k] for k in parts)) == fmt(host["fleet_energy_kwh"])
    assert host["note"] in rec


# --------------------------------------------------------------------------- edge cases


def _edge(kind: str) -> dict[str, Any]:
    r = load("project")
    if kind == "single-day":
        r["daily"] = r["daily"][:1]
    elif kind == "single-hour":
        r["hourly"] = r["hourly"][:1]
    elif kind == "all-zeros":
        for row in r["daily"]:
            row["energy_kwh"] = row["emissions_kg"] = 0.0
        for row in r["hourly"]:
            row["power_w"] = row["intensity_g_per_kwh"] = 0.0
        for p in r["phases"]:
            p["emissions_kg"] = p["energy_kwh"] = 0.0
            for lay in p["layers"].values():
                lay["emissions_kg"] = 0.0
    elif kind == "one-phase":
        r["phases"] = r["phases"][1:2]
    elif kind == "no-hourly":
        r["hourly"] = []
    elif kind == "no-series":
        del r["hourly"]
        del r["daily"]
        r["phases"] = []
    elif kind == "one-region":
        r["whatif"]["options"] = []
        r["whatif"]["best"] = None
    elif kind == "no-whatif":
        del r["whatif"]
    elif kind == "nan-and-nulls":
        r["daily"][3]["energy_kwh"] = float("nan")
        r["daily"][4]["emissions_kg"] = None
        r["hourly"][2]["power_w"] = float("inf")
        r["hourly"][3]["intensity_g_per_kwh"] = None
        r["phases"][0]["layers"]["pue"]["emissions_kg"] = float("nan")
        r["total"]["intensity_g_per_kwh"] = None
        r["data_quality"]["energy"]["estimated"] = float("nan")
    elif kind == "gap-in-days":
        r["daily"] = r["daily"][:3] + r["daily"][10:]
    elif kind == "minimal":
        r = {"schema_version": 1, "kind": "project", "title": "empty"}
    return r


EDGES = ["single-day", "single-hour", "all-zeros", "one-phase", "no-hourly", "no-series", "one-region", "no-whatif",
         "nan-and-nulls", "gap-in-days", "minimal"]


@pytest.mark.parametrize("kind", EDGES)
def test_edge_cases_render(kind: str) -> None:
    report = _edge(kind)
    out, page = parse(report)
    assert_finite_svg(page)
    assert not re.search(r"\b(?:nan|NaN|inf|Infinity)\b", out)
    figures = [a["id"] for a in page.tags("figure")]
    assert figures == list(CHART_IDS)  # always the three figures, a message where there is nothing to draw
    for cid in CHART_IDS:
        assert page.within(cid, "svg") or "no " in page.section_text(cid).lower(), cid
    if kind == "single-day":
        bars = [a for a in page.within("chart-daily", "rect") if "energy" in a.get("class", "")]
        assert len(bars) == 1 and float(bars[0]["width"]) > 10
        assert len([a for a in page.within("chart-daily", "circle") if "dot" in a.get("class", "")]) == 1
    if kind == "single-hour":
        areas = page.within("chart-power-intensity", "path")
        assert [a for a in areas if "power" in a.get("class", "")]
        assert page.within("chart-power-intensity", "circle")  # one point of intensity: a dot, not an empty path
        assert re.search(r"\d\d:00", page.section_text("chart-power-intensity"))
    if kind == "all-zeros":
        for cid in CHART_IDS:
            assert "all values are zero" in page.section_text(cid)
    if kind in ("no-hourly", "no-series", "minimal"):
        assert "No measured data in this window." in page.section_text("chart-power-intensity")
        assert not page.within("chart-power-intensity", "svg")
    if kind == "no-series":
        assert "No measured data in this window." in page.section_text("chart-daily")
        assert "No phases" in page.section_text("chart-phases")
    if kind == "one-phase":
        rows = [a for a in page.within("chart-phases", "g") if a.get("class") == "phase-row"]
        assert len(rows) == 1
    if kind in ("one-region", "no-whatif"):
        assert "only one region is configured" in page.section_text("whatif")
    if kind == "gap-in-days":  # the missing days break the line and leave no bar
        bars = [a for a in page.within("chart-daily", "rect") if "energy" in a.get("class", "")]
        assert len(bars) == len(report["daily"]) - sum(d["energy_kwh"] == 0 for d in report["daily"])
        line = [a for a in page.within("chart-daily", "path") if "emissions" in a.get("class", "")][0]
        assert line["d"].count("M") == 2


def test_render_refuses_a_non_mapping() -> None:
    with pytest.raises(TypeError):
        render([])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- a real browser


WIDTH, HEIGHT = 1280, 11500       # the fleet page fits, with its held-idle, Scope 2, marginal and time-shift sections


def check_in_chromium(report: dict[str, Any], name: str, tmp_path: Path) -> None:
    """Render the page in headless Chromium at 1280 px: a real PNG, painted charts, nothing cut off, the DOM."""
    chromium = require_tool("chromium")
    page_path = tmp_path / f"report-{name}.html"
    page_path.write_text(render(report), encoding="utf-8")
    png = tmp_path / f"report-{name}.png"
    seconds = browser.screenshot(chromium, page_path, png, WIDTH, HEIGHT)
    print(f"chromium screenshot of {name}: {seconds:.2f} s -> {png}")
    artifacts = os.environ.get("WATTPRINT_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(artifacts) / png.name)

    img = browser.decode_png(png.read_bytes())
    assert (img.width, img.height) == (WIDTH, HEIGHT)
    colours = img.colours()
    assert sum(colours.values()) == WIDTH * HEIGHT
    assert len(colours) > 500, f"only {len(colours)} colours: blank or unstyled page"
    assert colours[(255, 255, 255)] / (WIDTH * HEIGHT) < 0.97, "almost nothing painted"
    # the charts were painted: solid areas in their exact fill colours
    for hex_colour, what in (("#2b6cb0", "GPU layer bars"), ("#4a90d9", "daily energy bars"),
                             ("#90cdf4", "power area of the first cluster")):
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        assert colours[rgb] > 2000, f"{what} ({hex_colour}): {colours[rgb]} pixels"
    # nothing spills out of the 1180 px column into the side margins at 1280 px
    c = img.channels
    for y, row in enumerate(img.rows):
        for x0, x1 in ((0, 40), (WIDTH - 40, WIDTH)):
            strip = row[x0 * c:x1 * c]
            assert strip.count(255) == len(strip), f"something painted in the margin at y={y}, x={x0}..{x1}"
    # and the page ends before the window does (the whole report is in the screenshot)
    assert all(r.count(255) == len(r) for r in img.rows[-40:]), "page longer than the screenshot"

    dom = browser.dump_dom(chromium, page_path)
    loaded = Page(dom)
    assert [a["id"] for a in loaded.tags("figure")] == list(CHART_IDS)
    for cid in CHART_IDS:
        assert loaded.within(cid, "svg") and drawn_marks(loaded, cid) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("name", ["project", "fleet"])
def test_chromium_renders_the_page(name: str, tmp_path: Path) -> None:
    check_in_chromium(load(name), name, tmp_path)


# --------------------------------------------------------------------------- the real builder's reports


@pytest.fixture(scope="module")
def built(report_fleet: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The known fleet, with functional units on some ledger rows so that the SCI section has rows (idefics: tokens
    in two phases and samples in one; bloom-mini: tokens); no other number depends on them."""
    import duckdb

    path, cfg = report_fleet
    copy = tmp_path_factory.mktemp("report-html") / "units.duckdb"
    copy.write_bytes(path.read_bytes())
    con = duckdb.connect(str(copy))
    con.executemany("UPDATE jobs SET units = ?, unit_name = ? WHERE job_id = ?",
                    [[4e9, "tokens", "p1"], [1e9, "tokens", "e1"], [1000.0, "samples", "f1"], [2e9, "tokens", "b1"]])
    con.close()
    return copy, cfg


def _cli(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str], *args: str) -> str:
    db_path, cfg = built
    code = cli_main(["report", "--db", str(db_path), "--config", str(cfg), "--month", "2024-03", "-q", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


@pytest.mark.slow
@pytest.mark.parametrize("scope", [("--project", "idefics"), ()], ids=["project", "fleet"])
def test_the_builders_report_as_html(built: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path, scope: tuple[str, ...]) -> None:
    """`wattprint report --format html` on the known fleet of tests/reportkit.py: the page shows the JSON's
    numbers, rounded the Markdown's way, with the three charts, and renders in Chromium."""
    report = json.loads(_cli(built, capsys, *scope, "--format", "json"))
    out = _cli(built, capsys, *scope, "--format", "html")
    page = Page(out)
    assert not EXTERNAL.search(out) and "<script" not in out
    assert [a["id"] for a in page.tags("figure")] == list(CHART_IDS)
    for cid in CHART_IDS:
        assert drawn_marks(page, cid) >= 3, cid
    assert_finite_svg(page)
    blocks = [" ".join(t.split()) for t in _article_texts(out)]
    assert len(blocks) == len(report["phases"]) > 0
    for phase, block in zip(report["phases"], blocks, strict=True):
        assert f"Carbon Emitted: {md_fmt.num(phase['emissions_kg'])} kg CO\u2082eq" in block
        assert f"Energy: {md_fmt.num(phase['energy_kwh'])} kWh of GPU energy" in block
        assert phase["hardware_text"] in block and phase["region_text"] in block
    assert f"{md_fmt.num(report['total']['emissions_kg'])} kg CO\u2082eq" in page.section_text("headline")
    md = _cli(built, capsys, *scope, "--format", "md")
    for row in report["layers"]:  # the same rounded figures as the Markdown report's layer table
        assert f"| {row['title']} | {md_fmt.num(row['energy_kwh'])} | {md_fmt.num(row['emissions_kg'])} |" in md
        assert f"{fmt(row['energy_kwh'])} {fmt(row['emissions_kg'])}" in page.section_text("layers")
    # the time-shift what-if: each phase's row and the saving line, the JSON's numbers rounded as in the Markdown
    t = report["time_shift"]
    shift = " ".join(page.section_text("time-shift").split())
    for o in t["phases"]:
        start = f"+{o['best_shift_hours']} h" if o["best_shift_hours"] else "as it ran"
        assert (f"{o['phase']} {fmt(o['energy_kwh'])} {fmt(o['actual_kg'])} {start} {fmt(o['best_kg'])} "
                f"{fmt(o['saving_kg'])} {fmt(o['saving_pct'], 'share')} {o['shifts_measured']}") in shift
        assert f"| {o['phase']} | {md_fmt.num(o['energy_kwh'])} | {md_fmt.num(o['actual_kg'])} |" in md
    assert f"a saving of {fmt(t['saving_kg'])} kg ({fmt(t['saving_pct'], 'share')} %)" in shift
    assert len(page.within("time-shift", "tr")) == 2 + len(t["phases"]) + len(t["jobs"])   # + a head row per table
    # the marginal section (the known fleet's us-west-2 zone has marginal data for 48.5 of its 72 hours): its label,
    # the total's sentence and each phase's row, the JSON's numbers rounded as in the Markdown
    m = report["marginal"]
    marginal = " ".join(page.section_text("marginal").split())
    assert "Marginal (consequential) — not comparable with and not added to the location-based total." in marginal
    assert 0 < m["total"]["covered_share"] < 1 and m["total"]["sources"] == ["watttime"]
    assert (f"{fmt(m['total']['marginal_kg'])} kg CO₂eq at the marginal emission rate "
            f"({fmt(m['total']['marginal_g_per_kwh'], 'intensity')} gCO₂eq/kWh on average)") in marginal
    for o in m["phases"]:
        assert (f"{o['phase']} {fmt(o['energy_kwh'])} {fmt(o['covered_kwh'])} {fmt(o['covered_share'], 'share')} "
                f"{fmt(o['marginal_kg'])}") in marginal
        assert f"| {o['phase']} | {md_fmt.num(o['energy_kwh'])} | {md_fmt.num(o['covered_kwh'])} |" in md
    assert len(page.within("marginal", "tr")) == 4 + len(m["phases"]) + len(m["projects"]) + len(m["clusters"])
    # the disclosure sections: the ESRS E1 table (all projects) or the Annex XI training energy (a project)
    if report["kind"] == "fleet":
        e = report["esrs_e1"]
        esrs = " ".join(page.section_text("esrs-e1").split())
        for label, key in (("location-based", "scope2_location_tco2eq"), ("market-based", "scope2_market_tco2eq")):
            assert f"E1-6 gross Scope 2, {label} {fmt(e[key], decimals=3)} tCO" in esrs
        assert f"E1-5 energy consumption (electricity) {fmt(e['energy_mwh'], decimals=3)} MWh" in esrs
        assert f"reported apart {fmt(e['scope3_embodied_tco2eq'], decimals=3)} tCO" in esrs
        assert len(page.within("esrs-e1", "tr")) == 5
    else:
        a = report["annex_xi"]
        annex = " ".join(page.section_text("annex-xi").split())
        for p in a["phases"]:
            assert f"{p['phase']} {p['label']} {fmt(p['energy_kwh'])} {p['method']}" in annex
        assert f"Known energy consumption of training: {fmt(a['energy_kwh'])} kWh" in annex
    # the SCI per functional unit: each row (with its project in the all-projects report), the JSON's numbers
    sci = report["sci"]
    assert sci["rows"], "the built fleet's ledger gives units"
    per_unit = " ".join(page.section_text("sci").split())
    for x in sci["rows"]:
        who = f"{x['project']} " if report["kind"] == "fleet" else ""
        assert (f"{who}{x['phase']} {x['unit_name']} {fmt(x['units'])} {fmt(x['jobs'], 'int')} "
                f"{fmt(x['energy_share'], 'share')} % {fmt(x['operational_g'])} {fmt(x['embodied_g'])} "
                f"{fmt(x['g_per_unit'])} {fmt(x['g_per_thousand_units'])} {fmt(x['g_per_million_units'])}") in per_unit
        cells = ([x["project"]] if who else []) + [x["phase"], x["unit_name"], md_fmt.num(x["units"])]
        assert "| " + " | ".join(cells) + " |" in md
    assert len(page.within("sci", "tr")) == 1 + len(sci["rows"])
    assert ("project" in sci["rows"][0]) is (report["kind"] == "fleet")
    # the uncertainty bands: the total's and each phase's (and project's) band, the JSON's numbers rounded as in the
    # Markdown
    u = report["uncertainty"]
    bands = " ".join(page.section_text("uncertainty").split())

    def band(b: dict[str, Any]) -> str:
        return f"{fmt(b['emissions_kg'])} kg (band {fmt(b['low_kg'])}\u2013{fmt(b['high_kg'])} kg)"

    assert u["total"]["low_kg"] < report["total"]["emissions_kg"] < u["total"]["high_kg"]
    assert f"Total emissions: {band(u['total'])}" in bands
    for b in u["phases"] + u["projects"]:
        assert f"{b['name']} " in bands and band(b) in bands
    assert (f"{md_fmt.num(u['total']['emissions_kg'])} kg (band {md_fmt.num(u['total']['low_kg'])}\u2013"
            f"{md_fmt.num(u['total']['high_kg'])} kg)") in md
    check_in_chromium(report, "builder-" + report["kind"], tmp_path)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _encode_png(width: int, rows: list[bytes], bpp: int) -> bytes:
    """A PNG whose row y uses filter y % 5 (None, Sub, Up, Average, Paeth), to check the decoder on each."""
    out, prior = bytearray(), bytes(width * bpp)
    for y, row in enumerate(rows):
        f = y % 5
        enc = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            pred = (0, a, b, (a + b) // 2, _paeth(a, b, c))[f]
            enc.append((x - pred) & 0xFF)
        out += bytes([f]) + enc
        prior = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, len(rows), 8, 6 if bpp == 4 else 2, 0, 0, 0)
    return (browser.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(out)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("bpp", [3, 4])
def test_png_decoder_round_trip(bpp: int) -> None:
    rnd = random.Random(bpp)
    rows = [bytes(rnd.randrange(256) for _ in range(7 * bpp)) for _ in range(11)]
    img = browser.decode_png(_encode_png(7, rows, bpp))
    assert (img.width, img.height, img.channels) == (7, 11, bpp)
    assert img.rows == rows
    assert sum(img.colours().values()) == 77


def test_png_decoder_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        browser.decode_png(b"GIF89a")
