"""One callable of every kind the library must time, with observable behaviour to compare against."""

from __future__ import annotations

import time
from typing import Any, AsyncIterator, Dict, Iterator, List, Optional


class Boom(Exception):
    """Raised by the `fail` paths; tests check the SAME object comes out."""


class Base:
    calls: List[str] = []

    def plain(self, x: int, y: int = 2, *rest: int, scale: float = 1.0, **extra: Any) -> Dict[str, Any]:
        """Plain method doc."""
        return {"x": x, "y": y, "rest": rest, "scale": scale, "extra": extra}

    async def coro(self, delay: float = 0.0, fail: Optional[BaseException] = None) -> str:
        """Coroutine doc."""
        import asyncio

        await asyncio.sleep(delay)
        if fail is not None:
            raise fail
        return "coro-result"

    def gen(self, n: int, work: float = 0.0) -> Iterator[int]:
        """Generator doc: yields 0..n-1, receives values, returns their sum."""
        total = 0
        try:
            for i in range(n):
                time.sleep(work)
                received = yield i
                if received:
                    total += received
        except Boom:
            yield -1
        finally:
            Base.calls.append("gen-finally")
        return total

    async def agen(self, n: int, work: float = 0.0) -> AsyncIterator[int]:
        """Async generator doc."""
        import asyncio

        try:
            for i in range(n):
                await asyncio.sleep(work)
                received = yield i
                if received:
                    Base.calls.append(f"agen-got-{received}")
        finally:
            Base.calls.append("agen-finally")

    @classmethod
    def make(cls, tag: str = "t") -> str:
        return f"{cls.__name__}:{tag}"

    @staticmethod
    def pure(a: int, b: int, /, c: int = 3, *, d: int = 4) -> int:
        return a + b + c + d

    def recurse(self, n: int) -> int:
        time.sleep(0.002)
        return 0 if n == 0 else 1 + self.recurse(n - 1)

    def fail(self, exc: BaseException) -> None:
        raise exc

    @property
    def prop(self) -> int:
        return 1


class Child(Base):
    """Inherits everything; `plain` is listed on Child only in some tests."""


class Override(Base):
    def plain(self, x: int, y: int = 2, *rest: int, scale: float = 1.0, **extra: Any) -> Dict[str, Any]:
        time.sleep(0.005)
        return super().plain(x, y, *rest, scale=scale, **extra)


def module_function(a: int, b: int = 1) -> int:
    return a * b


def callable_holder() -> None:
    return None


class NotAFunction:
    def __call__(self) -> int:
        return 1


not_a_function = NotAFunction()
