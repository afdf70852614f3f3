"""A module whose file exists but whose third-party dependency is not installed (like DropboxStorage
without the `dropbox` extra): `autoinstrument check` reports its targets as SKIP, not FAIL."""

from __future__ import annotations

import ai_missing_sdk  # noqa: F401  (deliberately not installed)


class Client:
    def fetch(self) -> None:
        return None
