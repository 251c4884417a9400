"""`wattprint intensity import` and `wattprint intensity fetch`: their flags (the verbs are in
wattprint/pipeline/verbs.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..verb_requests import IntensityFetchRequest, IntensityImportRequest
from . import flags

if TYPE_CHECKING:
    from ..settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inten = sub.add_parser("intensity", help="hourly grid carbon intensity per zone (gCO2eq/kWh, UTC)")
    isub = inten.add_subparsers(dest="action", metavar="ACTION", required=True)
    ii = isub.add_parser("import", help="import intensity from a file (all or nothing)")
    ii.add_argument("path", metavar="PATH", help="the intensity file")
    ii.add_argument("--format", required=True, choices=flags.INTENSITY_FORMATS, help="the file's format")
    ii.add_argument("--zone", metavar="ZONE", help="zone for formats that carry none (required then)")
    ii.add_argument("--basis", choices=("lifecycle", "direct"),
                    help="Electricity Maps CSV column to use (default: config intensity.basis, else lifecycle)")
    flags.common(ii)
    ifetch = isub.add_parser("fetch", formatter_class=argparse.RawDescriptionHelpFormatter,
                             help="fetch intensity from an API",
                             description="Fetch hourly intensity, chunked by each API's window limit.")
    ifetch.add_argument("--source", required=True, choices=flags.FETCH_SOURCES, help="the API to ask")
    ifetch.add_argument("--zone", required=True, metavar="ZONE",
                        help="Electricity Maps zone (FR, US-CAL-CISO), UK: GB or a region id, WattTime region")
    flags.window(ifetch)
    ifetch.add_argument("--token-file", metavar="FILE",
                        help="file holding the Electricity Maps token or the WattTime password (else "
                        "ELECTRICITYMAPS_TOKEN[_FILE] or WATTTIME_PASSWORD[_FILE]; the WattTime user is "
                        "$WATTTIME_USERNAME); uk takes none")
    ifetch.add_argument("--base-url", metavar="URL", help="API base URL (a mirror or proxy)")
    flags.common(ifetch)


def import_request(args: argparse.Namespace) -> IntensityImportRequest:
    return IntensityImportRequest(path=args.path, format=args.format, zone=args.zone, basis=args.basis, db=args.db,
                                  quiet=args.quiet)


def fetch_request(args: argparse.Namespace) -> IntensityFetchRequest:
    return IntensityFetchRequest(source=args.source, zone=args.zone, start=args.start, end=args.end,
                                 token_file=args.token_file, base_url=args.base_url, db=args.db, quiet=args.quiet)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from ..verbs import intensity_import

    return intensity_import(import_request(args), settings)


def run_fetch(args: argparse.Namespace, settings: Settings) -> int:
    from ..verbs import intensity_fetch

    return intensity_fetch(fetch_request(args), settings)
