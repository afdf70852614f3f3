"""A workflow shaped like the real one: an async `execute` scope calling stage methods."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import List, Optional

from fixture_app.applog import correlation_id, log_json

logger = logging.getLogger("fixture.workflow")


@dataclass
class Result:
    image_name: Optional[str]
    success: bool
    archived: bool
    correlation_id: Optional[str]
    error: Optional[str] = None


class Storage:
    async def list_images(self) -> List[str]:
        await asyncio.sleep(0.02)
        return ["a.jpg", "b.jpg"]


class OtherStorage(Storage):
    """Listed under the same field as Storage.list_images (shared) in the tests' manifest."""

    async def list_images(self) -> List[str]:
        await asyncio.sleep(0.01)
        return await super().list_images()


class Orchestrator:
    def __init__(
        self,
        storage: Optional[Storage] = None,
        images: bool = True,
        fail_in: Optional[str] = None,
        publishers: int = 3,
        publish_delay: float = 0.03,
    ):
        self.storage = storage or Storage()
        self.images = images
        self.fail_in = fail_in
        self.publishers = publishers
        self.publish_delay = publish_delay
        self.thread_ids: List[int] = []

    async def execute(self) -> Result:
        cid = correlation_id.get() or str(uuid.uuid4())
        token = correlation_id.set(cid)
        try:
            log_json(logger, logging.INFO, "workflow_start")
            names = await self.storage.list_images()
            if not self.images:
                names = []
            if not names:
                return Result(None, False, False, cid, "No images found")
            name = self._select_image(names)
            await self.analyze(name)
            ok = await self._publish_all(name)
            archived = self._archive_image(name) if ok else False
            return Result(name, ok, archived, cid)
        finally:
            correlation_id.reset(token)

    def _select_image(self, names: List[str]) -> str:
        time.sleep(0.01)
        if self.fail_in == "select":
            raise LookupError("selection exploded")
        return names[0]

    async def analyze(self, name: str) -> str:
        return await asyncio.to_thread(self._pillow_work, name)

    def _pillow_work(self, name: str) -> str:
        self.thread_ids.append(threading.get_ident())
        time.sleep(0.03)
        return name.upper()

    async def _publish_all(self, name: str) -> bool:
        results = await asyncio.gather(*(self.publish_one(i, name) for i in range(self.publishers)))
        return all(results)

    async def publish_one(self, index: int, name: str) -> bool:
        await asyncio.sleep(self.publish_delay)
        await asyncio.to_thread(time.sleep, 0.005)
        log_json(logger, logging.INFO, "published", index=index)
        return True

    def _archive_image(self, name: str) -> bool:
        return True


def run(orchestrator: Optional[Orchestrator] = None) -> Result:
    return asyncio.run((orchestrator or Orchestrator()).execute())


class Background:
    """A scope that starts a stage as a task and returns without awaiting it (the stage ends late)."""

    async def run(self) -> asyncio.Task[str]:
        return asyncio.ensure_future(self.slow())

    async def slow(self) -> str:
        await asyncio.sleep(0.05)
        return "done"


def hammer(n: int) -> int:
    """A tiny sync stage called from many threads at once."""
    return n + 1


def run_all(orchestrator: Optional[Orchestrator] = None) -> Result:
    """A sync scope around the async one (nesting: stages count in the innermost scope)."""
    time.sleep(0.01)
    return run(orchestrator)
