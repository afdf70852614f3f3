"""Admin login, the signed session cookie and the optional API credentials, route by route."""

from __future__ import annotations

import base64
import time
from typing import Callable, List

import pytest
from fastapi.testclient import TestClient

from publisher_v2.web.auth import COOKIE_NAME, AdminSessions, WebSettings
from tests.web.conftest import ADMIN_PASSWORD, ClientFactory, login

ADMIN_ROUTES = [
    ("POST", "/api/images/alpha.jpg/analyze"),
    ("POST", "/api/images/alpha.jpg/publish"),
]


def call(client: TestClient, method: str, path: str, **kwargs: object):
    return client.request(method, path, **kwargs)  # type: ignore[arg-type]


def set_cookie_header(response) -> str:
    headers = [v for k, v in response.headers.multi_items() if k.lower() == "set-cookie"]
    assert len(headers) == 1, headers
    return headers[0]


# -- login ---------------------------------------------------------------------------------------------------


def test_login_sets_a_signed_httponly_samesite_lax_cookie_with_the_default_ttl(client: TestClient) -> None:
    response = login(client)
    assert response.status_code == 200
    assert response.json() == {"admin": True, "error": None}
    cookie = set_cookie_header(response)
    attributes = [part.strip().lower() for part in cookie.split(";")]
    name, _, value = cookie.split(";")[0].partition("=")
    assert name == COOKIE_NAME
    assert value not in ("1", "true", "admin") and value.count(".") == 2  # value.timestamp.signature
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "max-age=3600" in attributes  # upstream's default TTL
    assert "path=/" in attributes
    assert "secure" not in attributes
    status = client.get("/api/admin/status").json()
    assert status == {"admin": True, "error": None, "configured": True, "platforms": ["telegram", "email"]}


def test_secure_cookies_setting_marks_the_cookie_secure(make_client: ClientFactory) -> None:
    client = make_client(secure_cookies=True)
    cookie = set_cookie_header(login(client))
    assert "secure" in [part.strip().lower() for part in cookie.split(";")]


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 3600), ("5", 60), ("99999", 3600), ("120", 120), ("soon", 3600), ("", 3600)]
)
def test_cookie_ttl_comes_from_the_environment_clamped_to_60_3600(raw: object, expected: int) -> None:
    # The password is registered as a secret for the whole process: no run of "x" that other tests send.
    env = {"web_admin_pw": "ttl-test-admin-pw"}
    if raw is not None:
        env["WEB_ADMIN_COOKIE_TTL_SECONDS"] = raw  # type: ignore[assignment]
    assert WebSettings.from_env(env).cookie_ttl_seconds == expected


def test_settings_read_every_variable_of_the_contract() -> None:
    settings = WebSettings.from_env(
        {
            "WEB_AUTH_TOKEN": "tok-123456",
            "WEB_AUTH_USER": "ops",
            "WEB_AUTH_PASS": "pass-123456",
            "web_admin_pw": "admin-pw",
            "WEB_SECURE_COOKIES": "true",
        }
    )
    assert (settings.auth_token, settings.auth_user, settings.auth_pass) == (
        "tok-123456",
        "ops",
        "pass-123456",
    )
    assert settings.admin_password == "admin-pw" and settings.secure_cookies and settings.api_auth_enabled


def test_the_ttl_reaches_the_cookie_max_age(make_client: ClientFactory) -> None:
    client = make_client(cookie_ttl_seconds=120)
    assert "max-age=120" in set_cookie_header(login(client)).lower()


def test_wrong_password_is_401_with_a_generic_message_and_no_cookie(
    client: TestClient, web_events: Callable[[], List[dict]]
) -> None:
    response = login(client, "hunter2-wrong")
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Invalid admin password",
        "error": "Invalid admin password",
        "code": "login_failed",
        "admin": False,
    }
    assert "set-cookie" not in response.headers
    assert client.get("/api/admin/status").json()["admin"] is False
    failures = [e for e in web_events() if e["message"] == "web_admin_login_failure"]
    assert [e["reason"] for e in failures] == ["mismatch"] and failures[0]["level"] == "WARNING"
    assert not any("hunter2-wrong" in str(e) for e in web_events())


