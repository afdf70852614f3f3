"""Image helpers: decode checks, content hashes, and resizing a publisher's own copy.

`dropbox_content_hash` is the hash Dropbox returns in its listings. LocalStorage computes the same one, so the
dedup ledger's keys do not change when a library moves between a local folder and Dropbox.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from typing import BinaryIO, Tuple, Union

from PIL import Image, UnidentifiedImageError

from publisher_v2.domain.errors import StorageError

#: Dropbox hashes files in blocks of this many bytes.
DROPBOX_BLOCK_SIZE = 4 * 1024 * 1024

#: Formats that cannot hold an alpha channel or a palette as is.
_NO_ALPHA_FORMATS = frozenset({"JPEG", "MPO"})


class InvalidImageError(StorageError):
    """The bytes are not an image Pillow can decode (corrupt, truncated, not an image, or a bomb)."""


def _check_pixel_budget(width: int, height: int, name: str) -> None:
    """Refuse images above Pillow's MAX_IMAGE_PIXELS (Pillow only warns between 1x and 2x that limit)."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise InvalidImageError(f"Image {name!r} is too large to decode safely: {width}x{height} pixels")


def check_image(data: bytes, name: str) -> Tuple[int, int, str]:
    """Decode `data` fully and return (width, height, format); InvalidImageError naming `name` otherwise.

    `verify()` catches broken structure (PNG checksums), but a truncated JPEG passes it, so the image is also
    re-opened and decoded. JPEGs decode in draft mode (scaled down by libjpeg): the whole stream is still
    read, so truncation is caught, at a fraction of the memory.
    """
    try:
        with Image.open(io.BytesIO(data)) as probe:
            _check_pixel_budget(probe.width, probe.height, name)
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            width, height, fmt = image.width, image.height, image.format or ""
            if fmt in _NO_ALPHA_FORMATS:
                image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
    except InvalidImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"Image {name!r} is too large to decode safely: {exc}") from None
    except UnidentifiedImageError:
        raise InvalidImageError(f"Image {name!r} cannot be decoded: not an image format we read") from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError) as exc:
        raise InvalidImageError(f"Image {name!r} cannot be decoded: {exc}") from None
    return width, height, fmt


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def _hash_blocks(stream: BinaryIO) -> str:
    overall = hashlib.sha256()
    while True:
        block = stream.read(DROPBOX_BLOCK_SIZE)
        if not block:
            break
        # A raw stream may return short reads: fill the block so the block boundaries match Dropbox's.
        while len(block) < DROPBOX_BLOCK_SIZE:
            more = stream.read(DROPBOX_BLOCK_SIZE - len(block))
            if not more:
                break
            block += more
        overall.update(hashlib.sha256(block).digest())
    return overall.hexdigest()


def dropbox_content_hash(stream_or_path: Union[str, os.PathLike[str], BinaryIO]) -> str:
    """Dropbox's content hash: SHA-256 over the SHA-256 digests of each 4 MiB block, as hex.

    Reads one block at a time, so memory stays at 4 MiB whatever the file size. A stream is read from its
    current position to its end and is not closed.
    """
    if isinstance(stream_or_path, (str, os.PathLike)):
        with open(stream_or_path, "rb") as stream:
            return _hash_blocks(stream)
    return _hash_blocks(stream_or_path)


def _save_format(path: str, source_format: str) -> str:
    """The format the file's extension asks for (a publisher needs `.jpg` to be JPEG), else the source's."""
    ext = os.path.splitext(path)[1].lower()
    return Image.registered_extensions().get(ext) or source_format or "PNG"


def resize_copy(path: str, max_width: int) -> str:
    """Shrink the image at `path` in place to at most `max_width` pixels wide, keeping its aspect ratio.

    Only for a publisher's own copy (the workflow gives each publisher one). A no-op when the image is already
    narrow enough. Modes a JPEG cannot hold (RGBA, P, LA…) are flattened to RGB. The file is replaced
    atomically, so a failed save leaves the copy as it was.
    """
    if max_width < 1:
        raise ValueError(f"max_width must be positive, got {max_width}")
    name = os.path.basename(path)
    try:
        with Image.open(path) as image:
            _check_pixel_budget(image.width, image.height, name)
            if image.width <= max_width:
                return path
            height = max(1, round(image.height * max_width / image.width))
            fmt = _save_format(path, image.format or "")
            exif = image.info.get("exif")
            resized = image.resize((max_width, height), Image.Resampling.LANCZOS)
    except InvalidImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"Image {name!r} cannot be resized: {exc}") from None
    if fmt in _NO_ALPHA_FORMATS and resized.mode not in ("RGB", "L", "CMYK"):
        resized = resized.convert("RGBA").convert("RGB") if resized.mode == "P" else resized.convert("RGB")
    options = {"quality": 90} if fmt in _NO_ALPHA_FORMATS else {}
    if exif and fmt in ("JPEG", "MPO", "PNG", "WEBP", "TIFF"):
        options["exif"] = exif
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".resize_", suffix=os.path.splitext(path)[1], dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            resized.save(out, format="JPEG" if fmt == "MPO" else fmt, **options)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
