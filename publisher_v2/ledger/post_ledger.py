"""The ledger: the one truth, shared by every process, about which images are claimed, posting or posted.

A SQLite file in WAL mode (CLI runs and web workers on one machine), or a PostgreSQL database (several
machines): `stores.py` opens either. Every SQL statement of the application's state lives in this module,
written once for both databases, and concurrency comes from the database itself: one check-then-write
transaction per decision (BEGIN IMMEDIATE on SQLite, SERIALIZABLE on PostgreSQL), unique keys and
`INSERT ... ON CONFLICT` for the rest, never a process lock.

An image row moves claimed → publishing → posted. Each platform of a post gets its own outcome row:
'sending' is written BEFORE the platform is called, then 'posted' (with the platform's id) or 'failed'. A
'sending' row whose run died is an UNKNOWN outcome: nothing re-sends it automatically (at most once); the
operator command (`publisher ledger`) shows it and resolves it. A 'claimed' row older than the TTL belongs to
a run that died before publishing and may be retaken; a 'publishing' row never expires by itself (a later run
may take it over only when no outcome is unknown). The same ledger holds the web app's login
failures and sessions (publisher_v2/web/sessions.py), so every worker sees them.

Reads live in queries.py, imports of outside state in imports.py, the schema in schema.py; this module is the
claim lifecycle. Open a ledger with `publisher_v2.ledger.open_ledger`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

from publisher_v2.domain.errors import StorageError
from publisher_v2.ledger.imports import LedgerImports
from publisher_v2.ledger.records import (
    RELEASED_PREFIX,
    ImageAlreadyPosted,
    ImageBusy,
    PlatformOutcome,
    _process_owner,
    readable_time,
)
from publisher_v2.ledger.schema import (
    ARCHIVE_DONE,
    ARCHIVE_OFF,
    ARCHIVE_PENDING,
    CLAIMED,
    FAILED,
    POSTED,
    PUBLISHING,
    REJECTED,
    SENDING,
    Connection,
)
from publisher_v2.ledger.stores import LedgerStore
from publisher_v2.utils.logging import log_json

logger = logging.getLogger("publisher_v2.state")

#: Verdicts of a claim attempt.
_CLAIMED_NEW, _REPOSTING, _WAS_POSTED, _BUSY = "claimed_new", "reposting", "was_posted", "busy"


class PostLedger(LedgerImports):
    """The dedup ledger. Every method is one short transaction and is safe from several threads."""

    def __init__(
        self,
        path: Union[LedgerStore, Path, str],
        claim_ttl_seconds: int = 3600,
        *,
        clock: Optional[Callable[[], datetime]] = None,
    ) -> None:
        """Open nothing yet (the first call connects). Upstream's posted.json is imported by `open_ledger`."""
        super().__init__(path, clock)
        self.claim_ttl = timedelta(seconds=claim_ttl_seconds)
        #: Identifies this ledger instance's claims; release/abandon touch only rows carrying it.
        self.owner = _process_owner()

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

