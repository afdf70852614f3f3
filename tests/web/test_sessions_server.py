"""Sessions and the login limit through a real uvicorn (1 and 2 workers) on one ledger.

- Logout ends the session for good: the logged-out cookie and every re-encoding of its signature that
  itsdangerous accepts (padding appended, the spare low bits of the last base64 character changed) are refused.
  Before the logout the same re-encodings ARE admin, which proves they are equivalent encodings, not forgeries.
- Concurrent wrong passwords against 2 workers: exactly `max_failures` (10) are admitted, the rest are 429.
- With no admin password, login is 503 even while an account lock is held.
"""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List

import httpx
import pytest

from publisher_v2.web.auth import COOKIE_NAME
from tests.web.conftest import ADMIN_PASSWORD, ClientFactory, Library, Server, make_library

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def re_encodings(cookie: str) -> Dict[str, str]:
    """Other strings itsdangerous decodes to the same signature: padding appended, spare bits changed."""
    value, stamp, signature = cookie.split(".")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    spare_bits = len(signature) * 6 - len(raw) * 8
    assert spare_bits > 0, "a signature without spare bits: the bit re-encodings below would be forgeries"
    last = _B64.index(signature[-1])
    variants = {"pad1": signature + "=", "pad2": signature + "==", "pad3": signature + "==="}
    for flip in range(1, 2**spare_bits):
        variants[f"spare_bits_{flip}"] = signature[:-1] + _B64[last ^ flip]
        variants[f"spare_bits_{flip}_pad1"] = signature[:-1] + _B64[last ^ flip] + "="
    return {name: f"{value}.{stamp}.{sig}" for name, sig in variants.items()}


def status_admin(base: str, cookie: str) -> bool:
    response = httpx.get(base + "/api/admin/status", cookies={COOKIE_NAME: cookie}, timeout=10)
    assert response.status_code == 200
    return bool(response.json()["admin"])


def publish_status(base: str, cookie: str) -> int:
    """An admin action with `cookie` (on an image that does not exist: admin → 404, not admin → 403)."""
    return httpx.post(base + "/api/images/missing.jpg/publish", cookies={COOKIE_NAME: cookie}, timeout=10).status_code


@pytest.fixture
def served(start_server: Callable[..., Server], tmp_path: Path) -> Callable[[int], Server]:
    def start(workers: int) -> Server:
        lib = make_library(tmp_path / f"lib{workers}")
        env = {"CONFIG_PATH": str(lib.ini), "web_admin_pw": ADMIN_PASSWORD}
        return start_server(env, "--workers", str(workers), timeout=60)

    return start


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_no_re_encoding_of_a_logged_out_cookie_is_admin(served: Callable[[int], Server], workers: int) -> None:
    base = served(workers).base_url
    login = httpx.post(base + "/api/admin/login", json={"password": ADMIN_PASSWORD}, timeout=10)
    assert login.status_code == 200, login.text
    cookie = login.cookies[COOKIE_NAME]
    variants = re_encodings(cookie)
    assert len(variants) >= 6
    rounds = 2 * workers  # each variant asked several times, so each worker answers
    before = {name: [status_admin(base, v) for _ in range(rounds)] for name, v in variants.items()}
    assert all(all(answers) for answers in before.values()), before  # the same session, differently encoded

    logout = httpx.post(base + "/api/admin/logout", cookies={COOKIE_NAME: cookie}, timeout=10)
    assert logout.status_code == 200 and logout.json()["admin"] is False

    accepted = [
        name
        for name, v in {"as_issued": cookie, **variants}.items()
        for _ in range(rounds)
        if status_admin(base, v) or publish_status(base, v) != 403
    ]
    assert accepted == []
    fresh = httpx.post(base + "/api/admin/login", json={"password": ADMIN_PASSWORD}, timeout=10)
    assert status_admin(base, fresh.cookies[COOKIE_NAME])  # logging in again works: only that session ended


@pytest.mark.slow
def test_concurrent_wrong_passwords_on_two_workers_admit_exactly_ten(served: Callable[[int], Server]) -> None:
    base = served(2).base_url
    clients = [httpx.Client(base_url=base, timeout=30) for _ in range(40)]
    for client in clients:  # connections open (to either worker) before the race starts
        assert client.get("/health").status_code == 200
    start = threading.Barrier(len(clients))

    def guess(index: int) -> int:
        start.wait()  # all 40 guesses leave together
        return clients[index].post("/api/admin/login", json={"password": f"guess-{index}"}).status_code

    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            statuses: List[int] = list(pool.map(guess, range(len(clients))))
    finally:
        for client in clients:
            client.close()
    assert statuses.count(401) == 10, statuses  # the documented budget, whatever the interleaving
    assert statuses.count(429) == 30
    # The right password is refused too while the account is locked (it is an 11th attempt).
    right = httpx.post(base + "/api/admin/login", json={"password": ADMIN_PASSWORD}, timeout=10)
    assert right.status_code == 429 and int(right.headers["retry-after"]) > 0


def test_bad_bodies_count_toward_the_login_limit(client: httpx.Client) -> None:
    for _ in range(10):
        response = client.post(
            "/api/admin/login", content=b"\xd0\xff", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422 and response.json()["code"] == "invalid_request"
    assert client.post("/api/admin/login", json={"password": "x"}).status_code == 429


def test_without_an_admin_password_login_is_503_even_while_the_account_is_locked(
    make_client: ClientFactory, library: Library
) -> None:
    configured = make_client()
    for _ in range(10):
        assert configured.post("/api/admin/login", json={"password": "wrong"}).status_code == 401
    assert configured.post("/api/admin/login", json={"password": "wrong"}).status_code == 429
    unconfigured = make_client(admin_password=None)  # same ledger, so the same account lock
    response = unconfigured.post("/api/admin/login", json={"password": "wrong"})
    assert response.status_code == 503 and response.json()["code"] == "admin_not_configured"


def test_an_anonymous_publish_is_refused_before_its_body_is_read(client: httpx.Client) -> None:
    for body in (b"\xd0\xff", b'{"platforms": ["\xff"]}', b"{"):
        response = client.post(
            "/api/images/alpha.jpg/publish", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 403 and response.json()["code"] == "admin_required", response.text
