"""LocalStorage: a real library folder, its hash cache in a real SQLite file, its archive and sidecars."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import List

import pytest
from PIL import Image

from publisher_v2.domain.errors import StorageError
from publisher_v2.domain.models import ImageEntry
from publisher_v2.ledger import PostLedger
from publisher_v2.services.storage.base import Storage
from publisher_v2.services.storage.local import LocalStorage
from publisher_v2.utils.images import dropbox_content_hash


def _jpeg(color: tuple = (10, 20, 30), size: tuple = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "library"
    root.mkdir()
    (root / "b.jpg").write_bytes(_jpeg((1, 1, 1)))
    (root / "a.PNG").write_bytes(_jpeg((2, 2, 2)))  # extensions match case-insensitively
    (root / "c.jpeg").write_bytes(_jpeg((3, 3, 3)))
    (root / "c.txt").write_text("sidecar of c", encoding="utf-8")
    (root / "notes.md").write_text("not an image", encoding="utf-8")
    (root / ".hidden.jpg").write_bytes(_jpeg())
    (root / "archive").mkdir()
    (root / "archive" / "old.jpg").write_bytes(_jpeg())
    (root / "nested").mkdir()
    (root / "nested" / "deep.jpg").write_bytes(_jpeg())
    (root / "folder.jpg").mkdir()  # a directory with an image-like name
    return root


@pytest.fixture
def cache_db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "publisher_state.sqlite"


def _names(entries: List[ImageEntry]) -> List[str]:
    return [e.name for e in entries]


def _rchar() -> int:
    """Bytes this process has read through read() syscalls, from the kernel's own counter."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_local_storage_satisfies_the_storage_protocol(library: Path) -> None:
    storage = LocalStorage(library)
    assert isinstance(storage, Storage)
    assert storage.backend_name == "local"
    assert storage.has_public_links() is False


async def test_listing_holds_only_top_level_visible_images_sorted(library: Path) -> None:
    entries = await LocalStorage(library).list_images()
    assert _names(entries) == ["a.PNG", "b.jpg", "c.jpeg"]
    b = entries[1]
    stat = (library / "b.jpg").stat()
    assert (b.size, b.modified) == (stat.st_size, stat.st_mtime)
    assert all(e.content_hash is None for e in entries)  # nothing hashed yet, and listing reads no bytes


async def test_missing_library_folder_is_a_storage_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "library"
    with pytest.raises(StorageError, match=str(missing)):
        await LocalStorage(missing).list_images()
    a_file = tmp_path / "file.jpg"
    a_file.write_bytes(b"x")
    with pytest.raises(StorageError, match="not a folder"):
        await LocalStorage(a_file).list_images()


@pytest.mark.parametrize(
    "bad",
    [
        "../b.jpg",
        "nested/deep.jpg",
        "nested\\deep.jpg",
        "b\x00.jpg",
        "/etc/b.jpg",
        "..",
        ".",
        "",
        "archive",
        "notes.md",
        "c.txt",
        ".hidden.jpg",
    ],
)
async def test_names_that_are_not_plain_image_names_are_rejected(library: Path, bad: str) -> None:
    storage = LocalStorage(library)
    with pytest.raises(StorageError):
        await storage.get_image(bad)
    with pytest.raises(StorageError):
        await storage.download_image(bad)
    with pytest.raises(StorageError):
        await storage.read_sidecar_text(bad)
    with pytest.raises(StorageError):
        await storage.write_sidecar_text(bad, "x")
    with pytest.raises(StorageError):
        await storage.archive_image(bad)
    with pytest.raises(StorageError):
        await storage.get_temporary_link(bad)
    assert (library / "notes.md").read_text(encoding="utf-8") == "not an image"


async def test_unknown_but_well_formed_name(library: Path) -> None:
    storage = LocalStorage(library)
    assert await storage.get_image("missing.jpg") is None
    assert await storage.get_image("folder.jpg") is None  # a directory is not an image
    with pytest.raises(StorageError, match="missing.jpg"):
        await storage.download_image("missing.jpg")
    with pytest.raises(StorageError, match="missing.jpg"):
        await storage.archive_image("missing.jpg")
    with pytest.raises(StorageError, match="missing.jpg"):
        await storage.write_sidecar_text("missing.jpg", "x")
    assert not (library / "missing.txt").exists()


