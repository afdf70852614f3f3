"""Protocols of the two AI roles: a vision analyser and a caption generator."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from publisher_v2.domain.models import CaptionResult, CaptionSpec, ImageAnalysis, ImageContent


@runtime_checkable
class VisionAnalyzer(Protocol):
    """Looks at an image and describes it."""

    model_version: str

    async def analyze(self, image: ImageContent) -> ImageAnalysis:
        """Describe `image`; raise AIServiceError on failure."""
        ...


@runtime_checkable
class CaptionGenerator(Protocol):
    """Writes a caption (and, when asked, a Stable-Diffusion caption) from an analysis."""

    model_version: str

    async def generate(
        self, analysis: ImageAnalysis, spec: CaptionSpec, with_sd_caption: bool
    ) -> CaptionResult:
        """Write the caption; raise AIServiceError on failure."""
        ...
