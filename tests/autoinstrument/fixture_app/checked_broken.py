"""A module that imports a module of its own package that does not exist: a real bug, a FAIL in check."""

from __future__ import annotations

import fixture_app.no_such_module  # noqa: F401


class Client:
    def fetch(self) -> None:
        return None
