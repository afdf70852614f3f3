"""Structured JSON logging, secret redaction and the correlation-id context.

Every event is one JSON object per line: `timestamp`, `level`, `logger`, `message`, then fields. `log_json`
sanitises EVERY string value (nested too), not only the message, because secrets leak through URLs and error
texts as often as through messages. The correlation id lives in a ContextVar owned here: whoever binds it
(the workflow, a web request, a telemetry scope) makes every `log_json` call inside carry it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
import time
import uuid
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import IO, Any, Dict, Iterator, Optional

import orjson

#: The correlation id of the current run or request (None when unbound).
correlation_id: ContextVar[Optional[str]] = ContextVar("publisher_v2_correlation_id", default=None)

REDACTED = "[REDACTED]"
_RESERVED = frozenset(("timestamp", "level", "logger", "message"))
_SENSITIVE_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie)$", re.IGNORECASE)
# Each pattern captures an optional prefix to keep (group "keep") and the secret itself.
_SECRET_PATTERNS = re.compile(
    "|".join(
        [
            r"sk-(?:proj-)?[A-Za-z0-9_\-]{16,}",  # OpenAI keys
            r"(?P<bot>/bot)\d{5,}:[A-Za-z0-9_\-]{20,}",  # Telegram token inside api.telegram.org/bot<token>
            r"\b\d{5,}:[A-Za-z0-9_\-]{30,}\b",  # bare Telegram bot tokens
            r"\bsl\.[A-Za-z0-9_\-]{20,}",  # Dropbox short-lived access tokens
            r"(?P<auth>(?i:\b(?:bearer|basic)) )[A-Za-z0-9._~+/=\-]{8,}",  # Authorization header values
            r"(?P<kv>(?i:\b(?:password|passwd|refresh_token|access_token|client_secret|api_key)=))[^\s&\"']+",
        ]
    )
)


def _keep_prefix(match: re.Match) -> str:
    prefix = match.group("bot") or match.group("auth") or match.group("kv") or ""
    return prefix + REDACTED


# Copy-on-write tuple: log_json iterates it from many threads while a config load may add to it.
_known_secrets: tuple = ()
_known_lock = threading.Lock()


def register_secret(value: Optional[str]) -> None:
    """Redact this exact value wherever it appears from now on (config secrets are registered on load)."""
    if value and len(value) >= 4:
        global _known_secrets
        with _known_lock:
            if value not in _known_secrets:
                # Longest first, so a secret that contains another is redacted whole.
                _known_secrets = tuple(sorted((*_known_secrets, value), key=len, reverse=True))


def _may_hold_pattern(text: str) -> bool:
    """A cheap gate before the regex: every pattern needs one of these substrings (ids, names, paths and
    numbers, the bulk of what is logged, have none of them and skip the regex)."""
    return "sk-" in text or ":" in text or "=" in text or "sl." in text or " " in text


def _redact_text(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if _may_hold_pattern(text):
        return _SECRET_PATTERNS.sub(_keep_prefix, text)
    return text


_sensitive_keys: dict[str, bool] = {}


def _is_sensitive_key(key: str) -> bool:
    known = _sensitive_keys.get(key)
    if known is None:
        known = _sensitive_keys[key] = bool(_SENSITIVE_KEY.search(key))
    return known


def sanitize(value: Any, key: Optional[str] = None) -> Any:
    """Return `value` with secrets redacted in every string, recursing into dicts, lists and tuples.

    A dict value whose key names a secret (password, token, api_key, authorization, cookie…) is redacted whole.
    """
    if key is not None and isinstance(value, str) and _is_sensitive_key(key):
        return REDACTED if value else value
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, dict):
        return {k: sanitize(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [sanitize(v) for v in value]
    return value


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


_MILLIS = tuple(f".{n:03d}Z" for n in range(1000))  # formatting 3 digits per event cost more than a lookup


def _utc_timestamp(created: float) -> str:
    """`2026-11-28T10:00:00.123Z` for a record's creation time (the seconds part is formatted once a second)."""
    global _last_second
    second = int(created)
    if _last_second[0] != second:
        _last_second = (second, datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    return _last_second[1] + _MILLIS[int((created - second) * 1000)]


_last_second: tuple = (None, "")

# What `makeRecord(name, level, "", 0, msg, None, None)` puts in a record while thread and process logging are
# off (as `setup_logging` leaves them), as a template for `_record`.
_PROBE = logging.LogRecord("", logging.INFO, "", 0, "", None, None)
#: logging's start time in seconds, as `relativeCreated` counts from it (3.13 keeps it in ns internally)
_LOGGING_START = _PROBE.created - _PROBE.relativeCreated / 1000.0
_RECORD_TEMPLATE: Dict[str, Any] = dict(vars(_PROBE), thread=None, threadName=None, process=None, processName=None)
if "taskName" in _RECORD_TEMPLATE:  # Python 3.12+
    _RECORD_TEMPLATE["taskName"] = None
_new_record = logging.LogRecord.__new__
_TASK_FLAG = hasattr(logging, "logAsyncioTasks")  # 3.12+; a getattr default per call would raise inside
_LogRecord = logging.LogRecord
_standard_make_record = logging.Logger.makeRecord


def _record(logger: logging.Logger, level: int, levelname: str, msg: str, created: float) -> logging.LogRecord:
    """The record `logger.makeRecord` would make for a log_json line, for a third of the work.

    `LogRecord.__init__` works out the caller's file, thread and process on every call; log_json passes no
    caller and `setup_logging` turns thread and process logging off, so every other attribute is a constant,
    copied from a template. Whenever that does not hold (those flags on, a custom record factory, a logger
    class with its own `makeRecord`) the record is made the standard way.
    """
    if (
        logging.logThreads
        or logging.logProcesses
        or logging.logMultiprocessing
        or (_TASK_FLAG and logging.logAsyncioTasks)
        or logging.getLogRecordFactory() is not _LogRecord
        or type(logger).makeRecord is not _standard_make_record
    ):
        return logger.makeRecord(logger.name, level, "", 0, msg, None, None)
    record = _new_record(_LogRecord)
    attributes = record.__dict__
    attributes.update(_RECORD_TEMPLATE)
    attributes["name"] = logger.name
    attributes["msg"] = msg
    attributes["levelno"] = level
    attributes["levelname"] = levelname
    attributes["created"] = created
    attributes["msecs"] = int((created - int(created)) * 1000) + 0.0
    attributes["relativeCreated"] = (created - _LOGGING_START) * 1000.0
    return record


def log_json(logger: logging.Logger, level: int, message: str, /, **fields: Any) -> None:
    """Emit one structured event. Fields never overwrite `timestamp`, `level`, `logger` or `message`.

    Called once per web request by the telemetry, so it is kept lean: no caller lookup (the JSON names its
    logger and event), numbers skip the sanitiser, the secret regex only runs on strings that could match,
    the record comes from a template (`_record`) and the line from orjson (`dumps_line`).
    """
    if not logger.isEnabledFor(level):
        return
    created = time.time()
    levelname = logging.getLevelName(level)
    name = logger.name
    event: Dict[str, Any] = {
        "timestamp": _utc_timestamp(created),
        "level": levelname,
        "logger": name,
        "message": _redact_text(message),
    }
    cid = correlation_id.get()
    if cid is not None and "correlation_id" not in fields:
        event["correlation_id"] = cid
    texts = []  # keys of plain string values, checked for secrets together below
    for key, value in fields.items():
        if key in _RESERVED:
            key = f"field_{key}"
        kind = type(value)
        if kind is str:
            if value and _is_sensitive_key(key):
                value = REDACTED
            else:
                texts.append(key)
        elif not (kind is int or kind is float or kind is bool or value is None):
            value = sanitize(value, key)
        event[key] = value
    if texts:
        # One pass over all of them: no secret or pattern in the NUL-joined text means none in any part
        # (NUL is in no pattern and is a word boundary, like the ends of a string).
        joined = "\x00".join([event[key] for key in texts])
        if _redact_text(joined) != joined:
            for key in texts:
                event[key] = _redact_text(event[key])
    line = dumps_line(event)
    handler = _sole_json_handler(logger, level)
    if handler is None or not handler.write_line(line):
        logger.handle(_record(logger, level, levelname, line, created))


def _sole_json_handler(logger: logging.Logger, level: int) -> Optional[_JsonLineHandler]:
    """`setup_logging`'s handler when it is the ONLY handler a record of `level` from `logger` would reach
    and no filter could drop or change the record on the way; None otherwise.

    Then the line can go straight to it: exactly what `logger.handle` would write, without making a record
    and walking the generic handler chain (half of log_json's cost, and log_json runs per web request).
    Any other configuration (a second handler, pytest's caplog, a filter, a custom handler) gets None and
    the standard path.
    """
    if logger.filters or logger.disabled:
        return None
    found = None
    current: Optional[logging.Logger] = logger
    while current is not None:
        for handler in current.handlers:
            if level >= handler.level:
                if found is not None or type(handler) is not _JsonLineHandler or handler.filters:
                    return None
                found = handler
        current = current.parent if current.propagate else None
    return found


class _JsonLineFormatter(logging.Formatter):
    """Lines from log_json are already JSON; wrap anything else (third-party loggers) into the same shape."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if text.startswith("{") and text.endswith("}"):
            return text
        event = {
            "timestamp": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _redact_text(text),
        }
        cid = correlation_id.get()
        if cid is not None:
            event["correlation_id"] = cid
        if record.exc_info:
            event["exception"] = _redact_text(self.formatException(record.exc_info))
        return dumps_line(event)


class _JsonLineHandler(logging.StreamHandler):
    """A StreamHandler that writes each line with one `write` and one `flush`, without the generic
    formatting and locking detours (`handle` already holds the handler's lock around `emit`).

    `write_line` is log_json's direct path (see `_sole_json_handler`).
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write(self.format(record))
        except RecursionError:  # as StreamHandler: a recursion error must surface
            raise
        except Exception:
            self.handleError(record)

    def write_line(self, line: str) -> bool:
        """Write one finished JSON line under the handler's lock; False if the stream failed (the caller
        then sends a record the standard way, so the failure is reported as logging reports it)."""
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            try:
                self._write(line)
                return True
            except Exception:
                return False

    def _write(self, line: str) -> None:
        stream = self.stream
        stream.write(line + "\n")
        stream.flush()


def setup_logging(level: int = logging.INFO, stream: Optional[IO[str]] = None) -> None:
    """Send every log record to `stream` (stderr by default) as one JSON object per line.

    Chatty HTTP client loggers are held at WARNING: they print request URLs, and Telegram puts the bot token in
    the URL path.
    """
    # The JSON lines carry none of these record attributes; skipping them makes every record cheaper.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = _JsonLineHandler(stream or sys.stderr)
    handler.setFormatter(_JsonLineFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_publisher_v2", False):
            root.removeHandler(existing)
    handler._publisher_v2 = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in (
        "httpx",
        "httpx2",
        "httpcore",
        "urllib3",
        "telegram",
        "dropbox",
        "openai",
        "aiosmtplib",
        "PIL",
    ):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


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
