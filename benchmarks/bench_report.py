"""`autoinstrument report` on a 1,000,000-event log: wall time and peak memory, side by side with two floors.

Run: .venv/bin/python benchmarks/bench_report.py [--events 1000000] [--small 100000] [--rounds 5] [--huge 0]
     [--gzip] [--markdown] [--dir DIR]

Generates realistic logs (seeded, so reproducible; reused from `--dir` when already there) into a temp folder:
`workflow_timing` summaries with all seven stages, the three web endpoints with their errors (route as `method`
+ `route`, or as one `"POST /api/..."` string), events without `_ms` fields, 20% of lines with a Heroku or
syslog prefix, and 1% extra garbage lines (plain text, truncated JSON, arrays, binary junk, blank).

Side by side, interleaved (each round runs them in a rotated order, each in a fresh subprocess; `--hog N` keeps
N busy loops running meanwhile, to measure with the other core taken):

- ours: the full operator command, `python -m autoinstrument.report LOG --json --html OUT --budgets telemetry.yaml`
  (exact percentiles per event, field and route, slowest runs, the run join, budgets, the HTML page), in one
  process;
- orjson loop: the plain script an operator would write (`--floor orjson`): read lines, `orjson.loads` from the
  first `{`, count every int `_ms` value per (event, field), print count/p50/p95/p99/max per pair;
- DuckDB given the field names (`--floor duckdb`, the `bench` extra): the lines as one text column, the JSON
  from the first `{`, `quantile_disc` and `max` of each named field per event.

Wall time is measured around each child; peak RSS is the child's own `ru_maxrss` (os.wait4, so one run's peak
never hides another's). Ratios are paired per round (ours / floor in the same round), then the median and
spread (min..max) over rounds are printed. Our JSON output is checked against what the generator wrote
(event counts, skipped lines by reason).

Targets (exit 1 when one is missed, or when the counts do not match):
- issue 13, time, judged as a ratio because this machine is shared and its speed moves with the load: the
  issue's "at most 3 s" was set when the plain orjson loop took 3.4 s and DuckDB 2.2 s, so ours must take at
  most 3.0 / 3.4 = 0.88x the orjson loop's wall time and 3.0 / 2.2 = 1.36x DuckDB's, paired per round (same
  round, interleaved), median over rounds. The absolute median against 3 s is printed beside it, not judged;
- issue 13, memory: peak RSS of ours at most 64 MiB (the largest over rounds);
- issue 7: peak RSS on the large log <= small log + 16 MiB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUTES = {
    "web_random_image": ("GET", "/api/images/random", "web_random_image_ms", math.log(120), 0.8, 0.05),
    "web_analyze": ("POST", "/api/images/{filename}/analyze", "web_analyze_ms", math.log(6000), 0.5, 0.03),
    "web_publish": ("POST", "/api/images/{filename}/publish", "web_publish_ms", math.log(9000), 0.5, 0.05),
}
STAGES = (  # field, log-mean, sigma, probability the stage ran
    ("dropbox_list_images_ms", math.log(300), 0.5, 1.0),
    ("image_selection_ms", math.log(30), 0.7, 1.0),
    ("vision_analysis_ms", math.log(4000), 0.4, 1.0),
    ("caption_generation_ms", math.log(1500), 0.5, 1.0),
    ("sidecar_write_ms", math.log(200), 0.6, 0.8),
    ("publish_parallel_ms", math.log(2500), 0.6, 0.9),
    ("archive_ms", math.log(300), 0.5, 0.85),
)
GARBAGE = (
    b"Traceback (most recent call last):",
    b'{"timestamp": "2026-11-28T10:00:00Z", "level": "INFO", "message": "workflow_timing", "workflow_to',
    b"[1, 2, 3]",
    b"\xff\xfe\x00binary\x80junk\x9c",
    b"",
)
GARBAGE_REASON = ("not_json", "invalid_json", "not_object", "not_json", "empty")
_MS_EVENTS = {"workflow_timing"} | {n + s for n in ROUTES for s in ("", "_error")}


def generate(path: str, events: int, seed: int = 7) -> Dict[str, Any]:
    """Write `events` JSON events (plus ~1% garbage lines) to `path`; return what the report must find."""
    rng = random.Random(seed)
    lognorm = rng.lognormvariate
    expected_events: Counter = Counter()
    skipped: Counter = Counter()
    lines = 0
    with open(path, "wb", buffering=1 << 20) as out:
        for i in range(events):
            roll = rng.random()
            cid = f"{rng.getrandbits(64):016x}-{i}"
            stamp = f"2026-11-28T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z"
            body: Dict[str, Any] = {"timestamp": stamp, "level": "INFO", "logger": "publisher_v2.telemetry"}
            if roll < 0.45:
                body["message"] = "workflow_timing"
                body["correlation_id"] = cid
                stages = {f: int(lognorm(mu, s)) for f, mu, s, p in STAGES if p >= 1.0 or rng.random() < p}
                body["workflow_total_ms"] = sum(stages.values()) + int(lognorm(math.log(40), 0.5))
                body.update(stages)
                body.update(image_name=f"img_{i % 5000:05d}.jpg", success=True, archived="archive_ms" in stages)
            elif roll < 0.90:
                name = "web_random_image" if roll < 0.75 else ("web_analyze" if roll < 0.85 else "web_publish")
                method, route, field, mu, sigma, p_err = ROUTES[name]
                error = rng.random() < p_err
                body["message"] = name + ("_error" if error else "")
                body["correlation_id"] = cid
                if rng.random() < 0.5:
                    body.update(method=method, route=route)
                else:
                    body["route"] = f"{method} {route}"
                body["status_code"] = rng.choice((404, 500, 503)) if error else 200
                body[field] = int(lognorm(mu, sigma))
            else:
                body["message"] = rng.choice(("vision_analysis_complete", "web_admin_login", "sidecar_upload_complete"))
                body["correlation_id"] = cid
            expected_events[body["message"]] += 1
            line = json.dumps(body).encode()
            prefix = rng.random()
            if prefix < 0.10:
                line = b"2026-11-28T10:00:00.000000+00:00 app[web.1]: " + line
            elif prefix < 0.20:
                line = b"<134>1 2026-11-28T10:00:00Z host app web.1 - - " + line
            out.write(line + b"\n")
            lines += 1
            if i % 100 == 99:
                k = rng.randrange(len(GARBAGE))
                out.write(GARBAGE[k] + b"\n")
                skipped[GARBAGE_REASON[k]] += 1
                lines += 1
    skipped["no_ms_fields"] += sum(n for name, n in expected_events.items() if name not in _MS_EVENTS)
    return {
        "lines": lines,
        "events": {k: v for k, v in expected_events.items() if k in _MS_EVENTS},
        "skipped": dict(skipped),
        "bytes": os.path.getsize(path),
    }


def run_child(argv: List[str], stdout_path: str) -> Tuple[float, int, int, float]:
    """Run argv; return (wall seconds, peak RSS KiB of that child, exit status, CPU seconds user + system).

    CPU seconds are reported beside wall time because this machine is shared: wall time moves with the
    other jobs, the work a process does far less."""
    with open(stdout_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8
    err = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"report failed ({proc.returncode}): {err}")
    return wall, int(usage.ru_maxrss), proc.returncode, usage.ru_utime + usage.ru_stime


def check(doc: Dict[str, Any], expected: Dict[str, Any]) -> List[str]:
    problems = []
    if doc["lines"] != expected["lines"]:
        problems.append(f"lines {doc['lines']} != {expected['lines']}")
    got = {e["event"]: e["count"] for e in doc["events"]}
    if got != expected["events"]:
        problems.append(f"events {got} != {expected['events']}")
    skipped = {k: v for k, v in doc["skipped"].items() if v}
    if skipped != expected["skipped"]:
        problems.append(f"skipped {skipped} != {expected['skipped']}")
    return problems


FIELDS = ["workflow_total_ms"] + [f for f, *_ in STAGES] + [r[2] for r in ROUTES.values()]


def floor_orjson(path: str) -> None:
    """The plain loop: orjson per line, a Counter of int ms per (event, field), exact nearest-rank stats."""
    import orjson

    counts: Dict[Tuple[Any, str], Counter] = {}
    loads = orjson.loads
    with open(path, "rb") as handle:
        for line in handle:
            start = line.find(b"{")
            if start < 0:
                continue
            try:
                obj = loads(line[start:])
            except ValueError:
                continue
            if type(obj) is not dict:
                continue
            event = obj.get("message")
            for key, value in obj.items():
                if key.endswith("_ms") and type(value) is int:
                    counter = counts.get((event, key))
                    if counter is None:
                        counter = counts[(event, key)] = Counter()
                    counter[value] += 1
    out = []
    for (event, key), counter in counts.items():
        n = sum(counter.values())
        ranks = {p: max(1, math.ceil(p * n / 100)) for p in (50, 95, 99)}
        stats: Dict[str, int] = {}
        seen = 0
        for value, times in sorted(counter.items()):
            seen += times
            for p, rank in ranks.items():
                if f"p{p}" not in stats and seen >= rank:
                    stats[f"p{p}"] = value
        out.append({"event": event, "field": key, "count": n, **stats, "max": max(counter)})
    json.dump(out, sys.stdout)


def floor_duckdb(path: str) -> None:
    """DuckDB given the field names: lines as text, JSON from the first `{`, quantiles per event and field."""
    import duckdb

    con = duckdb.connect()
    picks = ", ".join(f"TRY_CAST(json_extract_string(j, '$.{f}') AS BIGINT) AS {f}" for f in FIELDS)
    stats = ", ".join(
        f"count({f}) AS {f}_n, quantile_disc({f}, [0.5, 0.95, 0.99]) AS {f}_q, max({f}) AS {f}_max" for f in FIELDS
    )
    query = f"""
        WITH raw AS (
            SELECT line FROM read_csv(?, columns = {{'line': 'VARCHAR'}}, delim = '\x01', quote = '',
                                      escape = '', header = false, auto_detect = false, ignore_errors = true)
        ), parsed AS (
            SELECT TRY_CAST(substr(line, strpos(line, '{{')) AS JSON) AS j FROM raw WHERE strpos(line, '{{') > 0
        ), cols AS (
            SELECT json_extract_string(j, '$.message') AS event, {picks} FROM parsed WHERE j IS NOT NULL
        )
        SELECT event, {stats} FROM cols GROUP BY event
    """
    rows = con.execute(query, [path]).fetchall()
    json.dump([list(map(str, row)) for row in rows], sys.stdout)


def ensure_log(work: str, label: str, n: int) -> Tuple[str, Dict[str, Any], float]:
    """The seeded log of n events in `work` (reused when its expectations file is there)."""
    path = os.path.join(work, f"{label}.log")
    meta = path + ".expected.json"
    if os.path.exists(path) and os.path.exists(meta):
        with open(meta, encoding="utf-8") as handle:
            expected = json.load(handle)
        if expected.get("n") == n and expected.get("bytes") == os.path.getsize(path):
            return path, expected, 0.0
    t0 = time.perf_counter()
    expected = generate(path, n, seed=n)
    expected["n"] = n
    with open(meta, "w", encoding="utf-8") as handle:
        json.dump(expected, handle)
    return path, expected, time.perf_counter() - t0


def spread(values: List[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}..{fmt.format(max(values))})"


def compare(
    path: str, expected: Dict[str, Any], rounds: int, budgets: str, hogs: int = 0
) -> Tuple[List[str], List[str], Dict]:
    """Ours vs the orjson loop vs DuckDB on one log, interleaved; (printed lines, failures, figures)."""
    py = sys.executable
    me = os.path.abspath(__file__)
    out_html = path + ".compare.html"
    contestants = {
        "ours": [py, "-m", "autoinstrument.report", path, "--json", "--html", out_html, "--budgets", budgets],
        "orjson loop": [py, me, "--floor", "orjson", path],
    }
    try:
        import duckdb  # noqa: F401

        contestants["DuckDB"] = [py, me, "--floor", "duckdb", path]
    except ImportError:
        print("  (duckdb not installed: pip install -e '.[bench]' to compare with it)", file=sys.stderr)
    names = list(contestants)
    walls: Dict[str, List[float]] = {n: [] for n in names}
    cpus: Dict[str, List[float]] = {n: [] for n in names}
    rss: Dict[str, List[float]] = {n: [] for n in names}
    ratios: Dict[str, List[float]] = {n: [] for n in names if n != "ours"}
    cpu_ratios: Dict[str, List[float]] = {n: [] for n in names if n != "ours"}
    failures: List[str] = []
    busy = [subprocess.Popen([py, "-c", "while True: pass"]) for _ in range(hogs)]  # other work on the machine
    try:
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            this: Dict[str, float] = {}
            this_cpu: Dict[str, float] = {}
            for name in order:
                stdout = path + f".{name.split()[0]}.out"
                wall, peak, _, cpu = run_child(contestants[name], stdout)
                this[name] = wall
                this_cpu[name] = cpu
                walls[name].append(wall)
                cpus[name].append(cpu)
                rss[name].append(peak / 1024)
                if name == "ours" and r == 0:
                    with open(stdout, encoding="utf-8") as handle:
                        failures += [f"ours: {p}" for p in check(json.load(handle), expected)]
            for name in ratios:
                ratios[name].append(this["ours"] / this[name])
                cpu_ratios[name].append(this_cpu["ours"] / this_cpu[name])
            print(
                f"  round {r + 1}: " + ", ".join(f"{n} {this[n]:.2f} s ({this_cpu[n]:.2f} s CPU)" for n in order),
                file=sys.stderr,
            )
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"{expected['n']:,} events ({os.path.getsize(path) / 2**20:.0f} MiB), {rounds} interleaved rounds, "
        f"median (min..max); a child's peak RSS includes this benchmark process's {own:.1f} MiB at its start "
        "(Linux carries the peak across fork and exec), so no figure below can be lower:",
        "| contestant | wall s | CPU s (user+sys) | peak RSS MiB | ours / it, wall | ours / it, CPU |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        ratio = spread(ratios[name]) if name in ratios else "1"
        cpu_ratio = spread(cpu_ratios[name]) if name in cpu_ratios else "1"
        lines.append(
            f"| {name} | {spread(walls[name])} | {spread(cpus[name])} | {spread(rss[name], '{:.1f}')} | {ratio} "
            f"| {cpu_ratio} |"
        )
    figures: Dict[str, Any] = {
        "wall": statistics.median(walls["ours"]),
        "walls": walls["ours"],
        "rss": max(rss["ours"]),
        "ratios": {name: ratios[name] for name in ratios},
    }
    return lines, failures, figures


def judge(figures: Dict[str, Any], args: argparse.Namespace) -> Tuple[List[str], List[str]]:
    """(printed verdict lines, failures): the issue's targets as ratios (judged), the absolute figure (printed)."""
    lines: List[str] = []
    failures: List[str] = []
    for floor, limit, source in (
        ("orjson loop", args.target_ratio_orjson, "3.0 / 3.4"),
        ("DuckDB", args.target_ratio_duckdb, "3.0 / 2.2"),
    ):
        paired = figures["ratios"].get(floor)
        if not paired:
            lines.append(f"- time vs {floor}: not measured (ours / {floor} must be <= {limit:.2f}x)")
            continue
        median = statistics.median(paired)
        met = median <= limit
        lines.append(
            f"- time vs {floor}: ours / {floor} wall {spread(paired)} (median, min..max of the paired rounds); "
            f"target <= {limit:.2f}x ({source}): {'met' if met else 'NOT met'}"
        )
        if not met:
            failures.append(f"ours / {floor} wall {median:.2f}x > {limit:.2f}x")
    walls = figures["walls"]
    lines.append(
        f"- time, absolute: ours {spread(walls)} s (median, min..max); the issue's {args.target_s:g} s: "
        f"{'met' if figures['wall'] <= args.target_s else 'not met'} on this run (printed, not judged: the "
        "machine is shared, the ratios above are the target)"
    )
    met = figures["rss"] <= args.target_mib
    lines.append(
        f"- memory: ours peaked at {figures['rss']:.1f} MiB (largest over rounds); target <= {args.target_mib:g} MiB: "
        f"{'met' if met else 'NOT met'}"
    )
    if not met:
        failures.append(f"ours peaked at {figures['rss']:.1f} MiB > {args.target_mib:g} MiB")
    return lines, failures


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the side-by-side comparison")
    parser.add_argument("--huge", type=int, default=0, help="also a log of this many events (3000000 ≈ 1 GB)")
    parser.add_argument("--gzip", action="store_true", help="also report the large log gzip-compressed")
    parser.add_argument("--dir", help="work folder (default: a temp folder, removed afterwards)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--hog", type=int, default=0, help="busy-loop processes kept running during the side-by-side rounds"
    )
    parser.add_argument("--headroom-mib", type=float, default=16.0, help="allowed RSS growth small → large")
    parser.add_argument(
        "--target-s", type=float, default=3.0, help="issue 13: 1,000,000 events within this (printed, not judged)"
    )
    parser.add_argument(
        "--target-ratio-orjson",
        type=float,
        default=round(3.0 / 3.4, 2),
        help="issue 13 as judged: ours / orjson loop wall time, paired per round, median (0.88 = 3.0 s / 3.4 s)",
    )
    parser.add_argument(
        "--target-ratio-duckdb",
        type=float,
        default=round(3.0 / 2.2, 2),
        help="issue 13 as judged: ours / DuckDB wall time, paired per round, median (1.36 = 3.0 s / 2.2 s)",
    )
    parser.add_argument("--target-mib", type=float, default=64.0, help="issue 13: peak RSS within this")
    parser.add_argument("--floor", choices=("orjson", "duckdb"), help=argparse.SUPPRESS)
    parser.add_argument("log", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor:  # a child of the comparison
        (floor_orjson if args.floor == "orjson" else floor_duckdb)(args.log)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench_report_") as tmp:
        work = args.dir or tmp
        os.makedirs(work, exist_ok=True)
        py = sys.executable
        budgets = os.path.join(ROOT, "telemetry.yaml")
        rows: List[Dict[str, Any]] = []
        failures: List[str] = []

        wall, rss, _, _ = run_child([py, "-c", "import autoinstrument.report, json, gzip"], os.devnull)
        rows.append({"input": "baseline: python + import autoinstrument.report", "wall": wall, "rss": rss})

        cases = [("small", args.small), ("large", args.events)] + ([("huge", args.huge)] if args.huge else [])
        large_log: Optional[Tuple[str, Dict[str, Any]]] = None
        for label, n in cases:
            path, expected, gen = ensure_log(work, label, n)
            if label == "large":
                large_log = (path, expected)
            inputs = [(path, expected)]
            if args.gzip and label == "large":
                gz = path + ".gz"
                with open(path, "rb") as src, gzip.open(gz, "wb", compresslevel=6) as dst:
                    while True:
                        chunk = src.read(1 << 20)
                        if not chunk:
                            break
                        dst.write(chunk)
                inputs.append((gz, expected))
            for file, exp in inputs:
                out_json = file + ".json"
                cmd = [py, "-m", "autoinstrument.report", file, "--json", "--html", file + ".html"]
                wall, rss, code, _ = run_child(cmd + ["--budgets", budgets], out_json)
                with open(out_json, encoding="utf-8") as handle:
                    doc = json.load(handle)
                failures += [f"{os.path.basename(file)}: {p}" for p in check(doc, exp)]
                rows.append(
                    {
                        "input": f"{n:,} events{' (.gz)' if file.endswith('.gz') else ''}",
                        "lines": exp["lines"],
                        "mib": os.path.getsize(file) / 2**20,
                        "wall": wall,
                        "rss": rss,
                        "rate": exp["lines"] / wall,
                        "exit": code,
                        "html_kib": os.path.getsize(file + ".html") / 1024,
                        "generate": gen,
                    }
                )
                print(f"  {rows[-1]['input']}: {wall:.1f} s, peak RSS {rss / 1024:.1f} MiB", file=sys.stderr)
        side_by_side: List[str] = []
        verdict: List[str] = []
        if large_log and args.rounds > 0:
            side_by_side, more, figures = compare(large_log[0], large_log[1], args.rounds, budgets, args.hog)
            failures += more
            verdict, more = judge(figures, args)
            failures += more

    small = next(r for r in rows if r["input"].startswith(f"{args.small:,} "))
    large = next(r for r in rows if r["input"] == f"{args.events:,} events")
    biggest = next(r for r in rows if r["input"] == f"{args.huge:,} events") if args.huge else large
    growth = (max(large["rss"], biggest["rss"]) - small["rss"]) / 1024
    flat = growth <= args.headroom_mib
    if not flat:
        failures.append(f"peak RSS grew {growth:.1f} MiB from the small to the large log (> {args.headroom_mib})")

    header = "| input | lines | file MiB | wall s | lines/s | peak RSS MiB | HTML KiB | exit |"
    print(header if args.markdown else header.replace("|", " ").strip())
    if args.markdown:
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = [
            r["input"],
            f"{r['lines']:,}" if "lines" in r else "",
            f"{r['mib']:.1f}" if "mib" in r else "",
            f"{r['wall']:.2f}",
            f"{r['rate']:,.0f}" if "rate" in r else "",
            f"{r['rss'] / 1024:.1f}",
            f"{r['html_kib']:.0f}" if "html_kib" in r else "",
            str(r.get("exit", "")),
        ]
        print("| " + " | ".join(cells) + " |" if args.markdown else "  ".join(cells))
    print(
        f"\npeak RSS growth {args.small:,} → {max(args.events, args.huge):,} events: {growth:+.1f} MiB "
        f"({'flat: met' if flat else 'NOT met'}, allowed {args.headroom_mib} MiB)"
    )
    if side_by_side:
        print()
        for line in side_by_side:
            print(line if args.markdown else line.replace("|", " ").strip())
        print(f"\nissue 13 on {args.events:,} events:")
        for line in verdict:
            print(line)
    for problem in failures:
        print("FAIL:", problem)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
