"""Web benchmark: GET /api/images/random against GET /health on a 1,000-image library.

Builds a library of small JPEGs (half of them with a caption sidecar), starts
`uvicorn publisher_v2.web.app:app` (one worker, no access log) on 127.0.0.1, and drives both endpoints with a
bounded asyncio + httpx load generator in interleaved rounds (so a noisy neighbour hurts both alike). Reports
requests/s and p50/p95 latency per endpoint and the ratio random/health; exits 1 when random is below
`--target` x health (default 0.5).

    .venv/bin/python benchmarks/bench_web.py [--images 1000] [--rounds 3] [--duration 3] [--concurrency 16]

The load generator is importable (`run_load`, `load`): other benchmarks (middleware on/off) use the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


# -- the load generator --------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    """One load run against one path: counts, wall time and per-request latencies (seconds)."""

    path: str
    concurrency: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: List[float] = field(default_factory=list, repr=False)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
        return ordered[index] * 1000.0

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p95_ms(self) -> float:
        return self.percentile_ms(95)

    def merge(self, other: LoadStats) -> LoadStats:
        """Two runs of the same path as one (rounds are summed, latencies pooled)."""
        return LoadStats(
            self.path,
            self.concurrency,
            self.requests + other.requests,
            self.errors + other.errors,
            self.seconds + other.seconds,
            self.latencies + other.latencies,
        )

    def summary(self) -> Dict[str, float]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
        }


class _Budget:
    """A shared request budget (-1: unlimited), so `max_requests` bounds all connections together."""

    def __init__(self, max_requests: Optional[int]) -> None:
        self.left = max_requests if max_requests is not None else -1

    def take(self) -> bool:
        if self.left == 0:
            return False
        if self.left > 0:
            self.left -= 1
        return True


def _record(stats: LoadStats, ok: bool, started: float) -> None:
    if ok:
        stats.latencies.append(time.perf_counter() - started)
        stats.requests += 1
    else:
        stats.errors += 1


async def _read_response(reader: asyncio.StreamReader) -> Tuple[int, bool]:
    """Read one HTTP/1.1 response; (status, server wants the connection closed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
    if match:
        await reader.readexactly(int(match.group(1)))
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, b"\r\nconnection: close" in lower


async def _raw_worker(
    base_url: str, request: bytes, deadline: float, stats: LoadStats, budget: _Budget
) -> None:
    """One keep-alive connection speaking just enough HTTP/1.1 to measure the server, not the client."""
    url = httpx.URL(base_url)
    reader = writer = None
    try:
        while time.perf_counter() < deadline and budget.take():
            if writer is None:
                reader, writer = await asyncio.open_connection(url.host, url.port or 80)
            t0 = time.perf_counter()
            try:
                writer.write(request)
                status, close = await _read_response(reader)  # type: ignore[arg-type]
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status, close = 0, True
            _record(stats, 200 <= status < 300, t0)
            if close:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _httpx_worker(
    client: httpx.AsyncClient, path: str, deadline: float, stats: LoadStats, budget: _Budget
) -> None:
    while time.perf_counter() < deadline and budget.take():
        t0 = time.perf_counter()
        try:
            response = await client.get(path)
            ok = 200 <= response.status_code < 300
        except httpx.HTTPError:
            ok = False
        _record(stats, ok, t0)


async def run_load(
    base_url: str,
    path: str,
    duration: float = 3.0,
    concurrency: int = 16,
    max_requests: Optional[int] = None,
    headers: Optional[Mapping[str, str]] = None,
    engine: str = "raw",
) -> LoadStats:
    """`concurrency` keep-alive connections issuing GET `path` back to back for `duration` seconds (or until
    `max_requests` in total). A non-2xx answer or a transport error counts as an error (no latency kept).

    engine "raw" (default) writes the request bytes on asyncio streams and reads the answer by Content-Length:
    cheap enough that the server, not the generator, is what gets measured. engine "httpx" uses
    httpx.AsyncClient, whose own per-request cost (several ms on a small shared machine) caps the rate it can
    drive, which hides server differences.
    """
    stats = LoadStats(path, concurrency)
    budget = _Budget(max_requests)
    started = time.perf_counter()
    deadline = started + duration
    if engine == "raw":
        url = httpx.URL(base_url)
        lines = [f"GET {path} HTTP/1.1", f"Host: {url.host}:{url.port}", "Connection: keep-alive"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        await asyncio.gather(
            *(_raw_worker(base_url, request, deadline, stats, budget) for _ in range(concurrency))
        )
    elif engine == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=base_url, limits=limits, timeout=30.0, headers=dict(headers or {})
        ) as client:
            await asyncio.gather(
                *(_httpx_worker(client, path, deadline, stats, budget) for _ in range(concurrency))
            )
    else:
        raise ValueError(f"unknown engine {engine!r} (raw or httpx)")
    stats.seconds = time.perf_counter() - started
    return stats


def load(
    base_url: str, path: str, duration: float = 3.0, concurrency: int = 16, engine: str = "raw"
) -> LoadStats:
    """Synchronous wrapper of `run_load` (one fresh event loop per call)."""
    return asyncio.run(run_load(base_url, path, duration=duration, concurrency=concurrency, engine=engine))


# -- the library and the server ------------------------------------------------------------------------------


def build_library(root: Path, count: int = 1000, sidecar_every: int = 2) -> Path:
    """`count` small JPEGs in `root/images` (each `sidecar_every`-th with a sidecar) and an INI (returned)."""
    from PIL import Image

    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        name = f"img_{i:04d}.jpg"
        Image.new("RGB", (64, 48), ((i * 37) % 256, (i * 59) % 256, (i * 83) % 256)).save(
            images / name, "JPEG"
        )
        if sidecar_every and i % sidecar_every == 0:
            (images / f"img_{i:04d}.txt").write_text(
                f"a small test photo number {i}\n\n# ---\n# image_file: {name}\n# sd_caption_version: b\n",
                encoding="utf-8",
            )
    ini = root / "publisher.ini"
    ini.write_text(
        "[Storage]\nbackend = local\n\n[Local]\nimage_folder = images\narchive = archive\n\n"
        "[AI]\nbackend = offline\n\n[Publishing]\nbackend = outbox\noutbox_folder = outbox\n\n"
        "[Content]\narchive = true\ntelegram = true\n\n[State]\nledger_path = state/publisher_state.sqlite\n",
        encoding="utf-8",
    )
    return ini


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    config_path: Path,
    port: int,
    extra_env: Optional[Mapping[str, str]] = None,
    log_path: Optional[Path] = None,
) -> subprocess.Popen:
    """`uvicorn publisher_v2.web.app:app` on 127.0.0.1:`port`, one worker, no access log; waits for it."""
    env = dict(os.environ)
    env.update({"CONFIG_PATH": str(config_path), "PYTHONPATH": str(REPO_ROOT)})
    env.update(extra_env or {})
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "publisher_v2.web.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
        cwd=str(REPO_ROOT),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with status {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("uvicorn did not answer /health within 30 s")


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_wrk(url: str, duration: float, concurrency: int) -> Optional[float]:
    """Requests/s from Debian's `wrk` when it is installed (an independent check of the python generator)."""
    if shutil.which("wrk") is None:
        return None
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, int(duration))}s", url],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split(":", 1)[1])
    return None


