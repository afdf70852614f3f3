"""The seed's edge cases of `workflow_timing`, from a real `publisher` run with the telemetry on.

After an exception the summary still says which image (when one was selected), `success: false` and
`archived: false`; an empty library still reports `image_selection_ms`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from tests.conftest import BIN, json_events
from tests.web.conftest import free_port

pytestmark = pytest.mark.slow


def run(ini: Path, env: Dict[str, str]) -> List[dict]:
    out = subprocess.run(
        [str(BIN / "publisher"), "--config", str(ini)],
        env={**env, "PUBLISHER_AUTOINSTRUMENT": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    return json_events(out.stderr)


def timing(events: List[dict]) -> dict:
    found = [e for e in events if e["message"] == "workflow_timing"]
    assert len(found) == 1, [e["message"] for e in events]
    return found[0]


def test_an_empty_library_still_reports_image_selection_ms(sample_library: Path, clean_env: Dict[str, str]) -> None:
    for image in (sample_library.parent / "images").iterdir():
        if image.is_file():
            image.unlink()
    event = timing(run(sample_library, clean_env))
    assert isinstance(event["image_selection_ms"], int) and event["image_selection_ms"] >= 0
    assert event["success"] is False and event["archived"] is False and event["image_name"] is None


def test_after_an_exception_the_summary_names_the_image_and_says_not_successful_not_archived(
    sample_library: Path, clean_env: Dict[str, str]
) -> None:
    """The real OpenAI adapter against a closed 127.0.0.1 port: analysis raises after the image was selected."""
    text = sample_library.read_text(encoding="utf-8").replace("backend = offline", "backend = openai")
    text += f"\n[openAI]\nbase_url = http://127.0.0.1:{free_port()}/v1\nmax_retries = 0\ntimeout_seconds = 3\n"
    sample_library.write_text(text, encoding="utf-8")
    events = run(sample_library, {**clean_env, "OPENAI_API_KEY": "sk-test-0123456789abcdefghij"})
    [selected] = [e for e in events if e["message"] == "image_selected"]
    [error] = [e for e in events if e["message"] == "workflow_error"]
    event = timing(events)
    assert error["image_name"] == selected["image_name"] and error["error_type"] == "AIServiceError"
    assert event["image_name"] == selected["image_name"]
    assert event["success"] is False and event["archived"] is False and event["error_type"] == "AIServiceError"
    assert event["correlation_id"] == error["correlation_id"]
    [vision] = [e for e in events if e["message"] == "vision_analysis"]  # upstream's per-call event
    assert (vision["level"], vision["ok"], vision["error_type"]) == ("INFO", False, "openai_error")
