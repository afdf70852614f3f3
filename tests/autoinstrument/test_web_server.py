"""Web telemetry in real processes: the env switch (off: no middleware, no header) and 200 concurrent requests
against `uvicorn publisher_v2.web.app:app` started with PUBLISHER_AUTOINSTRUMENT=1, its stderr parsed line by
line as JSON to prove every event carries its own request's id (no cross-talk between concurrent requests).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import httpx
import pytest
from telemetry_testkit import REPO

from tests.cli_output import stderr_events

ADMIN = "correct horse battery staple"

PROBE = textwrap.dedent("""
    import json, sys
    from fastapi.testclient import TestClient
    from publisher_v2.web.app import app
    with TestClient(app) as client:
        response = client.get("/api/images/random", headers={"X-Request-ID": "probe-1"})
    print(json.dumps({
        "status": response.status_code,
        "header": response.headers.get("x-correlation-id"),
        "patched": "build_middleware_stack" in vars(app),
        "stack": type(app.middleware_stack).__name__,
        "autoinstrument_loaded": "autoinstrument" in sys.modules,
    }))
""")


def server_env(config: Path, **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBLISHER_", "WEB_")) and k != "web_admin_pw"}
    env.update({"CONFIG_PATH": str(config), "PYTHONPATH": str(REPO)})
    env.update(extra)
    return env


@pytest.mark.parametrize("switch", ["", "0"])
def test_with_the_switch_off_the_app_has_no_middleware_and_no_header(sample_library, switch):
    env = server_env(sample_library)
    if switch:
        env["PUBLISHER_AUTOINSTRUMENT"] = switch
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, cwd=str(REPO)
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe == {
        "status": 200,
        "header": None,
        "patched": False,
        "stack": "ServerErrorMiddleware",
        "autoinstrument_loaded": False,
    }
    assert '"message":"web_random_image"' in out.stderr  # the app's own event, telemetry off
    assert "web_random_image_ms" not in out.stderr and "correlation_id" not in out.stderr


def test_with_the_switch_on_the_same_command_gets_the_middleware_outermost(sample_library):
    env = server_env(sample_library, PUBLISHER_AUTOINSTRUMENT="1")
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, cwd=str(REPO)
    )
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["header"] == "probe-1" and probe["patched"] is True
    assert probe["stack"] == "TelemetryMiddleware"
    lines = stderr_events(out.stderr)  # fails on a plain-text line
    (event,) = [e for e in lines if e.get("message") == "web_random_image"]
    assert event["correlation_id"] == "probe-1"


# --------------------------------------------------------------------------------------------- real uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def uvicorn_server(sample_library: Path, tmp_path: Path, clean_env) -> Iterator[Tuple[str, Path, Any]]:
    """`uvicorn publisher_v2.web.app:app` with PUBLISHER_AUTOINSTRUMENT=1 on 127.0.0.1; stderr to a file."""
    port = free_port()
    log_path = tmp_path / "uvicorn.stderr"
    env = server_env(sample_library, PUBLISHER_AUTOINSTRUMENT="1", web_admin_pw=ADMIN)
    command = [
        sys.executable, "-m", "uvicorn", "publisher_v2.web.app:app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with open(log_path, "wb") as err:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=str(REPO))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(base + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "uvicorn did not answer /health"
            time.sleep(0.1)
        yield base, log_path, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _fire(base: str, plan: List[Tuple[str, str, str]]) -> List[Tuple[str, int, str]]:
    """Send every (request id, method, path) at once; returns (request id, status, X-Correlation-ID)."""
    limits = httpx.Limits(max_connections=len(plan), max_keepalive_connections=len(plan))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120.0) as client:
        login = await client.post("/api/admin/login", json={"password": ADMIN}, headers={"X-Request-ID": "login-0"})
        assert login.status_code == 200, login.text
        start = asyncio.Event()

        async def one(request_id: str, method: str, path: str) -> Tuple[str, int, str]:
            await start.wait()
            response = await client.request(method, path, headers={"X-Request-ID": request_id})
            return request_id, response.status_code, response.headers.get("x-correlation-id", "")

        tasks = [asyncio.ensure_future(one(*item)) for item in plan]
        await asyncio.sleep(0)
        start.set()
        return list(await asyncio.gather(*tasks))


def test_200_concurrent_requests_each_carry_their_own_id_in_header_and_every_logged_event(
    uvicorn_server, sample_library
):
    base, log_path, process = uvicorn_server
    names = sorted(p.name for p in (sample_library.parent / "images").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    assert len(names) >= 8
    plan: List[Tuple[str, str, str]] = []
    image_of: Dict[str, str] = {}
    for i in range(200):
        request_id = f"req-{i:03d}-{os.urandom(4).hex()}"
        if i % 50 == 10:  # 4 publishes, on distinct images
            name = names[len([r for r in image_of if "pub" in r])]
            request_id += "-pub"
            plan.append((request_id, "POST", f"/api/images/{name}/publish"))
            image_of[request_id] = name
        elif i % 50 == 30:  # 4 analyses, on 4 other images
            name = names[4 + len([r for r in image_of if "ana" in r])]
            request_id += "-ana"
            plan.append((request_id, "POST", f"/api/images/{name}/analyze"))
            image_of[request_id] = name
        else:
            plan.append((request_id, "GET", "/api/images/random"))
    assert sum("pub" in r for r, _, _ in plan) == 4 and sum("ana" in r for r, _, _ in plan) == 4

    results = asyncio.run(_fire(base, plan))
    failed = [(request_id, status) for request_id, status, _ in results if status != 200]
    if failed:  # show the server's own account of what went wrong
        process.terminate()
        process.wait(timeout=15)
        tail = [line for line in log_path.read_text().splitlines() if failed[0][0] in line or "rror" in line]
        pytest.fail(f"{len(failed)} requests failed, first {failed[0]}:\n" + "\n".join(tail[-20:]))
    for request_id, status, header in results:
        assert status == 200, (request_id, status)
        assert header == request_id  # the response carries ITS request's id

    process.terminate()
    process.wait(timeout=15)
    lines = []
    for line in log_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            lines.append(json.loads(line))  # every stderr line is one JSON object
    ids = {request_id for request_id, _, _ in plan}
    by_id: Dict[str, List[Dict[str, Any]]] = {}
    for line in lines:
        cid = line.get("correlation_id")
        if cid is None:
            continue
        assert cid in ids or cid == "login-0", line  # no event carries an id nobody sent
        by_id.setdefault(cid, []).append(line)

    expected = {"GET": "web_random_image", "analyze": "web_analyze_complete", "publish": "web_publish_complete"}
    for request_id, method, path in plan:
        kind = "GET" if method == "GET" else path.rsplit("/", 1)[1]
        own = by_id.get(request_id, [])
        web_events = [e for e in own if str(e["message"]).startswith("web_") and "route" in e]
        assert [e["message"] for e in web_events] == [expected[kind]], (request_id, own)
        if kind != "GET":
            image = image_of[request_id]
            assert web_events[0]["filename"] == image
            for event in own:  # every event of this request talks about this request's image
                for key in ("filename", "image_name"):
                    if key in event:
                        assert event[key] == image, (request_id, event)
        if kind == "publish":
            (timing,) = [e for e in own if e["message"] == "workflow_timing"]
            assert timing["image_name"] == image_of[request_id] and timing["success"] is True
            assert web_events[0]["any_success"] is True and web_events[0]["archived"] is True
        if kind == "analyze":
            assert isinstance(web_events[0]["vision_analysis_ms"], int)
    assert len([e for e in lines if e.get("message") == "web_random_image"]) == 192
