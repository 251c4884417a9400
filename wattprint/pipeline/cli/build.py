"""`wattprint build`: its flags (the verb is wattprint/pipeline/verbs.py:build)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..verb_requests import BuildRequest
from . import flags

if TYPE_CHECKING:
    from ..settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("build",
                       help="rebuild the (job, GPU, hour) results from what is stored (after a config change)")
    flags.common(p)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..verbs import build

    return build(BuildRequest(db=args.db, quiet=args.quiet), settings)
