"""`autoinstrument report`: exact percentiles, skipped-line accounting, routes, slowest runs, budgets, CLI."""

from __future__ import annotations

import gzip
import io
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from autoinstrument.report import Report, main, render_text, to_json
from autoinstrument.report.aggregate import Aggregator, aggregate
from autoinstrument.report.budgets import check_budgets, evaluate_budgets
from autoinstrument.report.decode import NO_MESSAGE, OTHER, SKIP_REASONS
from autoinstrument.report.document import SCHEMA_VERSION
from autoinstrument.report.errors import BudgetError
from autoinstrument.report.read import MAX_LINE_BYTES
from autoinstrument.report.settings import load_budgets

REPO = Path(__file__).resolve().parents[2]


def event(message: str, **fields: Any) -> str:
    body: Dict[str, Any] = {
        "timestamp": "2026-11-28T10:00:00Z",
        "level": "INFO",
        "logger": "publisher_v2.telemetry",
        "message": message,
    }
    body.update(fields)
    return json.dumps(body)


def workflow(total: int, cid: str, **stages: int) -> str:
    return event("workflow_timing", correlation_id=cid, workflow_total_ms=total, image_name="a.jpg", **stages)


def nearest_rank(values: List[int], p: float) -> int:
    """Reference definition, written independently of the implementation: x(ceil(p/100*n)), 1-based."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def field_summary(report: Report, name: str, fieldname: str) -> Dict[str, Any]:
    return report.events[name].fields[fieldname].summary()


# ---------------------------------------------------------------------------------------------- percentiles


def test_percentiles_of_1_to_20_are_nearest_rank_values() -> None:
    report = aggregate(event("job", job_ms=v) for v in range(20, 0, -1))
    s = field_summary(report, "job", "job_ms")
    assert (s["count"], s["p50"], s["p95"], s["p99"], s["max"], s["mean"]) == (20, 10, 19, 20, 20, 10.5)


def test_p50_of_four_samples_is_the_second_smallest() -> None:
    report = aggregate(event("job", job_ms=v) for v in (4, 1, 3, 2))
    assert report.events["job"].fields["job_ms"].percentile(50) == 2


def test_skewed_data_set_puts_p95_and_p99_on_the_tail_values() -> None:
    values = [100] * 90 + [1000] * 9 + [5000]
    random.Random(1).shuffle(values)
    s = field_summary(aggregate(event("job", job_ms=v) for v in values), "job", "job_ms")
    # ranks: 1..90 → 100, 91..99 → 1000, 100 → 5000; p95 is rank 95, p99 rank 99
    assert (s["p50"], s["p95"], s["p99"], s["max"]) == (100, 1000, 1000, 5000)
    assert s["mean"] == round((90 * 100 + 9 * 1000 + 5000) / 100, 1)


@pytest.mark.parametrize("n", [1, 2, 7, 101, 2000])
def test_percentiles_match_the_reference_definition_on_random_data(n: int) -> None:
    rng = random.Random(n)
    values = [int(rng.lognormvariate(6, 1.2)) for _ in range(n)]
    s = field_summary(aggregate(event("job", job_ms=v) for v in values), "job", "job_ms")
    for p in (50, 95, 99):
        assert s[f"p{p}"] == nearest_rank(values, p), p
    assert s["max"] == max(values) and s["count"] == n


def test_floats_are_rounded_half_up_and_non_durations_are_invalid() -> None:
    lines = [event("job", job_ms=v) for v in (2.5, 0.4, 7.0, True, -1, "12", None, [3])]
    lines.append('{"message": "job", "job_ms": NaN}')
    lines.append('{"message": "job", "job_ms": Infinity}')
    stats = aggregate(lines).events["job"].fields["job_ms"]
    assert sorted(stats.counts.items()) == [(0, 1), (3, 1), (7, 1)]
    assert stats.invalid == 7


def test_memory_follows_distinct_values_not_the_number_of_events() -> None:
    agg = Aggregator()
    for i in range(30000):
        agg.feed(event("job", job_ms=i % 50, other_ms=7))
    report = agg.report()
    assert report.events["job"].count == 30000
    assert len(report.events["job"].fields["job_ms"].counts) == 50
    assert len(report.events["job"].fields["other_ms"].counts) == 1
    assert report.distinct_values() == 51


# ---------------------------------------------------------------------------------------------- input


def test_platform_prefixes_and_trailing_text_are_ignored() -> None:
    body = event("workflow_timing", correlation_id="c1", workflow_total_ms=1200)
    lines = [
        f"2026-11-28T10:00:00+00:00 app[web.1]: {body}",
        f"<134>1 2026-11-28T10:00:00Z host app - - {body}",
        f"{body} trailing words",
        body,
    ]
    report = aggregate(lines)
    assert report.events["workflow_timing"].count == 4
    assert report.skipped == {}


def test_garbage_lines_are_counted_by_reason_and_never_crash() -> None:
    good = event("job", job_ms=5)
    lines = [
        "",
        "   ",
        "plain text, no braces",
        '{"message": "job", "job_ms": 5',  # truncated
        "app[web.1]: {not json at all}",
        "[1, 2, 3]",
        '"just a string"',
        "42",
        '{"message": "vision_analysis_complete", "model": "x"}',  # an object, no _ms field
        "[" * 100000,  # deep nesting: RecursionError inside json
        "{" + '"a":' * 5000 + "1",
        '{"message": "job", "job_ms": ' + "9" * 5000 + "}",  # int too long for Python's int parser limit
        good,
    ]
    report = aggregate(lines)
    assert report.events["job"].count == 1
    assert report.lines == len(lines)
    assert report.skipped == {
        "empty": 2,
        "not_json": 2,  # the plain text and the bare "[[[[..." (no `{` anywhere)
        "invalid_json": 4,
        "not_object": 3,
        "no_ms_fields": 1,
    }


def test_binary_junk_and_non_utf8_bytes_are_decoded_with_replacement() -> None:
    stream = io.BytesIO(
        b"\x00\xff\xfe\x80garbage\n"
        + b'{"message": "job", "job_ms": 12, "image_name": "caf\xe9.jpg", "correlation_id": "c\xff"}\n'
        + bytes(b for b in range(256) if b != 10)
        + b"\n"
    )
    agg = Aggregator()
    agg.feed_stream(stream)
    report = agg.report()
    assert report.events["job"].fields["job_ms"].counts == {12: 1}
    assert report.slowest["job_ms"][0].correlation_id == "c\ufffd"
    assert report.lines == 3 and sum(report.skipped.values()) == 2


def test_a_line_over_the_limit_is_skipped_without_losing_the_next_one() -> None:
    giant = b'{"message": "job", "job_ms": 1, "pad": "' + b"x" * (MAX_LINE_BYTES * 2) + b'"}\n'
    stream = io.BytesIO(giant + event("job", job_ms=9).encode() + b"\n" + giant.rstrip(b"\n"))
    agg = Aggregator()
    agg.feed_stream(stream)
    report = agg.report()
    assert report.skipped == {"too_long": 2}
    assert report.events["job"].fields["job_ms"].counts == {9: 1}


def test_aggregate_consumes_a_generator_lazily() -> None:
    consumed = []

    def lines():
        for i in range(1000):
            consumed.append(i)
            yield event("job", job_ms=i)

    report = aggregate(lines())
    assert len(consumed) == 1000 and report.events["job"].count == 1000


def test_an_object_with_ms_fields_but_no_message_is_kept_under_a_placeholder() -> None:
    report = aggregate(['{"job_ms": 3}', '{"message": 7, "job_ms": 4}'])
    assert report.events[NO_MESSAGE].count == 2


def test_event_names_beyond_the_cap_fold_into_other() -> None:
    report = aggregate((event(f"e{i}", x_ms=i) for i in range(10)), max_events=3)
    assert sorted(report.events) == sorted(["e0", "e1", "e2", OTHER])
    assert report.events[OTHER].count == 7 and report.dropped == {"events_over_cap": 7}


# ---------------------------------------------------------------------------------------------- routes


def test_web_events_are_grouped_per_family_method_and_route_template() -> None:
    publish = "/api/images/{filename}/publish"
    lines = [
        event("web_publish", method="POST", route=publish, status_code=200, web_publish_ms=900),
        event("web_publish_error", method="post", route=publish, status_code=500, web_publish_ms=4000),
        event("web_publish", route=f"POST {publish}", status_code=200, web_publish_ms=1100),
        event(
            "web_random_image",
            method="GET",
            route="/api/images/random",
            status_code=200,
            web_random_image_ms=40,
        ),
        event("web_random_image_error", route="GET /api/images/random", status_code=404, web_random_image_ms=60),
        event("web_analyze", method="POST", route="/api/images/{filename}/analyze", web_analyze_ms=7000),
    ]
    routes = aggregate(lines).routes
    assert sorted(routes) == [
        ("web_analyze", "POST", "/api/images/{filename}/analyze"),
        ("web_publish", "POST", publish),
        ("web_random_image", "GET", "/api/images/random"),
    ]
    pub = routes[("web_publish", "POST", publish)]
    assert pub.count == 3
    assert pub.status == {"200": 2, "500": 1}
    assert pub.fields["web_publish_ms"].summary()["max"] == 4000
    assert routes[("web_random_image", "GET", "/api/images/random")].status == {"200": 1, "404": 1}
    assert routes[("web_analyze", "POST", "/api/images/{filename}/analyze")].status == {}


def test_events_without_a_route_are_not_in_the_route_table() -> None:
    assert aggregate([workflow(100, "c1")]).routes == {}


# ---------------------------------------------------------------------------------------------- slowest runs


def test_slowest_runs_keep_the_top_n_with_stages_and_correlation_id() -> None:
    lines = [workflow(1000 + i, f"c{i}", vision_analysis_ms=i, caption_generation_ms=2 * i) for i in range(50)]
    report = aggregate(lines, top=3)
    runs = report.slowest["workflow_total_ms"]
    assert [r.total_ms for r in runs] == [1049, 1048, 1047]
    assert [r.correlation_id for r in runs] == ["c49", "c48", "c47"]
    assert runs[0].stages == {"vision_analysis_ms": 49, "caption_generation_ms": 98}
    assert runs[0].context["image_name"] == "a.jpg"


def test_on_equal_totals_the_earlier_run_is_kept() -> None:
    report = aggregate([workflow(500, f"c{i}") for i in range(5)], top=2)
    assert [r.correlation_id for r in report.slowest["workflow_total_ms"]] == ["c0", "c1"]


def test_error_events_rank_with_their_family_by_the_shared_total_field() -> None:
    lines = [
        event("web_publish", web_publish_ms=100, correlation_id="ok"),
        event("web_publish_error", web_publish_ms=9000, correlation_id="bad"),
    ]
    runs = aggregate(lines).slowest["web_publish_ms"]
    assert [(r.event, r.correlation_id) for r in runs] == [
        ("web_publish_error", "bad"),
        ("web_publish", "ok"),
    ]


def test_explicit_totals_override_the_naming_convention() -> None:
    lines = [event("job_done", setup_ms=5, whole_ms=50, correlation_id="x")]
    assert aggregate(lines).slowest == {}
    runs = aggregate(lines, totals={"job_done": "whole_ms"}).slowest["whole_ms"]
    assert runs[0].stages == {"setup_ms": 5}


def test_top_zero_keeps_no_runs() -> None:
    assert aggregate([workflow(1, "c")], top=0).slowest == {}


# ---------------------------------------------------------------------------------------------- budgets


def budget_report() -> Report:
    lines = [workflow(v, f"c{v}", caption_generation_ms=v // 10) for v in range(1000, 41000, 1000)]  # 40 runs
    lines += [event("web_publish", web_publish_ms=1000), event("web_publish_error", web_publish_ms=45000)]
    return aggregate(lines)


def test_a_bare_number_is_a_p95_budget() -> None:
    report = budget_report()  # workflow_total_ms: 1000..40000; p95 = rank 38 = 38000
    [check] = evaluate_budgets(report, {"workflow_total_ms": 38000})
    assert (check.statistic, check.observed, check.breached) == ("p95", 38000, False)
    [breach] = check_budgets(report, {"workflow_total_ms": 37999})
    assert (breach.field, breach.statistic, breach.observed, breach.limit) == (
        "workflow_total_ms",
        "p95",
        38000,
        37999,
    )
    assert breach.over_limit == 3 and breach.events == ["workflow_timing"]


def test_mapping_budgets_check_each_named_statistic() -> None:
    checks = evaluate_budgets(budget_report(), {"caption_generation_ms": {"p50": 3000, "max": 3000}})
    assert [(c.statistic, c.observed, c.breached) for c in checks] == [
        ("p50", 2000, False),
        ("max", 4000, True),
    ]


def test_a_field_budget_pools_success_and_error_events() -> None:
    [check] = check_budgets(budget_report(), {"web_publish_ms": {"max": 30000}})
    assert check.observed == 45000 and check.count == 2
    assert check.events == ["web_publish", "web_publish_error"]


def test_a_budget_without_samples_is_no_data_not_a_breach() -> None:
    [check] = evaluate_budgets(budget_report(), {"web_analyze_ms": 20000})
    assert check.status == "no data" and not check.breached
    assert check_budgets(budget_report(), {"web_analyze_ms": 20000}) == []


@pytest.mark.parametrize(
    "budgets",
    [{"x_ms": 0}, {"x_ms": True}, {"x_ms": "fast"}, {"x_ms": {"p90": 10}}, {"x_ms": {}}, {"total": 10}],
)
def test_malformed_budgets_are_rejected_with_the_key(budgets: Dict[str, Any]) -> None:
    with pytest.raises(BudgetError, match="x_ms|total"):
        evaluate_budgets(budget_report(), budgets)


def test_load_budgets_reads_the_shipped_telemetry_yaml() -> None:
    budgets = load_budgets(str(REPO / "telemetry.yaml"))
    assert budgets["workflow_total_ms"] == {"p95": 30000.0}
    assert budgets["web_random_image_ms"] == {"p95": 5000.0}
    assert set(budgets) == {
        "workflow_total_ms",
        "caption_generation_ms",
        "publish_parallel_ms",
        "web_random_image_ms",
        "web_analyze_ms",
        "web_publish_ms",
    }


def test_load_budgets_without_a_budgets_mapping_says_so(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("version: 1\n", encoding="utf-8")
    with pytest.raises(BudgetError, match="budgets"):
        load_budgets(str(path))


# ---------------------------------------------------------------------------------------------- output


def test_json_output_has_a_stable_versioned_schema() -> None:
    report = budget_report()
    doc = to_json(report, evaluate_budgets(report, {"workflow_total_ms": 30000}))
    json.dumps(doc)  # serialisable
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert set(doc) == {
        "schema_version",
        "percentile_method",
        "unit",
        "lines",
        "events_used",
        "skipped",
        "dropped",
        "distinct_values",
        "event_key",
        "fields",
        "events",
        "routes",
        "slowest",
        "budgets",
        "breached",
    }
    assert list(doc["skipped"]) == list(SKIP_REASONS)
    assert doc["event_key"] == "message"
    pooled = {row["field"]: row for row in doc["fields"]}
    assert pooled["workflow_total_ms"]["count"] == 40 and pooled["workflow_total_ms"]["joined"] == 0
    wf = next(e for e in doc["events"] if e["event"] == "workflow_timing")
    assert wf["count"] == 40
    assert wf["fields"][0] == {
        "field": "workflow_total_ms",
        "count": 40,
        "invalid": 0,
        "p50": 20000,
        "p95": 38000,
        "p99": 40000,
        "max": 40000,
        "mean": 20500.0,
    }
    assert doc["budgets"][0] == {
        "field": "workflow_total_ms",
        "statistic": "p95",
        "limit": 30000,
        "observed": 38000,
        "count": 40,
        "over_limit": 10,
        "events": ["workflow_timing"],
        "status": "BREACH",
        "breached": True,
    }
    assert doc["breached"] is True
    slowest = {group["total_field"]: group["runs"] for group in doc["slowest"]}
    assert slowest["workflow_total_ms"][0]["correlation_id"] == "c40000"
    assert slowest["workflow_total_ms"][0]["stages"] == {"caption_generation_ms": 4000}
    assert (slowest["web_publish_ms"][0]["event"], slowest["web_publish_ms"][0]["total_ms"]) == (
        "web_publish_error",
        45000,
    )


def test_text_output_lists_fields_routes_slowest_and_budgets() -> None:
    report = budget_report()
    text = render_text(report, evaluate_budgets(report, {"workflow_total_ms": 30000, "web_analyze_ms": 1}))
    for needle in ("workflow_total_ms", "caption_generation_ms", "Slowest", "c40000", "BREACH", "no data"):
        assert needle in text


def test_text_output_neutralises_terminal_escape_sequences_from_logs() -> None:
    text = render_text(aggregate([event("evil\x1b[2J\x07", x_ms=1, correlation_id="\x1b]0;pwned\x07")]))
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J" in text


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def logfile(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    lines = [workflow(v, f"c{v}", caption_generation_ms=v // 10) for v in (1000, 2000, 40000)]
    lines += ["not json", f"2026-11-28T10:00:00+00:00 app[web.1]: {event('web_publish', web_publish_ms=5)}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_budgets(tmp_path: Path, text: str) -> str:
    path = tmp_path / "budgets.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_main_exits_0_within_budget(logfile: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    budgets = write_budgets(tmp_path, "budgets:\n  workflow_total_ms: {max: 40000}\n")
    assert main([str(logfile), "--budgets", budgets]) == 0
    assert "all budgets met" in capsys.readouterr().out


def test_main_exits_1_on_a_breach(logfile: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    budgets = write_budgets(tmp_path, "budgets:\n  workflow_total_ms: 30000\n")
    assert main([str(logfile), "--budgets", budgets, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["breached"] is True and doc["budgets"][0]["observed"] == 40000


def test_main_exits_0_without_budgets(logfile: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(logfile)]) == 0
    assert "workflow_total_ms" in capsys.readouterr().out


def test_main_exits_2_with_one_clear_line_for_a_missing_file(
    logfile: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "nope.log"
    assert main([str(logfile), str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    expected = f"autoinstrument report: cannot read {missing}: no such file or folder"
    assert captured.err.strip().splitlines() == [expected]


def test_main_exits_2_for_a_bad_budgets_file(logfile: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    budgets = write_budgets(tmp_path, "budgets:\n  workflow_total_ms: soon\n")
    assert main([str(logfile), "--budgets", budgets]) == 2
    assert "workflow_total_ms" in capsys.readouterr().err
    assert main([str(logfile), "--budgets", str(tmp_path / "missing.yaml")]) == 2


def test_main_exits_2_on_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["--no-such-option"]) == 2
    assert main(["--top", "-1"]) == 2


def test_main_reads_stdin_when_no_file_or_dash(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    data = (workflow(777, "from-stdin") + "\n").encode()
    for argv in ([], ["-"]):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
        assert main(argv + ["--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["slowest"][0]["runs"][0]["correlation_id"] == "from-stdin"


def test_main_reads_gzip_files_and_several_files_into_one_report(
    logfile: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    gz = tmp_path / "rotated.log.gz"
    gz.write_bytes(gzip.compress((workflow(50000, "old-run") + "\n").encode()))
    assert main([str(logfile), str(gz), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    wf = next(e for e in doc["events"] if e["event"] == "workflow_timing")
    assert wf["count"] == 4 and wf["fields"][0]["max"] == 50000


def test_main_exits_2_on_a_corrupt_gzip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gz = tmp_path / "broken.gz"
    gz.write_bytes(gzip.compress(b'{"message": "x", "x_ms": 1}\n' * 1000)[:40])
    assert main([str(gz)]) == 2
    assert "broken.gz" in capsys.readouterr().err


def test_module_runs_as_a_script_and_imports_neither_yaml_nor_the_app(logfile: Path) -> None:
    probe = (
        "import sys, autoinstrument.report; "
        "print(sorted(m for m in sys.modules if m == 'yaml' or m.startswith('publisher_v2')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "autoinstrument.report",
            str(logfile),
            "--budgets",
            str(REPO / "telemetry.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 1, run.stderr  # 40,000 ms > 30,000 ms p95 for workflow_total_ms
    assert "BREACH" in run.stdout
