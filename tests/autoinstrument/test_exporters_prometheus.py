"""Prometheus end to end: one histogram per `_ms` field, at `/metrics` on the instrumented ASGI app and in a CLI
run's node_exporter textfile, checked against the very events `autoinstrument report` reads.

The shop (tests/autoinstrument/shop_app) runs with `telemetry-export.yaml` through the start-up switch alone.
The last test starts Debian's real `prometheus` (apt-get install prometheus; `.ci/run` installs it) on
127.0.0.1, scraping a 2-worker uvicorn of the shop (prometheus_client's multiprocess mode) and the CLI run's
textfile (served as node_exporter's textfile collector would), and compares PromQL's
`histogram_quantile(0.95, ...)` with `report`'s p95 of the same requests: within one bucket.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from telemetry_testkit import HERE, subprocess_env

from autoinstrument.export.prometheus import buckets_for, metric_name
from autoinstrument.manifest import load_manifest

SHOP_EXPORT = HERE / "shop_app" / "telemetry-export.yaml"
SCRIPT = Path(sys.executable).parent / "autoinstrument"
pytestmark = pytest.mark.slow

#: the shop's `python -m shop_app` run, then one scrape of /metrics through the same ASGI app
RUN_SHOP = """
import asyncio, json, sys
import shop_app.__main__ as shop
from shop_app.web import app

async def scrape():
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "GET", "path": "/metrics", "root_path": "", "query_string": b"",
             "headers": []}
    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"])[b"content-type"].decode(), sent[1]["body"].decode()

result = asyncio.run(shop.main())
status, content_type, body = asyncio.run(scrape())
json.dump({"result": result, "status": status, "content_type": content_type, "metrics": body}, sys.stdout)
"""


def copy_manifest(tmp_path: Path) -> Path:
    manifest = tmp_path / "telemetry.yaml"
    manifest.write_text(SHOP_EXPORT.read_text(encoding="utf-8"), encoding="utf-8")
    return manifest


def run_shop(tmp_path: Path, manifest: Path) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    proc = subprocess.run(
        [sys.executable, "-c", RUN_SHOP], capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
        env=subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(manifest),
                           XDG_CACHE_HOME=str(tmp_path / "cache")),
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert not [e for e in events if e["event"] == "autoinstrument_fault"], proc.stderr
    return json.loads(proc.stdout), events


def histograms(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], Dict[str, float]]:
    """(metric, labels without le) -> {"count": n, "sum": s, "<le>": cumulative count}."""
    out: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], Dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k != "le"}
            slot = out.setdefault((family.name, tuple(sorted(labels.items()))), {})
            if sample.name.endswith("_bucket"):
                slot[sample.labels["le"]] = sample.value
            elif sample.name.endswith("_count"):
                slot["count"] = sample.value
            elif sample.name.endswith("_sum"):
                slot["sum"] = sample.value
    return out


def expected(events: List[Dict[str, Any]]) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], List[int]]:
    """What the histograms must hold, computed from the JSON events alone."""
    out: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], List[int]] = {}
    for event in events:
        if event["event"] == "checkout_timing":
            route, status_class = "", "ok"
        elif event["event"] == "order_served":
            route, status_class = event["route"], f"{event['status_code'] // 100}xx"
        else:
            continue
        labels = (("event", event["event"]), ("paid", str(event.get("paid", ""))), ("route", route),
                  ("status_class", status_class))
        for field, value in event.items():
            if field.endswith("_ms"):
                out.setdefault((metric_name(field), labels), []).append(value)
    return out


def test_metrics_and_the_cli_textfile_hold_exactly_the_events(tmp_path: Path) -> None:
    manifest = copy_manifest(tmp_path)
    out, events = run_shop(tmp_path, manifest)
    assert out["status"] == 200 and out["content_type"].startswith("text/plain; version=")
    scraped = histograms(out["metrics"])
    want = expected(events)
    assert set(scraped) == set(want) and len(want) == 3 + 3  # checkout: 3 fields; the route: 3 (its own + stages)
    loaded = load_manifest(str(manifest))
    for key, values in want.items():
        got = scraped[key]
        assert got["count"] == len(values) and abs(got["sum"] - sum(values) / 1000) < 1e-9, (key, got, values)
        assert got == scraped_of(values, loaded, key)  # every bucket counts exactly the events at or below it
    # the budgets are bucket bounds (exact quantiles there), and no label carries a path or an id
    assert 2.0 in buckets_for(loaded, "web_order_ms") and 5.0 in buckets_for(loaded, "web_order_ms")
    assert "tea" not in out["metrics"] and "order-1" not in out["metrics"]

    # The CLI textfile: written atomically at the exit of each outermost scope (the two direct checkouts, not
    # the checkouts nested in a request), into the manifest's `textfile_dir`: the .prom file and its lock, no
    # temp file left behind.
    folder = tmp_path / "metrics"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".autoinstrument-shop.telemetry.prom.lock", "autoinstrument-shop.telemetry.prom",
    ]
    direct = [e for e in events if e["event"] == "checkout_timing" and len(e["correlation_id"]) == 36]
    assert len(direct) == 2
    textfile = histograms((folder / "autoinstrument-shop.telemetry.prom").read_text(encoding="utf-8"))
    assert textfile == {key: scraped_of(values, loaded, key) for key, values in expected(direct).items()}

    # A second run adds to the file (cumulative, as Prometheus expects of a histogram), never replaces it.
    _out, events_again = run_shop(tmp_path, manifest)
    direct += [e for e in events_again if e["event"] == "checkout_timing" and len(e["correlation_id"]) == 36]
    assert len(direct) == 4
    textfile = histograms((folder / "autoinstrument-shop.telemetry.prom").read_text(encoding="utf-8"))
    assert textfile == {key: scraped_of(values, loaded, key) for key, values in expected(direct).items()}


def scraped_of(values: List[int], manifest: Any, key: Tuple[str, Any]) -> Dict[str, float]:
    """What `histograms()` must read for a series holding exactly `values` (ms)."""
    bounds = buckets_for(manifest, key[0][len("autoinstrument_"):-len("_seconds")] + "_ms")
    out: Dict[str, float] = {"count": float(len(values)), "sum": pytest.approx(sum(values) / 1000)}
    for bound in bounds:
        out[_le(bound)] = float(sum(v / 1000 <= bound for v in values))
    out["+Inf"] = float(len(values))
    return out


def _le(bound: float) -> str:
    """prometheus_client's spelling of a bucket bound."""
    from prometheus_client.utils import floatToGoString

    return floatToGoString(bound)


