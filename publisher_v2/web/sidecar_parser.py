"""The sidecar parser under its historical web path; the format lives in `publisher_v2.utils.captions`."""

from __future__ import annotations

from publisher_v2.utils.captions import parse_sidecar_text

__all__ = ["parse_sidecar_text"]
