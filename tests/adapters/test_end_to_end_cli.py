"""The `publisher` command in a subprocess with every production adapter pointed at local peers.

Dropbox (TLS), OpenAI, Telegram, Instagram Graph and SMTP (STARTTLS + AUTH) all run in this test process on
127.0.0.1; the CLI finds them through its INI file and the environment only, exactly as in production (the
Dropbox SDK reads DROPBOX_API_HOST at import; REQUESTS_CA_BUNDLE and SSL_CERT_FILE make the test CA trusted).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from PIL import Image

from tests.adapters.conftest import DROPBOX_APP_KEY, DROPBOX_APP_SECRET, DROPBOX_REFRESH_TOKEN, Tls
from tests.adapters.peers.dropbox_fake import FakeDropbox
from tests.adapters.peers.graph_fake import ACCESS_TOKEN, USER_ID, VERSION, FakeGraph
from tests.adapters.peers.httpd import HttpPeer, Reply
from tests.adapters.peers.openai_fake import API_KEY, CAPTION, SD_CAPTION, FakeOpenAI
from tests.adapters.peers.smtp_fake import SMTP_PASSWORD, SMTP_USER, SmtpServer
from tests.adapters.peers.telegram_fake import BOT_TOKEN, CHANNEL_ID, FakeTelegram
from tests.cli_output import verdict_event
from tests.conftest import json_events
from tests.manifest_fields import scope_totals, stage_fields

pytestmark = pytest.mark.slow

PUBLISHER = Path(sys.executable).parent / "publisher"
RECIPIENT = "upload@photos.example.net"
STAGE_FIELDS = stage_fields() + scope_totals()  # every field telemetry.yaml declares
SECRETS: Dict[str, str] = {
    "DROPBOX_APP_KEY": DROPBOX_APP_KEY,
    "DROPBOX_APP_SECRET": DROPBOX_APP_SECRET,
    "DROPBOX_REFRESH_TOKEN": DROPBOX_REFRESH_TOKEN,
    "OPENAI_API_KEY": API_KEY,
    "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
    "TELEGRAM_CHANNEL_ID": CHANNEL_ID,
    "EMAIL_PASSWORD": SMTP_PASSWORD,
    "INSTA_PASSWORD": ACCESS_TOKEN,
}


@dataclass
class Stack:
    root: Path
    ini: Path
    env: Dict[str, str]
    dropbox: FakeDropbox
    dropbox_peer: HttpPeer
    openai: FakeOpenAI
    telegram: FakeTelegram
    telegram_peer: HttpPeer
    graph: FakeGraph
    smtp: SmtpServer

    @property
    def inbox(self) -> Path:
        return self.root / "Photos" / "inbox"

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(PUBLISHER), "--config", str(self.ini), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


def jpeg(color: tuple) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1600, 1200), color).save(buffer, "JPEG")
    return buffer.getvalue()


def subprocess_env(extra: Dict[str, str]) -> Dict[str, str]:
    drop = {
        "PUBLISHER_AUTOINSTRUMENT",
        "PUBLISHER_TELEMETRY_MANIFEST",
        "OPENAI_BASE_URL",
        "CURL_CA_BUNDLE",
        "DROPBOX_API_HOST",
        "DROPBOX_API_CONTENT_HOST",
        *SECRETS,
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


@pytest.fixture
def stack(tmp_path: Path, tls: Tls) -> Iterator[Stack]:
    root = tmp_path / "dropbox"
    (root / "Photos" / "inbox").mkdir(parents=True)
    for i, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        (root / "Photos" / "inbox" / f"photo{i}.jpg").write_bytes(jpeg(color))
    dropbox = FakeDropbox(root, DROPBOX_APP_KEY, DROPBOX_APP_SECRET, DROPBOX_REFRESH_TOKEN, page_size=2)
    openai, telegram, graph = FakeOpenAI(), FakeTelegram(), FakeGraph(statuses=["IN_PROGRESS", "FINISHED"])
    smtp = SmtpServer(tls.server_context()).start()
    peers = [HttpPeer(dropbox, tls.server_context()), HttpPeer(openai), HttpPeer(telegram), HttpPeer(graph)]
    for peer in peers:
        peer.start()
    dropbox_peer, openai_peer, telegram_peer, graph_peer = peers
    dropbox.base_url = dropbox_peer.url
    ini = tmp_path / "publisher.ini"
    ini.write_text(
        f"""
