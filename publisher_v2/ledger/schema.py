"""The ledger's schema: its tables, the migrations that build them version by version, and the one opening.

Every ledger (a SQLite file, or PostgreSQL) carries a `schema_version` row saying which migrations ran;
`open_ledger_connection` is the single place a ledger connection is opened and brought up to date, so older
files (version 1 had no version row) migrate when first opened, and a file written by a newer program is refused.
The same MIGRATIONS build both databases (statements both speak).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple, Union

from publisher_v2.domain.errors import StorageError
from publisher_v2.ledger.stores import LedgerStore, SQLiteStore, store_for
from publisher_v2.utils.logging import log_json

#: A DB-API connection of the store (sqlite3, or psycopg behind the `?` translation).
Connection = Any

logger = logging.getLogger("publisher_v2.state")

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


def _migrate_to_v5(conn: Connection) -> None:
    """Version 5: `revoked_sessions` dropped. Since version 4 nothing reads it (a logout deletes the session's
    row in `admin_sessions`, see `_V4_STATEMENTS`), so its rows could refuse nothing any more."""
    conn.execute("DROP TABLE IF EXISTS revoked_sessions")


#: (version, migration) in order. A later store (or an import of older state) appends here.
MIGRATIONS: List[Tuple[int, Callable[[Connection], None]]] = [
    (1, _migrate_to_v1),
    (2, _migrate_to_v2),
    (3, _migrate_to_v3),
    (4, _migrate_to_v4),
    (5, _migrate_to_v5),
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
