"""EmailPublisher: the image as an attachment over SMTP (STARTTLS, then login), the caption placed by config.

`caption_target` puts the caption in the subject, the body, or both; `subject_mode` prefixes the subject
(`SUBJECT_PREFIXES`: photo-upload-by-mail services read these keywords). When `confirmation_to_sender`
is on, a second mail tells the sender what was posted, with up to `confirmation_tags_count` normalised
tags from the analysis; its failure is logged and does not undo the post. The SMTP password is the
EMAIL_PASSWORD secret and the login name is the sender address.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import re
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Dict, List, Optional, Tuple

import aiosmtplib

from publisher_v2.config.schema import ApplicationConfig, EmailConfig
from publisher_v2.domain.errors import ConfigurationError
from publisher_v2.domain.models import PublishResult
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.utils.logging import log_json, sanitize

logger = logging.getLogger("publisher_v2.publishers.email")

#: Subject prefix per `subject_mode`.
SUBJECT_PREFIXES: Dict[str, str] = {"normal": "", "private": "Private: ", "avatar": "Avatar: "}


def normalise_tags(tags: Any, count: int) -> List[str]:
    """Up to `count` tags: lower case, no '#', single spaces, no duplicates, in the analyser's order."""
    if isinstance(tags, str):
        tags = re.split(r"[,;\n]", tags)
    seen: List[str] = []
    for tag in tags or []:
        text = re.sub(r"\s+", " ", str(tag).replace("#", " ")).strip().strip(".,;:").lower()
        if text and text not in seen:
            seen.append(text)
        if len(seen) >= count:
            break
    return seen


def _image_subtype(path: str) -> Tuple[str, str]:
    guessed = mimetypes.guess_type(path)[0] or "image/jpeg"
    maintype, _, subtype = guessed.partition("/")
    return (maintype, subtype) if maintype == "image" else ("image", "jpeg")


class EmailPublisher(Publisher):
    """Mails the image to `recipient` from `sender`."""

    platform_name = "email"

    def __init__(
        self,
        cfg: EmailConfig,
        password: str,
        timeout_seconds: float = 60.0,
        tls_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.cfg = cfg
        self._password = password
        self.timeout_seconds = timeout_seconds
        self.tls_context = tls_context  # None: the system trust store (SSL_CERT_FILE is honoured)

    @classmethod
    def from_config(cls, config: ApplicationConfig) -> EmailPublisher:
        password = config.secrets.EMAIL_PASSWORD
        if password is None:
            raise ConfigurationError(
                "[Content] fetlife/email = true needs the environment variable EMAIL_PASSWORD"
            )
        return cls(
            config.email, password.get_secret_value(), timeout_seconds=config.publishing.timeout_seconds
        )

    # -- composing -----------------------------------------------------------------------------------------

    def subject_and_body(self, caption: str, image_name: str) -> Tuple[str, str]:
        """Where the caption goes: `subject`, `body` or `both`; the subject gets the `subject_mode` prefix."""
        prefix = SUBJECT_PREFIXES[self.cfg.subject_mode]
        in_subject = self.cfg.caption_target in ("subject", "both")
        in_body = self.cfg.caption_target in ("body", "both")
        subject = prefix + (caption if in_subject else os.path.splitext(image_name)[0])
        return " ".join(subject.split()), (caption if in_body else "")

    def _message(self, image_path: str, caption: str, image_name: str) -> EmailMessage:
        subject, body = self.subject_and_body(caption, image_name)
        message = EmailMessage()
        message["From"] = self.cfg.sender
        message["To"] = self.cfg.recipient
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.cfg.sender.rpartition("@")[2] or None)
        message.set_content(body + "\n" if body else "")
        maintype, subtype = _image_subtype(image_name)
        with open(image_path, "rb") as handle:
            message.add_attachment(handle.read(), maintype=maintype, subtype=subtype, filename=image_name)
        return message

    def _confirmation(self, image_name: str, caption: str, context: Dict[str, Any]) -> EmailMessage:
        analysis = context.get("analysis")
        raw_tags = analysis.get("tags") if isinstance(analysis, dict) else getattr(analysis, "tags", None)
        tags = normalise_tags(raw_tags, self.cfg.confirmation_tags_count)
        lines = [f"Posted {image_name} to {self.cfg.recipient}.", "", f"Caption: {caption}"]
        if self.cfg.confirmation_tags_count > 0:
            lines.append(f"Tags: {', '.join(tags)}")
        message = EmailMessage()
        message["From"] = self.cfg.sender
        message["To"] = self.cfg.sender
        message["Subject"] = f"Posted: {image_name}"
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.cfg.sender.rpartition("@")[2] or None)
        message.set_content("\n".join(lines) + "\n")
        return message

    # -- sending -------------------------------------------------------------------------------------------

    async def _send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.cfg.smtp_server,
            port=self.cfg.smtp_port,
            username=self.cfg.sender,
            password=self._password,
            start_tls=True,
            tls_context=self.tls_context,
            timeout=self.timeout_seconds,
        )

    def _failed(self, error: str) -> PublishResult:
        return PublishResult(success=False, platform=self.platform_name, error=sanitize(error))

    async def publish(
        self, image_path: str, caption: str, context: Optional[Dict[str, Any]] = None
    ) -> PublishResult:
        context = context or {}
        image_name = str(context.get("image_name") or os.path.basename(image_path))
        try:
            message = await asyncio.to_thread(self._message, image_path, caption, image_name)
            await asyncio.wait_for(self._send(message), timeout=self.timeout_seconds * 2)
        except asyncio.TimeoutError:
            return self._failed(f"SMTP {self.cfg.smtp_server}:{self.cfg.smtp_port} timed out")
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            return self._failed(
                f"SMTP {self.cfg.smtp_server}:{self.cfg.smtp_port}: {type(exc).__name__}: {exc}"
            )
        log_json(logger, logging.INFO, "email_sent", image_name=image_name, recipient=self.cfg.recipient)
        if self.cfg.confirmation_to_sender:
            try:
                confirmation = self._confirmation(image_name, caption, context)
                await asyncio.wait_for(self._send(confirmation), timeout=self.timeout_seconds * 2)
            except (asyncio.TimeoutError, aiosmtplib.SMTPException, OSError, ValueError) as exc:
                log_json(
                    logger,
                    logging.WARNING,
                    "email_confirmation_failed",
                    image_name=image_name,
                    error=sanitize(f"{type(exc).__name__}: {exc}"),
                )
        return PublishResult(success=True, platform=self.platform_name, post_id=str(message["Message-ID"]))
