"""Use both cores on a big plain log: split it at a line boundary, fold each part in its own process, merge.

Why: parsing JSON is the report's floor (one orjson call per line); a second process halves the wall time on
a two-core machine. Only a regular, uncompressed file of at least PARALLEL_MIN_BYTES is split (a gzip stream
or stdin can only be read in order). The parent folds the first part itself while one child per other part
folds the rest; a child sends back its Report (pickled), and `merge` adds them up: counts, distributions,
statuses, skipped lines, the slowest runs (ties keep the earlier part's run). The once-per-run join works
inside each part; for a run whose events straddle a split point, each part after the first also sends back its
head (the first event of each correlation id, with its stage values) and each part before the last its tail
(the join window at its end), and the parent joins the two as one process would have: a stage sample of the
head already counted for that run in the tail is a duplicate. The head covers the first JOIN_HEAD (1,024) rows
with stage fields after the split point: a run's events are logged a few lines apart.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import IO, Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from autoinstrument.report.aggregate import Aggregator, Head
from autoinstrument.report.errors import InputError
from autoinstrument.report.records import Group, Report

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


class Part(NamedTuple):
    """One part's Report, and what the parent needs to join runs across its split points."""

    report: Report
    head: Dict[str, Head]  # Aggregator.join_head (empty for the first part)
    tail: Mapping[Any, Tuple[str, Tuple[str, ...]]]  # Aggregator.join_tail (empty for the last part)


def fold_part(path: str, start: int, end: int, options: Dict[str, Any], first: bool = True, last: bool = True) -> Part:
    """Fold [start, end) of `path`: its Report, its join head unless `first`, its join tail unless `last`."""
    agg = Aggregator(**options)
    if not first:
        agg.record_head()
    with open(path, "rb") as handle:
        agg.feed_stream(_Range(handle, start, end))  # type: ignore[arg-type]
    return Part(agg.report(), agg.join_head(), {} if last else agg.join_tail())


def fold_range(path: str, start: int, end: int, options: Dict[str, Any]) -> Report:
    return fold_part(path, start, end, options).report


def _child(args: Tuple[str, int, int, Dict[str, Any], bool]) -> Part:
    path, start, end, options, last = args
    return fold_part(path, start, end, options, first=False, last=last)


def join_parts(parts: Sequence[Part]) -> None:
    """Count, in each part's Report, the stage samples of its head that the part before already counted for
    the same run (an event of another name with the same correlation id and field): the join across a split."""
    for before, after in zip(parts, parts[1:]):
        duplicates = after.report.duplicates
        for cid, (name, keys, values) in after.head.items():
            earlier = before.tail.get(cid)
            if earlier is None or earlier[0] == name:
                continue
            for key, value in zip(keys, values):
                if value is not None and key in earlier[1]:
                    own = duplicates.setdefault(key, {})
                    own[value] = own.get(value, 0) + 1


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
    out._pooled.clear()  # pooled fields are worked out again from the merged tables
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
    jobs = [(path, a, b, options, i == len(ranges) - 1) for i, (a, b) in enumerate(ranges) if i]
    with context.Pool(len(ranges) - 1) as pool:
        pending = pool.map_async(_child, jobs)
        first = fold_part(path, ranges[0][0], ranges[0][1], options, first=True, last=False)
        try:
            rest = pending.get()
        except (OSError, EOFError) as exc:
            raise InputError(f"error reading {path}: {exc}") from None
    every = [first, *rest]
    join_parts(every)
    return merge([part.report for part in every])


__all__ = [
    "PARALLEL_MIN_BYTES",
    "Part",
    "fold_parallel",
    "fold_part",
    "fold_range",
    "join_parts",
    "jobs_for",
    "merge",
    "split_points",
]
