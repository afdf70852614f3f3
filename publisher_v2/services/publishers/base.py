"""The publisher base class: one platform, one `publish` call, a PublishResult whatever happens."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, Optional

from publisher_v2.domain.models import PublishResult


class Publisher(ABC):
    """Publishes one image with its caption to one platform.

    `publish` receives a path to the publisher's OWN copy of the image (it may resize it in place) and must not
    raise for platform failures: it returns PublishResult(success=False, error=...) instead.
    """

    platform_name: str = "generic"

    def is_enabled(self) -> bool:
        return True

    @abstractmethod
    async def publish(
        self, image_path: str, caption: str, context: Optional[Dict[str, Any]] = None
    ) -> PublishResult:
        """Publish `image_path` with `caption`; `context` carries the analysis, sd_caption, image name, links."""
