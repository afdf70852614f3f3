"""Image libraries: the Storage protocol, LocalStorage (embedded default) and DropboxStorage (production).

DropboxStorage needs the optional `dropbox` extra, so it is imported only when asked for.
"""

from __future__ import annotations

from typing import Any

from publisher_v2.services.storage.base import IMAGE_EXTENSIONS, Storage
from publisher_v2.services.storage.local import LocalStorage

__all__ = ["IMAGE_EXTENSIONS", "DropboxStorage", "LocalStorage", "Storage"]


def __getattr__(name: str) -> Any:
    if name == "DropboxStorage":
        from publisher_v2.services.storage.dropbox import DropboxStorage

        return DropboxStorage
    raise AttributeError(name)
