"""The real web app (config from CONFIG_PATH, the server's JSON logging) plus one route that fails unhandled.

For `uvicorn tests.web.failing_route_app:build --factory`: the only way to get an unhandled 500 out of the app
on purpose. Everything else (middleware, error handling, uvicorn's access line) is the shipped code.
"""

from __future__ import annotations

from fastapi import FastAPI

from publisher_v2.web import app as web


def build() -> FastAPI:
    application: FastAPI = web.app  # built like `uvicorn publisher_v2.web.app:app` builds it

    @application.get("/api/test/fails/{item}")
    async def fails(item: str) -> None:
        raise RuntimeError(f"injected failure for {item}")

    return application