[Storage]
backend = dropbox
[Dropbox]
image_folder = /Photos/inbox
archive = archive
timeout_seconds = 10
retry_backoff_seconds = 0.05
[AI]
backend = openai
[openAI]
base_url = {openai_peer.url}/v1
timeout_seconds = 10
max_retries = 1
[Content]
hashtag_string = #local #test
archive = true
telegram = true
instagram = true
fetlife = true
[Publishing]
backend = live
timeout_seconds = 10
[Telegram]
base_url = {telegram_peer.url}/bot
retry_backoff_seconds = 0.05
[Instagram]
user_id = {USER_ID}
graph_base_url = {graph_peer.url}{VERSION}
poll_interval_seconds = 0.05
retry_backoff_seconds = 0.05
[Email]
sender = {SMTP_USER}
recipient = {RECIPIENT}
smtp_server = 127.0.0.1
smtp_port = {smtp.port}
confirmation_to_sender = true
confirmation_tags_count = 3
caption_target = both
[CaptionFile]
enabled = true
[State]
ledger_path = state/ledger.sqlite
""",
        encoding="utf-8",
    )
    env = subprocess_env(
        {
            **SECRETS,
            "DROPBOX_API_HOST": f"127.0.0.1:{dropbox_peer.port}",
            "DROPBOX_API_CONTENT_HOST": f"127.0.0.1:{dropbox_peer.port}",
            "REQUESTS_CA_BUNDLE": str(tls.ca_pem),  # requests (Dropbox SDK) trusts the test CA
            "SSL_CERT_FILE": str(tls.ca_pem),  # so does ssl.create_default_context() (SMTP STARTTLS)
            "PUBLISHER_AUTOINSTRUMENT": "1",
        }
    )
    yield Stack(root, ini, env, dropbox, dropbox_peer, openai, telegram, telegram_peer, graph, smtp)
    for peer in peers:
        peer.stop()
    smtp.stop()
    for peer in peers:
        assert not peer.errors, peer.errors


def publisher_events(stderr: str) -> List[dict]:
    return [e for e in json_events(stderr) if e.get("logger", "").startswith("publisher_v2")]


def test_cli_publishes_everywhere_archives_with_sidecar_and_times_every_stage(stack: Stack) -> None:
    done = stack.run()
    assert done.returncode == 0, done.stderr
    events = publisher_events(done.stderr)
    complete = next(e for e in events if e["message"] == "workflow_complete")
    name = complete["image_name"]
    stem = Path(name).stem
    assert complete["archived"] is True
    assert f"Published {name}" in done.stdout

    # Dropbox: the image and its sidecar moved to the archive; the sidecar starts with the SD caption.
    assert not (stack.inbox / name).exists() and not (stack.inbox / f"{stem}.txt").exists()
    assert (stack.inbox / "archive" / name).is_file()
    sidecar = (stack.inbox / "archive" / f"{stem}.txt").read_text()
    assert sidecar.splitlines()[0] == SD_CAPTION and "# ---" in sidecar
    assert stack.dropbox.tokens and "/2/files/list_folder/continue" in stack.dropbox_peer.paths()
    assert "/2/files/download" in stack.dropbox_peer.paths()

    # OpenAI: one vision call on the Dropbox temporary link, one JSON caption call.
    assert stack.openai.kinds() == ["vision", "json_caption"]
    vision_parts = stack.openai.calls[0]["messages"][1]["content"]
    image_url = next(p for p in vision_parts if p["type"] == "image_url")["image_url"]["url"]
    assert image_url.startswith(f"{stack.dropbox_peer.url}/tmp/")

    # Telegram got the resized photo, Instagram published the container, the mail arrived with a confirmation.
    (sent,) = stack.telegram.sent
    assert sent.chat_id == CHANNEL_ID and sent.caption.startswith(CAPTION) and sent.size == (1280, 960)
    assert len(stack.graph.published) == 1
    (container,) = stack.graph.containers.values()
    assert container.image_url.startswith(f"{stack.dropbox_peer.url}/tmp/")
    assert [r.rcpt_tos for r in stack.smtp.received] == [[RECIPIENT], [SMTP_USER]]
    mail = stack.smtp.received[0].message
    assert CAPTION in mail["Subject"]
    assert next(mail.iter_attachments()).get_filename() == name
    results = {e["platform"]: e["success"] for e in events if e["message"] == "publish_result"}
    assert results == {"telegram": True, "instagram": True, "email": True}

    # One correlation id across the run, and workflow_timing carries every stage field under it.
    cids = {e["correlation_id"] for e in events if "correlation_id" in e}
    assert len(cids) == 1
    (cid,) = cids
    assert f"correlation_id={cid}" in done.stdout
    timing = [e for e in events if e["message"] == "workflow_timing"]
    assert len(timing) == 1, done.stderr
    for field in STAGE_FIELDS:
        assert isinstance(timing[0].get(field), int) and timing[0][field] >= 0, (field, timing[0])
    assert timing[0]["correlation_id"] == cid
    assert timing[0]["image_name"] == name and timing[0]["success"] is True and timing[0]["archived"] is True


def test_no_secret_appears_in_any_output_even_when_things_go_wrong(stack: Stack) -> None:
    # Errors and retries are where secrets leak (URLs with tokens, request dumps): provoke some first.
    stack.dropbox_peer.inject("/2/files/list_folder", Reply.text("upstream trouble", status=503))
    stack.telegram_peer.inject(
        f"/bot{BOT_TOKEN}/sendPhoto", Reply.text("<html>bad gateway</html>", status=502)
    )
    done = stack.run()
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "dropbox_retry" in output and "telegram_retry" in output  # the error paths did log
    issued = stack.dropbox.tokens  # the access token the fake Dropbox handed out is a secret too
    assert issued
    for secret in [*SECRETS.values(), BOT_TOKEN.split(":", 1)[1], *issued]:
        if secret == CHANNEL_ID:
            continue  # a channel id is an address, not a credential
        assert secret not in output, f"secret {secret[:6]}… leaked"


def test_a_platform_that_failed_is_sent_again_alone_from_the_archive_and_only_once(stack: Stack) -> None:
    """Issue 22.1/22.2: SMTP refuses mail on the first run (telegram and instagram post, the image is archived);
    `ledger retry` then sends the email alone, from the Dropbox archive with the archived sidecar's captions."""
    stack.smtp.refusing = True
    first = stack.run()
    assert first.returncode == 3, first.stderr  # posted, but not everywhere
    name = next(e for e in publisher_events(first.stderr) if e["message"] == "workflow_complete")["image_name"]
    listing = f"publisher --config {stack.ini} ledger list"
    assert first.stdout.startswith(f"Published {name} to telegram, instagram; failed on email (SMTP 127.0.0.1:")
    assert f"; archived; 1 post needs attention: run `{listing}` [correlation_id=" in first.stdout
    event = verdict_event(first.stderr)
    assert event["message"] == "cli_partial_failure" and event["exit_code"] == 3
    assert event["verdict"].startswith(f"publisher: posted {name} only partly: email: SMTP 127.0.0.1:")
    retry = f"publisher --config {stack.ini} ledger retry {name}"
    assert event["verdict"].endswith(f"send the failed platforms again with `{retry}`")
    assert stack.smtp.refused >= 1 and stack.smtp.received == []
    assert (stack.inbox / "archive" / name).is_file() and not (stack.inbox / name).exists()
    shown = stack.run("ledger", "list")
    assert f"{name}  " in shown.stdout and "email      FAILED (SMTP 127.0.0.1:" in shown.stdout
    assert f"run: publisher --config {stack.ini} ledger retry {name}" in shown.stdout
    calls_before = stack.openai.kinds()

    stack.smtp.refusing = False
    retried = stack.run("ledger", "retry", name, "--platform", "email")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.splitlines()[-1] == f"{name}: finished (posted on email, instagram, telegram)"
    assert [r.rcpt_tos for r in stack.smtp.received] == [[RECIPIENT], [SMTP_USER]]  # the mail, and its confirmation
    mail = stack.smtp.received[0].message
    assert CAPTION in mail["Subject"] and next(mail.iter_attachments()).get_filename() == name
    assert len(stack.telegram.sent) == 1 and len(stack.graph.published) == 1  # the others were not sent again
    assert stack.openai.kinds() == calls_before  # the captions came from the archived sidecar
    assert (stack.inbox / "archive" / name).is_file() and not (stack.inbox / name).exists()

    again = stack.run("ledger", "retry", name)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"{name}: nothing to retry (posted on email, instagram, telegram on ")
    assert len(stack.smtp.received) == 2 and len(stack.telegram.sent) == 1 and len(stack.graph.published) == 1
    later = stack.run()
    assert later.returncode == 0, later.stderr
    assert "attention" not in later.stdout and later.stdout.startswith("Published ")
