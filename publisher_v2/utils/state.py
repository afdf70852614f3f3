"""The ledger: the one truth, shared by every process, about which images are claimed, posting or posted.

A SQLite file in WAL mode (CLI runs and web workers on one machine), or a PostgreSQL database (several
machines): `ledger_stores.py` opens either. Every SQL statement of the application's state lives in this module,
written once for both databases, and concurrency comes from the database itself: one check-then-write
transaction per decision (BEGIN IMMEDIATE on SQLite, SERIALIZABLE on PostgreSQL), unique keys and
`INSERT ... ON CONFLICT` for the rest, never a process lock.

An image row moves claimed → publishing → posted. Each platform of a post gets its own outcome row:
'sending' is written BEFORE the platform is called, then 'posted' (with the platform's id) or 'failed'. A
'sending' row whose run died is an UNKNOWN outcome: nothing re-sends it automatically (at most once); the
operator command (`publisher ledger`) shows it and resolves it. A 'claimed' row older than the TTL belongs to
a run that died before publishing and may be retaken; a 'publishing' row never expires by itself (a later run
may take it over only when no outcome is unknown). The same ledger holds the web app's login failures and revoked
sessions (`SessionStore`), so every worker sees them.

Schema versions: a `schema_version` row says which migrations ran. `open_ledger_connection` is the single
place that opens a ledger file and brings it up to date; older files (version 1, no version row) migrate.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar, Union

from publisher_v2.core.exceptions import StorageError
from publisher_v2.utils.ledger_stores import BUSY_TIMEOUT_MS, LedgerStore, SQLiteStore, connect_wal, store_for
from publisher_v2.utils.logging import log_json

__all__ = ["BUSY_TIMEOUT_MS", "connect_wal"]  # re-exported: the storage's hash cache opens its file with them

#: A DB-API connection of the store (sqlite3, or psycopg behind the `?` translation).
Connection = Any

logger = logging.getLogger("publisher_v2.state")
_Self = TypeVar("_Self", bound="_LedgerFile")

CLAIMED = "claimed"
PUBLISHING = "publishing"
POSTED = "posted"
REJECTED = "rejected"

#: Per-platform outcome states.
SENDING = "sending"
FAILED = "failed"

#: archive_state of a posted image: still to be moved, moved, or not wanted (archive = false).
ARCHIVE_PENDING = "pending"
ARCHIVE_DONE = "done"
ARCHIVE_OFF = "off"

#: Verdicts of a claim attempt.
_CLAIMED_NEW, _REPOSTING, _WAS_POSTED, _BUSY = "claimed_new", "reposting", "was_posted", "busy"

_V1_IMAGES = """
CREATE TABLE IF NOT EXISTS posted_images (
    content_hash TEXT PRIMARY KEY,
    image_name   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('claimed', 'publishing', 'posted', 'rejected')),
    claim_owner  TEXT,
    claimed_at   TEXT,
    posted_at    TEXT,
    results      TEXT,
    reason       TEXT
)
"""

_V2_STATEMENTS = (
    "ALTER TABLE posted_images ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE posted_images ADD COLUMN archive_state TEXT",
    """CREATE TABLE IF NOT EXISTS platform_posts (
        content_hash TEXT NOT NULL,
        attempt      INTEGER NOT NULL,
        platform     TEXT NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('sending', 'posted', 'failed')),
        post_id      TEXT,
        error        TEXT,
        updated_at   TEXT NOT NULL,
        PRIMARY KEY (content_hash, attempt, platform)
    )""",
    """CREATE TABLE IF NOT EXISTS login_failures (
        scope TEXT NOT NULL,
        at    TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS login_failures_scope_at ON login_failures (scope, at)",
    """CREATE TABLE IF NOT EXISTS revoked_sessions (
        token_hash TEXT PRIMARY KEY,
        expires_at TEXT NOT NULL
    )""",
)

#: Version 3: imports of outside state (upstream's posted.json), recorded in the ledger itself so the "imported
#: once" marker is shared by every process and host (a file beside a SQLite ledger was not, and PostgreSQL has
#: no such file). The primary key on `source` is what lets exactly one importer win.
_V3_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS ledger_imports (
        source      TEXT PRIMARY KEY,
        path        TEXT,
        imported_at TEXT NOT NULL,
        hashes      INTEGER NOT NULL,
        imported    INTEGER NOT NULL,
        invalid     INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS upstream_hashes (
        sha256 TEXT PRIMARY KEY
    )""",
)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    """Fixed-width UTC ISO text, so SQL can compare timestamps as strings."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def readable_time(iso: str) -> str:
    """'2024-05-01 12:00:00 UTC' from a stored timestamp (for messages people read)."""
    return iso[:19].replace("T", " ") + " UTC"


def _migrate_to_v1(conn: Connection) -> None:
    conn.execute(_V1_IMAGES)


def _migrate_to_v2(conn: Connection) -> None:
    """Per-platform outcomes, attempts, archive state, and the admin session tables.

    Posted rows of version 1 keep their per-platform results as outcome rows; their archive state stays
    unknown (NULL), which no command treats as unfinished.
    """
    for statement in _V2_STATEMENTS:
        conn.execute(statement)
    rows = conn.execute(
        "SELECT content_hash, results, posted_at FROM posted_images WHERE status = ? AND results IS NOT NULL",
        (POSTED,),
    ).fetchall()
    for content_hash, results, posted_at in rows:
        try:
            decoded = json.loads(results)
        except ValueError:
            continue
        for platform, outcome in (decoded or {}).items():
            if not isinstance(outcome, dict):
                continue
            conn.execute(
                "INSERT INTO platform_posts"
                " (content_hash, attempt, platform, state, post_id, error, updated_at)"
                " VALUES (?, 1, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    content_hash,
                    platform,
                    POSTED if outcome.get("success") else FAILED,
                    outcome.get("post_id"),
                    outcome.get("error"),
                    posted_at or _iso(_utc_now()),
                ),
            )


