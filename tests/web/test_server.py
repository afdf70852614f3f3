"""A real `uvicorn publisher_v2.web.app:app` process: the admin flow end to end, and refusing a bad config."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Callable, Dict, List

import httpx
import pytest

from publisher_v2.config.loader import load_application_config
from publisher_v2.domain.captions import format_caption
from tests.cli_output import stderr_events
from tests.conftest import REPO_ROOT
from tests.web.conftest import Server, free_port, uvicorn_command

pytestmark = pytest.mark.slow

PASSWORD = "server-admin-password"


def raw_get(base_url: str, target: str) -> int:
    """Send a request line exactly as written (no client-side normalisation); return the status code."""
    host, port = base_url.replace("http://", "").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_real_server_drives_login_random_analyze_publish_and_records_everything(
    sample_library: Path, start_server: Callable[..., Server]
) -> None:
    config = load_application_config(sample_library)
    server = start_server({"CONFIG_PATH": str(sample_library), "web_admin_pw": PASSWORD})
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        page = client.get("/")
        assert page.status_code == 200 and "Next image" in page.text

        assert client.post("/api/images/x.jpg/analyze").status_code == 403
        assert client.post("/api/admin/login", json={"password": "wrong"}).status_code == 401
        assert client.post("/api/admin/login", json={"password": PASSWORD}).json()["admin"] is True
        status = client.get("/api/admin/status").json()
        platforms = ["telegram", "instagram", "email"]
        assert status == {"admin": True, "error": None, "configured": True, "platforms": platforms}

        shown = client.get("/api/images/random").json()
        name = shown["filename"]
        image = client.get(shown["temp_url"])
        assert image.status_code == 200 and image.headers["content-type"].startswith("image/")

        analyzed = client.post(f"/api/images/{name}/analyze")
        assert analyzed.status_code == 200, analyzed.text
        seen_caption = analyzed.json()["caption"]
        assert seen_caption
        assert (config.local.image_folder / (Path(name).stem + ".txt")).is_file()

        published = client.post(f"/api/images/{name}/publish")
        assert published.status_code == 200, published.text
        body = published.json()
        assert body["any_success"] is True and body["archived"] is True
        platforms = set(body["results"])
        assert platforms and all(r["success"] for r in body["results"].values())

        assert client.post("/api/admin/logout").json()["admin"] is False
        assert client.post(f"/api/images/{name}/publish").status_code == 403

        # Traversal attempts on the wire, exactly as sent.
        for target in (
            "/api/images/%2e%2e/file",
            "/api/images/..%2f..%2fpublisher.ini/file",
            "/api/images/a%00.jpg/file",
        ):
            assert raw_get(server.base_url, target) in (404, 422), target

    archive = config.local.image_folder / config.local.archive
    assert (archive / name).is_file() and not (config.local.image_folder / name).exists()
    assert (archive / (Path(name).stem + ".txt")).is_file()  # the sidecar travelled with its image

    outbox = Path(config.publishing.outbox_folder)
    posts = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(outbox.glob("*/*/post.json"))]
    assert sorted(p["platform"] for p in posts) == sorted(platforms)
    for post in posts:
        assert post["image_name"] == name
        assert post["caption"] == format_caption(post["platform"], seen_caption)

    with sqlite3.connect(config.state.ledger_path) as db:
        rows = db.execute("SELECT image_name, status FROM posted_images").fetchall()
    assert rows == [(name, "posted")]

    events = stderr_events(server.log())  # a plain-text line fails the test
    messages = [e["message"] for e in events]
    assert "web_admin_login_success" in messages and "web_admin_login_failure" in messages
    assert "workflow_complete" in messages and "web_admin_logout" in messages
    assert PASSWORD not in server.log()


def run_refusing_server(env: Dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("CONFIG_PATH", "ENV_PATH")}
    full_env.update(env)
    return subprocess.run(
        uvicorn_command(free_port()),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(REPO_ROOT),
    )


def error_lines(result: subprocess.CompletedProcess) -> List[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


@pytest.mark.usefixtures("clean_env")
def test_server_without_config_path_refuses_to_start_with_one_line() -> None:
    result = run_refusing_server({})
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert "CONFIG_PATH" in lines[0] and "Traceback" not in lines[0]


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("ini_text", "expected"),
    [
        (None, "not found"),
        ("[Content]\narchive = perhaps\n[Local]\nimage_folder = images\n", "[Content] archive"),
        ("[Storage]\nbackend = local\n", "[Local] image_folder"),
        ("[Local]\nimage_folder = publisher.ini\n", "[Local] image_folder: "),  # a file, not a folder
    ],
)
def test_server_with_an_invalid_config_refuses_to_start_with_one_line_naming_it(
    tmp_path: Path, ini_text: object, expected: str
) -> None:
    ini = tmp_path / "publisher.ini"
    if ini_text is not None:
        ini.write_text(str(ini_text), encoding="utf-8")
    result = run_refusing_server({"CONFIG_PATH": str(ini)})
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1, lines
    assert str(ini) in lines[0] and expected in lines[0]


@pytest.mark.usefixtures("clean_env")
def test_server_with_a_missing_env_file_refuses_to_start(sample_library: Path) -> None:
    result = run_refusing_server(
        {"CONFIG_PATH": str(sample_library), "ENV_PATH": str(sample_library.parent / "nope.env")}
    )
    assert result.returncode != 0
    lines = error_lines(result)
    assert len(lines) == 1 and "nope.env" in lines[0], lines
