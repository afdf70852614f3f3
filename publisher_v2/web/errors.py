"""Expected web failures, each with its HTTP status, machine code and upstream `detail` text.

Services raise these; one exception handler in `app.py` turns them into an `ErrorResponse` body, so a route
never builds an error by hand and the status a failure gets is decided in exactly one place. `detail` is the text
upstream's clients already match on (`{"detail": "Image not found"}`); `message` may say more, for humans.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


class WebError(Exception):
    """An expected failure of a web request."""

    status_code = 500
    code = "internal_error"
    #: Upstream's `detail` for this failure; None → the message itself.
    upstream_detail: Optional[str] = None

    def __init__(self, message: str, headers: Optional[Dict[str, str]] = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers
        self.detail = detail if detail is not None else (self.upstream_detail or message)


class InvalidFilename(WebError):
    """Not a plain image file name (path separators, `..`, NUL, absolute, hidden, non-image extension)."""

    status_code = 422
    code = "invalid_filename"


class ImageNotFound(WebError):
    status_code = 404
    code = "image_not_found"
    upstream_detail = "Image not found"


class NoImages(WebError):
    status_code = 404
    code = "no_images"
    upstream_detail = "No images found"


class UnreadableImage(WebError):
    """The file exists but is not a readable image."""

    status_code = 422
    code = "unreadable_image"


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
    upstream_detail = "Unauthorized"


class LoginFailed(WebError):
    status_code = 401
    code = "login_failed"
    upstream_detail = "Invalid admin password"


class AdminRequired(WebError):
    """No valid admin session: the cookie is missing, forged, tampered with or expired."""

    status_code = 403
    code = "admin_required"
    upstream_detail = "Admin privileges required"


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
    upstream_detail = "Admin mode not configured"


class ServiceUnavailable(WebError):
    """Storage, the ledger or the AI service failed; details are logged, not sent to the client.

    500 with upstream's `Internal error`, as upstream answered every such failure.
    """

    status_code = 500
    code = "service_error"
    upstream_detail = "Internal error"


class InternalFailure(WebError):
    """An AI, storage or unexpected failure inside a route: 500 `Internal error`, as upstream answered.

    `code` tells which (`ai_error`, `storage_error`, `internal_error`); the cause goes to the log only.
    """

    status_code = 500
    upstream_detail = "Internal error"

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class PublishNotRecorded(WebError):
    """Platforms were called, then the ledger (or the library) failed: the answer says what each platform did.

    The post is handed over (or expires) for `publisher ledger list` / `retry`, never re-sent by itself.
    """

    status_code = 500
    code = "publish_not_recorded"

    def __init__(self, message: str, filename: str, results: Dict[str, Any]) -> None:
        super().__init__(message)
        self.filename = filename
        self.results = results
