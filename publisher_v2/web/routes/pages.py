"""The page, its icon and the health check."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from publisher_v2.web.models import HealthResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
#: The page loads only its own script and style; images come from this app or from https storage links.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: data:; script-src 'self'; style-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter()


@router.get("/", response_class=FileResponse, responses={200: {"content": {"text/html": {}}}}, tags=["page"])
async def page() -> FileResponse:
    """The single-page UI (static HTML + JS; every server value is set as text, never as HTML)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The page's icon at the address browsers ask for by default (an SVG; no 404 in the console)."""
    return FileResponse(
        STATIC_DIR / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )

@router.get("/health", response_model=HealthResponse, tags=["page"])
async def health() -> HealthResponse:
    return HealthResponse()
