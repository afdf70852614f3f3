"""Shared by the web-telemetry benchmarks: the FLOOR middlewares and one in-process GET through an ASGI app.

`FloorMiddleware` (the app-log floor) is the least any middleware meeting issue 5 could do: bind a fresh UUID4
in the app's correlation ContextVar, add `X-Correlation-ID`, time the request and send ONE `web_random_image`
event through `log_json`. No stage timing, no route matching, no header validation. `RawFloorMiddleware` is
the same with the event written as one orjson line straight to a file descriptor (`os.write`), bypassing the
app's log function and `logging`. Comparing them with "off" shows what "one event per request" costs at the
minimum.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import orjson

from autoinstrument.ids import new_request_id
from publisher_v2.utils.logging import correlation_id, log_json

PATH = "/api/images/random"
LOGGER = logging.getLogger("publisher_v2.telemetry")


class FloorMiddleware:
    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

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
            log_json(
                LOGGER,
                logging.INFO,
                "web_random_image",
                correlation_id=cid,
                web_random_image_ms=int((time.perf_counter() - start) * 1000 + 0.5),
                method="GET",
                route=PATH,
                status_code=status[0],
            )


class RawFloorMiddleware:
    """Id in/out + one orjson line written with `os.write` to `fd` (no log function, no `logging`)."""

    def __init__(self, app: Callable[..., Any], fd: int) -> None:
        self.app = app
        self.fd = fd

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
            line = {
                "timestamp": time.time(),
                "level": "INFO",
                "logger": LOGGER.name,
                "message": "web_random_image",
                "correlation_id": cid,
                "web_random_image_ms": int((time.perf_counter() - start) * 1000 + 0.5),
                "method": "GET",
                "route": PATH,
                "status_code": status[0],
            }
            os.write(self.fd, orjson.dumps(line) + b"\n")


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