def _migrate_to_v3(conn: Connection) -> None:
    """The import record and upstream's hashes (see `record_import`)."""
    for statement in _V3_STATEMENTS:
        conn.execute(statement)


#: Version 4: the web admin's live sessions. A session is a random id the server issued (only its SHA-256 is
#: stored); the signed cookie carries it, and a request is admin only while the id is live here. Logout deletes
#: the row, so no re-encoding of a logged-out cookie can name a live session (the old `revoked_sessions` list,
#: keyed by the cookie string as sent, could be dodged by re-encoding the signature).
_V4_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS admin_sessions (
        session_hash TEXT PRIMARY KEY,
        expires_at   TEXT NOT NULL
    )""",
)


def _migrate_to_v4(conn: Connection) -> None:
    """The web admin's server-side sessions (see `SessionStore.open_session`)."""
    for statement in _V4_STATEMENTS:
        conn.execute(statement)


#: (version, migration) in order. A later store (or an import of older state) appends here.
MIGRATIONS: List[Tuple[int, Callable[[Connection], None]]] = [
    (1, _migrate_to_v1),
    (2, _migrate_to_v2),
    (3, _migrate_to_v3),
    (4, _migrate_to_v4),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


class SchemaTooNew(StorageError):
    """The ledger was written by a newer program; this one must not touch it."""


def _schema_version(conn: Any, store: LedgerStore) -> int:
    if store.table_exists(conn, "schema_version"):
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0
    return 1 if store.table_exists(conn, "posted_images") else 0


def migrate(conn: Any, store: Optional[LedgerStore] = None) -> int:
    """Apply every migration newer than the ledger's version, in one transaction; return the version.

    Several processes may start on an old ledger at once: the store's migration lock (BEGIN IMMEDIATE, or a
    PostgreSQL advisory lock) lets one migrate while the others wait, then they read the new version and do
    nothing. The same MIGRATIONS build both databases.
    """
    store = store or SQLiteStore(":memory:")
    if store.table_exists(conn, "schema_version") and _schema_version(conn, store) == SCHEMA_VERSION:
        return SCHEMA_VERSION  # the common case: no write lock taken

    def work(conn: Any) -> int:
        current = _schema_version(conn, store)
        if current > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"Ledger {store.where}: schema version {current} is newer than this program's {SCHEMA_VERSION};"
                " upgrade publisher_v2"
            )
        for version, step in MIGRATIONS:
            if version > current:
                step(conn)
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        conn.execute("DELETE FROM schema_version")
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        return current

    current = store.migration(conn, work)
    if current < SCHEMA_VERSION:  # a new file is created quietly; an upgraded one is worth a line
        level = logging.INFO if current else logging.DEBUG
        log_json(logger, level, "ledger_migrated", from_version=current, to_version=SCHEMA_VERSION)
    return SCHEMA_VERSION


def open_ledger_connection(location: Union[LedgerStore, Path, str]) -> Any:
    """THE place a ledger is opened (a SQLite file in WAL mode, or PostgreSQL), schema brought up to date."""
    store = store_for(location)
    conn = store.connect()
    try:
        migrate(conn, store)
    except BaseException:
        conn.close()
        raise
    return conn


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


#: Keys per `IN (...)` query: under SQLite's oldest limit of 999 parameters.
_IN_CHUNK = 500