async def test_get_image_download_link_and_metadata(library: Path) -> None:
    storage = LocalStorage(library)
    entry = await storage.get_image("b.jpg")
    assert entry is not None and entry.name == "b.jpg" and entry.size == (library / "b.jpg").stat().st_size
    assert await storage.download_image("b.jpg") == (library / "b.jpg").read_bytes()
    link = await storage.get_temporary_link("b.jpg")
    assert link == (library / "b.jpg").resolve().as_uri() and link.startswith("file:///")
    meta = await storage.get_file_metadata("b.jpg")
    stat = (library / "b.jpg").stat()
    assert meta == {"id": f"local:{stat.st_ino}", "rev": str(stat.st_mtime_ns)}


async def test_content_hash_is_the_dropbox_hash_and_is_listed_next_time(
    library: Path, cache_db: Path
) -> None:
    storage = LocalStorage(library, hash_cache_path=cache_db)
    entries = await storage.list_images()
    hashes = {e.name: await storage.content_hash(e) for e in entries}
    assert hashes == {e.name: dropbox_content_hash(library / e.name) for e in entries}
    again = await LocalStorage(library, hash_cache_path=cache_db).list_images()  # a new run, same cache file
    assert {e.name: e.content_hash for e in again} == hashes
    entry = await LocalStorage(library, hash_cache_path=cache_db).get_image("b.jpg")
    assert entry is not None and entry.content_hash == hashes["b.jpg"]


async def test_cached_hash_is_used_without_reading_the_file(library: Path, cache_db: Path) -> None:
    """Proof that no bytes are read: swap the bytes keeping size and mtime; the cache answers the old hash."""
    path = library / "b.jpg"
    storage = LocalStorage(library, hash_cache_path=cache_db)
    entry = next(e for e in await storage.list_images() if e.name == "b.jpg")
    original = await storage.content_hash(entry)
    stat = path.stat()
    path.write_bytes(bytes(reversed(path.read_bytes())))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size

    fresh = LocalStorage(library, hash_cache_path=cache_db)
    listed = next(e for e in await fresh.list_images() if e.name == "b.jpg")
    assert listed.content_hash == original
    assert await fresh.content_hash(listed) == original
    unlisted = ImageEntry(
        name="b.jpg", size=listed.size, modified=listed.modified
    )  # the cache, not the listing
    assert await fresh.content_hash(unlisted) == original
    assert original != dropbox_content_hash(path)


async def test_warm_cache_reads_almost_no_bytes_per_kernel_counter(tmp_path: Path, cache_db: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    for i in range(5):
        (root / f"img{i}.jpg").write_bytes(os.urandom(1_000_000))
    cold = LocalStorage(root, hash_cache_path=cache_db)
    before = _rchar()
    for entry in await cold.list_images():
        await cold.content_hash(entry)
    cold_read = _rchar() - before
    cold.close()

    warm = LocalStorage(root, hash_cache_path=cache_db)
    before = _rchar()
    for entry in await warm.list_images():
        await warm.content_hash(entry)
    warm_read = _rchar() - before
    assert cold_read >= 5_000_000
    assert warm_read < 200_000, warm_read  # a few SQLite pages, never the 5 MB of images


async def test_changed_mtime_or_size_rehashes(library: Path, cache_db: Path) -> None:
    path = library / "b.jpg"
    storage = LocalStorage(library, hash_cache_path=cache_db)
    first = await storage.content_hash(await storage.get_image("b.jpg"))  # type: ignore[arg-type]

    path.write_bytes(_jpeg((200, 0, 0)) + b"\0")  # new size
    resized = next(e for e in await storage.list_images() if e.name == "b.jpg")
    assert resized.content_hash is None
    second = await storage.content_hash(resized)
    assert second == dropbox_content_hash(path) != first

    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] = 1  # same size, new bytes, new mtime
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = next(e for e in await storage.list_images() if e.name == "b.jpg")
    assert touched.content_hash is None
    assert await storage.content_hash(touched) == dropbox_content_hash(path) != second


async def test_in_memory_cache_without_a_cache_file(library: Path, tmp_path: Path) -> None:
    storage = LocalStorage(library)
    entry = await storage.get_image("b.jpg")
    digest = await storage.content_hash(entry)  # type: ignore[arg-type]
    listed = next(e for e in await storage.list_images() if e.name == "b.jpg")
    assert listed.content_hash == digest
    assert not list(tmp_path.glob("**/*.sqlite"))


