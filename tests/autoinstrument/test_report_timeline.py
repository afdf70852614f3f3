"""The waterfall's layout: stages one after another, and the manifest's `parallel:` stages overlapping inside
their outer stage, so a run is never drawn longer than it took (issue 22, item 5)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List

import pytest
from telemetry_testkit import REPO

from autoinstrument.manifest import load_manifest
from autoinstrument.report import build_report, render_html
from autoinstrument.report.records import Run
from autoinstrument.report.timeline import Bar, layout

ORDER = ["list_ms", "analysis_ms", "publish_parallel_ms", "telegram_ms", "instagram_ms", "email_ms", "archive_ms"]
PARALLEL = {"publish_parallel_ms": ["telegram_ms", "instagram_ms", "email_ms"]}


def run(total: int, **stages: int) -> Run:
    return Run("workflow_timing", "workflow_total_ms", total, "cid", None, stages, {})


def test_without_parallel_stages_are_laid_end_to_end_in_run_order() -> None:
    bars = layout(run(100, archive_ms=5, list_ms=10, analysis_ms=20), ORDER)
    assert bars == [Bar("list_ms", 0, 10), Bar("analysis_ms", 10, 20), Bar("archive_ms", 30, 5)]


def test_parallel_stages_start_with_their_outer_stage_each_on_its_own_lane() -> None:
    stages = dict(list_ms=300, analysis_ms=900, publish_parallel_ms=2443, archive_ms=171)
    stages.update(telegram_ms=2292, instagram_ms=2350, email_ms=2363)
    bars = {bar.name: bar for bar in layout(run(4934, **stages), ORDER, PARALLEL)}
    outer = bars["publish_parallel_ms"]
    assert (outer.start, outer.lane) == (1200, 0)
    for lane, name in enumerate(["telegram_ms", "instagram_ms", "email_ms"], 1):
        assert bars[name] == Bar(name, 1200, stages[name], lane, "publish_parallel_ms")
    assert bars["archive_ms"].start == outer.end == 3643  # the run goes on after the outer stage only
    assert max(bar.end for bar in bars.values()) == 3814 <= 4934  # end to end it would be 10,819 ms


def test_inner_stages_without_their_outer_stage_overlap_from_where_it_would_start() -> None:
    bars = layout(run(100, list_ms=10, telegram_ms=30, email_ms=50, archive_ms=5), ORDER, PARALLEL)
    assert bars == [
        Bar("list_ms", 0, 10),
        Bar("telegram_ms", 10, 30, 1, "publish_parallel_ms"),
        Bar("email_ms", 10, 50, 2, "publish_parallel_ms"),
        Bar("archive_ms", 60, 5),
    ]


def test_a_stage_of_zero_ms_is_not_drawn_and_a_nested_parallel_stage_gets_the_next_lane() -> None:
    nested = {**PARALLEL, "telegram_ms": ["upload_ms"]}
    bars = layout(run(50, list_ms=0, publish_parallel_ms=40, telegram_ms=30, upload_ms=20, email_ms=10), ORDER, nested)
    assert [(b.name, b.start, b.lane, b.within) for b in bars] == [
        ("publish_parallel_ms", 0, 0, None),
        ("telegram_ms", 0, 1, "publish_parallel_ms"),
        ("upload_ms", 0, 2, "telegram_ms"),
        ("email_ms", 0, 3, "publish_parallel_ms"),
    ]


def rects(page: str) -> List[Dict[str, str]]:
    first = page[page.index('<div class="wrow run"') :]
    first = first[: first.index("</svg>")]
    return [dict(re.findall(r'([\w-]+)="([^"]*)"', tag)) for tag in re.findall(r"<rect [^>]*>", first)]


def test_the_page_of_the_shipped_manifest_draws_the_platforms_within_publish_parallel(tmp_path: Path) -> None:
    """The issue's run, through build_report with telemetry.yaml: its bars end within its 4,934 ms outline."""
    line = {
        "message": "workflow_timing",
        "correlation_id": "9b1c",
        "workflow_total_ms": 4934,
        "dropbox_list_images_ms": 310,
        "vision_analysis_ms": 950,
        "caption_generation_ms": 870,
        "publish_parallel_ms": 2443,
        "telegram_publish_ms": 2292,
        "instagram_publish_ms": 2350,
        "email_publish_ms": 2363,
        "archive_ms": 171,
    }
    log = tmp_path / "events.jsonl"
    log.write_text(json.dumps(line) + "\n", encoding="utf-8")
    outcome = build_report([str(log)], manifest=str(REPO / "telemetry.yaml"))
    assert outcome.report.parallel == {
        "publish_parallel_ms": ["telegram_publish_ms", "instagram_publish_ms", "email_publish_ms"]
    }
    found = rects(render_html(outcome.report, outcome.checks))
    total = next(r for r in found if r.get("class") == "total")
    stages = {r["data-stage"]: r for r in found if r.get("class") == "stage"}
    outer = stages["publish_parallel_ms"]
    for name in ("telegram_publish_ms", "instagram_publish_ms", "email_publish_ms"):
        assert stages[name]["x"] == outer["x"] and stages[name]["data-lane"] != "0"
    drawn = max(float(r["x"]) + float(r["width"]) for r in stages.values())
    assert drawn <= float(total["width"]) + 0.1


def test_the_shipped_manifest_says_which_stages_run_in_parallel() -> None:
    manifest = load_manifest(str(REPO / "telemetry.yaml"))
    assert manifest.parallel == {
        "publish_parallel_ms": ("telegram_publish_ms", "instagram_publish_ms", "email_publish_ms")
    }


@pytest.mark.parametrize(
    "section, message",
    [
        ("parallel:\n  archive_ms: [archive_ms]\n", "'archive_ms' must be another stage's field"),
        ("parallel:\n  x_ms: [archive_ms]\n", "parallel.x_ms: no stage produces this field"),
        ("parallel:\n  archive_ms: nope_ms\n", "must be a list of the stage fields"),
    ],
)
def test_a_wrong_parallel_section_is_refused_naming_its_line(tmp_path: Path, section: str, message: str) -> None:
    from autoinstrument.manifest import ManifestError

    path = tmp_path / "telemetry.yaml"
    path.write_text("stages:\n  app.jobs:archive: archive_ms\n" + section, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(str(path))
    assert str(caught.value).startswith(f"{path}:4: parallel.") and message in str(caught.value)
