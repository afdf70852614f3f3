"""What a report holds: per-event and per-route groups of field distributions, the slowest runs, and the
Report itself (the one result every output reads: budgets, text, JSON, HTML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from autoinstrument.report.decode import DEFAULT_EVENT_KEY
from autoinstrument.report.stats import FieldStats


class Group:
    """Counts and field distributions of one event name or one route."""

    __slots__ = ("count", "fields", "status")

    def __init__(self) -> None:
        self.count = 0
        self.fields: Dict[str, FieldStats] = {}
        self.status: Dict[str, int] = {}


@dataclass
class Run:
    """One slow run, for the waterfall: its total, the stage fields measured inside it, and how to find it."""

    event: str
    total_field: str
    total_ms: int
    correlation_id: Optional[str]
    timestamp: Optional[str]
    stages: Dict[str, int]
    context: Dict[str, str]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "event": self.event,
            "total_field": self.total_field,
            "total_ms": self.total_ms,
            "correlation_id": self.correlation_id,
            "timestamp": self.timestamp,
            "stages": dict(self.stages),
            "context": dict(self.context),
        }


@dataclass
class Report:
    """What the Aggregator learned. `order` ranks fields: totals, then stages (manifest order), then the rest."""

    lines: int = 0
    events_used: int = 0
    skipped: Dict[str, int] = field(default_factory=dict)
    events: Dict[str, Group] = field(default_factory=dict)
    routes: Dict[Tuple[str, str, str], Group] = field(default_factory=dict)
    slowest: Dict[str, List[Run]] = field(default_factory=dict)
    dropped: Dict[str, int] = field(default_factory=dict)
    top: int = 10
    order: List[str] = field(default_factory=list)
    totals: List[str] = field(default_factory=list)
    duplicates: Dict[str, Dict[int, int]] = field(default_factory=dict)
    event_key: str = DEFAULT_EVENT_KEY
    #: stage field → the stage fields called inside it at the same time (the manifest's `parallel:`)
    parallel: Dict[str, List[str]] = field(default_factory=dict)
    _pooled: Dict[str, FieldStats] = field(default_factory=dict, repr=False, compare=False)

    def order_key(self, name: str) -> Tuple[int, str]:
        """Sort key: a field's place in `order`; unknown fields after, by name."""
        try:
            return (self.order.index(name), name)
        except ValueError:
            return (len(self.order), name)

    def sort_fields(self, names: Iterable[str]) -> List[str]:
        return sorted(names, key=self.order_key)

    def fields(self) -> List[str]:
        """Every `_ms` field seen, totals first, then stages in run (manifest) order."""
        return self.sort_fields({name for group in self.events.values() for name in group.fields})

    def stages(self) -> List[str]:
        """The fields that are not a total, in run order (what a waterfall draws)."""
        return [name for name in self.fields() if name not in self.totals]

    def field_stats(self, name: str) -> FieldStats:
        """One field's samples pooled across every event that carries it, each run's sample once (worked out
        once per field: budgets, the text, JSON and HTML all ask; the result is shared, not to be modified)."""
        pooled = self._pooled.get(name)
        if pooled is None:
            pooled = self._pooled[name] = self._pool(name)
        return pooled

    def _pool(self, name: str) -> FieldStats:
        carried = [group.fields[name] for group in self.events.values() if name in group.fields]
        duplicates = self.duplicates.get(name)
        if len(carried) == 1 and not duplicates:
            return carried[0]  # one event carries it: its own table is the pool (no copy held)
        pooled = FieldStats()
        for stats in carried:
            pooled.merge(stats)
        if duplicates:
            pooled.subtract(duplicates)
        return pooled

    def duplicate_count(self, name: str) -> int:
        return sum(self.duplicates.get(name, {}).values())

    def distinct_values(self) -> int:
        """How many (group, field, ms value) entries are held: what the memory use grows with."""
        groups = list(self.events.values()) + list(self.routes.values())
        return sum(len(stats.counts) for group in groups for stats in group.fields.values())

    def events_with(self, name: str) -> List[str]:
        return sorted(event for event, group in self.events.items() if name in group.fields)


__all__ = ["Group", "Report", "Run"]
