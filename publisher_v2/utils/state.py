"""The dedup ledger: which images (by content hash) were posted, are being published, or were rejected.

SQLite in WAL mode, so several `publisher` runs and the web app can share one file. A run CLAIMS an image
before publishing it; a claim is a row that only one writer can insert (BEGIN IMMEDIATE serialises the check
and the insert across processes). Once publishing starts the row turns 'publishing' and is never reclaimed
automatically: a run that crashed there may already have posted, and posting twice is the one thing we must
not do. A plain 'claimed' row older than the TTL belongs to a run that died before publishing: it may be
retaken.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Set

from publisher_v2.core.exceptions import StorageError
from publisher_v2.utils.logging import log_json

logger = logging.getLogger("publisher_v2.state")

CLAIMED = "claimed"
PUBLISHING = "publishing"
POSTED = "posted"
REJECTED = "rejected"

_SCHEMA = """
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

#: How long a writer waits for another one's lock before failing (milliseconds).
BUSY_TIMEOUT_MS = 15_000


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    """Fixed-width UTC ISO text, so SQL can compare timestamps as strings."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _enable_wal(conn: sqlite3.Connection) -> str:
    """Switch the file to WAL (a persistent setting), retrying while another process does the same.

    SQLite answers "database is locked" at once, without calling the busy handler, when two connections
    change the journal mode of a new file together (seen with four processes starting on a fresh ledger).
    """
    delay = 0.005
    for _ in range(60):
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode == "wal":
            return mode
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()


def connect_wal(path: Path) -> sqlite3.Connection:
    """An autocommit connection in WAL mode with a busy timeout, usable from any thread (callers lock).

    Autocommit (isolation_level=None) leaves transactions to us: BEGIN IMMEDIATE where a read decides a write.
    """
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        mode = _enable_wal(conn)
    except BaseException:
        conn.close()
        raise
    if mode != "wal":
        conn.close()
        raise sqlite3.OperationalError(f"cannot switch to WAL journal mode (got {mode!r})")
    # NORMAL is durable across application crashes in WAL mode; only a power cut may lose the last commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


class PostLedger:
    """The dedup ledger. Every method is one short transaction and is safe from several threads."""

    def __init__(
        self, path: Path, claim_ttl_seconds: int = 3600, *, clock: Optional[Callable[[], datetime]] = None
    ) -> None:
        self.path = Path(path)
        self.claim_ttl = timedelta(seconds=claim_ttl_seconds)
        #: Identifies this ledger instance's claims; release/abandon touch only rows carrying it.
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex}"
        self._clock = clock or _utc_now
        self._lock = threading.RLock()
        self._conn: Optional[sqlite3.Connection] = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"Cannot create the ledger folder {self.path.parent}: {exc}") from None

    # -- connection ------------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = connect_wal(self.path)
            conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    def _run(self, action: str, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `work` under the instance lock; SQLite failures become StorageError naming the ledger file."""
        with self._lock:
            try:
                return work(self._connection())
            except sqlite3.Error as exc:
                raise StorageError(f"Ledger {self.path}: {action} failed: {exc}") from None

    @staticmethod
    def _immediate(conn: sqlite3.Connection, work: Callable[[], Any]) -> Any:
        """One write transaction that takes the write lock before reading, so check-then-write is atomic."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> PostLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stale_before(self) -> str:
        return _iso(self._clock() - self.claim_ttl)

    # -- reads -----------------------------------------------------------------------------------------------

    def journal_mode(self) -> str:
        """The journal mode SQLite reports for this file ('wal')."""
        return str(self._run("journal_mode", lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]))

    def known_hashes(self) -> Set[str]:
        """Hashes a run must not pick: posted, rejected, publishing, and claims younger than the TTL."""

        def work(conn: sqlite3.Connection) -> Set[str]:
            rows = conn.execute(
                "SELECT content_hash FROM posted_images WHERE status != ? OR claimed_at > ?",
                (CLAIMED, self._stale_before()),
            )
            return {row[0] for row in rows}

        return self._run("known_hashes", work)

    def get(self, content_hash: str) -> Optional[Dict[str, Any]]:
        """The row for `content_hash` as a dict (results decoded), or None."""

        def work(conn: sqlite3.Connection) -> Optional[Dict[str, Any]]:
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
                lambda c: c.execute(
                    "SELECT COUNT(*) FROM posted_images WHERE status = ?", (POSTED,)
                ).fetchone()[0],
            )
        )

    # -- claim lifecycle -------------------------------------------------------------------------------------

    def claim(self, content_hash: str, image_name: str) -> bool:
        """Take `content_hash` for this run. True only for the one caller that gets it.

        Free hashes and 'claimed' rows older than the TTL can be taken; anything else (a live claim, ours
        included, or a publishing/posted/rejected row) cannot.
        """
        now = _iso(self._clock())

        def work(conn: sqlite3.Connection) -> bool:
            def decide() -> bool:
                row = conn.execute(
                    "SELECT status, claimed_at, claim_owner FROM posted_images WHERE content_hash = ?",
                    (content_hash,),
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO posted_images"
                        " (content_hash, image_name, status, claim_owner, claimed_at) VALUES (?, ?, ?, ?, ?)",
                        (content_hash, image_name, CLAIMED, self.owner, now),
                    )
                    return True
                status, claimed_at, previous_owner = row
                if status != CLAIMED or (claimed_at or "") > self._stale_before():
                    return False
                conn.execute(
                    "UPDATE posted_images SET image_name = ?, claim_owner = ?, claimed_at = ?"
                    " WHERE content_hash = ?",
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
                return True

            return self._immediate(conn, decide)

        return bool(self._run("claim", work))

    def mark_publishing(self, content_hash: str) -> None:
        """claimed → publishing. Raises StorageError when this instance no longer holds the claim, so the run
        stops before posting rather than risk posting an image another run has taken over."""

        def work(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE posted_images SET status = ?"
                " WHERE content_hash = ? AND status = ? AND claim_owner = ?",
                (PUBLISHING, content_hash, CLAIMED, self.owner),
            ).rowcount

        if self._run("mark_publishing", work) != 1:
            log_json(
                logger, logging.ERROR, "ledger_claim_lost", content_hash=content_hash, ledger=str(self.path)
            )
            raise StorageError(
                f"Ledger {self.path}: the claim on {content_hash} is no longer held by this run"
            )

    def release(self, content_hash: str) -> bool:
        """Drop our claim after a failure before publishing (only a 'claimed' row of ours)."""
        return self._delete_own(content_hash, CLAIMED, "release")

    def abandon(self, content_hash: str) -> bool:
        """Drop our 'publishing' row when every publisher failed: nothing was posted."""
        return self._delete_own(content_hash, PUBLISHING, "abandon")

    def _delete_own(self, content_hash: str, status: str, action: str) -> bool:
        def work(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM posted_images WHERE content_hash = ? AND status = ? AND claim_owner = ?",
                (content_hash, status, self.owner),
            ).rowcount

        removed = self._run(action, work) == 1
        log_json(logger, logging.INFO, f"ledger_{action}", content_hash=content_hash, removed=removed)
        return removed

    def record_post(self, content_hash: str, image_name: str, results: Dict[str, Any]) -> None:
        """Record `content_hash` as posted with the per-platform results (with or without a prior claim)."""
        now = _iso(self._clock())
        payload = json.dumps(results, default=str, sort_keys=True)

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO posted_images"
                " (content_hash, image_name, status, claim_owner, posted_at, results)"
                " VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(content_hash) DO UPDATE SET image_name = excluded.image_name,"
                " status = excluded.status,"
                " posted_at = excluded.posted_at, results = excluded.results, reason = NULL",
                (content_hash, image_name, POSTED, self.owner, now, payload),
            )

        self._run("record_post", work)
        log_json(
            logger, logging.INFO, "ledger_post_recorded", content_hash=content_hash, image_name=image_name
        )

    def mark_rejected(self, content_hash: str, image_name: str, reason: str) -> None:
        """Mark an undecodable image so later runs skip it. A posted or publishing row keeps its status."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO posted_images (content_hash, image_name, status, claim_owner, reason)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(content_hash) DO UPDATE SET image_name = excluded.image_name,"
                " status = excluded.status,"
                " reason = excluded.reason WHERE posted_images.status NOT IN ('posted', 'publishing')",
                (content_hash, image_name, REJECTED, self.owner, reason),
            )

        self._run("mark_rejected", work)
        log_json(
            logger, logging.WARNING, "ledger_image_rejected", content_hash=content_hash, image_name=image_name
        )
