"""Shared by the web-telemetry benchmarks: the FLOOR middleware and one in-process GET through an ASGI app.

`FloorMiddleware` is the least any middleware meeting issue 5 could do: bind a fresh UUID4 in the app's
correlation ContextVar (so the app's own log lines inside the request carry it), answer it in
`X-Correlation-ID`, time the request and write ONE `web_random_image` event. How the event is written is its
one parameter, a function with the app's log-function signature `(logger, level, event, **fields)`:

- `log_json` itself (the default): the app-log floor, the event through the app's log function;
- `raw_line(fd)`: the raw floor, the same fields as one orjson line written with `os.write` to `fd`,
  bypassing the app's log function and `logging`.

What the floor does NOT do that autoinstrument does (so the comparison is of the same job only where stated):
read or validate an incoming `X-Request-ID`, match the route, time any stage, hold the app's own event of the
route and merge it into one (the floor writes a second event instead), report its own faults.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import orjson

from autoinstrument.web.ids import new_request_id
from publisher_v2.utils.logging import correlation_id, log_json

PATH = "/api/images/random"
LOGGER = logging.getLogger("publisher_v2.telemetry")


def raw_line(fd: int) -> Callable[..., None]:
    """A log function writing `{timestamp, level, logger, message, **fields}` as one orjson line to `fd`."""

    def write(logger: logging.Logger, level: int, message: str, /, **fields: Any) -> None:
        line = {
            "timestamp": time.time(),
            "level": logging.getLevelName(level),
            "logger": logger.name,
            "message": message,
            **fields,
        }
        os.write(fd, orjson.dumps(line) + b"\n")

    return write


class FloorMiddleware:
    """Id out (bound in the app's ContextVar and answered) + one event written by `write` (see the module)."""

    def __init__(self, app: Callable[..., Any], write: Callable[..., None] = log_json) -> None:
        self.app = app
        self.write = write

    async def __call__(self, scope: dict, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = new_request_id()
        token = correlation_id.set(cid)
        header = (b"x-correlation-id", cid.encode())
        start = time.perf_counter()
        status = [500]

        def send_with_header(message: dict) -> Any:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = dict(message, headers=[*message.get("headers", ()), header])
            return send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            correlation_id.reset(token)
            self.write(
                LOGGER,
                logging.INFO,
                "web_random_image",
                correlation_id=cid,
                web_random_image_ms=int((time.perf_counter() - start) * 1000 + 0.5),
                method="GET",
                route=PATH,
                status_code=status[0],
            )


def RawFloorMiddleware(app: Callable[..., Any], fd: int) -> FloorMiddleware:  # noqa: N802 - reads as a class
    """The raw floor: `FloorMiddleware` writing its line with `os.write` to `fd`."""
    return FloorMiddleware(app, raw_line(fd))


async def get(app: Callable[..., Any], path: str = PATH) -> None:
    """One GET `path` through `app`, in-process (no server, no network); the response is dropped."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        pass

    await app(scope, receive, send)
