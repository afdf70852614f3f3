"""TelegramPublisher: `sendPhoto` to a channel through python-telegram-bot's `Bot`.

The token sits in every Bot API URL path (`/bot<token>/sendPhoto`), so nothing here logs a URL, every error
text goes through `sanitize`, and `setup_logging` holds the `httpx` and `telegram` loggers at WARNING. A 429
(RetryAfter) or a 5xx / connection failure is retried a bounded number of times; a timeout is not, because the
photo may already be posted and a second try would post it twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, Optional, Tuple

from telegram import Bot
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.domain.errors import ConfigurationError
from publisher_v2.domain.models import PublishResult
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.utils.images import resize_copy
from publisher_v2.utils.logging import log_json, sanitize

logger = logging.getLogger("publisher_v2.publishers.telegram")

#: Telegram's limit for a photo caption.
CAPTION_LIMIT = 1024
#: Longest wait honoured from a 429's retry_after before giving up.
MAX_RETRY_AFTER_SECONDS = 30.0


def _retry_after_seconds(exc: RetryAfter) -> float:
    value = exc.retry_after
    return float(value.total_seconds() if hasattr(value, "total_seconds") else value)


class TelegramPublisher(Publisher):
    """Posts the image (its own copy, resized to `max_width`) with the caption to TELEGRAM_CHANNEL_ID."""

    platform_name = "telegram"

    def __init__(
        self,
        token: str,
        channel_id: str,
        base_url: Optional[str] = None,
        max_width: int = 1280,
        timeout_seconds: float = 60.0,
        max_retries: int = 2,
        retry_backoff_seconds: float = 1.0,
    ) -> None:
        self._token = token
        self.channel_id = channel_id
        self.base_url = base_url
        self.max_width = max_width
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries
        self.retry_backoff_seconds = retry_backoff_seconds

    @classmethod
    def from_config(cls, config: ApplicationConfig) -> TelegramPublisher:
        token, channel = config.secrets.TELEGRAM_BOT_TOKEN, config.secrets.TELEGRAM_CHANNEL_ID
        if token is None or not channel:
            raise ConfigurationError(
                "[Content] telegram = true needs the environment variables "
                "TELEGRAM_BOT_TOKEN and TELEGRAM_CHANNEL_ID"
            )
        cfg = config.telegram
        return cls(
            token=token.get_secret_value(),
            channel_id=channel,
            base_url=cfg.base_url,
            max_width=cfg.max_width,
            timeout_seconds=config.publishing.timeout_seconds,
            max_retries=cfg.max_retries,
            retry_backoff_seconds=cfg.retry_backoff_seconds,
        )

    def _bot(self) -> Tuple[Bot, HTTPXRequest]:
        timeout = self.timeout_seconds
        request = HTTPXRequest(
            connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout, pool_timeout=timeout
        )
        options: Dict[str, Any] = {"request": request, "get_updates_request": request}
        if self.base_url:
            # "http://host/bot" gets the token appended; "{token}" in it is substituted (PTB >= 21.11).
            options["base_url"] = self.base_url
        return Bot(self._token, **options), request

    async def publish(
        self, image_path: str, caption: str, context: Optional[Dict[str, Any]] = None
    ) -> PublishResult:
        try:
            return await asyncio.wait_for(
                self._publish(image_path, caption), timeout=self.timeout_seconds * 2
            )
        except asyncio.TimeoutError:
            return self._failed(f"timed out after {self.timeout_seconds * 2:.0f}s")
        except TelegramError as exc:
            return self._failed(f"{type(exc).__name__}: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - a publisher reports, never raises
            return self._failed(f"{type(exc).__name__}: {exc}")

    def _failed(self, error: str) -> PublishResult:
        return PublishResult(success=False, platform=self.platform_name, error=sanitize(error))

    async def _publish(self, image_path: str, caption: str) -> PublishResult:
        path = await asyncio.to_thread(resize_copy, image_path, self.max_width)
        # No `async with bot` (a getMe round trip outside the retry loop): sendPhoto itself proves the
        # token, and the request object is shut down here so its connections never outlive the call.
        bot, request = self._bot()
        await request.initialize()
        try:
            message = await self._send_with_retries(bot, path, caption)
        finally:
            await request.shutdown()
        return PublishResult(success=True, platform=self.platform_name, post_id=str(message.message_id))

    async def _send_with_retries(self, bot: Bot, path: str, caption: str) -> Any:
        attempt = 0
        while True:
            try:
                with open(path, "rb") as photo:
                    return await bot.send_photo(
                        chat_id=self.channel_id, photo=photo, caption=caption[:CAPTION_LIMIT] or None
                    )
            except (TimedOut, BadRequest, Forbidden, InvalidToken):
                raise  # a timeout may have posted; the others will not get better by trying again
            except (RetryAfter, NetworkError) as exc:
                if attempt >= self.max_retries:
                    raise
                if isinstance(exc, RetryAfter):
                    delay = _retry_after_seconds(exc)
                    if delay > MAX_RETRY_AFTER_SECONDS:
                        raise
                else:
                    delay = self.retry_backoff_seconds * (2**attempt)
                attempt += 1
                log_json(
                    logger,
                    logging.WARNING,
                    "telegram_retry",
                    attempt=attempt,
                    delay_seconds=delay,
                    error=sanitize(f"{type(exc).__name__}: {exc.message}"),
                )
                await asyncio.sleep(delay)
