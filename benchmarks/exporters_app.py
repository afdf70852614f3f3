"""The app `bench_exporters.py` times: a FastAPI route mapped in its manifest (one stage inside it) and a CLI
job (a scope with the same stage), no I/O, so that what the exporters add is not lost in the app's own time."""

from __future__ import annotations

import json
import logging
import os
from contextvars import ContextVar
from typing import Any, Optional

from fastapi import FastAPI

request_id: ContextVar[Optional[str]] = ContextVar("bench_request_id", default=None)
#: where the JSON events go (a temp file opened by the benchmark; os.write, no buffering)
SINK = {"fd": -1}


def log_json(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    fields["message"] = event
    os.write(SINK["fd"], (json.dumps(fields, default=str) + "\n").encode())


class Pricing:
    def quote(self, item: int) -> int:
        return item * 3 + 1


class Job:
    def __init__(self) -> None:
        self.pricing = Pricing()

    def run(self, item: int) -> dict:
        return {"price": self.pricing.quote(item), "item": item}


try:  # FastAPI >= 0.16x traces itself when a TracerProvider is set: off, so each variant makes only its own spans
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False})
except TypeError:  # an older FastAPI: no telemetry of its own
    app = FastAPI()
_pricing = Pricing()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict:
    return {"price": _pricing.quote(item_id), "item": item_id}
