"""Write the example reports in docs/examples/ from the known two-cluster fleet of tests/reportkit.py.

They are real outputs of `wattprint report` (the same code path, on data built by the real model), with the
generation time pinned so that tests/test_report_examples.py can check they are current:

    .venv/bin/python scripts/example_reports.py [--out docs/examples]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests import reportkit  # noqa: E402
from wattprint.pipeline import db  # noqa: E402
from wattprint.pipeline.report.compute import build_report  # noqa: E402
from wattprint.pipeline.report.run import render  # noqa: E402
from wattprint.pipeline.report.scope import ReportOptions  # noqa: E402
from wattprint.pipeline.report.window import month  # noqa: E402
from wattprint.pipeline.settings import load_settings  # noqa: E402

GENERATED_AT = datetime(2024, 4, 1, tzinfo=UTC)
EXAMPLES = {  # file stem -> (project, formats)
    "idefics-2024-03": ("idefics", ("md", "html", "json")),
    "all-projects-2024-03": (None, ("md", "html")),
}


def outputs() -> dict[str, str]:
    """File name -> text, for every example."""
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db_path, cfg = reportkit.build(Path(tmp))
        settings = load_settings(str(cfg))
        con = db.connect(db_path, read_only=True)
        con.execute("SET threads = 1")      # as `wattprint report` runs: its sums in one order, the same every time
        try:
            for stem, (project, formats) in EXAMPLES.items():
                report = build_report(con, settings, ReportOptions(window=month("2024-03"), project=project,
                                                                   generated_at=GENERATED_AT))
                for fmt in formats:
                    out[f"{stem}.{fmt}"] = render(report, fmt)
        finally:
            con.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "docs" / "examples"), help="folder (default: %(default)s)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in outputs().items():
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
