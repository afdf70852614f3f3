"""LocalStorage's listing cache: reused while the folder is unchanged, never stale after a change."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from publisher_v2.services.storage.local import LocalStorage


def _jpeg(path: Path) -> None:
    Image.new("RGB", (8, 6), (200, 10, 10)).save(path, "JPEG")


async def test_unchanged_folder_returns_the_remembered_listing_without_scanning(tmp_path: Path) -> None:
    for i in range(3):
        _jpeg(tmp_path / f"a{i}.jpg")
    storage = LocalStorage(tmp_path)
    first = await storage.list_images()
    # Prove the second call does not rescan: a file changed in place keeps the folder mtime, so the cached
    # entry (old size) is what comes back.
    before = os.stat(tmp_path).st_mtime_ns
    (tmp_path / "a0.jpg").write_bytes((tmp_path / "a0.jpg").read_bytes() + b"\0" * 10)
    assert os.stat(tmp_path).st_mtime_ns == before
    second = await storage.list_images()
    assert [e.name for e in second] == [e.name for e in first]
    assert second[0].size == first[0].size


async def test_added_and_removed_files_show_up_at_once(tmp_path: Path) -> None:
    _jpeg(tmp_path / "a.jpg")
    storage = LocalStorage(tmp_path)
    assert [e.name for e in await storage.list_images()] == ["a.jpg"]
    _jpeg(tmp_path / "b.jpg")
    os.utime(tmp_path, ns=(0, os.stat(tmp_path).st_mtime_ns + 1))  # a coarse clock cannot hide the change
    assert [e.name for e in await storage.list_images()] == ["a.jpg", "b.jpg"]
    (tmp_path / "a.jpg").unlink()
    os.utime(tmp_path, ns=(0, os.stat(tmp_path).st_mtime_ns + 1))
    assert [e.name for e in await storage.list_images()] == ["b.jpg"]


async def test_archiving_through_the_storage_invalidates_the_listing(tmp_path: Path) -> None:
    _jpeg(tmp_path / "a.jpg")
    _jpeg(tmp_path / "b.jpg")
    storage = LocalStorage(tmp_path)
    assert len(await storage.list_images()) == 2
    await storage.archive_image("a.jpg")
    assert [e.name for e in await storage.list_images()] == ["b.jpg"]


async def test_returned_lists_are_copies(tmp_path: Path) -> None:
    _jpeg(tmp_path / "a.jpg")
    storage = LocalStorage(tmp_path)
    (await storage.list_images()).clear()
    assert [e.name for e in await storage.list_images()] == ["a.jpg"]
