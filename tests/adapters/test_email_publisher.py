"""EmailPublisher driven by aiosmtplib against a real aiosmtpd server that requires STARTTLS and AUTH."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from publisher_v2.config.schema import EmailConfig
from publisher_v2.domain.models import ImageAnalysis
from publisher_v2.services.publishers.email import EmailPublisher, normalise_tags
from tests.adapters.conftest import Tls
from tests.adapters.peers.smtp_fake import SMTP_PASSWORD, SMTP_USER, SmtpServer, free_port

RECIPIENT = "upload@photos.example.net"


@pytest.fixture
def smtp(tls: Tls) -> Iterator[SmtpServer]:
    server = SmtpServer(tls.server_context()).start()
    yield server
    server.stop()


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "email_sunset.jpg"
    Image.new("RGB", (64, 48), (250, 120, 30)).save(path, "JPEG")
    return path


def make(smtp: SmtpServer, tls: Tls, password: str = SMTP_PASSWORD, **cfg: object) -> EmailPublisher:
    values = dict(
        sender=SMTP_USER,
        recipient=RECIPIENT,
        smtp_server="127.0.0.1",
        smtp_port=smtp.port,
        confirmation_to_sender=False,
    )
    values.update(cfg)
    return EmailPublisher(
        EmailConfig(**values),
        password,
        timeout_seconds=5.0,  # type: ignore[arg-type]
        tls_context=tls.client_context(),
    )


CONTEXT = {
    "image_name": "sunset.jpg",
    "analysis": ImageAnalysis(
        description="d", mood="m", tags=["Sunset", "#Beach", "sunset", " Warm  Light ", "sea", "sky", "gold"]
    ),
}


def attachment_of(message):  # type: ignore[no-untyped-def]
    return next(part for part in message.iter_attachments())


@pytest.mark.parametrize(
    ("target", "mode", "subject", "body"),
    [
        ("subject", "normal", "Golden evening", ""),
        ("body", "normal", "sunset", "Golden evening"),
        ("both", "normal", "Golden evening", "Golden evening"),
        ("subject", "private", "Private: Golden evening", ""),
        ("body", "avatar", "Avatar: sunset", "Golden evening"),
        ("both", "avatar", "Avatar: Golden evening", "Golden evening"),
    ],
)
async def test_caption_goes_where_caption_target_says_with_the_subject_mode_prefix(
    smtp: SmtpServer, tls: Tls, photo: Path, target: str, mode: str, subject: str, body: str
) -> None:
    result = await make(smtp, tls, caption_target=target, subject_mode=mode).publish(
        str(photo), "Golden evening", CONTEXT
    )
    assert result.success and result.platform == "email" and result.error is None
    assert len(smtp.received) == 1
    got = smtp.received[0]
    assert got.tls and got.authenticated_as == SMTP_USER
    assert got.rcpt_tos == [RECIPIENT] and got.mail_from == SMTP_USER
    assert got.message["Subject"] == subject
    assert result.post_id == got.message["Message-ID"]
    text = got.message.get_body(preferencelist=("plain",))
    assert (text.get_content().strip() if text is not None else "") == body
    attachment = attachment_of(got.message)
    assert attachment.get_filename() == "sunset.jpg"
    assert attachment.get_content_type() == "image/jpeg"
    assert attachment.get_content() == photo.read_bytes()


async def test_confirmation_mail_goes_to_the_sender_with_normalised_tags(
    smtp: SmtpServer, tls: Tls, photo: Path
) -> None:
    pub = make(smtp, tls, confirmation_to_sender=True, confirmation_tags_count=4)
    result = await pub.publish(str(photo), "Golden evening", CONTEXT)
    assert result.success
    assert [r.rcpt_tos for r in smtp.received] == [[RECIPIENT], [SMTP_USER]]
    confirmation = smtp.received[1].message
    assert confirmation["Subject"] == "Posted: sunset.jpg"
    text = confirmation.get_content().replace("\r\n", "\n")
    assert "Tags: sunset, beach, warm light, sea\n" in text
    assert "Golden evening" in text and RECIPIENT in text


def test_tags_are_normalised_deduplicated_and_counted() -> None:
    assert normalise_tags(["A", "#a", "B  c", "d."], 10) == ["a", "b c", "d"]
    assert normalise_tags("x, y; z", 2) == ["x", "y"]
    assert normalise_tags(None, 3) == []


async def test_wrong_password_is_a_failed_result_without_the_password(
    smtp: SmtpServer, tls: Tls, photo: Path
) -> None:
    wrong = "wrong-password-Kk88"
    result = await make(smtp, tls, password=wrong).publish(str(photo), "caption", CONTEXT)
    assert not result.success and "SMTPAuthenticationError" in (result.error or "")
    assert wrong not in (result.error or "")
    assert smtp.auth_failures >= 1 and smtp.received == []


async def test_an_untrusted_certificate_is_a_failed_result(smtp: SmtpServer, tls: Tls, photo: Path) -> None:
    pub = make(smtp, tls)
    pub.tls_context = None  # the system trust store does not know the test CA
    result = await pub.publish(str(photo), "caption", CONTEXT)
    assert not result.success and smtp.received == []


async def test_an_unreachable_server_is_a_failed_result(tls: Tls, photo: Path) -> None:
    cfg = EmailConfig(sender=SMTP_USER, recipient=RECIPIENT, smtp_server="127.0.0.1", smtp_port=free_port())
    result = await EmailPublisher(cfg, SMTP_PASSWORD, timeout_seconds=2.0).publish(str(photo), "c", CONTEXT)
    assert not result.success and "127.0.0.1" in (result.error or "")


async def test_a_server_that_never_answers_times_out(tls: Tls, photo: Path) -> None:
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        cfg = EmailConfig(
            sender=SMTP_USER, recipient=RECIPIENT, smtp_server="127.0.0.1", smtp_port=silent.getsockname()[1]
        )
        result = await EmailPublisher(cfg, SMTP_PASSWORD, timeout_seconds=0.3).publish(
            str(photo), "c", CONTEXT
        )
    assert not result.success and "timed out" in (result.error or "").lower()
