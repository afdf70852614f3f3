"""The ledger's reads: what is known, what a run must not pick, what is unfinished or failed.

`LedgerQueries` is the read half of PostLedger (post_ledger.py adds the claim lifecycle); it holds no SQL that writes.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Dict, List, Optional, Sequence, Set

from publisher_v2.ledger.connection import LedgerConnection
from publisher_v2.ledger.records import LedgerEntry, PlatformOutcome, owner_alive
from publisher_v2.ledger.schema import (
    ARCHIVE_PENDING,
    CLAIMED,
    FAILED,
    POSTED,
    PUBLISHING,
    Connection,
    _iso,
    _schema_version,
)

#: Keys per `IN (...)` query: under SQLite's oldest limit of 999 parameters.
_IN_CHUNK = 500


class LedgerQueries(LedgerConnection):
    """Reads of the post ledger (every one a short transaction, safe from several threads)."""

    claim_ttl: timedelta
    owner: str

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
