"""The admin actions on an image: analyse and caption it, publish it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from publisher_v2.web.dependencies import _json_body_doc, _service, read_json_body, require_admin
from publisher_v2.web.models import AnalyzeResponse, PublishErrorResponse, PublishRequest, PublishResponse
from publisher_v2.web.responses import admin_action, error_responses
from publisher_v2.web.service import WebImageService

router = APIRouter()


@router.post(
    "/api/images/{filename}/analyze",
    response_model=AnalyzeResponse,
    responses=error_responses(401, 403, 404, 422, 500, 503),
    tags=["admin actions"],
)
async def analyze(
    filename: str,
    request: Request,
    force_refresh: bool = Query(
        False, description="Analyse again even when a sidecar already holds captions."
    ),
    service: WebImageService = Depends(_service),
) -> AnalyzeResponse:
    """Analyse and caption an image (admin), reusing its sidecar unless `force_refresh`."""

    async def run() -> AnalyzeResponse:
        await require_admin(request)
        return await service.analyze_and_caption(filename, force_refresh=force_refresh)

    return await admin_action(
        "web_analyze",
        filename,
        run,
        lambda r: {"sidecar_written": r.sidecar_written, "from_sidecar": r.from_sidecar},
    )

@router.post(
    "/api/images/{filename}/publish",
    response_model=PublishResponse,
    responses={
        **error_responses(401, 403, 404, 409, 413, 422, 503),
        **error_responses(500, model=PublishErrorResponse),
    },
    openapi_extra=_json_body_doc(PublishRequest, required=False),
    tags=["admin actions"],
)
async def publish(
    filename: str, request: Request, service: WebImageService = Depends(_service)
) -> PublishResponse:
    """Publish an image (admin) to every enabled platform or to `platforms`; a failure is a result (200)."""

    async def run() -> PublishResponse:
        await require_admin(request)  # before the body is read: an anonymous client's bytes are never parsed
        body = await read_json_body(request, PublishRequest, required=False)
        return await service.publish_image(filename, platforms=body.platforms if body else None)

    return await admin_action(
        "web_publish", filename, run, lambda r: {"any_success": r.any_success, "archived": r.archived}
    )
