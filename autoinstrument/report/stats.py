"""Exact latency statistics from counts of whole milliseconds (the report's only arithmetic).

Why counts: a Counter of integer ms per field keeps every percentile EXACT while memory grows with the number
of distinct values (bounded by the longest duration), never with the number of events.

Percentiles use the nearest-rank definition: for n samples sorted ascending x(1) <= ... <= x(n), the p-th
percentile is x(ceil(p / 100 * n)), always a value that was observed (p50 of [1, 2, 3, 4] is 2; p95 of 1..20
is 19; p100 is the max).
"""

from __future__ import annotations

import bisect
import math
import operator
from collections import Counter
from fractions import Fraction
from itertools import accumulate
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

PERCENTILES = (50, 95, 99)
SUMMARY_KEYS = ("count", "p50", "p95", "p99", "max", "mean", "invalid")


class FieldStats:
    """The distribution of one `_ms` field: a Counter {ms: times}, so percentiles stay exact.

    Only `counts` is touched per event (the hot path); n, sum and the statistics are derived on demand.
    """

    __slots__ = ("counts", "invalid")

    def __init__(self, counts: Optional[Dict[int, int]] = None, invalid: int = 0) -> None:
        self.counts: Counter = Counter(counts) if counts is not None else Counter()
        self.invalid = invalid

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def add(self, value: int, times: int = 1) -> None:
        counts = self.counts
        counts[value] = counts.get(value, 0) + times

    def merge(self, other: FieldStats) -> None:
        own = self.counts
        if not own:
            own.update(other.counts)  # into an empty Counter: a dict copy, in C
        else:
            get = own.get
            for value, times in other.counts.items():
                own[value] = get(value, 0) + times
        self.invalid += other.invalid

    def subtract(self, counts: Mapping[int, int]) -> None:
        """Remove samples counted twice (the same run's sample carried by two events)."""
        own = self.counts
        for value, times in counts.items():
            left = own.get(value, 0) - times
            if left > 0:
                own[value] = left
            else:
                own.pop(value, None)

    def percentile(self, p: float) -> Optional[int]:
        """Nearest-rank p-th percentile (see the module docstring); None without samples."""
        return self.summary((p,))[f"p{p:g}"]

    def summary(self, percentiles: Sequence[float] = PERCENTILES) -> Dict[str, Any]:
        """count, invalid, the nearest-rank percentiles, max and mean (one sort of the distinct values; the
        running counts, the rank search and the sum run in C, as a report holds up to ~10^5 distinct values)."""
        counts = self.counts
        n = sum(counts.values())
        out: Dict[str, Any] = {"count": n, "invalid": self.invalid}
        if not n:
            out.update({f"p{p:g}": None for p in percentiles})
            out.update({"max": None, "mean": None})
            return out
        values = sorted(counts)
        running = list(accumulate(map(counts.__getitem__, values)))
        for at, label in sorted((rank(p, n), f"p{p:g}") for p in percentiles):
            index = bisect.bisect_left(running, at)  # the first value whose running count reaches the rank
            if index < len(values):
                out[label] = values[index]
        out["max"] = values[-1]
        out["mean"] = round(sum(map(operator.mul, counts.keys(), counts.values())) / n, 1)
        return out

    def over(self, limit: float) -> int:
        """How many samples are strictly greater than `limit`."""
        return sum(times for value, times in self.counts.items() if value > limit)


def rank(p: float, n: int) -> int:
    """ceil(p / 100 * n), at least 1, in exact arithmetic (a float product can land a hair above an integer)."""
    exact = Fraction(p) if isinstance(p, int) else Fraction(repr(p))
    return max(1, math.ceil(exact * n / 100))


def ms_value(value: Any) -> Optional[int]:
    """Whole non-negative milliseconds (floats rounded half up), or None for anything that is not a duration:
    booleans, negatives, NaN, infinities, strings."""
    kind = type(value)
    if kind is int:
        return value if value >= 0 else None
    if kind is float and value >= 0 and value != math.inf:  # NaN fails `>= 0`
        return int(value + 0.5)
    return None


def histogram(stats: FieldStats, bins: int = 40, hi_at_least: int = 0) -> Tuple[List[Tuple[int, int, int]], bool]:
    """Bins (lo, hi inclusive, count) over [min, max(max, hi_at_least)], and whether they are log-spaced.

    Log spacing when the range spans more than two orders of magnitude, so a long tail does not squash
    the body.
    """
    lo, hi = min(stats.counts), max(max(stats.counts), hi_at_least)
    log = lo > 0 and hi / lo > 100
    if log:
        edges = sorted({int(round(lo * (hi / lo) ** (i / bins))) for i in range(bins + 1)})
        edges[0], edges[-1] = lo, hi + 1
        bounds = [(edges[i], edges[i + 1] - 1) for i in range(len(edges) - 1) if edges[i + 1] > edges[i]]
    else:
        width = max(1, math.ceil((hi - lo + 1) / bins))
        bounds = [(b, min(hi, b + width - 1)) for b in range(lo, hi + 1, width)]
    counts = [0] * len(bounds)
    starts = [b[0] for b in bounds]
    for value, times in stats.counts.items():
        counts[bisect.bisect_right(starts, value) - 1] += times
    return [(a, b, c) for (a, b), c in zip(bounds, counts)], log


__all__ = ["PERCENTILES", "SUMMARY_KEYS", "FieldStats", "histogram", "ms_value", "rank"]
