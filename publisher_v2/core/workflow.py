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
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.core.recovery import LedgerRecovery
from publisher_v2.core.run_options import _describe_failure, _RunOptions, _Selection
from publisher_v2.domain.captions import format_caption
from publisher_v2.domain.errors import StorageError
from publisher_v2.domain.models import (
    CaptionResult,
    CaptionSpec,
    ImageAnalysis,
    ImageContent,
    ImageEntry,
    PublishResult,
    WorkflowResult,
)
from publisher_v2.ledger import PostLedger, open_ledger
from publisher_v2.ledger.records import ClaimConflict, readable_time
from publisher_v2.ledger.schema import ARCHIVE_DONE, ARCHIVE_PENDING, POSTED
from publisher_v2.ledger.upstream import UPSTREAM_RESULTS, is_upstream_posted
from publisher_v2.services.ai.service import AIService
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.services.sidecar import SidecarWriter, read_approved_content
from publisher_v2.services.storage.base import Storage
from publisher_v2.services.storage.content import fetch_image_content
from publisher_v2.utils.images import InvalidImageError
from publisher_v2.utils.logging import bound_correlation_id, log_json
from publisher_v2.utils.staging import make_staging, remove_dead_staging

logger = logging.getLogger("publisher_v2.workflow")

NO_IMAGES = "No images found"
NO_NEW_IMAGES = "No new images to post"
#: Per-run folders in the temp dir with each publisher's copy of the image (`publisher_v2_<pid>-…`).
WORKDIR_PREFIX = "publisher_v2_"


