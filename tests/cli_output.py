"""What a command printed on stderr, read as the operator's log collector reads it: every line is one JSON event.

A failing command ends with ONE verdict event (`cli_failed`, `cli_interrupted`, `cli_usage_error`) whose
`verdict` field is the one-line text (`publisher: error: …`). Every helper here fails the test on a plain-text
line, so no test can accept one by accident.
"""

from __future__ import annotations

import json
from typing import List

#: The fields every event carries (the seed's), whatever its source.
EVENT_FIELDS = frozenset(("timestamp", "level", "logger", "message"))


def stderr_events(stderr: str) -> List[dict]:
    """Every non-empty line of `stderr` as an event; a line that is not a JSON object with the seed's fields
    fails the test (the message quotes it)."""
    events = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            raise AssertionError(f"plain-text line on stderr: {line!r}") from None
        assert isinstance(event, dict) and set(event) >= EVENT_FIELDS, f"not an event: {line!r}"
        events.append(event)
    return events


def verdict_lines(stderr: str) -> List[str]:
    """The `verdict` texts on stderr, in order (one on failure, none on success)."""
    return [e["verdict"] for e in stderr_events(stderr) if "verdict" in e]


def verdict_event(stderr: str) -> dict:
    """The one verdict event of a failed command: there is exactly one, it is the last line, at level ERROR."""
    events = stderr_events(stderr)
    with_verdict = [e for e in events if "verdict" in e]
    assert len(with_verdict) == 1, f"expected one verdict event, got {len(with_verdict)}:\n{stderr[-2000:]}"
    assert events[-1] is with_verdict[0], f"the verdict is not the last line:\n{stderr[-2000:]}"
    assert with_verdict[0]["level"] == "ERROR", with_verdict[0]
    return with_verdict[0]


def verdict(stderr: str) -> str:
    """The one-line verdict text of a failed command (see `verdict_event`)."""
    return str(verdict_event(stderr)["verdict"])
