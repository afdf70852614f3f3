"""The composition root: turn a config into storage, AI service, publishers and an orchestrator.

The CLI and the web app build their services here, so both run the same code on the same configuration.
Production adapters are imported only when the config selects them (they need optional extras).
"""

from __future__ import annotations

from typing import List

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.core.workflow import WorkflowOrchestrator
from publisher_v2.domain.errors import ConfigurationError
from publisher_v2.ledger import open_ledger
from publisher_v2.services.ai.rate_limit import AsyncRateLimiter
from publisher_v2.services.ai.service import AIService
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.services.storage.base import Storage


def _missing_extra(extra: str, exc: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"{exc.name or extra} is not installed: pip install 'publisher_v2[{extra}]' ({exc})"
    )


def build_storage(config: ApplicationConfig) -> Storage:
    if config.storage.backend == "dropbox":
        try:
            from publisher_v2.services.storage.dropbox import DropboxStorage
        except ImportError as exc:
            raise _missing_extra("dropbox", exc) from None
        return DropboxStorage.from_config(config)
    from publisher_v2.services.storage.local import LocalStorage

    assert config.local.image_folder is not None  # checked by the loader
    return LocalStorage(
        config.local.image_folder, archive=config.local.archive, hash_cache_path=config.state.ledger_path
    )


def build_ai_service(config: ApplicationConfig) -> AIService:
    if config.ai.backend == "openai":
        try:
            from publisher_v2.services.ai.openai_adapter import CaptionGeneratorOpenAI, VisionAnalyzerOpenAI
        except ImportError as exc:
            raise _missing_extra("openai", exc) from None
        return AIService(
            VisionAnalyzerOpenAI.from_config(config),
            CaptionGeneratorOpenAI.from_config(config),
            sd_caption_enabled=config.openai.sd_caption_enabled,
            rate_limiter=AsyncRateLimiter(config.openai.rate_limit_per_minute),
        )
    from publisher_v2.services.ai.offline import OfflineVisionAnalyzer, TemplateCaptionGenerator

    return AIService(
        OfflineVisionAnalyzer(),
        TemplateCaptionGenerator(),
        sd_caption_enabled=config.openai.sd_caption_enabled,
    )


def build_publishers(config: ApplicationConfig) -> List[Publisher]:
    platforms = config.enabled_platforms()
    if config.publishing.backend == "outbox":
        from publisher_v2.services.publishers.outbox import outbox_publisher

        return [outbox_publisher(name, config.publishing.outbox_folder, config) for name in platforms]
    publishers: List[Publisher] = []
    for name in platforms:
        try:
            if name == "telegram":
                from publisher_v2.services.publishers.telegram import TelegramPublisher as cls
            elif name == "email":
                from publisher_v2.services.publishers.email import EmailPublisher as cls  # type: ignore[assignment]
            else:
                from publisher_v2.services.publishers.instagram import InstagramPublisher as cls  # type: ignore[assignment]
        except ImportError as exc:
            raise _missing_extra(name, exc) from None
        publishers.append(cls.from_config(config))
    return publishers


def build_orchestrator(config: ApplicationConfig) -> WorkflowOrchestrator:
    storage = build_storage(config)
    return WorkflowOrchestrator(
        config,
        storage,
        build_ai_service(config),
        build_publishers(config),
        ledger=open_ledger(config),
    )
