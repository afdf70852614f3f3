"""Hostile `filename` path parameters: 404 or 422 on every route taking one, never a file outside it."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest
from fastapi.testclient import TestClient

from publisher_v2.web.errors import InvalidFilename
from publisher_v2.web.service import check_filename
from tests.web.conftest import Library

SECRET = "TOP-SECRET-CONTENT"

#: (raw URL segment, expected status). Encoded slashes decode to "/" before routing: no route matches (404);
#: everything that reaches the route but is not a plain image name is a 422.
CASES: List[Tuple[str, int]] = [
    ("%2e%2e", 422),
    ("..", 404),  # the client normalises the dot segment away: /api/images/<action> matches nothing
    ("%2e%2e%2f%2e%2e%2fsecret.jpg", 404),
    ("..%2fsecret.jpg", 404),
    ("%2fetc%2fpasswd", 404),
    ("..%5csecret.jpg", 422),
    ("sub%5calpha.jpg", 422),
    ("alpha.jpg%00.txt", 422),
    ("alpha%00.jpg", 422),
    ("C:%5cwindows%5csecret.jpg", 422),
    ("C:secret.jpg", 422),
    (".hidden.jpg", 422),
    ("notes.txt", 422),
    ("alpha.txt", 422),
    ("publisher.ini", 422),
    ("alpha", 422),
    ("a" * 300 + ".jpg", 422),
    ("line%0abreak.jpg", 422),
    ("missing.jpg", 404),
    ("archive", 422),
]

ROUTES = [
    ("GET", "/api/images/{}/file"),
    ("POST", "/api/images/{}/analyze"),
    ("POST", "/api/images/{}/publish"),
]


@pytest.fixture
def planted(library: Library) -> Library:
    """Secrets next to and above the library that a traversal would reach."""
    (library.root / "secret.jpg").write_text(SECRET, encoding="utf-8")
    (library.images / "notes.txt").write_text(SECRET, encoding="utf-8")
    (library.images / ".hidden.jpg").write_text(SECRET, encoding="utf-8")
    (library.images / "alpha.txt").write_text(SECRET + "\n\n# ---\n", encoding="utf-8")
    (library.images / "archive").mkdir()
    return library


@pytest.mark.parametrize(("method", "template"), ROUTES)
@pytest.mark.parametrize(("segment", "status"), CASES)
def test_hostile_filenames_are_404_or_422_and_never_serve_a_file(
    admin: TestClient, planted: Library, method: str, template: str, segment: str, status: int
) -> None:
    response = admin.request(method, template.format(segment))
    assert response.status_code == status, (segment, response.text)
    assert SECRET not in response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["code"] in (
        "invalid_filename",
        "image_not_found",
        "not_found",
        "method_not_allowed",
    )
    # Nothing was published or moved.
    assert (planted.images / "alpha.jpg").is_file() and not (planted.root / "outbox").exists()


def test_a_plain_existing_name_passes_the_same_routes(admin: TestClient, planted: Library) -> None:
    assert admin.get("/api/images/alpha.jpg/file").status_code == 200
    assert admin.post("/api/images/alpha.jpg/analyze").status_code == 200


@pytest.mark.parametrize(
    "name", ["..", "/etc/passwd.jpg", "a/b.jpg", "a\\b.jpg", "x\x00.jpg", "", ".jpg", "D:x.png", "x.JPG.exe"]
)
def test_check_filename_rejects_non_plain_names(name: str) -> None:
    with pytest.raises(InvalidFilename):
        check_filename(name)


@pytest.mark.parametrize("name", ["a.jpg", "Photo 1.JPEG", "été.png", "x..y.webp"])
def test_check_filename_accepts_plain_image_names(name: str) -> None:
    assert check_filename(name) == name


def test_unicode_names_round_trip_through_temp_url(admin: TestClient, planted: Library) -> None:
    from tests.web.conftest import make_image

    make_image(planted.images / "été à la mer.jpg")
    for _ in range(40):
        body = admin.get("/api/images/random").json()
        if body["filename"] == "été à la mer.jpg":
            break
    else:
        pytest.fail("the unicode image never came up")
    response = admin.get(body["temp_url"])
    assert response.status_code == 200
    assert response.content == Path(planted.images / "été à la mer.jpg").read_bytes()
