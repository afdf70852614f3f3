"""A raw ASGI app (no framework), wrapped by hand in the public middleware."""

from __future__ import annotations

import json
import logging

import autoinstrument
from shop_app.catalog import Checkout
from shop_app.shoplog import emit

logger = logging.getLogger("shop.web")


async def raw_app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if scope["method"] == "GET" and path.startswith("/orders/"):
        receipt = await Checkout().run(path[len("/orders/"):].split(","))
        status, body = 200, {"total": receipt.total, "paid": receipt.paid}
        emit(logger, logging.INFO, "order_served", items=receipt.items)
    else:
        status, body = 404, {"detail": "Not Found"}
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


app = autoinstrument.TelemetryMiddleware(raw_app)
