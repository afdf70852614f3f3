"""perf_counter seconds -> epoch nanoseconds, so a span starts and ends at the very readings its `_ms` came from.

The offset between the two clocks is read once at import (the monotonic clock does not jump; a wall clock step
later shifts spans, never their durations).
"""

from __future__ import annotations

import time

_OFFSET_NS = time.time_ns() - time.perf_counter_ns()


def epoch_ns(perf_seconds: float) -> int:
    """The epoch time in ns of a `time.perf_counter()` reading."""
    return int(perf_seconds * 1e9) + _OFFSET_NS
