"""Web fixtures: a real library folder with its INI, the real app over it, and a real uvicorn process."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Mapping, Optional

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from publisher_v2.config.loader import load_application_config
from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.web.app import create_app
from publisher_v2.web.auth import WebSettings
from tests.conftest import REPO_ROOT

ADMIN_PASSWORD = "correct horse battery staple"
DEFAULT_INI = """
[Storage]
backend = local

[Local]
image_folder = images
archive = archive

[AI]
backend = offline

[Publishing]
backend = outbox
outbox_folder = outbox

[Content]
archive = true
telegram = true
email = true
hashtag_string = #test

[CaptionFile]
enabled = true

[State]
ledger_path = state/ledger.sqlite
"""


@dataclass
class Library:
    """A library on disk: `root/images` with images, `root/publisher.ini`, and the loaded config."""

    root: Path
    ini: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def archive(self) -> Path:
        return self.images / "archive"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def ledger(self) -> Path:
        return self.root / "state" / "ledger.sqlite"

    def config(self) -> ApplicationConfig:
        return load_application_config(self.ini)

    def names(self) -> List[str]:
        return sorted(p.name for p in self.images.iterdir() if p.is_file() and p.suffix != ".txt")


def make_image(path: Path, color: tuple = (200, 80, 40), size: tuple = (96, 64)) -> Path:
    fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
    Image.new("RGB", size, color).save(path, fmt)
    return path


def make_library(root: Path, names: Optional[List[str]] = None, ini_text: str = DEFAULT_INI) -> Library:
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names if names is not None else ["alpha.jpg", "bravo.jpg", "charlie.png"]):
        make_image(images / name, color=((i * 70) % 256, (i * 40 + 60) % 256, 120))
    ini = root / "publisher.ini"
    ini.write_text(ini_text, encoding="utf-8")
    return Library(root, ini)


@pytest.fixture
def library(tmp_path: Path) -> Library:
    return make_library(tmp_path / "lib")


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def make_client(library: Library, clean_env: Dict[str, str]) -> Iterator[ClientFactory]:
    """Build a TestClient (lifespan running) over `library`, with the given WebSettings fields."""
    clients: List[TestClient] = []

    def factory(lib: Optional[Library] = None, **settings_fields: object) -> TestClient:
        fields: Dict[str, object] = {"admin_password": ADMIN_PASSWORD}
        fields.update(settings_fields)
        app = create_app((lib or library).config(), settings=WebSettings(**fields))  # type: ignore[arg-type]
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()


def login(client: TestClient, password: str = ADMIN_PASSWORD) -> httpx.Response:
    return client.post("/api/admin/login", json={"password": password})


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    """The default client, logged in as admin."""
    response = login(client)
    assert response.status_code == 200, response.text
    return client


@pytest.fixture
def web_events(caplog: pytest.LogCaptureFixture) -> Callable[[], List[dict]]:
    """JSON events the app logged during the test (log_json lines of any publisher_v2 logger)."""
    import json

    caplog.set_level(logging.DEBUG, logger="publisher_v2")

    def events() -> List[dict]:
        found = []
        for record in caplog.records:
            text = record.getMessage()
            if text.startswith("{"):
                found.append(json.loads(text))
        return found

    return events


# -- real servers --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uvicorn_command(port: int, *extra: str) -> List[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "publisher_v2.web.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        *extra,
    ]


@dataclass
class Server:
    process: subprocess.Popen
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_uvicorn(folder: Path, env: Mapping[str, str], *extra: str, timeout: float = 30) -> Server:
    """Start `uvicorn publisher_v2.web.app:app` (plus `extra` arguments, e.g. `--workers 2`) on a free 127.0.0.1
    port with `env` over the current environment, its output in a file under `folder`; waits for /health."""
    port = free_port()
    log_path = folder / f"uvicorn_{port}.log"
    full_env = dict(os.environ)
    full_env.update(env)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            uvicorn_command(port, *extra),
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(REPO_ROOT),
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"uvicorn exited early:\n{server.log()}")
        try:
            if httpx.get(server.base_url + "/health", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_uvicorn(server)
    raise AssertionError(f"uvicorn did not answer /health:\n{server.log()}")


def stop_uvicorn(server: Server, timeout: float = 15) -> None:
    """SIGTERM (a supervisor passes it on to its workers), then SIGKILL after `timeout` seconds."""
    server.process.terminate()
    try:
        server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def start_server(tmp_path: Path, clean_env: Dict[str, str]) -> Iterator[Callable[..., Server]]:
    """`start_uvicorn` in the test's folder; every server started is stopped at the end."""
    started: List[Server] = []

    def start(env: Mapping[str, str], *extra: str, timeout: float = 30) -> Server:
        server = start_uvicorn(tmp_path, env, *extra, timeout=timeout)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_uvicorn(server)
