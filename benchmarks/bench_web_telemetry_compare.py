"""Web telemetry, side by side in ONE process: what each way of getting "id in/out + one event per request"
adds to GET /api/images/random, called in-process through the real app's ASGI stack (no network).

    .venv/bin/python benchmarks/bench_web_telemetry_compare.py [--images 1000] [--rounds 60] [--per-block 100]
        [--target 1.25] [--json]

Variants, all on the SAME app object, switched between blocks (the middleware stack is rebuilt):

    off                  no middleware
    raw_floor            id in/out + one orjson line written with os.write (asgi_floor.RawFloorMiddleware)
    app_log_floor        id in/out + one event through the app's log_json (asgi_floor.FloorMiddleware)
    autoinstrument       `autoinstrument.install(telemetry.yaml)`: the real thing (stages, routes, ids, merge)
    autoinstrument_web_only  the same manifest without its stages and scopes: what the floor does (id in/out,
                         one event through the app's log function) plus the route match, the id check and the
                         merge with the app's own event, but no stage timed inside the request
    asgi_correlation_id  asgi-correlation-id's CorrelationIdMiddleware + a stdlib `json.dumps` line via logging
    opentelemetry        FastAPIInstrumentor.instrument_app (SDK TracerProvider, no exporter)

Every round runs one block of every variant in a shuffled order (blocks of `--per-block` requests, after a
short warm-up block), so drift and noisy neighbours hit all alike. A variant's overhead is the median over
rounds of (its block mean - the same round's `off` block mean), in microseconds per request, with the
10th..90th percentile of those paired differences as its spread; the same for process CPU time
(`time.process_time`, which the neighbours' load on a shared machine disturbs less than the wall clock), and
autoinstrument minus the app-log floor paired round by round. Events go to a file through the app's own
`setup_logging` handler. Exit status 1 when autoinstrument's overhead (the full manifest) exceeds `--target` x the
app-log floor's (the issue's bound: 1.25); the web-only figure is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for entry in (str(HERE), str(REPO)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench_web import build_library  # noqa: E402

VARIANTS = (
    "off",
    "raw_floor",
    "app_log_floor",
    "autoinstrument",
    "autoinstrument_web_only",
    "asgi_correlation_id",
    "opentelemetry",
)


class StdlibJsonLine:
    """After asgi-correlation-id: time the request and log one stdlib `json.dumps` line (what a developer
    adopting that library would add for the event)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.logger = logging.getLogger("bench.stdlib")

    async def __call__(self, scope: dict, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from asgi_correlation_id import correlation_id

        start = time.perf_counter()
        status = [500]

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.logger.info(
                json.dumps(
                    {
                        "message": "web_random_image",
                        "correlation_id": correlation_id.get(),
                        "web_random_image_ms": int((time.perf_counter() - start) * 1000 + 0.5),
                        "method": scope["method"],
                        "route": scope["path"],
                        "status_code": status[0],
                    }
                )
            )


def web_only_manifest() -> Any:
    """The repository's manifest without stages, scopes and budgets (its `log` and `web` sections as they are)."""
    import dataclasses

    from autoinstrument.manifest import load_manifest

    return dataclasses.replace(load_manifest(str(REPO / "telemetry.yaml")), scopes=(), stages=(), budgets=())


class Switch:
    """Puts the app in one variant's state (and takes it out again)."""

    def __init__(self, app: Any, raw_fd: int) -> None:
        self.app = app
        self.raw_fd = raw_fd
        self.current = "off"

    def use(self, variant: str) -> None:
        from asgi_floor import FloorMiddleware, RawFloorMiddleware

        import autoinstrument

        app = self.app
        if self.current == variant:
            return
        # Leave the current state.
        if self.current in ("autoinstrument", "autoinstrument_web_only"):
            autoinstrument.uninstall()
        elif self.current == "opentelemetry":
            from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

            FastAPIInstrumentor.uninstrument_app(app)
        vars(app).pop("build_middleware_stack", None)
        app.middleware_stack = None
        build = type(app).build_middleware_stack
        # Enter the new one.
        if variant == "raw_floor":
            app.build_middleware_stack = lambda: RawFloorMiddleware(build(app), self.raw_fd)
        elif variant == "app_log_floor":
            app.build_middleware_stack = lambda: FloorMiddleware(build(app))
        elif variant == "autoinstrument":
            assert autoinstrument.install(str(REPO / "telemetry.yaml"))
        elif variant == "autoinstrument_web_only":
            assert autoinstrument.install(web_only_manifest())
        elif variant == "asgi_correlation_id":
            from asgi_correlation_id import CorrelationIdMiddleware

            app.build_middleware_stack = lambda: CorrelationIdMiddleware(StdlibJsonLine(build(app)))
        elif variant == "opentelemetry":
            from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
            from opentelemetry.sdk.trace import TracerProvider

            FastAPIInstrumentor.instrument_app(app, tracer_provider=TracerProvider())
        self.current = variant


async def block(app: Any, n: int) -> Tuple[float, float]:
    """(wall-clock, process CPU) microseconds per request over `n` requests."""
    from asgi_floor import get

    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await get(app)
    return (time.perf_counter() - start) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def check_variants(switch: Switch, log_path: Path) -> Dict[str, bool]:
    """Each variant really answers the correlation header (else the comparison is of nothing)."""
    from asgi_floor import PATH

    async def headers_of() -> List[bytes]:
        seen: List[bytes] = []
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "root_path": "", "query_string": b"",
                 "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen.extend(name for name, _ in message.get("headers", ()))

        await switch.app(scope, receive, send)
        return seen

    out = {}
    for variant in VARIANTS:
        switch.use(variant)
        names = asyncio.run(headers_of())
        out[variant] = b"x-correlation-id" in names or b"x-request-id" in names or variant in ("off", "opentelemetry")
    return out


def measure(
    app: Any, switch: Switch, rounds: int, per_block: int, warmup: int = 10
) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """Per variant, one wall-clock and one CPU-time sample (us/request) per round."""
    samples: Dict[str, List[float]] = {v: [] for v in VARIANTS}
    cpu: Dict[str, List[float]] = {v: [] for v in VARIANTS}

    async def run() -> None:
        order = list(VARIANTS)
        for variant in order:  # warm-up: imports, caches, the listing
            switch.use(variant)
            await block(app, 200)
        # The app's long-lived objects out of the collector's way: a full collection walking them lands in a
        # random block and costs more than the differences measured. Collections of what each variant
        # allocates per request still happen (the collector stays on).
        gc.collect()
        gc.freeze()
        for _ in range(rounds):
            random.shuffle(order)
            for variant in order:
                switch.use(variant)
                await block(app, warmup)
                wall, used = await block(app, per_block)
                samples[variant].append(wall)
                cpu[variant].append(used)
        switch.use("off")

    asyncio.run(run())
    return samples, cpu


def summarize(samples: Dict[str, List[float]]) -> Dict[str, Dict[str, float]]:
    off = samples["off"]
    out: Dict[str, Dict[str, float]] = {}
    for variant, values in samples.items():
        paired = sorted(v - o for v, o in zip(values, off))
        out[variant] = {
            "us_per_request": round(statistics.median(values), 1),
            "overhead_us": round(statistics.median(paired), 1),
            "overhead_p10_us": round(paired[len(paired) // 10], 1),
            "overhead_p90_us": round(paired[(len(paired) * 9) // 10], 1),
        }
    # autoinstrument against the app-log floor directly, round by round (no `off` in between)
    for ours in OURS:
        direct = sorted(a - f for a, f in zip(samples[ours], samples["app_log_floor"]))
        out[f"{ours}_minus_app_log_floor"] = {
            "median_us": round(statistics.median(direct), 1),
            "p10_us": round(direct[len(direct) // 10], 1),
            "p90_us": round(direct[(len(direct) * 9) // 10], 1),
        }
    return out


OURS = ("autoinstrument", "autoinstrument_web_only")


def ratio_interval(samples: Dict[str, List[float]], ours: str, resamples: int = 2000) -> Tuple[float, float]:
    """The 5th..95th percentile of `ours`' ratio to the app-log floor over bootstrap resamples of the rounds
    (rounds drawn with replacement, each keeping its own `off`, floor and `ours` blocks together): how far the
    median ratio could move with another run's rounds on the same machine (seeded: the same samples give the
    same interval)."""
    draw = random.Random(20).choices
    off, floor, mine = samples["off"], samples["app_log_floor"], samples[ours]
    index = range(len(off))
    ratios = []
    for _ in range(resamples):
        picked = draw(index, k=len(off))
        added = statistics.median([mine[i] - off[i] for i in picked])
        base = statistics.median([floor[i] - off[i] for i in picked])
        ratios.append(added / base if base > 0 else float("inf"))
    ratios.sort()
    return ratios[resamples // 20], ratios[(resamples * 19) // 20]


def ratio_of(figures: Dict[str, Dict[str, float]], ours: str = "autoinstrument") -> float:
    """`ours`' added time over the app-log floor's (medians of paired differences)."""
    floor = figures["app_log_floor"]["overhead_us"]
    return figures[ours]["overhead_us"] / floor if floor > 0 else float("inf")


def print_table(
    title: str, figures: Dict[str, Dict[str, float]], target: float, samples: Dict[str, List[float]]
) -> None:
    print(title)
    print(f"{'variant':<22}{'us/request':>12}{'overhead us':>14}{'p10..p90':>18}")
    for variant in VARIANTS:
        f = figures[variant]
        spread = f"{f['overhead_p10_us']:.1f}..{f['overhead_p90_us']:.1f}"
        print(f"{variant:<22}{f['us_per_request']:>12.1f}{f['overhead_us']:>14.1f}{spread:>18}")
    for ours in OURS:
        d = figures[f"{ours}_minus_app_log_floor"]
        print(f"{ours} - app-log floor, paired per round: {d['median_us']:+.1f} us "
              f"(p10..p90 {d['p10_us']:+.1f}..{d['p90_us']:+.1f}); "
              f"added / floor's added: {ratio_of(figures, ours):.2f} (target <= {target})")
        low, high = ratio_interval(samples, ours)
        print(f"  {ours} / floor, bootstrap over rounds, p5..p95: {low:.2f}..{high:.2f}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--per-block", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10, help="requests after each switch, not measured")
    parser.add_argument("--target", type=float, default=1.25, help="max autoinstrument / app-log floor overhead")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench_web_compare_"))
    try:
        ini = build_library(workdir, args.images)
        for name in list(os.environ):
            if name.startswith(("PUBLISHER_", "AUTOINSTRUMENT")):
                del os.environ[name]
        os.environ["CONFIG_PATH"] = str(ini)
        import publisher_v2.web.app as module
        from publisher_v2.utils.logging import setup_logging

        app = module.app  # built as a server builds it (its logging set up on stderr)...
        log_path = workdir / "events.log"
        stream = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        setup_logging(stream=stream)  # ...then the same JSON handler, on a file
        raw_fd = os.open(workdir / "raw.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        switch = Switch(app, raw_fd)
        verified = check_variants(switch, log_path)
        samples, cpu_samples = measure(app, switch, args.rounds, args.per_block, args.warmup)
        stream.flush()
        events = (log_path.read_text(encoding="utf-8")).count("web_random_image")
        raw_events = (workdir / "raw.log").read_text(encoding="utf-8").count("\n")
        os.close(raw_fd)
        stream.close()
    finally:
        logging.getLogger().handlers.clear()
        shutil.rmtree(workdir, ignore_errors=True)

    figures = summarize(samples)
    cpu_figures = summarize(cpu_samples)
    ratio = ratio_of(figures)
    result = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "images": args.images,
        "rounds": args.rounds,
        "per_block": args.per_block,
        "variants": figures,
        "autoinstrument_to_app_log_floor": round(ratio, 2),
        "autoinstrument_web_only_to_app_log_floor": round(ratio_of(figures, "autoinstrument_web_only"), 2),
        "variants_cpu_time": cpu_figures,
        "autoinstrument_to_app_log_floor_cpu_time": round(ratio_of(cpu_figures), 2),
        "autoinstrument_web_only_to_app_log_floor_cpu_time": round(
            ratio_of(cpu_figures, "autoinstrument_web_only"), 2
        ),
        "web_only_ratio_bootstrap_p5_p95": ratio_interval(samples, "autoinstrument_web_only"),
        "web_only_ratio_cpu_time_bootstrap_p5_p95": ratio_interval(cpu_samples, "autoinstrument_web_only"),
        "target": args.target,
        "verified_header": verified,
        "events_written": events,
        "raw_floor_lines": raw_events,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"GET /api/images/random in process, {args.rounds} rounds x {args.per_block} requests per variant "
              f"(Python {result['python']}, {result['cpus']} CPUs)")
        print_table("wall clock (the reported figure):", figures, args.target, samples)
        print_table("process CPU time (what the neighbours' load disturbs least):", cpu_figures, args.target,
                    cpu_samples)
    failed = False
    if not all(verified.values()):
        print(f"FAIL: a variant does not answer the correlation header: {verified}", file=sys.stderr)
        failed = True
    if ratio > args.target:
        print(f"FAIL: autoinstrument adds {ratio:.2f}x the app-log floor, target {args.target}", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
