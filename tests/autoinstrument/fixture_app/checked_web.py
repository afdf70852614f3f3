"""Web apps for `autoinstrument check`: one built at import, one built lazily (PEP 562), one not an app."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI

BUILT = []  # how many times the lazy app was built (check must not build it unless asked)

app = FastAPI()
api = APIRouter(prefix="/api")


@app.get("/items/{item_id}")
async def read_item(item_id: str) -> dict:
    return {"item_id": item_id}


@api.post("/items/{item_id}/publish")
async def publish(item_id: str) -> dict:
    return {"ok": True}


app.include_router(api)
not_an_app = object()


def __getattr__(name: str) -> Any:
    if name == "lazy_app":
        BUILT.append(name)
        built = FastAPI()
        built.get("/lazy")(read_item)
        globals()["lazy_app"] = built
        return built
    raise AttributeError(name)
