"""Web telemetry: throughput of GET /api/images/random with the autoinstrument middleware on vs off.

Two `uvicorn publisher_v2.web.app:app` processes (one worker, no access log) serve the SAME 1,000-image library,
one started with PUBLISHER_AUTOINSTRUMENT=1 (the middleware emits one `web_random_image` JSON line per request
into its stderr log file) and one with it off. The same load generator (`bench_web.run_load`, raw keep-alive
HTTP/1.1 on asyncio streams) drives them in INTERLEAVED rounds, A B B A A B ... (the order flips every round,
so drift and noisy neighbours hit both sides alike). Reports requests/s and p50/p95 per side, pooled over the
rounds, the relative difference, and the median of the per-round ratios. Exit status 1 when "on" serves more
than `--target` percent fewer requests per second than "off" (pooled), or when a request failed, or when the
"on" server did not actually emit its events (a benchmark of nothing).

    .venv/bin/python benchmarks/bench_web_telemetry.py [--images 1000] [--rounds 8] [--duration 3]
        [--concurrency 16] [--target 3] [--json]

Also printed: the in-process cost of the middleware per request (the ASGI stack called directly, no
network), which is what the end-to-end difference should be made of.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import httpx

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from bench_web import LoadStats, build_library, free_port, load, start_server, stop_server  # noqa: E402

PATH = "/api/images/random"


def check_sides(on: str, off: str) -> None:
    """The "on" server answers X-Correlation-ID and the "off" one does not (else the comparison is void)."""
    with_header = httpx.get(on + PATH, headers={"X-Request-ID": "bench-check"}, timeout=10)
    without = httpx.get(off + PATH, headers={"X-Request-ID": "bench-check"}, timeout=10)
    if with_header.headers.get("x-correlation-id") != "bench-check":
        raise SystemExit("FAIL: the server started with PUBLISHER_AUTOINSTRUMENT=1 has no middleware")
    if "x-correlation-id" in without.headers:
        raise SystemExit("FAIL: the server started without PUBLISHER_AUTOINSTRUMENT has the middleware")


def count_events(log_path: Path, field: str) -> int:
    """Lines carrying the telemetry's `field` (the app logs the route's event name itself: the name alone
    would count the app's own events of the "off" server too)."""
    needle = f'"{field}":'
    with open(log_path, encoding="utf-8", errors="replace") as handle:
        return sum(1 for line in handle if needle in line)


