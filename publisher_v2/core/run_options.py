"""What one workflow run works on: the options it was started with and the image it selected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Set

from publisher_v2.domain.models import ImageEntry


@dataclass
class _Selection:
    """The image a run works on, and whether this run holds its ledger claim."""

    entry: ImageEntry
    content_hash: str
    claimed: bool
    #: Set when `--select` takes an image already recorded as posted (its documented bypass).
    reposting: bool = False


@dataclass
class _RunOptions:
    select_filename: Optional[str]
    dry_publish: bool
    preview_mode: bool
    debug: bool
    reuse_sidecar: bool = False
    allow_repost: bool = True
    skipped: Set[str] = field(default_factory=set)
    image_name: Optional[str] = None  # the image being processed, for the failure description

    @property
    def side_effects(self) -> bool:
        """False when the run must leave the library, the platforms and the ledger untouched."""
        return not (self.dry_publish or self.preview_mode)


def _describe_failure(exc: BaseException, image_name: Optional[str]) -> None:
    """Say on the exception what the run's result would have said (image, not successful, not archived), so
    whoever reports the failed run (the telemetry's summary, a caller) need not guess."""
    for attr, value in (("image_name", image_name), ("success", False), ("archived", False)):
        try:
            if getattr(exc, attr, None) is None:
                setattr(exc, attr, value)
        except Exception:  # noqa: BLE001, S110 - an exception type that refuses attributes keeps its own
            pass
