"""One log line → a JSON object, or the reason it is not used; and the bounded text kept from a line.

The forgiving path of the report: the hot loop in `aggregate` parses with orjson and only sends here a line
orjson refused (a platform prefix, trailing text, NaN), so both paths give the same result. Logs are
untrusted: every string kept from a line goes through `text_of` (bounded length).
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

from autoinstrument.report.read import MAX_LINE_BYTES

#: Why a line was not used, in the order they are shown.
EMPTY, NOT_JSON, INVALID_JSON, NOT_OBJECT, NO_MS_FIELDS, TOO_LONG = (
    "empty",
    "not_json",
    "invalid_json",
    "not_object",
    "no_ms_fields",
    "too_long",
)
SKIP_REASONS = (EMPTY, NOT_JSON, INVALID_JSON, NOT_OBJECT, NO_MS_FIELDS, TOO_LONG)
SKIP_DESCRIPTIONS = {
    EMPTY: "blank line",
    NOT_JSON: "no JSON object on the line",
    INVALID_JSON: "truncated or invalid JSON",
    NOT_OBJECT: "JSON, but not an object",
    NO_MS_FIELDS: "object without any _ms field",
    TOO_LONG: f"line longer than {MAX_LINE_BYTES:,} bytes",
}

DEFAULT_EVENT_KEY = "message"
CORRELATION_KEY = "correlation_id"
MAX_TEXT = 200  # longest string kept from a log line (event names, ids, context values)
OTHER = "(other)"
NO_MESSAGE = "(no message)"

_decoder = json.JSONDecoder()
_JSON_STARTS = frozenset('["-0123456789tfnNI')  # first characters of any JSON value Python's json accepts


def text_of(value: Any) -> str:
    """A log value as a bounded string."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def family_of(event: str) -> str:
    """`web_publish_error` and `web_publish` are one family (same route, same total field)."""
    return event[: -len("_error")] if event.endswith("_error") else event


def decode_line(line: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(object, None) when the line holds a JSON object (after any prefix), else (None, skip reason).

    The forgiving path: trailing text after the object is ignored, NaN/Infinity are read (and then counted
    as invalid durations)."""
    if len(line) > MAX_LINE_BYTES:
        return None, TOO_LONG
    text = line.strip()
    if not text:
        return None, EMPTY
    try:
        if text[0] == "{":
            try:
                return json.loads(text), None
            except ValueError:
                pass  # trailing text after the object: raw_decode below
            start = 0
        else:
            if text[0] in _JSON_STARTS:  # maybe a whole non-object JSON value; a platform prefix is not
                try:
                    json.loads(text)
                    return None, NOT_OBJECT  # an array, a string, a number...
                except (ValueError, RecursionError):
                    pass
            start = text.find("{")
            if start < 0:
                return None, NOT_JSON
        obj, _ = _decoder.raw_decode(text, start)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None, INVALID_JSON
    return obj, None


__all__ = [
    "CORRELATION_KEY",
    "DEFAULT_EVENT_KEY",
    "MAX_TEXT",
    "NO_MESSAGE",
    "OTHER",
    "SKIP_DESCRIPTIONS",
    "SKIP_REASONS",
    "decode_line",
    "family_of",
    "text_of",
]
