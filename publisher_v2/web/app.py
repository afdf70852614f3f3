"""The FastAPI app: routes, auth dependencies and error mapping over WebImageService.

Start it with `uvicorn publisher_v2.web.app:app`, with `CONFIG_PATH` (and optionally `ENV_PATH`) set.
The module-level `app` is built on first access (PEP 562 `__getattr__`), so tests can import `create_app`
without a configuration, while a server with a missing or invalid configuration refuses to start with ONE line
on stderr and exit status 1 (uvicorn imports the attribute before it starts serving, so no traceback, no
half-started server).
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Mapping, Optional, Tuple, Type, TypeVar

from dotenv import dotenv_values
from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

# Events go through the module attribute (applog.log_json), read at call time, so a wrapper put on it later
# (the telemetry's one-event-per-request gate) sees every call whatever the import order.
import publisher_v2.utils.logging as applog
from publisher_v2.config.loader import find_env_file, load_application_config
from publisher_v2.config.preflight import preflight
from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.core.exceptions import (
    AIServiceError,
    ConfigurationError,
    SocialMediaPublisherError,
    StorageError,
)
from publisher_v2.utils.images import InvalidImageError
from publisher_v2.utils.logging import setup_logging
from publisher_v2.web.access import RequestScopeMiddleware
from publisher_v2.web.auth import COOKIE_NAME, AdminSessions, LoginThrottle, WebSettings, check_api_auth
from publisher_v2.web.errors import (
    AdminNotConfigured,
    AdminRequired,
    BodyTooLarge,
    InternalFailure,
    InvalidRequest,
    LoginFailed,
    PublishNotRecorded,
    UnreadableImage,
    WebError,
)
from publisher_v2.web.models import (
    AdminResponse,
    AdminStatusResponse,
    AnalyzeResponse,
    ErrorResponse,
    HealthResponse,
    LoginErrorResponse,
    LoginRequest,
    PublishErrorResponse,
    PublishRequest,
    PublishResponse,
    RandomImageResponse,
)
from publisher_v2.web.service import WebImageService
from publisher_v2.web.sessions import SessionStore

logger = logging.getLogger("publisher_v2.web")

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Request bodies (login, publish) larger than this are refused with 413 before they are read in full.
MAX_JSON_BODY = 64 * 1024
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

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


def _errors(*statuses: int, model: Type[BaseModel] = ErrorResponse) -> Dict[int, Dict[str, Any]]:
    """OpenAPI `responses` entries: each status answers with `model` (ErrorResponse by default)."""
    return {status: {"model": model} for status in statuses}


def _error_response(
    status: int, error: str, code: str, headers: Optional[Mapping[str, str]] = None, detail: Any = None
) -> JSONResponse:
    body = ErrorResponse(detail=error if detail is None else detail, error=error, code=code)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _web_error_response(exc: WebError, model: Type[ErrorResponse] = ErrorResponse) -> JSONResponse:
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


def read_environment(env_path: Optional[str]) -> Dict[str, Optional[str]]:
    """The process environment over the ENV_PATH file, else a `.env` found upwards from the working directory
    (as upstream's load_dotenv did); the real environment wins, as in the CLI."""
    merged: Dict[str, Optional[str]] = {}
    env_file = find_env_file(env_path or None)
    if env_file is not None:
        if not env_file.is_file():
            raise ConfigurationError(f"{env_path}: environment file not found (ENV_PATH)")
        merged.update(dotenv_values(env_file))
    merged.update(os.environ)
    return merged


def load_config_from_environment() -> Tuple[ApplicationConfig, Dict[str, Optional[str]]]:
    """Load the config named by CONFIG_PATH (and ENV_PATH); ConfigurationError names what is wrong."""
    config_path = os.environ.get("CONFIG_PATH")
    if not config_path:
        raise ConfigurationError(
            "CONFIG_PATH is not set: point it at the INI file, e.g. CONFIG_PATH=publisher.ini"
        )
    env_path = os.environ.get("ENV_PATH") or None
    config = load_application_config(config_path, env_path)
    preflight(config, publishes=False)  # a library that is not a folder refuses the start, not every request
    return config, read_environment(env_path)


# -- request helpers -----------------------------------------------------------------------------------------


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


def _echo(value: Any) -> Any:
    """An input echoed in a 422 `detail`: bytes that are not text (a body that is not UTF-8) are not echoed."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value


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


# -- error mapping -------------------------------------------------------------------------------------------


def _install_error_handlers(app: FastAPI) -> None:
    """Every error body is `{"detail", "error", "code"}`: upstream's `detail`, plus ours."""

    @app.exception_handler(WebError)
    async def web_error(request: Request, exc: WebError) -> JSONResponse:
        return _web_error_response(exc)

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
        return _web_error_response(failure)


# -- the app -------------------------------------------------------------------------------------------------


def create_app(
    config: Optional[ApplicationConfig] = None,
    settings: Optional[WebSettings] = None,
    service: Optional[WebImageService] = None,
) -> FastAPI:
    """Build the app. No `config`: load CONFIG_PATH/ENV_PATH; no `settings`: read them from the env."""
    env: Optional[Dict[str, Optional[str]]] = None
    if config is None and service is None:
        config, env = load_config_from_environment()
    if settings is None:
        settings = WebSettings.from_env(
            env if env is not None else read_environment(os.environ.get("ENV_PATH"))
        )
    if service is None:
        assert config is not None
        service = WebImageService.from_config(config)
    web_service = service

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        web_service.ledger.schema_version()  # open the ledger now: migrations run, a bad [State] url stops here
        applog.log_json(
            logger,
            logging.INFO,
            "web_server_start",
            storage=web_service.storage.backend_name,
            platforms=[p.platform_name for p in web_service.publishers],
            admin_configured=app.state.sessions.configured,
            api_auth=settings.api_auth_enabled,
        )
        yield
        web_service.close()
        session_store.close()

    app = FastAPI(
        title="publisher_v2",
        version="2.0.0",
        description="Browse the image library, caption images and publish them (admin).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = web_service
    session_store = SessionStore(web_service.ledger.store)  # logins and logouts shared by every worker
    app.state.sessions = AdminSessions(settings, store=session_store)
    app.state.throttle = LoginThrottle(session_store)
    _install_error_handlers(app)
    app.add_middleware(RequestScopeMiddleware)  # the access event names the matched route
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    _add_page_routes(app)
    _add_image_routes(app)
    _add_admin_routes(app)
    return app


def _add_page_routes(app: FastAPI) -> None:
    @app.get("/", response_class=FileResponse, responses={200: {"content": {"text/html": {}}}}, tags=["page"])
    async def page() -> FileResponse:
        """The single-page UI (static HTML + JS; every server value is set as text, never as HTML)."""
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        """The page's icon at the address browsers ask for by default (an SVG; no 404 in the console)."""
        return FileResponse(
            STATIC_DIR / "favicon.svg",
            media_type="image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )

    @app.get("/health", response_model=HealthResponse, tags=["page"])
    async def health() -> HealthResponse:
        return HealthResponse()


def _add_image_routes(app: FastAPI) -> None:
    # Each mapped route logs upstream's business event once: `<event>` on success, `<event>_error` on failure
    # (4xx WARNING, 5xx ERROR). With telemetry on, the manifest's `routes:` name the same events, and the
    # telemetry adds its timing fields to this one event instead of writing a second.
    @app.get(
        "/api/images/random",
        response_model=RandomImageResponse,
        responses=_errors(404, 500),
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

    @app.get(
        "/api/images/{filename}/file",
        response_class=Response,
        responses={200: {"content": {"image/*": {}}}, **_errors(404, 422, 500)},
        tags=["images"],
    )
    async def image_file(filename: str, service: WebImageService = Depends(_service)) -> Response:
        """The image bytes for a plain file name in the library (the page's `temp_url`)."""
        image = await service.get_image_file(filename)
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}
        if image.path is not None:
            return FileResponse(image.path, media_type=image.media_type, headers=headers)
        return Response(image.data or b"", media_type=image.media_type, headers=headers)

    @app.post(
        "/api/images/{filename}/analyze",
        response_model=AnalyzeResponse,
        responses=_errors(401, 403, 404, 422, 500, 503),
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

    @app.post(
        "/api/images/{filename}/publish",
        response_model=PublishResponse,
        responses={**_errors(401, 403, 404, 409, 413, 422, 503), **_errors(500, model=PublishErrorResponse)},
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


def _add_admin_routes(app: FastAPI) -> None:
    @app.post(
        "/api/admin/login",
        response_model=AdminResponse,
        responses=_errors(401, 413, 422, 429, 503, model=LoginErrorResponse),
        openapi_extra=_json_body_doc(LoginRequest, required=True),
        tags=["admin"],
    )
    async def login(request: Request) -> JSONResponse:
        """Check the admin password; on success set the signed, expiring, HttpOnly admin cookie."""
        sessions = _sessions(request)
        throttle: LoginThrottle = request.app.state.throttle
        client = _client(request)
        if not sessions.configured:  # closed whatever the throttle says: nothing to guess
            applog.log_json(logger, logging.WARNING, "web_admin_login_unconfigured", client=client)
            refused: WebError = AdminNotConfigured("Admin actions are disabled: no admin password is configured")
            return _web_error_response(refused, LoginErrorResponse)
        try:
            # The attempt is counted BEFORE the body is read: an unreadable body is a failed attempt too.
            stamp = throttle.admit(client)
            body = await read_json_body(request, LoginRequest, required=True)  # validated first, as upstream
        except WebError as exc:
            applog.log_json(logger, logging.WARNING, "web_admin_login_failure", reason=exc.code, client=client)
            return _web_error_response(exc, LoginErrorResponse)
        assert body is not None
        if not body.password or not sessions.password_matches(body.password):
            reason = "empty_password" if not body.password else "mismatch"
            applog.log_json(logger, logging.WARNING, "web_admin_login_failure", reason=reason, client=client)
            return _web_error_response(LoginFailed("Invalid admin password"), LoginErrorResponse)
        throttle.succeeded(client, stamp)
        response = JSONResponse(AdminResponse(admin=True).model_dump())
        response.set_cookie(value=sessions.issue(), max_age=sessions.ttl, **sessions.cookie_options())  # type: ignore[arg-type]
        applog.log_json(logger, logging.INFO, "web_admin_login_success", client=client, ttl_seconds=sessions.ttl)
        return response

    @app.get("/api/admin/status", response_model=AdminStatusResponse, tags=["admin"])
    async def status(request: Request) -> AdminStatusResponse:
        """Whether this browser holds a valid admin session (a forged or expired cookie reports false)."""
        sessions = _sessions(request)
        admin = sessions.is_admin(request.cookies.get(COOKIE_NAME))
        platforms = [p.platform_name for p in request.app.state.service.publishers] if admin else []
        return AdminStatusResponse(admin=admin, configured=sessions.configured, platforms=platforms)

    @app.post("/api/admin/logout", response_model=AdminResponse, tags=["admin"])
    async def logout(request: Request) -> JSONResponse:
        """Drop the admin cookie and revoke it server-side (every worker refuses it from now on)."""
        sessions = _sessions(request)
        was_admin = sessions.revoke(request.cookies.get(COOKIE_NAME))  # the session id is deleted for every worker
        response = JSONResponse(AdminResponse(admin=False).model_dump())
        response.delete_cookie(**sessions.cookie_options())  # type: ignore[arg-type]
        applog.log_json(logger, logging.INFO, "web_admin_logout", client=_client(request), was_admin=was_admin)
        return response


# -- the module-level app for `uvicorn publisher_v2.web.app:app` ---------------------------------------------


def _server_app() -> FastAPI:
    """The app a server runs: JSON logs on stderr (DEBUG with upstream's WEB_DEBUG), config from the environment,
    a one-line refusal."""
    debug = os.environ.get("WEB_DEBUG", "").strip().lower() in ("1", "true", "yes")
    setup_logging(logging.DEBUG if debug else logging.INFO, stream=sys.stderr)
    try:
        application = create_app()
        # Open the ledger before uvicorn's start-up: a bad or unreachable [State] url / DATABASE_URL is then this
        # one event naming the setting, not a traceback ending in "Application startup failed".
        application.state.service.ledger.schema_version()
        return application
    except SocialMediaPublisherError as exc:
        applog.log_json(logger, logging.ERROR, "web_cannot_start", error=str(exc))  # one event, redacted, like all
        raise SystemExit(1) from None


def __getattr__(name: str) -> Any:
    """Build `app` on first access (PEP 562) and keep it, so later lookups (and wrappers) see one object."""
    if name == "app":
        application = _server_app()
        globals()["app"] = application
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
