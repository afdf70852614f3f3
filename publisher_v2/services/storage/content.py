"""Fetching one image for analysis: bytes, a decode check, its sha256 and the best link the storage offers.

Shared by the CLI workflow and the web analyze endpoint, so both refuse the same corrupt files.
"""

from __future__ import annotations

import asyncio

from publisher_v2.domain.models import ImageContent
from publisher_v2.services.storage.base import Storage
from publisher_v2.utils.images import check_image, sha256_hex


async def fetch_image_content(storage: Storage, name: str) -> ImageContent:
    """Download `name`, check that it decodes (InvalidImageError otherwise), and get its link."""
    data = await storage.download_image(name)
    await asyncio.to_thread(check_image, data, name)
    return ImageContent(
        name=name,
        data=data,
        sha256=sha256_hex(data),
        temp_url=await storage.get_temporary_link(name),
        public_url=storage.has_public_links(),
    )
