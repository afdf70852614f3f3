"""DropboxStorage: the production image library, a Dropbox folder driven through the official `dropbox` SDK.

The SDK is blocking (requests), so every call runs in a worker thread (`asyncio.to_thread`). Listing follows
`files_list_folder_continue` until `has_more` is false and keeps Dropbox's own `content_hash`, so dedup never
downloads a candidate. The SDK's built-in retries are switched off: `_call` retries transient failures only
(5xx, 429, connection errors, timeouts) a bounded number of times with exponential backoff, and turns every
SDK error into a StorageError that names the Dropbox path. The SDK reads its host names from the environment
when it is imported (`DROPBOX_API_HOST`, `DROPBOX_API_CONTENT_HOST`): that is how tests point it at a
local peer.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import posixpath
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import dropbox
import requests
from dropbox import exceptions as dbx_exc
from dropbox import files as dbx_files

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.domain.errors import ConfigurationError, StorageError
from publisher_v2.domain.models import ImageEntry
from publisher_v2.services.storage.base import IMAGE_EXTENSIONS
from publisher_v2.utils.logging import log_json, sanitize

logger = logging.getLogger("publisher_v2.storage.dropbox")

T = TypeVar("T")

#: Longest wait between two attempts, whatever the backoff or a 429's Retry-After says.
MAX_BACKOFF_SECONDS = 30.0


class _NotFound(StorageError):
    """Dropbox said the path does not exist (a lookup error `not_found`): never retried."""


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _plain_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and bool(name)
        and name not in (".", "..")
        and name == name.strip()
        and not any(bad in name for bad in ("/", "\\", "\x00"))
    )


def _normalise_folder(folder: str) -> str:
    """'/Photos/inbox/' → '/Photos/inbox'; the Dropbox root is '' in API calls, never '/'."""
    folder = folder.strip().replace("\\", "/").rstrip("/")
    if folder and not folder.startswith("/"):
        folder = "/" + folder
    return folder


def _lookup_not_found(error: Any) -> bool:
    """True when an ApiError's union holds a LookupError `not_found` (under `path` or `from_lookup`)."""
    for kind in ("path", "from_lookup"):
        is_kind = getattr(error, f"is_{kind}", None)
        if is_kind is not None and is_kind():
            lookup = getattr(error, f"get_{kind}")()
            is_not_found = getattr(lookup, "is_not_found", None)
            return bool(is_not_found and is_not_found())
    return False


