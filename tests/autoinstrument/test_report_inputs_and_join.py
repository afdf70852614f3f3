"""`autoinstrument report`: folders and globs, chunked reading, the once-per-run join, manifest stage order and
event key, the page's axes and summary, and the module layout (one job each, no cycle, no app names)."""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

from autoinstrument.report import main, render_html, render_text, to_json
from autoinstrument.report.aggregate import Aggregator, aggregate
from autoinstrument.report.budgets import evaluate_budgets
from autoinstrument.report.read import expand_inputs, line_batches

PACKAGE = Path(__file__).resolve().parents[2] / "autoinstrument"


def event(message: str, key: str = "message", **fields: Any) -> str:
    return json.dumps({"timestamp": "2026-11-28T10:00:00Z", key: message, **fields})


def run_json(argv: List[str], capsys: pytest.CaptureFixture) -> Dict[str, Any]:
    code = main(["--json", *argv])
    out = capsys.readouterr()
    assert code in (0, 1), out.err
    return json.loads(out.out)


# ---------------------------------------------------------------------------------------------- inputs


@pytest.fixture
def log_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.log").write_text(event("job", job_ms=1) + "\n", encoding="utf-8")
    (folder / "b.jsonl").write_text(event("job", job_ms=2) + "\n", encoding="utf-8")
    (folder / "c.log.gz").write_bytes(gzip.compress((event("job", job_ms=3) + "\n").encode()))
    (folder / "notes.txt").write_text(event("job", job_ms=99) + "\n", encoding="utf-8")  # not a log name
    (folder / "sub").mkdir()
    (folder / "sub" / "d.log").write_text(event("job", job_ms=98) + "\n", encoding="utf-8")  # not recursive
    return folder


def test_a_folder_reads_its_log_jsonl_and_gz_files(log_folder: Path, capsys: pytest.CaptureFixture) -> None:
    doc = run_json([str(log_folder)], capsys)
    job = next(e for e in doc["events"] if e["event"] == "job")
    assert job["count"] == 3 and job["fields"][0]["max"] == 3


def test_a_glob_reads_its_matches_in_name_order(log_folder: Path, capsys: pytest.CaptureFixture) -> None:
    assert expand_inputs([str(log_folder / "*.log*")]) == [str(log_folder / "a.log"), str(log_folder / "c.log.gz")]
    doc = run_json([str(log_folder / "*.log*")], capsys)
    assert doc["lines"] == 2


def test_a_folder_without_logs_and_a_glob_without_matches_exit_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([str(tmp_path)]) == 2
    assert f"{tmp_path}: a folder without any *.log, *.jsonl, *.gz file" in capsys.readouterr().err
    assert main([str(tmp_path / "*.log")]) == 2
    assert "no file matches this pattern" in capsys.readouterr().err


def test_lines_split_across_chunks_are_joined_and_long_lines_dropped_across_chunks() -> None:
    good = [event("job", job_ms=i).encode() for i in range(50)]
    long_line = b'{"message": "job", "job_ms": 7, "pad": "' + b"x" * 300 + b'"}'
    data = b"\n".join(good[:25] + [long_line] + good[25:]) + b"\n"
    batches = list(line_batches(io.BytesIO(data), chunk_bytes=37, max_line=200))
    lines = [line.rstrip(b"\n") for batch, _ in batches for line in batch]
    assert lines == good
    assert sum(dropped for _, dropped in batches) == 1


def test_a_final_line_without_newline_counts_once() -> None:
    agg = Aggregator()
    agg.feed_stream(io.BytesIO((event("job", job_ms=1) + "\n" + event("job", job_ms=2)).encode()))
    report = agg.report()
    assert report.lines == 2 and report.events["job"].count == 2


# ---------------------------------------------------------------------------------------------- the run join


def publish_run(cid: str, parallel: int, total: int) -> List[str]:
    """What one web publish logs: the workflow's scope event, then the request's route event carrying the same
    stage sample (both under the request's correlation id)."""
    return [
        event("workflow_timing", correlation_id=cid, workflow_total_ms=total, publish_parallel_ms=parallel),
        event(
            "web_publish",
            correlation_id=cid,
            method="POST",
            route="/api/images/{filename}/publish",
            status_code=200,
            web_publish_ms=total + 50,
            publish_parallel_ms=parallel,
        ),
    ]


