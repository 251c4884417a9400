"""`wattprint estimate`, the estimate API, manual phase files and the EPA equivalences."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from wattprint.pipeline import equivalences
from wattprint.pipeline.cli import main
from wattprint.pipeline.errors import InputError
from wattprint.pipeline.estimate import METHOD, EstimateResult, compute, load_manual_phases, parse_manual_phases


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["estimate", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    rc, out, err = cli(capsys, *args, "--format", "json")
    assert rc == 0, err
    return json.loads(out)


# ------------------------------------------------------------------------------------------------ IDEFICS card

@pytest.mark.parametrize("gpus,hours,card_kg", [
    (128, 350, 5160),      # IDEFICS-80B
    (128, 70, 1032),       # IDEFICS-9B
    (512, 672, 39498),     # IDEFICS-80B-instruct (the TDP arithmetic gives 39,636: 0.35 % above the card)
    (384, 72, 3174),       # IDEFICS-9B-instruct
])
def test_reproduces_the_idefics_card_within_one_percent(capsys, gpus, hours, card_kg):
    d = cli_json(capsys, "--gpu-model", "A100", "--gpus", str(gpus), "--hours", str(hours), "--intensity", "288")
    assert d["gpu_hours"] == gpus * hours
    assert d["energy_kwh"] == pytest.approx(gpus * hours * 0.4)
    assert abs(d["emissions_kg"] - card_kg) / card_kg < 0.01
    assert d["method"] == METHOD == "estimated (TDP)"
    assert d["tdp_watts"] == 400 and d["tdp_source"] == "table" and d["hardware_key"] == "A100"
    assert "gpu_hardware.csv row A100" in d["tdp_reference"]
    assert d["intensity_g_per_kwh"] == 288 and d["intensity_source"] == "given"
    assert d["intensity_reference"] == "--intensity"
    assert d["gpus"] == gpus and d["hours"] == hours and d["pue"] == 1.0 and d["pue_source"] == "default"


def test_gpu_only_estimate_has_an_empty_cpu_part(capsys):
    d = cli_json(capsys, "--gpu-model", "A100", "--gpus", "128", "--hours", "350", "--intensity", "288")
    assert d["gpu_energy_kwh"] == d["energy_kwh"] and d["gpu_emissions_kg"] == d["emissions_kg"]
    assert d["cpu_hours"] == 0 and d["cpu_energy_kwh"] == 0 and d["cpu_emissions_kg"] == 0
    assert d["cpu_watts_per_core"] is None and d["cpu_model"] is None and d["cpu_power_reference"] is None


# ------------------------------------------------------------------------------------------------ CPU hours

def test_idefics_experimentation_cpu_hours(capsys):
    """The IDEFICS card's experimentation phase used 460,000 CPU hours on Jean Zay (Intel Cascade Lake, France,
    57 gCO2eq/kWh). The card gives no per-core power: a Xeon Gold 6248 (Jean Zay's Cascade Lake part) is 150 W TDP
    over 20 cores (Intel ARK 192446), 7.5 W per core. docs/reports.md has the figures and the sources."""
    d = cli_json(capsys, "--cpu-hours", "460000", "--cpu-watts-per-socket", "150", "--cores-per-socket", "20",
                 "--cpu-model", "Intel Xeon Gold 6248", "--intensity", "57")
    assert d["cpu_hours"] == 460000 and d["cpu_watts_per_core"] == pytest.approx(7.5)
    assert d["cpu_watts_per_socket"] == 150 and d["cores_per_socket"] == 20
    assert d["cpu_power_reference"] == "--cpu-watts-per-socket / --cores-per-socket"
    assert d["cpu_energy_kwh"] == pytest.approx(3450.0) and d["energy_kwh"] == pytest.approx(3450.0)
    assert d["cpu_emissions_kg"] == pytest.approx(196.65) and d["emissions_kg"] == pytest.approx(196.65)
    assert d["gpu_hours"] == 0 and d["gpu_energy_kwh"] == 0 and d["tdp_watts"] is None and d["gpu_model"] is None
    assert d["embodied_kg"] == 0                                       # GPUs' only: none here
    same = cli_json(capsys, "--cpu-hours", "460000", "--cpu-watts-per-core", "7.5", "--intensity", "57")
    assert same["cpu_energy_kwh"] == pytest.approx(d["cpu_energy_kwh"]) and same["cores_per_socket"] is None
    assert same["cpu_power_reference"] == "--cpu-watts-per-core"


def test_gpu_and_cpu_hours_together(capsys):
    d = cli_json(capsys, "--gpu-model", "V100", "--gpu-hours", "385000", "--cpu-hours", "460000",
                 "--cpu-watts-per-core", "7.5", "--intensity", "57", "--pue", "1.1")
    assert d["gpu_energy_kwh"] == pytest.approx(385000 * 0.3 * 1.1)
    assert d["cpu_energy_kwh"] == pytest.approx(460000 * 0.0075 * 1.1)
    assert d["energy_kwh"] == pytest.approx(d["gpu_energy_kwh"] + d["cpu_energy_kwh"])
    assert d["emissions_kg"] == pytest.approx(d["energy_kwh"] * 0.057)
    assert d["gpu_emissions_kg"] + d["cpu_emissions_kg"] == pytest.approx(d["emissions_kg"])
    rc, out, err = cli(capsys, "--gpu-model", "V100", "--gpu-hours", "385000", "--cpu-hours", "460000",
                       "--cpu-watts-per-socket", "150", "--cores-per-socket", "20", "--cpu-model",
                       "Intel Xeon Gold 6248", "--intensity", "57")
    assert rc == 0 and err == ""
    assert "Hours used: 385,000 GPU-hours, 460,000 CPU core-hours" in out
    assert "Intel Xeon Gold 6248, 150 W per socket / 20 cores = 7.5 W per core" in out
    assert "Energy: 118,950 kWh (GPU 115,500, CPU 3,450)" in out
    assert "Carbon Emitted: 6,780 kg of CO2eq (GPU 6,584, CPU 197)" in out


CPU = ["--cpu-hours", "100", "--cpu-watts-per-core", "5", "--intensity", "100"]


@pytest.mark.parametrize("args,flag,text", [
    (["--cpu-watts-per-core", "5", "--intensity", "100"], "--cpu-watts-per-core", "needs --cpu-hours"),
    (["--cpu-watts-per-socket", "150", "--cores-per-socket", "20", "--intensity", "1"], "--cpu-watts-per-socket",
     "needs --cpu-hours"),
    (["--cpu-model", "Xeon", "--intensity", "1"], "--cpu-model", "needs --cpu-hours"),
    (["--cpu-hours", "100", "--intensity", "100"], "--cpu-watts-per-core", "no CPU power given"),
    (["--cpu-hours", "100", "--cpu-model", "Xeon", "--intensity", "100"], "--cpu-watts-per-core",
     "no CPU power given"),
    (CPU + ["--cpu-watts-per-socket", "150"], "--cpu-watts-per-socket", "not both"),
    (CPU + ["--cores-per-socket", "20"], "--cores-per-socket", "not both"),
    (["--cpu-hours", "100", "--cpu-watts-per-socket", "150", "--intensity", "1"], "--cpu-watts-per-socket",
     "needs --cores-per-socket"),
    (["--cpu-hours", "100", "--cores-per-socket", "20", "--intensity", "1"], "--cores-per-socket",
     "needs --cpu-watts-per-socket"),
    (["--cpu-hours", "0", "--cpu-watts-per-core", "5", "--intensity", "1"], "--cpu-hours", "out of range"),
    (["--cpu-hours", "nan", "--cpu-watts-per-core", "5", "--intensity", "1"], "--cpu-hours", "not a finite"),
    (["--cpu-hours", "1e12", "--cpu-watts-per-core", "5", "--intensity", "1"], "--cpu-hours", "out of range"),
    (["--cpu-hours", "10", "--cpu-watts-per-core", "150", "--intensity", "1"], "--cpu-watts-per-core",
     "out of range"),
    (["--cpu-hours", "10", "--cpu-watts-per-core", "-1", "--intensity", "1"], "--cpu-watts-per-core", "out of range"),
    (["--cpu-hours", "10", "--cpu-watts-per-socket", "5000", "--cores-per-socket", "20", "--intensity", "1"],
     "--cpu-watts-per-socket", "out of range"),
    (["--cpu-hours", "10", "--cpu-watts-per-socket", "150", "--cores-per-socket", "2.5", "--intensity", "1"],
     "--cores-per-socket", "not a whole number"),
    (["--cpu-hours", "10", "--cpu-watts-per-socket", "150", "--cores-per-socket", "0", "--intensity", "1"],
     "--cores-per-socket", "out of range"),
    (["--cpu-hours", "10", "--cpu-watts-per-socket", "500", "--cores-per-socket", "2", "--intensity", "1"],
     "--cpu-watts-per-socket", "per core"),
    (["--cpu-hours", "10", "--cpu-watts-per-core", "5", "--cpu-model=", "--intensity", "1"], "--cpu-model", "empty"),
    (CPU[:4] + ["--gpu-model", "A100", "--gpus", "8"], "--gpus", "needs --hours"),   # a half GPU part: an error
    (CPU[:4], "--intensity", "no grid carbon intensity"),
])
def test_bad_cpu_input_exits_2_naming_the_flag(capsys, args, flag, text):
    rc, out, err = cli(capsys, *args)
    assert rc == 2 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wattprint estimate: error: {flag}: "), err
    assert text in lines[0], err


def test_region_lookup_uses_the_shipped_table(capsys):
    d = cli_json(capsys, "--gpu-model", "A100", "--gpus", "128", "--hours", "350", "--region", "aws:us-west-2")
    assert d["intensity_g_per_kwh"] == 288
    assert d["intensity_source"] == "table" and d["region"] == "aws:us-west-2"
    assert d["intensity_year"] == 2022 and d["intensity_basis"] == "direct"
    assert d["intensity_reference"].startswith("intensity_annual.csv row aws:us-west-2")
    assert d["emissions_kg"] == pytest.approx(5160.96)
    fr = cli_json(capsys, "--gpu-model", "V100", "--gpu-hours", "1000", "--region", "fr")
    assert fr["intensity_g_per_kwh"] == 57 and fr["region"] == "FR"
    assert fr["emissions_kg"] == pytest.approx(1000 * 0.3 * 57 / 1000)


def test_tdp_watts_overrides_the_table_and_allows_unknown_models(capsys):
    d = cli_json(capsys, "--gpu-model", "A100", "--tdp-watts", "300", "--gpu-hours", "1000", "--intensity", "100")
    assert d["tdp_watts"] == 300 and d["tdp_source"] == "given" and d["tdp_reference"] == "--tdp-watts"
    assert d["hardware_key"] == "A100"
    assert d["energy_kwh"] == pytest.approx(300)
    b = cli_json(capsys, "--gpu-model", "NVIDIA B200", "--tdp-watts", "1000", "--gpus", "8", "--hours", "10",
                 "--intensity", "100")
    assert b["hardware_key"] is None and b["hardware_name"] == "NVIDIA B200"
    assert b["emissions_kg"] == pytest.approx(80 * 1.0 * 100 / 1000)
    t = cli_json(capsys, "--tdp-watts", "250", "--gpu-hours", "4", "--intensity", "500")
    assert t["gpu_model"] is None and t["energy_kwh"] == pytest.approx(1.0)


def test_nvml_name_and_pue(capsys):
    d = cli_json(capsys, "--gpu-model", "NVIDIA H100 PCIe", "--gpu-hours", "1000", "--intensity", "100",
                 "--pue", "1.2")
    assert d["hardware_key"] == "H100-PCIE" and d["tdp_watts"] == 350
    assert d["pue"] == 1.2 and d["pue_source"] == "--pue"
    assert d["energy_kwh"] == pytest.approx(1000 * 0.35 * 1.2)
    assert d["emissions_kg"] == pytest.approx(42.0)


def test_json_carries_equivalents_and_embodied_apart(capsys):
    d = cli_json(capsys, "--gpu-model", "A100", "--gpus", "128", "--hours", "350", "--intensity", "288")
    eq = d["equivalents"]
    assert eq["miles_driven"] == pytest.approx(d["emissions_kg"] / eq["kg_per_mile"])
    assert eq["homes_energy_years"] == pytest.approx(d["emissions_kg"] / eq["kg_per_home_year"])
    assert eq["url"].startswith("https://www.epa.gov/") and eq["edition"]
    assert d["embodied_kg"] == pytest.approx(44800 * 150 / (6 * 8760 * 0.85))
    assert "2211.02001" in d["embodied_reference"]
    assert d["emissions_kg"] == pytest.approx(17920 * 0.288)       # embodied is not added


def test_text_output_is_a_model_card_block(capsys):
    rc, out, err = cli(capsys, "--gpu-model", "A100", "--gpus", "128", "--hours", "350", "--region", "aws:us-west-2")
    assert rc == 0 and err == ""
    assert "estimated (TDP)" in out
    assert "Hardware Type: NVIDIA A100 SXM4 (A100), 400 W TDP" in out
    assert "Hours used: 128 GPUs x 350 h = 44,800 GPU-hours" in out
    assert "Compute Region: aws:us-west-2, 288 gCO2eq/kWh" in out
    assert "Energy: 17,920 kWh" in out
    assert "Carbon Emitted: 5,161 kg of CO2eq" in out
    assert "miles driven by an average gasoline-powered car" in out and "homes' energy use for one year" in out


# ------------------------------------------------------------------------------------------------ bad input

BASE = ["--gpu-model", "A100", "--gpus", "8", "--hours", "10", "--intensity", "100"]


def _without(*flags: str) -> list[str]:
    out, skip = [], False
    for a in BASE:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
            continue
        out.append(a)
    return out


@pytest.mark.parametrize("args,flag", [
    (["--gpu-model", "B200", "--gpus", "8", "--hours", "1", "--intensity", "100"], "--gpu-model"),
    (["--gpu-model=", "--gpus", "8", "--hours", "1", "--intensity", "100"], "--gpu-model"),
    (_without("--gpu-model"), "--gpu-model"),
    (BASE + ["--gpu-hours", "80"], "--gpu-hours"),
    (_without("--gpus", "--hours"), "--gpu-hours"),
    (_without("--hours"), "--gpus"),
    (_without("--gpus"), "--hours"),
    (BASE + ["--region", "FR"], "--region"),
    (_without("--intensity"), "--intensity"),
    (_without("--intensity") + ["--region", "XX"], "--region"),
    (_without("--intensity") + ["--region="], "--region"),
    # NaN / infinity (argparse's float() would accept them)
    (_without("--gpus") + ["--gpus=nan"], "--gpus"),
    (_without("--hours") + ["--hours=inf"], "--hours"),
    (_without("--intensity") + ["--intensity=NaN"], "--intensity"),
    (BASE + ["--tdp-watts=-inf"], "--tdp-watts"),
    (BASE + ["--pue=nan"], "--pue"),
    (_without("--gpus", "--hours") + ["--gpu-hours=inf"], "--gpu-hours"),
    # not numbers
    (_without("--gpus") + ["--gpus=abc"], "--gpus"),
    (_without("--gpus") + ["--gpus=2.5"], "--gpus"),
    (BASE + ["--pue=high"], "--pue"),
    # zero and negative
    (_without("--gpus") + ["--gpus=0"], "--gpus"),
    (_without("--gpus") + ["--gpus=-4"], "--gpus"),
    (_without("--hours") + ["--hours=0"], "--hours"),
    (_without("--hours") + ["--hours=-5"], "--hours"),
    (_without("--gpus", "--hours") + ["--gpu-hours=-10"], "--gpu-hours"),
    (_without("--gpus", "--hours") + ["--gpu-hours=0"], "--gpu-hours"),
    (BASE + ["--tdp-watts=0"], "--tdp-watts"),
    (BASE + ["--tdp-watts=-300"], "--tdp-watts"),
    (_without("--intensity") + ["--intensity=-1"], "--intensity"),
    # absurd
    (BASE + ["--pue=0.9"], "--pue"),
    (BASE + ["--pue=3.5"], "--pue"),
    (_without("--intensity") + ["--intensity=2500"], "--intensity"),
    (BASE + ["--tdp-watts=2500"], "--tdp-watts"),
    (_without("--gpus") + ["--gpus=1000001"], "--gpus"),
    (_without("--hours") + ["--hours=100001"], "--hours"),
    (_without("--gpus", "--hours") + ["--gpu-hours=1e11"], "--gpu-hours"),
    (_without("--gpus", "--hours") + ["--gpus=1000000", "--hours=100000"], "--hours"),
])
def test_bad_input_exits_2_with_one_line_naming_the_flag(capsys, args, flag):
    rc, out, err = cli(capsys, *args)
    assert rc == 2, (args, out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"wattprint estimate: error: {flag}: "), err


def test_unknown_model_hint_lists_known_keys(capsys):
    rc, _, err = cli(capsys, "--gpu-model", "B200", "--gpu-hours", "1", "--intensity", "1")
    assert rc == 2
    assert "A100" in err and "H100-PCIE" in err and "MI300X" in err and "--tdp-watts" in err


def test_unknown_region_hint_shows_valid_ids(capsys):
    rc, _, err = cli(capsys, "--gpu-model", "A100", "--gpu-hours", "1", "--region", "aws:us-west-9")
    assert rc == 2
    assert "aws:us-west-2" in err and "FR" in err


def test_zero_intensity_is_allowed(capsys):
    d = cli_json(capsys, "--gpu-model", "L4", "--gpu-hours", "10", "--intensity", "0")
    assert d["emissions_kg"] == 0 and d["energy_kwh"] == pytest.approx(0.72)


def test_help_describes_every_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["estimate", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--gpu-model", "--tdp-watts", "--gpus", "--hours", "--gpu-hours", "--cpu-hours",
                 "--cpu-watts-per-core", "--cpu-watts-per-socket", "--cores-per-socket", "--cpu-model", "--intensity",
                 "--region", "--pue", "--format"):
        assert flag in out
    assert "MI300X" in out and "never a measurement" in out


# ------------------------------------------------------------------------------------------------ compute() API

def test_compute_api_matches_the_cli():
    r = compute(gpu_model="A100", gpus=128, hours=350, intensity=288)
    assert isinstance(r, EstimateResult)
    assert r.emissions_kg == pytest.approx(5160.96) and r.gpu_hours == 44800 and r.pue_source == "default"
    assert compute(gpu_model="a100", gpu_hours=44800.0, region="aws:us-west-2").emissions_kg == pytest.approx(5160.96)
    both = compute(gpu_model="A100", gpu_hours=10, intensity=100, region="FR")
    assert both.intensity_g_per_kwh == 100 and both.region == "FR" and both.intensity_source == "given"


def test_compute_errors_name_keys_after_the_prefix():
    with pytest.raises(InputError) as err:
        compute(gpu_model="A100", gpus=2, hours=-1, intensity=1, where_prefix="p.yaml:4 (phases[0])")
    assert err.value.where == "p.yaml:4 (phases[0]) hours"
    with pytest.raises(InputError) as err:
        compute(gpu_model="A100", gpu_hours=1, intensity=1, pue=True)
    assert err.value.where == "--pue"
    with pytest.raises(InputError) as err:
        compute(gpu_model="A100", gpus=0, hours=1, intensity=1, wheres={"gpus": "x.yaml:9"}, where_prefix="x")
    assert err.value.where == "x.yaml:9"
    assert compute(gpu_model="A100", gpus=1, hours=1, intensity=1).gpus == 1


# ------------------------------------------------------------------------------------------------ manual phases

GOOD_PHASES = """\
phases:
  - project: idefics
    phase: experimentation
    name: preliminary experimentation
    cluster: jean-zay
    provider: onprem
    region: FR
    gpu_model: V100
    gpu_hours: 385000
    intensity: 57
    pue: 1.0
    start: 2023-01-01T00:00:00Z
    end: 2023-06-01T02:00:00+02:00
  - project: idefics
    phase: Pretraining
    gpu_model: NVIDIA A100-SXM4-80GB
    gpus: 512
    hours: 672
    region: aws:us-west-2
  - project: other
    phase: finetuning
    tdp_watts: 1000
    gpu_model: B200
    gpu_hours: "100"
    intensity: 300
    pue: 1.2
"""


def test_manual_phases_file(tmp_path):
    path = tmp_path / "phases.yaml"
    path.write_text(GOOD_PHASES, encoding="utf-8")
    phases = load_manual_phases(path)
    assert [(p.project, p.phase) for p in phases] == [("idefics", "experimentation"), ("idefics", "pretraining"),
                                                      ("other", "finetuning")]
    first, second, third = phases
    assert first.origin == f"{path}:2" and second.origin == f"{path}:14" and third.origin == f"{path}:20"
    assert first.name == "preliminary experimentation" and first.cluster == "jean-zay" and first.provider == "onprem"
    assert first.region == "FR"
    assert first.start == datetime(2023, 1, 1, tzinfo=UTC) and first.end == datetime(2023, 6, 1, tzinfo=UTC)
    assert first.estimate.emissions_kg == pytest.approx(385000 * 0.3 * 57 / 1000)
    assert first.estimate.intensity_source == "given" and first.estimate.intensity_reference.startswith(f"{path}:10")
    assert second.estimate.hardware_key == "A100" and second.estimate.intensity_g_per_kwh == 288
    assert second.estimate.emissions_kg == pytest.approx(39636.2, rel=1e-4)
    assert second.start is None and second.cluster is None and second.name == ""
    assert third.estimate.tdp_source == "given" and third.estimate.energy_kwh == pytest.approx(120)
    assert third.estimate.pue_source.startswith(f"{path}:26")


def test_manual_phases_with_cpu_hours(tmp_path):
    path = tmp_path / "phases.yaml"
    path.write_text("phases:\n"
                    "  - project: idefics\n"
                    "    phase: experimentation\n"
                    "    cpu_model: Intel Xeon Gold 6248\n"
                    "    cpu_hours: 460000\n"
                    "    cpu_watts_per_socket: 150\n"
                    "    cores_per_socket: 20\n"
                    "    gpu_model: V100\n"
                    "    gpu_hours: 385000\n"
                    "    intensity: 57\n"
                    "  - {project: x, phase: inference, cpu_hours: 10, cpu_watts_per_core: 5, intensity: 100}\n",
                    encoding="utf-8")
    first, second = load_manual_phases(path)
    assert first.estimate.cpu_energy_kwh == pytest.approx(3450) and first.estimate.gpu_energy_kwh == pytest.approx(
        115500)
    assert first.estimate.cpu_power_reference == f"{path}:6 (phases[0].cpu_watts_per_socket) / {path}:7 " \
        "(phases[0].cores_per_socket)"
    assert first.estimate.cpu_model == "Intel Xeon Gold 6248"
    assert second.estimate.gpu_hours == 0 and second.estimate.emissions_kg == pytest.approx(10 * 5 / 1000 * 0.1)


def test_empty_manual_phases_file():
    assert parse_manual_phases("", "p.yaml") == []
    assert parse_manual_phases("phases:\n", "p.yaml") == []
    assert len(parse_manual_phases("- {project: a, phase: inference, gpu_model: T4, gpu_hours: 1, intensity: 1}\n",
                                   "p.yaml")) == 1


@pytest.mark.parametrize("text,line,problem", [
    ("phases:\n  - project: x\n    phase: [unclosed\n", 4, "invalid YAML"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: A100\n    gpu_hour: 10\n    intensity: 1\n",
     5, "unknown key 'gpu_hour' (did you mean 'gpu_hours'?)"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: A100\n    gpu_hours: -10\n    intensity: 1\n",
     5, "out of range"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_hours: 10\n    intensity: 1\n", 2, "no GPU given"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: B200\n    gpu_hours: 10\n    intensity: 1\n",
     4, "unknown GPU model 'B200'"),
    ("phases:\n  - project: x\n    phase: training\n    gpu_model: A100\n    gpu_hours: 10\n    intensity: 1\n",
     3, "not a known phase"),
    ("phases:\n  - phase: inference\n    gpu_model: A100\n    gpu_hours: 10\n    intensity: 1\n", 2, "missing project"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: A100\n    gpu_hours: .nan\n    intensity: 1\n",
     5, "not a finite number"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: A100\n    gpus: 8\n    intensity: 1\n",
     5, "gpus needs hours"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: A100\n    gpu_hours: 1\n    region: XX\n",
     6, "unknown zone 'XX'"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: A100\n    gpu_hours: 1\n    intensity: 1\n"
     "    start: 2023-01-01T00:00:00\n    end: 2023-02-01T00:00:00Z\n", 7, "no timezone"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: A100\n    gpu_hours: 1\n    intensity: 1\n"
     "    start: 2023-01-01T00:00:00Z\n", 7, "end is missing"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: A100\n    gpu_hours: 1\n    intensity: 1\n"
     "    start: 2023-02-01T00:00:00Z\n    end: 2023-01-01T00:00:00Z\n", 8, "not after start"),
    ("phases:\n  - project: x\n    project: y\n", 3, "appears twice"),
    ("phases:\n  - just a string\n", 2, "must be a mapping"),
    ("jobs:\n  - project: x\n", 1, "unknown top-level key 'jobs'"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: [A100]\n", 4, "plain value"),
    ("phases:\n  - project: x\n    phase: inference\n    gpu_model: A100\n    gpu_hours: true\n    intensity: 1\n",
     5, "expected a number"),
    ("phases:\n  - project: x\n    phase: inference\n    cpu_hours: 10\n    intensity: 1\n", 2, "no CPU power given"),
    ("phases:\n  - project: x\n    phase: inference\n    cpu_hours: 10\n    cpu_watts_per_socket: 150\n"
     "    intensity: 1\n", 5, "cpu_watts_per_socket needs cores_per_socket"),
    ("phases:\n  - project: x\n    phase: inference\n    cpu_watts_per_core: 5\n    intensity: 1\n", 4,
     "cpu_watts_per_core needs cpu_hours"),
    ("phases:\n  - project: x\n    phase: inference\n    cpu_hours: 10\n    cpu_watt_per_core: 5\n", 5,
     "did you mean 'cpu_watts_per_core'"),
])
def test_bad_manual_phases_name_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "phases.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_manual_phases(path)
    assert err.value.where.startswith(f"{path}:{line}"), err.value.message()
    assert problem in err.value.message()


def test_missing_manual_phases_file(tmp_path):
    with pytest.raises(InputError) as err:
        load_manual_phases(tmp_path / "nope.yaml")
    assert "nope.yaml" in err.value.where


# ------------------------------------------------------------------------------------------------ equivalences

def test_equivalences_of_the_idefics_total_are_of_the_cards_magnitude():
    # IDEFICS card: 65.57 t CO2eq ~ 168,092 miles driven by an average gasoline-powered car ~ 8.3 homes for a year
    e = equivalences.equivalents(65_570.0)
    assert e["miles_driven"] == pytest.approx(168_092, rel=0.10)
    assert e["homes_energy_years"] == pytest.approx(8.3, rel=0.10)
    assert e["kg_per_mile"] == equivalences.load().kg_per_mile
    assert e["url"].startswith("https://www.epa.gov/energy/greenhouse-gases-equivalencies-calculator")
    assert "EPA" in e["edition"] and e["date"]
    assert "miles driven by an average gasoline-powered car" in equivalences.sentence(65_570.0)


def test_shipped_factors_are_plausible_and_traceable():
    eq = equivalences.load()
    assert 0.3 < eq.kg_per_mile < 0.5             # EPA editions since 2009 quote 3.9 to 4.1 x 10-4 t/mile
    assert 6000 < eq.kg_per_home_year < 12000     # and 7.9 to 11.2 t per home per year
    assert "not checked" in eq.note.lower() or "confirm" in eq.note.lower()


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_equivalents_refuse_bad_emissions(value):
    with pytest.raises(ValueError):
        equivalences.equivalents(value)


EQ_HEADER = "factor,value,unit,epa_calculation,edition,date,url,note\n"


@pytest.mark.parametrize("text,problem", [
    (EQ_HEADER + "kg_per_mile,0.4,u,c,E,D,U,\n", "missing factor(s) kg_per_home_year"),
    (EQ_HEADER + "kg_per_mile,0.4,u,c,E,D,U,\nkg_per_home_year,8000,u,c,E2,D,U,\n", "differs"),
    (EQ_HEADER + "kg_per_mile,-0.4,u,c,E,D,U,\n", "positive"),
    (EQ_HEADER + "kg_per_mile,nan,u,c,E,D,U,\n", "positive"),
    (EQ_HEADER + "kg_per_km,0.4,u,c,E,D,U,\n", "unknown factor"),
    (EQ_HEADER + "kg_per_mile,0.4,u,c,,D,U,\n", "must be filled"),
    ("factor,value\n", "header"),
])
def test_broken_equivalences_table(text, problem):
    with pytest.raises(InputError) as err:
        equivalences.parse(text, "epa_equivalences.csv")
    assert problem in err.value.message()
    assert err.value.where.startswith("epa_equivalences.csv")
