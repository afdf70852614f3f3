"""Test helper: run the `publisher` CLI with one fault armed by environment variables (this process only).

- `PAUSE_BEFORE_ANALYSIS=DIR`: once the image is claimed, create DIR/paused and wait (up to 60 s) for a signal
  (a test sends SIGTERM / SIGHUP / SIGINT to this process at exactly that point);
- `FAIL_ANALYSIS=TEXT`: the analysis stage raises StorageError(TEXT) (a run that fails by exception);
- `FAIL_RELEASE=TEXT`: releasing the claim afterwards raises StorageError(TEXT) too (the clean-up fails).

`python fault_runner.py publisher-args...`. Like stage_killer.py, production code carries no test hook.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

from publisher_v2.cli.app import main
from publisher_v2.core.workflow import WorkflowOrchestrator
from publisher_v2.domain.errors import StorageError
from publisher_v2.ledger import PostLedger

_analyze = WorkflowOrchestrator._analyze_image


@functools.wraps(_analyze)
async def _patched_analyze(*args: Any, **kwargs: Any) -> Any:
    pause = os.environ.get("PAUSE_BEFORE_ANALYSIS")
    if pause:
        (Path(pause) / "paused").touch()
        deadline = time.time() + 60
        while time.time() < deadline:
            await asyncio.sleep(0.05)  # the signal arrives while the run awaits, as in real work
    failure = os.environ.get("FAIL_ANALYSIS")
    if failure:
        raise StorageError(failure)
    return await _analyze(*args, **kwargs)


def _failing_release(self: PostLedger, content_hash: str) -> bool:
    raise StorageError(os.environ["FAIL_RELEASE"])


WorkflowOrchestrator._analyze_image = _patched_analyze  # type: ignore[method-assign]
if os.environ.get("FAIL_RELEASE"):
    PostLedger.release = _failing_release  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
