"""Test helper: run the `publisher` CLI, but pause right after the first platform post until the test says go.

`PAUSE_DIR=DIR python pause_after_post.py publisher-args...`: after the first successful post it creates
DIR/paused and waits (up to 60 s) for DIR/go, so the test can restart the database server at exactly that point.
Patches this process only, like stage_killer.py.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

from publisher_v2.cli.app import main
from publisher_v2.services.publishers.outbox import OutboxPublisher

_original = OutboxPublisher.publish
_paused = []


@functools.wraps(_original)
async def _publish(*args: Any, **kwargs: Any) -> Any:
    result = await _original(*args, **kwargs)
    if result.success and not _paused:
        _paused.append(True)
        folder = Path(os.environ["PAUSE_DIR"])
        (folder / "paused").touch()
        deadline = time.time() + 60
        while not (folder / "go").exists() and time.time() < deadline:
            time.sleep(0.05)
    return result


OutboxPublisher.publish = _publish  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
