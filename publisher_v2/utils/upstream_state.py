"""Import upstream's dedup state (`posted.json`) into the ledger, once, so nothing it posted is posted again.

Upstream kept a JSON array (or `{"hashes": [...]}`) of the SHA-256 of each posted image's bytes under
`${XDG_CACHE_HOME:-~/.cache}/publisher_v2/posted.json`. The ledger is keyed by Dropbox's content hash (SHA-256
over the SHA-256 of each 4 MiB block), so an upstream hash H becomes SHA-256(bytes.fromhex(H)): exactly the
ledger key of the same image when it is at most 4 MiB (one block). A larger image cannot be mapped without its
bytes, so the upstream hashes are kept in the marker too and `is_upstream_posted` lets the workflow recognise
such an image once it has downloaded it (then it is recorded under its real key and skipped).

Only the ledger's public `get` and `record_post` are used. A marker file next to the ledger, created exclusively
before the import, makes it happen once per ledger (and once across racing processes); a corrupt file is
reported and skipped, never fatal, and tried again next time (so a fixed file is still imported).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Protocol, Tuple

from publisher_v2.utils.logging import log_json

logger = logging.getLogger("publisher_v2.state.upstream")

#: The name the imported rows carry (upstream never recorded which file a hash belonged to).
IMPORTED_NAME = "(posted by upstream publisher_v2)"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_quiet = threading.local()


class Ledger(Protocol):
    path: Path

    def get(self, content_hash: str) -> Optional[Dict[str, Any]]: ...

    def record_post(self, content_hash: str, image_name: str, results: Dict[str, Any]) -> None: ...


def upstream_posted_path(env: Optional[Mapping[str, str]] = None) -> Path:
    """Where upstream kept posted.json: `$XDG_CACHE_HOME/publisher_v2/`, default `~/.cache/publisher_v2/`."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "publisher_v2" / "posted.json"


def marker_path(ledger_path: Path) -> Path:
    """The file that records that this ledger has imported upstream's state."""
    return ledger_path.with_name(ledger_path.name + ".upstream-import.json")


def ledger_key(upstream_hash: str) -> str:
    """The ledger's key (Dropbox content hash) of an image of at most 4 MiB whose SHA-256 is `upstream_hash`."""
    return hashlib.sha256(bytes.fromhex(upstream_hash)).hexdigest()


def read_posted(path: Path) -> Tuple[List[str], int]:
    """(valid hashes, count of entries that are not SHA-256 hex) of upstream's file; ValueError if corrupt."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("hashes"), list):
        data = data["hashes"]
    if not isinstance(data, list):
        raise ValueError("not a JSON array of hashes nor an object with a 'hashes' array")
    hashes, invalid = [], 0
    for item in data:
        text = str(item).strip().lower()
        if _HEX64.match(text):
            hashes.append(text)
        else:
            invalid += 1
    return sorted(set(hashes)), invalid


class _QuietPerRowEvents(logging.Filter):
    """Drops the ledger's per-row `ledger_post_recorded` events from the importing thread only: the import
    reports ONE event, whatever the number of hashes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(_quiet, "on", False) and '"ledger_post_recorded"' in record.getMessage())


def import_upstream_posted(ledger: Ledger, path: Optional[Path] = None) -> Optional[int]:
    """Import `path` (default: upstream's posted.json) into `ledger` once; the number of new rows, or None
    when nothing was imported (no file, already imported, corrupt, or a ledger failure). Never raises."""
    source = Path(path) if path is not None else upstream_posted_path()
    try:
        if not source.is_file():
            return None
        marker = marker_path(Path(ledger.path))
        if marker.exists():
            return None
        hashes, invalid = read_posted(source)
    except ValueError as exc:
        log_json(logger, logging.WARNING, "upstream_state_corrupt", path=str(source), error=str(exc))
        return None
    except OSError as exc:
        log_json(logger, logging.WARNING, "upstream_state_unreadable", path=str(source), error=str(exc))
        return None
    try:
        fd = os.open(str(marker), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # one importer, even across processes
    except FileExistsError:
        return None
    except OSError as exc:
        log_json(logger, logging.WARNING, "upstream_state_unreadable", path=str(marker), error=str(exc))
        return None
    try:
        imported = _record(ledger, hashes)
    except Exception as exc:  # noqa: BLE001 - a ledger failure must not stop the app; try again next time
        os.close(fd)
        marker.unlink(missing_ok=True)
        log_json(logger, logging.WARNING, "upstream_state_import_failed", path=str(source), error=str(exc))
        return None
    summary = {
        "source": str(source),
        "hashes": len(hashes),
        "imported": imported,
        "invalid": invalid,
        "sha256": hashes,  # for images over 4 MiB, whose ledger key is only known from their bytes
    }
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(summary, handle)
    log_json(
        logger,
        logging.INFO,
        "upstream_state_imported",
        path=str(source),
        hashes=len(hashes),
        imported=imported,
        already_known=len(hashes) - imported,
        invalid=invalid,
    )
    return imported


_imported_cache: Dict[Path, Tuple[int, FrozenSet[str]]] = {}
_cache_lock = threading.Lock()


def is_upstream_posted(ledger: Ledger, sha256: str) -> bool:
    """True when upstream's posted.json, as imported into `ledger`, lists the image whose bytes hash to `sha256`."""
    marker = marker_path(Path(ledger.path))
    try:
        stamp = marker.stat().st_mtime_ns
    except OSError:
        return False
    with _cache_lock:
        cached = _imported_cache.get(marker)
    if cached is None or cached[0] != stamp:
        try:
            known = frozenset(json.loads(marker.read_text(encoding="utf-8")).get("sha256", ()))
        except (OSError, ValueError, AttributeError):
            known = frozenset()
        cached = (stamp, known)
        with _cache_lock:
            _imported_cache[marker] = cached
    return sha256.lower() in cached[1]


#: The per-platform results an imported (or recognised) upstream post is recorded with.
UPSTREAM_RESULTS: Dict[str, Any] = {"upstream": {"success": True, "post_id": None, "error": None}}


def _record(ledger: Ledger, hashes: List[str]) -> int:
    """Record each hash not already in the ledger (a row there, posted or in flight, is left as it is)."""
    results = UPSTREAM_RESULTS
    state_logger = logging.getLogger("publisher_v2.state")
    quiet = _QuietPerRowEvents()
    state_logger.addFilter(quiet)
    _quiet.on = True
    imported = 0
    try:
        for upstream_hash in hashes:
            key = ledger_key(upstream_hash)
            if ledger.get(key) is None:
                ledger.record_post(key, IMPORTED_NAME, results)
                imported += 1
    finally:
        _quiet.on = False
        state_logger.removeFilter(quiet)
    return imported
