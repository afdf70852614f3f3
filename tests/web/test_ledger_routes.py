"""Every publish path claims in the ledger, and no path follows a symlink out of the library.

The app and the CLI run for real over a real library folder and ledger file; the competing run's claim is
taken with the ledger class itself, as another process would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List

import pytest
from fastapi.testclient import TestClient

from publisher_v2.ledger import PostLedger
from publisher_v2.utils.images import dropbox_content_hash
from tests.cli_output import verdict
from tests.conftest import BIN, json_events
from tests.web.conftest import DEFAULT_INI, ClientFactory, Library, login, make_image, make_library

NO_ARCHIVE_INI = DEFAULT_INI.replace("archive = true", "archive = false")


def run_cli(library: Library, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "publisher"), "--config", str(library.ini), *args], capture_output=True, text=True, timeout=120
    )


def posts(library: Library) -> List[Path]:
    return sorted(library.outbox.glob("*/*/post.json"))


@pytest.fixture
def escape(library: Library, tmp_path: Path) -> Path:
    """`escape.jpg` in the library: a symlink to a real image outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = make_image(outside / "secret.jpg", color=(1, 2, 3))
    (library.images / "escape.jpg").symlink_to(secret)
    (library.images / "inside_link.jpg").symlink_to(library.images / "alpha.jpg")
    return secret


def test_every_route_answers_a_symlink_out_of_the_library_like_an_unknown_file(
    make_client: ClientFactory, library: Library, escape: Path
) -> None:
    admin = make_client()
    assert login(admin).status_code == 200
    for method, suffix in (("get", "file"), ("post", "analyze"), ("post", "publish")):
        unknown = getattr(admin, method)(f"/api/images/nosuch.jpg/{suffix}")
        escaped = getattr(admin, method)(f"/api/images/escape.jpg/{suffix}")
        assert (
            (escaped.status_code, escaped.json())
            == (unknown.status_code, unknown.json())
            == (
                404,
                {"detail": "Image not found", "error": "Image not found", "code": "image_not_found"},
            )
        ), suffix
    shown = {admin.get("/api/images/random").json()["filename"] for _ in range(40)}
    assert "escape.jpg" not in shown and shown <= {"alpha.jpg", "bravo.jpg", "charlie.png", "inside_link.jpg"}
    assert admin.get("/api/images/inside_link.jpg/file").status_code == 200  # a link inside stays usable
    assert sorted(p.name for p in escape.parent.iterdir()) == ["secret.jpg"]  # nothing written beside it
    assert posts(library) == []
    assert PostLedger(library.ledger).get(dropbox_content_hash(escape)) is None


@pytest.mark.slow
def test_select_refuses_a_symlink_out_of_the_library_like_an_unknown_file(library: Library, escape: Path) -> None:
    unknown = run_cli(library, "--select", "nosuch.jpg")
    escaped = run_cli(library, "--select", "escape.jpg")
    assert unknown.returncode == escaped.returncode == 1
    assert verdict(escaped.stderr) == verdict(unknown.stderr).replace("nosuch.jpg", "escape.jpg")
    assert escape.is_file() and posts(library) == [] and not library.archive.exists()


@pytest.mark.slow
def test_a_claim_held_elsewhere_stops_select_and_web_publish_before_any_platform(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    library = make_library(tmp_path / "noarchive", ini_text=NO_ARCHIVE_INI)
    digest = dropbox_content_hash(library.images / "alpha.jpg")
    other_run = PostLedger(library.ledger)
    assert other_run.claim(digest, "alpha.jpg")

    refused = run_cli(library, "--select", "alpha.jpg")
    assert refused.returncode == 1
    assert verdict(refused.stderr) == (
        "publisher: error: Image alpha.jpg is being published by another run (claimed); see `publisher ledger list`"
    )
    assert [e["status"] for e in json_events(refused.stderr) if e["message"] == "workflow_claim_refused"] == ["claimed"]
    admin = make_client(library)
    assert login(admin).status_code == 200
    busy = admin.post("/api/images/alpha.jpg/publish")
    assert busy.status_code == 409
    message = "Image alpha.jpg is being published by another run (claimed); see `publisher ledger list`"
    assert busy.json() == {"detail": message, "error": message, "code": "publish_in_progress"}
    assert posts(library) == []

    assert other_run.release(digest)
    assert admin.post("/api/images/alpha.jpg/publish").status_code == 200
    assert len(posts(library)) == 2  # telegram + email
    again = admin.post("/api/images/alpha.jpg/publish")
    posted_at = other_run.get(digest)["posted_at"]  # type: ignore[index]
    assert again.status_code == 409
    message = f"Image alpha.jpg was already posted on {posted_at[:10]} {posted_at[11:19]} UTC"
    assert again.json() == {"detail": message, "error": message, "code": "already_posted"}
    assert len(posts(library)) == 2

    bypass = run_cli(library, "--select", "alpha.jpg")  # --select keeps its documented bypass, loudly
    assert bypass.returncode == 0, bypass.stderr
    assert "publisher: warning: alpha.jpg was already posted; --select posts it again" in bypass.stdout
    events = [e for e in json_events(bypass.stderr) if e["message"] == "select_reposting_posted_image"]
    assert events and events[0]["image_name"] == "alpha.jpg"
    assert len(posts(library)) == 4
    entry = other_run.entry(digest)
    assert entry is not None and (entry.status, entry.attempt) == ("posted", 2)


def test_web_publish_records_each_platform_outcome(admin: TestClient, library: Library) -> None:
    assert admin.post("/api/images/bravo.jpg/publish").status_code == 200
    entry = PostLedger(library.ledger).entry(dropbox_content_hash(library.archive / "bravo.jpg"))
    assert entry is not None and (entry.status, entry.archive_state) == ("posted", "done")
    assert {p: o.state for p, o in entry.platforms.items()} == {"telegram": "posted", "email": "posted"}
    assert all(o.post_id for o in entry.platforms.values())
