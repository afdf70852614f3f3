"""Every failure of a route becomes an answer: `{"detail", "error", "code"}` with upstream's status, logged once.

`route_failure` maps a failure to its WebError (and logs it), `admin_action` runs an admin route's work under
that rule, `install_error_handlers` answers what FastAPI and Starlette raise themselves in the same shape.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Type, TypeVar

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

# Events go through the module attribute (applog.log_json), read at call time, so a wrapper put on it later
# (the telemetry's one-event-per-request gate) sees every call whatever the import order.
import publisher_v2.utils.logging as applog
from publisher_v2.domain.errors import AIServiceError, SocialMediaPublisherError, StorageError
from publisher_v2.utils.images import InvalidImageError
from publisher_v2.web.errors import InternalFailure, PublishNotRecorded, UnreadableImage, WebError
from publisher_v2.web.models import ErrorResponse, PublishErrorResponse

logger = logging.getLogger("publisher_v2.web")

R = TypeVar("R")


def error_responses(*statuses: int, model: Type[BaseModel] = ErrorResponse) -> Dict[int, Dict[str, Any]]:
    """OpenAPI `responses` entries: each status answers with `model` (ErrorResponse by default)."""
    return {status: {"model": model} for status in statuses}


def _error_response(
    status: int, error: str, code: str, headers: Optional[Mapping[str, str]] = None, detail: Any = None
) -> JSONResponse:
    body = ErrorResponse(detail=error if detail is None else detail, error=error, code=code)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def web_error_response(exc: WebError, model: Type[ErrorResponse] = ErrorResponse) -> JSONResponse:
    if isinstance(exc, PublishNotRecorded):  # platforms were called: say what each one answered
        body: ErrorResponse = PublishErrorResponse(
            detail=exc.detail, error=exc.message, code=exc.code, filename=exc.filename, results=exc.results
        )
    else:
        body = model(detail=exc.detail, error=exc.message, code=exc.code)
    return JSONResponse(body.model_dump(), status_code=exc.status_code, headers=exc.headers)


def as_web_error(exc: BaseException) -> WebError:
    """The answer to a failure inside a route: expected ones keep theirs, the rest are upstream's 500."""
    if isinstance(exc, WebError):
        return exc
    if isinstance(exc, InvalidImageError):
        return UnreadableImage("The file is not a readable image")
    if isinstance(exc, AIServiceError):
        return InternalFailure("The AI service failed", "ai_error")
    if isinstance(exc, StorageError):
        return InternalFailure("The image library failed", "storage_error")
    return InternalFailure("Internal error", "internal_error")


def route_failure(event: str, exc: BaseException, **fields: Any) -> WebError:
    """Log a route's error event (upstream's name; 4xx WARNING, 5xx ERROR with the cause) and return the answer.

    The cause of a 5xx (paths, SDK messages) goes to the log only, redacted; the client gets `Internal error`.
    """
    failure = as_web_error(exc)
    if failure.status_code >= 500:
        applog.log_json(
            logger,
            logging.ERROR,
            event,
            **fields,
            error=str(exc) or failure.message,
            error_type=type(exc).__name__,
            code=failure.code,
        )
    else:
        applog.log_json(logger, logging.WARNING, event, **fields, error=failure.message, code=failure.code)
    return failure


async def admin_action(
    event: str, filename: str, action: Callable[[], Awaitable[R]], fields: Callable[[R], Dict[str, Any]]
) -> R:
    """Run an admin route's work on `filename`: a failure is logged as `<event>_error` and answered (see
    `route_failure`), a success logged once as `<event>_complete` with `fields(result)`."""
    try:
        result = await action()
    except Exception as exc:  # noqa: BLE001 - every failure is an answer (upstream: 4xx or 500)
        raise route_failure(f"{event}_error", exc, filename=filename) from exc
    applog.log_json(logger, logging.INFO, f"{event}_complete", filename=filename, **fields(result))
    return result


def _echo(value: Any) -> Any:
    """An input echoed in a 422 `detail`: bytes that are not text (a body that is not UTF-8) are not echoed."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value


def install_error_handlers(app: FastAPI) -> None:
    """Every error body is `{"detail", "error", "code"}`: upstream's `detail`, plus ours."""

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> JSONResponse:
        return web_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{**err, "input": _echo(err.get("input"))} if "input" in err else err for err in exc.errors()]
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return _error_response(
            422,
            f"Invalid request: {where}: {first.get('msg', 'invalid')}",
            "invalid_request",
            detail=jsonable_encoder(errors),
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error_response(
            exc.status_code,
            str(exc.detail),
            codes.get(exc.status_code, "http_error"),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(SocialMediaPublisherError)
    async def domain_error(request: Request, exc: SocialMediaPublisherError) -> JSONResponse:
        # Routes without an event of their own (the image file): the cause is logged, the client gets 500.
        failure = as_web_error(exc)
        if failure.status_code >= 500:
            applog.log_json(
                logger,
                logging.ERROR,
                "web_service_error",
                path=request.url.path,
                error_type=type(exc).__name__,
                error=str(exc),
            )
        return web_error_response(failure)
