"""InstagramPublisher: the Instagram Graph API content-publishing flow over httpx.

Three steps: `POST /{ig-user-id}/media` (image_url, caption) creates a container; `GET /{container}?fields=
status_code` is polled until FINISHED (ERROR/EXPIRED fail; bounded by poll_timeout_seconds); `POST
/{ig-user-id}/media_publish` (creation_id) publishes it. Meta downloads `image_url` itself, so this needs the
storage's public link (`context["temp_url"]` with `context["public_url"]` true); without one the result is a
failure that says so. The access token is read from INSTA_PASSWORD (the variable name product.md fixes) and
sent in the Authorization header, never in a URL, so no HTTP log line can carry it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, Optional

import httpx

from publisher_v2.config.schema import ApplicationConfig, InstagramConfig
from publisher_v2.domain.errors import ConfigurationError, PublishingError
from publisher_v2.domain.models import PublishResult
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.utils.logging import log_json, sanitize

logger = logging.getLogger("publisher_v2.publishers.instagram")

#: Graph error codes that mean "slow down / try again" (application, user and page rate limits).
_RATE_LIMIT_CODES = frozenset({4, 17, 32, 613})
_FAILED_STATUSES = frozenset({"ERROR", "EXPIRED"})


def _graph_error(response: httpx.Response) -> Dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _is_transient(response: httpx.Response) -> bool:
    if response.status_code == 429 or response.status_code >= 500:
        return True
    error = _graph_error(response)
    return bool(error.get("is_transient")) or error.get("code") in _RATE_LIMIT_CODES


class InstagramPublisher(Publisher):
    """Publishes one photo to the Instagram professional account `user_id`."""

    platform_name = "instagram"

    def __init__(self, cfg: InstagramConfig, access_token: str, timeout_seconds: float = 60.0) -> None:
        self.cfg = cfg
        self._token = access_token
        self.timeout_seconds = timeout_seconds

    @classmethod
    def from_config(cls, config: ApplicationConfig) -> InstagramPublisher:
        token = config.secrets.INSTA_PASSWORD
        if token is None:
            raise ConfigurationError(
                "[Content] instagram = true needs the environment variable INSTA_PASSWORD "
                "(the Graph API access token)"
            )
        return cls(
            config.instagram, token.get_secret_value(), timeout_seconds=config.publishing.timeout_seconds
        )

    def _failed(self, error: str) -> PublishResult:
        return PublishResult(success=False, platform=self.platform_name, error=sanitize(error))

    async def publish(
        self, image_path: str, caption: str, context: Optional[Dict[str, Any]] = None
    ) -> PublishResult:
        context = context or {}
        image_url = context.get("temp_url")
        if not context.get("public_url") or not image_url:
            return self._failed(
                "Instagram needs a public image URL (Meta downloads the image itself); "
                "the configured storage has no public links"
            )
        # The overall bound: every request's own timeout, plus the status poll's window.
        budget = self.timeout_seconds * 3 + self.cfg.poll_timeout_seconds
        try:
            media_id = await asyncio.wait_for(self._publish(str(image_url), caption), timeout=budget)
        except asyncio.TimeoutError:
            return self._failed(f"timed out after {budget:.0f}s")
        except PublishingError as exc:
            return self._failed(str(exc))
        except httpx.HTTPError as exc:
            return self._failed(f"{type(exc).__name__}: {exc}")
        return PublishResult(success=True, platform=self.platform_name, post_id=media_id)

    async def _publish(self, image_url: str, caption: str) -> str:
        async with httpx.AsyncClient(
            base_url=self.cfg.graph_base_url.rstrip("/") + "/",
            timeout=self.timeout_seconds,
            headers={"Authorization": f"Bearer {self._token}"},
        ) as client:
            created = await self._request(
                client,
                "create container",
                "POST",
                f"{self.cfg.user_id}/media",
                data={"image_url": image_url, "caption": caption},
            )
            container = str(created.get("id") or "")
            if not container:
                raise PublishingError(f"Instagram create container returned no id: {str(created)[:200]}")
            await self._wait_until_finished(client, container)
            published = await self._request(
                client,
                "publish",
                "POST",
                f"{self.cfg.user_id}/media_publish",
                data={"creation_id": container},
            )
            media_id = str(published.get("id") or "")
            if not media_id:
                raise PublishingError(f"Instagram publish returned no media id: {str(published)[:200]}")
            log_json(logger, logging.INFO, "instagram_published", container_id=container, media_id=media_id)
            return media_id

    async def _wait_until_finished(self, client: httpx.AsyncClient, container: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.poll_timeout_seconds
        while True:
            body = await self._request(
                client, "status poll", "GET", container, params={"fields": "status_code,status"}
            )
            status = str(body.get("status_code") or "").upper()
            if status in ("FINISHED", "PUBLISHED"):
                return
            if status in _FAILED_STATUSES:
                detail = body.get("status") or status
                raise PublishingError(f"Instagram container {container} failed: {detail}")
            if loop.time() + self.cfg.poll_interval_seconds > deadline:
                raise PublishingError(
                    f"Instagram container {container} not ready after {self.cfg.poll_timeout_seconds:.0f}s "
                    f"(last status {status or 'unknown'})"
                )
            await asyncio.sleep(self.cfg.poll_interval_seconds)

    async def _request(
        self, client: httpx.AsyncClient, step: str, method: str, url: str, **kwargs: Any
    ) -> Dict[str, Any]:
        """One Graph call; 429, 5xx, rate-limit codes and connection failures are retried (bounded)."""
        attempt = 0
        while True:
            try:
                response = await client.request(method, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt >= self.cfg.max_retries:
                    raise PublishingError(
                        sanitize(f"Instagram {step}: {type(exc).__name__}: {exc}")
                    ) from None
                error_text = f"{type(exc).__name__}: {exc}"
            except httpx.TimeoutException:
                raise PublishingError(f"Instagram {step} timed out after {self.timeout_seconds}s") from None
            else:
                if response.is_success:
                    try:
                        body = response.json()
                    except ValueError:
                        raise PublishingError(f"Instagram {step} returned a body that is not JSON") from None
                    if not isinstance(body, dict):
                        raise PublishingError(f"Instagram {step} returned unexpected JSON: {str(body)[:200]}")
                    return body
                error = _graph_error(response)
                error_text = f"HTTP {response.status_code}: {error.get('message') or response.text[:200]}"
                if error.get("code") is not None:
                    error_text += f" (code {error.get('code')})"
                if not _is_transient(response) or attempt >= self.cfg.max_retries:
                    raise PublishingError(sanitize(f"Instagram {step} failed: {error_text}"))
            delay = self.cfg.retry_backoff_seconds * (2**attempt)
            attempt += 1
            log_json(
                logger,
                logging.WARNING,
                "instagram_retry",
                step=step,
                attempt=attempt,
                delay_seconds=delay,
                error=sanitize(error_text),
            )
            await asyncio.sleep(delay)
