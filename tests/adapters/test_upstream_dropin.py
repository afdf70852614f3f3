"""Drop-in: an upstream operator's INI (upstream's email example shape), `.env` and cache folder, unchanged.

The `publisher` CLI runs in a subprocess from the operator's folder, with no `--env` (upstream found `.env` by
itself), against local peers: Dropbox over TLS (found through DROPBOX_API_HOST), OpenAI (OPENAI_BASE_URL) and
SMTP with STARTTLS (SMTP_SERVER / SMTP_PORT: the INI leaves them unset, as upstream allowed). Upstream's
posted.json names two of the three photos, so the run must post the third one.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from tests.adapters.conftest import DROPBOX_APP_KEY, DROPBOX_APP_SECRET, DROPBOX_REFRESH_TOKEN, Tls
from tests.adapters.peers.dropbox_fake import FakeDropbox
from tests.adapters.peers.httpd import HttpPeer
from tests.adapters.peers.openai_fake import API_KEY, FakeOpenAI
from tests.adapters.peers.smtp_fake import SMTP_PASSWORD, SMTP_USER, SmtpServer
from tests.adapters.test_end_to_end_cli import PUBLISHER, jpeg, publisher_events, subprocess_env

pytestmark = pytest.mark.slow

RECIPIENT = "someone@example.com"
UPSTREAM_INI = f"""; Example INI for running only the Email publisher in V2 (upstream's shape, unchanged keys)

[Dropbox]
image_folder = /Photos/to_post
archive = archive

[Content]
; Hashtags are ignored for Email/FetLife in V2
hashtag_string =
archive = true
debug = false
telegram = false
instagram = false
fetlife = true        ; enables Email publisher per V2 loader mapping

[openAI]
model = gpt-4o-mini           ; legacy: one model for both tasks
system_prompt = You are a senior copywriter for email posts.
role_prompt = Write 1-2 short sentences. End with an open question.

[Email]
sender = {SMTP_USER}
recipient = {RECIPIENT}
; Where to place the caption:
caption_target = subject         ; subject | body | both
subject_mode = normal            ; normal | private | avatar
confirmation_to_sender = false
"""


@pytest.fixture
def operator(tmp_path: Path, tls: Tls) -> Iterator[Tuple[Path, dict, FakeDropbox, FakeOpenAI, SmtpServer, Path]]:
    root = tmp_path / "dropbox"
    inbox = root / "Photos" / "to_post"
    inbox.mkdir(parents=True)
    for i, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        (inbox / f"photo{i}.jpg").write_bytes(jpeg(color))
    dropbox = FakeDropbox(root, DROPBOX_APP_KEY, DROPBOX_APP_SECRET, DROPBOX_REFRESH_TOKEN, page_size=2)
    openai = FakeOpenAI()
    smtp = SmtpServer(tls.server_context()).start()
    dropbox_peer, openai_peer = HttpPeer(dropbox, tls.server_context()), HttpPeer(openai)
    for peer in (dropbox_peer, openai_peer):
        peer.start()
    dropbox.base_url = dropbox_peer.url
    home = tmp_path / "operator"
    home.mkdir()
    (home / "configfiles").mkdir()
    (home / "configfiles" / "email_service.ini").write_text(UPSTREAM_INI, encoding="utf-8")
    (home / ".env").write_text(
        f"DROPBOX_APP_KEY={DROPBOX_APP_KEY}\nDROPBOX_APP_SECRET={DROPBOX_APP_SECRET}\n"
        f"DROPBOX_REFRESH_TOKEN={DROPBOX_REFRESH_TOKEN}\nOPENAI_API_KEY={API_KEY}\nEMAIL_PASSWORD={SMTP_PASSWORD}\n"
        f"SMTP_SERVER=127.0.0.1\nSMTP_PORT={smtp.port}\n",
        encoding="utf-8",
    )
    cache = tmp_path / "xdg-cache"
    (cache / "publisher_v2").mkdir(parents=True)
    posted = sorted(hashlib.sha256((inbox / f"photo{i}.jpg").read_bytes()).hexdigest() for i in (0, 1))
    (cache / "publisher_v2" / "posted.json").write_text(json.dumps(posted), encoding="utf-8")
    env = subprocess_env(
        {
            "DROPBOX_API_HOST": f"127.0.0.1:{dropbox_peer.port}",
            "DROPBOX_API_CONTENT_HOST": f"127.0.0.1:{dropbox_peer.port}",
            "OPENAI_BASE_URL": f"{openai_peer.url}/v1",
            "REQUESTS_CA_BUNDLE": str(tls.ca_pem),
            "SSL_CERT_FILE": str(tls.ca_pem),
            "XDG_CACHE_HOME": str(cache),
        }
    )
    yield home, env, dropbox, openai, smtp, inbox
    for peer in (dropbox_peer, openai_peer):
        peer.stop()
        assert not peer.errors, peer.errors
    smtp.stop()


def test_upstream_ini_env_and_cache_run_unchanged(operator) -> None:
    home, env, _dropbox, openai, smtp, inbox = operator
    done = subprocess.run(
        [str(PUBLISHER), "--config", "configfiles/email_service.ini"],
        env=env,
        cwd=str(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    events = publisher_events(done.stderr)
    [imported] = [e for e in events if e["message"] == "upstream_state_imported"]
    assert (imported["hashes"], imported["imported"]) == (2, 2)
    complete = next(e for e in events if e["message"] == "workflow_complete")
    assert complete["image_name"] == "photo2.jpg" and complete["archived"] is True
    assert complete["platforms"] == {"email": True}
    # Upstream's meaning: Dropbox (archived there), OpenAI with the legacy `model` for both calls, real email.
    assert (inbox / "archive" / "photo2.jpg").is_file() and not (inbox / "photo2.jpg").exists()
    assert (inbox / "photo0.jpg").is_file() and (inbox / "photo1.jpg").is_file()
    assert openai.calls and {call["model"] for call in openai.calls} == {"gpt-4o-mini"}
    assert [r.rcpt_tos for r in smtp.received] == [[RECIPIENT]]