def test_a_stage_sample_carried_by_two_events_of_one_run_is_counted_once() -> None:
    lines = publish_run("r1", 3000, 5000) + publish_run("r2", 4000, 6000)
    report = aggregate(lines)
    pooled = report.field_stats("publish_parallel_ms")
    assert pooled.counts == {3000: 1, 4000: 1}
    assert report.duplicate_count("publish_parallel_ms") == 2
    # each event's own table still shows what it carried
    assert report.events["workflow_timing"].fields["publish_parallel_ms"].n == 2
    assert report.events["web_publish"].fields["publish_parallel_ms"].n == 2
    check = evaluate_budgets(report, {"publish_parallel_ms": 3500})[0]
    assert (check.count, check.observed, check.over_limit) == (2, 4000, 1)


def test_the_join_works_in_either_order_and_across_batches() -> None:
    workflow, web = publish_run("r1", 3000, 5000)
    agg = Aggregator()
    agg.feed_lines([web.encode()])  # the route event first, in an earlier batch
    agg.feed_lines([event("noise", x_ms=1).encode()] * 10)
    agg.feed_lines([workflow.encode()])
    report = agg.report()
    assert report.field_stats("publish_parallel_ms").counts == {3000: 1}


def test_two_events_of_the_same_name_with_one_id_are_two_runs() -> None:
    workflow, _ = publish_run("reused-request-id", 3000, 5000)
    assert aggregate([workflow, workflow]).field_stats("publish_parallel_ms").counts == {3000: 2}


def test_the_join_keeps_working_past_the_first_batch_once_a_second_carrier_appears() -> None:
    agg = Aggregator()
    for i in range(3):  # only the scope event carries the stage for a while: ids are just remembered
        agg.feed_lines([publish_run(f"early-{i}", 100, 200)[0].encode()])
    for i in range(3):
        agg.feed_lines([line.encode() for line in publish_run(f"late-{i}", 300, 400)])
    agg.feed_lines([publish_run("early-1", 100, 200)[1].encode()])  # the route event of an early run
    report = agg.report()
    assert report.field_stats("publish_parallel_ms").counts == {100: 3, 300: 3}


def test_runs_with_different_ids_are_all_counted() -> None:
    workflow, _ = publish_run("r1", 3000, 5000)
    _, web = publish_run("r2", 3000, 5000)
    assert aggregate([workflow, web]).field_stats("publish_parallel_ms").counts == {3000: 2}


def test_the_pooled_fields_in_json_and_text_say_how_many_copies_were_joined() -> None:
    report = aggregate(publish_run("r", 1, 2))
    row = next(r for r in to_json(report)["fields"] if r["field"] == "publish_parallel_ms")
    assert (row["count"], row["joined"], row["events"]) == (1, 1, ["web_publish", "workflow_timing"])
    line = next(x for x in render_text(report).splitlines() if x.startswith("publish_parallel_ms "))
    assert line.split()[1] == "1" and line.split()[-1] == "1"  # count 1, joined 1


# ---------------------------------------------------------------------------------------------- manifest


MANIFEST = """\
version: 1
scopes:
  shop.jobs:Checkout.run: {event: checkout_timing, total: checkout_total_ms}
stages:
  shop.jobs:Checkout.reserve: reserve_ms
  shop.jobs:Checkout.fraud_check: fraud_check_ms
  shop.jobs:Checkout.charge: charge_ms
budgets:
  checkout_total_ms: 1000
"""


def test_stage_order_comes_from_the_manifest_not_from_the_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = tmp_path / "telemetry.yaml"
    manifest.write_text(MANIFEST, encoding="utf-8")
    log = tmp_path / "app.log"
    # the operator's new stage (fraud_check_ms) is logged last but runs second
    log.write_text(
        event(
            "checkout_timing", correlation_id="c", checkout_total_ms=90, charge_ms=50, reserve_ms=10, fraud_check_ms=20
        )
        + "\n",
        encoding="utf-8",
    )
    page = tmp_path / "r.html"
    assert main([str(log), "--manifest", str(manifest), "--html", str(page)]) == 0
    text = capsys.readouterr().out
    fields = re.findall(r"^(\w+_ms) ", text[text.index("Fields") :], re.M)
    assert fields[:4] == ["checkout_total_ms", "reserve_ms", "fraud_check_ms", "charge_ms"]
    html = page.read_text(encoding="utf-8")
    drawn = re.findall(r"<title>(\w+_ms): [\d,]+ ms</title>", html)
    assert drawn[:4] == ["checkout_total_ms", "reserve_ms", "fraud_check_ms", "charge_ms"]


