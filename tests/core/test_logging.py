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