def test_successful_login_and_logout_are_logged_without_the_password(
    client: TestClient, web_events: Callable[[], List[dict]]
) -> None:
    login(client)
    response = client.post("/api/admin/logout")
    assert response.status_code == 200 and response.json()["admin"] is False
    names = [e["message"] for e in web_events()]
    assert "web_admin_login_success" in names and "web_admin_logout" in names
    assert not any(ADMIN_PASSWORD in str(e) for e in web_events())


def test_logout_clears_the_cookie_and_admin_routes_close_again(admin: TestClient) -> None:
    response = admin.post("/api/admin/logout")
    assert COOKIE_NAME in set_cookie_header(response) and "max-age=0" in set_cookie_header(response).lower()
    assert admin.get("/api/admin/status").json()["admin"] is False
    assert admin.post("/api/images/alpha.jpg/analyze").status_code == 403


def test_without_an_admin_password_login_and_admin_routes_answer_503_never_open(
    make_client: ClientFactory,
) -> None:
    client = make_client(admin_password=None)
    response = login(client, "anything")
    assert response.status_code == 503 and response.json()["admin"] is False
    assert response.json()["detail"] == "Admin mode not configured"
    status = client.get("/api/admin/status").json()
    assert status == {"admin": False, "error": None, "configured": False, "platforms": []}
    for method, path in ADMIN_ROUTES:
        answer = call(client, method, path)
        assert answer.status_code == 503, path
        assert answer.json()["code"] == "admin_not_configured"
        assert answer.json()["detail"] == "Admin mode not configured"


def test_repeated_wrong_passwords_are_throttled_even_for_the_right_one(
    client: TestClient, web_events: Callable[[], List[dict]]
) -> None:
    for _ in range(10):
        assert login(client, "wrong-guess").status_code == 401
    response = login(client)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] == "too_many_attempts"
    assert web_events()[-1]["reason"] == "too_many_attempts"


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b'{"password": "' + b"a" * (70 * 1024) + b'"}', {"content-type": "application/json"}, 413),
        (b"{not json", {"content-type": "application/json"}, 422),
        (b"{}", {"content-type": "application/json"}, 422),
        (b'{"password": 12}', {"content-type": "application/json"}, 422),
        (b'{"password": "x", "admin": true}', {"content-type": "application/json"}, 401),  # extra key ignored
        (b"password=x", {"content-type": "application/x-www-form-urlencoded"}, 422),
        (b"", {"content-type": "application/json"}, 422),
    ],
)
def test_bad_login_bodies_are_refused(client: TestClient, body: bytes, headers: dict, status: int) -> None:
    response = client.post("/api/admin/login", content=body, headers=headers)
    assert response.status_code == status
    body = response.json()
    assert "error" in body and "detail" in body and body["admin"] is False
    if status == 422:  # FastAPI's shape, as upstream's clients got it: a list of errors located in the body
        assert isinstance(body["detail"], list) and body["detail"][0]["loc"][0] == "body"
    assert client.get("/api/admin/status").json()["admin"] is False


