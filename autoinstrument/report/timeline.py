"""Where each stage of a slow run is drawn: stages one after another in run order, and the stages that ran at the
same time (the manifest's `parallel:`) overlapping, inside the stage that called them.

Why: a run's stage fields are durations, not timestamps. Laid end to end, the three platform publishes that
`publish_parallel_ms` ran concurrently would draw a 5 s run 12 s long. The manifest says which stages run
inside which; they started together with their outer stage, so each is drawn from the outer stage's start, on
a lane of its own below the run's lane, and the run goes on after the OUTER stage only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

from autoinstrument.report.records import Run


@dataclass(frozen=True)
class Bar:
    """One stage of a run as drawn: from `start` ms (after the run's start) for `ms` ms, on `lane` (0: the run's
    own lane, 1..: one lane per stage that ran beside others, `within` the stage that called it)."""

    name: str
    start: int
    ms: int
    lane: int = 0
    within: Optional[str] = None

    @property
    def end(self) -> int:
        return self.start + self.ms


def stage_names(runs: Sequence[Run], order: Sequence[str]) -> List[str]:
    """Every stage of `runs`: the ones `order` lists in its order, then the others as they first appear."""
    seen = {k: None for run in runs for k in run.stages}
    return [n for n in order if n in seen] + [n for n in seen if n not in order]


def layout(run: Run, order: Sequence[str] = (), parallel: Optional[Mapping[str, Sequence[str]]] = None) -> List[Bar]:
    """The run's bars in drawing order (an outer stage, then the stages inside it). A stage of zero ms is left
    out. A stage inside an outer stage this run did not log starts where the outer stage would have."""
    parallel = parallel or {}
    outer_of: Dict[str, str] = {inner: outer for outer, inners in parallel.items() for inner in inners}
    stages = {name: ms for name, ms in run.stages.items() if ms}
    bars: List[Bar] = []
    lanes = 0

    def place(name: str, start: int, lane: int, within: Optional[str]) -> None:
        nonlocal lanes
        bars.append(Bar(name, start, stages[name], lane, within))
        for inner in parallel.get(name, ()):
            if inner in stages:
                lanes += 1
                place(inner, start, lanes, name)

    cursor = 0
    done: Dict[str, None] = {}
    for name in stage_names([run], order):
        if name not in stages or name in done:
            continue
        outer = outer_of.get(name)
        if outer is not None and outer in stages:
            continue  # drawn with its outer stage
        if outer is None:
            first = len(bars)
            place(name, cursor, 0, None)
            cursor += stages[name]
        else:  # its outer stage is not in this run: it and its siblings overlap from here
            first = len(bars)
            for sibling in parallel[outer]:
                if sibling in stages and sibling not in done:
                    lanes += 1
                    place(sibling, cursor, lanes, outer)
            cursor = max(bar.end for bar in bars[first:])
        done.update((bar.name, None) for bar in bars[first:])
    return bars


def lanes_of(bars: Sequence[Bar]) -> int:
    """How many lanes below the run's own lane the bars use."""
    return max((bar.lane for bar in bars), default=0)


__all__ = ["Bar", "lanes_of", "layout", "stage_names"]
