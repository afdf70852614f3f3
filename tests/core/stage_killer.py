"""Test helper: run the `publisher` CLI, but SIGKILL this very process right after one workflow stage.

`python stage_killer.py STAGE publisher-args...`. It patches one method in THIS process only, so production
code carries no test hook; kill -9 is what a crash, an OOM kill or a power cut looks like to the ledger.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
from typing import Any, Callable, Dict, Tuple

from publisher_v2.cli.app import main
from publisher_v2.core.workflow import WorkflowOrchestrator
from publisher_v2.ledger import PostLedger
from publisher_v2.services.publishers.outbox import OutboxPublisher
from publisher_v2.services.storage.local import LocalStorage

#: stage → (class, method, does this return value mean the stage happened?)
STAGES: Dict[str, Tuple[type, str, Callable[[Any], bool]]] = {
    "selection": (WorkflowOrchestrator, "_select_image", lambda result: result is not None),
    "sidecar": (WorkflowOrchestrator, "_write_sidecar", lambda result: True),
    "first_post": (OutboxPublisher, "publish", lambda result: bool(result.success)),
    "recording": (PostLedger, "finish_post", lambda result: bool(result)),
    "archive": (LocalStorage, "archive_image", lambda result: True),
}


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(stage: str) -> None:
    """Replace the stage's method by one that calls it and then kills the process."""
    cls, name, happened = STAGES[stage]
    original = getattr(cls, name)
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def patched(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            if happened(result):
                _die()
            return result

    else:

        @functools.wraps(original)
        def patched(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            result = original(*args, **kwargs)
            if happened(result):
                _die()
            return result

    setattr(cls, name, patched)


if __name__ == "__main__":
    arm(sys.argv[1])
    raise SystemExit(main(sys.argv[2:]))