# ------------------------------------------------------------------------------------- a real Prometheus


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TextfileCollector(ThreadingHTTPServer):
    """node_exporter's textfile collector, reduced to what the test needs: `/metrics` = the folder's *.prom."""

    def __init__(self, port: int, folder: Path) -> None:
        super().__init__(("127.0.0.1", port), _TextfileHandler)
        self.folder = folder


class _TextfileHandler(BaseHTTPRequestHandler):
    server: TextfileCollector

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = "".join(p.read_text(encoding="utf-8") for p in sorted(self.server.folder.glob("*.prom"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class PrometheusServer:
    def __init__(self, url: str, shop_port: int, textfile_dir: Path) -> None:
        self.url = url
        self.shop_port = shop_port
        self.textfile_dir = textfile_dir

    def query(self, promql: str) -> List[Dict[str, Any]]:
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert reply["status"] == "success", reply
        return reply["data"]["result"]

    def scalar(self, promql: str) -> float:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else float("nan")

    def wait_for(self, promql: str, value: float, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.scalar(promql) == value:
                return
            time.sleep(0.25)
        raise AssertionError(f"{promql} never reached {value} (last: {self.scalar(promql)})")


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Debian's prometheus on 127.0.0.1 (scrape every second): the shop's uvicorn and the textfile folder."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the `prometheus` server is not installed: apt-get install -y prometheus (.ci/run does it)")
    root = tmp_path_factory.mktemp("prometheus")
    port, shop_port, textfile_port = free_port(), free_port(), free_port()
    textfile_dir = root / "textfile"
    textfile_dir.mkdir()
    config = root / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: shop\n    static_configs: [{{targets: ['127.0.0.1:{shop_port}']}}]\n"
        f"  - job_name: textfile\n    static_configs: [{{targets: ['127.0.0.1:{textfile_port}']}}]\n",
        encoding="utf-8",
    )
    collector = TextfileCollector(textfile_port, textfile_dir)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    log = (root / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (root / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield PrometheusServer(url, shop_port, textfile_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        collector.shutdown()
        collector.server_close()


def bucket_index(value_ms: float, bounds_s: Tuple[float, ...]) -> int:
    """The index of the bucket holding `value_ms` (le bounds in seconds; len(bounds) = +Inf)."""
    return bisect.bisect_left(bounds_s, value_ms / 1000.0 - 1e-12)


def report_p95(manifest: Path, log: Path, route: str = "", event: str = "") -> Dict[str, int]:
    proc = subprocess.run([str(SCRIPT), "report", "--json", "--manifest", str(manifest), str(log)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    document = json.loads(proc.stdout)
    if route:
        (found,) = [r for r in document["routes"] if r["route"] == route]
    else:
        (found,) = [e for e in document["events"] if e["event"] == event]
    return {f["field"]: f["p95"] for f in found["fields"]}


def test_a_real_prometheus_agrees_with_report_for_two_uvicorn_workers_and_a_cli_textfile(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    manifest = copy_manifest(tmp_path)
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    log = tmp_path / "shop.log"
    env = subprocess_env(AUTOINSTRUMENT="1", AUTOINSTRUMENT_MANIFEST=str(manifest),
                         XDG_CACHE_HOME=str(tmp_path / "cache"), PROMETHEUS_MULTIPROC_DIR=str(multiproc))
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "shop_app.web:app", "--workers", "2", "--host", "127.0.0.1",
             "--port", str(prometheus.shop_port), "--no-access-log"],
            env=env, cwd=str(tmp_path), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{prometheus.shop_port}"
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log.read_text()
                try:
                    httpx.get(f"{base}/metrics", timeout=2)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            # Rounds of 24 requests on 4 concurrent connections (a new one per request, so both workers
            # accept some), one, two or three items (about 30, 40 and 50 ms) in the ratio 8:3:1, until both
            # workers have served and at least 72 requests were sent.
            cycle = ["/orders/tea"] * 8 + ["/orders/tea,mug"] * 3 + ["/orders/tea,mug,pot"]
            sent = 0
            while sent < 72 or len(list(multiproc.glob("histogram_*.db"))) < 2:
                assert sent < 480, sorted(p.name for p in multiproc.iterdir())
                with ThreadPoolExecutor(4) as pool:
                    codes = list(pool.map(lambda i: httpx.get(
                        base + cycle[i % len(cycle)], timeout=10,
                        headers={"X-Request-ID": f"req-{i}", "Connection": "close"}).status_code,
                        range(sent, sent + 24)))
                assert codes == [200] * 24
                sent += 24
            field = "autoinstrument_web_order_seconds"
            # every worker wrote its own samples; /metrics (whichever worker answered) sums them all
            prometheus.wait_for(f'sum({field}_count{{job="shop"}})', sent)
            series = prometheus.query(f'{field}_count{{job="shop"}}')
            assert [s["metric"]["route"] for s in series] == ["/orders/{skus}"]
            assert series[0]["metric"]["status_class"] == "2xx" and series[0]["metric"]["event"] == "order_served"
            promql_p95 = prometheus.scalar(f'histogram_quantile(0.95, sum by (le) ({field}_bucket{{job="shop"}}))')
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(5)
    loaded = load_manifest(str(manifest))
    bounds = buckets_for(loaded, "web_order_ms")
    p95 = report_p95(manifest, log, route="/orders/{skus}")["web_order_ms"]
    assert 0.025 < promql_p95 < 1.0 and 25 < p95 < 1000, (promql_p95, p95)  # a number, not NaN or +Inf
    print(f"web_order_ms p95: report {p95} ms, histogram_quantile {promql_p95 * 1000:.1f} ms")
    assert abs(bucket_index(p95, bounds) - bucket_index(promql_p95 * 1000, bounds)) <= 1, (p95, promql_p95, bounds)

    # The CLI run's textfile, scraped as node_exporter's textfile collector serves it.
    cli = tmp_path / "cli"
    cli.mkdir()
    cli_manifest = cli / "telemetry.yaml"
    text = manifest.read_text(encoding="utf-8")
    cli_manifest.write_text(text.replace("textfile_dir: metrics", f"textfile_dir: {prometheus.textfile_dir}"),
                            encoding="utf-8")
    _out, events = run_shop(cli, cli_manifest)
    cli_log = cli / "events.log"
    cli_log.write_text("".join(json.dumps(e) + "\n" for e in events if e["event"] == "checkout_timing"
                               and len(e["correlation_id"]) == 36), encoding="utf-8")
    total = "autoinstrument_checkout_total_seconds"
    prometheus.wait_for(f'sum({total}_count{{job="textfile"}})', 2)
    promql_cli = prometheus.scalar(f'histogram_quantile(0.95, sum by (le) ({total}_bucket{{job="textfile"}}))')
    cli_p95 = report_p95(cli_manifest, cli_log, event="checkout_timing")["checkout_total_ms"]
    cli_bounds = buckets_for(loaded, "checkout_total_ms")
    assert 0.01 < promql_cli < 1.0 and 10 < cli_p95 < 1000, (promql_cli, cli_p95)
    print(f"checkout_total_ms p95 (CLI textfile): report {cli_p95} ms, histogram_quantile {promql_cli * 1000:.1f} ms")
    assert abs(bucket_index(cli_p95, cli_bounds) - bucket_index(promql_cli * 1000, cli_bounds)) <= 1, (
        cli_p95, promql_cli,
    )
