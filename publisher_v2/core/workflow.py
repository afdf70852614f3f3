"""The CLI workflow: list → select → fetch → analyse → caption → sidecar → publish → archive → record.

Each stage is its own method with a name that says what it does, so `telemetry.yaml` can time it without any
timing code here. The orchestrator speaks only to protocols (storage, AI service, publishers, ledger).
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.core.exceptions import StorageError
from publisher_v2.core.models import (
    CaptionResult,
    CaptionSpec,
    ImageAnalysis,
    ImageContent,
    ImageEntry,
    PublishResult,
    WorkflowResult,
)
from publisher_v2.services.ai.service import AIService
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.services.sidecar import SidecarWriter, read_approved_content
from publisher_v2.services.storage.base import Storage
from publisher_v2.services.storage.content import fetch_image_content
from publisher_v2.utils.captions import format_caption
from publisher_v2.utils.images import InvalidImageError
from publisher_v2.utils.logging import bound_correlation_id, log_json
from publisher_v2.utils.state import PostLedger
from publisher_v2.utils.upstream_state import UPSTREAM_RESULTS, is_upstream_posted

logger = logging.getLogger("publisher_v2.workflow")

NO_IMAGES = "No images found"
NO_NEW_IMAGES = "No new images to post"


@dataclass
class _Selection:
    """The image a run works on, and whether this run holds its ledger claim."""

    entry: ImageEntry
    content_hash: str
    claimed: bool


@dataclass
class _RunOptions:
    select_filename: Optional[str]
    dry_publish: bool
    preview_mode: bool
    debug: bool
    reuse_sidecar: bool = False
    skipped: Set[str] = field(default_factory=set)
    image_name: Optional[str] = None  # the image being processed, for the failure description

    @property
    def side_effects(self) -> bool:
        """False when the run must leave the library, the platforms and the ledger untouched."""
        return not (self.dry_publish or self.preview_mode)


def _describe_failure(exc: BaseException, image_name: Optional[str]) -> None:
    """Say on the exception what the run's result would have said (image, not successful, not archived), so
    whoever reports the failed run (the telemetry's summary, a caller) need not guess."""
    for attr, value in (("image_name", image_name), ("success", False), ("archived", False)):
        try:
            if getattr(exc, attr, None) is None:
                setattr(exc, attr, value)
        except Exception:  # noqa: BLE001, S110 - an exception type that refuses attributes keeps its own
            pass


class WorkflowOrchestrator:
    """Runs one publishing workflow over the configured storage, AI service and publishers."""

    def __init__(
        self,
        config: ApplicationConfig,
        storage: Storage,
        ai_service: AIService,
        publishers: Sequence[Publisher],
        ledger: Optional[PostLedger] = None,
        sidecar_writer: Optional[SidecarWriter] = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.ai_service = ai_service
        self.publishers = [p for p in publishers if p.is_enabled()]
        self.ledger = (
            ledger if ledger is not None else PostLedger(config.state.ledger_path, config.state.claim_ttl_seconds)
        )
        self.sidecar_writer = sidecar_writer or SidecarWriter(storage, config.captionfile)

    async def execute(
        self,
        select_filename: Optional[str] = None,
        dry_publish: bool = False,
        preview_mode: bool = False,
        reuse_sidecar: bool = False,
    ) -> WorkflowResult:
        """Run the workflow once. Expected outcomes (nothing to post, unknown name) are results, not exceptions.

        `reuse_sidecar` publishes the analysis and captions recorded in the image's sidecar (what an admin saw
        in the web UI) instead of asking the AI again; without a matching sidecar the run analyses as usual.
        """
        options = _RunOptions(
            select_filename,
            dry_publish or preview_mode,
            preview_mode,
            self.config.content.debug,
            reuse_sidecar=reuse_sidecar,
        )
        with bound_correlation_id() as cid:
            log_json(
                logger,
                logging.INFO,
                "workflow_start",
                storage=self.storage.backend_name,
                select_filename=select_filename,
                dry_publish=options.dry_publish,
                preview_mode=preview_mode,
                debug=options.debug,
                platforms=[p.platform_name for p in self.publishers],
            )
            try:
                result = await self._run(options)
            except Exception as exc:
                log_json(
                    logger,
                    logging.ERROR,
                    "workflow_error",
                    image_name=options.image_name,
                    error_type=type(exc).__name__,
                    error=str(exc),
                )
                _describe_failure(exc, options.image_name)
                raise
            result.correlation_id = cid
            log_json(
                logger,
                logging.INFO if result.success else logging.WARNING,
                "workflow_complete" if result.success else "workflow_failed",
                image_name=result.image_name,
                success=result.success,
                archived=result.archived,
                error=result.error,
                platforms={k: v.success for k, v in result.publish_results.items()},
            )
            return result

    async def _run(self, options: _RunOptions) -> WorkflowResult:
        images = await self._list_images()
        if not images:
            await self._select_image(images, options)  # the selection stage still runs (and is timed): nothing
            log_json(logger, logging.WARNING, "workflow_no_images", reason=NO_IMAGES)
            return WorkflowResult(success=False, image_name=None, error=NO_IMAGES)
        while True:
            selection = await self._select_image(images, options)
            if selection is None:
                error = (
                    NO_NEW_IMAGES if options.select_filename is None else f"Image not found: {options.select_filename}"
                )
                if options.select_filename is not None and options.select_filename in options.skipped:
                    error = f"Image is not a readable image: {options.select_filename}"
                log_json(logger, logging.WARNING, "workflow_no_selection", reason=error)
                return WorkflowResult(success=False, image_name=None, error=error)
            try:
                image = await self._fetch_image(selection.entry)
            except InvalidImageError as exc:
                self._skip_corrupt(selection, options, exc)
                continue
            except BaseException:
                self._release(selection)
                raise
            if options.select_filename is None and self._posted_by_upstream(selection, image, options):
                continue
            options.image_name = selection.entry.name
            try:
                return await self._process(selection, image, options)
            except BaseException:
                self._release(selection)
                raise

    async def _list_images(self) -> List[ImageEntry]:
        """Stage: the storage's listing (no image bytes are read)."""
        images = await self.storage.list_images()
        log_json(logger, logging.INFO, "images_listed", count=len(images))
        return images

    async def _select_image(self, images: Sequence[ImageEntry], options: _RunOptions) -> Optional[_Selection]:
        """Stage: pick an image that was never posted, and claim it in the ledger so no concurrent run takes it.

        Candidates are tried in random order; each needs only its content hash (listed, or cached by the
        storage), so a library of posted images costs no image reads. `--select` bypasses dedup.
        """
        if not images:
            return None
        if options.select_filename is not None:
            entry = next((e for e in images if e.name == options.select_filename), None)
            if entry is None or entry.name in options.skipped:
                return None
            return _Selection(entry, await self.storage.content_hash(entry), claimed=False)

        known = self.ledger.known_hashes()
        # Entries whose listed (or cached) hash is already known are out before any per-image work.
        candidates = [e for e in images if e.name not in options.skipped and e.content_hash not in known]
        random.shuffle(candidates)
        for entry in candidates:
            digest = await self.storage.content_hash(entry)
            if digest in known:
                continue
            if not options.side_effects:
                return _Selection(entry, digest, claimed=False)
            if self.ledger.claim(digest, entry.name):
                log_json(logger, logging.INFO, "image_selected", image_name=entry.name, content_hash=digest)
                return _Selection(entry, digest, claimed=True)
            known.add(digest)  # a concurrent run claimed it between our read and our claim
        return None

    async def _fetch_image(self, entry: ImageEntry) -> ImageContent:
        """Download the chosen image, check that it decodes, and get a link a remote service could use."""
        return await fetch_image_content(self.storage, entry.name)

    def _skip_corrupt(self, selection: _Selection, options: _RunOptions, exc: InvalidImageError) -> None:
        options.skipped.add(selection.entry.name)
        log_json(logger, logging.WARNING, "image_skipped_corrupt", image_name=selection.entry.name, error=str(exc))
        if selection.claimed:
            self.ledger.mark_rejected(selection.content_hash, selection.entry.name, str(exc))

    def _posted_by_upstream(self, selection: _Selection, image: ImageContent, options: _RunOptions) -> bool:
        """An image upstream posted whose hash the import could not map (over 4 MiB): record it, skip it."""
        if not is_upstream_posted(self.ledger, image.sha256):
            return False
        options.skipped.add(selection.entry.name)
        if selection.claimed:
            self.ledger.record_post(selection.content_hash, selection.entry.name, dict(UPSTREAM_RESULTS))
        log_json(logger, logging.INFO, "image_skipped_posted_by_upstream", image_name=selection.entry.name)
        return True

    def _release(self, selection: _Selection) -> None:
        if selection.claimed:
            self.ledger.release(selection.content_hash)

    async def _process(self, selection: _Selection, image: ImageContent, options: _RunOptions) -> WorkflowResult:
        name = selection.entry.name
        approved = await self._load_approved_content(image) if options.reuse_sidecar else None
        if approved is not None:
            analysis, captions = approved
        else:
            analysis = await self._analyze_image(image)
            captions = await self._generate_caption(analysis)
        result = WorkflowResult(
            success=False,
            image_name=name,
            caption=captions.caption,
            sd_caption=captions.sd_caption,
            analysis=analysis,
        )
        if options.preview_mode:
            result.success = True
            result.preview = self._preview(image, analysis, captions)
            return result
        if options.dry_publish:
            result.success = True
            return result
        if options.debug:
            result.publish_results = {
                p.platform_name: PublishResult(True, p.platform_name, post_id="debug-simulated")
                for p in self.publishers
            }
            result.success = True
            self._release(selection)
            log_json(logger, logging.INFO, "debug_mode_simulated", image_name=name)
            return result

        if approved is None:
            result.sidecar_written = await self._write_sidecar(image, analysis, captions)
        if selection.claimed:
            self.ledger.mark_publishing(selection.content_hash)
        result.publish_results = await self._publish_all(image, captions, analysis)
        result.success = result.any_success
        if not result.success:
            if selection.claimed:
                self.ledger.abandon(selection.content_hash)  # nothing was posted: the image may be tried again
            result.error = "Every publisher failed" if result.publish_results else "No publisher is enabled"
            return result
        self.ledger.record_post(
            selection.content_hash,
            name,
            {
                k: {"success": v.success, "post_id": v.post_id, "error": v.error}
                for k, v in result.publish_results.items()
            },
        )
        if self.config.content.archive:
            result.archived = await self._archive_image(name)
        return result

    async def _load_approved_content(self, image: ImageContent) -> Optional[Tuple[ImageAnalysis, CaptionResult]]:
        """The analysis and captions already recorded in the image's sidecar, or None."""
        approved = await read_approved_content(self.storage, image)
        if approved is not None:
            log_json(logger, logging.INFO, "sidecar_captions_reused", image_name=image.name)
        return approved

    async def _analyze_image(self, image: ImageContent) -> ImageAnalysis:
        """Stage: vision analysis through the AI service."""
        return await self.ai_service.analyze(image)

    async def _generate_caption(self, analysis: ImageAnalysis) -> CaptionResult:
        """Stage: the caption, plus the SD caption in the same call when enabled."""
        spec = CaptionSpec(platform="generic", hashtags=self.config.content.hashtag_string)
        return await self.ai_service.generate_caption(analysis, spec)

    async def _write_sidecar(self, image: ImageContent, analysis: ImageAnalysis, captions: CaptionResult) -> bool:
        """Stage: the caption sidecar beside the image. A failure is logged and the run goes on."""
        return await self.sidecar_writer.try_write(image, analysis, captions)

    async def _publish_all(
        self, image: ImageContent, captions: CaptionResult, analysis: ImageAnalysis
    ) -> Dict[str, PublishResult]:
        """Stage: every enabled publisher at once, each with its own copy of the image to resize."""
        if not self.publishers:
            return {}
        context: Dict[str, Any] = {
            "image_name": image.name,
            "analysis": analysis,
            "sd_caption": captions.sd_caption,
            "temp_url": image.temp_url,
            "public_url": image.public_url,
        }
        workdir = Path(tempfile.mkdtemp(prefix="publisher_v2_"))
        try:
            copies = []
            for publisher in self.publishers:
                copy = workdir / f"{publisher.platform_name}_{Path(image.name).name}"
                copy.write_bytes(image.data)
                copies.append(copy)
            outcomes = await asyncio.gather(
                *(
                    self._publish_one(
                        publisher,
                        str(copy),
                        format_caption(publisher.platform_name, captions.caption),
                        context,
                    )
                    for publisher, copy in zip(self.publishers, copies)
                )
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return {r.platform: r for r in outcomes}

    async def _publish_one(
        self, publisher: Publisher, image_path: str, caption: str, context: Dict[str, Any]
    ) -> PublishResult:
        """One platform; an exception (a publisher bug) becomes a failed result so the others still count."""
        try:
            result = await publisher.publish(image_path, caption, dict(context))
        except Exception as exc:  # noqa: BLE001 - a failing publisher must never sink the run
            result = PublishResult(False, publisher.platform_name, error=f"{type(exc).__name__}: {exc}")
        log_json(
            logger,
            logging.INFO if result.success else logging.ERROR,
            "publish_result",
            platform=result.platform,
            success=result.success,
            post_id=result.post_id,
            error=result.error,
        )
        return result

    async def _archive_image(self, name: str) -> bool:
        """Stage: move the image and its sidecar to the archive. A failure is logged; the post stays recorded."""
        try:
            await self.storage.archive_image(name)
        except StorageError as exc:
            log_json(logger, logging.ERROR, "archive_error", image_name=name, error=str(exc))
            return False
        log_json(logger, logging.INFO, "image_archived", image_name=name)
        return True

    def _preview(self, image: ImageContent, analysis: ImageAnalysis, captions: CaptionResult) -> Dict[str, Any]:
        """What a real run would do, for humans: captions per platform, the sidecar, the email plan."""
        return {
            "image": image.name,
            "sha256": image.sha256,
            "analysis": analysis,
            "caption": captions.caption,
            "sd_caption": captions.sd_caption,
            "sidecar": self.sidecar_writer.render(image, analysis, captions) if captions.sd_caption else None,
            "platforms": {p.platform_name: format_caption(p.platform_name, captions.caption) for p in self.publishers},
            "email": {
                "caption_target": self.config.email.caption_target,
                "subject_mode": self.config.email.subject_mode,
                "confirmation_to_sender": self.config.email.confirmation_to_sender,
            }
            if any(p.platform_name == "email" for p in self.publishers)
            else None,
            "archive": self.config.content.archive,
        }
