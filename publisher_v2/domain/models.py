"""Plain dataclasses passed between stages: what an image is, what the AI saw, what got published."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional


@dataclass(frozen=True)
class ImageEntry:
    """One image in the library, as listed (no bytes read).

    `content_hash` is the Dropbox content hash (sha256 over 4 MiB block hashes) when the listing already knows it;
    LocalStorage fills it lazily from its (path, size, mtime) cache.
    """

    name: str
    size: int
    modified: float
    content_hash: Optional[str] = None


@dataclass
class ImageAnalysis:
    """What the vision analyser saw. Lists stay lists; optional fields are None when unknown."""

    description: str
    mood: str
    tags: List[str] = field(default_factory=list)
    nsfw: bool = False
    safety_labels: List[str] = field(default_factory=list)
    subject: Optional[str] = None
    style: Optional[str] = None
    lighting: Optional[str] = None
    camera: Optional[str] = None
    clothing_or_accessories: Optional[str] = None
    aesthetic_terms: List[str] = field(default_factory=list)
    pose: Optional[str] = None
    composition: Optional[str] = None
    background: Optional[str] = None
    color_palette: List[str] = field(default_factory=list)
    width: Optional[int] = None
    height: Optional[int] = None
    orientation: Optional[str] = None
    brightness: Optional[float] = None
    exif: Dict[str, str] = field(default_factory=dict)
    model_version: str = "unknown"


@dataclass
class CaptionSpec:
    """How to write a caption for one platform."""

    platform: str = "generic"
    style: str = "minimal_poetic"
    hashtags: str = ""
    max_length: int = 2200
    extra_instructions: str = ""


@dataclass
class CaptionResult:
    """The caption generator's output: a caption and, when enabled, a Stable-Diffusion caption."""

    caption: str
    sd_caption: Optional[str] = None
    model_version: str = "unknown"
    fallback_used: bool = False


@dataclass
class PublishResult:
    """The outcome of one platform's publish. A failure is a value, never an exception."""

    success: bool
    platform: str
    post_id: Optional[str] = None
    error: Optional[str] = None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class WorkflowResult:
    """What one run of the workflow did."""

    success: bool
    image_name: Optional[str]
    caption: Optional[str] = None
    publish_results: Dict[str, PublishResult] = field(default_factory=dict)
    archived: bool = False
    error: Optional[str] = None
    correlation_id: Optional[str] = None
    finished_at: datetime = field(default_factory=_utc_now)
    sd_caption: Optional[str] = None
    analysis: Optional[ImageAnalysis] = None
    sidecar_written: bool = False
    preview: Optional[Dict[str, Any]] = None
    #: Things the operator should read on stdout (e.g. a `--select` re-post of a posted image).
    notices: List[str] = field(default_factory=list)
    #: Images of posts waiting for the operator after this run (partial failures, unfinished posts).
    attention: List[str] = field(default_factory=list)

    @property
    def any_success(self) -> bool:
        return any(r.success for r in self.publish_results.values())


@dataclass(frozen=True)
class ImageContent:
    """A fetched image: its bytes, and a link a remote service could fetch it from when the storage has one."""

    name: str
    data: bytes
    sha256: str
    temp_url: Optional[str] = None
    public_url: bool = False
