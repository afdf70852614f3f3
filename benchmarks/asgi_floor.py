"""Shared by the web-telemetry benchmarks: the FLOOR middleware and one in-process GET through an ASGI app.

`FloorMiddleware` is the least any middleware meeting issue 5 could do: bind a fresh UUID4 in the app's
correlation ContextVar, add `X-Correlation-ID`, time the request and send ONE `web_random_image` event through
`log_json`. No stage timing, no route matching, no header validation. Comparing it with "off" shows what "one
event per request" costs at the minimum.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

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
