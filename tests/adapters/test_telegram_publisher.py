"""TelegramPublisher driven by python-telegram-bot against a local stand-in of the Bot API."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from publisher_v2.services.publishers.telegram import TelegramPublisher
from publisher_v2.utils.logging import setup_logging
from tests.adapters.peers.httpd import HttpPeer, Reply
from tests.adapters.peers.telegram_fake import BOT_TOKEN, CHANNEL_ID, FakeTelegram, error

SEND = f"/bot{BOT_TOKEN}/sendPhoto"


@pytest.fixture
def telegram() -> Iterator[tuple]:
    fake = FakeTelegram()
    with HttpPeer(fake) as peer:
        yield fake, peer
        assert not peer.errors, peer.errors


def publisher(peer: HttpPeer, **overrides: object) -> TelegramPublisher:
    options = dict(
        token=BOT_TOKEN,
        channel_id=CHANNEL_ID,
        base_url=f"{peer.url}/bot",
        max_width=1280,
        timeout_seconds=2.0,
        max_retries=2,
        retry_backoff_seconds=0.01,
    )
    options.update(overrides)
    return TelegramPublisher(**options)  # type: ignore[arg-type]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """The publisher's own copy: a 2000x1000 JPEG."""
    path = tmp_path / "telegram_big.jpg"
    Image.new("RGB", (2000, 1000), (10, 120, 200)).save(path, "JPEG")
    return path


async def test_send_photo_posts_a_resized_copy_with_the_caption_to_the_channel(
    telegram: tuple, photo: Path
) -> None:
    fake, peer = telegram
    result = await publisher(peer).publish(str(photo), "Blue hour #sky", {"image_name": "big.jpg"})
    assert result.success and result.platform == "telegram" and result.error is None
    assert result.post_id == "100"
    assert len(fake.sent) == 1
    sent = fake.sent[0]
    assert (sent.chat_id, sent.caption) == (CHANNEL_ID, "Blue hour #sky")
    assert sent.size == (1280, 640)
    assert Image.open(photo).size == (1280, 640)  # its own copy was resized, nothing else


async def test_a_429_with_retry_after_then_success_posts_once(telegram: tuple, photo: Path) -> None:
    fake, peer = telegram
    peer.inject(SEND, error(429, "Too Many Requests: retry after 0", retry_after=0))
    result = await publisher(peer).publish(str(photo), "caption")
    assert result.success
    assert peer.paths().count(SEND) == 2 and len(fake.sent) == 1


async def test_a_5xx_then_success_is_retried(telegram: tuple, photo: Path) -> None:
    fake, peer = telegram
    peer.inject(SEND, error(502, "Bad Gateway"), Reply.text("<html>oops</html>", status=500))
    result = await publisher(peer).publish(str(photo), "caption")
    assert result.success and len(fake.sent) == 1
    assert peer.paths().count(SEND) == 3


async def test_persistent_5xx_is_a_failed_result_after_bounded_retries(telegram: tuple, photo: Path) -> None:
    fake, peer = telegram
    peer.inject(SEND, *[error(500, "Internal Server Error")] * 5)
    result = await publisher(peer, max_retries=1).publish(str(photo), "caption")
    assert not result.success and "Internal Server Error" in (result.error or "")
    assert peer.paths().count(SEND) == 2 and fake.sent == []


async def test_a_timeout_is_a_failed_result_and_is_not_retried(telegram: tuple, photo: Path) -> None:
    _, peer = telegram
    peer.inject(SEND, Reply.json({"ok": True}, delay=1.5))
    result = await publisher(peer, timeout_seconds=0.3).publish(str(photo), "caption")
    # PTB's read timeout, or on a loaded machine the publisher's own overall deadline (2x) first: both fail
    # the post without a retry.
    error = result.error or ""
    assert not result.success and ("TimedOut" in error or "timed out after" in error)
    assert peer.paths().count(SEND) == 1


async def test_a_malformed_response_is_a_failed_result(telegram: tuple, photo: Path) -> None:
    _, peer = telegram
    peer.inject(SEND, Reply.text("this is not json", status=200))
    result = await publisher(peer).publish(str(photo), "caption")
    assert not result.success and result.error


async def test_a_bad_request_is_not_retried(telegram: tuple, photo: Path) -> None:
    _, peer = telegram
    result = await publisher(peer, channel_id="").publish(str(photo), "caption")
    assert not result.success and "chat_id is empty" in (result.error or "").lower()
    assert peer.paths().count(SEND) == 1


async def test_a_rejected_token_fails_without_showing_the_token(telegram: tuple, photo: Path) -> None:
    _, peer = telegram
    other = "987654321:AAAnotherFakeTokenThatTheServerRejects"
    result = await publisher(peer, token=other).publish(str(photo), "caption")
    assert not result.success
    assert other not in (result.error or "") and "987654321" not in (result.error or "")


async def test_an_unreachable_server_is_a_failed_result(photo: Path) -> None:
    pub = TelegramPublisher(
        BOT_TOKEN, CHANNEL_ID, base_url="http://127.0.0.1:9/bot", timeout_seconds=1.0, max_retries=0
    )
    result = await pub.publish(str(photo), "caption")
    assert not result.success and result.error


async def test_the_token_never_reaches_the_logs_even_at_debug(telegram: tuple, photo: Path) -> None:
    _, peer = telegram
    peer.inject(SEND, error(502, "Bad Gateway"))
    stream = io.StringIO()
    setup_logging(logging.DEBUG, stream=stream)
    try:
        result = await publisher(peer).publish(str(photo), "caption")
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_publisher_v2", False)]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
    output = stream.getvalue()
    assert result.success
    assert "telegram_retry" in output  # something was logged, so the check below means something
    assert BOT_TOKEN not in output and BOT_TOKEN.split(":")[1] not in output
