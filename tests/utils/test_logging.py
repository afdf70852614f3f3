"""Structured logging: one JSON object per line, secrets redacted everywhere, correlation id attached."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from typing import Iterator, Tuple

import pytest

from publisher_v2.utils.logging import (
    REDACTED,
    bound_correlation_id,
    get_correlation_id,
    log_json,
    sanitize,
    setup_logging,
)


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    setup_logging(logging.INFO, stream=stream)
    return stream


def events(stream: io.StringIO) -> list:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_log_json_emits_one_json_object_per_line(captured: io.StringIO) -> None:
    logger = logging.getLogger("test.logging")
    log_json(logger, logging.INFO, "first", count=1)
    log_json(logger, logging.WARNING, "second", nested={"a": [1, 2]})
    first, second = events(captured)
    assert first["message"] == "first" and first["count"] == 1 and first["level"] == "INFO"
    assert second["nested"] == {"a": [1, 2]} and second["logger"] == "test.logging"
    assert first["timestamp"].endswith("Z")


def test_fields_cannot_overwrite_reserved_keys(captured: io.StringIO) -> None:
    log_json(logging.getLogger("t"), logging.INFO, "real", message="fake", timestamp="then")
    (event,) = events(captured)
    assert event["message"] == "real"
    assert event["field_message"] == "fake"
    assert event["timestamp"] != "then"


def test_correlation_id_is_added_while_bound(captured: io.StringIO) -> None:
    logger = logging.getLogger("t")
    with bound_correlation_id("abc-123") as cid:
        assert cid == "abc-123" and get_correlation_id() == "abc-123"
        log_json(logger, logging.INFO, "inside")
    log_json(logger, logging.INFO, "outside")
    inside, outside = events(captured)
    assert inside["correlation_id"] == "abc-123"
    assert "correlation_id" not in outside


def test_bound_correlation_id_reuses_an_outer_id() -> None:
    with bound_correlation_id("outer"), bound_correlation_id() as inner:
        assert inner == "outer"
    assert get_correlation_id() is None


@pytest.mark.parametrize(
    "text",
    [
        "key sk-abcdefghijklmnopqrstuvwx",
        "key sk-proj-abcdefghijklmnopqrstuvwx_yz",
        "GET https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendPhoto",
        "token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
        "dropbox sl.BAbcdefghijklmnopqrstuvwxyz0123",
        "Authorization: Bearer abc.def.ghi-123456",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==",
        "https://x/?password=hunter2&x=1",
    ],
)
def test_sanitize_redacts_known_secret_shapes(text: str) -> None:
    cleaned = sanitize(text)
    assert REDACTED in cleaned
    for secret in ("abcdefghijklmnop", "AAHdqTcv", "hunter2", "dXNlcjpw", "abc.def.ghi"):
        assert secret not in cleaned


def test_sanitize_recurses_and_redacts_sensitive_keys() -> None:
    value = {
        "outer": [
            {"password": "p4ss", "url": "https://api.telegram.org/bot123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ/x"}
        ]
    }
    cleaned = sanitize(value)
    inner = cleaned["outer"][0]
    assert inner["password"] == REDACTED
    assert "ABCDEFGHIJ" not in inner["url"]


def test_every_string_value_is_sanitised_not_only_the_message(captured: io.StringIO) -> None:
    log_json(
        logging.getLogger("t"),
        logging.ERROR,
        "call failed sk-abcdefghijklmnopqrstuv",
        error="sk-zyxwvutsrqponmlkjihgf",
    )
    (event,) = events(captured)
    assert "abcdefghijklmnop" not in json.dumps(event)
    assert "zyxwvutsrqponmlk" not in json.dumps(event)


def test_third_party_records_become_json_lines(captured: io.StringIO) -> None:
    logging.getLogger("someone.else").warning("plain %s", "text")
    (event,) = events(captured)
    assert event["message"] == "plain text" and event["level"] == "WARNING"


# -- the lean path (log_json runs once per web request) -----------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def only_json_handler(name: str) -> Iterator[Tuple[logging.Logger, io.StringIO]]:
    """A logger whose ONLY handler is setup_logging's kind, as in the app (pytest adds its capture handlers
    around each test call, so this is entered inside the test)."""
    from publisher_v2.utils import logging as app_logging

    stream = io.StringIO()
    handler = app_logging.EventHandler(stream, app_logging.dumps_line)
    logger = logging.getLogger(name)
    saved, logger.handlers, logger.propagate = logger.handlers, [handler], False
    try:
        yield logger, stream
    finally:
        logger.handlers, logger.propagate = saved, True


def test_direct_write_and_the_standard_path_write_the_same_line() -> None:
    from publisher_v2.utils import logging as app_logging

    collector = _Collect()
    with only_json_handler("test.direct") as (logger, captured):
        assert app_logging._sole_event_handler(logger, logging.INFO) is not None  # the direct path is taken
        with bound_correlation_id("cid-1"):
            log_json(logger, logging.INFO, "evt", n=1, text="a b", flag=True, none=None, ratio=0.5)
        logger.addHandler(collector)  # a second handler: the standard path, with a real record
        assert app_logging._sole_event_handler(logger, logging.INFO) is None
        with bound_correlation_id("cid-1"):
            log_json(logger, logging.INFO, "evt", n=1, text="a b", flag=True, none=None, ratio=0.5)
    direct, standard = events(captured)
    direct.pop("timestamp"), standard.pop("timestamp")
    assert direct == standard == {
        "level": "INFO",
        "logger": "test.direct",
        "message": "evt",
        "correlation_id": "cid-1",
        "n": 1,
        "text": "a b",
        "flag": True,
        "none": None,
        "ratio": 0.5,
    }
    (record,) = collector.records
    assert json.loads(record.getMessage())["message"] == "evt"


def test_setup_logging_and_log_json_change_no_global_logging_state() -> None:
    """The fast path is the direct write alone: no template record, no switched-off logging flags."""
    before = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing, logging.getLogRecordFactory())
    setup_logging(logging.INFO, stream=io.StringIO())
    log_json(logging.getLogger("test.global"), logging.INFO, "evt", n=1)
    after = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing, logging.getLogRecordFactory())
    assert after == before


def test_the_standard_path_record_is_logging_s_own_and_carries_the_event() -> None:
    collector = _Collect()
    logger = logging.getLogger("test.record")
    logger.addHandler(collector)
    try:
        with bound_correlation_id("cid-2"):
            log_json(logger, logging.WARNING, "evt", n=2)
    finally:
        logger.removeHandler(collector)
    (record,) = collector.records
    standard = logger.makeRecord(logger.name, logging.WARNING, "", 0, "{}", None, None)
    assert set(vars(standard)) <= set(vars(record))  # a real makeRecord record (thread, process: as configured)
    assert record.thread == standard.thread and record.process == standard.process
    assert json.loads(record.getMessage())["correlation_id"] == "cid-2"
    assert record.publisher_v2_event["n"] == 2


def test_a_filter_takes_the_standard_path() -> None:
    from publisher_v2.utils import logging as app_logging

    with only_json_handler("test.filtered") as (logger, captured):
        logger.addFilter(lambda record: "drop" not in record.getMessage())
        try:
            assert app_logging._sole_event_handler(logger, logging.INFO) is None
            log_json(logger, logging.INFO, "drop me")
            log_json(logger, logging.INFO, "keep me")
        finally:
            logger.filters.clear()
    assert [e["message"] for e in events(captured)] == ["keep me"]


def test_one_secret_among_many_string_fields_is_still_redacted(captured: io.StringIO) -> None:
    log_json(
        logging.getLogger("t"),
        logging.INFO,
        "evt",
        a="plain",
        b="https://x/?access_token=abcdef123456",
        c="also plain",
        api_key="visible-if-not-redacted",
    )
    (event,) = events(captured)
    assert event["a"] == "plain" and event["c"] == "also plain"
    assert event["b"] == f"https://x/?access_token={REDACTED}"
    assert event["api_key"] == REDACTED


@pytest.mark.parametrize("value", [2**70, "lone \udc80 surrogate"])
def test_values_orjson_refuses_still_serialise(captured: io.StringIO, value: object) -> None:
    log_json(logging.getLogger("t"), logging.INFO, "evt", value=value)
    line = captured.getvalue().strip()
    assert line.startswith("{") and '"message":"evt"' in line
    if isinstance(value, int):
        assert json.loads(line)["value"] == value


# -- redaction of registered secrets in their other forms ---------------------------------------------------

SECRET = "Zq7!Lm2&Xp9-Rt4/Wk"


@pytest.fixture
def registered() -> str:
    from publisher_v2.utils.logging import register_secret

    register_secret(SECRET)  # registering is one-way: a distinctive value no other test uses
    return SECRET


def _forms(secret: str) -> dict:
    import base64
    from urllib.parse import quote, quote_plus

    blob = base64.b64encode(b"\0user\0" + secret.encode()).decode()  # SMTP AUTH PLAIN: another alignment
    return {
        "raw": secret,
        "upper": secret.upper(),
        "lower": secret.lower(),
        "url": quote(secret, safe=""),
        "url path": quote(secret),
        "url plus": quote_plus(secret),
        "url twice": quote(quote(secret, safe=""), safe=""),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64 url-safe": base64.urlsafe_b64encode(secret.encode()).decode(),
        "base64 at offset 1": base64.b64encode(b"x" + secret.encode()).decode(),
        "base64 inside AUTH PLAIN": blob,
        "escaped": "".join(c if c.isalnum() or c in "-" else f"\\x{ord(c):02x}" for c in secret),
        "file name": "".join(c if c.isalnum() or c in "._-" else "_" for c in secret),
    }


@pytest.mark.parametrize("kind", list(_forms(SECRET)))
def test_a_registered_secret_is_redacted_in_its_other_forms(registered: str, kind: str) -> None:
    from publisher_v2.utils.logging import redact_text

    shown = _forms(registered)[kind]
    cleaned = redact_text(f"peer said: {shown} (end)")
    assert REDACTED in cleaned and cleaned.startswith("peer said: ") and cleaned.endswith(" (end)")
    for i in range(len(registered) - 7):  # no 8-character piece of the secret survives, in any case
        assert registered[i : i + 8].lower() not in cleaned.lower(), (kind, cleaned)


def test_redact_text_leaves_ordinary_text_alone(registered: str) -> None:
    from publisher_v2.utils.logging import redact_text

    for text in ("IMG_0042.jpg", "/api/images/random", "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b", "a b c: d=e"):
        assert redact_text(text) == text


def test_keys_the_correlation_id_and_nested_keys_are_redacted(captured: io.StringIO, registered: str) -> None:
    with bound_correlation_id(registered):
        log_json(logging.getLogger("t"), logging.INFO, "evt", headers={registered: "v"}, **{registered.lower(): 1})
    line = captured.getvalue()
    assert registered[:8].lower() not in line.lower()
    (event,) = events(captured)
    assert event["correlation_id"] == REDACTED and event[REDACTED] == 1 and event["headers"] == {REDACTED: "v"}


def test_exception_tracebacks_of_library_records_are_redacted(captured: io.StringIO, registered: str) -> None:
    try:
        raise RuntimeError(f"peer refused token {registered}")
    except RuntimeError:
        logging.getLogger("somelib").exception("call to %s failed", registered.upper())
    (event,) = events(captured)
    assert event["message"] == f"call to {REDACTED} failed"
    assert "RuntimeError: peer refused token [REDACTED]" in event["exception"]
    assert registered[:8] not in captured.getvalue()


def test_secret_named_environment_variables_are_registered() -> None:
    from publisher_v2.utils.logging import redact_text, register_environment_secrets

    register_environment_secrets(
        {"MY_API_KEY": "envkey-Hq2Vz8Lp", "web_admin_pw": "envpw-Kd7Rm3", "HOME": "/root", "USE_TOKEN": "true"}
    )
    assert redact_text("a envkey-Hq2Vz8Lp b ENVPW-KD7RM3") == f"a {REDACTED} b {REDACTED}"
    assert redact_text("/root true") == "/root true"  # not secret-named, or a switch's value


# -- one renderer, two formats --------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_follows_the_terminal_unless_the_variable_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher_v2.utils.log_render import choose_format

    monkeypatch.delenv("PUBLISHER_LOG_FORMAT", raising=False)
    assert choose_format(io.StringIO()) == "json" and choose_format(_Terminal()) == "console"
    assert choose_format(_Terminal(), {"PUBLISHER_LOG_FORMAT": "json"}) == "json"
    assert choose_format(io.StringIO(), {"PUBLISHER_LOG_FORMAT": "Console"}) == "console"
    with pytest.raises(ValueError, match="PUBLISHER_LOG_FORMAT='xml': expected one of json, console"):
        choose_format(io.StringIO(), {"PUBLISHER_LOG_FORMAT": "xml"})


def test_an_unknown_format_is_reported_and_the_terminal_check_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_LOG_FORMAT", "xml")
    stream = io.StringIO()
    setup_logging(logging.INFO, stream=stream)
    (event,) = events(stream)
    assert event["message"] == "log_format_invalid" and "PUBLISHER_LOG_FORMAT" in event["error"]


def test_console_lines_are_aligned_and_carry_the_short_correlation_id(
    monkeypatch: pytest.MonkeyPatch, registered: str
) -> None:
    monkeypatch.setenv("PUBLISHER_LOG_FORMAT", "console")
    monkeypatch.setenv("NO_COLOR", "1")
    stream = _Terminal()
    setup_logging(logging.INFO, stream=stream)
    logger = logging.getLogger("publisher_v2.web")
    with bound_correlation_id("3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"):
        log_json(logger, logging.INFO, "web_random_image", filename=f"{registered}.jpg", count=3)
        log_json(logger, logging.WARNING, "a_longer_event_name", note="two\nlines")
    first, second = stream.getvalue().splitlines()
    assert first.split(" ", 1)[1].startswith("[info     ] web_random_image ")
    assert "[publisher_v2.web] cid=3f2a9c1e filename=[REDACTED].jpg count=3" in first
    assert "3f2a9c1e-5b7d" not in first and registered[:8] not in first
    assert second.split(" ", 1)[1].startswith("[warning  ] a_longer_event_name ")
    assert first.index("[publisher_v2.web]") == second.index("[publisher_v2.web]")  # aligned columns
    assert "note=two\\nlines" in second  # a value cannot start a line of its own


def test_console_colours_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_LOG_FORMAT", "console")
    monkeypatch.delenv("NO_COLOR", raising=False)
    for stream, coloured in ((_Terminal(), True), (io.StringIO(), False)):
        setup_logging(logging.INFO, stream=stream)
        log_json(logging.getLogger("t"), logging.INFO, "evt")
        assert ("\x1b[" in stream.getvalue()) is coloured


# -- uvicorn's lines become events ------------------------------------------------------------------------------


@pytest.fixture
def uvicorn_configured() -> Iterator[None]:
    """uvicorn's own logging set-up (its LOGGING_CONFIG, as `uvicorn.Config` applies it), undone afterwards."""
    import logging.config

    from uvicorn.config import LOGGING_CONFIG

    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    logging.config.dictConfig(LOGGING_CONFIG)
    try:
        yield
    finally:
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers, logging.getLogger(name).propagate = handlers, propagate


