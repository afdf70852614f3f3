"""`autoinstrument report --html`: one well-formed, self-contained page that escapes all log text."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from autoinstrument.report import main, render_html
from autoinstrument.report.aggregate import aggregate
from autoinstrument.report.budgets import evaluate_budgets
from autoinstrument.report.html import write_html
from autoinstrument.report.stats import histogram

VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
SVG_LEAVES = {"rect", "line", "path", "circle"}  # may be written as <x/> or <x></x>


class PageParser(HTMLParser):
    """Checks tag balance and collects tags, attributes and the text under SVG <title>s."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: List[str] = []
        self.errors: List[str] = []
        self.tags: List[Tuple[str, Dict[str, Optional[str]]]] = []
        self.titles: List[str] = []
        self.text: List[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in VOID:
            return
        self.stack.append(tag)
        self._in_title = tag == "title" and "svg" in self.stack

    def handle_startendtag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
            return
        self.stack.pop()
        self._in_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_title:
            self.titles.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def event(message: str, **fields: Any) -> str:
    return json.dumps({"timestamp": "2026-11-28T10:00:00Z", "level": "INFO", "message": message, **fields})


#: The app's stages in run order, as its manifest lists them (the library holds no per-app order).
STAGE_ORDER = (
    "dropbox_list_images_ms",
    "image_selection_ms",
    "vision_analysis_ms",
    "caption_generation_ms",
    "sidecar_write_ms",
    "publish_parallel_ms",
    "archive_ms",
)
ALL_STAGES = {name: 100 * (i + 1) for i, name in enumerate(STAGE_ORDER)}


def sample_lines() -> List[str]:
    lines = []
    for i in range(30):
        stages = {k: v + i for k, v in ALL_STAGES.items()}
        lines.append(event("workflow_timing", correlation_id=f"run-{i:02d}", workflow_total_ms=4000 + 97 * i, **stages))
    lines.append(
        event(
            "workflow_timing",
            correlation_id="odd",
            workflow_total_ms=900,
            zz_custom_ms=40,
            image_selection_ms=5,
        )
    )
    for i in range(20):
        lines.append(
            event(
                "web_random_image",
                method="GET",
                route="/api/images/random",
                status_code=200,
                correlation_id=f"web-{i}",
                web_random_image_ms=10 + i * i * 30,
            )
        )
    lines += ["junk", "[1]", '{"message": "x"}']
    return lines


@pytest.fixture
def page() -> str:
    report = aggregate(sample_lines(), top=5, stage_order=STAGE_ORDER)
    return render_html(report, evaluate_budgets(report, {"workflow_total_ms": 5000, "web_random_image_ms": 20000}))


def test_page_is_well_formed(page: str) -> None:
    parser = parse(page)
    assert parser.errors == []
    assert parser.stack == []
    assert page.startswith("<!DOCTYPE html>")


def test_page_contains_every_field_name(page: str) -> None:
    fields = ["workflow_total_ms", "web_random_image_ms", "zz_custom_ms", *STAGE_ORDER]
    text = "".join(parse(page).text)
    for name in fields:
        assert name in text, name
    ids = {attrs.get("id") for _, attrs in parse(page).tags}
    for name in fields:
        assert f"field-{name}" in ids, name  # one distribution chart per field


def test_page_contains_the_slowest_runs_correlation_ids(page: str) -> None:
    text = "".join(parse(page).text)
    for cid in ("run-29", "run-28", "run-27", "run-26", "run-25", "web-19", "web-15"):
        assert cid in text, cid
    assert "run-24" not in text  # top=5


def test_page_is_self_contained(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    parser = parse(page)
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    for _, attrs in parser.tags:
        assert not {"src", "xlink:href"} & set(attrs)
        assert (attrs.get("href") or "#").startswith("#")  # links only within the page
    csp = [a for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in (csp[0].get("content") or "")


def test_waterfall_draws_the_slowest_workflow_stages_in_run_order(page: str) -> None:
    parser = parse(page)
    stage_titles = [t.split(":")[0] for t in parser.titles if re.match(r"^[a-z_]+_ms: ", t)]
    # the first waterfall row is the slowest workflow run: its stages in the fixed order
    first_row = stage_titles[1 : 1 + len(STAGE_ORDER)]  # [0] is the row's total outline
    assert stage_titles[0] == "workflow_total_ms"
    assert first_row == list(STAGE_ORDER)


def test_a_stage_added_by_an_operator_is_drawn_where_the_manifest_lists_it() -> None:
    line = event(
        "workflow_timing",
        correlation_id="c",
        workflow_total_ms=100,
        archive_ms=3,
        zz_custom_ms=5,  # the operator's new stage, logged after the others but run second
        image_selection_ms=1,
    )
    report = aggregate([line], stage_order=["image_selection_ms", "zz_custom_ms", "archive_ms"])
    titles = [t.split(":")[0] for t in parse(render_html(report)).titles if re.match(r"^[a-z_]+_ms: ", t)]
    assert titles[:4] == ["workflow_total_ms", "image_selection_ms", "zz_custom_ms", "archive_ms"]


def test_without_a_manifest_stages_keep_the_order_the_log_wrote_them() -> None:
    line = event("workflow_timing", correlation_id="c", workflow_total_ms=100, zz_ms=5, archive_ms=3, a_ms=1)
    titles = [t.split(":")[0] for t in parse(render_html(aggregate([line]))).titles if re.match(r"^[a-z_]+_ms: ", t)]
    assert titles[:4] == ["workflow_total_ms", "zz_ms", "archive_ms", "a_ms"]


def test_budget_table_marks_breaches(page: str) -> None:
    assert "1 budget(s) breached" in page
    row = re.search(r"<tr><td>workflow_total_ms</td><td>p95</td><td class=\"(\w+)\">(\w+)</td>", page)
    assert row and row.groups() == ("breach", "BREACH")
    row = re.search(r"<tr><td>web_random_image_ms</td><td>p95</td><td class=\"(\w+)\">(\w+)</td>", page)
    assert row and row.groups() == ("ok", "ok")


def test_hostile_log_values_are_escaped_everywhere() -> None:
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    report = aggregate(
        [
            event(
                hostile,
                correlation_id=hostile,
                route=hostile,
                method="GET",
                status_code=hostile,
                image_name=hostile,
                **{"evil<b>_ms": 5, "web_x_ms": 7},
            ),
            event("web_x", correlation_id=hostile, web_x_ms=9, route="/r", error=hostile),
        ]
    )
    page = render_html(report, evaluate_budgets(report, {"web_x_ms": 1}))
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    parser = parse(page)
    assert parser.errors == [] and parser.stack == []
    assert not {tag for tag, _ in parser.tags} & {"script", "img", "b"}
    assert all("onerror" not in attrs for _, attrs in parser.tags)


def test_an_empty_report_still_renders_a_valid_page() -> None:
    parser = parse(render_html(aggregate(["not json", ""])))
    assert parser.errors == [] and parser.stack == []


def test_histogram_bins_hold_every_sample_and_switch_to_log_for_long_tails() -> None:
    report = aggregate(event("job", job_ms=v) for v in [1, 2, 2, 3, 50, 1000, 100000])
    stats = report.events["job"].fields["job_ms"]
    bins, log = histogram(stats)
    assert log is True
    assert sum(c for _, _, c in bins) == stats.n
    assert bins[0][0] == 1 and bins[-1][1] == 100000
    assert all(a <= b for a, b, _ in bins) and all(bins[i][1] < bins[i + 1][0] for i in range(len(bins) - 1))
    linear, log = histogram(aggregate(event("job", job_ms=v) for v in range(100, 200)).events["job"].fields["job_ms"])
    assert log is False and sum(c for _, _, c in linear) == 100


def test_cli_writes_the_page_and_keeps_the_breach_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    log = tmp_path / "app.log"
    log.write_text("\n".join(sample_lines()) + "\n", encoding="utf-8")
    budgets = tmp_path / "b.yaml"
    budgets.write_text("budgets:\n  workflow_total_ms: 5000\n", encoding="utf-8")
    out = tmp_path / "report.html"
    assert main([str(log), "--html", str(out), "--budgets", str(budgets)]) == 1
    page = out.read_text(encoding="utf-8")
    assert "run-29" in page and parse(page).errors == []
    assert list(tmp_path.glob("report.html.tmp*")) == []


def test_cli_exits_2_when_the_page_cannot_be_written(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    log = tmp_path / "app.log"
    log.write_text(event("job", job_ms=1) + "\n", encoding="utf-8")
    assert main([str(log), "--html", str(tmp_path / "no" / "dir" / "r.html")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_write_html_writes_utf8(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    write_html(aggregate([event("café_done", x_ms=1)]), [], str(path))
    assert "café_done" in path.read_text(encoding="utf-8")