class _LedgerFile:
    """One connection to the ledger, shared by the threads of a process; each call is one short transaction.

    `location` is a SQLite file path, a postgresql:// URL or a LedgerStore (publisher_v2/utils/ledger_stores.py).
    """

    def __init__(self, location: Union[LedgerStore, Path, str], clock: Optional[Callable[[], datetime]] = None) -> None:
        self.store = store_for(location)
        #: What was given (a Path for SQLite, the URL for PostgreSQL): another store class opens the same ledger.
        self.path = self.store.location
        self._clock = clock or _utc_now
        self._lock = threading.RLock()
        self._conn: Optional[Connection] = None
        self._opened = False
        self.store.prepare()

    @property
    def where(self) -> str:
        """The ledger's location, safe to print (no password)."""
        return self.store.where

    def _connection(self) -> Connection:
        if self._conn is None:
            try:
                self._conn = open_ledger_connection(self.store)
            except self.store.errors as exc:
                if self._opened:  # it worked before: the server went away mid-run
                    raise
                raise self.store.opening_failed(exc) from None
            self._opened = True
        return self._conn

    def _run(self, action: str, work: Callable[[Connection], Any]) -> Any:
        """Run `work` under the instance lock; database failures become StorageError naming the ledger."""
        with self._lock:
            try:
                return work(self._connection())
            except self.store.errors as exc:
                if self._conn is not None and self.store.connection_lost(self._conn):
                    self._drop_connection()
                raise StorageError(f"Ledger {self.where}: {action} failed: {exc}") from None

    def _write(self, action: str, work: Callable[[Connection], Any]) -> Any:
        """`work` as one check-then-write transaction (BEGIN IMMEDIATE on SQLite, SERIALIZABLE on PostgreSQL)."""
        return self._run(action, lambda conn: self.store.transaction(conn, work))

    def _drop_connection(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone either way
            pass
        self._conn = None

    def _now(self) -> str:
        return _iso(self._clock())

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostLedger(_LedgerFile):
    """The dedup ledger. Every method is one short transaction and is safe from several threads."""

    def __init__(
        self,
        path: Union[LedgerStore, Path, str],
        claim_ttl_seconds: int = 3600,
        *,
        clock: Optional[Callable[[], datetime]] = None,
        import_upstream: bool = True,
    ) -> None:
        super().__init__(path, clock)
        self.claim_ttl = timedelta(seconds=claim_ttl_seconds)
        #: Identifies this ledger instance's claims; release/abandon touch only rows carrying it.
        self.owner = _process_owner()
        if import_upstream:  # upstream's posted.json, once per ledger (migrate-to-postgres imports it itself)
            from publisher_v2.utils.upstream_state import import_upstream_posted

            import_upstream_posted(self)

    def _stale_before(self) -> str:
        return _iso(self._clock() - self.claim_ttl)

    # -- reads -----------------------------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self._run("schema_version", lambda c: _schema_version(c, self.store)))

    def journal_mode(self) -> str:
        """The journal mode SQLite reports for this file ('wal'); 'postgresql N' for PostgreSQL."""
        return self._run("journal_mode", self.store.describe_mode)

    def known_hashes(self) -> Set[str]:
        """Hashes a run must not pick: posted (ever), rejected, publishing, and claims younger than the TTL."""

        def work(conn: Connection) -> Set[str]:
            rows = conn.execute(
                "SELECT content_hash FROM posted_images WHERE status != ? OR claimed_at > ? OR posted_at IS NOT NULL",
                (CLAIMED, self._stale_before()),
            )
            return {row[0] for row in rows}

        return self._run("known_hashes", work)

    def known_among(self, hashes: Sequence[str]) -> Set[str]:
        """Those of `hashes` a run must not pick (the `known_hashes` rule), by primary-key lookups: the cost
        grows with len(hashes), not with the ledger's size (the web's random image asks for a few at a time)."""
        wanted = sorted(set(hashes))

        def work(conn: Connection) -> Set[str]:
            found: Set[str] = set()
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT content_hash FROM posted_images WHERE content_hash IN ({marks})"
                    " AND (status != ? OR claimed_at > ? OR posted_at IS NOT NULL)",
                    (*chunk, CLAIMED, self._stale_before()),
                )
                found.update(row[0] for row in rows)
            return found

        return self._run("known_among", work) if wanted else set()

    def get(self, content_hash: str) -> Optional[Dict[str, Any]]:
        """The row for `content_hash` as a dict (results decoded), or None."""

        def work(conn: Connection) -> Optional[Dict[str, Any]]:
            cursor = conn.execute("SELECT * FROM posted_images WHERE content_hash = ?", (content_hash,))
            row = cursor.fetchone()
            if row is None:
                return None
            record = dict(zip([d[0] for d in cursor.description], row))
            record["results"] = json.loads(record["results"]) if record["results"] else None
            return record

        return self._run("get", work)

    def posted_count(self) -> int:
        """How many images are recorded as posted."""
        return int(
            self._run(
                "posted_count",
                lambda c: c.execute("SELECT COUNT(*) FROM posted_images WHERE status = ?", (POSTED,)).fetchone()[0],
            )
        )

    @staticmethod
    def _entry_from(conn: Connection, row: Sequence[Any]) -> LedgerEntry:
        entry = LedgerEntry(*row)
        for platform, state, post_id, error, updated_at in conn.execute(
            "SELECT platform, state, post_id, error, updated_at FROM platform_posts"
            " WHERE content_hash = ? AND attempt = ? ORDER BY platform",
            (entry.content_hash, entry.attempt),
        ):
            entry.platforms[platform] = PlatformOutcome(platform, state, post_id, error, updated_at)
        return entry

    _ENTRY_COLUMNS = (
        "content_hash, image_name, status, claim_owner, claimed_at, posted_at, attempt, archive_state, reason"
    )

    def entry(self, content_hash: str) -> Optional[LedgerEntry]:
        """The image row and its per-platform outcomes, or None."""

        def work(conn: Connection) -> Optional[LedgerEntry]:
            row = conn.execute(
                f"SELECT {self._ENTRY_COLUMNS} FROM posted_images WHERE content_hash = ?", (content_hash,)
            ).fetchone()
            return None if row is None else self._entry_from(conn, row)

        return self._run("entry", work)

    def find(self, key: str) -> List[LedgerEntry]:
        """Entries whose content hash starts with `key` or whose image name is `key` (for the operator)."""

        def work(conn: Connection) -> List[LedgerEntry]:
            rows = conn.execute(
                f"SELECT {self._ENTRY_COLUMNS} FROM posted_images"
                " WHERE image_name = ? OR (length(CAST(? AS TEXT)) >= 8"
                " AND substr(content_hash, 1, length(CAST(? AS TEXT))) = ?)"
                " ORDER BY content_hash",
                (key, key, key, key),
            ).fetchall()
            return [self._entry_from(conn, row) for row in rows]

        return self._run("find", work)

    def unfinished(self) -> List[LedgerEntry]:
        """Posts the operator may have to look at: claims, publishing rows, posted images not yet archived."""

        def work(conn: Connection) -> List[LedgerEntry]:
            rows = conn.execute(
                f"SELECT {self._ENTRY_COLUMNS} FROM posted_images"
                " WHERE status IN (?, ?) OR (status = ? AND archive_state = ?) ORDER BY claimed_at, content_hash",
                (CLAIMED, PUBLISHING, POSTED, ARCHIVE_PENDING),
            ).fetchall()
            return [self._entry_from(conn, row) for row in rows]

        return self._run("unfinished", work)

    def partly_failed(self, platforms: Optional[Sequence[str]] = None) -> List[LedgerEntry]:
        """Finished posts with a platform recorded as 'failed' (a partial failure): `ledger retry` re-sends those.

        With `platforms`, only failures on one of them count (a platform switched off since cannot be re-sent).
        """

        def work(conn: Connection) -> List[LedgerEntry]:
            rows = conn.execute(
                f"SELECT {self._ENTRY_COLUMNS} FROM posted_images p WHERE p.status = ? AND EXISTS ("
                "SELECT 1 FROM platform_posts o WHERE o.content_hash = p.content_hash AND o.attempt = p.attempt"
                " AND o.state = ?) ORDER BY p.posted_at, p.content_hash",
                (POSTED, FAILED),
            ).fetchall()
            return [self._entry_from(conn, row) for row in rows]

        entries = self._run("partly_failed", work)
        if platforms is None:
            return entries
        wanted = set(platforms)
        return [e for e in entries if wanted & set(e.failed_platforms)]

    def is_stale(self, entry: LedgerEntry) -> bool:
        """Whether the run holding `entry` is gone: a dead local process, or a claim older than the TTL."""
        alive = owner_alive(entry.claim_owner)
        if alive is not None:
            return not alive
        return (entry.claimed_at or "") <= self._stale_before()

    # -- claim lifecycle -------------------------------------------------------------------------------------

    def claim(self, content_hash: str, image_name: str) -> bool:
        """Take `content_hash` for this run. True only for the one caller that gets it.

        Free hashes and 'claimed' rows older than the TTL can be taken; anything else (a live claim, ours
        included, or a publishing/posted/rejected row) cannot.
        """
        return self._claim(content_hash, image_name, repost=False)[0] == _CLAIMED_NEW

    def claim_selected(self, content_hash: str, image_name: str, *, allow_repost: bool) -> bool:
        """Claim an image chosen by name (`--select`, web publish). Raises ClaimConflict when it cannot.

        A posted (or rejected) image is taken for a new attempt only with `allow_repost` (`--select`'s
        documented bypass); returns True in that case, so the caller can say it re-posts.
        """
        verdict, status, posted_at = self._claim(content_hash, image_name, repost=allow_repost)
        if verdict in (_CLAIMED_NEW, _REPOSTING):
            return verdict == _REPOSTING
        if verdict == _WAS_POSTED:
            raise ImageAlreadyPosted(
                f"Image {image_name} was already posted on {readable_time(posted_at or '')}",
                content_hash,
                status,
                posted_at,
            )
        raise ImageBusy(
            f"Image {image_name} is being published by another run ({status}); see `publisher ledger list`",
            content_hash,
            status,
            posted_at,
        )

    def _claim(self, content_hash: str, image_name: str, *, repost: bool) -> Tuple[str, str, Optional[str]]:
        """(verdict, status, posted_at): claimed fresh, re-posting (with `repost`), was posted, or busy.

        A claim older than the TTL is retaken, except that one left by a dying re-post of a posted image is
        retaken only with `repost`: expiry never lets auto-selection or the web post a posted image again.
        """
        now = self._now()

        def work(conn: Connection) -> Tuple[str, str, Optional[str]]:
            row = conn.execute(
                "SELECT status, claimed_at, claim_owner, posted_at FROM posted_images WHERE content_hash = ?",
                (content_hash,),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO posted_images"
                    " (content_hash, image_name, status, claim_owner, claimed_at) VALUES (?, ?, ?, ?, ?)",
                    (content_hash, image_name, CLAIMED, self.owner, now),
                )
                return _CLAIMED_NEW, CLAIMED, None
            status, claimed_at, previous_owner, posted_at = row
            if repost and status in (POSTED, REJECTED):
                conn.execute(
                    "UPDATE posted_images SET image_name = ?, status = ?, claim_owner = ?, claimed_at = ?,"
                    " attempt = attempt + 1, reason = NULL WHERE content_hash = ?",
                    (image_name, CLAIMED, self.owner, now, content_hash),
                )
                return _REPOSTING, status, posted_at
            stale_claim = status == CLAIMED and (claimed_at or "") <= self._stale_before()
            if posted_at and not repost and (status == POSTED or stale_claim):
                return _WAS_POSTED, status, posted_at
            if not stale_claim:
                return _BUSY, status, posted_at
            conn.execute(
                "UPDATE posted_images SET image_name = ?, claim_owner = ?, claimed_at = ? WHERE content_hash = ?",
                (image_name, self.owner, now, content_hash),
            )
            log_json(
                logger,
                logging.WARNING,
                "ledger_stale_claim_taken",
                content_hash=content_hash,
                image_name=image_name,
                previous_owner=previous_owner,
                claimed_at=claimed_at,
            )
            return (_REPOSTING if posted_at else _CLAIMED_NEW), status, posted_at

        return self._write("claim", work)

    def reopen_failed(self, content_hash: str) -> bool:
        """posted → publishing, held by this instance, so the platforms that FAILED can be sent again.

        One transaction: only a finished post with a failed platform and no unknown one is reopened, and only
        by one caller (a second retry finds it 'publishing'). The posted platforms keep their 'posted' rows, so
        `begin_sending` refuses them: a platform recorded as posted is never sent twice. `finish_post` closes it.
        """
        now = self._now()

        def work(conn: Connection) -> bool:
            row = conn.execute(
                "SELECT attempt FROM posted_images WHERE content_hash = ? AND status = ?", (content_hash, POSTED)
            ).fetchone()
            if row is None:
                return False
            states = {
                r[0]
                for r in conn.execute(
                    "SELECT state FROM platform_posts WHERE content_hash = ? AND attempt = ?", (content_hash, row[0])
                )
            }
            if FAILED not in states or SENDING in states:
                return False
            return (
                conn.execute(
                    "UPDATE posted_images SET status = ?, claim_owner = ?, claimed_at = ?"
                    " WHERE content_hash = ? AND status = ?",
                    (PUBLISHING, self.owner, now, content_hash, POSTED),
                ).rowcount
                == 1
            )

        reopened = bool(self._write("reopen_failed", work))
        log_json(logger, logging.INFO, "ledger_reopened_for_retry", content_hash=content_hash, reopened=reopened)
        return reopened

    def mark_publishing(self, content_hash: str) -> None:
        """claimed → publishing. Raises StorageError when this instance no longer holds the claim, so the run
        stops before posting rather than risk posting an image another run has taken over."""
        now = self._now()

        def work(conn: Connection) -> int:
            return conn.execute(
                "UPDATE posted_images SET status = ?, claimed_at = ?"
                " WHERE content_hash = ? AND status = ? AND claim_owner = ?",
                (PUBLISHING, now, content_hash, CLAIMED, self.owner),
            ).rowcount

        if self._run("mark_publishing", work) != 1:
            log_json(logger, logging.ERROR, "ledger_claim_lost", content_hash=content_hash, ledger=self.where)
            raise StorageError(f"Ledger {self.where}: the claim on {content_hash} is no longer held by this run")

    def _held_attempt(self, conn: Connection, content_hash: str) -> Optional[Tuple[int]]:
        """The (attempt,) row of `content_hash` while this instance holds it in 'publishing', else None."""
        return conn.execute(
            "SELECT attempt FROM posted_images WHERE content_hash = ? AND status = ? AND claim_owner = ?",
            (content_hash, PUBLISHING, self.owner),
        ).fetchone()

    def begin_sending(self, content_hash: str, platform: str) -> bool:
        """Record 'sending' for `platform` BEFORE it is called. False (send nothing) unless this instance
        holds the publishing row and the platform has no 'posted' or 'sending' outcome in this attempt."""
        now = self._now()

        def work(conn: Connection) -> bool:
            row = self._held_attempt(conn, content_hash)
            if row is None:
                return False
            changed = conn.execute(
                "INSERT INTO platform_posts (content_hash, attempt, platform, state, updated_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (content_hash, attempt, platform) DO UPDATE SET state = excluded.state,"
                " post_id = NULL, error = NULL, updated_at = excluded.updated_at"
                " WHERE platform_posts.state = ?",
                (content_hash, row[0], platform, SENDING, now, FAILED),
            ).rowcount
            return changed == 1

        allowed = bool(self._write("begin_sending", work))
        if not allowed:
            log_json(logger, logging.WARNING, "ledger_send_refused", content_hash=content_hash, platform=platform)
        return allowed

    def record_outcome(
        self, content_hash: str, platform: str, success: bool, post_id: Optional[str], error: Optional[str]
    ) -> None:
        """'sending' → 'posted' (with the platform's id) or 'failed', right after the platform answered."""
        now = self._now()

        def work(conn: Connection) -> None:
            conn.execute(
                "UPDATE platform_posts SET state = ?, post_id = ?, error = ?, updated_at = ?"
                " WHERE content_hash = ? AND platform = ? AND state = ?"
                " AND attempt = (SELECT attempt FROM posted_images WHERE content_hash = ?)",
                (POSTED if success else FAILED, post_id, error, now, content_hash, platform, SENDING, content_hash),
            )

        self._run("record_outcome", work)

    def resolve_platform(self, content_hash: str, platform: str, posted: bool, post_id: Optional[str]) -> None:
        """The operator's word on a platform: posted (with an optional id) or not posted (→ 'failed')."""
        now = self._now()

        def work(conn: Connection) -> None:
            row = conn.execute("SELECT attempt FROM posted_images WHERE content_hash = ?", (content_hash,)).fetchone()
            if row is None:
                return
            conn.execute(
                "INSERT INTO platform_posts (content_hash, attempt, platform, state, post_id, error, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (content_hash, attempt, platform) DO UPDATE SET state = excluded.state,"
                " post_id = COALESCE(excluded.post_id, platform_posts.post_id), error = excluded.error,"
                " updated_at = excluded.updated_at",
                (
                    content_hash,
                    row[0],
                    platform,
                    POSTED if posted else FAILED,
                    post_id,
                    None if posted else "marked not posted by the operator",
                    now,
                ),
            )

        self._write("resolve_platform", work)
        log_json(
            logger,
            logging.WARNING,
            "ledger_platform_resolved",
            content_hash=content_hash,
            platform=platform,
            posted=posted,
        )

    def take_over(self, content_hash: str, expected_owner: Optional[str]) -> bool:
        """Make this instance the owner of an unfinished row (the operator completing it).

        Only succeeds while the row still carries `expected_owner`, so two operators cannot both take it.
        """
        now = self._now()

        def work(conn: Connection) -> int:
            return conn.execute(
                "UPDATE posted_images SET claim_owner = ?, claimed_at = ?"
                " WHERE content_hash = ? AND (claim_owner = ? OR (claim_owner IS NULL AND CAST(? AS TEXT) IS NULL))"
                " AND status IN (?, ?, ?)",
                (self.owner, now, content_hash, expected_owner, expected_owner, CLAIMED, PUBLISHING, POSTED),
            ).rowcount

        return self._write("take_over", work) == 1

    def release(self, content_hash: str) -> bool:
        """Drop our claim after a failure before publishing (only a 'claimed' row of ours)."""
        return self._drop_own(content_hash, (CLAIMED,), "release")

    def abandon(self, content_hash: str) -> bool:
        """Drop our 'publishing' row when no platform posted: the image may be tried again."""
        return self._drop_own(content_hash, (PUBLISHING,), "abandon")

    def release_unposted(self, content_hash: str, owner: Optional[str] = None) -> bool:
        """The operator's release: drop a claim or publishing row on which nothing is posted or unknown. With
        `owner`, the row must still carry that owner (the one the operator saw): the check and the drop are one
        transaction, so a refused release changes nothing."""
        return self._drop_own(content_hash, (CLAIMED, PUBLISHING), "operator_release", owner)

    def _drop_own(
        self, content_hash: str, statuses: Tuple[str, ...], action: str, owner: Optional[str] = None
    ) -> bool:
        """Undo our attempt (or `owner`'s): a first attempt is deleted, a re-post goes back to 'posted'. Never
        when a platform of this attempt is posted or unknown."""
        holder = self.owner if owner is None else owner

        def work(conn: Connection) -> bool:
            marks = ",".join("?" * len(statuses))
            row = conn.execute(
                f"SELECT attempt, posted_at FROM posted_images WHERE content_hash = ? AND claim_owner = ?"
                f" AND status IN ({marks})",
                (content_hash, holder, *statuses),
            ).fetchone()
            if row is None:
                return False
            attempt, posted_at = row
            if conn.execute(
                "SELECT 1 FROM platform_posts WHERE content_hash = ? AND attempt = ? AND state IN (?, ?)",
                (content_hash, attempt, POSTED, SENDING),
            ).fetchone():
                return False
            conn.execute("DELETE FROM platform_posts WHERE content_hash = ? AND attempt = ?", (content_hash, attempt))
            if attempt > 1 and posted_at:
                conn.execute(
                    "UPDATE posted_images SET status = ?, attempt = attempt - 1 WHERE content_hash = ?",
                    (POSTED, content_hash),
                )
            else:
                conn.execute("DELETE FROM posted_images WHERE content_hash = ?", (content_hash,))
            return True

        removed = bool(self._write(action, work))
        log_json(logger, logging.INFO, f"ledger_{action}", content_hash=content_hash, removed=removed)
        return removed

    def finish_post(self, content_hash: str, image_name: str, *, archive: bool) -> bool:
        """publishing → posted, once no platform is unknown and at least one posted. The results column
        (kept for older readers) is rebuilt from the outcome rows. False when the post cannot finish yet."""
        now = self._now()

        def work(conn: Connection) -> bool:
            row = self._held_attempt(conn, content_hash)
            if row is None:
                return False
            outcomes = conn.execute(
                "SELECT platform, state, post_id, error FROM platform_posts WHERE content_hash = ? AND attempt = ?",
                (content_hash, row[0]),
            ).fetchall()
            states = {state for _, state, _, _ in outcomes}
            if SENDING in states or POSTED not in states:
                return False
            results = {
                platform: {"success": state == POSTED, "post_id": post_id, "error": error}
                for platform, state, post_id, error in outcomes
            }
            conn.execute(
                "UPDATE posted_images SET status = ?, image_name = ?, posted_at = ?, results = ?,"
                " archive_state = ?, reason = NULL WHERE content_hash = ?",
                (
                    POSTED,
                    image_name,
                    now,
                    json.dumps(results, sort_keys=True),
                    ARCHIVE_PENDING if archive else ARCHIVE_OFF,
                    content_hash,
                ),
            )
            return True

        done = bool(self._write("finish_post", work))
        if done:
            log_json(logger, logging.INFO, "ledger_post_recorded", content_hash=content_hash, image_name=image_name)
        return done

    def with_owner(self, owner: str) -> PostLedger:
        """This ledger (same connection, same lock) under another owner name: one web request's claims."""
        return _OwnerView(self, owner)

    def hand_over(self, outcomes: Dict[str, PlatformOutcome]) -> List[str]:
        """The end of a request: leave nothing this owner holds to look 'held by a live run'.

        1. Platforms still 'sending' whose answer is known in memory (`outcomes`, the platforms' own results)
           get that outcome: recording it may have failed while the ledger was away.
        2. Rows on which nothing is posted or unknown are dropped (`abandon`/`release`): free to pick again.
        3. The rest is marked RELEASED (owner gone), so `ledger retry` and the next CLI run complete it at once.
        Returns the content hashes handed over in step 3.
        """
        now = self._now()
        held_sql = (
            "SELECT content_hash, attempt FROM posted_images WHERE claim_owner = ?"
            " AND (status IN (?, ?) OR (status = ? AND archive_state = ?))"
        )
        held_args = (self.owner, CLAIMED, PUBLISHING, POSTED, ARCHIVE_PENDING)
        if not self._run("hand_over", lambda conn: conn.execute(held_sql, held_args).fetchone()):
            return []  # the common case (a finished publish): one read, no write lock

        def record(conn: Connection) -> List[str]:
            rows = conn.execute(held_sql, held_args).fetchall()
            for content_hash, attempt in rows:
                for platform, outcome in outcomes.items():
                    conn.execute(
                        "UPDATE platform_posts SET state = ?, post_id = ?, error = ?, updated_at = ?"
                        " WHERE content_hash = ? AND attempt = ? AND platform = ? AND state = ?",
                        (outcome.state, outcome.post_id, outcome.error, now, content_hash, attempt, platform, SENDING),
                    )
            return [row[0] for row in rows]

        held = self._write("hand_over", record)
        kept = [h for h in held if not self._drop_own(h, (CLAIMED, PUBLISHING), "hand_over_release")]

        def release(conn: Connection) -> None:
            for content_hash in kept:
                conn.execute(
                    "UPDATE posted_images SET claim_owner = ? WHERE content_hash = ? AND claim_owner = ?",
                    (RELEASED_PREFIX + self.owner, content_hash, self.owner),
                )

        if kept:
            self._write("hand_over", release)
            log_json(logger, logging.WARNING, "ledger_handed_over", owner=self.owner, content_hashes=kept)
        return kept

    def mark_archived(self, content_hash: str) -> None:
        """The posted image left the library (archive done)."""
        self._run(
            "mark_archived",
            lambda c: c.execute(
                "UPDATE posted_images SET archive_state = ? WHERE content_hash = ? AND status = ?",
                (ARCHIVE_DONE, content_hash, POSTED),
            ),
        )

    def record_post(self, content_hash: str, image_name: str, results: Dict[str, Any]) -> None:
        """Record `content_hash` as posted with the per-platform results in one go (imports, tools)."""
        now = self._now()
        payload = json.dumps(results, default=str, sort_keys=True)

        def work(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO posted_images"
                " (content_hash, image_name, status, claim_owner, posted_at, results)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(content_hash) DO UPDATE SET image_name = excluded.image_name,"
                " status = excluded.status,"
                " posted_at = excluded.posted_at, results = excluded.results, reason = NULL",
                (content_hash, image_name, POSTED, self.owner, now, payload),
            )
            attempt = conn.execute(
                "SELECT attempt FROM posted_images WHERE content_hash = ?", (content_hash,)
            ).fetchone()[0]
            for platform, outcome in results.items():
                success = bool(outcome.get("success")) if isinstance(outcome, dict) else bool(outcome)
                conn.execute(
                    "INSERT INTO platform_posts (content_hash, attempt, platform, state, post_id, error, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (content_hash, attempt, platform) DO UPDATE SET"
                    " state = excluded.state, post_id = excluded.post_id, error = excluded.error,"
                    " updated_at = excluded.updated_at WHERE platform_posts.state != ?",
                    (
                        content_hash,
                        attempt,
                        platform,
                        POSTED if success else FAILED,
                        outcome.get("post_id") if isinstance(outcome, dict) else None,
                        outcome.get("error") if isinstance(outcome, dict) else None,
                        now,
                        POSTED,
                    ),
                )

        self._write("record_post", work)
        log_json(logger, logging.INFO, "ledger_post_recorded", content_hash=content_hash, image_name=image_name)

    # -- imports of outside state ----------------------------------------------------------------------------

    def import_record(self, source: str) -> Optional[ImportRecord]:
        """The recorded import of `source`, or None while it has not happened on this ledger."""
        return self._run("import_record", lambda conn: self._import_row(conn, source))

    @staticmethod
    def _import_row(conn: Connection, source: str) -> Optional[ImportRecord]:
        row = conn.execute(
            "SELECT source, path, imported_at, hashes, imported, invalid FROM ledger_imports WHERE source = ?",
            (source,),
        ).fetchone()
        return None if row is None else ImportRecord(*row)

    def record_import(
        self,
        source: str,
        path: Optional[str],
        upstream_hashes: Sequence[str],
        posted_keys: Sequence[str],
        results: Dict[str, Any],
        *,
        image_name: str,
        invalid: int = 0,
        imported_before: int = 0,
    ) -> ImportRecord:
        """Import `source` once per ledger, in ONE transaction: its record, `upstream_hashes` (kept for
        `upstream_posted`), and a posted row (with `results`) for each of `posted_keys` the ledger does not know.

        The record's primary key decides between racing processes: the first commits, the others find it and
        change nothing (the returned record has `new` False). `imported_before`: rows an earlier import
        (the old marker file's) already recorded, added to the count.
        """
        now = self._now()
        keys = sorted(set(posted_keys))
        upstream = sorted(set(upstream_hashes))
        payload = json.dumps(results, default=str, sort_keys=True)

        def work(conn: Connection) -> ImportRecord:
            taken = conn.execute(
                "INSERT INTO ledger_imports (source, path, imported_at, hashes, imported, invalid)"
                " VALUES (?, ?, ?, ?, 0, ?) ON CONFLICT (source) DO NOTHING",
                (source, path, now, len(upstream), invalid),
            ).rowcount
            if taken != 1:
                existing = self._import_row(conn, source)
                if existing is None:  # cannot happen: a conflict we cannot see makes the store retry
                    raise StorageError(f"Ledger {self.where}: the import record of {source} vanished")
                return existing
            known: Set[str] = set()
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT content_hash FROM posted_images WHERE content_hash IN ({marks})", chunk)
                known.update(row[0] for row in rows)
            new_keys = [key for key in keys if key not in known]
            if new_keys:
                conn.executemany(
                    "INSERT INTO posted_images (content_hash, image_name, status, claim_owner, posted_at, results)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (content_hash) DO NOTHING",
                    [(key, image_name, POSTED, self.owner, now, payload) for key in new_keys],
                )
                conn.executemany(
                    "INSERT INTO platform_posts (content_hash, attempt, platform, state, post_id, error, updated_at)"
                    " VALUES (?, 1, ?, ?, ?, ?, ?) ON CONFLICT (content_hash, attempt, platform) DO NOTHING",
                    [
                        (key, platform, POSTED if outcome.get("success") else FAILED, outcome.get("post_id"),
                         outcome.get("error"), now)
                        for key in new_keys
                        for platform, outcome in results.items()
                    ],
                )
            if upstream:
                conn.executemany(
                    "INSERT INTO upstream_hashes (sha256) VALUES (?) ON CONFLICT (sha256) DO NOTHING",
                    [(h,) for h in upstream],
                )
            imported = len(new_keys) + imported_before
            conn.execute("UPDATE ledger_imports SET imported = ? WHERE source = ?", (imported, source))
            return ImportRecord(source, path, now, len(upstream), imported, invalid, new=True)

        return self._write("record_import", work)

    def upstream_posted(self, sha256: str) -> bool:
        """Whether an imported upstream posted.json lists the image whose bytes hash (SHA-256) to `sha256`."""
        row = self._run(
            "upstream_posted",
            lambda c: c.execute("SELECT 1 FROM upstream_hashes WHERE sha256 = ?", (sha256.lower(),)).fetchone(),
        )
        return row is not None

    def mark_rejected(self, content_hash: str, image_name: str, reason: str) -> None:
        """Mark an undecodable image so later runs skip it. A posted or publishing row keeps its status."""

        def work(conn: Connection) -> None:
            conn.execute(
                "INSERT INTO posted_images (content_hash, image_name, status, claim_owner, reason)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(content_hash) DO UPDATE SET image_name = excluded.image_name,"
                " status = excluded.status,"
                " reason = excluded.reason WHERE posted_images.status NOT IN ('posted', 'publishing')",
                (content_hash, image_name, REJECTED, self.owner, reason),
            )

        self._run("mark_rejected", work)
        log_json(logger, logging.WARNING, "ledger_image_rejected", content_hash=content_hash, image_name=image_name)


