"""An asyncio rate limiter for AI calls: a small token bucket on the event loop's clock.

Model APIs limit requests per minute; the web app and the CLI share one AIService, so concurrent tasks must
queue fairly instead of all firing at once. Each `acquire` reserves the next free slot synchronously (no await
between reading and updating the bucket), which makes it safe for any number of tasks on one loop without a
lock, and first come is first served.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Optional, Type


class AsyncRateLimiter:
    """At most `per_minute` calls per minute, spaced evenly, with bursts of up to `burst` calls.

    Use `async with limiter:` around a call, or `await limiter.acquire()` before it.
    """

    def __init__(self, per_minute: int, burst: int = 1) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.per_minute = per_minute
        self.burst = burst
        self.interval = 60.0 / per_minute
        self._tokens = float(burst)
        self._updated: Optional[float] = None

    def _reserve(self, now: float) -> float:
        """Take one token (possibly a future one) and return how long the caller must wait for it."""
        if self._updated is None:
            self._updated = now
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed / self.interval)
        self._updated = now
        self._tokens -= 1.0
        if self._tokens >= 0.0:
            return 0.0
        # A negative balance is a queue: each waiting caller owes one interval more than the one before it.
        return -self._tokens * self.interval

    async def acquire(self) -> None:
        """Wait until this call may go ahead."""
        delay = self._reserve(asyncio.get_running_loop().time())
        if delay > 0:
            await asyncio.sleep(delay)

    async def __aenter__(self) -> AsyncRateLimiter:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        return None