def _transient(exc: BaseException) -> bool:
    """5xx, 429 and network trouble are worth another try; TLS failures and every API answer are not."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    return isinstance(
        exc,
        (
            dbx_exc.InternalServerError,
            dbx_exc.RateLimitError,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
        ),
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, dbx_exc.ApiError):
        text = f"{exc.error}"
    elif isinstance(exc, dbx_exc.HttpError):
        text = f"HTTP {exc.status_code}: {str(exc.body)[:300]}"
    else:
        text = str(exc) or type(exc).__name__
    return sanitize(f"{type(exc).__name__}: {text}")


def _timestamp(moment: Optional[datetime]) -> float:
    if moment is None:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class DropboxStorage:
    """A Dropbox folder implementing Storage: images, `<stem>.txt` sidecars, an archive subfolder."""

    backend_name = "dropbox"

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        refresh_token: str,
        image_folder: str,
        archive: str = "archive",
        timeout_seconds: float = 60.0,
        max_retries: int = 3,
        retry_backoff_seconds: float = 1.0,
        ca_certs: Optional[str] = None,
    ) -> None:
        if not _plain_name(archive):
            raise StorageError(
                f"Dropbox archive must be a plain folder name inside the image folder, got {archive!r}"
            )
        self.folder = _normalise_folder(image_folder)
        self.archive_folder = f"{self.folder}/{archive}"
        self.max_retries = max_retries
        self.retry_backoff_seconds = retry_backoff_seconds
        # The SDK's own retry loops are off: `_call` owns retries, bounded and logged in one place.
        self._dbx = dropbox.Dropbox(
            oauth2_refresh_token=refresh_token,
            app_key=app_key,
            app_secret=app_secret,
            timeout=timeout_seconds,
            max_retries_on_error=0,
            max_retries_on_rate_limit=0,
            ca_certs=ca_certs,
            user_agent="publisher_v2",
        )

    @classmethod
    def from_config(cls, config: ApplicationConfig) -> DropboxStorage:
        """Build from [Dropbox] plus DROPBOX_APP_KEY / DROPBOX_APP_SECRET / DROPBOX_REFRESH_TOKEN."""
        secrets = config.secrets
        values = {}
        for name in ("DROPBOX_APP_KEY", "DROPBOX_APP_SECRET", "DROPBOX_REFRESH_TOKEN"):
            secret = getattr(secrets, name)
            if secret is None:
                raise ConfigurationError(f"[Storage] backend = dropbox needs the environment variable {name}")
            values[name] = secret.get_secret_value()
        cfg = config.dropbox
        return cls(
            app_key=values["DROPBOX_APP_KEY"],
            app_secret=values["DROPBOX_APP_SECRET"],
            refresh_token=values["DROPBOX_REFRESH_TOKEN"],
            image_folder=cfg.image_folder,
            archive=cfg.archive,
            timeout_seconds=cfg.timeout_seconds,
            max_retries=cfg.max_retries,
            retry_backoff_seconds=cfg.retry_backoff_seconds,
        )

    def archive_view(self) -> DropboxStorage:
        """The archive folder as a library of its own, on the same client (`ledger retry` re-sends from it)."""
        view = copy.copy(self)
        view.folder = self.archive_folder
        view.archive_folder = f"{self.archive_folder}/{self.archive_folder.rsplit('/', 1)[-1]}"
        return view

    # -- paths ---------------------------------------------------------------------------------------------

    def _image_path(self, name: str) -> str:
        """The Dropbox path of image `name`, after checking it is a plain image file name."""
        if not _plain_name(name) or not _is_image_name(name):
            raise StorageError(f"Not an image name in Dropbox folder {self.folder or '/'}: {name!r}")
        return f"{self.folder}/{name}"

    @staticmethod
    def _sidecar_name(name: str) -> str:
        return posixpath.splitext(name)[0] + ".txt"

    # -- the one place SDK calls happen --------------------------------------------------------------------

    async def _call(self, operation: str, path: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking SDK call in a thread; retry transient failures; map errors to StorageError(path)."""
        attempt = 0
        while True:
            try:
                return await asyncio.to_thread(fn, *args, **kwargs)
            except dbx_exc.ApiError as exc:
                error_cls = _NotFound if _lookup_not_found(exc.error) else StorageError
                raise error_cls(f"Dropbox {operation} failed for {path}: {_describe(exc)}") from None
            except (dbx_exc.DropboxException, requests.exceptions.RequestException) as exc:
                if not _transient(exc) or attempt >= self.max_retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise StorageError(
                        f"Dropbox {operation} failed for {path}{tries}: {_describe(exc)}"
                    ) from None
                delay = self.retry_backoff_seconds * (2**attempt)
                if isinstance(exc, dbx_exc.RateLimitError) and exc.backoff:
                    delay = max(delay, float(exc.backoff))
                delay = min(delay, MAX_BACKOFF_SECONDS)
                attempt += 1
                log_json(
                    logger,
                    logging.WARNING,
                    "dropbox_retry",
                    operation=operation,
                    path=path,
                    attempt=attempt,
                    delay_seconds=delay,
                    error=_describe(exc),
                )
                await asyncio.sleep(delay)

    # -- listing -------------------------------------------------------------------------------------------

    async def list_images(self) -> List[ImageEntry]:
        """Every image directly in the folder, sorted by name, with Dropbox's content hash (no bytes read)."""
        page = await self._call("list_folder", self.folder or "/", self._dbx.files_list_folder, self.folder)
        items = list(page.entries)
        pages = 1
        while page.has_more:
            page = await self._call(
                "list_folder_continue", self.folder or "/", self._dbx.files_list_folder_continue, page.cursor
            )
            items.extend(page.entries)
            pages += 1
        entries = [
            self._entry(item)
            for item in items
            if isinstance(item, dbx_files.FileMetadata)
            and _plain_name(item.name)
            and _is_image_name(item.name)
        ]
        entries.sort(key=lambda e: e.name)
        log_json(
            logger,
            logging.DEBUG,
            "storage_list_complete",
            folder=self.folder or "/",
            count=len(entries),
            pages=pages,
        )
        return entries

    @staticmethod
    def _entry(md: Any) -> ImageEntry:
        return ImageEntry(
            name=md.name,
            size=int(md.size),
            modified=_timestamp(md.server_modified),
            content_hash=md.content_hash,
        )

    async def _metadata(self, path: str) -> Optional[Any]:
        try:
            md = await self._call("get_metadata", path, self._dbx.files_get_metadata, path)
        except _NotFound:
            return None
        return md if isinstance(md, dbx_files.FileMetadata) else None

    async def get_image(self, name: str) -> Optional[ImageEntry]:
        md = await self._metadata(self._image_path(name))
        return None if md is None else self._entry(md)

    async def content_hash(self, entry: ImageEntry) -> str:
        """The listed hash (no I/O); only an entry built elsewhere costs one metadata call."""
        if entry.content_hash:
            return entry.content_hash
        path = self._image_path(entry.name)
        md = await self._metadata(path)
        if md is None or not md.content_hash:
            raise StorageError(f"Dropbox has no content hash for {path}")
        return str(md.content_hash)

    # -- reading -------------------------------------------------------------------------------------------

    def _download_sync(self, path: str) -> Tuple[Any, bytes]:
        md, response = self._dbx.files_download(path)
        try:
            return md, response.content
        finally:
            response.close()

    async def download_image(self, name: str) -> bytes:
        path = self._image_path(name)
        try:
            _, data = await self._call("download", path, self._download_sync, path)
        except _NotFound:
            raise StorageError(f"Image not found in Dropbox: {path}") from None
        return data

    async def get_temporary_link(self, name: str) -> str:
        """A 4-hour https link Dropbox serves itself: OpenAI and Instagram fetch the image from it."""
        path = self._image_path(name)
        result = await self._call("get_temporary_link", path, self._dbx.files_get_temporary_link, path)
        return str(result.link)

    def has_public_links(self) -> bool:
        return True

    async def get_file_metadata(self, name: str) -> Dict[str, str]:
        path = self._image_path(name)
        md = await self._metadata(path)
        if md is None:
            raise StorageError(f"Image not found in Dropbox: {path}")
        return {"id": str(md.id or ""), "rev": str(md.rev or "")}

    # -- sidecars ------------------------------------------------------------------------------------------

    async def read_sidecar_text(self, name: str) -> Optional[str]:
        self._image_path(name)
        path = f"{self.folder}/{self._sidecar_name(name)}"
        try:
            _, data = await self._call("download", path, self._download_sync, path)
        except _NotFound:
            return None
        return data.decode("utf-8", errors="replace")

    async def write_sidecar_text(self, name: str, text: str) -> None:
        """Upload `<stem>.txt` in overwrite mode (a Dropbox upload replaces the old file atomically)."""
        self._image_path(name)
        path = f"{self.folder}/{self._sidecar_name(name)}"
        await self._call(
            "upload",
            path,
            self._dbx.files_upload,
            text.encode("utf-8"),
            path,
            mode=dbx_files.WriteMode.overwrite,
            mute=True,
        )
        log_json(logger, logging.INFO, "storage_sidecar_written", image_name=name, path=path)

    # -- archive -------------------------------------------------------------------------------------------

    async def archive_image(self, name: str) -> None:
        """Move the image into `<folder>/<archive>` (autorename on a clash), then its sidecar, same stem."""
        source = self._image_path(name)
        moved = await self._call(
            "move", source, self._dbx.files_move_v2, source, f"{self.archive_folder}/{name}", autorename=True
        )
        target_name = moved.metadata.name
        sidecar = f"{self.folder}/{self._sidecar_name(name)}"
        sidecar_target: Optional[str] = None
        try:
            result = await self._call(
                "move",
                sidecar,
                self._dbx.files_move_v2,
                sidecar,
                f"{self.archive_folder}/{self._sidecar_name(target_name)}",
                autorename=True,
            )
            sidecar_target = result.metadata.path_display
        except _NotFound:
            pass  # no sidecar: nothing to move
        except StorageError as exc:
            # The image is archived (that is what dedup and the library view depend on); say what was left.
            log_json(logger, logging.ERROR, "storage_archive_sidecar_error", image_name=name, error=str(exc))
        log_json(
            logger,
            logging.INFO,
            "storage_archive_complete",
            image_name=name,
            target=moved.metadata.path_display,
            sidecar_target=sidecar_target,
        )
