"""Import upstream's dedup state (`posted.json`) into the ledger, once per ledger, so nothing it posted is posted again.

Upstream kept a JSON array (or `{"hashes": [...]}`) of the SHA-256 of each posted image's bytes under
`${XDG_CACHE_HOME:-~/.cache}/publisher_v2/posted.json`. The ledger is keyed by Dropbox's content hash (SHA-256
over the SHA-256 of each 4 MiB block), so an upstream hash H becomes SHA-256(bytes.fromhex(H)): exactly the
ledger key of the same image when it is at most 4 MiB (one block). A larger image cannot be mapped without its
bytes, so the upstream hashes are kept in the ledger too and `is_upstream_posted` lets the workflow recognise
such an image once it has downloaded it (then it is recorded under its real key and skipped).

The "imported once" marker lives in the ledger itself, on SQLite and PostgreSQL alike (schema version 3: a
`ledger_imports` row keyed by source, upstream's hashes in `upstream_hashes`). The import is one transaction
whose primary key lets exactly one of racing processes, on any host, import (`PostLedger.record_import`). A
corrupt file is reported and skipped, never fatal, and tried again next time (so a fixed file is still imported).

Earlier versions kept the marker as a file beside a SQLite ledger (`<ledger>.upstream-import.json`). Such a file
is read once, moved into the ledger (its hashes kept, nothing imported twice) and renamed `<...>.moved`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from publisher_v2.ledger.post_ledger import PostLedger
from publisher_v2.ledger.records import ImportRecord
from publisher_v2.utils.logging import log_json

logger = logging.getLogger("publisher_v2.state.upstream")

#: The name the imported rows carry (upstream never recorded which file a hash belonged to).
IMPORTED_NAME = "(posted by upstream publisher_v2)"
#: The ledger's key for this import: one import of upstream's posted.json per ledger, whatever its path.
SOURCE = "upstream posted.json"
#: What the old marker file is renamed to once moved into the ledger.
MOVED_SUFFIX = ".moved"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

#: The per-platform results an imported (or recognised) upstream post is recorded with.
UPSTREAM_RESULTS: Dict[str, Any] = {"upstream": {"success": True, "post_id": None, "error": None}}


def upstream_posted_path(env: Optional[Mapping[str, str]] = None) -> Path:
    """Where upstream kept posted.json: `$XDG_CACHE_HOME/publisher_v2/`, default `~/.cache/publisher_v2/`."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "publisher_v2" / "posted.json"


def legacy_marker_path(location: Union[Path, str]) -> Optional[Path]:
    """The marker file earlier versions wrote beside a SQLite ledger (None for a PostgreSQL URL)."""
    if not isinstance(location, Path):
        return None
    return location.with_name(location.name + ".upstream-import.json")


def ledger_key(upstream_hash: str) -> str:
    """The ledger's key (Dropbox content hash) of an image of at most 4 MiB whose SHA-256 is `upstream_hash`."""
    return hashlib.sha256(bytes.fromhex(upstream_hash)).hexdigest()


