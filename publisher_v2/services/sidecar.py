"""SidecarWriter: the caption sidecar (`<stem>.txt`) of an image, rendered and written through the storage.

One writer serves the CLI workflow and the web analyze endpoint, so both write the same file. `render` is
pure (the preview shows exactly what a run would write); `write` is the telemetry stage `sidecar_write_ms`.
Besides the documented phase-1/phase-2 keys, the sidecar records the caption (and, with extended metadata,
the description and mood) so the web page can answer from the sidecar without calling the model again.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

from publisher_v2.config.schema import CaptionFileConfig
from publisher_v2.domain.captions import (
    build_caption_sidecar,
    build_metadata_phase1,
    build_metadata_phase2,
    parse_sidecar_text,
)
from publisher_v2.domain.errors import StorageError
from publisher_v2.domain.models import CaptionResult, ImageAnalysis, ImageContent
from publisher_v2.services.storage.base import Storage
from publisher_v2.utils.logging import log_json

logger = logging.getLogger("publisher_v2.sidecar")


class SidecarWriter:
    """Renders and writes caption sidecars for one storage, as [CaptionFile] configures."""

    def __init__(self, storage: Storage, config: CaptionFileConfig) -> None:
        self.storage = storage
        self.config = config

    def metadata(
        self,
        image: ImageContent,
        analysis: ImageAnalysis,
        captions: CaptionResult,
        file_metadata: Optional[Dict[str, str]] = None,
    ) -> Dict[str, Any]:
        """The `# key: value` part: phase 1 always, phase 2 only with extended metadata enabled."""
        ids = file_metadata or {}
        meta: Dict[str, Any] = build_metadata_phase1(
            image_file=image.name,
            sha256=image.sha256,
            model_version=captions.model_version,
            dropbox_file_id=ids.get("id"),
            dropbox_rev=ids.get("rev"),
            artist_alias=self.config.artist_alias,
        )
        meta["caption"] = captions.caption
        if self.config.extended_metadata_enabled:
            meta["description"] = analysis.description
            meta["mood"] = analysis.mood
            meta.update(build_metadata_phase2(analysis))
        return {key: value for key, value in meta.items() if value not in (None, "")}

    def render(
        self,
        image: ImageContent,
        analysis: ImageAnalysis,
        captions: CaptionResult,
        file_metadata: Optional[Dict[str, str]] = None,
    ) -> str:
        """The sidecar text for `image` (no I/O)."""
        return build_caption_sidecar(captions.sd_caption or "", self.metadata(image, analysis, captions, file_metadata))

    async def write(self, image: ImageContent, analysis: ImageAnalysis, captions: CaptionResult) -> str:
        """Write the sidecar beside `image` in the storage and return its text; StorageError on failure."""
        try:
            file_metadata = await self.storage.get_file_metadata(image.name)
            text = self.render(image, analysis, captions, file_metadata)
            await self.storage.write_sidecar_text(image.name, text)
        except Exception as exc:
            log_json(logger, logging.ERROR, "sidecar_upload_error", image_name=image.name, error=str(exc))
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"Cannot write the sidecar of {image.name}: {type(exc).__name__}: {exc}") from exc
        log_json(
            logger,
            logging.INFO,
            "sidecar_upload_complete",
            image_name=image.name,
            extended_metadata=self.config.extended_metadata_enabled,
            size=len(text),
        )
        return text

    async def try_write(self, image: ImageContent, analysis: ImageAnalysis, captions: CaptionResult) -> bool:
        """Write the sidecar when [CaptionFile] is on and there is an SD caption; False when skipped or failed
        (a failed write is logged by `write`; callers go on without a sidecar)."""
        if not self.config.enabled or not captions.sd_caption:
            return False
        try:
            await self.write(image, analysis, captions)
        except StorageError:
            return False
        return True


def _as_text(value: Any) -> Optional[str]:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text or None


def _as_list(value: Any) -> List[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v not in (None, "")]
    if isinstance(value, str) and value.strip():
        return [part.strip() for part in value.split(",") if part.strip()]
    return []


def content_from_sidecar(sd_caption: str, metadata: Optional[Dict[str, Any]]) -> Tuple[ImageAnalysis, CaptionResult]:
    """Rebuild what a sidecar records (analysis and captions), e.g. to publish exactly what an admin saw.

    Older or hand-written sidecars may lack `caption`, `description` or `mood`: the SD caption stands in.
    """
    meta: Dict[str, Any] = metadata or {}
    moderation = _as_list(meta.get("moderation"))
    analysis = ImageAnalysis(
        description=_as_text(meta.get("description")) or _as_text(meta.get("subject")) or sd_caption,
        mood=_as_text(meta.get("mood")) or "",
        tags=_as_list(meta.get("tags")),
        nsfw=any(label.lower() in ("nsfw", "explicit") for label in moderation),
        safety_labels=moderation,
        subject=_as_text(meta.get("subject")),
        lighting=_as_text(meta.get("lighting")),
        camera=_as_text(meta.get("camera")),
        color_palette=_as_list(meta.get("color_palette")),
        aesthetic_terms=_as_list(meta.get("aesthetic_terms")),
        model_version=_as_text(meta.get("model_version")) or "sidecar",
    )
    captions = CaptionResult(
        caption=_as_text(meta.get("caption")) or sd_caption,
        sd_caption=sd_caption,
        model_version=_as_text(meta.get("model_version")) or "sidecar",
    )
    return analysis, captions


async def read_approved_content(storage: Storage, image: ImageContent) -> Optional[Tuple[ImageAnalysis, CaptionResult]]:
    """The analysis and captions recorded in `image`'s sidecar, if it has one written for these exact bytes.

    A sidecar whose `sha256` names other bytes (the file was replaced since) is ignored.
    """
    text = await storage.read_sidecar_text(image.name)
    if text is None:
        return None
    sd_caption, metadata = parse_sidecar_text(text)
    if not sd_caption:
        return None
    recorded = (metadata or {}).get("sha256")
    if recorded and recorded != image.sha256:
        log_json(logger, logging.WARNING, "sidecar_stale_ignored", image_name=image.name)
        return None
    return content_from_sidecar(sd_caption, metadata)
