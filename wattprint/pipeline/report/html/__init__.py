"""The report as one self-contained HTML page: inline CSS, charts as inline SVG drawn here, no script, no URL.

`render(report)` takes the typed report (types.Report; a schema_version 1 dict as the JSON report holds is read
with Report.from_dict) and returns a complete HTML5 page that can be mailed, archived or opened offline: nothing
is fetched when it is viewed. Every string that comes from the report is escaped (project, cluster and user names
come from users).

    common.py    the one number formatter `fmt` (its rules are in that module's docstring), escaping, vocabulary
    svg.py       SVG primitives: ticks, text, legends, swatches, lines, the figure around a chart
    charts.py    the three charts (emissions by phase, daily energy and emissions, power against grid intensity)
    sections.py  header, data-quality banner, headline, phases, equivalences, layers, data quality, what-if
    fleet.py     the all-projects report's sections: projects, clusters, top jobs, reconciliation
    page.py      `render`: the sections in order, with page.css inlined
"""

from __future__ import annotations

from .charts import CHART_IDS
from .common import fmt
from .page import render

__all__ = ["render", "fmt", "CHART_IDS"]
