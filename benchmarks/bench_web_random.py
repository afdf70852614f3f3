"""Benchmark: GET /api/images/random with an empty ledger vs a ledger holding 300,000 upstream hashes (issue 21.8).

Two identical libraries (`bench_web.build_library`, 200 images), each with its own uvicorn (one worker) and
ledger: A's ledger is empty, B's holds `--hashes` posted rows and upstream hashes imported the real way
(`PostLedger.record_import`, as an upstream `posted.json` import writes them). The route is asked one request
at a time (the latency a page sees), A and B interleaved in rounds whose order flips each round, so a noisy
neighbour hurts both alike. Reported: p50/p95 per side and the ratio of medians B/A per round (median, min,
max). Target: the ratio ≤ `--target` (default 1.5): the route's cost does not grow with the ledger.

Side by side, in-process on B's ledger file: what the old route paid per request (`known_hashes()`, a scan of
every hash into a set) vs what the new one pays (`known_among()` of one batch of 4 candidates).

    .venv/bin/python benchmarks/bench_web_random.py [--hashes 300000] [--rounds 6] [--requests 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_web import build_library, free_port, start_server, stop_server  # noqa: E402


def fill_ledger(ini: Path, count: int) -> None:
    """`count` upstream hashes imported into the library's ledger (posted rows + the upstream hash table)."""
    from publisher_v2.config.loader import load_application_config
    from publisher_v2.ledger import PostLedger, store_of

    config = load_application_config(ini)
    upstream = [hashlib.sha256(f"upstream-{i}".encode()).hexdigest() for i in range(count)]
    keys = [hashlib.sha256(bytes.fromhex(h)).hexdigest() for h in upstream]  # as upstream_state.ledger_key
    with PostLedger(store_of(config)) as ledger:
        ledger.record_import(
            "bench:posted.json",
            None,
            upstream,
            keys,
            {"upstream": {"success": True, "post_id": None, "error": None}},
            image_name="(upstream posted.json)",
        )
        assert ledger.posted_count() >= count


def percentile(values: List[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed_requests(client: httpx.Client, url: str, count: int) -> List[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return latencies


def per_call(action: Callable[[], object], repeats: int) -> float:
    """Median seconds of `action` over `repeats` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", type=int, default=300_000)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=100, help="requests per side per round")
    parser.add_argument("--target", type=float, default=1.5)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_web_random_") as tmp:
        root = Path(tmp)
        ini_a = build_library(root / "empty_ledger", args.images)
        ini_b = build_library(root / "big_ledger", args.images)
        started = time.perf_counter()
        fill_ledger(ini_b, args.hashes)
        print(f"ledger B: {args.hashes:,} upstream hashes imported in {time.perf_counter() - started:.1f} s")
        servers = {}
        try:
            for name, ini in (("A", ini_a), ("B", ini_b)):
                port = free_port()
                servers[name] = (start_server(ini, port), f"http://127.0.0.1:{port}/api/images/random")
            results: Dict[str, List[float]] = {"A": [], "B": []}
            ratios = []
            with httpx.Client(timeout=30) as client:
                for name in ("A", "B"):
                    timed_requests(client, servers[name][1], 20)  # warm-up: listing cached, hashes cached
                for round_no in range(args.rounds):
                    order = ("A", "B") if round_no % 2 == 0 else ("B", "A")
                    medians = {}
                    for name in order:
                        latencies = timed_requests(client, servers[name][1], args.requests)
                        results[name].extend(latencies)
                        medians[name] = statistics.median(latencies)
                    ratios.append(medians["B"] / medians["A"])
        finally:
            for process, _ in servers.values():
                stop_server(process)

        from publisher_v2.config.loader import load_application_config
        from publisher_v2.ledger import PostLedger, store_of

        with PostLedger(store_of(load_application_config(ini_b))) as ledger:
            batch = [hashlib.sha256(f"candidate-{i}".encode()).hexdigest() for i in range(4)]
            old_way = per_call(ledger.known_hashes, 5)
            known_among = getattr(ledger, "known_among", None)  # absent in a tree before the fix (--compare runs)
            new_way = per_call(lambda: known_among(batch), 200) if known_among else float("nan")

    ms = {name: [v * 1000 for v in values] for name, values in results.items()}
    report = {
        "hashes": args.hashes,
        "images": args.images,
        "requests_per_side": len(ms["A"]),
        "A_empty_ledger_ms": {"p50": statistics.median(ms["A"]), "p95": percentile(ms["A"], 0.95)},
        "B_big_ledger_ms": {"p50": statistics.median(ms["B"]), "p95": percentile(ms["B"], 0.95)},
        "ratio_B_over_A": {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
        },
        "ledger_lookup_ms_on_B": {"known_hashes_scan_old": old_way * 1000, "known_among_4_new": new_way * 1000},
    }
    print(json.dumps(report, indent=2))
    met = report["ratio_B_over_A"]["median"] <= args.target
    print(f"target (B/A median ≤ {args.target}): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