def test_an_oversized_chunked_body_is_refused_without_a_content_length(client: TestClient) -> None:
    def chunks():
        for _ in range(100):
            yield b"x" * 4096

    response = client.post("/api/admin/login", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


# -- the cookie ----------------------------------------------------------------------------------------------


def _flip(text: str, index: int) -> str:
    """Change one base64 character in the middle (every bit of it is data, unlike the last one)."""
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def forged_cookie(kind: str) -> str:
    settings = WebSettings(admin_password=ADMIN_PASSWORD)
    value, stamp, signature = AdminSessions(settings).issue().split(".")
    other_secret = WebSettings(admin_password=ADMIN_PASSWORD, session_secret="x-secret")
    return {
        "unsigned_one": "1",
        "plain_admin": "admin",
        "tampered_signature": f"{value}.{stamp}.{_flip(signature, len(signature) // 2)}",
        "tampered_value": f"admin2.{stamp}.{signature}",
        "tampered_timestamp": f"{value}.{_flip(stamp, 2)}.{signature}",
        "other_password": AdminSessions(WebSettings(admin_password="another password")).issue(),
        "other_secret": AdminSessions(other_secret).issue(),
        "expired": AdminSessions(settings, clock=lambda: int(time.time()) - 3601).issue(),  # ttl is 3600
        "oversized": "x" * 5000,
    }[kind]


FORGED_KINDS = [
    "unsigned_one",
    "plain_admin",
    "tampered_signature",
    "tampered_value",
    "tampered_timestamp",
    "other_password",
    "other_secret",
    "expired",
    "oversized",
]


@pytest.mark.parametrize("kind", FORGED_KINDS)
def test_forged_tampered_or_expired_cookies_are_403_and_not_admin(client: TestClient, kind: str) -> None:
    client.cookies.set(COOKIE_NAME, forged_cookie(kind))
    assert client.get("/api/admin/status").json()["admin"] is False
    for method, path in ADMIN_ROUTES:
        response = call(client, method, path)
        assert response.status_code == 403, path
        assert response.json() == {
            "detail": "Admin privileges required",
            "error": "Admin login required",
            "code": "admin_required",
        }


def test_a_missing_cookie_is_403_on_admin_routes(client: TestClient) -> None:
    for method, path in ADMIN_ROUTES:
        assert call(client, method, path).status_code == 403


def test_a_cookie_stays_valid_until_its_ttl_and_expires_after() -> None:
    now = {"t": 1_700_000_000}
    sessions = AdminSessions(
        WebSettings(admin_password="pw-12345678", cookie_ttl_seconds=60), clock=lambda: now["t"]
    )
    cookie = sessions.issue()
    now["t"] += 60
    assert sessions.is_admin(cookie)
    now["t"] += 1
    assert not sessions.is_admin(cookie)


def test_changing_the_admin_password_invalidates_existing_sessions() -> None:
    cookie = AdminSessions(WebSettings(admin_password="old-password")).issue()
    assert AdminSessions(WebSettings(admin_password="old-password")).is_admin(cookie)
    assert not AdminSessions(WebSettings(admin_password="new-password")).is_admin(cookie)


# -- API credentials -----------------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        ("Bearer ", 401),
        ("Token api-token-123", 401),
        ("Bearer api-token-123", 200),
        ("bearer api-token-123", 200),
    ],
)
def test_bearer_token_guards_admin_routes_before_the_admin_check(
    make_client: ClientFactory, authorization: object, status: int
) -> None:
    client = make_client(auth_token="api-token-123")
    assert login(client).status_code == 200
    headers = {"authorization": authorization} if authorization else {}
    response = client.post("/api/images/alpha.jpg/analyze", headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["code"] == "unauthorized" and response.json()["detail"] == "Unauthorized"


def test_a_valid_token_without_an_admin_session_is_still_403(make_client: ClientFactory) -> None:
    client = make_client(auth_token="api-token-123")
    response = client.post("/api/images/alpha.jpg/analyze", headers={"authorization": "Bearer api-token-123"})
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (basic("ops", "pass-123456"), 200),
        (basic("ops", "wrong"), 401),
        (basic("someone", "pass-123456"), 401),
        ("Basic !!!not-base64!!!", 401),
        ("Basic " + base64.b64encode(b"no-colon").decode(), 401),
        (None, 401),
    ],
)
def test_basic_credentials_guard_admin_routes(
    make_client: ClientFactory, authorization: object, status: int
) -> None:
    client = make_client(auth_user="ops", auth_pass="pass-123456")
    assert login(client).status_code == 200
    headers = {"authorization": authorization} if authorization else {}
    response = client.post("/api/images/alpha.jpg/analyze", headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")


def test_public_routes_stay_public_when_api_auth_is_configured(make_client: ClientFactory) -> None:
    client = make_client(auth_token="api-token-123")
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200
    random_image = client.get("/api/images/random")
    assert random_image.status_code == 200
    assert client.get(random_image.json()["temp_url"]).status_code == 200
    assert client.get("/api/admin/status").status_code == 200
