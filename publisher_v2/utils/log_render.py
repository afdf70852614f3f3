"""How one (already redacted) event becomes one line: JSON for machines, a console line for people.

Which format: `PUBLISHER_LOG_FORMAT=json|console` when set; otherwise console when the stream is a terminal
and JSON when it is not (a pipe, a file, a container's log collector). Both renderers take the SAME event dict
that `log_json` built and redacted, so the two formats cannot differ in what they reveal.

The console line is structlog's `ConsoleRenderer` (aligned, coloured, the traceback under the line), imported
only when the console format is chosen: the JSON path, the one servers run, never loads it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import IO, Any, Callable, Dict, Optional

import orjson

from publisher_v2.utils.terminal import escape_controls

FORMAT_ENV = "PUBLISHER_LOG_FORMAT"
FORMATS = ("json", "console")
#: The console shows this many leading characters of a correlation id (a UUID4's first group).
SHORT_ID = 8

Renderer = Callable[[Dict[str, Any]], str]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return {k: getattr(value, k) for k in value.__dataclass_fields__}
    return str(value)


_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps_line(event: Dict[str, Any]) -> str:
    """One compact JSON object (orjson: ~10x the stdlib encoder, and this runs once per web request).

    Values orjson refuses (an int beyond 64 bits, a lone surrogate) fall back to the stdlib encoder, so any
    event that serialised before still does.
    """
    try:
        return orjson.dumps(event, default=_json_default, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(event, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def choose_format(stream: IO[str], environ: Optional[Dict[str, str]] = None) -> str:
    """"json" or "console" for `stream` (see the module docstring). An unknown PUBLISHER_LOG_FORMAT raises
    ValueError naming the variable and the accepted values."""
    wanted = (os.environ if environ is None else environ).get(FORMAT_ENV, "").strip().lower()
    if wanted:
        if wanted not in FORMATS:
            raise ValueError(f"{FORMAT_ENV}={wanted!r}: expected one of {', '.join(FORMATS)}")
        return wanted
    isatty = getattr(stream, "isatty", None)
    try:
        return "console" if isatty is not None and isatty() else "json"
    except (ValueError, OSError):  # a closed or detached stream
        return "json"


def _one_line(value: Any) -> Any:
    """A console value may not start a new line (a forged event) nor drive the terminal: every control
    character is shown escaped (see publisher_v2.utils.terminal)."""
    return escape_controls(value) if isinstance(value, str) else value


class ConsoleRenderer:
    """`time [level] event [logger] cid=… key=value…`, aligned and coloured (structlog's ConsoleRenderer)."""

    def __init__(self, colors: bool) -> None:
        from structlog.dev import ConsoleRenderer as _Structlog

        self._render = _Structlog(colors=colors, sort_keys=False)

    def __call__(self, event: Dict[str, Any]) -> str:
        stamp = str(event.get("timestamp", ""))
        line: Dict[str, Any] = {
            "timestamp": stamp[11:23] if len(stamp) >= 23 else stamp,  # HH:MM:SS.mmm of the ISO time
            "level": str(event.get("level", "")).lower(),
            "event": _one_line(event.get("message", "")),
            "logger": event.get("logger", ""),
        }
        cid = event.get("correlation_id")
        if cid is not None:
            line["cid"] = _one_line(str(cid)[:SHORT_ID])
        exception = None
        for key, value in event.items():
            if key in ("timestamp", "level", "message", "logger", "correlation_id"):
                continue
            if key == "exception":
                exception = value
                continue
            if key in line or key in ("event", "exc_info", "stack"):  # names the renderer gives a meaning
                key = f"field_{key}"
            line[_one_line(key)] = _one_line(value)
        if exception is not None:
            line["exception"] = escape_controls(str(exception), keep_newlines=True)  # a traceback keeps its lines
        return self._render(None, line["level"], line)


def renderer_for(fmt: str, stream: IO[str]) -> Renderer:
    """The renderer of `fmt` for `stream` (console colours only on a terminal, and never under NO_COLOR)."""
    if fmt == "console":
        isatty = getattr(stream, "isatty", None)
        colors = bool(isatty and isatty()) and "NO_COLOR" not in os.environ
        return ConsoleRenderer(colors=colors)
    return dumps_line
