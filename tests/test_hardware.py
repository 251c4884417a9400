"""The shipped GPU hardware table: validation, key and NVML-name lookup, embodied defaults."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO
from wattprint.pipeline import hardware
from wattprint.pipeline.errors import InputError

HEADER = "key,vendor,name,tdp_watts,embodied_kgco2eq,match,source\n"
GOOD_ROW = "A100,NVIDIA,NVIDIA A100 SXM4,400,,\\ba100-sxm,datasheet\n"

# Board power per key as published (see wattprint/pipeline/data/HARDWARE_SOURCES.md).
EXPECTED_TDP = {
    "V100": 300, "V100-PCIE": 250, "A100": 400, "A100-PCIE": 300, "A100-PCIE-40GB": 250, "H100": 700,
    "H100-PCIE": 350, "H100-NVL": 400, "H200": 700, "H200-NVL": 600, "L4": 72, "L40": 300, "L40S": 350, "T4": 70,
    "MI250X": 560, "MI300X": 750,
}


def test_shipped_table_has_the_expected_models_and_power():
    specs = {s.key: s for s in hardware.load()}
    assert {k: s.tdp_watts for k, s in specs.items()} == EXPECTED_TDP
    assert hardware.keys() == [s.key for s in hardware.load()]
    for s in specs.values():
        assert s.vendor in ("NVIDIA", "AMD") and s.name and s.source
        assert s.embodied_kgco2eq is None      # no per-model published figure: the BLOOM default applies


def test_every_row_is_cited_in_the_sources_file():
    text = (REPO / "wattprint" / "pipeline" / "data" / "HARDWARE_SOURCES.md").read_text(encoding="utf-8")
    for key in hardware.keys():
        assert f"| `{key}` |" in text, key


@pytest.mark.parametrize("name,key", [
    ("a100", "A100"), ("A100", "A100"), ("h100-pcie", "H100-PCIE"), ("H100-NVL", "H100-NVL"), ("mi300x", "MI300X"),
    ("  l40s ", "L40S"),
])
def test_lookup_by_key_ignores_case(name, key):
    spec = hardware.lookup(name)
    assert spec is not None and spec.key == key


@pytest.mark.parametrize("nvml,key", [
    ("Tesla V100-SXM2-32GB", "V100"),
    ("Tesla V100-SXM2-16GB", "V100"),
    ("Tesla V100-PCIE-32GB", "V100-PCIE"),
    ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100-SXM4-40GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100-PCIE"),
    ("NVIDIA A100-PCIE-40GB", "A100-PCIE-40GB"),
    ("NVIDIA H100 80GB HBM3", "H100"),
    ("NVIDIA H100 PCIe", "H100-PCIE"),
    ("NVIDIA H100 NVL", "H100-NVL"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA H200 NVL", "H200-NVL"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA L40", "L40"),
    ("NVIDIA L40S", "L40S"),
    ("Tesla T4", "T4"),
    ("AMD Instinct MI250X", "MI250X"),
    ("AMD Instinct MI300X", "MI300X"),
    ("nvidia h100 pcie", "H100-PCIE"),
])
def test_lookup_by_nvml_name(nvml, key):
    spec = hardware.lookup(nvml)
    assert spec is not None, nvml
    assert spec.key == key


@pytest.mark.parametrize("name", [
    "NVIDIA GH200 480GB",            # CPU+GPU superchip: not an H200
    "Tesla V100-SXM3-32GB",          # DGX-2 part, 350 W: not the SXM2 row
    "Tesla V100S-PCIE-32GB",
    "NVIDIA B200",
    "NVIDIA GeForce RTX 4090",
    "",
    "   ",
])
def test_lookup_unknown_is_none(name):
    assert hardware.lookup(name) is None


def test_longest_match_wins_whatever_the_row_order():
    text = HEADER + "H100,NVIDIA,H100 SXM,700,,h100,a\nH100-PCIE,NVIDIA,H100 PCIe,350,,h100 pcie,b\n"
    entries = hardware.parse_entries(text)
    assert hardware.find("NVIDIA H100 PCIe", entries).key == "H100-PCIE"
    assert hardware.find("NVIDIA H100 80GB HBM3", entries).key == "H100"
    reverse = hardware.parse_entries(HEADER + text.splitlines(keepends=True)[2] + text.splitlines(keepends=True)[1])
    assert hardware.find("NVIDIA H100 PCIe", reverse).key == "H100-PCIE"


def test_parse_good_table():
    specs = hardware.parse(HEADER + GOOD_ROW + "X1,ACME,Acme X1,250,120.5,x1,sheet\n")
    assert specs[0] == hardware.GpuSpec("A100", "NVIDIA", "NVIDIA A100 SXM4", 400.0, None, "datasheet", r"\ba100-sxm")
    assert specs[1].embodied_kgco2eq == 120.5


@pytest.mark.parametrize("text,line,problem", [
    ("key,vendor,name,tdp,embodied_kgco2eq,match,source\n" + GOOD_ROW, 1, "header"),
    (HEADER + GOOD_ROW + "B,NVIDIA,B,abc,,b,s\n", 3, "not a number"),
    (HEADER + GOOD_ROW + "B,NVIDIA,B,nan,,b,s\n", 3, "not a finite number"),
    (HEADER + "B,NVIDIA,B,0,,b,s\n", 2, "outside"),
    (HEADER + "B,NVIDIA,B,2500,,b,s\n", 2, "outside"),
    (HEADER + "B,NVIDIA,B,300,-1,b,s\n", 2, "negative"),
    (HEADER + "B,NVIDIA,B,300,,(unclosed,s\n", 2, "not a regular expression"),
    (HEADER + GOOD_ROW + "a100,NVIDIA,again,300,,x,s\n", 3, "appears twice"),
    (HEADER + "B,NVIDIA,B,300,,b,\n", 2, "empty source"),
    (HEADER + "B,NVIDIA,B,300,,\n", 2, "expected 7 fields"),
    (HEADER + "B,NVIDIA,B,300,,b,s,extra\n", 2, "expected 7 fields"),
    (HEADER + "B 2,NVIDIA,B,300,,b,s\n", 2, "must be letters"),
    (HEADER + GOOD_ROW + GOOD_ROW.replace("A100,", "C,").replace("400", "x"), 3, "not a number"),
])
def test_broken_table_names_file_and_line(text, line, problem):
    with pytest.raises(InputError) as err:
        hardware.parse(text, name="gpu_hardware.csv")
    assert err.value.where == f"gpu_hardware.csv:{line}"
    assert problem in err.value.problem


def test_empty_table_is_refused():
    with pytest.raises(InputError, match="no rows"):
        hardware.parse(HEADER)


def test_shipped_patterns_compile_case_insensitive():
    for spec, pattern in hardware._table():
        assert pattern.flags & re.IGNORECASE
        assert hardware.lookup(spec.key) == spec


def test_embodied_default_is_the_bloom_paper():
    assert hardware.DEFAULT_EMBODIED_KGCO2EQ_PER_GPU == 150.0
    assert hardware.DEFAULT_LIFETIME_YEARS == 6.0
    assert hardware.DEFAULT_UTILISATION == 0.85
    assert "2211.02001" in hardware.EMBODIED_DEFAULT_SOURCE
    per_hour = hardware.embodied_kg_per_gpu_hour(hardware.lookup("A100"))
    assert per_hour == pytest.approx(150 / (6 * 8760 * 0.85))
    assert 0.003 <= per_hour < 0.0035            # the paper's "0.003 kg of CO2eq for each hour of GPU time"
    own = hardware.GpuSpec("X", "ACME", "X", 100.0, 300.0, "sheet")
    assert hardware.embodied_kgco2eq_per_gpu(own) == (300.0, "gpu_hardware.csv row X: sheet")
    assert hardware.embodied_kg_per_gpu_hour(own) == pytest.approx(2 * per_hour)
