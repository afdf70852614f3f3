"""Expected web failures, each with its HTTP status and machine code.

Services raise these; one exception handler in `app.py` turns them into an `ErrorResponse` body, so a route
never builds an error by hand and the status a failure gets is decided in exactly one place.
"""

from __future__ import annotations

from typing import Dict, Optional


class WebError(Exception):
    """An expected failure of a web request."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class InvalidFilename(WebError):
    """Not a plain image file name (path separators, `..`, NUL, absolute, hidden, non-image extension)."""

    status_code = 422
    code = "invalid_filename"


class ImageNotFound(WebError):
    status_code = 404
    code = "image_not_found"


class NoImages(WebError):
    status_code = 404
    code = "no_images"


class InvalidRequest(WebError):
    """A body that is not the JSON the route expects (or asks for platforms that are not enabled)."""

    status_code = 422
    code = "invalid_request"


class BodyTooLarge(WebError):
    status_code = 413
    code = "body_too_large"


class Unauthorized(WebError):
    """API credentials (Bearer token or Basic) are required and missing or wrong."""

    status_code = 401
    code = "unauthorized"


class LoginFailed(WebError):
    status_code = 401
    code = "login_failed"


class AdminRequired(WebError):
    """No valid admin session: the cookie is missing, forged, tampered with or expired."""

    status_code = 403
    code = "admin_required"


class TooManyAttempts(WebError):
    status_code = 429
    code = "too_many_attempts"


class PublishInProgress(WebError):
    status_code = 409
    code = "publish_in_progress"


class AlreadyPosted(WebError):
    status_code = 409
    code = "already_posted"


class AdminNotConfigured(WebError):
    """No admin password is configured: admin actions stay closed rather than run open."""

    status_code = 503
    code = "admin_not_configured"


class ServiceUnavailable(WebError):
    """Storage, the ledger or the AI service failed; details are logged, not sent to the client."""

    status_code = 503
    code = "service_unavailable"
