"""Image helpers: decode checks, Dropbox content hashes, resizing a publisher's copy."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from publisher_v2.domain.errors import StorageError
from publisher_v2.utils.images import (
    DROPBOX_BLOCK_SIZE,
    InvalidImageError,
    check_image,
    dropbox_content_hash,
    resize_copy,
    sha256_hex,
)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _noisy_jpeg(width: int = 320, height: int = 240) -> bytes:
    return _encode(Image.effect_noise((width, height), 64).convert("RGB"), "JPEG", quality=90)


def _reference_dropbox_hash(data: bytes) -> str:
    """Dropbox's documented algorithm, written out by hand over the whole buffer."""
    blocks = [data[i : i + DROPBOX_BLOCK_SIZE] for i in range(0, len(data), DROPBOX_BLOCK_SIZE)]
    return hashlib.sha256(b"".join(hashlib.sha256(block).digest() for block in blocks)).hexdigest()


def test_check_image_returns_size_and_format() -> None:
    assert check_image(_noisy_jpeg(320, 240), "a.jpg") == (320, 240, "JPEG")
    png = _encode(Image.new("RGBA", (30, 20), (1, 2, 3, 4)), "PNG")
    assert check_image(png, "b.png") == (30, 20, "PNG")


def test_check_image_rejects_truncated_jpeg_naming_the_file() -> None:
    data = _noisy_jpeg()
    with pytest.raises(InvalidImageError, match="broken.jpg"):
        check_image(data[: len(data) // 2], "broken.jpg")
    with pytest.raises(InvalidImageError, match="almost.jpg"):
        check_image(data[:-20], "almost.jpg")


def test_check_image_rejects_truncated_png() -> None:
    data = _encode(Image.effect_noise((200, 200), 40), "PNG")
    with pytest.raises(InvalidImageError, match="half.png"):
        check_image(data[: len(data) // 2], "half.png")


def test_check_image_rejects_a_text_file_and_is_a_storage_error() -> None:
    with pytest.raises(InvalidImageError, match="notes.jpg") as caught:
        check_image(b"this is not an image\n", "notes.jpg")
    assert isinstance(caught.value, StorageError)
    assert "BytesIO" not in str(caught.value)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_check_image_refuses_images_above_the_pixel_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encode(Image.new("RGB", (64, 48)), "PNG")  # 3,072 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # above the limit, below Pillow's own 2x error
    with pytest.raises(InvalidImageError, match="bomb.png"):
        check_image(data, "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # beyond 2x: Pillow raises DecompressionBombError
    with pytest.raises(InvalidImageError, match="bomb.png"):
        check_image(data, "bomb.png")


def test_sha256_hex_is_hashlib_sha256() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize(
    "size", [0, 1, DROPBOX_BLOCK_SIZE, DROPBOX_BLOCK_SIZE + 1, 2 * DROPBOX_BLOCK_SIZE + 12345]
)
def test_dropbox_content_hash_matches_the_block_algorithm(tmp_path: Path, size: int) -> None:
    data = (hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))[:size]
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    expected = _reference_dropbox_hash(data)
    assert dropbox_content_hash(path) == expected
    assert dropbox_content_hash(str(path)) == expected
    with open(path, "rb") as stream:
        assert dropbox_content_hash(stream) == expected


def test_dropbox_content_hash_differs_from_plain_sha256_for_multi_block_files(tmp_path: Path) -> None:
    data = b"x" * (DROPBOX_BLOCK_SIZE + 10)
    assert dropbox_content_hash(io.BytesIO(data)) != hashlib.sha256(data).hexdigest()


class _TrickleStream(io.RawIOBase):
    """A raw stream that returns at most 1000 bytes per read, like a pipe or socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 1000) if size and size > 0 else 1000)


def test_dropbox_content_hash_keeps_block_boundaries_on_short_reads() -> None:
    data = bytes(range(256)) * (DROPBOX_BLOCK_SIZE // 256 + 50)
    assert dropbox_content_hash(_TrickleStream(data)) == _reference_dropbox_hash(data)  # type: ignore[arg-type]


def test_resize_copy_shrinks_to_max_width_keeping_aspect(tmp_path: Path) -> None:
    path = tmp_path / "telegram_wide.jpg"
    path.write_bytes(_encode(Image.new("RGB", (2000, 1000), (200, 10, 10)), "JPEG"))
    assert resize_copy(str(path), 1280) == str(path)
    with Image.open(path) as image:
        assert image.size == (1280, 640)
        assert image.format == "JPEG"


def test_resize_copy_leaves_small_images_untouched(tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    original = _encode(Image.new("RGB", (800, 600)), "PNG")
    path.write_bytes(original)
    assert resize_copy(str(path), 1080) == str(path)
    assert path.read_bytes() == original


def test_resize_copy_flattens_alpha_and_palette_for_jpeg(tmp_path: Path) -> None:
    rgba = tmp_path / "alpha.jpg"
    rgba.write_bytes(_encode(Image.new("RGBA", (1500, 1500), (0, 0, 255, 128)), "PNG"))  # a PNG named .jpg
    resize_copy(str(rgba), 1080)
    with Image.open(rgba) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (1080, 1080))
    palette = tmp_path / "palette.jpeg"
    palette.write_bytes(_encode(Image.new("RGB", (1300, 650), (9, 9, 9)).convert("P"), "GIF"))
    resize_copy(str(palette), 1280)
    with Image.open(palette) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (1280, 640))


def test_resize_copy_keeps_png_alpha_when_saving_png(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    path.write_bytes(_encode(Image.new("RGBA", (2000, 500), (0, 0, 255, 128)), "PNG"))
    resize_copy(str(path), 1000)
    with Image.open(path) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (1000, 250))


def test_resize_copy_rejects_a_non_image_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"nope")
    with pytest.raises(InvalidImageError, match="fake.jpg"):
        resize_copy(str(path), 100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.jpg"]
