"""The public image routes: a random image with its captions, and an image's bytes."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

# Events go through the module attribute (applog.log_json), read at call time, so a wrapper put on it later
# (the telemetry's one-event-per-request gate) sees every call whatever the import order.
import publisher_v2.utils.logging as applog
from publisher_v2.web.dependencies import _service
from publisher_v2.web.models import RandomImageResponse
from publisher_v2.web.responses import error_responses, route_failure
from publisher_v2.web.service import WebImageService

logger = logging.getLogger("publisher_v2.web")

router = APIRouter()


# Each mapped route logs upstream's business event once: `<event>` on success, `<event>_error` on failure
# (4xx WARNING, 5xx ERROR). With telemetry on, the manifest's `routes:` name the same events, and the
# telemetry adds its timing fields to this one event instead of writing a second.
@router.get(
    "/api/images/random",
    response_model=RandomImageResponse,
    responses=error_responses(404, 500),
    tags=["images"],
)
async def random_image(request: Request) -> Response:
    """A random library image and its sidecar captions (public; no image bytes are read)."""
    try:
        image = await request.app.state.service.get_random_image()
    except Exception as exc:  # noqa: BLE001 - every failure is an answer (upstream: 404 or 500)
        raise route_failure("web_random_image_error", exc) from exc
    applog.log_json(logger, logging.INFO, "web_random_image", filename=image.filename)
    # The hot path: the model is already validated, so it is serialised once here instead of being
    # validated again by FastAPI's response_model machinery (which still documents it).
    return Response(image.model_dump_json(), media_type="application/json")

@router.get(
    "/api/images/{filename}/file",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}, **error_responses(404, 422, 500)},
    tags=["images"],
)
async def image_file(filename: str, service: WebImageService = Depends(_service)) -> Response:
    """The image bytes for a plain file name in the library (the page's `temp_url`)."""
    image = await service.get_image_file(filename)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}
    if image.path is not None:
        return FileResponse(image.path, media_type=image.media_type, headers=headers)
    return Response(image.data or b"", media_type=image.media_type, headers=headers)
