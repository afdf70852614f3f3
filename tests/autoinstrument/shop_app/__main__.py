"""`python -m shop_app`: two checkouts, then three requests through the ASGI app (no server needed)."""

from __future__ import annotations

import asyncio
import json
import sys

from shop_app.catalog import Checkout
from shop_app.web import app


async def request(path: str, request_id: str) -> dict:
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "query_string": b"",
             "headers": [(b"x-request-id", request_id.encode())]}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    headers = dict(sent[0]["headers"])
    return {"status": sent[0]["status"], "request_id": headers.get(b"x-request-id", b"").decode(),
            "body": json.loads(sent[1]["body"])}


async def main() -> list:
    out = []
    for skus in (["tea", "mug"], ["pot"]):
        receipt = await Checkout().run(skus)
        out.append({"total": receipt.total})
    out.append(await request("/orders/tea,pot", "order-1"))
    out.append(await request("/orders/mug", "order-2"))
    out.append(await request("/nothing", "order-3"))
    return out


if __name__ == "__main__":
    json.dump(asyncio.run(main()), sys.stdout)
