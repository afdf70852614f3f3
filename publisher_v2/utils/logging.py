"""Structured logging: every line a process prints on stderr is one redacted event, in one of two formats.

Every event is a dict: `timestamp`, `level`, `logger`, `message`, `correlation_id` while one is bound, then
fields. It is redacted BEFORE it is rendered (every string value, every key, the correlation id, exception
texts; see `publisher_v2.utils.redact`), then rendered by ONE handler as a JSON line or a console line
(`publisher_v2.utils.log_render`). `setup_logging` installs that handler on the root logger and routes
uvicorn's loggers (start-up, shutdown, errors, access lines) into it, so a server started with
`uvicorn publisher_v2.web.app:app` prints nothing else. uvicorn's supervisor (`--workers`, `--reload`) never
imports the app: its `--log-config publisher_v2/web/uvicorn_logging.json` builds the same handler
(`event_handler`). A CLI's one-line verdict is an event too (`publisher_v2.cli.verdict`).

The correlation id lives in a ContextVar owned here: whoever binds it (the workflow, a web request, a
telemetry scope) makes every `log_json` call inside carry it.

Speed (log_json runs once per web request): ONE mechanism, in `log_json`: when `setup_logging`'s handler is
the only handler an event can reach, the event goes straight to it (`_sole_event_handler`), without making a
LogRecord or walking the handler chain; any other configuration gets a standard record. No global setting of
the `logging` module is changed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
import uuid
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import IO, Any, Dict, Iterator, MutableMapping, Optional, Tuple

from publisher_v2.utils.log_render import Renderer, choose_format, dumps_line, renderer_for
from publisher_v2.utils.redact import (
    REDACTED,
    all_clean,
    redact_text,
    register_environment_secrets,
    register_secret,
    registered_secrets,
)

__all__ = [
    "REDACTED",
    "bound_correlation_id",
    "correlation_id",
    "dumps_line",
    "event_handler",
    "get_correlation_id",
    "log_json",
    "new_correlation_id",
    "record_event",
    "redact_text",
    "request_scope",
    "register_environment_secrets",
    "register_secret",
    "registered_secrets",
    "sanitize",
    "setup_logging",
]

#: The correlation id of the current run or request (None when unbound).
correlation_id: ContextVar[Optional[str]] = ContextVar("publisher_v2_correlation_id", default=None)

#: The ASGI scope of the HTTP request served in this context (bound by the web app's
#: `RequestScopeMiddleware`): the access event reads the matched route template from it.
request_scope: ContextVar[Optional[MutableMapping[str, Any]]] = ContextVar("publisher_v2_request_scope", default=None)

_RESERVED = frozenset(("timestamp", "level", "logger", "message"))
_SENSITIVE_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie)$", re.IGNORECASE)
#: The attribute that carries a log_json event on a standard LogRecord (the record's message is its JSON line).
EVENT_ATTR = "publisher_v2_event"
#: The event name of uvicorn's access lines once they are ours.
ACCESS_EVENT = "http_access"

_sensitive_keys: Dict[str, bool] = {}


def _is_sensitive_key(key: str) -> bool:
    known = _sensitive_keys.get(key)
    if known is None:
        if len(_sensitive_keys) >= 4096:  # keys of nested dicts can be user input (headers): stay bounded
            _sensitive_keys.clear()
        known = _sensitive_keys[key] = bool(_SENSITIVE_KEY.search(key))
    return known


def sanitize(value: Any, key: Optional[str] = None) -> Any:
    """Return `value` with secrets redacted in every string, recursing into dicts, lists and tuples.

    A dict value whose key names a secret (password, token, api_key, authorization, cookie…) is redacted whole;
    keys are redacted too (a dict of headers or query parameters is user input).
    """
    if key is not None and isinstance(value, str) and _is_sensitive_key(key):
        return REDACTED if value else value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {(redact_text(k) if isinstance(k, str) else k): sanitize(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [sanitize(v) for v in value]
    return value


_MILLIS = tuple(f".{n:03d}Z" for n in range(1000))  # formatting 3 digits per event cost more than a lookup
_last_second: tuple = (None, "")


def _utc_timestamp(created: float) -> str:
    """`2026-11-28T10:00:00.123Z` for a creation time (the seconds part is formatted once a second)."""
    global _last_second
    second = int(created)
    last = _last_second
    if last[0] != second:
        last = _last_second = (second, datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    return last[1] + _MILLIS[int((created - second) * 1000)]


def log_json(logger: logging.Logger, level: int, message: str, /, **fields: Any) -> None:
    """Emit one structured event. Fields never overwrite `timestamp`, `level`, `logger` or `message`.

    Lean because it runs once per web request: numbers skip the sanitiser, the message, the correlation id and
    every plain string key and value are checked for secrets together (`all_clean`), and the event goes straight to
    `setup_logging`'s handler when that is the only place it can go (see the module docstring).
    """
    if not logger.isEnabledFor(level):
        return
    created = time.time()
    levelname = logging.getLevelName(level)
    event: Dict[str, Any] = {
        "timestamp": _utc_timestamp(created),
        "level": levelname,
        "logger": logger.name,
        "message": message,
    }
    cid = correlation_id.get()
    if cid is not None and "correlation_id" not in fields:
        event["correlation_id"] = cid
    texts = [message] if cid is None else [message, cid]  # checked for secrets together below
    for key, value in fields.items():
        if key in _RESERVED:
            key = f"field_{key}"
        texts.append(key)
        kind = type(value)
        if kind is str:
            if value and _is_sensitive_key(key):
                value = REDACTED
            else:
                texts.append(value)
        elif not (kind is int or kind is float or kind is bool or value is None):
            value = sanitize(value, key)
        event[key] = value
    if not all_clean(texts):
        event = {
            redact_text(k): (redact_text(v) if type(v) is str else v) for k, v in event.items()
        }
    handler = _sole_event_handler(logger, level)
    if handler is None or not handler.write_event(event):
        record = logger.makeRecord(logger.name, level, "", 0, dumps_line(event), None, None)
        setattr(record, EVENT_ATTR, event)
        logger.handle(record)


def _sole_event_handler(logger: logging.Logger, level: int) -> Optional[EventHandler]:
    """`setup_logging`'s handler when it is the ONLY handler an event of `level` from `logger` would reach
    and no filter could drop or change the record on the way; None otherwise.

    Then the event can go straight to it: exactly what `logger.handle` would write, without making a record
    and walking the generic handler chain (half of log_json's cost). Any other configuration (a second
    handler, pytest's caplog, a filter, a custom handler) gets None and the standard path.
    """
    if logger.filters or logger.disabled:
        return None
    found = None
    current: Optional[logging.Logger] = logger
    while current is not None:
        for handler in current.handlers:
            if level >= handler.level:
                if found is not None or type(handler) is not EventHandler or handler.filters:
                    return None
                found = handler
        current = current.parent if current.propagate else None
    return found


def _record_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format/args pair in someone else's call: show the template, not a crash
        return str(record.msg)


def _access_event(record: logging.LogRecord, base: Dict[str, Any]) -> Dict[str, Any]:
    """uvicorn's access line (`client - "METHOD path HTTP/x" status`) as fields, the path and query redacted,
    and the matched route template when the web app bound the request's scope (see `request_scope`)."""
    client, method, path, http_version, status = record.args  # type: ignore[misc]
    base["message"] = ACCESS_EVENT
    base["method"] = redact_text(str(method))
    scope = request_scope.get()
    template = getattr(scope.get("route"), "path", None) if scope is not None else None
    if isinstance(template, str):
        base["route"] = redact_text(template)
    base.update(
        path=redact_text(str(path)),
        status=status if type(status) is int else redact_text(str(status)),
        http_version=redact_text(str(http_version)),
        client=redact_text(str(client)),
    )
    return base


def record_event(record: logging.LogRecord) -> Dict[str, Any]:
    """The redacted event of any record: log_json's own, uvicorn's access line, or any library's text line
    (its message, and its exception's traceback, redacted)."""
    event = getattr(record, EVENT_ATTR, None)
    if event is not None:
        return event
    base: Dict[str, Any] = {
        "timestamp": _utc_timestamp(record.created),
        "level": record.levelname,
        "logger": record.name,
        "message": "",  # set below; placed here so every event's keys come in the same order
    }
    cid = correlation_id.get()
    if cid is not None:
        base["correlation_id"] = redact_text(cid)
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        return _access_event(record, base)
    base["message"] = redact_text(_record_message(record))
    if record.exc_info:
        base["exception"] = redact_text(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        base["stack"] = redact_text(record.stack_info)
    return base


class EventHandler(logging.StreamHandler):
    """The one handler of the process: renders each event (see `record_event`) as one line, JSON or console,
    with one `write` and one `flush`. `write_event` is log_json's direct path (see `_sole_event_handler`)."""

    def __init__(self, stream: IO[str], render: Renderer) -> None:
        super().__init__(stream)
        self.render = render

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.render(record_event(record)))
        except RecursionError:  # as StreamHandler: a recursion error must surface
            raise
        except Exception:
            self.handleError(record)

    def write_event(self, event: Dict[str, Any]) -> bool:
        """Render and write one event under the handler's lock; False if that failed (the caller then sends a
        record the standard way, so the failure is reported as logging reports it)."""
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            try:
                self._write(self.render(event))
                return True
            except Exception:
                return False

    def _write(self, line: str) -> None:
        stream = self.stream
        stream.write(line + "\n")
        stream.flush()


#: uvicorn's loggers: their own handlers are removed so their records reach ours (see `_route_uvicorn`).
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
_QUIET = ("httpx", "httpx2", "httpcore", "urllib3", "telegram", "dropbox", "openai", "aiosmtplib", "PIL")


def _route_uvicorn() -> None:
    """Hand uvicorn's records to the root handler: a logger uvicorn configured (it has handlers) loses them
    and propagates. A logger uvicorn switched off (`--no-access-log`: no handler, no propagation) stays off."""
    for name in UVICORN_LOGGERS:
        target = logging.getLogger(name)
        if target.handlers:
            for handler in list(target.handlers):
                target.removeHandler(handler)
            target.propagate = True


def _log_uncaught(kind: type, value: BaseException, tb: Any) -> None:
    """A crash is one event too: its traceback redacted like every other text (Ctrl-C keeps Python's way)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("publisher_v2").critical("uncaught_exception", exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: Any) -> None:
    if args.exc_type is SystemExit:
        return
    _log_uncaught(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)


def _make_handler(stream: IO[str]) -> Tuple[EventHandler, Optional[str]]:
    """The handler for `stream` in its format (see `choose_format`), and the complaint about an unknown
    PUBLISHER_LOG_FORMAT (then JSON or console by the terminal check, as if it were unset)."""
    problem = None
    try:
        fmt = choose_format(stream)
    except ValueError as exc:
        problem, fmt = str(exc), choose_format(stream, environ={})
    handler = EventHandler(stream, renderer_for(fmt, stream))
    handler._publisher_v2 = True  # type: ignore[attr-defined]  # setup_logging replaces a handler so marked
    return handler, problem


def event_handler() -> EventHandler:
    """The handler of uvicorn's `--log-config` file (`publisher_v2/web/uvicorn_logging.json`): our events on
    stderr, for the lines uvicorn's supervisor (`--workers N`, `--reload`) prints before any worker imports the
    app. A worker's `setup_logging` later replaces it with its own (same format, same stream)."""
    register_environment_secrets()
    return _make_handler(sys.stderr)[0]


def setup_logging(level: int = logging.INFO, stream: Optional[IO[str]] = None) -> None:
    """Send every log record to `stream` (stderr by default) as one redacted event per line.

    The format is JSON unless the stream is a terminal (console), `PUBLISHER_LOG_FORMAT=json|console` decides
    when set. Secret-named environment variables are registered for redaction first. Python's warnings and
    uncaught exceptions (main thread and others) become events too, so nothing else prints on stderr. Chatty HTTP client
    loggers are held at WARNING: they print request URLs, and Telegram puts the bot token in the URL path.
    """
    register_environment_secrets()
    handler, problem = _make_handler(stream or sys.stderr)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_publisher_v2", False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in _QUIET:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    _route_uvicorn()
    logging.captureWarnings(True)  # `warnings` print plain text on stderr otherwise
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    if problem is not None:
        log_json(logging.getLogger("publisher_v2.logging"), logging.WARNING, "log_format_invalid", error=problem)


def new_correlation_id() -> str:
    """A fresh opaque correlation id (UUID4)."""
    return str(uuid.uuid4())


def get_correlation_id() -> Optional[str]:
    """The correlation id bound in this context, or None."""
    return correlation_id.get()


@contextlib.contextmanager
def bound_correlation_id(value: Optional[str] = None) -> Iterator[str]:
    """Reuse the bound correlation id, or bind `value` (or a new UUID4) for the duration of the block."""
    current = correlation_id.get()
    if current is not None and value is None:
        yield current
        return
    cid = value or new_correlation_id()
    token = correlation_id.set(cid)
    try:
        yield cid
    finally:
        correlation_id.reset(token)
