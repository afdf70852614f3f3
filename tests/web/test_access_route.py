"""The `http_access` event names the matched route on every answer, an unhandled 500 included."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, Iterator

import httpx
import pytest

from tests.web.conftest import ADMIN_PASSWORD, Server, make_library, start_uvicorn, stop_uvicorn


@pytest.fixture
def server(tmp_path: Path, clean_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    lib = make_library(tmp_path / "lib")
    import tests.web.conftest as web_conftest

    # The access log on (the fixtures' default command turns it off) and the app with its failing route.
    def command(port: int, *extra: str) -> list:
        return [sys.executable, "-m", "uvicorn", "tests.web.failing_route_app:build", "--factory",
                "--host", "127.0.0.1", "--port", str(port), *extra]

    monkeypatch.setattr(web_conftest, "uvicorn_command", command)
    started = start_uvicorn(tmp_path, {"CONFIG_PATH": str(lib.ini), "web_admin_pw": ADMIN_PASSWORD})
    yield started
    stop_uvicorn(started)


def test_an_unhandled_500_has_its_route_in_the_access_event(server: Server) -> None:
    assert httpx.get(server.base_url + "/api/test/fails/one", timeout=10).status_code == 500
    assert httpx.get(server.base_url + "/api/images/random", timeout=10).status_code == 200
    stop_uvicorn(server)  # every line written
    events = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = {e["path"]: e for e in events if e["message"] == "http_access"}
    assert access["/api/test/fails/one"]["status"] == 500
    assert access["/api/test/fails/one"].get("route") == "/api/test/fails/{item}"
    assert access["/api/images/random"].get("route") == "/api/images/random"