class _OwnerView(PostLedger):
    """A PostLedger sharing another's connection and lock under its own owner name (see `with_owner`)."""

    def __init__(self, parent: PostLedger, owner: str) -> None:  # no super().__init__: nothing new is opened
        self.__dict__.update({k: v for k, v in parent.__dict__.items() if k != "_conn"})
        self._parent = parent
        self.owner = owner

    @property  # type: ignore[override]
    def _conn(self) -> Optional[Connection]:
        return self._parent._conn

    @_conn.setter
    def _conn(self, value: Optional[Connection]) -> None:
        self._parent._conn = value

    def close(self) -> None:
        """The connection is the parent's: closing the view leaves it open."""


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore(_LedgerFile):
    """Admin login failures and revoked session cookies, in the ledger file, so every worker sees them.

    Only SHA-256 digests of cookies are stored; rows older than their window or expiry are pruned as new
    ones arrive, so the tables stay small.
    """

    def record_failure(self, scopes: Sequence[str]) -> None:
        """One failed login, counted under each of `scopes` (e.g. the account and the client)."""
        now = self._now()

        def work(conn: Connection) -> None:
            conn.executemany("INSERT INTO login_failures (scope, at) VALUES (?, ?)", [(s, now) for s in scopes])

        self._write("record_failure", work)

    def failures_since(self, scope: str, since: datetime) -> Tuple[int, Optional[datetime]]:
        """(count, oldest time) of failures under `scope` after `since`."""

        def work(conn: Connection) -> Tuple[int, Optional[str]]:
            row = conn.execute(
                "SELECT COUNT(*), MIN(at) FROM login_failures WHERE scope = ? AND at > ?", (scope, _iso(since))
            ).fetchone()
            return int(row[0]), row[1]

        count, oldest = self._run("failures_since", work)
        return count, datetime.fromisoformat(oldest) if oldest else None

    def forget_failures(self, scope: str) -> None:
        """Drop every failure counted under `scope` (a client that just logged in)."""
        self._run("forget_failures", lambda c: c.execute("DELETE FROM login_failures WHERE scope = ?", (scope,)))

    def prune_failures(self, before: datetime) -> None:
        self._run("prune_failures", lambda c: c.execute("DELETE FROM login_failures WHERE at < ?", (_iso(before),)))

    def revoke(self, token: str, expires_at: datetime) -> None:
        """Refuse `token` from now on, in every worker (until it would have expired anyway)."""
        now = self._now()

        def work(conn: Connection) -> None:
            conn.execute("DELETE FROM revoked_sessions WHERE expires_at < ?", (now,))
            conn.execute(
                "INSERT INTO revoked_sessions (token_hash, expires_at) VALUES (?, ?)"
                " ON CONFLICT (token_hash) DO NOTHING",
                (_token_hash(token), _iso(expires_at)),
            )

        self._write("revoke", work)

    def is_revoked(self, token: str) -> bool:
        return (
            self._run(
                "is_revoked",
                lambda c: c.execute(
                    "SELECT 1 FROM revoked_sessions WHERE token_hash = ?", (_token_hash(token),)
                ).fetchone(),
            )
            is not None
        )

    # -- login attempts, admitted and counted in one step ----------------------------------------------------

    def admit_attempt(
        self, scopes: Sequence[str], since: datetime, limit: int
    ) -> Tuple[bool, Optional[datetime], str]:
        """Check AND count one login attempt in ONE transaction: (admitted, oldest failure, attempt stamp).

        Refused (False, with the oldest failure of the first full scope) when any of `scopes` holds `limit`
        attempts after `since`; otherwise the attempt is recorded under every scope as a failure up front, so
        concurrent attempts in several workers cannot all pass the same check (a successful login takes its
        row back with `forget_attempt`). Rows older than `since` are pruned on the way.
        """
        now = self._now()
        cutoff = _iso(since)

        def work(conn: Connection) -> Tuple[bool, Optional[str]]:
            for scope in scopes:
                count, oldest = conn.execute(
                    "SELECT COUNT(*), MIN(at) FROM login_failures WHERE scope = ? AND at > ?", (scope, cutoff)
                ).fetchone()
                if int(count) >= limit:
                    return False, oldest
            conn.execute("DELETE FROM login_failures WHERE at <= ?", (cutoff,))
            conn.executemany("INSERT INTO login_failures (scope, at) VALUES (?, ?)", [(s, now) for s in scopes])
            return True, None

        admitted, oldest = self._write("admit_attempt", work)
        return admitted, datetime.fromisoformat(oldest) if oldest else None, now

    def forget_attempt(self, scopes: Sequence[str], stamp: str) -> None:
        """Take back the attempt `admit_attempt` counted at `stamp` (the password was right)."""

        def work(conn: Connection) -> None:
            conn.executemany(
                "DELETE FROM login_failures WHERE scope = ? AND at = ?", [(scope, stamp) for scope in scopes]
            )

        self._write("forget_attempt", work)

    # -- server-side admin sessions --------------------------------------------------------------------------

    def open_session(self, session_id: str, expires_at: datetime) -> None:
        """Make `session_id` a live session until `expires_at` (only its SHA-256 is stored)."""
        now = self._now()

        def work(conn: Connection) -> None:
            conn.execute("DELETE FROM admin_sessions WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT INTO admin_sessions (session_hash, expires_at) VALUES (?, ?)",
                (_token_hash(session_id), _iso(expires_at)),
            )

        self._write("open_session", work)

    def session_live(self, session_id: str) -> bool:
        """Whether `session_id` was opened here, has not expired and was not closed (logout)."""
        row = self._run(
            "session_live",
            lambda c: c.execute(
                "SELECT 1 FROM admin_sessions WHERE session_hash = ? AND expires_at > ?",
                (_token_hash(session_id), self._now()),
            ).fetchone(),
        )
        return row is not None

    def close_session(self, session_id: str) -> bool:
        """End `session_id` for every worker (logout). True when it was live."""
        digest = _token_hash(session_id)
        removed = self._write(
            "close_session",
            lambda c: c.execute("DELETE FROM admin_sessions WHERE session_hash = ?", (digest,)).rowcount,
        )
        return bool(removed)
