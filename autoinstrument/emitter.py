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

import importlib
import json
import logging
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from autoinstrument.wrappers import is_ours

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


def stderr_event(event: str, fields: Dict[str, Any], level: int = logging.INFO) -> None:
    """One JSON object on one stderr line: `{"level", "message", **fields}`."""
    try:
        line = json.dumps(
            {"level": logging.getLevelName(level), "message": event, **fields}, default=str, sort_keys=False
        )
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
        self.events_sent = 0

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

    @property
    def pending(self) -> int:
        return len(self._queue)

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

    # -------------------------------------------------------------------------------- internals

    def _resolve(self) -> Optional[Callable[..., Any]]:
        if self._resolved:
            return self._function
        ref = getattr(self.log, "function", None)
        function = None
        if ref is not None:
            try:
                obj: Any = importlib.import_module(ref.module)
                for part in ref.attr.split("."):
                    obj = getattr(obj, part)
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
                self.events_sent += 1
                return
            except Exception as exc:
                self._function_failed(exc)
        stderr_event(event, payload, level)
        self.events_sent += 1

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
        )