def test_uvicorn_lines_are_routed_into_the_one_handler(uvicorn_configured: None, registered: str) -> None:
    from urllib.parse import quote

    stream = io.StringIO()
    setup_logging(logging.INFO, stream=stream)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    from publisher_v2.utils.logging import request_scope

    class Route:
        path = "/x/{name}"

    token = request_scope.set({"type": "http", "route": Route()})  # as RequestScopeMiddleware binds it
    try:
        with bound_correlation_id("cid-9"):
            logging.getLogger("uvicorn.access").info(
                '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/x/{quote(registered)}?k={registered}", "1.1", 404
            )
    finally:
        request_scope.reset(token)
    started, access = events(stream)
    assert started["message"] == "Started server process [42]" and started["logger"] == "uvicorn.error"
    assert access["message"] == "http_access" and access["correlation_id"] == "cid-9"
    assert access["path"] == f"/x/{REDACTED}?k={REDACTED}" and access["route"] == "/x/{name}"
    assert (access["method"], access["status"], access["http_version"]) == ("GET", 404, "1.1")


def test_an_access_log_switched_off_stays_off(uvicorn_configured: None) -> None:
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate = [], False  # what `uvicorn --no-access-log` leaves
    setup_logging(logging.INFO, stream=io.StringIO())
    assert not access.hasHandlers()


def test_a_secret_that_is_a_uuid_is_redacted_as_a_correlation_id(captured: io.StringIO) -> None:
    from publisher_v2.utils.logging import register_secret

    token = "0b9e2f4a-1c3d-4e5f-8a7b-9c0d1e2f3a4b"  # API tokens are often UUIDs
    register_secret(token)
    with bound_correlation_id(token):
        log_json(logging.getLogger("t"), logging.INFO, "evt", other="6f1d2c3b-4a5e-4f60-8a71-b2c3d4e5f607")
    (event,) = events(captured)
    assert event["correlation_id"] == REDACTED and event["other"] == "6f1d2c3b-4a5e-4f60-8a71-b2c3d4e5f607"


def test_strings_found_clean_are_checked_again_after_a_registration(captured: io.StringIO) -> None:
    from publisher_v2.utils.logging import register_secret

    logger = logging.getLogger("t")
    log_json(logger, logging.INFO, "evt", name="later-secret-Vb81")  # remembered as clean ...
    register_secret("later-secret-Vb81")  # ... until this
    log_json(logger, logging.INFO, "evt", name="later-secret-Vb81")
    first, second = events(captured)
    assert first["name"] == "later-secret-Vb81" and second["name"] == REDACTED
