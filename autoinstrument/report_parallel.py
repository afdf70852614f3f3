"""Use both cores on a big plain log: split it at a line boundary, fold each part in its own process, merge.

Why: parsing JSON is the report's floor (one orjson call per line); a second process halves the wall time on
a two-core machine. Only a regular, uncompressed file of at least PARALLEL_MIN_BYTES is split (a gzip stream
or stdin can only be read in order). The parent folds the first part itself while one child per other part
folds the rest; a child sends back its Report (pickled), and `merge` adds them up: counts, distributions,
statuses, skipped lines, the slowest runs (ties keep the earlier part's run). The once-per-run join works
inside each part: a run whose events straddle a split point (a few lines at most) may count a shared stage
sample twice.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

from autoinstrument.report_aggregate import Aggregator, Group, Report
from autoinstrument.report_read import InputError

PARALLEL_MIN_BYTES = 32 << 20


def jobs_for(path: str, jobs: Optional[int]) -> int:
    """How many processes to give `path`: 1 unless it is a big plain file (and `jobs` allows more)."""
    if jobs == 1 or path == "-":
        return 1
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            if handle.read(2) == b"\x1f\x8b":
                return 1
    except OSError:
        return 1
    if size < PARALLEL_MIN_BYTES:
        return 1
    return max(1, jobs if jobs is not None else min(2, os.cpu_count() or 1))


def split_points(path: str, parts: int) -> List[Tuple[int, int]]:
    """`parts` byte ranges of the file, each starting at a line start."""
    size = os.path.getsize(path)
    starts = [0]
    with open(path, "rb") as handle:
        for i in range(1, parts):
            handle.seek(max(starts[-1], size * i // parts))
            handle.readline()  # to the end of the line the cut fell in
            starts.append(handle.tell())
    ends = starts[1:] + [size]
    return [(a, b) for a, b in zip(starts, ends) if b > a]


class _Range:
    """A binary stream over [start, end) of a file (what `Aggregator.feed_stream` reads)."""

    def __init__(self, handle: IO[bytes], start: int, end: int) -> None:
        handle.seek(start)
        self.handle = handle
        self.left = end - start

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        data = self.handle.read(self.left if size < 0 else min(size, self.left))
        self.left -= len(data)
        return data


def fold_range(path: str, start: int, end: int, options: Dict[str, Any]) -> Report:
    agg = Aggregator(**options)
    with open(path, "rb") as handle:
        agg.feed_stream(_Range(handle, start, end))  # type: ignore[arg-type]
    return agg.report()


def _child(args: Tuple[str, int, int, Dict[str, Any]]) -> Report:
    return fold_range(*args)


def _merge_group(into: Group, other: Group) -> None:
    into.count += other.count
    for name, stats in other.fields.items():
        own = into.fields.get(name)
        if own is None:
            into.fields[name] = stats
        else:
            own.merge(stats)
    for code, times in other.status.items():
        into.status[code] = into.status.get(code, 0) + times


def merge(reports: Sequence[Report]) -> Report:
    """One Report from the parts' Reports, in file order."""
    out = reports[0]
    for part in reports[1:]:
        out.lines += part.lines
        out.events_used += part.events_used
        for table in ("skipped", "dropped"):
            mine, theirs = getattr(out, table), getattr(part, table)
            for key, times in theirs.items():
                mine[key] = mine.get(key, 0) + times
        for name, group in part.events.items():
            _merge_group(out.events.setdefault(name, Group()), group)
        for key, group in part.routes.items():
            _merge_group(out.routes.setdefault(key, Group()), group)
        for name, counts in part.duplicates.items():
            own = out.duplicates.setdefault(name, {})
            for value, times in counts.items():
                own[value] = own.get(value, 0) + times
        for total_field, runs in part.slowest.items():
            merged = out.slowest.get(total_field, []) + runs
            merged.sort(key=lambda run: -run.total_ms)  # stable: on equal totals the earlier part's run stays
            out.slowest[total_field] = merged[: out.top]
        out.totals += [name for name in part.totals if name not in out.totals]
        out.order += [name for name in part.order if name not in out.order]
    totals = [name for name in out.order if name in out.totals]
    out.order = totals + [name for name in out.order if name not in out.totals]
    out.slowest = dict(sorted(out.slowest.items(), key=lambda item: out.order_key(item[0])))
    return out


def fold_parallel(path: str, parts: int, options: Dict[str, Any]) -> Report:
    """Fold `path` in `parts` processes (this one included) and merge; InputError when a part fails."""
    ranges = split_points(path, parts)
    if len(ranges) == 1:
        return fold_range(path, ranges[0][0], ranges[0][1], options)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(len(ranges) - 1) as pool:
        pending = pool.map_async(_child, [(path, a, b, options) for a, b in ranges[1:]])
        first = fold_range(path, ranges[0][0], ranges[0][1], options)
        try:
            rest = pending.get()
        except (OSError, EOFError) as exc:
            raise InputError(f"error reading {path}: {exc}") from None
    return merge([first, *rest])


__all__ = ["PARALLEL_MIN_BYTES", "fold_parallel", "fold_range", "jobs_for", "merge", "split_points"]
