"""The emitter: every event leaves through the app's own log function, named in the manifest.

Why: the app's log function adds the bound correlation id and applies the app's redaction and format, so our
events and the app's business logs look alike and join on `correlation_id`. It is called as
`function(logging.getLogger(logger), level, event, **fields)` (the `log_json` convention).

If that function cannot be imported or raises, the event is written as one JSON line on stderr through a
private stdlib logger instead, and the fault is reported ONCE (`autoinstrument_fault`). The emitter never
raises.

Events produced before the app is running (at interpreter start-up the app has not configured logging yet) are
queued with `defer=True` and flushed by `ready()`: at the first scope opening, or at interpreter exit.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import datetime, timezone
from re import compile as regex
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from autoinstrument.manifest import resolve_ref as _resolve_ref
from autoinstrument.runtime.wrappers import is_ours

FAULT_EVENT = "autoinstrument_fault"

Fields = Union[Dict[str, Any], Callable[[], Dict[str, Any]]]


class _StderrHandler(logging.Handler):
    """Writes to the CURRENT sys.stderr (test runners swap it), one line per record."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # pragma: no cover - nowhere left to report to
            pass


def _fallback_logger() -> logging.Logger:
    logger = logging.getLogger("autoinstrument.fallback")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
    return logger


#: Keys whose string values the library itself writes from the manifest (targets, fields, templates) or from
#: its own vocabulary: the fallback keeps them. Any other string may be the app's and is redacted or withheld.
LIBRARY_KEYS = frozenset(
    (
        "fault", "target", "manifest", "key", "field", "scope_event", "method", "route",
        "wrapped", "late", "missing", "pending", "error_type",
    )
)
_SAFE_ID = regex(r"[A-Za-z0-9._-]{1,128}")
Redactor = Callable[[str], str]


def _safe(key: str, value: Any, redact: Optional[Redactor], trusted: bool) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): _safe(str(k), v, redact, trusted) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(key, v, redact, trusted) for v in value]
    text = value if isinstance(value, str) else str(value)
    if trusted or key in LIBRARY_KEYS:
        return text
    if redact is not None:
        try:
            cleaned = redact(text)
            if isinstance(cleaned, str):
                if key == "correlation_id" and cleaned != text:
                    return "[REDACTED]"
                return cleaned
        except Exception:
            pass
    elif key == "correlation_id" and _SAFE_ID.fullmatch(text):
        return text  # a validated id
    if key == "detail":  # an exception text: its type name is ours to write, the message may be the app's
        head = text.split(":", 1)[0]
        if head.isidentifier():
            return f"{head} (message withheld: the manifest names no log.redact)"
    return f"[{len(text)} characters withheld: the manifest names no log.redact]"


