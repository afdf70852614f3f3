"""Imports of outside state (upstream's posted.json) as the ledger records them: once per ledger, in one transaction.

The record's primary key (`ledger_imports.source`) decides between racing processes on any host; ledger/upstream.py
reads the file and calls `record_import`.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional, Sequence, Set

from publisher_v2.domain.errors import StorageError
from publisher_v2.ledger.queries import _IN_CHUNK, LedgerQueries
from publisher_v2.ledger.records import ImportRecord
from publisher_v2.ledger.schema import FAILED, POSTED, Connection
from publisher_v2.utils.logging import log_json

logger = logging.getLogger("publisher_v2.state")


class LedgerImports(LedgerQueries):
    """The import record and upstream's hashes (schema version 3), and posts recorded whole (imports, tools)."""

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
