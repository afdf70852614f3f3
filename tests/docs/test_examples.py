"""`docs_v2/examples.md` is what a real run logs today: regenerate it and compare (so it cannot drift)."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "docs_v2" / "examples" / "generate.py"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_examples_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_examples_md_matches_a_fresh_real_run() -> None:
    fresh = generator().render()
    committed = (REPO / "docs_v2" / "examples.md").read_text(encoding="utf-8")
    diff = "".join(
        difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True), "examples.md", "fresh run", n=1)
    )
    assert fresh == committed, (
        "docs_v2/examples.md is stale: run `.venv/bin/python docs_v2/examples/generate.py`\n" + diff[:4000]
    )


def test_the_examples_cover_the_cli_and_every_timed_web_endpoint() -> None:
    text = (REPO / "docs_v2" / "examples.md").read_text(encoding="utf-8")
    for event in (
        '"message":"workflow_timing"',
        '"message":"autoinstrument_installed"',
        '"message":"web_random_image"',
        '"message":"web_analyze_complete"',
        '"message":"web_publish_complete"',
        '"message":"web_analyze_error"',
    ):
        assert event in text
    # the web publish and the workflow it runs share the request's id
    assert text.count('"correlation_id":"demo-publish-1"') >= 3


def test_normalisation_replaces_every_volatile_value() -> None:
    gen = generator()
    norm = gen.Normaliser([Path("/tmp/lib")])
    event = {
        "timestamp": "2026-01-01T00:00:00.000Z",
        "correlation_id": "2531710d-a1ce-4d06-990a-27f9b1b26d51",
        "other_id": "2531710d-a1ce-4d06-990a-27f9b1b26d51",
        "workflow_total_ms": 119,
        "content_hash": "ab" * 32,
        "size": 1044,
        "post_id": "20261129T040921600893Z_sample_002_ocean_acaa16df",
        "folder": "/tmp/lib/outbox/telegram/20261129T040921600893Z_sample_002_ocean_acaa16df",
        "success": True,
    }
    assert norm.event(event) == {
        "timestamp": "<timestamp>",
        "correlation_id": "<uuid-1>",
        "other_id": "<uuid-1>",
        "workflow_total_ms": "<ms>",
        "content_hash": "<sha256>",
        "size": "<bytes>",
        "post_id": "<post-id>",
        "folder": "<library>/outbox/telegram/<post-id>",
        "success": True,
    }