def _utc_now() -> str:
    now = time.time()
    stamp = datetime.fromtimestamp(int(now), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{int((now - int(now)) * 1000):03d}Z"


def stderr_event(
    event: str,
    fields: Dict[str, Any],
    level: int = logging.INFO,
    logger: str = "autoinstrument",
    redact: Optional[Redactor] = None,
    trusted: bool = True,
) -> None:
    """One JSON object on one stderr line, shaped like the app's (`timestamp`, `level`, `logger`, `message`).

    `trusted=False` (an event the app's log function could not write): every string value not written by the
    library itself goes through `redact`, or is withheld when there is none; numbers, validated ids and field
    names are written as they are.
    """
    body: Dict[str, Any] = {
        "timestamp": _utc_now(),
        "level": logging.getLevelName(level),
        "logger": logger,
        "message": event,
    }
    for key, value in fields.items():
        key = str(key)
        if key in body:
            key = f"field_{key}"
        body[key] = _safe(key, value, redact, trusted)
    try:
        line = json.dumps(body, default=str)
    except Exception:  # pragma: no cover - json with default=str does not fail on dict input
        line = json.dumps({"level": "ERROR", "message": event, "detail": "unserialisable fields"})
    _fallback_logger().log(level, line)


class Emitter:
    """Sends events through the manifest's log function; reports faults once; never raises."""

    def __init__(self, log: Any, defer: bool = False):
        self.log = log
        self._function: Optional[Callable[..., Any]] = None
        self._logger: Optional[logging.Logger] = None  # looked up once: `getLogger` takes a lock per call
        self._resolved = False
        self._deferred = defer
        self._queue: List[Tuple[str, Fields, int, Optional[logging.Logger]]] = []
        self._faults: set = set()
        self._lock = threading.RLock()
        self._redact: Optional[Redactor] = None
        self._redact_resolved = False

    # -------------------------------------------------------------------------------- public

    def emit(
        self, event: str, fields: Fields, level: int = logging.INFO, logger: Optional[logging.Logger] = None
    ) -> None:
        """Emit now, or queue while deferred. `fields` may be a callable, evaluated when actually sent.
        `logger` replaces the manifest's logger (a merged request event keeps the app's logger)."""
        if self._deferred:
            with self._lock:
                if self._deferred:
                    self._queue.append((event, fields, level, logger))
                    return
        self._send(event, fields, level, logger)

    def emit_now(self, event: str, fields: Dict[str, Any], level: int = logging.INFO) -> None:
        """`emit` for the per-request event: a dict of fields, the manifest's logger, one call deep."""
        function = self._function
        logger = self._logger
        if function is None or logger is None or self._deferred:
            self.emit(event, fields, level)
            return
        try:
            function(logger, level, event, **fields)
        except Exception as exc:
            self.direct_failed(exc, event, fields, level)

    def direct(self) -> Optional[Tuple[Callable[..., Any], logging.Logger]]:
        """(the app's log function, the manifest's logger) once events may go straight to it (not deferred,
        the function usable); None otherwise. The web path calls it inline, without a frame of ours."""
        if self._deferred:
            return None
        function = self._function if self._resolved else self._resolve()
        if function is None:
            return None
        logger = self._logger
        if logger is None:
            logger = self._logger = logging.getLogger(self.log.logger)
        return function, logger

    def direct_failed(self, exc: BaseException, event: str, fields: Dict[str, Any], level: int) -> None:
        """A direct call of the log function raised: report that once and write the event on stderr."""
        self._function_failed(exc)
        stderr_event(event, fields, level, self.log.logger, self.redactor(), trusted=False)

    def fault(self, kind: str, detail: str, **context: Any) -> None:
        """Report a fault of the library once per (kind, target/detail)."""
        key = (kind, context.get("target") or detail)
        with self._lock:
            if key in self._faults:
                return
            self._faults.add(key)
        fields = {"fault": kind, "detail": detail}
        fields.update({k: v for k, v in context.items() if v is not None})
        self.emit(FAULT_EVENT, fields, logging.WARNING)

    @property
    def deferred(self) -> bool:
        return self._deferred

    def ready(self) -> None:
        """The app is running: send what was queued, then send directly from now on."""
        if not self._deferred:
            return
        with self._lock:
            if not self._deferred:
                return
            self._deferred = False
            queue, self._queue = self._queue, []
        for event, fields, level, logger in queue:
            self._send(event, fields, level, logger)

    def redactor(self) -> Optional[Redactor]:
        """The app's `str -> str` redaction function named by `log.redact` (None when unset or unusable)."""
        if self._redact_resolved:
            return self._redact
        self._redact_resolved = True
        ref = getattr(self.log, "redact", None)
        if ref is None:
            return None
        try:
            function = _resolve_ref(ref)
            if not callable(function):
                raise TypeError(f"{ref.text} is a {type(function).__name__}, not callable")
            self._redact = function
        except Exception as exc:
            self.fault("redact_unusable", f"{type(exc).__name__}: {exc}", target=ref.text, line=ref.line)
        return self._redact

    # -------------------------------------------------------------------------------- internals

    def _resolve(self) -> Optional[Callable[..., Any]]:
        if self._resolved:
            return self._function
        ref = getattr(self.log, "function", None)
        function = None
        if ref is not None:
            try:
                obj = _resolve_ref(ref)
                if not callable(obj):
                    raise TypeError(f"{ref.text} is not callable")
                # Our own gate around it (merge.py) is for the app's calls; ours go to the function itself.
                function = getattr(obj, "__wrapped__", obj) if is_ours(obj) else obj
            except Exception as exc:
                self._resolved = True
                self._function = None
                self.fault(
                    "log_function_unusable", f"{type(exc).__name__}: {exc}", target=ref.text, line=ref.line
                )
                return None
        self._function = function
        self._resolved = True
        return function

    def _send(self, event: str, fields: Fields, level: int, logger: Optional[logging.Logger] = None) -> None:
        if type(fields) is dict:  # the per-request case: no call, no try
            payload = fields
        else:
            try:
                payload = fields() if callable(fields) else fields
            except Exception as exc:
                payload = {"detail": f"could not build fields: {type(exc).__name__}: {exc}"}
        function = self._function if self._resolved else self._resolve()
        if function is not None:
            try:
                if logger is None:
                    logger = self._logger
                    if logger is None:
                        logger = self._logger = logging.getLogger(self.log.logger)
                function(logger, level, event, **payload)
                return
            except Exception as exc:
                self._function_failed(exc)
        stderr_event(event, payload, level, self.log.logger, self.redactor(), trusted=False)

    def _function_failed(self, exc: BaseException) -> None:
        """The app's log function raised: report that once, on stderr (it cannot report about itself)."""
        ref = self.log.function
        key = ("log_function_raised", ref.text if ref else "")
        with self._lock:
            if key in self._faults:
                return
            self._faults.add(key)
        stderr_event(
            FAULT_EVENT,
            {
                "fault": "log_function_raised",
                "detail": f"{type(exc).__name__}: {exc}",
                "target": ref.text if ref else None,
                "line": ref.line if ref else None,
            },
            logging.WARNING,
            self.log.logger,
            self.redactor(),
            trusted=False,
        )
