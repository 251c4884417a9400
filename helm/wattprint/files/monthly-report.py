"""The chart's monthly report job: ingest the previous UTC month from Prometheus, then write its reports.

Run by the CronJob with the image's Python (no shell, no date(1) dialects). Settings come from the
environment the chart sets:
  REPORT_MONTH          YYYY-MM to (re)build instead of the previous month (kubectl create job --from=cronjob/...)
  REPORT_DIR            where the reports go: REPORT_DIR/<YYYY-MM>/wattprint-<YYYY-MM>.<ext>
  REPORT_FORMATS        comma-separated `wattprint report --format` values (md, html, json, csv)
  PROMETHEUS_URL        base URL of the Prometheus-compatible API
  PROMETHEUS_ARGS       extra flags for ingest/sync-kubernetes (token file, CA file, tenant), one per line
  SYNC_KUBERNETES_JOBS  "true": also import the month's pods as jobs (`wattprint jobs sync-kubernetes`)
  CLUSTER               the cluster name, for sync-kubernetes
  FETCH_INTENSITY       "SOURCE ZONE" (plus "--token-file FILE" ...): `wattprint intensity fetch` for the month
  INGEST_ARGS, REPORT_ARGS  extra flags, one per line
WATTPRINT_DB and WATTPRINT_CONFIG name the database (on the volume) and the cluster config.
Exit status: that of the first step that failed (1 upstream/database, 2 bad input), else 0.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

EXTENSIONS = {"md": "md", "html": "html", "json": "json", "csv": "csv"}


def lines(name: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, "").splitlines() if x.strip()]


def month_window(now: dt.datetime, month: str | None) -> tuple[str, str, str]:
    """(YYYY-MM, start, end) of the given month, or of the month before `now` (UTC)."""
    if month:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            raise SystemExit(f"monthly-report: REPORT_MONTH={month!r}: expected YYYY-MM, e.g. 2024-03")
        year, mon = int(month[:4]), int(month[5:])
    else:
        last = now.astimezone(dt.UTC).date().replace(day=1) - dt.timedelta(days=1)
        year, mon = last.year, last.month
    start = dt.datetime(year, mon, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=dt.UTC)
    iso = "%Y-%m-%dT%H:%M:%SZ"
    return f"{year:04d}-{mon:02d}", start.strftime(iso), end.strftime(iso)


def run(cmd: list[str]) -> None:
    print("monthly-report: " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        print(f"monthly-report: {cmd[1]} {cmd[2] if len(cmd) > 2 else ''} failed with exit status {rc}",
              file=sys.stderr, flush=True)
        sys.exit(rc)


def main() -> None:
    month, start, end = month_window(dt.datetime.now(dt.UTC), os.environ.get("REPORT_MONTH") or None)
    window = ["--start", start, "--end", end]
    prometheus = ["--prometheus", os.environ["PROMETHEUS_URL"], *lines("PROMETHEUS_ARGS")]
    print(f"monthly-report: month {month} [{start}, {end})", flush=True)

    run(["wattprint", "ingest", *prometheus, *window, *lines("INGEST_ARGS")])
    if os.environ.get("SYNC_KUBERNETES_JOBS") == "true":
        run(["wattprint", "jobs", "sync-kubernetes", *prometheus, "--cluster", os.environ["CLUSTER"], *window])
    fetch = os.environ.get("FETCH_INTENSITY", "").split()
    if fetch:
        source, zone, *rest = fetch
        run(["wattprint", "intensity", "fetch", "--source", source, "--zone", zone, *window, *rest])

    out = Path(os.environ.get("REPORT_DIR", "/data/reports")) / month
    out.mkdir(parents=True, exist_ok=True)
    for fmt in [f.strip() for f in os.environ.get("REPORT_FORMATS", "html").split(",") if f.strip()]:
        path = out / f"wattprint-{month}.{EXTENSIONS.get(fmt, fmt)}"
        run(["wattprint", "report", "--month", month, "--format", fmt, "--out", str(path), *lines("REPORT_ARGS")])
    print(f"monthly-report: reports for {month} in {out}", flush=True)


if __name__ == "__main__":
    main()