class WorkflowOrchestrator(LedgerRecovery):
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
        self.ledger = ledger if ledger is not None else open_ledger(config)
        self.sidecar_writer = sidecar_writer or SidecarWriter(storage, config.captionfile)

    async def execute(
        self,
        select_filename: Optional[str] = None,
        dry_publish: bool = False,
        preview_mode: bool = False,
        reuse_sidecar: bool = False,
        allow_repost: bool = True,
        report_attention: bool = False,
    ) -> WorkflowResult:
        """Run the workflow once. Expected outcomes (nothing to post, unknown name) are results, not exceptions.

        `reuse_sidecar` publishes the analysis and captions recorded in the image's sidecar (what an admin saw
        in the web UI) instead of asking the AI again; without a matching sidecar the run analyses as usual.
        A selected image is claimed in the ledger like any other: another run's claim raises ImageBusy, and a
        posted image raises ImageAlreadyPosted unless `allow_repost` (the CLI's `--select` bypass).
        `report_attention` (the CLI) fills `result.attention` after a run that touched the ledger: one scan of the
        posted rows, which the web's publish route has no use for.
        """
        options = _RunOptions(
            select_filename,
            dry_publish or preview_mode,
            preview_mode,
            self.config.content.debug,
            reuse_sidecar=reuse_sidecar,
            allow_repost=allow_repost,
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
            except ClaimConflict as exc:  # expected: another run holds the image, or it was posted
                log_json(logger, logging.WARNING, "workflow_claim_refused", status=exc.status, error=str(exc))
                raise
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
            if report_attention and options.side_effects:
                result.attention = self._attention_after_run()
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
        if options.side_effects:
            remove_dead_staging(Path(tempfile.gettempdir()), WORKDIR_PREFIX)  # copies left by killed runs
        if options.select_filename is None and options.side_effects and not options.debug:
            await self._complete_interrupted()
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
                elif options.select_filename is not None:
                    error = self._posted_elsewhere(options.select_filename) or error
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

    def _posted_elsewhere(self, name: str) -> Optional[str]:
        """Why `--select NAME` finds no such image when the ledger knows it: posted, and archived (or moved)."""
        posted = [e for e in self.ledger.find(name) if e.status == POSTED and e.posted_at]
        if not posted:
            return None
        entry = max(posted, key=lambda e: e.posted_at or "")
        where = "archived" if entry.archive_state in (ARCHIVE_DONE, ARCHIVE_PENDING) else "no longer in the library"
        text = f"Image {name} was posted on {readable_time(entry.posted_at or '')} and is {where}"
        if entry.failed_platforms:
            text += f"; it failed on {', '.join(entry.failed_platforms)}: `publisher ledger retry {name}` sends those"
        return text

    async def _list_images(self) -> List[ImageEntry]:
        """Stage: the storage's listing (no image bytes are read)."""
        images = await self.storage.list_images()
        log_json(logger, logging.INFO, "images_listed", count=len(images))
        return images

    async def _select_image(self, images: Sequence[ImageEntry], options: _RunOptions) -> Optional[_Selection]:
        """Stage: pick an image that was never posted, and claim it in the ledger so no concurrent run takes it.

        Candidates are tried in random order; each needs only its content hash (listed, or cached by the
        storage), so a library of posted images costs no image reads. A `--select`ed image is claimed the same
        way; a posted one is taken again only with `allow_repost` (the CLI's bypass, said out loud).
        """
        if not images:
            return None
        if options.select_filename is not None:
            entry = next((e for e in images if e.name == options.select_filename), None)
            if entry is None or entry.name in options.skipped:
                return None
            digest = await self.storage.content_hash(entry)
            if not options.side_effects:
                return _Selection(entry, digest, claimed=False)
            reposting = self.ledger.claim_selected(digest, entry.name, allow_repost=options.allow_repost)
            if reposting:
                log_json(
                    logger, logging.WARNING, "select_reposting_posted_image", image_name=entry.name, content_hash=digest
                )
            log_json(logger, logging.INFO, "image_selected", image_name=entry.name, content_hash=digest)
            return _Selection(entry, digest, claimed=True, reposting=reposting)

        known = self.ledger.known_hashes()
        # Entries whose listed (or cached) hash is already known are out before any per-image work.
        candidates = [e for e in images if e.name not in options.skipped and e.content_hash not in known]
        random.shuffle(candidates)
        for entry in candidates:
            try:
                digest = await self.storage.content_hash(entry)
            except StorageError:
                if await self.storage.get_image(entry.name) is None:
                    continue  # archived by another run since our listing
                raise
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
        """Undo our claim after a failure; the ledger refuses when a platform is posted or unknown. A clean-up
        that fails too is its own event: the failure being handled stays the one reported (the verdict's)."""
        try:
            if selection.claimed and not self.ledger.release(selection.content_hash):
                self.ledger.abandon(selection.content_hash)
        except Exception as exc:  # noqa: BLE001 - reported here; the caller re-raises the first failure
            log_json(
                logger,
                logging.ERROR,
                "workflow_cleanup_failed",
                content_hash=selection.content_hash,
                error_type=type(exc).__name__,
                error=str(exc),
            )

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

        if selection.reposting:
            result.notices.append(f"{name} was already posted; --select posts it again")
        if approved is None:
            result.sidecar_written = await self._write_sidecar(image, analysis, captions)
        self.ledger.mark_publishing(selection.content_hash)
        result.publish_results = await self._publish_all(image, captions, analysis, selection.content_hash)
        result.success = result.any_success
        if not result.success:
            self.ledger.abandon(selection.content_hash)  # nothing was posted: the image may be tried again
            result.error = "Every publisher failed" if result.publish_results else "No publisher is enabled"
            return result
        result.archived = await self._record_and_archive(selection.content_hash, name)
        return result

    async def _record_and_archive(self, content_hash: str, name: str) -> bool:
        """Stage: record the post as finished in the ledger, then archive the image when configured."""
        if not self.ledger.finish_post(content_hash, name, archive=self.config.content.archive):
            log_json(logger, logging.ERROR, "ledger_post_unfinished", image_name=name, content_hash=content_hash)
            return False
        if not self.config.content.archive:
            return False
        archived = await self._archive_image(name)
        if archived:
            self.ledger.mark_archived(content_hash)
        return archived

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
        self,
        image: ImageContent,
        captions: CaptionResult,
        analysis: ImageAnalysis,
        content_hash: Optional[str] = None,
        publishers: Optional[Sequence[Publisher]] = None,
    ) -> Dict[str, PublishResult]:
        """Stage: every enabled publisher (or `publishers`) at once, each with its own copy of the image.

        With `content_hash`, each platform's outcome is recorded in the ledger as it happens.
        """
        targets = list(self.publishers if publishers is None else publishers)
        if not targets:
            return {}
        context: Dict[str, Any] = {
            "image_name": image.name,
            "analysis": analysis,
            "sd_caption": captions.sd_caption,
            "temp_url": image.temp_url,
            "public_url": image.public_url,
        }
        workdir = make_staging(Path(tempfile.gettempdir()), WORKDIR_PREFIX)
        try:
            copies = []
            for publisher in targets:
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
                        content_hash,
                    )
                    for publisher, copy in zip(targets, copies)
                )
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return {r.platform: r for r in outcomes}

    async def _publish_one(
        self,
        publisher: Publisher,
        image_path: str,
        caption: str,
        context: Dict[str, Any],
        content_hash: Optional[str] = None,
    ) -> PublishResult:
        """One platform; an exception (a publisher bug) becomes a failed result so the others still count.

        'sending' is in the ledger before the platform is called and the outcome right after it answers, so a
        run killed in between leaves an unknown outcome that is never re-sent by itself.
        """
        platform = publisher.platform_name
        if content_hash is not None and not self.ledger.begin_sending(content_hash, platform):
            return PublishResult(False, platform, error="Not sent: the ledger holds an outcome for this platform")
        try:
            result = await publisher.publish(image_path, caption, dict(context))
        except Exception as exc:  # noqa: BLE001 - a failing publisher must never sink the run
            result = PublishResult(False, platform, error=f"{type(exc).__name__}: {exc}")
        if content_hash is not None:
            self.ledger.record_outcome(content_hash, platform, result.success, result.post_id, result.error)
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