async def test_cache_and_ledger_share_one_wal_file(library: Path, cache_db: Path) -> None:
    storage = LocalStorage(library, hash_cache_path=cache_db)
    ledger = PostLedger(cache_db)
    entries = await storage.list_images()
    digest = await storage.content_hash(entries[0])
    assert ledger.claim(digest, entries[0].name)
    assert digest in ledger.known_hashes()
    assert ledger.journal_mode() == "wal"


async def test_concurrent_hashing_from_threads_is_consistent(library: Path, cache_db: Path) -> None:
    storage = LocalStorage(library, hash_cache_path=cache_db)
    entries = await storage.list_images()
    results = await asyncio.gather(*(storage.content_hash(e) for e in entries * 4))
    assert results == [dropbox_content_hash(library / e.name) for e in entries * 4]


async def test_sidecar_missing_reads_none_and_writes_atomically(library: Path) -> None:
    storage = LocalStorage(library)
    assert await storage.read_sidecar_text("b.jpg") is None
    assert await storage.read_sidecar_text("c.jpeg") == "sidecar of c"

    old = library / "c.txt"
    keep_old = library / "old-link"
    os.link(old, keep_old)  # a second name for the old file's inode
    await storage.write_sidecar_text("c.jpeg", "new text\nline 2\n")
    assert await storage.read_sidecar_text("c.jpeg") == "new text\nline 2\n"
    # Replaced by rename, not rewritten in place: the old inode still holds the old text.
    assert keep_old.read_text(encoding="utf-8") == "sidecar of c"
    assert old.stat().st_ino != keep_old.stat().st_ino
    assert not [p.name for p in library.iterdir() if p.name.endswith(".tmp")]


async def test_archive_moves_image_and_sidecar_creating_the_folder(tmp_path: Path, cache_db: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    (root / "x.jpg").write_bytes(_jpeg())
    (root / "x.txt").write_text("caption", encoding="utf-8")
    storage = LocalStorage(root, archive="done", hash_cache_path=cache_db)
    await storage.content_hash((await storage.list_images())[0])
    await storage.archive_image("x.jpg")
    assert sorted(p.name for p in (root / "done").iterdir()) == ["x.jpg", "x.txt"]
    assert (root / "done" / "x.txt").read_text(encoding="utf-8") == "caption"
    assert not (root / "x.jpg").exists() and not (root / "x.txt").exists()
    assert await storage.list_images() == []
    assert await storage.get_image("x.jpg") is None


async def test_archive_never_overwrites_an_archived_file(library: Path) -> None:
    storage = LocalStorage(library)
    archive = library / "archive"
    (archive / "c.jpeg").write_bytes(b"older c")
    (archive / "c.txt").write_text("older sidecar", encoding="utf-8")
    (archive / "c_1.jpeg").write_bytes(b"even older c")
    new_bytes = (library / "c.jpeg").read_bytes()
    await storage.archive_image("c.jpeg")
    assert (archive / "c.jpeg").read_bytes() == b"older c"
    assert (archive / "c.txt").read_text(encoding="utf-8") == "older sidecar"
    assert (archive / "c_1.jpeg").read_bytes() == b"even older c"
    assert (archive / "c_2.jpeg").read_bytes() == new_bytes
    assert (archive / "c_2.txt").read_text(encoding="utf-8") == "sidecar of c"  # the pair keeps one stem
    assert not (library / "c.jpeg").exists()


async def test_archive_without_sidecar_and_failure_is_storage_error(library: Path) -> None:
    storage = LocalStorage(library)
    await storage.archive_image("b.jpg")
    assert (library / "archive" / "b.jpg").is_file()
    blocked = LocalStorage(library, archive="blocker")
    (library / "blocker").write_text("a file where the archive folder should be", encoding="utf-8")
    with pytest.raises(StorageError, match="blocker"):
        await blocked.archive_image("c.jpeg")
    assert (library / "c.jpeg").is_file()


def test_archive_name_must_be_a_plain_folder_name(library: Path) -> None:
    for bad in ("", "..", "a/b", "/abs"):
        with pytest.raises(StorageError):
            LocalStorage(library, archive=bad)
