"""The exception hierarchy: every expected failure is a SocialMediaPublisherError.

The CLI prints these as one line (no traceback); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SocialMediaPublisherError(Exception):
    """Base class of every expected, user-facing failure."""


class ConfigurationError(SocialMediaPublisherError):
    """The configuration is missing, unreadable or invalid (the message names file, section and key)."""


class StorageError(SocialMediaPublisherError):
    """The image library could not be read or written (the message names the path)."""


class AIServiceError(SocialMediaPublisherError):
    """The vision analyser or caption generator failed."""


class PublishingError(SocialMediaPublisherError):
    """A publisher failed; publishers turn this into a failed PublishResult, never a crash."""

