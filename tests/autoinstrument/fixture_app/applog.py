"""The app's logging: a correlation ContextVar and `log_json(logger, level, message, **fields)`.

Every event is recorded in EVENTS (for in-process tests) and written as one JSON line on stderr (subprocess
tests). `FAIL` makes the log function raise for the telemetry logger, to test that a raising emitter never
breaks the app.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from contextvars import ContextVar
from typing import Any, Dict, List, Optional

correlation_id: ContextVar[Optional[str]] = ContextVar("fixture_correlation_id", default=None)

EVENTS: List[Dict[str, Any]] = []
FAIL = False
_lock = threading.Lock()


def log_json(logger: logging.Logger, level: int, message: str, /, **fields: Any) -> None:
    if FAIL and logger.name == "fixture.telemetry":
        raise RuntimeError("log sink is down")
    event: Dict[str, Any] = {"level": logging.getLevelName(level), "logger": logger.name, "message": message}
    cid = correlation_id.get()
    if cid is not None and "correlation_id" not in fields:
        event["correlation_id"] = cid
    event.update(fields)
    with _lock:
        EVENTS.append(event)
    sys.stderr.write(json.dumps(event, default=str) + "\n")


def rid_log(logger: logging.Logger, level: int, message: str, /, **fields: Any) -> None:
    """An app's own log function of another shape: it always writes the request id it reads, as `rid`."""
    event: Dict[str, Any] = {"level": logging.getLevelName(level), "logger": logger.name, "message": message,
                             "rid": correlation_id.get()}
    event.update(fields)
    with _lock:
        EVENTS.append(event)


def events(message: Optional[str] = None) -> List[Dict[str, Any]]:
    with _lock:
        return [e for e in EVENTS if message is None or e["message"] == message]


def clear() -> None:
    with _lock:
        EVENTS.clear()


SECRET = "s3cretTOKENvalue"


def redact_text(text: str) -> str:
    """The app's redaction (`log.redact`): its one secret becomes [REDACTED]."""
    return text.replace(SECRET, "[REDACTED]")
