"""The report as text: terminal tables, and the budgets' verdict.

Logs are untrusted: every string from a line goes through `printable`, so an ANSI escape in a log cannot
drive the operator's terminal.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from autoinstrument.report.budgets import BudgetCheck, number, verdict
from autoinstrument.report.decode import SKIP_REASONS
from autoinstrument.report.document import field_rows
from autoinstrument.report.records import Report
from autoinstrument.report.stats import SUMMARY_KEYS


def printable(text: Any) -> str:
    """Log text made safe for a terminal: control characters (ANSI escapes included) shown as escapes."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return printable(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int) -> List[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i >= numeric_from else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


_STAT_HEADERS = list(SUMMARY_KEYS)


def _stat_cells(summary: Dict[str, Any]) -> List[str]:
    return [_fmt(summary[k]) for k in SUMMARY_KEYS]


def render_text(report: Report, breaches: Sequence[BudgetCheck] = ()) -> str:
    """A readable plain-text report: totals, skipped lines, per-event and per-route tables, slowest runs,
    budgets (whatever checks are passed: all of them from `evaluate_budgets`, or only the breaches)."""
    out: List[str] = []
    skipped = sum(report.skipped.values())
    out.append(
        f"autoinstrument report: {report.lines:,} lines, {report.events_used:,} events with _ms fields, "
        f"{skipped:,} skipped (percentiles: nearest-rank, ms)"
    )
    if skipped:
        out.append("skipped: " + ", ".join(f"{r} {report.skipped[r]:,}" for r in SKIP_REASONS if r in report.skipped))
    if report.dropped:
        out.append("over the caps: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.dropped.items())))

    out += ["", "Fields (pooled over events, each run's sample once)"]
    rows = [[printable(r["field"])] + _stat_cells(r) + [_fmt(r["joined"])] for r in field_rows(report)]
    out += _table(["field"] + _STAT_HEADERS + ["joined"], rows, 1) if rows else ["(no _ms fields)"]

    out += ["", "Events"]
    rows = []
    for name, group in sorted(report.events.items()):
        for i, fname in enumerate(report.sort_fields(group.fields)):
            label = f"{printable(name)} ({group.count:,})" if i == 0 else ""
            rows.append([label, printable(fname)] + _stat_cells(group.fields[fname].summary()))
    out += _table(["event", "field"] + _STAT_HEADERS, rows, 2) if rows else ["(no events with _ms fields)"]

    if report.routes:
        out += ["", "Routes"]
        rows = []
        for (family, method, route), group in sorted(report.routes.items()):
            status = " ".join(f"{printable(c)}:{n:,}" for c, n in sorted(group.status.items())) or "-"
            for i, fname in enumerate(report.sort_fields(group.fields)):
                head = [printable(f"{method} {route}".strip()), printable(family), status] if i == 0 else ["", "", ""]
                rows.append(head + [printable(fname)] + _stat_cells(group.fields[fname].summary()))
        out += _table(["route", "family", "status", "field"] + _STAT_HEADERS, rows, 4)

    for total_field, runs in report.slowest.items():
        out += ["", f"Slowest {len(runs)} by {printable(total_field)}"]
        for rank, run in enumerate(runs, 1):
            where = " ".join(f"{k}={printable(v)}" for k, v in run.context.items())
            cid = printable(run.correlation_id or "-")
            head = f"{rank:>3}. {run.total_ms:>10,} ms  {printable(run.event)}  correlation_id={cid}"
            out.append(f"{head}  {printable(run.timestamp or '')}  {where}".rstrip())
            if run.stages:
                stages = run.stages.items()
                out.append("       " + "  ".join(f"{printable(k)}={v:,}" for k, v in stages))

    if breaches:
        out += ["", "Budgets (breach: observed > limit)"]
        rows = [
            [
                c.field,
                c.statistic,
                c.status,
                _fmt(number(c.limit)),
                _fmt(c.observed),
                _fmt(c.count),
                _fmt(c.over_limit),
            ]
            for c in breaches
        ]
        out += _table(["field", "stat", "status", "limit", "observed", "samples", "over limit"], rows, 3)
        out.append(verdict(breaches))
    return "\n".join(out) + "\n"


__all__ = ["printable", "render_text"]
