"""`wattprint report`: a request (the flags) -> window and options -> the typed report (types.Report) -> the
chosen format, written atomically."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__, db
from ..config import parse_layers
from ..errors import InputError
from ..settings import Settings
from ..verb_requests import ReportRequest
from .compute import build_report, finite
from .names import clean
from .phases import cpu_name
from .scope import ReportOptions
from .types import Report, as_report
from .window import resolve

_INVISIBLE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # json.dumps escapes C0 itself


# a week: later starts need intensity data that far ahead of the work, and each hour of slack prices the scope again
MAX_TIME_SHIFT_SLACK = 168


def run(args: ReportRequest, settings: Settings) -> int:
    from ..estimate import load_manual_phases
    from ..hardware import DEFAULT_LIFETIME_YEARS, DEFAULT_UTILISATION

    window = resolve(args.month, args.start, args.end)
    rc = settings.config.report
    layers = rc.layers
    if args.layers is not None:
        try:
            layers = parse_layers(args.layers.split(","))
        except ValueError as exc:
            raise InputError("--layers", str(exc), "e.g. --layers gpu,cpu,idle,pue or --layers all") from None
    if args.top_jobs < 1:
        raise InputError("--top-jobs", f"{args.top_jobs} is not a positive number", "e.g. --top-jobs 10")
    if not 0 <= args.time_shift_slack <= MAX_TIME_SHIFT_SLACK:
        raise InputError("--time-shift-slack", f"{args.time_shift_slack} hours is not between 0 and "
                         f"{MAX_TIME_SHIFT_SLACK}", "e.g. --time-shift-slack 24 (0 turns the time-shift what-if off)")
    if args.format == "model-card" and not args.out:
        raise InputError("--out", "--format model-card updates a model card file", "add --out README.md")
    if args.format == "model-card" and not args.project:
        raise InputError("--project", "a model card describes one project", "add --project NAME")
    estimates = tuple(load_manual_phases(args.estimates)) if args.estimates else ()
    options = ReportOptions(
        window=window, project=args.project, phases=args.phases, layers=layers,
        idle_policy=args.idle_policy or rc.idle_policy,
        lifetime_years=rc.lifetime_years or DEFAULT_LIFETIME_YEARS, utilisation=rc.utilisation or DEFAULT_UTILISATION,
        estimates=estimates, top_jobs=args.top_jobs, scope2_basis=args.scope2_basis or rc.scope2_basis,
        time_shift_slack_hours=args.time_shift_slack,
    )
    con = _open(args.db)
    try:
        report = build_report(con, settings, options)
    finally:
        con.close()
    if not finite(report):
        raise RuntimeError("report has a NaN or infinite number")    # a bug: never write it
    if args.format == "model-card":
        return _model_card(args, report)
    text = render(report, args.format)
    if args.out:
        _write(Path(args.out), text)
        if not args.quiet:
            print(f"wrote {args.out} ({args.format}): {report.total.emissions_kg:,.3f} kgCO2eq "
                  f"({'+'.join(report.method.layers_selected)})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    for w in report.data_quality.warnings:
        if not args.quiet:
            # warnings carry host and cluster names: no escape sequence of theirs reaches the terminal
            print(f"wattprint report: data quality: {clean(w)}", file=sys.stderr)
    return 0


def render(report: Report | Mapping[str, Any], fmt: str) -> str:
    """The report in one format: "json", "md", "csv" or "html" (a report dict is read with Report.from_dict)."""
    report = as_report(report)
    if fmt == "json":
        # exact values, but the characters a terminal or an editor would act on as \u escapes (json.loads gives
        # the same string back); outside strings JSON has none of them, so a text replace is exact
        text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False)
        return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"
    if fmt == "md":
        from .markdown import render as md

        return md(report)
    if fmt == "csv":
        from .tables import render as csv

        return csv(report)
    if fmt == "html":
        from .html import render as html

        return html(report)
    raise ValueError(fmt)


def _open(path: str | None) -> Any:
    target = path or db.default_path()
    if target != ":memory:" and not Path(target).is_file():
        raise InputError("--db", f"no database at {target}", "run `wattprint ingest` (or jobs/intensity import) first")
    con = db.connect(target, read_only=True)
    # one thread: DuckDB's parallel sums add doubles in a varying order, and a report must come out
    # identical for identical inputs (the last digits of a CSV would otherwise change from run to run)
    con.execute("SET threads = 1")
    (version,) = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0]
    newest = max(v for v, _, _ in db.migrations())
    if version < newest:
        con.close()
        raise InputError(str(target), f"the database is at schema version {version}, this wattprint needs {newest}",
                         "run `wattprint build` once (it upgrades the schema and rebuilds the results)")
    from ..model import DERIVED

    missing = [t for t in DERIVED if t not in db.tables(con)]
    if missing:
        con.close()
        raise InputError(str(target), f"no results built yet (no {', '.join(missing)})",
                         "run `wattprint build` (any import or ingest builds them too)")
    return con


def _write(path: Path, text: str) -> None:
    """Atomically: a reader never sees half a report, and a failure leaves the old file."""
    if path.is_dir():
        raise InputError("--out", f"{path} is a directory", "give a file name")
    if not path.parent.resolve().is_dir():
        raise InputError("--out", f"directory {path.parent} does not exist", "create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def co2_metadata(report: Report) -> dict[str, Any]:
    """Hugging Face co2_eq_emissions from a project report (emissions in grams).

    Names are `clean`ed: the card is for people and the Hub, and one line per value keeps the YAML plain (the
    JSON report keeps the exact names)."""
    from .modelcard import co2_block

    phases = {p.phase for p in report.phases}
    training = "pre-training" if "pretraining" in phases else "fine-tuning" if "finetuning" in phases else None
    regions = list(dict.fromkeys(c.region or c.cluster for p in report.phases for c in p.clusters
                                 if c.region or c.cluster))
    total = report.total
    cpu = "cpu" in report.method.layers_selected and (total.cpu_energy_kwh or 0) > 0
    measured = "measured (hardware energy counters)" if any(p.label == "measured" for p in report.phases) \
        else "estimated (TDP)"
    # the factors the figure's electricity is priced with: the grid's, or (market-based) the contracts' and the
    # residual mixes' (GHG Protocol Scope 2 Guidance)
    factors = ("the emission factors of contractual instruments (PPAs, certificates, supplier factors) and "
               "residual mixes" if report.market_based else "hourly grid carbon intensity")
    source = (f"wattprint {__version__}: {measured} GPU{' and CPU' if cpu else ''} energy x {factors}; layers "
              f"{'+'.join(report.method.layers_selected)}; window {report.window.start} .. {report.window.end}")
    if report.scope2 is not None:     # the Scope 2 method the figure is (GHG Protocol Scope 2 Guidance)
        source += f"; Scope 2 {report.scope2.basis}-based (GHG Protocol)"
    if total.location_kg is not None:
        source += f", location-based {total.location_kg * 1000.0:,.1f} g"
    hardware = [f"{h.sockets} x {cpu_name(h.model)} CPUs" if h.sockets else f"{cpu_name(h.model)} CPUs"
                for h in total.cpu_hardware or ()] if cpu else []
    hardware += [f"{h.gpus} x {h.model}" for h in total.hardware]
    return co2_block(
        emissions_g=total.emissions_kg * 1000.0, source=clean(source), training_type=training,
        geographical_location=clean(", ".join(regions)) or None, hardware_used=clean(", ".join(hardware)) or None,
        extra={**(annex_xi_fields(report) or {}), **(sci_fields(report) or {})},
    )


def annex_xi_fields(report: Report) -> dict[str, Any] | None:
    """The EU AI Act Annex XI training energy beside the emissions (modelcard.DISCLOSURE_FIELDS), when the report
    has training energy: kWh rounded to 0.001 (a watt-hour), and the method in one line."""
    a = report.annex_xi
    if a is None or a.energy_kwh <= 0:
        return None
    return {"training_energy_kwh": round(a.energy_kwh, 3),
            "training_energy_method": clean(f"EU AI Act Annex XI 1(2)(e): {a.method}")}


# the SCI figures keep 6 significant digits: grams per token are 1e-5 g, which rounding to 0.01 g would zero
SCI_DIGITS = 6


def sci_fields(report: Report) -> dict[str, Any] | None:
    """The training phases' SCI beside the emissions (modelcard.SCI_FIELDS), when a training job's ledger row gives
    units: the figure the Markdown body states too (sci_card.training_sci)."""
    from .sci_card import training_sci

    t = training_sci(report.sci)
    if t is None or report.sci is None:
        return None
    return {"sci_g_per_unit": _significant(t.g_per_unit),
            "sci_g_per_million_units": _significant(t.g_per_million_units), "sci_unit_name": clean(t.unit_name),
            "sci_units": t.units, "sci_functional_unit": clean(t.functional_unit),
            "sci_method": clean(report.sci.method)}


def _significant(x: float) -> float:
    return float(f"{x:.{SCI_DIGITS}g}")


def _model_card(args: ReportRequest, report: Report) -> int:
    from .markdown import render as md
    from .modelcard import update_file

    assert args.out is not None    # run refuses --format model-card without --out
    block = co2_metadata(report)
    result = update_file(args.out, block, body_if_new=md(report))
    if not args.quiet:
        what = "created" if result.created else "replaced co2_eq_emissions in" if result.replaced else \
            "added co2_eq_emissions to"
        print(f"{what} {args.out}: emissions {block['emissions']:,.2f} g CO2eq", file=sys.stderr)
    if result.added_front_matter and not result.created:
        print(f"wattprint report: warning: {args.out} had no YAML front matter; added one at the top, "
              "the rest of the file is unchanged", file=sys.stderr)
    return 0
