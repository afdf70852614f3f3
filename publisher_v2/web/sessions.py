"""The web admin's shared state: login attempts and server-side sessions, in the ledger, so every worker sees them.

Several uvicorn workers (and hosts, on PostgreSQL) serve one admin: a throttle or a logout kept in one worker's
memory would not hold in the next. Only SHA-256 digests of session ids are stored.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Optional, Sequence, Tuple

from publisher_v2.ledger.connection import LedgerConnection
from publisher_v2.ledger.schema import Connection, _iso


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionStore(LedgerConnection):
    """Admin login attempts and live sessions, in the ledger, so every worker sees them.

    Only SHA-256 digests of cookies are stored; rows older than their window or expiry are pruned as new
    ones arrive, so the tables stay small.
    """

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
