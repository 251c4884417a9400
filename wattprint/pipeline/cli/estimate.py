"""`wattprint estimate`: its flags and help (the verb is wattprint/pipeline/estimate.py)."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import InputError

DESCRIPTION = """\
Estimate the energy and carbon of a run with no telemetry, from hardware facts alone (as ML model cards do):

  GPU energy (kWh)  = GPU-hours x TDP (W) / 1000 x PUE
  CPU energy (kWh)  = CPU core-hours x watts per core / 1000 x PUE
                      (watts per core = --cpu-watts-per-core, or --cpu-watts-per-socket / --cores-per-socket)
  emissions (kg)    = (GPU + CPU energy) x grid intensity (gCO2eq/kWh) / 1000

Give GPU flags, CPU flags or both. Every GPU is assumed to draw its rated maximum (TDP) the whole time and every
core its share of the socket's TDP: an estimate, never a measurement.
Known GPU models (--gpu-model takes these keys or NVML names such as "NVIDIA A100-SXM4-80GB"):
  {keys}
Bounds: TDP <= 2000 W, GPUs <= 1,000,000, hours <= 100,000, CPU watts <= 100 per core and <= 1000 per socket,
intensity 0-2000 g/kWh, PUE 1.0-3.0.

examples:
  wattprint estimate --gpu-model A100 --gpus 128 --hours 350 --region aws:us-west-2     # IDEFICS-80B
  wattprint estimate --cpu-hours 460000 --cpu-watts-per-socket 150 --cores-per-socket 20 --intensity 57
"""


class _Help(argparse.RawDescriptionHelpFormatter):
    """Names the known GPU models in the description when the help is shown: the shipped table is read then, not
    each time the command line is parsed."""

    def add_text(self, text: str | None) -> None:
        super().add_text(DESCRIPTION.format(keys=_known_models()) if text == DESCRIPTION else text)


def _known_models() -> str:
    from .. import hardware

    try:
        return ", ".join(hardware.keys())
    except InputError as exc:   # a broken shipped table must not break the help
        return f"(hardware table unreadable: {exc.message()})"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("estimate", help="estimate energy and carbon from hardware facts (no telemetry needed)",
                       description=DESCRIPTION, formatter_class=_Help)
    g = p.add_argument_group("GPU hardware")
    g.add_argument("--gpu-model", metavar="NAME",
                   help="GPU model: a table key (A100, H100-PCIE, ...) or an NVML name; gives the TDP")
    g.add_argument("--tdp-watts", metavar="W",
                   help="board power per GPU in watts; overrides the table, required for models not in it")
    u = p.add_argument_group("GPU usage (either --gpus with --hours, or --gpu-hours)")
    u.add_argument("--gpus", metavar="N", help="number of GPUs")
    u.add_argument("--hours", metavar="H", help="wall-clock hours they ran")
    u.add_argument("--gpu-hours", metavar="GH", help="total GPU-hours")
    cp = p.add_argument_group("CPU (--cpu-hours with either --cpu-watts-per-core, or --cpu-watts-per-socket and "
                              "--cores-per-socket)")
    cp.add_argument("--cpu-hours", metavar="H", help="CPU time in core-hours (what HPC centres account as CPU hours)")
    cp.add_argument("--cpu-watts-per-core", metavar="W", help="power per core in watts, e.g. 7.5")
    cp.add_argument("--cpu-watts-per-socket", metavar="W", help="power per socket (its TDP) in watts, e.g. 150")
    cp.add_argument("--cores-per-socket", metavar="N", help="physical cores per socket, e.g. 20")
    cp.add_argument("--cpu-model", metavar="NAME", help="CPU model, a label for the output (sets no wattage)")
    c = p.add_argument_group("grid (either --intensity or --region)")
    c.add_argument("--intensity", metavar="G", help="grid carbon intensity in gCO2eq/kWh")
    c.add_argument("--region", metavar="ZONE",
                   help="zone id looked up in the shipped annual table: FR, DE, aws:us-west-2, gcp:europe-west1, ...")
    p.add_argument("--pue", metavar="P", help="data centre PUE, 1.0 to 3.0 (default: 1.0)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def run(args: argparse.Namespace) -> int:
    from ..estimate import compute, render_text

    if args.intensity is not None and args.region is not None:
        raise InputError("--region", "give either --intensity or --region, not both",
                         "--intensity G overrides the table; drop --region (or --intensity)")
    result = compute(gpu_model=args.gpu_model, tdp_watts=args.tdp_watts, gpus=args.gpus, hours=args.hours,
                     gpu_hours=args.gpu_hours, intensity=args.intensity, region=args.region,
                     pue=args.pue, cpu_hours=args.cpu_hours, cpu_model=args.cpu_model,
                     cpu_watts_per_core=args.cpu_watts_per_core, cpu_watts_per_socket=args.cpu_watts_per_socket,
                     cores_per_socket=args.cores_per_socket)
    if args.format == "json":
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_text(result))
    return 0
