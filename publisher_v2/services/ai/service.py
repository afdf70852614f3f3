"""AIService: the one entry point to vision analysis and captioning, for the CLI workflow and the web app.

It owns what is common to every backend: the rate limit, the log events, turning unexpected errors into
AIServiceError, and the fallback from "caption + SD caption" to a plain caption. `analyze` and
`generate_caption` are telemetry stages (vision_analysis_ms, caption_generation_ms), so they stay plain
`async def` methods with these names.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable, Optional, TypeVar

from publisher_v2.domain.errors import AIServiceError
from publisher_v2.domain.models import CaptionResult, CaptionSpec, ImageAnalysis, ImageContent
from publisher_v2.services.ai.base import CaptionGenerator, VisionAnalyzer
from publisher_v2.services.ai.rate_limit import AsyncRateLimiter
from publisher_v2.utils.logging import log_json

logger = logging.getLogger("publisher_v2.ai")

T = TypeVar("T")


class AIService:
    """A vision analyser and a caption generator behind one rate limit."""

    def __init__(
        self,
        analyzer: VisionAnalyzer,
        captioner: CaptionGenerator,
        sd_caption_enabled: bool = True,
        rate_limiter: Optional[AsyncRateLimiter] = None,
    ) -> None:
        self.analyzer = analyzer
        self.captioner = captioner
        self.sd_caption_enabled = sd_caption_enabled
        self.rate_limiter = rate_limiter

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One model call under the rate limit; any other error becomes an AIServiceError naming `what`."""
        if self.rate_limiter is not None:
            await self.rate_limiter.acquire()
        try:
            return await call()
        except AIServiceError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backend bug or SDK error must surface as an expected failure
            raise AIServiceError(f"{what} failed: {type(exc).__name__}: {exc}") from exc

    async def analyze(self, image: ImageContent) -> ImageAnalysis:
        """Describe `image` (never logged: only its name, the model and the tag count are)."""
        model = getattr(self.analyzer, "model_version", "unknown")
        log_json(logger, logging.INFO, "vision_analysis_start", image_name=image.name, model=model)
        try:
            analysis = await self._call(
                f"Vision analysis of {image.name} ({model})", lambda: self.analyzer.analyze(image)
            )
        except AIServiceError as exc:
            log_json(
                logger,
                logging.ERROR,
                "vision_analysis_error",
                image_name=image.name,
                model=model,
                error=str(exc),
            )
            # Upstream's per-call event (its error types: the adapter's malformed-output error names "JSON").
            kind = "json_decode_error" if "JSON" in str(exc) else "openai_error"
            log_json(
                logger, logging.INFO, "vision_analysis", event="vision_analysis", model=model, ok=False, error_type=kind
            )
            raise
        log_json(
            logger,
            logging.INFO,
            "vision_analysis",
            event="vision_analysis",
            model=analysis.model_version,
            ok=True,
            error_type=None,
        )
        log_json(
            logger,
            logging.INFO,
            "vision_analysis_complete",
            image_name=image.name,
            model=analysis.model_version,
            tags_count=len(analysis.tags),
            nsfw=analysis.nsfw,
        )
        return analysis

    async def generate_caption(self, analysis: ImageAnalysis, spec: CaptionSpec) -> CaptionResult:
        """The caption, plus the SD caption in the same call when enabled; a plain caption if that fails."""
        model = getattr(self.captioner, "model_version", "unknown")
        what = f"Caption generation ({model})"
        try:
            result = await self._call(
                what, lambda: self.captioner.generate(analysis, spec, self.sd_caption_enabled)
            )
        except AIServiceError as exc:
            if not self.sd_caption_enabled:
                log_json(logger, logging.ERROR, "caption_generation_error", model=model, error=str(exc))
                raise
            log_json(logger, logging.WARNING, "caption_sd_fallback", model=model, error=str(exc))
            try:
                result = await self._call(what, lambda: self.captioner.generate(analysis, spec, False))
            except AIServiceError as again:
                log_json(logger, logging.ERROR, "caption_generation_error", model=model, error=str(again))
                raise
            result.fallback_used = True
        if not result.caption or not result.caption.strip():
            log_json(logger, logging.ERROR, "caption_generation_error", model=model, error="empty caption")
            raise AIServiceError(f"{what} returned an empty caption")
        log_json(
            logger,
            logging.INFO,
            "caption_generated",
            model=result.model_version,
            length=len(result.caption),
            sd_caption=bool(result.sd_caption),
            fallback_used=result.fallback_used,
        )
        return result
