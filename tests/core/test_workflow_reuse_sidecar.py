"""Publishing what an admin saw: `execute(reuse_sidecar=True)` takes captions from a matching sidecar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from publisher_v2.config.loader import load_application_config
from publisher_v2.domain.captions import build_caption_sidecar
from publisher_v2.utils.images import sha256_hex
from publisher_v2.wiring import build_orchestrator

pytestmark = pytest.mark.usefixtures("clean_env")


def _first_image(ini: Path) -> Path:
    return sorted(p for p in (ini.parent / "images").iterdir() if p.suffix in (".jpg", ".png"))[0]


def _outbox_caption(ini: Path, platform: str) -> str:
    (post,) = list((ini.parent / "outbox" / platform).iterdir())
    return json.loads((post / "post.json").read_text())["caption"]


async def test_reuse_sidecar_publishes_the_recorded_caption_without_rewriting_it(sample_library: Path) -> None:
    image = _first_image(sample_library)
    sidecar = image.with_suffix(".txt")
    text = build_caption_sidecar(
        "approved sd caption", {"sha256": sha256_hex(image.read_bytes()), "caption": "The caption the admin approved"}
    )
    sidecar.write_text(text)
    config = load_application_config(sample_library)
    config.content.archive = False
    result = await build_orchestrator(config).execute(select_filename=image.name, reuse_sidecar=True)
    assert result.success
    assert result.caption == "The caption the admin approved"
    assert result.sd_caption == "approved sd caption"
    assert result.sidecar_written is False
    assert sidecar.read_text() == text, "the approved sidecar is left as it was"
    assert _outbox_caption(sample_library, "telegram") == "The caption the admin approved"


async def test_a_sidecar_for_other_bytes_is_ignored_and_the_image_is_analysed(sample_library: Path) -> None:
    image = _first_image(sample_library)
    image.with_suffix(".txt").write_text(build_caption_sidecar("old", {"sha256": "0" * 64, "caption": "stale"}))
    config = load_application_config(sample_library)
    result = await build_orchestrator(config).execute(select_filename=image.name, reuse_sidecar=True)
    assert result.success
    assert result.caption != "stale" and result.sd_caption != "old"
    assert result.sidecar_written is True


async def test_without_reuse_the_workflow_writes_a_fresh_caption(sample_library: Path) -> None:
    image = _first_image(sample_library)
    sha = sha256_hex(image.read_bytes())
    image.with_suffix(".txt").write_text(build_caption_sidecar("approved", {"sha256": sha, "caption": "approved"}))
    config = load_application_config(sample_library)
    result = await build_orchestrator(config).execute(select_filename=image.name)
    assert result.caption != "approved"
