"""wattprint-exporter entry point: flags -> App; no logic here."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..common.logs import setup_logging
from .app import App, StartupError
from .config import parse_config


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(argv)
    setup_logging(cfg.log_level, cfg.log_format)
    app = App(cfg)
    app.handle_signals()
    try:
        app.start()
    except StartupError as exc:
        print(f"wattprint-exporter: error: {exc}", file=sys.stderr)
        return 2
    app.run_until_signalled()
    return 0


if __name__ == "__main__":
    sys.exit(main())
