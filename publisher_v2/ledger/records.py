"""What the ledger hands out: its entries, per-platform outcomes, import records, claim conflicts and owners.

A claim's owner is 'host:pid:random' (a CLI run) or 'web:host:pid:random' (one web request), so the operator
command can tell a dead local run from a live one.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from publisher_v2.domain.errors import StorageError
from publisher_v2.ledger.schema import FAILED, POSTED, SENDING


def readable_time(iso: str) -> str:
    """'2024-05-01 12:00:00 UTC' from a stored timestamp (for messages people read)."""
    return iso[:19].replace("T", " ") + " UTC"


def _process_owner() -> str:
    """host:pid:random, so the operator command can tell a dead local run from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


#: A claim's owner after the run that held it handed it over (a web request that ended): gone, whatever its pid.
RELEASED_PREFIX = "released:"


def request_owner() -> str:
    """The owner of one web request's claims: 'web:host:pid:random'. Not a bare pid (the worker outlives the
    request), so a claim the request could not hand over (ledger down) is never 'alive': it expires by the TTL."""
    return f"web:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_alive(owner: Optional[str]) -> Optional[bool]:
    """True/False for an owner on this host (its pid exists or not); None when it cannot be told."""
    if not owner:
        return None
    if owner.startswith(RELEASED_PREFIX):
        return False
    parts = owner.split(":")
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return None
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


class ClaimConflict(StorageError):
    """Another run holds the image, or it was posted already; nothing was touched."""

    def __init__(self, message: str, content_hash: str, status: str, posted_at: Optional[str] = None) -> None:
        super().__init__(message)
        self.content_hash = content_hash
        self.status = status
        self.posted_at = posted_at


class ImageBusy(ClaimConflict):
    """A live claim of another run (or of a run whose outcome is still unresolved)."""


class ImageAlreadyPosted(ClaimConflict):
    """The image is recorded as posted (and re-posting was not asked for)."""


@dataclass
class PlatformOutcome:
    """One platform's recorded outcome for the current attempt of a post."""

    platform: str
    state: str
    post_id: Optional[str] = None
    error: Optional[str] = None
    updated_at: Optional[str] = None


@dataclass
class LedgerEntry:
    """An image row with its per-platform outcomes (of the current attempt)."""

    content_hash: str
    image_name: str
    status: str
    claim_owner: Optional[str]
    claimed_at: Optional[str]
    posted_at: Optional[str]
    attempt: int
    archive_state: Optional[str]
    reason: Optional[str] = None
    platforms: Dict[str, PlatformOutcome] = field(default_factory=dict)

    @property
    def unknown(self) -> List[str]:
        """Platforms whose run died between sending and recording: maybe posted, never re-sent by itself."""
        return sorted(p for p, o in self.platforms.items() if o.state == SENDING)

    @property
    def posted_platforms(self) -> List[str]:
        return sorted(p for p, o in self.platforms.items() if o.state == POSTED)

    @property
    def failed_platforms(self) -> List[str]:
        """Platforms whose send failed (recorded): `ledger retry` sends these again."""
        return sorted(p for p, o in self.platforms.items() if o.state == FAILED)

    def as_dict(self) -> Dict[str, Any]:
        record = {k: v for k, v in self.__dict__.items() if k != "platforms"}
        record["owner_alive"] = owner_alive(self.claim_owner)
        record["platforms"] = {p: dict(o.__dict__) for p, o in sorted(self.platforms.items())}
        return record


@dataclass
class ImportRecord:
    """One import of outside state (upstream's posted.json) as the ledger records it: at most one per source."""

    source: str
    path: Optional[str]
    imported_at: str
    hashes: int
    imported: int
    invalid: int
    #: True for the call that made the import; False when an earlier one (any process, any host) had.
    new: bool = False

    @property
    def already_known(self) -> int:
        """Hashes whose image the ledger knew before the import (it left their rows as they were)."""
        return self.hashes - self.imported


