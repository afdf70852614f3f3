"""Every route and case answers as upstream (1c2ca10) did: status codes and JSON bodies, with additions only.

Upstream's bodies are from its web/app.py and web/auth.py (see /work/shared/design/upstream-contract.md §4):
errors were `{"detail": "<text>"}`; validation 422 carried FastAPI's list in `detail`; extra body keys were
ignored. The deliberate security differences are asserted too (docs_v2/differences-from-upstream.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import ADMIN_PASSWORD, DEFAULT_INI, ClientFactory, Library, free_port, login, make_library

IMAGE_FIELDS = {"filename", "temp_url", "sha256", "caption", "sd_caption", "metadata", "has_sidecar"}
ANALYSIS_FIELDS = {"filename", "description", "mood", "tags", "nsfw", "caption", "sd_caption", "sidecar_written"}
PUBLISH_FIELDS = {"filename", "results", "archived", "any_success"}


def upstream_error(response, status: int, detail: str) -> None:
    """Upstream's status and `detail` text, plus only our additions (`error`, `code`, `admin` on login)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["detail"] == detail
    assert set(body) - {"detail"} <= {"error", "code", "admin"}


# -- health and page ------------------------------------------------------------------------------------------


def test_health_and_page(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


# -- admin ----------------------------------------------------------------------------------------------------


def test_login_success_sets_upstreams_cookie_name_and_attributes(client: TestClient) -> None:
    response = login(client)
    assert response.status_code == 200 and response.json() == {"admin": True, "error": None}
    cookie = response.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert cookie.startswith("pv2_admin=")
    assert {"httponly", "path=/", "samesite=lax", "max-age=3600"} <= set(attributes)
    status = client.get("/api/admin/status").json()
    assert status["admin"] is True and status["error"] is None


@pytest.mark.parametrize("password", ["", "wrong"])
def test_login_with_an_empty_or_wrong_password_is_401(client: TestClient, password: str) -> None:
    response = login(client, password)
    upstream_error(response, 401, "Invalid admin password")
    assert "set-cookie" not in response.headers


def test_login_unknown_keys_are_ignored(client: TestClient) -> None:
    response = client.post("/api/admin/login", json={"password": ADMIN_PASSWORD, "remember": True, "x": [1]})
    assert response.status_code == 200 and response.json() == {"admin": True, "error": None}


@pytest.mark.parametrize("body", [{}, {"pass": "x"}, {"password": ["x"]}])
def test_login_validation_errors_are_422_with_fastapis_detail_list(client: TestClient, body: dict) -> None:
    response = client.post("/api/admin/login", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    assert detail[0]["loc"][0] == "body" and {"type", "loc", "msg"} <= set(detail[0])


def test_login_without_an_admin_password_is_503(make_client: ClientFactory) -> None:
    client = make_client(admin_password=None)
    upstream_error(login(client, "anything"), 503, "Admin mode not configured")
    assert client.get("/api/admin/status").json()["admin"] is False


def test_status_and_logout_bodies(admin: TestClient) -> None:
    assert admin.get("/api/admin/status").json()["admin"] is True
    response = admin.post("/api/admin/logout")
    assert response.status_code == 200 and response.json() == {"admin": False, "error": None}
    assert (
        response.headers["set-cookie"].startswith('pv2_admin=""')
        or "max-age=0" in response.headers["set-cookie"].lower()
    )
    status = admin.get("/api/admin/status").json()
    assert status["admin"] is False and status["error"] is None


# -- images ---------------------------------------------------------------------------------------------------


def test_random_image_body(client: TestClient, library: Library) -> None:
    response = client.get("/api/images/random")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= IMAGE_FIELDS and body["filename"] in library.names()


def test_random_image_empty_library_is_404(make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client(make_library(tmp_path / "empty", names=[]))
    upstream_error(client.get("/api/images/random"), 404, "No images found")


def test_random_image_storage_failure_is_500(client: TestClient, library: Library) -> None:
    for path in library.images.iterdir():
        path.unlink()
    library.images.rmdir()
    upstream_error(client.get("/api/images/random"), 500, "Internal error")


@pytest.mark.parametrize("action", ["analyze", "publish"])
def test_admin_actions_success_bodies(admin: TestClient, library: Library, action: str) -> None:
    response = admin.post(f"/api/images/alpha.jpg/{action}", json={"unknown": "ignored"})
    assert response.status_code == 200, response.text
    assert set(response.json()) >= (ANALYSIS_FIELDS if action == "analyze" else PUBLISH_FIELDS)


@pytest.mark.parametrize("action", ["analyze", "publish"])
def test_admin_actions_without_the_admin_cookie_are_403(client: TestClient, action: str) -> None:
    upstream_error(client.post(f"/api/images/alpha.jpg/{action}"), 403, "Admin privileges required")


@pytest.mark.parametrize("action", ["analyze", "publish"])
def test_admin_actions_without_api_credentials_are_401(make_client: ClientFactory, action: str) -> None:
    client = make_client(auth_token="api-token-123")
    assert login(client).status_code == 200
    upstream_error(client.post(f"/api/images/alpha.jpg/{action}"), 401, "Unauthorized")
    ok = client.post(f"/api/images/alpha.jpg/{action}", headers={"Authorization": "Bearer api-token-123"})
    assert ok.status_code == 200


@pytest.mark.parametrize("action", ["analyze", "publish"])
def test_admin_actions_on_a_missing_image_are_404(admin: TestClient, action: str) -> None:
    upstream_error(admin.post(f"/api/images/missing.jpg/{action}"), 404, "Image not found")


def test_publish_body_validation_is_422_with_fastapis_detail_list(admin: TestClient) -> None:
    response = admin.post("/api/images/alpha.jpg/publish", json={"platforms": "email"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "platforms"]


def test_publish_where_every_platform_fails_is_still_200(admin: TestClient, library: Library) -> None:
    library.outbox.parent.mkdir(parents=True, exist_ok=True)
    library.outbox.write_text("a file where the outbox folder should be")  # every outbox post fails
    response = admin.post("/api/images/alpha.jpg/publish")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["any_success"] is False and body["archived"] is False
    assert body["results"] and all(r["success"] is False and r["error"] for r in body["results"].values())


def test_analyze_ai_failure_is_500(tmp_path: Path, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real OpenAI adapter whose endpoint refuses connections (a closed 127.0.0.1 port)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdefghij")
    ini = DEFAULT_INI.replace("[AI]\nbackend = offline", "[AI]\nbackend = openai") + (
        f"\n[openAI]\nbase_url = http://127.0.0.1:{free_port()}/v1\nmax_retries = 0\ntimeout_seconds = 3\n"
    )
    client = make_client(make_library(tmp_path / "ai", ini_text=ini))
    assert login(client).status_code == 200
    upstream_error(client.post("/api/images/alpha.jpg/analyze?force_refresh=true"), 500, "Internal error")


def test_unknown_route_and_method_keep_fastapis_detail(client: TestClient) -> None:
    upstream_error(client.get("/api/nope"), 404, "Not Found")
    upstream_error(client.get("/api/admin/login"), 405, "Method Not Allowed")


# -- the deliberate differences (docs_v2/differences-from-upstream.md) ----------------------------------------


@pytest.mark.parametrize("action", ["analyze", "publish"])
def test_difference_no_admin_password_closes_admin_actions_with_503(
    make_client: ClientFactory, library: Library, action: str
) -> None:
    client = make_client(admin_password=None)
    upstream_error(client.post(f"/api/images/alpha.jpg/{action}"), 503, "Admin mode not configured")
    assert (library.images / "alpha.jpg").is_file() and not library.outbox.exists()


@pytest.mark.parametrize("value", ["1", "yes", "admin"])
def test_difference_an_unsigned_admin_cookie_is_refused(client: TestClient, value: str) -> None:
    client.cookies.set("pv2_admin", value)
    assert client.get("/api/admin/status").json()["admin"] is False
    upstream_error(client.post("/api/images/alpha.jpg/analyze"), 403, "Admin privileges required")


@pytest.mark.parametrize("name", ["%2E%2E", ".hidden.jpg", "notes.txt", "a%5C..%5Cb.jpg"])
def test_difference_names_that_are_not_plain_image_files_are_422(admin: TestClient, name: str) -> None:
    response = admin.post(f"/api/images/{name}/analyze")
    assert response.status_code == 422 and response.json()["code"] == "invalid_filename"


def test_openapi_documents_upstreams_error_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert {"detail", "error", "code"} <= set(error["required"])
    for path, method, status in [
        ("/api/images/random", "get", "500"),
        ("/api/images/{filename}/analyze", "post", "500"),
        ("/api/images/{filename}/publish", "post", "500"),
        ("/api/images/{filename}/analyze", "post", "503"),
        ("/api/admin/login", "post", "401"),
    ]:
        assert status in spec["paths"][path][method]["responses"], (path, status)
    login_body = spec["paths"]["/api/admin/login"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert login_body.get("additionalProperties") is not False  # unknown keys are accepted
