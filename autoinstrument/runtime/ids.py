"""Fresh correlation ids: random UUID4 strings, made in batches (a scope or a request without one gets one).

Why not `uuid.uuid4()`: importing `uuid` at start-up and one `os.urandom` syscall per id cost more than the rest
of a request's telemetry.
"""

from __future__ import annotations

import os
from typing import List

_ID_BATCH = 64
_id_pool: List[str] = []


def _refill_ids() -> None:
    """Format a batch of UUID4s from ONE `os.urandom` call (a syscall per request cost more than the rest)."""
    raw = bytearray(os.urandom(16 * _ID_BATCH))
    fresh = []
    for at in range(0, len(raw), 16):
        raw[at + 6] = (raw[at + 6] & 0x0F) | 0x40  # version 4
        raw[at + 8] = (raw[at + 8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw[at : at + 16].hex()
        fresh.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    _id_pool.extend(fresh)


def new_request_id() -> str:
    """A random UUID4 string, from a pool refilled in batches (`list.pop` is atomic: threads may share it)."""
    try:
        return _id_pool.pop()
    except IndexError:
        _refill_ids()
        return _id_pool.pop()


if hasattr(os, "register_at_fork"):  # a forked worker must not hand out the ids its parent will hand out
    os.register_at_fork(after_in_child=_id_pool.clear)
