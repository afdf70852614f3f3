"""The log gate's cost per call of the app's log function, its shapes side by side in one process.

    .venv/bin/python benchmarks/bench_log_gate.py [--rounds 15] [--number 200000] [--json]

The gate (autoinstrument/web/gate.py) sits in front of the manifest's log function so that the app's own event of
a mapped request is held and merged into the telemetry's. The app calls its log function several times per
request, almost always with ANOTHER event name (pass-through), so what counts is the pass-through cost:

    raw         the log function itself (a trivial `def log(logger, level, event, **fields)`)
    wrapt       the issue-20 gate: a `wrapt.FunctionWrapper(log, hold, enabled=CURRENT.get)`, `hold` a
                `(wrapped, instance, args, kwargs)` function (wrapt's C `__call__` looks up `__self__` on a plain
                function each call, then calls `hold`, which calls `log`)
    closure     the gate as one plain closure `log_gate(*args, **kwargs)` (functools.wraps'd, set with wrapt's
                `apply_patch`): what `web.gate.gate` builds now

in three contexts: `out` (no scope open: the CLI, a request not mapped), `scope` (a scope open, not a web
request), `request` (inside a mapped request, another event name: passed through). Each round runs every
(variant, context) once, in a shuffled order; the figure is the median over rounds of (variant - raw) ns per
call in the same round and context, with its 10th..90th percentile.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import timeit
from types import SimpleNamespace
from typing import Any, Dict, List, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import wrapt  # noqa: E402

from autoinstrument.runtime.scope import CURRENT  # noqa: E402
from autoinstrument.web.gate import gate  # noqa: E402


def log(logger: Any, level: int, event: str, **fields: Any) -> None:
    return None


def hold(wrapped: Any, instance: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """The issue-20 gate's wrapper function, as it was (commit 7267ec5, web/gate.py)."""
    acc = CURRENT.get()
    request = acc.request if acc is not None else None
    if request is None:
        return wrapped(*args, **kwargs)
    slot = request.held
    if slot is None or len(args) < 3:
        return wrapped(*args, **kwargs)
    event = args[2]
    route = request.owner
    if event != route.event and event != route.error_event:
        return wrapped(*args, **kwargs)
    entry = (args[0], args[1], event, kwargs)
    slot.append(entry)
    if slot[0] is not entry:
        return wrapped(*args, **kwargs)
    return None


VARIANTS = {"raw": log, "wrapt": wrapt.FunctionWrapper(log, hold, CURRENT.get), "closure": gate(log)}
ROUTE = SimpleNamespace(event="web_random_image", error_event="web_random_image_error")
REQUEST = SimpleNamespace(held=[], owner=ROUTE)
REQUEST.request = REQUEST
SCOPE = SimpleNamespace(request=None)
CONTEXTS = {"out": None, "scope": SCOPE, "request": REQUEST}
LOGGER = logging.getLogger("bench.gate")


def time_one(fn: Any, context: Any, number: int) -> float:
    """ns per call of fn(logger, INFO, "other_event", image=..., size=...) with `context` as the open scope."""
    token = CURRENT.set(context)
    try:
        timer = timeit.Timer("f(logger, 20, 'image_chosen', image='a.jpg', size=3)",
                             globals={"f": fn, "logger": LOGGER})
        return timer.timeit(number) / number * 1e9
    finally:
        CURRENT.reset(token)


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    diffs: Dict[Tuple[str, str], List[float]] = {(v, c): [] for v in VARIANTS if v != "raw" for c in CONTEXTS}
    raws: Dict[str, List[float]] = {c: [] for c in CONTEXTS}
    pairs = [(v, c) for v in VARIANTS for c in CONTEXTS]
    for name in VARIANTS:  # warm-up
        for context in CONTEXTS.values():
            time_one(VARIANTS[name], context, args.number // 10)
    for _ in range(args.rounds):
        random.shuffle(pairs)
        got = {pair: time_one(VARIANTS[pair[0]], CONTEXTS[pair[1]], args.number) for pair in pairs}
        for context in CONTEXTS:
            raws[context].append(got[("raw", context)])
            for variant in VARIANTS:
                if variant != "raw":
                    diffs[(variant, context)].append(got[(variant, context)] - got[("raw", context)])
    out: Dict[str, Any] = {}
    for (variant, context), values in diffs.items():
        q = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
        out[f"{variant}/{context}"] = {"median_ns": statistics.median(values), "p10": q[0], "p90": q[-1]}
    for context, values in raws.items():
        out[f"raw/{context}"] = {"median_ns": statistics.median(values)}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{'variant/context':<18} {'added ns/call (median)':>24} {'p10..p90':>16}")
    for context in CONTEXTS:
        print(f"{'raw/' + context:<18} {out['raw/' + context]['median_ns']:>20.0f} (abs)")
        for variant in VARIANTS:
            if variant == "raw":
                continue
            row = out[f"{variant}/{context}"]
            print(f"{variant + '/' + context:<18} {row['median_ns']:>24.0f} {row['p10']:>7.0f}..{row['p90']:<7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
