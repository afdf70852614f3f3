"""The report as a JSON document: a stable, versioned schema (`schema_version`), and the per-field summary
rows the text and HTML pages show too."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from autoinstrument.report.budgets import BudgetCheck
from autoinstrument.report.decode import SKIP_REASONS
from autoinstrument.report.records import Group, Report

SCHEMA_VERSION = 1


def to_json(report: Report, breaches: Sequence[BudgetCheck] = ()) -> Dict[str, Any]:
    """A stable, versioned document (`schema_version`); `budgets` holds the checks passed in."""
    return {
        "schema_version": SCHEMA_VERSION,
        "percentile_method": "nearest-rank",
        "unit": "ms",
        "lines": report.lines,
        "events_used": report.events_used,
        "skipped": {reason: report.skipped.get(reason, 0) for reason in SKIP_REASONS},
        "dropped": dict(report.dropped),
        "distinct_values": report.distinct_values(),
        "event_key": report.event_key,
        "fields": field_rows(report),
        "events": [
            {"event": name, "count": group.count, "fields": _fields_json(report, group)}
            for name, group in sorted(report.events.items())
        ],
        "routes": [
            {
                "family": family,
                "method": method,
                "route": route,
                "count": group.count,
                "status_codes": dict(sorted(group.status.items())),
                "fields": _fields_json(report, group),
            }
            for (family, method, route), group in sorted(report.routes.items())
        ],
        "slowest": [
            {"total_field": total_field, "runs": [run.to_dict() for run in runs]}
            for total_field, runs in report.slowest.items()
        ],
        "budgets": [check.to_dict() for check in breaches],
        "breached": any(check.breached for check in breaches),
    }


def field_rows(report: Report) -> List[Dict[str, Any]]:
    """One summary per field, pooled over its events with each run's sample counted once (what budgets see);
    `joined` is how many samples were dropped as a second copy of the same run's sample."""
    rows = []
    for name in report.fields():
        stats = report.field_stats(name)
        rows.append(
            dict(field=name, **stats.summary(), joined=report.duplicate_count(name), events=report.events_with(name))
        )
    return rows


def _fields_json(report: Report, group: Group) -> List[Dict[str, Any]]:
    return [dict(field=name, **group.fields[name].summary()) for name in report.sort_fields(group.fields)]


__all__ = ["SCHEMA_VERSION", "field_rows", "to_json"]
