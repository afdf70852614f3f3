"""The storage protocol every image library implements (a local folder by default, Dropbox in production)."""

from __future__ import annotations

from typing import Dict, List, Optional, Protocol, runtime_checkable

from publisher_v2.domain.models import ImageEntry

#: File extensions the library treats as images (lower case).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic"})


@runtime_checkable
class Storage(Protocol):
    """An image library with an archive folder and caption sidecars beside the images.

    Image names are plain file names inside the library folder (never paths); implementations reject anything
    else with StorageError.
    """

    #: Short backend name used in logs ("local", "dropbox").
    backend_name: str

    async def list_images(self) -> List[ImageEntry]:
        """Every image directly in the library folder (not the archive), without reading image bytes."""
        ...

    async def get_image(self, name: str) -> Optional[ImageEntry]:
        """The entry for `name`, or None when the library has no such image."""
        ...

    async def content_hash(self, entry: ImageEntry) -> str:
        """The Dropbox-style content hash of `entry`; cached or listed, so usually no bytes are read."""
        ...

    async def download_image(self, name: str) -> bytes:
        """The image bytes."""
        ...

    async def get_temporary_link(self, name: str) -> str:
        """A link to the image: an https URL for remote storage, a file URL for a local folder."""
        ...

    def has_public_links(self) -> bool:
        """True when get_temporary_link returns a URL that a remote service (OpenAI, Instagram) can fetch."""
        ...

    async def get_file_metadata(self, name: str) -> Dict[str, str]:
        """Backend ids recorded in the sidecar: {"id": ..., "rev": ...} (empty strings when not applicable)."""
        ...

    async def read_sidecar_text(self, name: str) -> Optional[str]:
        """The text of `<stem>.txt` beside the image, or None when there is none."""
        ...

    async def write_sidecar_text(self, name: str, text: str) -> None:
        """Write `<stem>.txt` beside the image (atomically replacing an older one)."""
        ...

    async def archive_image(self, name: str) -> None:
        """Move the image, and its sidecar when present, into the archive folder."""
        ...

    def archive_view(self) -> Storage:
        """The archive folder as a storage of its own (same names, sidecars beside them), for re-sending a
        posted image's failed platforms from the archive."""
        ...