def read_posted(path: Path) -> Tuple[List[str], int]:
    """(valid hashes, count of entries that are not SHA-256 hex) of upstream's file; ValueError if corrupt."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    except RecursionError:  # arrays nested thousands deep: not upstream's format, and no stack for it
        raise ValueError("nested too deeply to be upstream's list of hashes") from None
    if isinstance(data, dict) and isinstance(data.get("hashes"), list):
        data = data["hashes"]
    if not isinstance(data, list):
        raise ValueError("not a JSON array of hashes nor an object with a 'hashes' array")
    hashes, invalid = [], 0
    for item in data:
        text = item.strip().lower() if isinstance(item, str) else ""  # never str() a nested value
        if _HEX64.match(text):
            hashes.append(text)
        else:
            invalid += 1
    return sorted(set(hashes)), invalid


@dataclass
class UpstreamImport:
    """What one attempt to import posted.json found: `imported` (this call did it), `already_imported` (an
    earlier import, maybe by another process or host, did), `absent` (no file) or `corrupt` (not imported)."""

    status: str
    path: Path
    record: Optional[ImportRecord] = None
    error: Optional[str] = None


def import_posted_file(ledger: PostLedger, path: Optional[Path] = None) -> UpstreamImport:
    """Import `path` (default: upstream's posted.json) into `ledger` unless the ledger already has.

    Logs `upstream_state_imported` (the importing call only) or `upstream_state_corrupt`. A ledger failure
    raises (StorageError, or ConfigurationError when it cannot be opened).
    """
    source = Path(path) if path is not None else upstream_posted_path()
    record = ledger.import_record(SOURCE)
    if record is not None:
        return UpstreamImport("already_imported", source, record)
    if not source.is_file():
        return UpstreamImport("absent", source)
    try:
        hashes, invalid = read_posted(source)
    except ValueError as exc:
        log_json(logger, logging.WARNING, "upstream_state_corrupt", path=str(source), error=str(exc))
        return UpstreamImport("corrupt", source, error=str(exc))
    record = ledger.record_import(
        SOURCE,
        str(source),
        hashes,
        [ledger_key(h) for h in hashes],
        UPSTREAM_RESULTS,
        image_name=IMPORTED_NAME,
        invalid=invalid,
    )
    if not record.new:  # another process committed the import between our check and our transaction
        return UpstreamImport("already_imported", source, record)
    log_json(
        logger,
        logging.INFO,
        "upstream_state_imported",
        path=str(source),
        hashes=record.hashes,
        imported=record.imported,
        already_known=record.already_known,
        invalid=record.invalid,
    )
    return UpstreamImport("imported", source, record)


def move_legacy_marker(ledger: PostLedger) -> Optional[ImportRecord]:
    """Move an earlier version's marker file into `ledger` (once), then rename the file `<marker>.moved`.

    The record in the ledger, or None when there is no readable marker (an unreadable one is reported and left:
    the next import of posted.json, which skips rows already there, takes its place).
    """
    marker = legacy_marker_path(ledger.path)
    if marker is None or not marker.is_file():
        return None
    record = ledger.import_record(SOURCE)
    if record is None:
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
            hashes = sorted({str(h).lower() for h in data["sha256"] if _HEX64.match(str(h).lower())})
            imported, invalid = int(data.get("imported", 0)), int(data.get("invalid", 0))
            path = str(data.get("source") or upstream_posted_path())
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            log_json(logger, logging.WARNING, "upstream_state_marker_unreadable", path=str(marker), error=str(exc))
            return None
        record = ledger.record_import(
            SOURCE,
            path,
            hashes,
            [ledger_key(h) for h in hashes],  # normally all present already; a missing one is recorded now
            UPSTREAM_RESULTS,
            image_name=IMPORTED_NAME,
            invalid=invalid,
            imported_before=imported,
        )
    moved = marker.with_name(marker.name + MOVED_SUFFIX)
    try:
        os.replace(marker, moved)
    except FileNotFoundError:  # another process, opening the same ledger, moved it first
        return record
    except OSError as exc:  # the ledger's record decides from now on; the file is only left behind
        log_json(logger, logging.WARNING, "upstream_state_marker_not_renamed", path=str(marker), error=str(exc))
        return record
    log_json(logger, logging.INFO, "upstream_state_marker_moved", path=str(marker), moved_to=str(moved),
             hashes=record.hashes)
    return record


def import_upstream_posted(ledger: PostLedger, path: Optional[Path] = None) -> Optional[int]:
    """On opening a ledger: move an old marker file in, then import posted.json once. The number of new rows,
    or None when nothing was imported (no file, already imported, corrupt, or a ledger failure). Never raises.

    Without posted.json and without an old marker nothing is read, and the ledger is not even opened.
    """
    source = Path(path) if path is not None else upstream_posted_path()
    marker = legacy_marker_path(ledger.path)
    if not source.is_file() and not (marker is not None and marker.is_file()):
        return None
    try:
        move_legacy_marker(ledger)
        outcome = import_posted_file(ledger, source)
        if outcome.record is not None and marker is not None and marker.is_file():
            move_legacy_marker(ledger)  # an unreadable old marker: the ledger's record replaces it now
    except Exception as exc:  # noqa: BLE001 - a ledger failure must not stop the app here; tried again next time
        log_json(logger, logging.WARNING, "upstream_state_import_failed", path=str(source), error=str(exc))
        return None
    if outcome.status != "imported" or outcome.record is None:
        return None
    return outcome.record.imported


def is_upstream_posted(ledger: PostLedger, sha256: str) -> bool:
    """True when upstream's posted.json, as imported into `ledger`, lists the image whose bytes hash to `sha256`."""
    return ledger.upstream_posted(sha256)