def test_event_key_option_names_events_logged_under_another_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    log = tmp_path / "app.log"
    log.write_text(event("checkout", key="event", checkout_ms=5) + "\n", encoding="utf-8")
    assert [e["event"] for e in run_json([str(log)], capsys)["events"]] == ["(no message)"]
    assert [e["event"] for e in run_json([str(log), "--event-key", "event"], capsys)["events"]] == ["checkout"]


# ---------------------------------------------------------------------------------------------- the page


def test_histogram_axes_have_unit_ticks_and_the_title_as_written() -> None:
    report = aggregate(event("job", job_total_ms=v) for v in range(1000, 9001, 10))
    page = render_html(report, evaluate_budgets(report, {"job_total_ms": 5000}))
    svg = page[page.index('aria-label="distribution of job_total_ms"') :]
    svg = svg[: svg.index("</svg>")]
    ticks = re.findall(r'text-anchor="middle">([\d.,]+ (?:ms|s|min))</text>', svg)
    assert len(ticks) >= 4 and "2 s" in ticks and "8 s" in ticks
    assert ">job_total_ms in ms (linear scale, 801 samples)</text>" in svg
    assert '<h3 id="field-job_total_ms">job_total_ms</h3>' in page


def test_a_far_budget_is_drawn_past_an_axis_break_without_squeezing_the_data() -> None:
    report = aggregate(event("job", job_ms=v) for v in range(100, 200))
    page = render_html(report, evaluate_budgets(report, {"job_ms": 60000}))
    svg = page[page.index('aria-label="distribution of job_ms"') :]
    svg = svg[: svg.index("</svg>")]
    assert "axis break" in svg and "budget p95 60,000 ms" in svg
    bars = [float(x) + float(w) for x, w in re.findall(r'<rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)]
    budget_x = float(re.search(r'<line x1="([\d.]+)"[^>]*stroke="#b00020"', svg).group(1))
    # the data spans most of the plot, and the budget sits beyond its right edge
    assert max(bars) - min(float(x) for x in re.findall(r'<rect x="([\d.]+)"', svg)) > 400
    assert budget_x > max(bars)


def test_the_summary_table_has_one_row_per_field_with_its_budget_status() -> None:
    report = aggregate(publish_run("r1", 3000, 5000) + [event("job", job_ms=5)])
    page = render_html(report, evaluate_budgets(report, {"publish_parallel_ms": 1000}))
    table = page[page.index('<table class="summary">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r'<a href="#field-(\w+)">', table)
    assert sorted(rows) == sorted(["workflow_total_ms", "web_publish_ms", "publish_parallel_ms", "job_ms"])
    row = table[table.index('href="#field-publish_parallel_ms"') :].split("</tr>")[0]
    assert "p95 ≤ 1,000" in row and 'class="breach">BREACH' in row


# ---------------------------------------------------------------------------------------------- layout


REPORT = PACKAGE / "report"


def _report_imports() -> Dict[str, List[str]]:
    """Each module of the report package → what it imports from autoinstrument (function-level imports
    included): a module of the package by its short name, anything else by its full name."""
    graph: Dict[str, List[str]] = {}
    for path in sorted(REPORT.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        names += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        deps = set()
        for name in names:
            if name == "autoinstrument.report":
                deps.add("__init__")
            elif name.startswith("autoinstrument.report."):
                deps.add(name.split(".")[2])
            elif name.startswith("autoinstrument"):
                deps.add(name)
        graph[path.stem] = sorted(deps)
    return graph


def test_report_modules_import_each_other_without_a_cycle_and_only_the_manifest_besides() -> None:
    graph = _report_imports()
    assert {"__init__", "stats", "read", "decode", "records", "aggregate", "budgets", "text", "html", "cli"} <= set(
        graph
    )
    assert "__init__" not in [dep for name, deps in graph.items() if name != "__init__" for dep in deps]
    outside = {dep for deps in graph.values() for dep in deps if dep.startswith("autoinstrument")}
    assert outside and all(dep.split(".")[:2] == ["autoinstrument", "manifest"] for dep in outside), outside
    state: Dict[str, int] = {}

    def visit(name: str) -> None:
        assert state.get(name) != 1, f"import cycle through {name}"
        if state.get(name) == 2:
            return
        state[name] = 1
        for dep in graph.get(name, []):
            visit(dep)
        state[name] = 2

    for name in graph:
        visit(name)


def test_report_modules_hold_no_application_name() -> None:
    paths = list(REPORT.glob("*.py"))
    assert len(paths) >= 10
    for path in paths:
        assert "publisher" not in path.read_text(encoding="utf-8").lower(), path.name


def test_a_long_tail_gets_a_log_axis_with_decade_ticks_and_one_value_still_draws() -> None:
    report = aggregate(event("job", job_ms=v) for v in [2, 3, 40, 500, 6000, 70000])
    page = render_html(report)
    svg = page[page.index('aria-label="distribution of job_ms"') :]
    svg = svg[: svg.index("</svg>")]
    assert "(log scale, 6 samples)" in svg
    ticks = re.findall(r'text-anchor="middle">([\d.,]+ (?:ms|s|min))</text>', svg)
    assert {"10 ms", "100 ms", "1 s", "10 s"} <= set(ticks)
    single = render_html(aggregate([event("one", one_ms=7)] * 3))
    assert "(linear scale, 3 samples)" in single and "7 ms" in single


# ---------------------------------------------------------------------------------------------- caps and edges


def test_hostile_numbers_of_event_names_keep_the_caches_bounded() -> None:
    import autoinstrument.report.aggregate as ra

    agg = Aggregator(max_events=10)
    agg.feed_lines([event(f"e{i}", x_ms=i).encode() for i in range(ra.CACHE_SIZE + 500)])
    report = agg.report()
    assert len(agg._shape_list) <= ra.CACHE_SIZE and len(report.events) == 11
    assert report.events[ra.OTHER].count == ra.CACHE_SIZE + 490 and report.events_used == ra.CACHE_SIZE + 500


def test_the_manifest_names_the_event_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = tmp_path / "telemetry.yaml"
    manifest.write_text(MANIFEST.replace("version: 1\n", "version: 1\nlog:\n  event_key: event\n"), encoding="utf-8")
    log = tmp_path / "app.log"
    log.write_text(event("checkout_timing", key="event", checkout_total_ms=90, reserve_ms=10) + "\n", encoding="utf-8")
    doc = run_json([str(log), "--manifest", str(manifest)], capsys)
    assert doc["event_key"] == "event" and [e["event"] for e in doc["events"]] == ["checkout_timing"]
    override = run_json([str(log), "--manifest", str(manifest), "--event-key", "message"], capsys)
    assert [e["event"] for e in override["events"]] == ["(no message)"]


def test_a_list_as_method_in_a_batch_of_several_routes_is_no_method_and_the_report_goes_on() -> None:
    lines = [
        event("web_x", method=["POST"], route="/a", status_code=200, web_x_ms=5),
        event("web_x", method="GET", route="/b", status_code=404, web_x_ms=7),
    ]
    report = aggregate(lines)  # one shape, one batch, two routes: the list once stopped the report
    assert report.events["web_x"].fields["web_x_ms"].counts == {5: 1, 7: 1}
    assert {key: (group.count, group.status) for key, group in report.routes.items()} == {
        ("web_x", "", "/a"): (1, {"200": 1}),
        ("web_x", "GET", "/b"): (1, {"404": 1}),
    }


def test_reading_pauses_the_cyclic_collector_and_gives_it_back_as_it_was(tmp_path: Path) -> None:
    import gc

    log = tmp_path / "app.log"
    log.write_text(event("job", job_ms=5) + "\n", encoding="utf-8")
    seen = []

    class Spy(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            seen.append(gc.isenabled())
            return super().read(size)

    was = gc.isenabled()
    try:
        for state in (True, False):
            (gc.enable if state else gc.disable)()
            agg = Aggregator()
            agg.feed_stream(Spy(log.read_bytes()))
            assert agg.report().events["job"].count == 1
            assert gc.isenabled() is state  # back as it was
        assert seen and not any(seen)  # off while reading
    finally:
        (gc.enable if was else gc.disable)()
