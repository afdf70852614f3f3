"""OutboxPublisher: the embedded default publisher, one folder per post under `outbox/<platform>/`.

It stands in for a real platform with the same contract: it gets its own copy of the image, resizes it like
the platform would (Telegram and Instagram widths from the config; email keeps the original), and returns a
PublishResult instead of raising. Each post is built in a temporary folder inside the outbox and moved into
place with one rename, so a crash never leaves half a post for a reader to trip over. A staging folder is
named after the process that builds it; the next publisher to start removes those of processes that are gone.

Each platform has its own subclass (`TelegramOutbox`, `InstagramOutbox`, `EmailOutbox`) so that the telemetry
manifest can name one platform's publish, as it names `TelegramPublisher.publish` for the live backend.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional, Type

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.domain.errors import StorageError
from publisher_v2.domain.models import PublishResult
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.utils.images import resize_copy
from publisher_v2.utils.logging import get_correlation_id, log_json
from publisher_v2.utils.staging import make_staging, remove_dead_staging

logger = logging.getLogger("publisher_v2.publishers.outbox")

#: Subject prefix per [Email] subject_mode (as the SMTP publisher writes it).
SUBJECT_PREFIXES: Dict[str, str] = {"normal": "", "private": "Private: ", "avatar": "Avatar: "}
#: Where unfinished posts are built (inside the outbox, so the final rename stays on one file system).
INCOMING = ".incoming"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Staging folders are `.incoming/post_<pid>-<platform>_<random>`.
STAGING_PREFIX = "post_"


def clean_stale_staging(outbox_folder: Path) -> int:
    """Remove staging folders left in `outbox/.incoming` by killed runs; returns how many were removed."""
    return remove_dead_staging(Path(outbox_folder) / INCOMING, STAGING_PREFIX)


def _safe_stem(name: str) -> str:
    stem = _UNSAFE.sub("_", os.path.splitext(os.path.basename(name))[0]).strip("._")
    return stem[:60] or "image"


class OutboxPublisher(Publisher):
    """Writes each post for `platform_name` into `outbox_folder/<platform_name>/<timestamp>_<stem>_<id>/`."""

    def __init__(self, platform_name: str, outbox_folder: Path, config: ApplicationConfig) -> None:
        self.platform_name = platform_name
        self.outbox_folder = Path(outbox_folder)
        self.config = config
        clean_stale_staging(self.outbox_folder)

    def is_enabled(self) -> bool:
        return True

    def resize_width(self) -> Optional[int]:
        """The width the real platform would resize to (None: the image is sent as it is)."""
        if self.platform_name == "telegram":
            return self.config.telegram.max_width
        if self.platform_name == "instagram":
            return self.config.instagram.max_width
        return None

    def email_plan(self, caption: str, image_name: str) -> Dict[str, Any]:
        """What the SMTP publisher would send: addresses, subject and body (never the password)."""
        cfg = self.config.email
        in_subject = cfg.caption_target in ("subject", "both")
        in_body = cfg.caption_target in ("body", "both")
        subject = SUBJECT_PREFIXES[cfg.subject_mode] + (
            caption if in_subject else os.path.splitext(image_name)[0]
        )
        return {
            "sender": cfg.sender,
            "recipient": cfg.recipient,
            "caption_target": cfg.caption_target,
            "subject_mode": cfg.subject_mode,
            "subject": " ".join(subject.split()),
            "body": caption if in_body else "",
            "confirmation_to_sender": cfg.confirmation_to_sender,
        }

    async def publish(
        self, image_path: str, caption: str, context: Optional[Dict[str, Any]] = None
    ) -> PublishResult:
        """Write the post; an unwritable outbox or unreadable image is a failed result, never an exception."""
        context = context or {}
        image_name = str(context.get("image_name") or os.path.basename(image_path))
        now = datetime.now(timezone.utc)
        post_id = f"{now.strftime('%Y%m%dT%H%M%S%fZ')}_{_safe_stem(image_name)}_{uuid.uuid4().hex[:8]}"
        record: Dict[str, Any] = {
            "platform": self.platform_name,
            "image_name": image_name,
            "caption": caption,
            "sd_caption": context.get("sd_caption"),
            "post_id": post_id,
            "created": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "correlation_id": get_correlation_id(),
        }
        if self.platform_name == "email":
            record["email"] = self.email_plan(caption, image_name)
        try:
            folder = await asyncio.to_thread(self._write_post, image_path, image_name, caption, record)
        except (OSError, StorageError) as exc:
            log_json(
                logger,
                logging.ERROR,
                "outbox_write_error",
                platform=self.platform_name,
                image_name=image_name,
                error=str(exc),
            )
            return PublishResult(False, self.platform_name, error=f"Outbox write failed: {exc}")
        log_json(
            logger,
            logging.INFO,
            "outbox_post_written",
            platform=self.platform_name,
            image_name=image_name,
            post_id=post_id,
            folder=str(folder),
        )
        return PublishResult(True, self.platform_name, post_id=post_id)

    def _write_post(self, image_path: str, image_name: str, caption: str, record: Dict[str, Any]) -> Path:
        target = self.outbox_folder / self.platform_name / record["post_id"]
        if target.parent.exists() and not target.parent.is_dir():
            # mkdir would say "[Errno 17] File exists", which hides what an operator must fix.
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target.parent))
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = make_staging(self.outbox_folder / INCOMING, STAGING_PREFIX, f"{self.platform_name}_")
        try:
            copy = staging / (_safe_stem(image_name) + os.path.splitext(image_name)[1].lower())
            shutil.copyfile(image_path, copy)
            width = self.resize_width()
            if width is not None:
                resize_copy(str(copy), width)
            record["image_file"] = copy.name
            (staging / "caption.txt").write_text(caption + "\n", encoding="utf-8")
            (staging / "post.json").write_text(
                json.dumps(record, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8"
            )
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target


class TelegramOutbox(OutboxPublisher):
    """Telegram's posts in the outbox."""

    def __init__(self, outbox_folder: Path, config: ApplicationConfig) -> None:
        super().__init__("telegram", outbox_folder, config)


class InstagramOutbox(OutboxPublisher):
    """Instagram's posts in the outbox."""

    def __init__(self, outbox_folder: Path, config: ApplicationConfig) -> None:
        super().__init__("instagram", outbox_folder, config)


class EmailOutbox(OutboxPublisher):
    """The email publisher's posts (with the email plan) in the outbox."""

    def __init__(self, outbox_folder: Path, config: ApplicationConfig) -> None:
        super().__init__("email", outbox_folder, config)


#: The outbox class of each platform, so each platform's publish is a distinct callable.
OUTBOX_CLASSES: Dict[str, Type[OutboxPublisher]] = {
    "telegram": TelegramOutbox,
    "instagram": InstagramOutbox,
    "email": EmailOutbox,
}


def outbox_publisher(platform_name: str, outbox_folder: Path, config: ApplicationConfig) -> OutboxPublisher:
    """The outbox publisher for `platform_name` (its own subclass for a known platform)."""
    cls = OUTBOX_CLASSES.get(platform_name)
    if cls is None:
        return OutboxPublisher(platform_name, outbox_folder, config)
    return cls(outbox_folder, config)
