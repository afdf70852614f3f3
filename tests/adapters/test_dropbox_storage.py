"""DropboxStorage driven by the real `dropbox` SDK against the local TLS stand-in of the Dropbox API."""

from __future__ import annotations

import io
import json
import ssl
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from publisher_v2.domain.errors import StorageError
from publisher_v2.services.storage.base import Storage
from publisher_v2.services.storage.dropbox import DropboxStorage
from tests.adapters.conftest import DROPBOX_APP_KEY, DROPBOX_APP_SECRET, DROPBOX_REFRESH_TOKEN, DropboxPeer
from tests.adapters.peers.dropbox_fake import content_hash
from tests.adapters.peers.httpd import Reply


def jpeg(color: tuple, size: tuple = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def make_storage(peer: DropboxPeer, **overrides: object) -> DropboxStorage:
    options = dict(
        app_key=DROPBOX_APP_KEY,
        app_secret=DROPBOX_APP_SECRET,
        refresh_token=DROPBOX_REFRESH_TOKEN,
        image_folder="/Photos/inbox",
        archive="archive",
        timeout_seconds=5.0,
        max_retries=2,
        retry_backoff_seconds=0.01,
        ca_certs=str(peer.ca_pem),
    )
    options.update(overrides)
    return DropboxStorage(**options)  # type: ignore[arg-type]


@pytest.fixture
def library(dropbox_peer: DropboxPeer) -> Path:
    """/Photos/inbox with 7 images (more than two pages of 3), a sidecar, a text file and a subfolder."""
    inbox = dropbox_peer.root / "Photos" / "inbox"
    (inbox / "archive").mkdir(parents=True)
    for i in range(7):
        (inbox / f"img{i}.jpg").write_bytes(jpeg((30 * i, 10, 200 - 20 * i)))
    (inbox / "img0.txt").write_text("old sd caption\n")
    (inbox / "notes.md").write_text("not an image")
    (inbox / ".hidden.jpg").write_bytes(jpeg((1, 2, 3)))
    return inbox


async def test_dropbox_storage_satisfies_the_storage_protocol(dropbox_peer: DropboxPeer) -> None:
    storage = make_storage(dropbox_peer)
    assert isinstance(storage, Storage)
    assert storage.backend_name == "dropbox"
    assert storage.has_public_links() is True


async def test_listing_follows_every_page_and_keeps_dropbox_content_hashes(
    dropbox_peer: DropboxPeer, library: Path
) -> None:
    storage = make_storage(dropbox_peer)
    entries = await storage.list_images()
    assert [e.name for e in entries] == [f"img{i}.jpg" for i in range(7)]
    assert dropbox_peer.fake.list_pages_served >= 3  # 10 entries at 3 per page
    assert "/2/files/list_folder/continue" in dropbox_peer.peer.paths()
    for entry in entries:
        data = (library / entry.name).read_bytes()
        assert entry.content_hash == content_hash(data)
        assert entry.size == len(data)
        assert entry.modified > 0


async def test_content_hash_of_a_listed_entry_reads_nothing(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer)
    entries = await storage.list_images()
    before = len(dropbox_peer.peer.requests)
    hashes = [await storage.content_hash(e) for e in entries]
    assert len(dropbox_peer.peer.requests) == before
    assert hashes == [e.content_hash for e in entries]
    assert "/2/files/download" not in dropbox_peer.peer.paths()


async def test_refresh_token_is_exchanged_once_for_an_access_token(
    dropbox_peer: DropboxPeer, library: Path
) -> None:
    storage = make_storage(dropbox_peer)
    await storage.list_images()
    await storage.get_image("img1.jpg")
    token_calls = [r for r in dropbox_peer.peer.requests if r.path == "/oauth2/token"]
    assert len(token_calls) == 1
    assert token_calls[0].form()["refresh_token"] == DROPBOX_REFRESH_TOKEN


async def test_wrong_refresh_token_is_a_storage_error_without_the_secret(
    dropbox_peer: DropboxPeer, library: Path
) -> None:
    storage = make_storage(dropbox_peer, refresh_token="not-the-right-refresh-token")
    with pytest.raises(StorageError) as info:
        await storage.list_images()
    assert "/Photos/inbox" in str(info.value)
    assert "not-the-right-refresh-token" not in str(info.value)


async def test_get_image_download_link_and_metadata(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer)
    entry = await storage.get_image("img2.jpg")
    assert entry is not None and entry.content_hash == content_hash((library / "img2.jpg").read_bytes())
    assert await storage.get_image("missing.jpg") is None
    assert await storage.download_image("img2.jpg") == (library / "img2.jpg").read_bytes()
    link = await storage.get_temporary_link("img2.jpg")
    assert link.startswith(f"https://{dropbox_peer.host}/tmp/")
    context = ssl.create_default_context(cafile=str(dropbox_peer.ca_pem))
    with urllib.request.urlopen(link, context=context, timeout=5) as response:  # noqa: S310 - local peer
        assert response.read() == (library / "img2.jpg").read_bytes()
    meta = await storage.get_file_metadata("img2.jpg")
    assert meta["id"].startswith("id:") and len(meta["rev"]) >= 9


async def test_download_of_a_missing_image_names_the_path(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer)
    with pytest.raises(StorageError, match="/Photos/inbox/gone.jpg"):
        await storage.download_image("gone.jpg")


async def test_sidecar_round_trip_overwrites(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer)
    assert await storage.read_sidecar_text("img0.jpg") == "old sd caption\n"
    assert await storage.read_sidecar_text("img3.jpg") is None
    await storage.write_sidecar_text("img0.jpg", "a new caption\n\n# ---\n# image_file: img0.jpg\n")
    assert (library / "img0.txt").read_text() == "a new caption\n\n# ---\n# image_file: img0.jpg\n"
    assert await storage.read_sidecar_text("img0.jpg") == "a new caption\n\n# ---\n# image_file: img0.jpg\n"
    upload = next(r for r in dropbox_peer.peer.requests if r.path == "/2/files/upload")
    assert json.loads(upload.headers["dropbox-api-arg"])["path"] == "/Photos/inbox/img0.txt"


async def test_archive_moves_image_and_sidecar_into_the_archive_folder(
    dropbox_peer: DropboxPeer, library: Path
) -> None:
    storage = make_storage(dropbox_peer)
    data = (library / "img0.jpg").read_bytes()
    await storage.archive_image("img0.jpg")
    assert not (library / "img0.jpg").exists() and not (library / "img0.txt").exists()
    assert (library / "archive" / "img0.jpg").read_bytes() == data
    assert (library / "archive" / "img0.txt").read_text() == "old sd caption\n"
    assert "img0.jpg" not in [e.name for e in await storage.list_images()]


async def test_archive_autorenames_on_a_clash_and_keeps_the_sidecar_beside_its_image(
    dropbox_peer: DropboxPeer, library: Path
) -> None:
    (library / "archive" / "img0.jpg").write_bytes(b"an older post")
    (library / "archive" / "img0.txt").write_text("older sidecar")
    storage = make_storage(dropbox_peer)
    await storage.archive_image("img0.jpg")
    assert (library / "archive" / "img0.jpg").read_bytes() == b"an older post"
    assert (library / "archive" / "img0 (1).jpg").is_file()
    assert (library / "archive" / "img0 (1).txt").read_text() == "old sd caption\n"


async def test_archive_without_a_sidecar_moves_only_the_image(
    dropbox_peer: DropboxPeer, library: Path
) -> None:
    storage = make_storage(dropbox_peer)
    await storage.archive_image("img4.jpg")
    assert (library / "archive" / "img4.jpg").is_file()
    assert sorted(p.name for p in (library / "archive").iterdir()) == ["img4.jpg"]


async def test_a_5xx_then_success_is_retried(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer)
    dropbox_peer.peer.inject("/2/files/list_folder", Reply.text("upstream broke", status=503))
    dropbox_peer.peer.inject("/2/files/download", Reply.text("oops", status=500))
    assert len(await storage.list_images()) == 7
    assert await storage.download_image("img1.jpg") == (library / "img1.jpg").read_bytes()
    assert dropbox_peer.peer.paths().count("/2/files/list_folder") == 2
    assert dropbox_peer.peer.paths().count("/2/files/download") == 2


async def test_a_429_then_success_is_retried(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer)
    await storage.list_images()  # token first, so the injected 429 hits the API route
    rate_limited = Reply.json(
        {
            "error_summary": "too_many_requests/",
            "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 0},
        },
        status=429,
    )
    dropbox_peer.peer.inject("/2/files/get_metadata", rate_limited)
    assert (await storage.get_image("img5.jpg")) is not None
    assert dropbox_peer.peer.paths().count("/2/files/get_metadata") == 2


async def test_a_failing_token_endpoint_is_retried(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer)
    dropbox_peer.peer.inject("/oauth2/token", Reply.text("bad gateway", status=502))
    assert len(await storage.list_images()) == 7
    assert dropbox_peer.peer.paths().count("/oauth2/token") == 2


async def test_persistent_5xx_gives_up_after_the_bounded_retries(
    dropbox_peer: DropboxPeer, library: Path
) -> None:
    storage = make_storage(dropbox_peer, max_retries=2)
    await storage.list_images()
    dropbox_peer.peer.inject("/2/files/get_temporary_link", *[Reply.text("down", status=500)] * 5)
    with pytest.raises(StorageError, match=r"/Photos/inbox/img1.jpg after 3 attempts"):
        await storage.get_temporary_link("img1.jpg")
    assert dropbox_peer.peer.paths().count("/2/files/get_temporary_link") == 3


async def test_not_found_is_not_retried(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer)
    with pytest.raises(StorageError, match="/Photos/inbox/ghost.jpg"):
        await storage.get_temporary_link("ghost.jpg")
    assert dropbox_peer.peer.paths().count("/2/files/get_temporary_link") == 1


async def test_a_missing_folder_is_a_storage_error_naming_it(dropbox_peer: DropboxPeer) -> None:
    storage = make_storage(dropbox_peer, image_folder="/Nowhere")
    with pytest.raises(StorageError, match="/Nowhere"):
        await storage.list_images()


async def test_read_timeout_is_retried_then_reported(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer, timeout_seconds=0.3, max_retries=1)
    await storage.list_images()
    slow = Reply.json({}, delay=1.0)
    dropbox_peer.peer.inject("/2/files/get_metadata", slow, slow)
    with pytest.raises(StorageError, match="img1.jpg after 2 attempts"):
        await storage.get_image("img1.jpg")


async def test_untrusted_certificate_fails_without_retrying(dropbox_peer: DropboxPeer, library: Path) -> None:
    storage = make_storage(dropbox_peer, ca_certs=None)
    with pytest.raises(StorageError, match="SSL"):
        await storage.list_images()
    assert dropbox_peer.peer.paths().count("/oauth2/token") <= 1


@pytest.mark.parametrize(
    "name", ["../secret.jpg", "a/b.jpg", "", ".", "..", "x\\y.jpg", "notes.md", " a.jpg"]
)
async def test_names_must_be_plain_image_file_names(
    dropbox_peer: DropboxPeer, library: Path, name: str
) -> None:
    storage = make_storage(dropbox_peer)
    with pytest.raises(StorageError):
        await storage.download_image(name)
    with pytest.raises(StorageError):
        await storage.archive_image(name)
    assert "/2/files/download" not in dropbox_peer.peer.paths()


def test_archive_must_be_a_plain_folder_name(dropbox_peer: DropboxPeer) -> None:
    with pytest.raises(StorageError):
        make_storage(dropbox_peer, archive="../elsewhere")
