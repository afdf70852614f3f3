"""LocalStorage: the embedded default image library, a folder on disk.

Images sit directly in the folder, caption sidecars (`<stem>.txt`) beside them, and posted images move to an
archive subfolder. Content hashes are Dropbox's (see `utils.images.dropbox_content_hash`) so the dedup ledger
means the same thing for both backends, and they are cached by (name, size, mtime_ns) in an SQLite table: a
second run over an unchanged library reads no image bytes to know which images were already posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from publisher_v2.domain.errors import StorageError
from publisher_v2.domain.models import ImageEntry
from publisher_v2.services.storage.base import IMAGE_EXTENSIONS
from publisher_v2.utils.images import dropbox_content_hash
from publisher_v2.utils.logging import log_json
from publisher_v2.utils.sqlite_wal import connect_wal

logger = logging.getLogger("publisher_v2.storage.local")

_CACHE_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_hash_cache (
    folder       TEXT NOT NULL,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    mtime_ns     INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    PRIMARY KEY (folder, name)
)
"""

#: (size, mtime_ns) of a file: when either changes, its cached hash is stale.
_FileKey = Tuple[int, int]


class HashCache:
    """Content hashes keyed by (folder, name, size, mtime_ns): an SQLite table, or a dict without a file.

    Several processes may share the file: writes are single INSERT OR REPLACE statements in WAL mode with a
    busy timeout, and a lost race only means one file is hashed twice.
    """

    def __init__(self, path: Optional[Path], folder: str) -> None:
        self.path = path
        self.folder = folder
        self._memory: Dict[str, Tuple[int, int, str]] = {}
        self._lock = threading.Lock()
        self._conn: Optional[sqlite3.Connection] = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_wal(self.path)
            conn.execute(_CACHE_SCHEMA)
            self._conn = conn
        return self._conn

    def _sql(self, action: str, sql: str, params: tuple) -> list:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except (sqlite3.Error, OSError) as exc:
                raise StorageError(f"Hash cache {self.path}: {action} failed: {exc}") from None

    def load(self) -> Dict[str, Tuple[int, int, str]]:
        """Every cached row of this folder: {name: (size, mtime_ns, hash)}; later lookups are dict hits."""
        if self.path is not None:
            rows = self._sql(
                "load",
                "SELECT name, size, mtime_ns, content_hash FROM local_hash_cache WHERE folder = ?",
                (self.folder,),
            )
            self._memory = {name: (size, mtime_ns, digest) for name, size, mtime_ns, digest in rows}
        return dict(self._memory)

    def get(self, name: str, key: _FileKey) -> Optional[str]:
        """The hash cached for `name` at exactly this (size, mtime_ns), else None."""
        hit = self._memory.get(name)
        if hit is None and self.path is not None:
            rows = self._sql(
                "get",
                "SELECT size, mtime_ns, content_hash FROM local_hash_cache WHERE folder = ? AND name = ?",
                (self.folder, name),
            )
            hit = tuple(rows[0]) if rows else None  # type: ignore[assignment]
        if hit is not None and (hit[0], hit[1]) == key:
            return hit[2]
        return None

    def put(self, name: str, key: _FileKey, digest: str) -> None:
        self._memory[name] = (key[0], key[1], digest)
        if self.path is not None:
            self._sql(
                "put",
                "INSERT OR REPLACE INTO local_hash_cache (folder, name, size, mtime_ns, content_hash)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.folder, name, key[0], key[1], digest),
            )

    def forget(self, names: List[str]) -> None:
        """Drop rows of files that left the folder (archived, deleted): the table stays the library's size."""
        for name in names:
            self._memory.pop(name, None)
        if self.path is not None and names:
            with self._lock:
                try:
                    conn = self._connection()
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(
                        "DELETE FROM local_hash_cache WHERE folder = ? AND name = ?",
                        [(self.folder, n) for n in names],
                    )
                    conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    if self._conn is not None and self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise StorageError(f"Hash cache {self.path}: forget failed: {exc}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _file_key(st: os.stat_result) -> _FileKey:
    return st.st_size, st.st_mtime_ns


def _is_image_name(name: str) -> bool:
    stem, dot, ext = name.rpartition(".")
    return bool(stem and dot) and not name.startswith(".") and f".{ext.lower()}" in IMAGE_EXTENSIONS


class LocalStorage:
    """A library folder on disk, implementing the Storage protocol."""

    backend_name = "local"

    def __init__(
        self, image_folder: Path, archive: str = "archive", hash_cache_path: Optional[Path] = None
    ) -> None:
        self.folder = Path(image_folder).expanduser().absolute()
        if not archive or archive in (".", "..") or any(sep in archive for sep in ("/", "\\", "\x00")):
            raise StorageError(
                f"Archive folder must be a plain folder name inside {self.folder}, got {archive!r}"
            )
        self.archive_folder = self.folder / archive
        self._real_folder: Optional[Path] = None
        self._cache = HashCache(
            Path(hash_cache_path) if hash_cache_path is not None else None, str(self.folder)
        )
        # The last listing, keyed by the folder's (inode, mtime_ns): adding, removing or renaming a file changes
        # the folder's mtime, so an unchanged key means an unchanged set of names. Our own moves invalidate it.
        self._listing: Optional[Tuple[Tuple[int, int], List[ImageEntry]]] = None

    # -- names -----------------------------------------------------------------------------------------------

    def _image_path(self, name: str) -> Path:
        """The path of image `name`, after checking it is a plain image file name (StorageError otherwise)."""
        if (
            not isinstance(name, str)
            or not name
            or name in (".", "..")
            or any(bad in name for bad in ("/", "\\", "\x00"))
            or os.path.isabs(name)
            or not _is_image_name(name)
        ):
            raise StorageError(f"Not an image name in library {self.folder}: {name!r}")
        return self.folder / name

    def _contained(self, path: Path) -> bool:
        """False for a symlink whose real path lies outside the library: it is treated as absent.

        Names are plain (no separators), so only the last component can be a link; plain files cost one lstat.
        """
        if not path.is_symlink():
            return True
        if self._real_folder is None:
            self._real_folder = self.folder.resolve()
        try:
            return path.resolve().is_relative_to(self._real_folder)
        except (OSError, RuntimeError):  # a loop or an unreadable link
            return False

    def _existing_image(self, name: str) -> Path:
        path = self._image_path(name)
        if not path.is_file() or not self._contained(path):
            raise StorageError(f"Image not found in library {self.folder}: {name}")
        return path

    def _sidecar_path(self, name: str) -> Path:
        return self.folder / (os.path.splitext(name)[0] + ".txt")

    def _check_folder(self) -> None:
        if not self.folder.exists():
            raise StorageError(f"Image library folder does not exist: {self.folder}")
        if not self.folder.is_dir():
            raise StorageError(f"Image library path is not a folder: {self.folder}")

    # -- listing and hashes ----------------------------------------------------------------------------------

    def _scan(self) -> List[ImageEntry]:
        self._check_folder()
        found: Dict[str, os.stat_result] = {}
        try:
            with os.scandir(self.folder) as it:
                for item in it:
                    if _is_image_name(item.name) and item.is_file():
                        if item.is_symlink() and not self._contained(Path(item.path)):
                            continue
                        try:
                            found[item.name] = item.stat()
                        except FileNotFoundError:  # archived or deleted by another run while we listed
                            continue
        except OSError as exc:
            raise StorageError(f"Cannot list image library {self.folder}: {exc}") from None
        cached = self._cache.load()
        entries = []
        for name in sorted(found):
            st = found[name]
            hit = cached.get(name)
            digest = hit[2] if hit is not None and (hit[0], hit[1]) == _file_key(st) else None
            entries.append(ImageEntry(name=name, size=st.st_size, modified=st.st_mtime, content_hash=digest))
        gone = [name for name in cached if name not in found]
        if gone:
            self._cache.forget(gone)
        log_json(
            logger,
            logging.DEBUG,
            "storage_list_complete",
            folder=str(self.folder),
            count=len(entries),
            cached_hashes=sum(1 for e in entries if e.content_hash),
        )
        return entries

    def _folder_key(self) -> Optional[Tuple[int, int]]:
        try:
            st = os.stat(self.folder)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def _cached_listing(self) -> Optional[List[ImageEntry]]:
        """The previous listing when the folder's set of names cannot have changed since (one stat)."""
        listing = self._listing  # read once: a concurrent archive may reset it to None
        if listing is not None and listing[0] == self._folder_key():
            return list(listing[1])
        return None

    def _scan_and_remember(self) -> List[ImageEntry]:
        key = self._folder_key()
        entries = self._scan()
        if key is not None and key == self._folder_key():  # nothing changed while we listed
            self._listing = (key, entries)
        return list(entries)

    async def list_images(self) -> List[ImageEntry]:
        """Every image directly in the folder, sorted by name; stat only, hashes filled from the cache.

        A long-lived process (the web app) lists often: while the folder's mtime is unchanged the previous
        listing is returned after one stat, without a thread hop. A file replaced in place keeps its name, so
        its stale entry only costs a re-hash when its content hash is asked for.
        """
        cached = self._cached_listing()
        if cached is not None:
            return cached
        return await asyncio.to_thread(self._scan_and_remember)

    def _lookup(self, name: str) -> Optional[ImageEntry]:
        path = self._image_path(name)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"Cannot read {path}: {exc}") from None
        if not path.is_file() or not self._contained(path):
            return None
        digest = self._cache.get(name, _file_key(st))
        return ImageEntry(name=name, size=st.st_size, modified=st.st_mtime, content_hash=digest)

    async def get_image(self, name: str) -> Optional[ImageEntry]:
        """The entry for `name`, or None when no such image is in the folder (StorageError for a bad name)."""
        return await asyncio.to_thread(self._lookup, name)

    def _hash(self, name: str) -> str:
        path = self._existing_image(name)
        try:
            st = path.stat()
            cached = self._cache.get(name, _file_key(st))
            if cached is not None:
                return cached
            with open(path, "rb") as stream:
                # Key the hash by the stat of the file we actually read, not of an earlier listing.
                key = _file_key(os.fstat(stream.fileno()))
                digest = dropbox_content_hash(stream)
        except OSError as exc:
            raise StorageError(f"Cannot hash {path}: {exc}") from None
        self._cache.put(name, key, digest)
        log_json(logger, logging.DEBUG, "storage_hash_computed", image_name=name, size=key[0])
        return digest

    async def content_hash(self, entry: ImageEntry) -> str:
        """The Dropbox content hash of `entry`: from the listing, the cache, or (on a miss) the file."""
        if entry.content_hash:
            return entry.content_hash
        return await asyncio.to_thread(self._hash, entry.name)

    # -- reading ---------------------------------------------------------------------------------------------

    def _read(self, name: str) -> bytes:
        path = self._existing_image(name)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise StorageError(f"Cannot read {path}: {exc}") from None

    async def download_image(self, name: str) -> bytes:
        return await asyncio.to_thread(self._read, name)

    async def get_temporary_link(self, name: str) -> str:
        """A file:// URI of the image; only a local process can follow it (see has_public_links)."""
        return self._existing_image(name).resolve().as_uri()

    def has_public_links(self) -> bool:
        return False

    async def get_file_metadata(self, name: str) -> Dict[str, str]:
        """{"id": "local:<inode>", "rev": "<mtime_ns>"}: stable while the file is unchanged."""
        path = self._existing_image(name)
        try:
            st = path.stat()
        except OSError as exc:
            raise StorageError(f"Cannot read {path}: {exc}") from None
        return {"id": f"local:{st.st_ino}", "rev": str(st.st_mtime_ns)}

    def _read_sidecar(self, name: str) -> Optional[str]:
        self._image_path(name)
        path = self._sidecar_path(name)
        if not self._contained(path):
            return None
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"Cannot read sidecar {path}: {exc}") from None

    async def read_sidecar_text(self, name: str) -> Optional[str]:
        # A sidecar is a few hundred bytes on a local disk: reading it inline costs less than a thread hop.
        return self._read_sidecar(name)

    # -- writing ---------------------------------------------------------------------------------------------

    def _write_sidecar(self, name: str, text: str) -> None:
        self._existing_image(name)
        self._listing = None
        path = self._sidecar_path(name)
        # A hidden temp file in the same folder: os.replace is atomic there, and listings skip dot-files.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            _unlink_quietly(tmp)
            raise StorageError(f"Cannot write sidecar {path}: {exc}") from None
        except BaseException:
            _unlink_quietly(tmp)
            raise
        log_json(logger, logging.INFO, "storage_sidecar_written", image_name=name, sidecar=path.name)

    async def write_sidecar_text(self, name: str, text: str) -> None:
        await asyncio.to_thread(self._write_sidecar, name, text)

    def _archive(self, name: str) -> None:
        source = self._existing_image(name)
        self._listing = None
        try:
            self.archive_folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(f"Cannot create archive folder {self.archive_folder}: {exc}") from None
        if self.archive_folder.is_symlink():  # checked again here: it may have been replaced since start-up
            raise StorageError(
                f"Archive folder {self.archive_folder} is a symbolic link: refusing to move {name} out of the library"
            )
        stem, ext = os.path.splitext(name)
        try:
            target = _move_without_overwrite(source, self.archive_folder, stem, ext)
        except OSError as exc:
            raise StorageError(f"Cannot archive {source} into {self.archive_folder}: {exc}") from None
        self._cache.forget([name])
        sidecar = self._sidecar_path(name)
        sidecar_target = None
        if sidecar.is_file():
            target_stem = os.path.splitext(target.name)[0]
            try:
                sidecar_target = _move_without_overwrite(sidecar, self.archive_folder, target_stem, ".txt")
            except OSError as exc:
                # The image is archived (dedup and the library view depend on that); say what was left.
                log_json(
                    logger, logging.ERROR, "storage_archive_sidecar_error", image_name=name, error=str(exc)
                )
        log_json(
            logger,
            logging.INFO,
            "storage_archive_complete",
            image_name=name,
            archived_as=target.name,
            sidecar=sidecar_target.name if sidecar_target else None,
        )

    async def archive_image(self, name: str) -> None:
        """Move the image, and its sidecar when present, into the archive, never overwriting."""
        await asyncio.to_thread(self._archive, name)

    def archive_view(self) -> LocalStorage:
        """The archive folder as a library of its own (read-only use: `ledger retry` re-sends from it)."""
        return LocalStorage(self.archive_folder, archive=self.archive_folder.name)

    def close(self) -> None:
        """Close the hash cache connection."""
        self._cache.close()


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _move_without_overwrite(source: Path, folder: Path, stem: str, ext: str) -> Path:
    """Move `source` to `folder/stem+ext`, or `stem_1+ext`, `stem_2+ext`…, whichever is free.

    A hard link claims the target name atomically (it fails if the name exists, even when another process
    races us), then the source is unlinked. Without hard link support: check, then os.replace.
    """
    for attempt in range(10_000):
        target = folder / (f"{stem}{ext}" if attempt == 0 else f"{stem}_{attempt}{ext}")
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError:
            if target.exists():
                continue
            os.replace(source, target)
            return target
        os.unlink(source)
        return target
    raise OSError(f"no free name for {stem}{ext} in {folder}")
