"""Helpers shared by the autoinstrument tests (a module of its own: `conftest` names clash across folders)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fixture_app import applog  # noqa: E402

LOG_SECTION = """
log:
  function: fixture_app.applog:log_json
  logger: fixture.telemetry
  correlation: fixture_app.applog:correlation_id
"""

WORKFLOW_MANIFEST = (
    LOG_SECTION
    + """
scopes:
  fixture_app.workflow:Orchestrator.execute:
    event: workflow_timing
    total: workflow_total_ms
    result: [image_name, success, archived]
    result_correlation: correlation_id
stages:
  fixture_app.workflow:Storage.list_images: {field: list_images_ms, shared: true}
  fixture_app.workflow:OtherStorage.list_images: {field: list_images_ms, shared: true}
  fixture_app.workflow:Orchestrator._select_image: image_selection_ms
  fixture_app.workflow:Orchestrator.analyze: vision_analysis_ms
  fixture_app.workflow:Orchestrator._pillow_work: pillow_ms
  fixture_app.workflow:Orchestrator._publish_all: publish_parallel_ms
  fixture_app.workflow:Orchestrator.publish_one: publish_one_ms
  fixture_app.workflow:Orchestrator._archive_image: archive_ms
"""
)


def events(message: str) -> List[Dict]:
    return applog.events(message)


def stderr_events(text: str) -> List[Dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def subprocess_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBLISHER_", "AUTOINSTRUMENT"))}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO)])
    env.update(extra)
    return env


def installed_labels() -> Dict[str, List[str]]:
    """`autoinstrument.installed_targets()` records as the `autoinstrument_installed` event lists them."""
    import autoinstrument
    from autoinstrument.runtime.install import labels

    return labels(autoinstrument.installed_targets())
