"""Structured logging: one JSON object per line, secrets redacted everywhere, correlation id attached."""

from __future__ import annotations

import io
import json
import logging

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
