"""Raw-byte fuzzing of every route through a real uvicorn: no body, content type or path bytes give a 5xx.

The API's other tests send well-formed JSON; these send what an attacker or a broken client sends: random
bytes (not UTF-8, truncated JSON, NULs) under JSON and other content types, to every route the app documents,
anonymous and as admin. Every answer must be below 500 and JSON, and the server's log must hold no traceback.
The count is bounded and the generator seeded, so a failure replays.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable, List, Optional, Tuple
from urllib.parse import quote

import httpx
import pytest

from publisher_v2.web.auth import COOKIE_NAME
from tests.web.conftest import ADMIN_PASSWORD, Server, make_library

pytestmark = pytest.mark.slow

REQUESTS = 400
SEED = 2121
CONTENT_TYPES: Tuple[Optional[str], ...] = (
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "application/\xff",
    None,
)
SEEDS = (b"\xd0\xff", b'{"password": "\xff\xfe"}', b'{"platforms": ["\xc3\x28"]}', b"{", b"\x00" * 8, b'{"a":' * 50)


def random_body(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
    if kind == 1:
        return rng.choice(SEEDS)
    if kind == 2:  # valid JSON with a stray byte somewhere
        doc = bytearray(json.dumps({"password": "x" * rng.randrange(5), "platforms": ["telegram"]}).encode())
        doc[rng.randrange(len(doc))] = rng.randrange(128, 256)
        return bytes(doc)
    return rng.choice(SEEDS) + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))


def random_filename(rng: random.Random) -> str:
    choice = rng.randrange(3)
    if choice == 0:
        return "alpha.jpg"
    raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) + b".jpg"
    return quote(raw, safe="") if choice == 1 else quote(raw.decode("latin-1"), safe="")


@pytest.fixture
def server(start_server: Callable[..., Server], tmp_path: Path) -> Server:
    lib = make_library(tmp_path / "lib")
    return start_server({"CONFIG_PATH": str(lib.ini), "web_admin_pw": ADMIN_PASSWORD})


def test_random_bytes_to_every_route_give_no_5xx_and_no_traceback(server: Server) -> None:
    base = server.base_url
    spec = httpx.get(base + "/openapi.json", timeout=10).json()
    routes: List[Tuple[str, str]] = [(m.upper(), p) for p, item in spec["paths"].items() for m in item]
    login = httpx.post(base + "/api/admin/login", json={"password": ADMIN_PASSWORD}, timeout=10)
    cookie = login.cookies[COOKIE_NAME]
    rng = random.Random(SEED)
    failures = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for index in range(REQUESTS):
            method, template = routes[index % len(routes)]
            path = template.replace("{filename}", random_filename(rng))
            if rng.random() < 0.2:
                path += "?force_refresh=" + quote(bytes(rng.randrange(256) for _ in range(3)), safe="")
            headers = {}
            content_type = rng.choice(CONTENT_TYPES)
            if content_type is not None:
                headers["content-type"] = content_type.encode("latin-1")  # sent as the bytes given
            if rng.random() < 0.6:
                headers["cookie"] = f"{COOKIE_NAME}={cookie}".encode("ascii")
            body = random_body(rng)
            response = client.request(method, path, content=body, headers=headers)
            if response.status_code >= 500:
                failures.append((method, path, content_type, body[:40], response.status_code, response.text[:200]))
            elif path.startswith("/api/") and response.status_code >= 400:
                assert set(response.json()) >= {"detail", "error", "code"}, (method, path, response.text)
    log = server.log()
    assert failures == []
    assert "Traceback" not in log and "Exception in ASGI application" not in log
    complete = log.split("\n")[:-1]  # the server may be writing its last line right now
    events = [json.loads(line) for line in complete if line.startswith("{")]
    assert not [e for e in events if e.get("level") in ("ERROR", "CRITICAL")], "error events in the server log"