# -- the benchmark -------------------------------------------------------------------------------------------


def interleaved(
    base_url: str, paths: List[str], rounds: int, duration: float, concurrency: int, engine: str = "raw"
) -> Dict[str, LoadStats]:
    """`rounds` rounds over `paths`, alternating their order each round; per-path stats summed over rounds."""
    totals: Dict[str, LoadStats] = {}
    for number in range(rounds):
        order = paths if number % 2 == 0 else list(reversed(paths))
        for path in order:
            stats = load(base_url, path, duration=duration, concurrency=concurrency, engine=engine)
            totals[path] = totals[path].merge(stats) if path in totals else stats
    return totals


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per endpoint per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--target", type=float, default=0.5, help="required random/health throughput ratio")
    parser.add_argument("--engine", choices=["raw", "httpx"], default="raw", help="load generator client")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench_web_"))
    try:
        ini = build_library(workdir, args.images)
        port = free_port()
        server = start_server(ini, port, log_path=workdir / "server.log")
        base = f"http://127.0.0.1:{port}"
        try:
            for path in ("/health", "/api/images/random"):  # warm-up: imports, caches
                load(base, path, duration=1.0, concurrency=args.concurrency, engine=args.engine)
            paths = ["/health", "/api/images/random"]
            totals = interleaved(base, paths, args.rounds, args.duration, args.concurrency, args.engine)
            wrk = {path: run_wrk(base + path, args.duration, args.concurrency) for path in totals}
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    health, rand = totals["/health"], totals["/api/images/random"]
    ratio = rand.rps / health.rps if health.rps else 0.0
    result = {
        "images": args.images,
        "rounds": args.rounds,
        "duration_per_round_s": args.duration,
        "concurrency": args.concurrency,
        "engine": args.engine,
        "cpus": os.cpu_count(),
        "health": health.summary(),
        "random": rand.summary(),
        "ratio_random_to_health": round(ratio, 3),
        "target": args.target,
        "wrk_rps": {path: value for path, value in wrk.items() if value is not None} or None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for label, stats in (("GET /health", health), ("GET /api/images/random", rand)):
            print(
                f"{label:<26} {stats.rps:8.1f} req/s  p50 {stats.p50_ms:6.2f} ms  p95 {stats.p95_ms:6.2f} ms"
                f"  ({stats.requests} ok, {stats.errors} errors)"
            )
        print(f"random / health throughput: {ratio:.3f} (target >= {args.target})")
        if result["wrk_rps"]:
            print("wrk req/s: " + ", ".join(f"{p} {v:.0f}" for p, v in result["wrk_rps"].items()))
    errors = health.errors + rand.errors
    if errors:
        print(f"FAIL: {errors} requests failed", file=sys.stderr)
        return 1
    if ratio < args.target:
        print(f"FAIL: random reached {ratio:.3f} x health throughput, target {args.target}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
