"""Targets that only a wrapt-based install times correctly (issue 20), plus two it must refuse."""

from __future__ import annotations

import functools
from typing import Any, List

import wrapt

#: what the other library's wrapper saw, one (instance, args) per call
SEEN: List[Any] = []


class Cached:
    @functools.lru_cache(maxsize=64)  # noqa: B019 - the case under test: a cached method
    def square(self, n: int) -> int:
        return n * n


def _other_library(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Another wrapt-based instrumentation (as OpenTelemetry's are): records the instance it was bound to."""
    SEEN.append((instance, args))
    return wrapped(*args, **kwargs)


class Service:
    def fetch(self, key: str) -> str:
        return f"{type(self).__name__}:{key}"


wrapt.wrap_function_wrapper(__name__, "Service.fetch", _other_library)


class Worker:
    """Picklable (a plain instance of a module-level class): its bound method crosses a process pool."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def times(self, n: int) -> int:
        return self.factor * n

    @property
    def label(self) -> str:
        return f"worker x{self.factor}"


LIMIT = 10


def helper(n: int) -> int:
    return n + 1
