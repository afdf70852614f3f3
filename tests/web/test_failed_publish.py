"""A web publish that fails past `mark_publishing` leaves nothing 'held by a live run' (issue 21.3).

The worker lives on after the request, so a claim carrying the worker's pid looked alive for ever: CLI runs
skipped the post, `ledger retry` refused it, `ledger list` called its owner alive. Real failures, injected at the
storage / ledger boundary through real surfaces:

- the archive folder cannot be created (a file is in its place): the post is recorded, the archive fails;
- the throw-away PostgreSQL ledger is stopped while the platform (a real HTTP peer) is being called, so the
  outcome cannot be recorded; the answer must say what was posted, and once the ledger is back the post is
  handed over and `ledger retry` completes it without posting anything twice.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import httpx
import pytest

from publisher_v2.web.auth import COOKIE_NAME
from tests.adapters.peers.httpd import HttpPeer
from tests.adapters.peers.telegram_fake import BOT_TOKEN, CHANNEL_ID, FakeTelegram
from tests.conftest import BIN
from tests.web.conftest import ADMIN_PASSWORD, DEFAULT_INI, Server, make_library

pytestmark = pytest.mark.slow


def cli(ini: Path, *args: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "publisher"), "--config", str(ini), *args], capture_output=True, text=True, timeout=120, env=env
    )


def unfinished(ini: Path, env: Dict[str, str]) -> list:
    listed = cli(ini, "ledger", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)["unfinished"]


def admin_cookie(base: str) -> Dict[str, str]:
    login = httpx.post(base + "/api/admin/login", json={"password": ADMIN_PASSWORD}, timeout=10)
    assert login.status_code == 200, login.text
    return {COOKIE_NAME: login.cookies[COOKIE_NAME]}


def test_a_publish_whose_archive_fails_is_left_retryable_not_held(
    start_server: Callable[..., Server], tmp_path: Path, clean_env: Dict[str, str]
) -> None:
    lib = make_library(tmp_path / "lib")
    lib.archive.write_text("not a folder")  # archiving will fail: the post is recorded, the image stays
    server = start_server({"CONFIG_PATH": str(lib.ini), "web_admin_pw": ADMIN_PASSWORD})
    answer = httpx.post(server.base_url + "/api/images/alpha.jpg/publish", cookies=admin_cookie(server.base_url),
                        timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["any_success"] is True and answer.json()["archived"] is False

    [entry] = unfinished(lib.ini, clean_env)  # the worker is alive, but the request that held the post ended
    assert entry["image_name"] == "alpha.jpg" and entry["status"] == "posted"
    assert entry["owner_alive"] is False, entry
    lib.archive.unlink()
    retried = cli(lib.ini, "ledger", "retry", "alpha.jpg", env=clean_env)  # no --force needed
    assert retried.returncode == 0, retried.stderr
    assert (lib.archive / "alpha.jpg").is_file() and unfinished(lib.ini, clean_env) == []
    assert len(list((lib.outbox / "telegram").iterdir())) == 1  # posted once


class StopsTheLedger(FakeTelegram):
    """Telegram that stops the PostgreSQL ledger while a photo is being sent, then answers that it posted it."""

    def __init__(self, pg: Any) -> None:
        super().__init__()
        self.pg = pg
        self.stopped = False

    def __call__(self, request: Any) -> Any:
        if request.path.endswith("/sendPhoto") and not self.stopped:
            self.stopped = True
            self.pg.stop()
        return super().__call__(request)


@pytest.fixture
def telegram_stopping_pg(pg_server: Any) -> Iterator[StopsTheLedger]:
    telegram = StopsTheLedger(pg_server)
    peer = HttpPeer(telegram).start()
    telegram.url = peer.url  # type: ignore[attr-defined]
    try:
        yield telegram
    finally:
        peer.stop()
        if telegram.stopped:
            with contextlib.suppress(subprocess.CalledProcessError):  # already started again by the test
                pg_server.start()


def test_ledger_lost_mid_publish_answers_what_was_posted_and_hands_the_post_over(
    start_server: Callable[..., Server],
    tmp_path: Path,
    clean_env: Dict[str, str],
    pg_server: Any,
    telegram_stopping_pg: StopsTheLedger,
) -> None:
    url = pg_server.url(pg_server.new_database())
    ini_text = DEFAULT_INI.replace("backend = outbox\noutbox_folder = outbox", "backend = live\ntimeout_seconds = 10")
    ini_text = ini_text.replace("email = true\n", "")
    ini_text = ini_text.replace("[State]\n", f"[State]\nurl = {url}\n")
    ini_text += f"\n[Telegram]\nbase_url = {telegram_stopping_pg.url}/bot\nretry_backoff_seconds = 0.05\n"  # type: ignore[attr-defined]
    lib = make_library(tmp_path / "lib", ini_text=ini_text)
    env = dict(clean_env, TELEGRAM_BOT_TOKEN=BOT_TOKEN, TELEGRAM_CHANNEL_ID=CHANNEL_ID)
    server = start_server({**env, "CONFIG_PATH": str(lib.ini), "web_admin_pw": ADMIN_PASSWORD})

    answer = httpx.post(server.base_url + "/api/images/alpha.jpg/publish", cookies=admin_cookie(server.base_url),
                        timeout=60)
    assert telegram_stopping_pg.stopped
    body = answer.json()  # JSON, saying what was posted; not a bare "The image library failed"
    assert answer.status_code == 500 and body["code"] == "publish_not_recorded", body
    assert body["filename"] == "alpha.jpg"
    assert body["results"]["telegram"]["success"] is True and body["results"]["telegram"]["post_id"]
    assert "posted to telegram" in body["error"]

    pg_server.start()  # the ledger is back
    [held] = unfinished(lib.ini, env)  # before the worker could hand it over: the request's owner, not the pid's
    assert held["claim_owner"].startswith("web:") and held["owner_alive"] is not True, held  # expires by the TTL
    assert httpx.get(server.base_url + "/api/images/random", timeout=10).status_code == 200  # any later request
    [entry] = unfinished(lib.ini, env)
    assert entry["image_name"] == "alpha.jpg" and entry["status"] == "publishing"
    assert entry["owner_alive"] is False and entry["claim_owner"].startswith("released:web:"), entry
    # What Telegram answered was recorded from the request's memory: not an unknown outcome.
    assert entry["platforms"]["telegram"]["state"] == "posted", entry

    retried = cli(lib.ini, "ledger", "retry", "alpha.jpg", env=env)  # no --force: nobody holds it
    assert retried.returncode == 0, retried.stderr
    assert unfinished(lib.ini, env) == [] and (lib.archive / "alpha.jpg").is_file()
    assert len(telegram_stopping_pg.sent) == 1  # posted once, never re-sent