def in_process_cost(ini: Path, blocks: int = 60, per_block: int = 100) -> Dict[str, float]:
    """Microseconds per GET /api/images/random through the ASGI stack (no network), in a child interpreter.

    Variants, interleaved block by block in a shuffled order (so drift hits all alike), on the SAME app:
    - `off`: no middleware;
    - `on`: the autoinstrument middleware (one `web_random_image` event per request);
    - `on_events_discarded`: the same, its events dropped before `log_json` (attribution only);
    - `floor`: `asgi_floor.FloorMiddleware`, the least any middleware meeting the issue could do.
    Reported: the median and the 10th percentile of the per-block means, and `log_json` alone.
    """
    code = f"""
import asyncio, json, logging, os, random, statistics, sys, time
os.environ["CONFIG_PATH"] = {str(ini)!r}
sys.stderr = open(os.devnull, "w")
import publisher_v2.web.app as module
app = module.app
import autoinstrument
from autoinstrument.runtime import install as hooks
from asgi_floor import LOGGER, PATH, FloorMiddleware as Floor, get as call
from publisher_v2.utils.logging import log_json
sink = logging.StreamHandler(open({str(ini.parent / "inproc.log")!r}, "w"))

def use(variant):
    # Switch the app to `variant` (the stack is rebuilt on the next request).
    state = hooks.current()
    if variant in ("on", "on_events_discarded"):
        if state is None:
            vars(app).pop("build_middleware_stack", None)  # not on top of the floor middleware
            autoinstrument.install()
            state = hooks.current()
        telemetry = state.web.telemetry
        if telemetry.ready is not None:
            telemetry.first_request()  # resolves the log function the request path calls
        if variant == "on_events_discarded":
            telemetry.function = lambda *args, **fields: None
            telemetry.emit = telemetry.emit_now = lambda *args, **fields: None
        else:
            found = state.emitter.direct()
            telemetry.function = found[0] if found else None
            telemetry.emit, telemetry.emit_now = state.emitter.emit, state.emitter.emit_now
        return
    if state is not None:
        autoinstrument.uninstall()
    vars(app).pop("build_middleware_stack", None)
    if variant == "floor":
        build = type(app).build_middleware_stack
        app.build_middleware_stack = lambda: Floor(build(app))
    app.middleware_stack = None

async def block(n):
    start = time.perf_counter()
    for _ in range(n):
        await call(app)
    return (time.perf_counter() - start) / n * 1e6

async def main():
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(sink)
    variants = ["off", "on", "on_events_discarded", "floor"]
    out = {{v: [] for v in variants}}
    for v in variants:
        use(v)
        await block(200)
    for _ in range({blocks}):
        random.shuffle(variants)
        for v in variants:
            use(v)
            await block(10)
            out[v].append(await block({per_block}))
    use("off")
    fields = {{"correlation_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "web_random_image_ms": 1, "method": "GET",
        "route": PATH, "status_code": 200, "dropbox_list_images_ms": 0}}
    t0 = time.perf_counter()
    for _ in range(5000):
        log_json(LOGGER, logging.INFO, "web_random_image", **fields)
    result = {{}}
    for v, samples in out.items():
        result[v] = statistics.median(samples)
        result[v + "_p10"] = sorted(samples)[len(samples) // 10]
    result["one_log_json_event"] = (time.perf_counter() - t0) / 5000 * 1e6
    print(json.dumps(result))

asyncio.run(main())
"""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), str(HERE)])
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        return {"error": out.stderr[-800:]}  # type: ignore[dict-item]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("", "_p10"):
        result["overhead_us" + key] = result["on" + key] - result["off" + key]
        result["overhead_without_events_us" + key] = result["on_events_discarded" + key] - result["off" + key]
        result["floor_overhead_us" + key] = result["floor" + key] - result["off" + key]
    return {k: round(v, 1) for k, v in result.items()}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=8, help="rounds; each runs both sides once")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per side per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--target", type=float, default=3.0, help="max percent fewer req/s with the middleware")
    parser.add_argument("--no-micro", action="store_true", help="skip the in-process per-request cost")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench_web_telemetry_"))
    try:
        ini = build_library(workdir, args.images)
        logs = {"on": workdir / "on.log", "off": workdir / "off.log"}
        ports = {"on": free_port(), "off": free_port()}
        switches = {"on": "1", "off": "0"}
        servers: Dict[str, Any] = {}
        try:
            for side in ("on", "off"):
                servers[side] = start_server(
                    ini, ports[side], extra_env={"PUBLISHER_AUTOINSTRUMENT": switches[side]}, log_path=logs[side]
                )
            base = {side: f"http://127.0.0.1:{port}" for side, port in ports.items()}
            check_sides(base["on"], base["off"])
            for side in ("on", "off"):  # warm-up: imports, caches, the listing
                load(base[side], PATH, duration=1.0, concurrency=args.concurrency)
            emitted_before = count_events(logs["on"], "web_random_image_ms")
            totals: Dict[str, LoadStats] = {}
            ratios: List[float] = []
            for number in range(args.rounds):
                order = ("on", "off") if number % 2 == 0 else ("off", "on")
                this_round: Dict[str, LoadStats] = {}
                for side in order:
                    stats = load(base[side], PATH, duration=args.duration, concurrency=args.concurrency)
                    this_round[side] = stats
                    totals[side] = totals[side].merge(stats) if side in totals else stats
                if this_round["off"].rps:
                    ratios.append(this_round["on"].rps / this_round["off"].rps)
        finally:
            for process in servers.values():
                stop_server(process)
        emitted = count_events(logs["on"], "web_random_image_ms") - emitted_before
        leaked = count_events(logs["off"], "web_random_image_ms")
        micro = {} if args.no_micro else in_process_cost(ini)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    on, off = totals["on"], totals["off"]
    difference = (off.rps - on.rps) / off.rps * 100.0 if off.rps else 0.0
    result = {
        "images": args.images,
        "rounds": args.rounds,
        "duration_per_side_per_round_s": args.duration,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "on": on.summary(),
        "off": off.summary(),
        "fewer_rps_with_middleware_percent": round(difference, 2),
        "per_round_ratio_on_to_off": [round(r, 3) for r in ratios],
        "median_round_ratio": round(statistics.median(ratios), 3) if ratios else None,
        "events_emitted_on": emitted,
        "events_emitted_off": leaked,
        "in_process_us_per_request": micro,
        "target_percent": args.target,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for label, stats in (("middleware on ", on), ("middleware off", off)):
            print(
                f"{label}  {stats.rps:8.1f} req/s  p50 {stats.p50_ms:6.2f} ms  p95 {stats.p95_ms:6.2f} ms"
                f"  ({stats.requests} ok, {stats.errors} errors)"
            )
        print(
            f"on vs off: {difference:+.2f}% fewer req/s with the middleware (target <= {args.target}%); "
            f"median per-round ratio {result['median_round_ratio']}; per round {result['per_round_ratio_on_to_off']}"
        )
        print(f"events emitted by 'on': {emitted} (requests {on.requests}); by 'off': {leaked}")
        if micro:
            print(f"in-process per request: {micro}")
    failed = False
    if on.errors or off.errors:
        print(f"FAIL: {on.errors + off.errors} requests failed", file=sys.stderr)
        failed = True
    if emitted < on.requests or leaked:
        print("FAIL: the 'on' server did not emit one event per request (or 'off' emitted)", file=sys.stderr)
        failed = True
    if difference > args.target:
        print(f"FAIL: {difference:.2f}% fewer req/s with the middleware, target {args.target}%", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
