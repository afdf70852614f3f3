"""WebImageService: what the web page can do with the library, on the very services the CLI uses.

Three actions, each a plain `async def` so the telemetry manifest can time it:
- `get_random_image`: a listing (stat only), one sidecar read, and a few indexed ledger lookups: it offers only
  images the ledger does not hold (as the CLI's selection), hashing a candidate once when no cache has its hash.
- `analyze_and_caption`: answers from an existing sidecar unless asked to refresh; otherwise downloads the
  image, analyses and captions it with the shared AIService and writes the sidecar with the shared
  SidecarWriter.
- `publish_image`: runs `WorkflowOrchestrator.execute(select_filename=...)`, so a web publish is a CLI
  `--select` run: same stages, same sidecar, same archive, the same claim in the same ledger, but without the
  re-post bypass. The ledger claim is what makes it safe across workers and CLI processes (409 for the
  loser, or for an image already posted); the in-process set is only a fast path in front of it.

Filenames from the URL are checked here before any storage call: a plain image file name or a 422.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import random
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple
from urllib.parse import quote

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.core.workflow import WorkflowOrchestrator
from publisher_v2.domain.captions import parse_sidecar_text
from publisher_v2.domain.errors import StorageError
from publisher_v2.domain.models import CaptionSpec, ImageContent, ImageEntry, PublishResult
from publisher_v2.ledger import PostLedger, open_ledger
from publisher_v2.ledger.records import ImageAlreadyPosted, ImageBusy, PlatformOutcome, request_owner
from publisher_v2.ledger.schema import FAILED, POSTED
from publisher_v2.services.ai.service import AIService
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.services.sidecar import SidecarWriter, content_from_sidecar
from publisher_v2.services.storage.base import IMAGE_EXTENSIONS, Storage
from publisher_v2.services.storage.content import fetch_image_content
from publisher_v2.utils.logging import log_json
from publisher_v2.web.errors import (
    AlreadyPosted,
    ImageNotFound,
    InvalidFilename,
    InvalidRequest,
    NoImages,
    PublishInProgress,
    PublishNotRecorded,
    ServiceUnavailable,
)
from publisher_v2.web.models import AnalyzeResponse, PlatformResult, PublishResponse, RandomImageResponse

logger = logging.getLogger("publisher_v2.web.service")

MAX_FILENAME_LENGTH = 255
#: Candidates `_choose` hashes and looks up in the ledger per query.
_RANDOM_BATCH = 4
_EXTRA_MEDIA_TYPES = {".heic": "image/heic", ".webp": "image/webp", ".bmp": "image/bmp", ".tif": "image/tiff"}


def check_filename(filename: str) -> str:
    """Return `filename` when it is a plain image file name; InvalidFilename (422) otherwise.

    Runs before any storage call, so a hostile name never reaches a path join, whatever the backend.
    """
    if not filename or len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidFilename("Invalid filename")
    if any(ch in filename for ch in ("/", "\\")) or any(ord(ch) < 32 or ord(ch) == 127 for ch in filename):
        raise InvalidFilename("Invalid filename: path separators and control characters are not allowed")
    if filename.startswith(".") or os.path.isabs(filename) or PureWindowsPath(filename).drive:
        raise InvalidFilename("Invalid filename: not a plain file name")
    if os.path.splitext(filename)[1].lower() not in IMAGE_EXTENSIONS:
        raise InvalidFilename("Invalid filename: not an image file")
    return filename


def image_route(filename: str) -> str:
    """This app's URL for the image bytes (the page's `temp_url` for a local library)."""
    return "/api/images/" + quote(filename, safe="") + "/file"


def media_type(filename: str) -> str:
    ext = os.path.splitext(filename)[1].lower()
    return mimetypes.guess_type(filename)[0] or _EXTRA_MEDIA_TYPES.get(ext, "application/octet-stream")


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text or None


@dataclass(frozen=True)
class ImageFile:
    """The bytes of one library image: a path on disk (streamed) or bytes from a remote storage."""

    filename: str
    media_type: str
    path: Optional[Path] = None
    data: Optional[bytes] = None


class WebImageService:
    """The web actions over one storage, AI service, publisher set and ledger (built like the CLI's)."""

    def __init__(
        self,
        config: ApplicationConfig,
        storage: Storage,
        ai_service: AIService,
        publishers: Sequence[Publisher],
        ledger: PostLedger,
        sidecar_writer: Optional[SidecarWriter] = None,
        url_for_image: Callable[[str], str] = image_route,
    ) -> None:
        self.config = config
        self.storage = storage
        self.ai_service = ai_service
        self.publishers = [p for p in publishers if p.is_enabled()]
        self.ledger = ledger
        self.sidecar_writer = sidecar_writer or SidecarWriter(storage, config.captionfile)
        self.url_for_image = url_for_image
        self._publishing: Set[str] = set()
        #: Hand-overs the ledger refused (it was away), retried at the next publish or random image.
        self._unreleased: List[Tuple[PostLedger, Dict[str, PublishResult]]] = []

    @classmethod
    def from_config(cls, config: ApplicationConfig) -> WebImageService:
        """Build the services exactly as the CLI's composition root does."""
        from publisher_v2.wiring import build_ai_service, build_publishers, build_storage

        storage = build_storage(config)
        return cls(
            config,
            storage,
            build_ai_service(config),
            build_publishers(config),
            open_ledger(config),
        )

    def close(self) -> None:
        """Release the ledger's and the storage's SQLite connections."""
        self.ledger.close()
        close = getattr(self.storage, "close", None)
        if callable(close):
            close()

    # -- shared steps ----------------------------------------------------------------------------------------

    async def _entry(self, filename: str) -> ImageEntry:
        entry = await self.storage.get_image(check_filename(filename))
        if entry is None:
            raise ImageNotFound("Image not found")
        return entry

    async def _read_sidecar(self, name: str) -> Tuple[Optional[str], Optional[Dict[str, Any]], bool]:
        """(sd_caption, metadata, present) of the image's sidecar; no sidecar is (None, None, False)."""
        text = await self.storage.read_sidecar_text(name)
        if text is None:
            return None, None, False
        sd_caption, metadata = parse_sidecar_text(text)
        return sd_caption, metadata, True

    async def _choose(self, entries: Sequence[ImageEntry]) -> ImageEntry:
        """A random image the ledger does not hold (posted, rejected, being published): the CLI's rule, so the
        page never offers an image whose Publish would be refused.

        Candidates come in random order, `_RANDOM_BATCH` at a time; a batch costs its content hashes (listed,
        cached by the storage, or hashed once) and ONE primary-key query, run off the event loop, so the cost
        does not grow with the ledger (300,000 imported upstream hashes cost what an empty ledger costs).
        """
        order = list(entries)
        random.shuffle(order)
        for start in range(0, len(order), _RANDOM_BATCH):
            hashed: List[Tuple[ImageEntry, str]] = []
            for entry in order[start : start + _RANDOM_BATCH]:
                try:
                    hashed.append((entry, await self.storage.content_hash(entry)))
                except StorageError:
                    continue  # archived or deleted by another process since the listing
            known = await asyncio.to_thread(self.ledger.known_among, [digest for _, digest in hashed])
            for entry, digest in hashed:
                if digest not in known:
                    return entry
        raise NoImages("No image left to offer: the ledger holds every library image as posted or in progress")

    async def _temp_url(self, name: str) -> str:
        if self.storage.has_public_links():
            return await self.storage.get_temporary_link(name)
        return self.url_for_image(name)

    # -- actions ---------------------------------------------------------------------------------------------

    async def get_random_image(self) -> RandomImageResponse:
        """A random library image with its sidecar's captions; no image bytes are read."""
        await self._retry_hand_overs()
        entries = await self.storage.list_images()
        if not entries:
            raise NoImages("No images found")
        entry = await self._choose(entries)
        sd_caption, metadata, present = await self._read_sidecar(entry.name)
        meta = metadata or {}
        log_json(logger, logging.DEBUG, "web_random_image_chosen", filename=entry.name, has_sidecar=present)
        return RandomImageResponse(
            filename=entry.name,
            temp_url=await self._temp_url(entry.name),
            sha256=_text(meta.get("sha256")),
            caption=_text(meta.get("caption")) or sd_caption,
            sd_caption=sd_caption,
            metadata=metadata,
            has_sidecar=present,
        )

    async def get_image_file(self, filename: str) -> ImageFile:
        """The bytes behind `temp_url`: a file inside the library folder, never anything outside it."""
        entry = await self._entry(filename)
        folder = getattr(self.storage, "folder", None)
        if isinstance(folder, Path):
            path = folder / entry.name
            # A symlink in the library that points elsewhere is not served.
            if path.resolve().parent != folder.resolve():
                raise ImageNotFound("Image not found")
            return ImageFile(entry.name, media_type(entry.name), path=path)
        data = await self.storage.download_image(entry.name)
        return ImageFile(entry.name, media_type(entry.name), data=data)

    async def analyze_and_caption(self, filename: str, force_refresh: bool = False) -> AnalyzeResponse:
        """The analysis and captions of `filename`: from its sidecar when there is one, else from the AI."""
        entry = await self._entry(filename)
        if not force_refresh:
            reused = await self._answer_from_sidecar(entry.name)
            if reused is not None:
                return reused
        log_json(
            logger,
            logging.INFO,
            "web_vision_analysis_start",
            filename=entry.name,
            image=entry.name,  # upstream's field name
            force_refresh=force_refresh,
        )
        image = await fetch_image_content(self.storage, entry.name)
        analysis = await self.ai_service.analyze(image)
        spec = CaptionSpec(platform="generic", hashtags=self.config.content.hashtag_string)
        captions = await self.ai_service.generate_caption(analysis, spec)
        written = await self._write_sidecar(image, analysis, captions)  # the route logs web_analyze_complete
        return AnalyzeResponse(
            filename=entry.name,
            description=analysis.description,
            mood=analysis.mood,
            tags=list(analysis.tags),
            nsfw=analysis.nsfw,
            caption=captions.caption,
            sd_caption=captions.sd_caption,
            sidecar_written=written,
            from_sidecar=False,
        )

    async def _answer_from_sidecar(self, name: str) -> Optional[AnalyzeResponse]:
        sd_caption, metadata, present = await self._read_sidecar(name)
        if not present or not sd_caption:
            return None
        log_json(logger, logging.INFO, "web_analyze_sidecar_reused", filename=name)
        analysis, captions = content_from_sidecar(sd_caption, metadata)
        return AnalyzeResponse(
            filename=name,
            description=analysis.description,
            mood=analysis.mood,
            tags=list(analysis.tags),
            nsfw=analysis.nsfw,
            caption=captions.caption,
            sd_caption=sd_caption,
            sidecar_written=False,
            from_sidecar=True,
        )

    async def _write_sidecar(self, image: ImageContent, analysis: Any, captions: Any) -> bool:
        """Write the sidecar like the workflow does (never in debug mode)."""
        if self.config.content.debug:
            return False
        return await self.sidecar_writer.try_write(image, analysis, captions)

    def _select_publishers(self, platforms: Optional[List[str]]) -> List[Publisher]:
        if platforms is None:
            selected = list(self.publishers)
        else:
            enabled = {p.platform_name: p for p in self.publishers}
            unknown = sorted({name for name in platforms if name not in enabled})
            if unknown or not platforms:
                raise InvalidRequest(
                    f"Unknown or disabled platform(s): {', '.join(unknown) or '(none given)'};"
                    f" enabled: {', '.join(enabled) or '(none)'}"
                )
            selected = [p for p in self.publishers if p.platform_name in set(platforms)]
        if not selected:
            raise ServiceUnavailable("No publisher is enabled in the configuration")
        return selected

    async def publish_image(self, filename: str, platforms: Optional[List[str]] = None) -> PublishResponse:
        """Publish `filename` through the CLI workflow (a `--select` run) to all or some enabled platforms.

        The request's claims carry an owner of their own (`request_owner`), and whatever the request still holds
        when it ends is handed over (`PostLedger.hand_over`): nothing is left 'held by a live run' because the
        worker lives on. A failure after platforms were called answers with what each platform did.
        """
        await self._retry_hand_overs()
        entry = await self._entry(filename)
        publishers = self._select_publishers(platforms)
        if entry.name in self._publishing:
            raise PublishInProgress("This image is being published already")
        self._publishing.add(entry.name)
        ledger = self.ledger.with_owner(request_owner())
        answers: Dict[str, PublishResult] = {}
        try:
            log_json(
                logger,
                logging.INFO,
                "web_publish_start",
                filename=entry.name,
                platforms=[p.platform_name for p in publishers],
            )
            orchestrator = WorkflowOrchestrator(
                self.config,
                self.storage,
                self.ai_service,
                [_Answering(p, answers) for p in publishers],
                ledger=ledger,
                sidecar_writer=self.sidecar_writer,
            )
            result = await orchestrator.execute(select_filename=entry.name, reuse_sidecar=True, allow_repost=False)
        except ImageBusy as exc:  # another worker or CLI process holds it (or its post awaits the operator)
            raise PublishInProgress(str(exc)) from None
        except ImageAlreadyPosted as exc:
            raise AlreadyPosted(str(exc)) from None
        except Exception as exc:
            if answers:  # platforms were called: the answer must say what they did
                raise self._not_recorded(entry.name, answers, exc) from exc
            if isinstance(exc, StorageError):
                # Another process may have archived the image between the lookup and the read: that is a 404,
                # not a storage fault (the lookup raises ImageNotFound when the image is gone).
                await self._entry(filename)
            raise
        finally:
            self._publishing.discard(entry.name)
            await self._hand_over(ledger, answers)
        if result.image_name is None:
            # The workflow could not take the image after all (archived meanwhile, or unreadable).
            if result.error and "not a readable image" in result.error:
                raise InvalidFilename("The file is not a readable image")
            raise ImageNotFound("Image not found")
        return PublishResponse(
            filename=entry.name,
            results={
                name: PlatformResult(success=r.success, post_id=r.post_id, error=r.error)
                for name, r in result.publish_results.items()
            },
            archived=result.archived,
            any_success=result.any_success,
        )

    @staticmethod
    def _not_recorded(name: str, answers: Dict[str, PublishResult], exc: BaseException) -> PublishNotRecorded:
        posted = sorted(p for p, r in answers.items() if r.success)
        log_json(
            logger,
            logging.ERROR,
            "web_publish_not_recorded",
            filename=name,
            posted=posted,
            error_type=type(exc).__name__,
            error=str(exc),
        )
        said = f"posted to {', '.join(posted)}" if posted else "no platform posted"
        return PublishNotRecorded(
            f"The publish failed after the platforms answered ({said}); the post is left for"
            " `publisher ledger list` / `ledger retry`, which never send a posted platform again",
            name,
            {p: PlatformResult(success=r.success, post_id=r.post_id, error=r.error) for p, r in answers.items()},
        )

    async def _hand_over(self, ledger: PostLedger, answers: Dict[str, PublishResult]) -> None:
        """Hand over what the request still holds; when the ledger is away, remember to try again (the claim's
        per-request owner makes it expire by the TTL meanwhile, so other processes are never stuck on it)."""
        outcomes = {
            p: PlatformOutcome(p, POSTED if r.success else FAILED, r.post_id, r.error) for p, r in answers.items()
        }
        try:
            await asyncio.to_thread(ledger.hand_over, outcomes)
        except StorageError as exc:
            self._unreleased.append((ledger, answers))
            log_json(logger, logging.WARNING, "web_publish_hand_over_pending", owner=ledger.owner, error=str(exc))

    async def _retry_hand_overs(self) -> None:
        """Hand-overs the ledger refused earlier (it was away), tried again at the next request."""
        pending, self._unreleased = self._unreleased, []
        for ledger, answers in pending:
            await self._hand_over(ledger, answers)


class _Answering(Publisher):
    """A publisher whose answers the request keeps in memory: if the ledger cannot record them, the HTTP answer
    and the hand-over still can (a platform that raised stays unknown in the ledger: it may have posted)."""

    def __init__(self, inner: Publisher, answers: Dict[str, PublishResult]) -> None:
        self.inner = inner
        self.answers = answers
        self.platform_name = inner.platform_name

    def is_enabled(self) -> bool:
        return self.inner.is_enabled()

    async def publish(self, image_path: str, caption: str, context: Optional[Dict[str, Any]] = None) -> PublishResult:
        result = await self.inner.publish(image_path, caption, context)
        self.answers[self.platform_name] = result
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
