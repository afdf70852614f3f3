"""Budgets: each limit against the pooled samples of its field.

A budget maps an `_ms` field to a limit in ms; a bare number is a p95 limit, `{p95: 5000, max: 20000}` checks
each named statistic. The rule for what a budget may say is the manifest's own (`manifest.budget_limits`), so
`check`, `install` and `report` agree. A budget is breached when the observed statistic is strictly greater
than the limit; a field with no samples is "no data", not a breach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from autoinstrument.manifest import PERCENTILES as STATISTICS
from autoinstrument.manifest import budget_limits
from autoinstrument.report.errors import BudgetError
from autoinstrument.report.records import Report

DEFAULT_STATISTIC = "p95"
BudgetSpec = Union[int, float, Mapping[str, Union[int, float]]]


@dataclass
class BudgetCheck:
    """One (field, statistic) budget against the observed value."""

    field: str
    statistic: str
    limit: float
    observed: Optional[int]
    count: int
    over_limit: int
    events: List[str]

    @property
    def breached(self) -> bool:
        return self.observed is not None and self.observed > self.limit

    @property
    def status(self) -> str:
        if self.observed is None:
            return "no data"
        return "BREACH" if self.breached else "ok"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "field": self.field,
            "statistic": self.statistic,
            "limit": number(self.limit),
            "observed": self.observed,
            "count": self.count,
            "over_limit": self.over_limit,
            "events": list(self.events),
            "status": self.status,
            "breached": self.breached,
        }


def number(value: float) -> Union[int, float]:
    """5000.0 → 5000 for display; other floats unchanged."""
    return int(value) if float(value).is_integer() else value


def normalize_budgets(budgets: Mapping[str, Any], where: str = "budgets") -> Dict[str, Dict[str, float]]:
    """`{field: 5000}` / `{field: {p95: 5000, max: 20000}}` → `{field: {statistic: limit}}`, through the
    manifest's rule; BudgetError naming `where.field.statistic` for the first mistake."""
    if not isinstance(budgets, Mapping):
        raise BudgetError(f"{where}: expected a mapping of field → milliseconds")
    out: Dict[str, Dict[str, float]] = {}
    for name, spec in budgets.items():
        if not isinstance(name, str) or not name.endswith("_ms"):
            raise BudgetError(f"{where}.{name}: a budget names an `_ms` field")
        limits, problems = budget_limits(dict(spec) if isinstance(spec, Mapping) else spec)
        if not limits and not problems:
            problems = [("", f"no statistic given (one of {', '.join(STATISTICS)})")]
        if problems:
            key, message = problems[0]
            raise BudgetError(f"{where}.{name}{'.' + key if key else ''}: {message}")
        out[name] = {stat: limits[stat] for stat in STATISTICS if stat in limits}
    return out


def evaluate_budgets(report: Report, budgets: Mapping[str, BudgetSpec]) -> List[BudgetCheck]:
    """Every budget against the pooled samples of its field (each run's sample once), breached or not."""
    checks: List[BudgetCheck] = []
    for name, limits in normalize_budgets(budgets).items():
        stats = report.field_stats(name)
        summary = stats.summary()
        for stat, limit in limits.items():
            checks.append(
                BudgetCheck(
                    field=name,
                    statistic=stat,
                    limit=limit,
                    observed=summary[stat],
                    count=stats.n,
                    over_limit=stats.over(limit),
                    events=report.events_with(name),
                )
            )
    return checks


def verdict(checks: Sequence[BudgetCheck]) -> str:
    """The budgets' one-line verdict: breached, met, or not checked at all (no samples of any budgeted field:
    saying "met" then would pass a gate on nothing)."""
    failed = sum(1 for check in checks if check.breached)
    if failed:
        return f"{failed} budget(s) breached"
    if checks and all(check.observed is None for check in checks):
        return "no budget checked: no samples of any budgeted field"
    return "all budgets met"


def check_budgets(report: Report, budgets: Mapping[str, BudgetSpec]) -> List[BudgetCheck]:
    """Only the breached budgets (empty list: the logs are within budget)."""
    return [check for check in evaluate_budgets(report, budgets) if check.breached]


__all__ = [
    "DEFAULT_STATISTIC",
    "STATISTICS",
    "BudgetCheck",
    "check_budgets",
    "evaluate_budgets",
    "normalize_budgets",
    "verdict",
]
