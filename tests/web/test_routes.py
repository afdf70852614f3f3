"""Every route of the web app on a real library folder, ledger and outbox (FastAPI TestClient)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Callable, List

import pytest
from fastapi.testclient import TestClient

from publisher_v2.domain.captions import format_caption
from publisher_v2.domain.models import ImageEntry
from publisher_v2.ledger import PostLedger
from publisher_v2.services.storage.local import LocalStorage
from publisher_v2.web.errors import PublishInProgress
from publisher_v2.web.service import WebImageService
from tests.web.conftest import DEFAULT_INI, ClientFactory, Library, make_image, make_library

SIDECAR = '{sd}\n\n# ---\n# image_file: {name}\n# sha256: {sha}\n# tags: ["sea", "dusk"]\n'


def ledger_rows(library: Library) -> List[tuple]:
    with sqlite3.connect(library.ledger) as db:
        return db.execute("SELECT image_name, status FROM posted_images ORDER BY image_name").fetchall()


def outbox_files(library: Library) -> List[Path]:
    return sorted(p for p in library.outbox.rglob("*") if p.is_file()) if library.outbox.exists() else []


def outbox_posts(library: Library) -> List[dict]:
    """Every finished post (`outbox/<platform>/<post_id>/post.json`)."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(library.outbox.glob("*/*/post.json"))]


# -- page and health -----------------------------------------------------------------------------------------


def test_health_answers_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_page_is_html_with_a_strict_content_security_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert '<meta name="viewport"' in response.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200


def test_unknown_routes_answer_404_with_the_error_body(client: TestClient) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert client.get("/api/images/alpha.jpg/analyze").status_code == 405


# -- random image --------------------------------------------------------------------------------------------


def test_random_image_is_a_library_image_served_by_this_app(client: TestClient, library: Library) -> None:
    seen = set()
    for _ in range(30):
        response = client.get("/api/images/random")
        assert response.status_code == 200
        body = response.json()
        assert body["filename"] in library.names()
        assert body["temp_url"] == f"/api/images/{body['filename']}/file"
        assert body["has_sidecar"] is False and body["sd_caption"] is None and body["sha256"] is None
        seen.add(body["filename"])
    assert len(seen) > 1  # random, not always the first


def test_random_image_takes_captions_and_hash_from_the_sidecar(client: TestClient, library: Library) -> None:
    for name in library.names():
        sidecar = library.images / (Path(name).stem + ".txt")
        sidecar.write_text(
            SIDECAR.format(sd=f"sd caption of {name}", name=name, sha="f" * 64), encoding="utf-8"
        )
    body = client.get("/api/images/random").json()
    assert body["has_sidecar"] is True
    assert body["sd_caption"] == f"sd caption of {body['filename']}"
    assert body["caption"]
    # The hash is the sidecar's (a made-up value): the image itself was not read to compute one.
    assert body["sha256"] == "f" * 64
    assert body["metadata"]["image_file"] == body["filename"]


def test_random_image_prefers_images_the_ledger_has_not_seen(
    make_client: ClientFactory, library: Library
) -> None:
    storage = LocalStorage(library.images, hash_cache_path=library.ledger)
    ledger = PostLedger(library.ledger)
    names = library.names()
    for name in names[:-1]:
        entry = ImageEntry(name=name, size=0, modified=0.0)
        ledger.record_post(asyncio.run(storage.content_hash(entry)), name, {"telegram": {"success": True}})
    storage.close()
    ledger.close()
    client = make_client()
    assert {client.get("/api/images/random").json()["filename"] for _ in range(15)} == {names[-1]}


def test_random_image_on_an_empty_library_is_404(make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client(make_library(tmp_path / "empty", names=[]))
    response = client.get("/api/images/random")
    assert response.status_code == 404
    assert response.json() == {"detail": "No images found", "error": "No images found", "code": "no_images"}


def test_random_image_with_the_library_folder_gone_is_500_without_leaking_paths(
    client: TestClient, library: Library, web_events: Callable[[], List[dict]]
) -> None:
    shutil.rmtree(library.images)
    response = client.get("/api/images/random")
    assert response.status_code == 500  # upstream's status and detail for a storage failure
    assert response.json()["detail"] == "Internal error" and response.json()["code"] == "storage_error"
    assert str(library.root) not in response.text
    errors = [e for e in web_events() if e["message"] == "web_random_image_error"]
    assert len(errors) == 1 and errors[0]["level"] == "ERROR" and errors[0]["error"]


# -- image bytes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "media_type", "magic"),
    [("alpha.jpg", "image/jpeg", b"\xff\xd8"), ("charlie.png", "image/png", b"\x89PNG")],
)
def test_image_route_serves_the_bytes_with_their_content_type(
    client: TestClient, library: Library, name: str, media_type: str, magic: bytes
) -> None:
    response = client.get(f"/api/images/{name}/file")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (library.images / name).read_bytes() and response.content.startswith(magic)


def test_image_route_does_not_follow_a_symlink_out_of_the_library(
    client: TestClient, library: Library, tmp_path: Path
) -> None:
    outside = make_image(tmp_path / "outside.jpg")
    (library.images / "link.jpg").symlink_to(outside)
    assert client.get("/api/images/link.jpg/file").status_code == 404


# -- analyze -------------------------------------------------------------------------------------------------


def test_analyze_writes_the_sidecar_then_reuses_it_until_a_refresh(
    admin: TestClient, library: Library
) -> None:
    first = admin.post("/api/images/alpha.jpg/analyze")
    assert first.status_code == 200, first.text
    body = first.json()
    assert (
        body["filename"] == "alpha.jpg" and body["from_sidecar"] is False and body["sidecar_written"] is True
    )
    assert (
        body["caption"] and body["description"] and isinstance(body["tags"], list) and body["nsfw"] is False
    )
    sidecar = library.images / "alpha.txt"
    assert sidecar.is_file() and sidecar.read_text(encoding="utf-8").splitlines()[0] == body["sd_caption"]

    again = admin.post("/api/images/alpha.jpg/analyze").json()
    assert again["from_sidecar"] is True and again["sidecar_written"] is False
    assert again["sd_caption"] == body["sd_caption"]

    random_view = [admin.get("/api/images/random").json() for _ in range(30)]
    alpha = next(v for v in random_view if v["filename"] == "alpha.jpg")
    assert alpha["has_sidecar"] is True and alpha["sd_caption"] == body["sd_caption"]

    refreshed = admin.post("/api/images/alpha.jpg/analyze?force_refresh=true").json()
    assert refreshed["from_sidecar"] is False and refreshed["sidecar_written"] is True


def test_analyze_of_an_unreadable_image_is_422(admin: TestClient, library: Library) -> None:
    (library.images / "broken.jpg").write_bytes(b"this is not a jpeg")
    response = admin.post("/api/images/broken.jpg/analyze")
    assert response.status_code == 422
    assert response.json()["code"] == "unreadable_image"


def test_analyze_with_an_invalid_force_refresh_is_422(admin: TestClient) -> None:
    response = admin.post("/api/images/alpha.jpg/analyze?force_refresh=perhaps")
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


# -- publish -------------------------------------------------------------------------------------------------


def test_publish_posts_the_caption_the_admin_saw_archives_and_records_the_post(
    admin: TestClient, library: Library
) -> None:
    seen = admin.post("/api/images/bravo.jpg/analyze").json()
    response = admin.post("/api/images/bravo.jpg/publish")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["filename"] == "bravo.jpg" and body["any_success"] is True and body["archived"] is True
    assert set(body["results"]) == {"telegram", "email"}
    assert all(r["success"] and r["post_id"] for r in body["results"].values())
    posts = outbox_posts(library)
    assert sorted(p["platform"] for p in posts) == ["email", "telegram"]
    for post in posts:
        assert post["image_name"] == "bravo.jpg"
        assert post["caption"] == format_caption(post["platform"], seen["caption"])
        assert post["post_id"] == body["results"][post["platform"]]["post_id"]
    assert (library.archive / "bravo.jpg").is_file() and not (library.images / "bravo.jpg").exists()
    assert (library.archive / "bravo.txt").is_file()  # the sidecar moved with its image
    assert ledger_rows(library) == [("bravo.jpg", "posted")]
    assert admin.post("/api/images/bravo.jpg/publish").status_code == 404  # archived: gone from the library


def test_publish_can_be_restricted_to_some_platforms(admin: TestClient, library: Library) -> None:
    response = admin.post("/api/images/alpha.jpg/publish", json={"platforms": ["email"]})
    assert response.status_code == 200, response.text
    assert list(response.json()["results"]) == ["email"]


@pytest.mark.parametrize(
    "body", [{"platforms": ["myspace"]}, {"platforms": []}, {"platforms": "email"}]
)
def test_publish_with_unknown_platforms_or_a_bad_body_is_422_and_posts_nothing(
    admin: TestClient, library: Library, body: dict
) -> None:
    response = admin.post("/api/images/alpha.jpg/publish", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
    assert (library.images / "alpha.jpg").is_file() and outbox_files(library) == []


def test_publish_with_an_oversized_body_is_413(admin: TestClient) -> None:
    body = json.dumps({"platforms": ["email"] * 20_000})
    response = admin.post(
        "/api/images/alpha.jpg/publish", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_a_failing_platform_is_a_result_not_an_error(make_client: ClientFactory, tmp_path: Path) -> None:
    lib = make_library(
        tmp_path / "failing",
        ini_text=DEFAULT_INI.replace("outbox_folder = outbox", "outbox_folder = blocker/outbox"),
    )
    (lib.root / "blocker").write_text("a file where the outbox folder should be", encoding="utf-8")
    client = make_client(lib)
    from tests.web.conftest import login

    assert login(client).status_code == 200
    response = client.post("/api/images/alpha.jpg/publish")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["any_success"] is False and body["archived"] is False
    assert all(r["success"] is False and r["error"] for r in body["results"].values())
    assert (lib.images / "alpha.jpg").is_file()


async def test_a_second_publish_of_the_same_image_while_one_runs_is_refused(library: Library) -> None:
    service = WebImageService.from_config(library.config())
    try:
        outcomes = await asyncio.gather(
            service.publish_image("alpha.jpg"), service.publish_image("alpha.jpg"), return_exceptions=True
        )
    finally:
        service.close()
    refused = [o for o in outcomes if isinstance(o, PublishInProgress)]
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(refused) == 1 and len(done) == 1 and done[0].any_success
