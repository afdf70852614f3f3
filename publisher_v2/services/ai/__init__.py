"""The AI roles (vision analysis, captions): the shared AIService, the offline defaults, the OpenAI adapter.

The OpenAI adapter needs the optional `openai` extra, so its names load lazily on first access: importing
this package never requires the SDK.
"""

from __future__ import annotations

import importlib
from typing import Any

from publisher_v2.services.ai.offline import OfflineVisionAnalyzer, TemplateCaptionGenerator
from publisher_v2.services.ai.rate_limit import AsyncRateLimiter
from publisher_v2.services.ai.service import AIService

_LAZY = {
    "VisionAnalyzerOpenAI": "publisher_v2.services.ai.openai_adapter",
    "CaptionGeneratorOpenAI": "publisher_v2.services.ai.openai_adapter",
}

__all__ = [
    "AIService",
    "AsyncRateLimiter",
    "CaptionGeneratorOpenAI",
    "OfflineVisionAnalyzer",
    "TemplateCaptionGenerator",
    "VisionAnalyzerOpenAI",
]


def __getattr__(name: str) -> Any:
    """Import the production adapter only when one of its names is asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
