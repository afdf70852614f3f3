"""The admin session: log in (throttled in the shared ledger), ask whether this browser is admin, log out."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

# Events go through the module attribute (applog.log_json), read at call time, so a wrapper put on it later
# (the telemetry's one-event-per-request gate) sees every call whatever the import order.
import publisher_v2.utils.logging as applog
from publisher_v2.web.auth import COOKIE_NAME, LoginThrottle
from publisher_v2.web.dependencies import _client, _json_body_doc, _sessions, read_json_body
from publisher_v2.web.errors import AdminNotConfigured, LoginFailed, WebError
from publisher_v2.web.models import AdminResponse, AdminStatusResponse, LoginErrorResponse, LoginRequest
from publisher_v2.web.responses import error_responses, web_error_response

logger = logging.getLogger("publisher_v2.web")

router = APIRouter()


@router.post(
    "/api/admin/login",
    response_model=AdminResponse,
    responses=error_responses(401, 413, 422, 429, 503, model=LoginErrorResponse),
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
        return web_error_response(refused, LoginErrorResponse)
    try:
        # The attempt is counted BEFORE the body is read: an unreadable body is a failed attempt too.
        stamp = throttle.admit(client)
        body = await read_json_body(request, LoginRequest, required=True)  # validated first, as upstream
    except WebError as exc:
        applog.log_json(logger, logging.WARNING, "web_admin_login_failure", reason=exc.code, client=client)
        return web_error_response(exc, LoginErrorResponse)
    assert body is not None
    if not body.password or not sessions.password_matches(body.password):
        reason = "empty_password" if not body.password else "mismatch"
        applog.log_json(logger, logging.WARNING, "web_admin_login_failure", reason=reason, client=client)
        return web_error_response(LoginFailed("Invalid admin password"), LoginErrorResponse)
    throttle.succeeded(client, stamp)
    response = JSONResponse(AdminResponse(admin=True).model_dump())
    response.set_cookie(value=sessions.issue(), max_age=sessions.ttl, **sessions.cookie_options())  # type: ignore[arg-type]
    applog.log_json(logger, logging.INFO, "web_admin_login_success", client=client, ttl_seconds=sessions.ttl)
    return response

@router.get("/api/admin/status", response_model=AdminStatusResponse, tags=["admin"])
async def status(request: Request) -> AdminStatusResponse:
    """Whether this browser holds a valid admin session (a forged or expired cookie reports false)."""
    sessions = _sessions(request)
    admin = sessions.is_admin(request.cookies.get(COOKIE_NAME))
    platforms = [p.platform_name for p in request.app.state.service.publishers] if admin else []
    return AdminStatusResponse(admin=admin, configured=sessions.configured, platforms=platforms)

@router.post("/api/admin/logout", response_model=AdminResponse, tags=["admin"])
async def logout(request: Request) -> JSONResponse:
    """Drop the admin cookie and revoke it server-side (every worker refuses it from now on)."""
    sessions = _sessions(request)
    was_admin = sessions.revoke(request.cookies.get(COOKIE_NAME))  # the session id is deleted for every worker
    response = JSONResponse(AdminResponse(admin=False).model_dump())
    response.delete_cookie(**sessions.cookie_options())  # type: ignore[arg-type]
    applog.log_json(logger, logging.INFO, "web_admin_logout", client=_client(request), was_admin=was_admin)
    return response
