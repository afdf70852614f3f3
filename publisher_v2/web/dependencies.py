"""What routes depend on: the service, the admin sessions, the admin guard, and a bounded JSON body reader."""

from __future__ import annotations

from typing import Any, Dict, Optional, Type, TypeVar

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ValidationError

from publisher_v2.web.auth import COOKIE_NAME, AdminSessions, check_api_auth
from publisher_v2.web.errors import AdminNotConfigured, AdminRequired, BodyTooLarge, InvalidRequest
from publisher_v2.web.responses import _echo
from publisher_v2.web.service import WebImageService

#: Request bodies (login, publish) larger than this are refused with 413 before they are read in full.
MAX_JSON_BODY = 64 * 1024

M = TypeVar("M", bound=BaseModel)


async def read_json_body(request: Request, model: Type[M], *, required: bool) -> Optional[M]:
    """Parse the body as `model`, reading at most MAX_JSON_BODY bytes (413 beyond, whatever the headers say).

    The route reads the body itself because FastAPI would read all of it before any dependency could object.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > MAX_JSON_BODY:
                raise BodyTooLarge(f"Request body larger than {MAX_JSON_BODY} bytes")
        except ValueError:
            raise InvalidRequest("Invalid Content-Length") from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise BodyTooLarge(f"Request body larger than {MAX_JSON_BODY} bytes")
    if not body.strip():
        if required:
            raise InvalidRequest("A JSON body is required", detail=_validation_detail("missing", "Field required"))
        return None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        message = "The body must be JSON (Content-Type: application/json)"
        raise InvalidRequest(message, detail=_validation_detail("model_attributes_type", message))
    try:
        return model.model_validate_json(bytes(body))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        detail = [{**err, "loc": ["body", *err.get("loc", ())], "input": _echo(err.get("input"))} for err in errors]
        raise InvalidRequest(
            f"Invalid body: {where}: {first.get('msg', 'invalid')}", detail=jsonable_encoder(detail)
        ) from None


def _validation_detail(kind: str, message: str) -> list:
    """FastAPI's 422 `detail` shape, which upstream's clients received for a bad body."""
    return [{"type": kind, "loc": ["body"], "msg": message, "input": None}]


def _json_body_doc(model: Type[BaseModel], required: bool) -> Dict[str, Any]:
    """Document a body that the route reads itself (bounded), so /openapi.json still shows its schema."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _service(request: Request) -> WebImageService:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
    return request.app.state.service


def _sessions(request: Request) -> AdminSessions:
    return request.app.state.sessions


async def require_admin(request: Request) -> None:
    """Guard of analyze/publish: API credentials (when configured), then a valid admin session."""
    check_api_auth(request.app.state.settings, request.headers.get("authorization"))
    sessions = _sessions(request)
    if not sessions.configured:
        raise AdminNotConfigured("Admin actions are disabled: no admin password is configured")
    if not sessions.is_admin(request.cookies.get(COOKIE_NAME)):
        raise AdminRequired("Admin login required")
