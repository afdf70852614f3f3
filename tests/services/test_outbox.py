"""OutboxPublisher: real post folders in a real outbox, resized copies, atomic writes, failures as results."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Tuple

import pytest
from PIL import Image

from publisher_v2.config.schema import ApplicationConfig, EmailConfig, Secrets
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.services.publishers.outbox import INCOMING, OutboxPublisher
from publisher_v2.utils.logging import bound_correlation_id

SECRET = "hunter2-very-secret-password"


@pytest.fixture
def config(tmp_path: Path) -> ApplicationConfig:
    return ApplicationConfig(
        config_path=tmp_path / "publisher.ini",
        email=EmailConfig(
            sender="me@example.com",
            recipient="them@example.org",
            caption_target="both",
            subject_mode="private",
        ),
        secrets=Secrets(EMAIL_PASSWORD=SECRET, TELEGRAM_BOT_TOKEN="123456:" + "x" * 35),
    )


def own_copy(tmp_path: Path, platform: str, size: Tuple[int, int] = (2400, 1600), fmt: str = "JPEG") -> Path:
    """The workflow hands each publisher its own copy of the image; this builds one."""
    path = tmp_path / "work" / f"{platform}_wide shot.{'jpg' if fmt == 'JPEG' else 'png'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 90, 160)).save(path, format=fmt)
    return path


def posts(outbox: Path, platform: str) -> list:
    folder = outbox / platform
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []


def test_outbox_publisher_is_a_publisher(config: ApplicationConfig, tmp_path: Path) -> None:
    publisher = OutboxPublisher("telegram", tmp_path / "outbox", config)
    assert (
        isinstance(publisher, Publisher) and publisher.is_enabled() and publisher.platform_name == "telegram"
    )


@pytest.mark.parametrize(("platform", "width"), [("telegram", 1280), ("instagram", 1080), ("email", 2400)])
async def test_publish_writes_caption_resized_copy_and_post_json(
    config: ApplicationConfig, tmp_path: Path, platform: str, width: int
) -> None:
    outbox = tmp_path / "outbox"
    publisher = OutboxPublisher(platform, outbox, config)
    with bound_correlation_id("cid-123"):
        result = await publisher.publish(
            str(own_copy(tmp_path, platform)),
            "Blue hour #sample",
            {"image_name": "wide shot.jpg", "sd_caption": "blue sky, photograph"},
        )
    assert result.success and result.platform == platform and result.error is None
    [post] = posts(outbox, platform)
    assert post.name == result.post_id and post.name.endswith(result.post_id[-8:])
    assert "_wide_shot_" in post.name
    assert (post / "caption.txt").read_text(encoding="utf-8") == "Blue hour #sample\n"
    record = json.loads((post / "post.json").read_text(encoding="utf-8"))
    assert record["platform"] == platform and record["image_name"] == "wide shot.jpg"
    assert record["caption"] == "Blue hour #sample" and record["sd_caption"] == "blue sky, photograph"
    assert record["post_id"] == result.post_id and record["correlation_id"] == "cid-123"
    assert record["created"].endswith("Z")
    with Image.open(post / record["image_file"]) as copy:
        assert copy.width == width and copy.height == round(1600 * width / 2400)


async def test_email_post_records_the_subject_and_body_plan_but_no_secret(
    config: ApplicationConfig, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    await OutboxPublisher("email", outbox, config).publish(
        str(own_copy(tmp_path, "email")), "Blue hour", {"image_name": "wide shot.jpg"}
    )
    [post] = posts(outbox, "email")
    text = (post / "post.json").read_text(encoding="utf-8")
    plan = json.loads(text)["email"]
    assert plan["subject"] == "Private: Blue hour" and plan["body"] == "Blue hour"
    assert plan["sender"] == "me@example.com" and plan["recipient"] == "them@example.org"
    every_file = "".join(p.read_bytes().decode("latin-1") for p in outbox.rglob("*") if p.is_file())
    assert SECRET not in every_file and "x" * 35 not in every_file


async def test_email_subject_uses_the_image_stem_when_the_caption_goes_to_the_body(tmp_path: Path) -> None:
    config = ApplicationConfig(config_path=tmp_path / "c.ini", email=EmailConfig(caption_target="body"))
    plan = OutboxPublisher("email", tmp_path / "outbox", config).email_plan("Caption", "IMG_0042.jpg")
    assert plan["subject"] == "IMG_0042" and plan["body"] == "Caption"


async def test_concurrent_posts_get_their_own_folders_and_leave_nothing_half_written(
    config: ApplicationConfig, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    publishers = [OutboxPublisher(p, outbox, config) for p in ("telegram", "instagram", "email")]
    results = await asyncio.gather(
        *(
            p.publish(
                str(own_copy(tmp_path, f"{p.platform_name}{i}")), f"caption {i}", {"image_name": "a.jpg"}
            )
            for i in range(3)
            for p in publishers
        )
    )
    assert all(r.success for r in results)
    assert len({r.post_id for r in results}) == 9
    for platform in ("telegram", "instagram", "email"):
        assert len(posts(outbox, platform)) == 3
        assert all(
            (p / "post.json").is_file() and (p / "caption.txt").is_file() for p in posts(outbox, platform)
        )
    assert list((outbox / INCOMING).iterdir()) == []


async def test_an_unwritable_outbox_is_a_failed_result_not_an_exception(
    config: ApplicationConfig, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the outbox folder should be", encoding="utf-8")
    result = await OutboxPublisher("telegram", blocker / "outbox", config).publish(
        str(own_copy(tmp_path, "telegram")), "caption", {"image_name": "a.jpg"}
    )
    assert result.success is False and result.platform == "telegram"
    assert result.error and "Outbox write failed" in result.error


async def test_an_unreadable_image_is_a_failed_result_and_leaves_no_partial_post(
    config: ApplicationConfig, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    outbox = tmp_path / "outbox"
    result = await OutboxPublisher("instagram", outbox, config).publish(str(broken), "caption", None)
    assert result.success is False and result.error
    assert posts(outbox, "instagram") == []
    assert list((outbox / INCOMING).iterdir()) == []


async def test_a_missing_image_file_is_a_failed_result(config: ApplicationConfig, tmp_path: Path) -> None:
    result = await OutboxPublisher("email", tmp_path / "outbox", config).publish(
        str(tmp_path / "gone.jpg"), "caption", {}
    )
    assert result.success is False and "gone.jpg" in (result.error or "")


async def test_png_copies_stay_png_and_the_source_copy_is_the_publishers_own(
    config: ApplicationConfig, tmp_path: Path
) -> None:
    source = own_copy(tmp_path, "telegram", size=(2000, 2000), fmt="PNG")
    before = source.read_bytes()
    outbox = tmp_path / "outbox"
    result = await OutboxPublisher("telegram", outbox, config).publish(
        str(source), "c", {"image_name": "sq.png"}
    )
    assert result.success
    [post] = posts(outbox, "telegram")
    with Image.open(post / "sq.png") as copy:
        assert copy.format == "PNG" and copy.size == (1280, 1280)
    assert source.read_bytes() == before
    shutil.rmtree(tmp_path / "work")
    assert (post / "sq.png").is_file()


async def test_post_json_is_valid_even_for_unusual_names_and_captions(
    config: ApplicationConfig, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    caption = 'quotes " and \\ backslashes, \u65e5\u672c, emoji \U0001f305\nsecond line'
    result = await OutboxPublisher("telegram", outbox, config).publish(
        str(own_copy(tmp_path, "telegram", size=(300, 200))), caption, {"image_name": "../../ev il\u00e9.jpg"}
    )
    assert result.success
    [post] = posts(outbox, "telegram")
    assert post.parent == outbox / "telegram"
    record = json.loads((post / "post.json").read_text(encoding="utf-8"))
    assert record["caption"] == caption and record["image_name"] == "../../ev il\u00e9.jpg"
    assert "/" not in record["image_file"] and (post / record["image_file"]).is_file()
