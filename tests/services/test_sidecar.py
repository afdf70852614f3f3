"""SidecarWriter: rendering the sidecar of a real analysis and writing it into a real LocalStorage folder."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from pathlib import Path
from typing import List

import pytest
from PIL import Image

from publisher_v2.config.schema import CaptionFileConfig
from publisher_v2.domain.captions import parse_sidecar_text
from publisher_v2.domain.errors import StorageError
from publisher_v2.domain.models import CaptionResult, CaptionSpec, ImageAnalysis, ImageContent
from publisher_v2.services.ai import OfflineVisionAnalyzer, TemplateCaptionGenerator
from publisher_v2.services.sidecar import SidecarWriter
from publisher_v2.services.storage.local import LocalStorage
from publisher_v2.utils.images import sha256_hex

PHASE1 = [
    "image_file",
    "dropbox_file_id",
    "dropbox_rev",
    "sha256",
    "created",
    "sd_caption_version",
    "model_version",
]
PHASE2 = {
    "subject",
    "lighting",
    "camera",
    "art_style",
    "composition",
    "color_palette",
    "tags",
    "aesthetic_terms",
}


def _jpeg() -> bytes:
    image = Image.linear_gradient("L").resize((800, 500)).convert("RGB")
    exif = Image.Exif()
    exif[0x010F] = "FUJIFILM"
    exif[0x0110] = "X-T4"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "dusk.jpg").write_bytes(_jpeg())
    return folder


async def _image_and_captions(folder: Path):
    data = (folder / "dusk.jpg").read_bytes()
    image = ImageContent(name="dusk.jpg", data=data, sha256=sha256_hex(data))
    analysis = await OfflineVisionAnalyzer().analyze(image)
    captions = await TemplateCaptionGenerator().generate(analysis, CaptionSpec(hashtags="#sample"), True)
    return image, analysis, captions


async def test_render_without_extended_metadata_has_phase1_and_the_caption(library: Path) -> None:
    image, analysis, captions = await _image_and_captions(library)
    writer = SidecarWriter(LocalStorage(library), CaptionFileConfig(artist_alias="Sample Artist"))
    text = writer.render(image, analysis, captions, {"id": "local:1", "rev": "99"})
    sd_caption, meta = parse_sidecar_text(text)
    assert sd_caption == captions.sd_caption
    assert meta is not None
    assert list(meta)[: len(PHASE1)] == PHASE1
    assert meta["image_file"] == "dusk.jpg" and meta["sha256"] == image.sha256
    assert meta["dropbox_file_id"] == "local:1" and meta["dropbox_rev"] == "99"
    assert meta["model_version"] == "offline-template-1" and meta["artist_alias"] == "Sample Artist"
    assert meta["caption"] == captions.caption
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["created"])
    assert not PHASE2 & set(meta)


async def test_render_with_extended_metadata_adds_phase2_from_the_analysis(library: Path) -> None:
    image, analysis, captions = await _image_and_captions(library)
    writer = SidecarWriter(LocalStorage(library), CaptionFileConfig(extended_metadata_enabled=True))
    sd_caption, meta = parse_sidecar_text(writer.render(image, analysis, captions))
    assert meta is not None and set(meta) >= PHASE2
    assert meta["tags"] == analysis.tags and meta["color_palette"] == analysis.color_palette
    assert meta["camera"] == "FUJIFILM X-T4" and meta["description"] == analysis.description
    assert "artist_alias" not in meta and "dropbox_file_id" not in meta  # empty values are left out
    assert "pose" not in meta  # the offline analyser does not know it: omitted, not "None"


async def test_write_puts_the_sidecar_beside_the_image_with_local_ids(
    library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="publisher_v2.sidecar")
    image, analysis, captions = await _image_and_captions(library)
    storage = LocalStorage(library)
    text = await SidecarWriter(storage, CaptionFileConfig(extended_metadata_enabled=True)).write(
        image, analysis, captions
    )
    on_disk = (library / "dusk.txt").read_text(encoding="utf-8")
    assert on_disk == text
    assert await storage.read_sidecar_text("dusk.jpg") == text
    sd_caption, meta = parse_sidecar_text(on_disk)
    assert sd_caption == captions.sd_caption and meta is not None
    assert meta["dropbox_file_id"] == f"local:{os.stat(library / 'dusk.jpg').st_ino}"
    done = [json.loads(r.getMessage()) for r in caplog.records if "sidecar_upload_complete" in r.getMessage()]
    assert done and done[0]["image_name"] == "dusk.jpg"


async def test_write_replaces_an_older_sidecar(library: Path) -> None:
    (library / "dusk.txt").write_text("old caption\n\n# ---\n# stale: yes\n", encoding="utf-8")
    image, analysis, captions = await _image_and_captions(library)
    await SidecarWriter(LocalStorage(library), CaptionFileConfig()).write(image, analysis, captions)
    sd_caption, meta = parse_sidecar_text((library / "dusk.txt").read_text(encoding="utf-8"))
    assert sd_caption == captions.sd_caption and meta is not None and "stale" not in meta


async def test_write_for_a_missing_image_raises_storage_error_and_logs_it(
    library: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="publisher_v2.sidecar")
    image, analysis, captions = await _image_and_captions(library)
    (library / "dusk.jpg").unlink()
    with pytest.raises(StorageError, match="dusk.jpg"):
        await SidecarWriter(LocalStorage(library), CaptionFileConfig()).write(image, analysis, captions)
    messages: List[str] = [r.getMessage() for r in caplog.records]
    assert any("sidecar_upload_error" in m for m in messages)
    assert not (library / "dusk.txt").exists()


async def test_write_where_a_folder_blocks_the_sidecar_raises_storage_error(library: Path) -> None:
    (library / "dusk.txt").mkdir()  # something that cannot be replaced by a file
    image, analysis, captions = await _image_and_captions(library)
    with pytest.raises(StorageError):
        await SidecarWriter(LocalStorage(library), CaptionFileConfig()).write(image, analysis, captions)
    assert (library / "dusk.txt").is_dir() and (library / "dusk.jpg").is_file()


def test_render_of_a_caption_without_sd_caption_has_no_caption_line(library: Path) -> None:
    image = ImageContent(name="dusk.jpg", data=b"", sha256="a" * 64)
    text = SidecarWriter(LocalStorage(library), CaptionFileConfig()).render(
        image, ImageAnalysis(description="d", mood="m"), CaptionResult(caption="plain", model_version="m1")
    )
    assert parse_sidecar_text(text)[0] is None and parse_sidecar_text(text)[1]["caption"] == "plain"
