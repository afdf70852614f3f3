"""The web API's request and response bodies, as pydantic models.

They are the contract `/openapi.json` publishes (error bodies included), so every route names its models here
and nowhere builds a JSON dict by hand.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: upstream's `detail`, plus a human message and a stable machine code."""

    detail: Union[str, List[Dict[str, Any]]] = Field(
        description="Upstream's text (e.g. 'Image not found'); for 422, the list of validation errors."
    )
    error: str = Field(description="What went wrong, for humans.")
    code: str = Field(description="Stable machine-readable code, e.g. image_not_found, admin_required.")


class LoginErrorResponse(ErrorResponse):
    """A refused login also reports the caller's admin state (false)."""

    admin: bool = False


class HealthResponse(BaseModel):
    status: str = "ok"


class RandomImageResponse(BaseModel):
    """One library image to show, with what its caption sidecar already knows (no image bytes were read)."""

    filename: str
    temp_url: str = Field(
        description="Where the page can load the image from (this app's image route locally)."
    )
    sha256: Optional[str] = Field(default=None, description="From the sidecar, when it records one.")
    caption: Optional[str] = None
    sd_caption: Optional[str] = None
    metadata: Optional[Dict[str, Any]] = None
    has_sidecar: bool


class AnalyzeResponse(BaseModel):
    """What the analyser saw and the captions it wrote (or what the existing sidecar already held)."""

    filename: str
    description: str
    mood: str
    tags: List[str]
    nsfw: bool
    caption: str
    sd_caption: Optional[str] = None
    sidecar_written: bool
    from_sidecar: bool = Field(
        default=False, description="True when an existing sidecar answered (no model call)."
    )


class PublishRequest(BaseModel):
    """Optional body of a publish: restrict it to some of the enabled platforms (unknown keys are ignored)."""

    platforms: Optional[List[str]] = None


class PlatformResult(BaseModel):
    success: bool
    post_id: Optional[str] = None
    error: Optional[str] = None


class PublishResponse(BaseModel):
    """Per-platform outcomes: a failed platform is a result here, not an HTTP error."""

    filename: str
    results: Dict[str, PlatformResult]
    archived: bool
    any_success: bool


class LoginRequest(BaseModel):
    """Unknown keys are ignored, as upstream did; the body itself is bounded by the route."""

    password: str


class AdminResponse(BaseModel):
    """Login, logout and status all answer with the caller's admin state."""

    admin: bool
    error: Optional[str] = None


class AdminStatusResponse(BaseModel):
    admin: bool
    error: Optional[str] = None
    configured: bool = Field(description="False when no admin password is set: admin actions answer 503.")
    platforms: List[str] = Field(
        default_factory=list, description="The platforms a publish goes to (listed for an admin only)."
    )


class PublishErrorResponse(ErrorResponse):
    """A publish that failed AFTER platforms were called: what each one answered, so nobody re-posts blind."""

    filename: Optional[str] = None
    results: Dict[str, PlatformResult] = Field(
        default_factory=dict, description="Per-platform answers received before the failure."
    )
