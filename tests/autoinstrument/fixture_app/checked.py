"""Targets for `autoinstrument check` tests: every kind it accepts and every kind it must refuse."""

from __future__ import annotations

import functools
from typing import Any, AsyncIterator, Iterator

CALLED = []  # check must never call a target: tests assert this stays empty


class Kinds:
    def plain(self) -> int:
        CALLED.append("plain")
        return 1

    async def coro(self) -> int:
        CALLED.append("coro")
        return 1

    def gen(self) -> Iterator[int]:
        CALLED.append("gen")
        yield 1

    async def agen(self) -> AsyncIterator[int]:
        CALLED.append("agen")
        yield 1

    @classmethod
    def make(cls) -> str:
        CALLED.append("make")
        return cls.__name__

    @staticmethod
    def pure() -> int:
        CALLED.append("pure")
        return 1

    @property
    def prop(self) -> int:
        CALLED.append("prop")
        return 1

    @functools.cached_property
    def cached(self) -> int:
        CALLED.append("cached")
        return 1

    limit = 5
    handler = functools.partial(print, "x")


class ChildKinds(Kinds):
    """Inherits everything from Kinds."""


class Storage:
    def list_images(self) -> list:
        return []


class CachedStorage(Storage):
    """Overrides list_images and calls super(): listing both with different fields double-counts."""

    def list_images(self) -> list:
        return super().list_images()


def helper() -> int:
    return 1


def __getattr__(name: str) -> Any:
    if name == "Lazy":
        raise ModuleNotFoundError("No module named 'ai_missing_sdk'", name="ai_missing_sdk")
    raise AttributeError(name)
