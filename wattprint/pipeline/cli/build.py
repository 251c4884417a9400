"""`wattprint build`: its flags (the verb is wattprint/pipeline/verbs.py:build)."""

from __future__ import annotations

import argparse

from ..settings import Settings
from ..verbs import BuildRequest, build
from . import flags


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("build",
                       help="rebuild the (job, GPU, hour) results from what is stored (after a config change)")
    flags.common(p)


def run(args: argparse.Namespace, settings: Settings) -> int:
    return build(BuildRequest(db=args.db, quiet=args.quiet), settings)
