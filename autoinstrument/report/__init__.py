"""`autoinstrument report`: latency statistics, budget checks and the slowest runs, from JSON log lines.

Use it from the command line (`autoinstrument report LOG --manifest telemetry.yaml --html out.html`) or as a
library:

    from autoinstrument.report import build_report, render_text
    outcome = build_report(["app.log"], manifest="telemetry.yaml")
    print(render_text(outcome.report, outcome.checks)); raise SystemExit(outcome.exit_code)

The package depends on `autoinstrument.manifest` only (plus the standard library and, when installed,
orjson). Each job lives in its own module, imported in one direction (no circle):

    errors     ReportError and its two kinds (an input, the budgets)
    stats      exact nearest-rank statistics from counts of whole ms
    read       files, folders, globs, gzip, stdin → batches of lines
    decode     one line → a JSON object or the reason it is skipped; bounded text from a line
    records    Report, Run, Group: what the report holds
    aggregate  lines → per-event / per-route / per-field distributions, slowest runs, the run join
    budgets    budgets (the manifest's rule) against the pooled samples
    settings   what a manifest tells the report (budgets, totals, stage order, parallel stages, event key)
    build      one run: inputs + settings → Outcome (Report, budget checks, exit code)
    document   the JSON document (versioned schema)
    text       the text tables
    timeline   where each stage of a slow run is drawn (parallel stages overlap)
    html       the self-contained HTML page
    cli        the command line

Exit status: 0 within budget, 1 on a budget breach, 2 on an input or usage error, 3 when no events were read.
"""

from __future__ import annotations

from autoinstrument.report.budgets import BudgetCheck
from autoinstrument.report.build import Outcome, build_report
from autoinstrument.report.cli import main
from autoinstrument.report.document import to_json
from autoinstrument.report.errors import ReportError
from autoinstrument.report.html import render_html
from autoinstrument.report.records import Report
from autoinstrument.report.text import render_text

__all__ = [
    "BudgetCheck",
    "Outcome",
    "Report",
    "ReportError",
    "build_report",
    "main",
    "render_html",
    "render_text",
    "to_json",
]
