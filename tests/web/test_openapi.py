"""/openapi.json describes every route truthfully, error bodies included."""

from __future__ import annotations

from typing import Dict, Set

import pytest
from fastapi.testclient import TestClient

#: (method, path) → the error statuses the route documents.
EXPECTED: Dict[tuple, Set[str]] = {
    ("get", "/"): set(),
    ("get", "/health"): set(),
    ("get", "/api/images/random"): {"404", "500"},
    ("get", "/api/images/{filename}/file"): {"404", "422", "500"},
    ("post", "/api/images/{filename}/analyze"): {"401", "403", "404", "422", "500", "503"},
    ("post", "/api/images/{filename}/publish"): {"401", "403", "404", "409", "413", "422", "500", "503"},
    ("post", "/api/admin/login"): {"401", "413", "422", "429", "503"},
    ("get", "/api/admin/status"): set(),
    ("post", "/api/admin/logout"): set(),
}


@pytest.fixture
def spec(client: TestClient) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_route_is_listed_and_nothing_else(spec: dict) -> None:
    listed = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert listed == set(EXPECTED)


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_each_route_documents_its_error_responses_with_a_json_schema(
    spec: dict, method: str, path: str
) -> None:
    responses = spec["paths"][path][method]["responses"]
    errors = {status for status in responses if status >= "400"}
    assert errors == EXPECTED[(method, path)]
    for status in errors:
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema["$ref"].split("/")[-1] in ("ErrorResponse", "LoginErrorResponse", "PublishErrorResponse"), (
            path,
            status,
        )


def test_validation_errors_are_documented_as_our_error_body_not_fastapis(spec: dict) -> None:
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert set(schemas["ErrorResponse"]["required"]) == {"detail", "error", "code"}
    assert set(schemas["LoginErrorResponse"]["properties"]) == {"detail", "error", "code", "admin"}


def test_success_bodies_name_their_models(spec: dict) -> None:
    def model(path: str, method: str) -> str:
        schema = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        return schema["$ref"].split("/")[-1]

    assert model("/api/images/random", "get") == "RandomImageResponse"
    assert model("/api/images/{filename}/analyze", "post") == "AnalyzeResponse"
    assert model("/api/images/{filename}/publish", "post") == "PublishResponse"
    assert model("/api/admin/login", "post") == "AdminResponse"
    assert model("/api/admin/status", "get") == "AdminStatusResponse"
    random_fields = set(spec["components"]["schemas"]["RandomImageResponse"]["properties"])
    assert {
        "filename",
        "temp_url",
        "sha256",
        "caption",
        "sd_caption",
        "metadata",
        "has_sidecar",
    } <= random_fields
    publish_fields = set(spec["components"]["schemas"]["PublishResponse"]["properties"])
    assert publish_fields == {"filename", "results", "archived", "any_success"}


def test_request_bodies_read_by_the_routes_are_documented(spec: dict) -> None:
    login = spec["paths"]["/api/admin/login"]["post"]["requestBody"]
    assert login["required"] is True
    assert "password" in login["content"]["application/json"]["schema"]["properties"]
    publish = spec["paths"]["/api/images/{filename}/publish"]["post"]["requestBody"]
    assert publish["required"] is False
    assert "platforms" in publish["content"]["application/json"]["schema"]["properties"]
    params = {p["name"] for p in spec["paths"]["/api/images/{filename}/analyze"]["post"]["parameters"]}
    assert params == {"filename", "force_refresh"}


def test_actual_error_bodies_match_the_documented_shape(client: TestClient) -> None:
    for response in (
        client.get("/api/images/missing.jpg/file"),
        client.get("/api/images/notes.txt/file"),
        client.post("/api/images/alpha.jpg/analyze"),
    ):
        assert response.status_code >= 400
        assert set(response.json()) == {"detail", "error", "code"}
