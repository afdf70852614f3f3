"""The `--html` page in a real browser (Debian's Chromium driven by Playwright), at phone and desktop size.

The page is written by the installed `autoinstrument report` from a log shaped like the CLI's and the web app's
(publishes to three platforms that run at the same time, the manifest's `parallel:`). At 390x844 (a phone,
mobile emulation) and 1280x800: the page is never wider than the viewport, every table fits or scrolls inside
its own box (on the desktop: fits, nothing clipped on the right), and in the waterfall the platform bars
overlap one another inside `publish_parallel_ms` and no run is drawn longer than its total. Screenshots of both
sizes are saved (`REPORT_SCREENSHOTS=DIR` keeps them in DIR, else in the test's tmp folder).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from telemetry_testkit import REPO, subprocess_env

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SIZES = {"phone": (390, 844), "desktop": (1280, 800)}
PLATFORMS = ("telegram_publish_ms", "instagram_publish_ms", "email_publish_ms")
SCRIPT = Path(sys.executable).parent / "autoinstrument"


def event(message: str, cid: str, **fields: Any) -> str:
    body = {"timestamp": "2026-12-06T09:00:00.000Z", "level": "INFO", "logger": "app.telemetry"}
    return json.dumps({**body, "message": message, "correlation_id": cid, **fields})


def log_lines() -> List[str]:
    """Runs like the issue's: a 4,934 ms run whose three platforms (about 2.3 s each) ran at the same time."""
    rng = random.Random(20)
    lines = []
    for i in range(12):
        cid = str(uuid.UUID(int=rng.getrandbits(128)))
        platforms = {name: 1900 + rng.randrange(500) for name in PLATFORMS}
        stages = {
            "dropbox_list_images_ms": 300 + rng.randrange(200),
            "image_selection_ms": 20 + rng.randrange(20),
            "vision_analysis_ms": 900 + rng.randrange(300),
            "caption_generation_ms": 700 + rng.randrange(300),
            "sidecar_write_ms": 60 + rng.randrange(40),
            "publish_parallel_ms": max(platforms.values()) + 30,
            **platforms,
            "archive_ms": 150 + rng.randrange(100),
        }
        if i:  # the other runs are faster
            stages = {k: v * 7 // 10 for k, v in stages.items()}
        total = sum(v for k, v in stages.items() if k not in PLATFORMS) + 40
        if i == 0:  # the slowest: the run
            stages["publish_parallel_ms"] += 4934 - total
            total = 4934
        result = {"image_name": f"holiday_{i:03d}_sunset_over_the_bay.jpg", "success": True, "archived": True}
        lines.append(event("workflow_timing", cid, workflow_total_ms=total, **stages, **result))
        lines.append(
            event(
                "web_publish_complete",
                cid,
                method="POST",
                route="/api/images/{filename}/publish",
                status_code=200,
                web_publish_ms=total + 25,
                **stages,
            )
        )
        lines.append(
            event("web_random_image", f"r-{i}", method="GET", route="/api/images/random", web_random_image_ms=80 + i)
        )
    lines += ["02:40:15.120 [info     ] workflow_start [app.workflow] cid=1fdf9d2c", "", "[1, 2]"]
    return lines


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report-html")
    log = folder / "events.jsonl"
    log.write_text("\n".join(log_lines()) + "\n", encoding="utf-8")
    html = folder / "report.html"
    proc = subprocess.run(
        [str(SCRIPT), "report", "--manifest", str(REPO / "telemetry.yaml"), "--html", str(html), str(log)],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return html


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert Path(CHROMIUM).is_file(), "chromium is not installed (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


def screenshot_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("REPORT_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


MEASURE = """() => {
  const box = e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top,
                                                                   width: r.width}; };
  const run = document.querySelector('.waterfall .run');
  const bars = {};
  for (const rect of run.querySelectorAll('rect.stage')) {
    bars[rect.dataset.stage] = Object.assign(box(rect), {lane: Number(rect.dataset.lane)});
  }
  return {
    page: document.documentElement.scrollWidth, body: document.body.scrollWidth, viewport: window.innerWidth,
    tables: [...document.querySelectorAll('table')].map(t => ({
      table: t.scrollWidth, box: t.parentElement.clientWidth, cls: t.parentElement.className,
      right: t.getBoundingClientRect().right, head: t.rows[0].cells[0].textContent})),
    charts: [...document.querySelectorAll('.chart')].map(c => ({width: c.clientWidth, right: box(c).right})),
    total: box(run.querySelector('rect.total')), totalMs: Number(run.dataset.total), bars: bars,
  };
}"""


@pytest.mark.parametrize("size", sorted(SIZES))
def test_the_report_fits_the_screen_and_draws_parallel_publishes_overlapping(
    browser: Any, page_file: Path, size: str, tmp_path: Path
) -> None:
    width, height = SIZES[size]
    phone = size == "phone"
    context = browser.new_context(
        viewport={"width": width, "height": height}, is_mobile=phone, has_touch=phone, device_scale_factor=1
    )
    try:
        page = context.new_page()
        problems: List[str] = []
        page.on("console", lambda m: m.type == "error" and problems.append(m.text))
        page.goto(page_file.as_uri())
        got: Dict[str, Any] = page.evaluate(MEASURE)
        shots = screenshot_dir(tmp_path)
        page.screenshot(path=str(shots / f"report-{size}.png"), full_page=True)
        page.locator(".waterfall[aria-label='slowest runs by workflow_total_ms']").screenshot(
            path=str(shots / f"report-{size}-waterfall.png")
        )
    finally:
        context.close()
    assert problems == []  # no CSP violation, nothing blocked

    # No page wider than the viewport; every table in a box of its own that is no wider either.
    assert got["viewport"] == width
    assert got["page"] <= width and got["body"] <= width, got
    assert got["tables"] and all(t["cls"] == "scroll" and t["box"] <= width for t in got["tables"]), got["tables"]
    assert all(chart["right"] <= width for chart in got["charts"])
    if not phone:  # on the desktop every table fits: nothing clipped on the right
        clipped = [t for t in got["tables"] if t["table"] > t["box"] or t["right"] > width]
        assert clipped == [], clipped

    # The run (4,934 ms): the platforms overlap inside publish_parallel_ms, the run ends within its total.
    assert got["totalMs"] == 4934
    bars, total = got["bars"], got["total"]
    outer = bars["publish_parallel_ms"]
    inner = [bars[name] for name in PLATFORMS]
    assert outer["lane"] == 0 and sorted(b["lane"] for b in inner) == [1, 2, 3]
    for bar in inner:
        assert abs(bar["left"] - outer["left"]) <= 1 and bar["right"] <= outer["right"] + 1, (bar, outer)
    for a in inner:  # each pair of platform bars overlaps horizontally
        for b in inner:
            assert min(a["right"], b["right"]) - max(a["left"], b["left"]) > 10
    drawn_end = max(bar["right"] for bar in bars.values())
    assert drawn_end <= total["right"] + 1, (drawn_end, total)
    assert bars["archive_ms"]["left"] >= outer["right"] - 1  # the run goes on after the outer stage only
