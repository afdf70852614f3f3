"""Request ids and loggable user input: what may be bound, echoed and logged, decided in one place.

Request ids: `X-Request-ID` (configurable) is used when it is 1..128 characters of `[A-Za-z0-9._-]`: UUIDs,
nginx `$request_id` (32 hex), ALB-style `1-67891233-abcdef012345678912345678` and dotted ids pass. Anything
else (empty, over-long, CR/LF, spaces, quotes, non-ASCII, and an AWS trace header `Root=1-...;Parent=...`,
whose `=` and `;` are outside the set) is replaced by a fresh UUID4 (`runtime.ids`) and neither echoed nor
logged. With the manifest's `log.redact`, an id the app's redaction would change (it holds a secret) is refused
too.

Path parameters (e.g. `filename`) are user input: a value of 1..128 characters of `[A-Za-z0-9._~@+,() -]` is
logged as is; any other value is logged escaped (`\\xNN`, `\\uNNNN`, so a backslash in the result always
starts an escape) and cut to 128 characters with `...` appended when cut.
"""

from __future__ import annotations

from re import compile as regex
from typing import Callable, List, Optional

from autoinstrument.runtime.ids import new_request_id  # noqa: F401  (the fresh id, shared with scopes)

MAX_ID_LENGTH = 128
MAX_PARAM_LENGTH = 128

_SAFE_ID = regex(rb"[A-Za-z0-9._-]{1,128}")  # MAX_ID_LENGTH
_SAFE_PARAM = regex(r"[A-Za-z0-9._~@+,() -]{1,128}")  # MAX_PARAM_LENGTH
_SAFE_CHAR = regex(r"[A-Za-z0-9._~@+,() -]")


def request_id_from(raw: bytes) -> Optional[str]:
    """The request id in a header value when it is safe to bind, echo and log; None otherwise."""
    if _SAFE_ID.fullmatch(raw) is None:
        return None
    return raw.decode("ascii")


def refusing_redacted(redact: Callable[[str], str], validate: Callable[[bytes], Optional[str]]):
    """`validate`, also refusing an id the app's redaction function would change (it holds a secret): such an
    id is replaced by a fresh one, never echoed, never logged."""

    def validate_redacted(raw: bytes) -> Optional[str]:
        cid = validate(raw)
        if cid is None:
            return None
        try:
            return cid if redact(cid) == cid else None
        except Exception:
            return None

    return validate_redacted


def loggable(value: str, limit: int = MAX_PARAM_LENGTH) -> str:
    """`value` when it is short and plain; otherwise escaped and cut (see the module docstring)."""
    if _SAFE_PARAM.fullmatch(value) is not None:
        return value
    out: List[str] = []
    size = 0
    for ch in value:
        if _SAFE_CHAR.fullmatch(ch) is not None:
            piece = ch
        else:
            code = ord(ch)
            piece = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
        if size + len(piece) > limit:
            out.append("...")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)

