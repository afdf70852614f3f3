"""The workflow's ledger half: finishing posts of runs that died, re-sending failed platforms, and what needs
the operator. The `ledger` commands call these; a normal run completes interrupted posts before its own.

`LedgerRecovery` is a base of WorkflowOrchestrator and uses its stages (`_publish_all`, `_archive_image`,
`_analyze_image`, `_generate_caption`), so a re-send is timed and recorded exactly like a first send.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from publisher_v2.config.schema import ApplicationConfig
from publisher_v2.domain.errors import StorageError
from publisher_v2.domain.models import PublishResult
from publisher_v2.ledger import PostLedger
from publisher_v2.ledger.records import LedgerEntry, PlatformOutcome
from publisher_v2.ledger.schema import ARCHIVE_DONE, ARCHIVE_PENDING, CLAIMED, FAILED, POSTED, PUBLISHING, SENDING
from publisher_v2.services.publishers.base import Publisher
from publisher_v2.services.sidecar import read_approved_content
from publisher_v2.services.storage.base import Storage
from publisher_v2.services.storage.content import fetch_image_content
from publisher_v2.utils.logging import log_json

logger = logging.getLogger("publisher_v2.workflow")


class LedgerRecovery:
    """Completion and re-sending of recorded posts (see the module docstring)."""

    config: ApplicationConfig
    storage: Storage
    publishers: List[Publisher]
    ledger: PostLedger

    async def _complete_interrupted(self) -> None:
        """Finish posts of dead runs that need no decision: no platform outcome unknown, so sending the missing
        platforms (or just archiving) cannot post anything twice. The others are reported for the operator."""
        waiting = []
        for entry in self.ledger.unfinished():
            if entry.status == CLAIMED or not self.ledger.is_stale(entry):
                continue  # a live run's, or a claim that simply expires after the TTL
            if entry.unknown:
                waiting.append(entry)
                continue
            if not self.ledger.take_over(entry.content_hash, entry.claim_owner):
                continue  # another run is completing it
            log_json(
                logger,
                logging.WARNING,
                "ledger_completing_interrupted",
                image_name=entry.image_name,
                content_hash=entry.content_hash,
                posted=entry.posted_platforms,
            )
            taken = self.ledger.entry(entry.content_hash)
            try:
                if taken is not None:
                    await self.complete_post(taken)
            except StorageError as exc:
                log_json(logger, logging.ERROR, "ledger_complete_failed", image_name=entry.image_name, error=str(exc))
        if waiting:
            log_json(
                logger,
                logging.WARNING,
                "ledger_unfinished_posts",
                count=len(waiting),
                unknown_platforms=sum(len(e.unknown) for e in waiting),
                images=[e.image_name for e in waiting[:10]],
                resolve="publisher --config FILE ledger list",
            )

    def _attention_after_run(self) -> List[str]:
        """`needs_attention`, but a ledger that fails now (after the run's own work) never turns the run's result
        into an error: the count is then left out, with a warning."""
        try:
            return self.needs_attention()
        except StorageError as exc:
            log_json(logger, logging.WARNING, "ledger_attention_unknown", error=str(exc))
            return []

    def needs_attention(self) -> List[str]:
        """Images of posts only the operator can move on: a platform that failed (`ledger retry`), or a post
        no live run holds that is not finished (an unknown outcome, an archive still pending). Expiring claims
        and posts a live run is working on are not counted."""
        waiting = [
            e.image_name
            for e in self.ledger.unfinished()
            if e.status != CLAIMED and (e.claim_owner == self.ledger.owner or self.ledger.is_stale(e))
        ]
        enabled = [p.platform_name for p in self.publishers]
        return waiting + [e.image_name for e in self.ledger.partly_failed(enabled)]

    async def complete_post(self, entry: LedgerEntry, send: bool = True) -> Dict[str, PublishResult]:
        """Finish an interrupted post this ledger instance has taken over (the operator command).

        With `send`, sends ONLY to enabled platforms that are neither posted nor unknown ('sending'); then
        records the post and archives. Unknown platforms must be resolved first (posted, or not posted);
        until then the post stays unfinished. Returns the new per-platform results.
        """
        name = entry.image_name
        results: Dict[str, PublishResult] = {}
        if entry.status == CLAIMED:  # its run died before any platform was contacted
            self.ledger.mark_publishing(entry.content_hash)
            entry.status = PUBLISHING
        if entry.status != POSTED:
            missing = {p for p, o in entry.platforms.items() if o.state == FAILED}
            missing |= {p.platform_name for p in self.publishers if p.platform_name not in entry.platforms}
            targets = [p for p in self.publishers if p.platform_name in missing] if send else []
            if targets:
                results = await self._resend(entry, targets)
            entry.platforms.update(
                (platform, PlatformOutcome(platform, POSTED if r.success else FAILED, r.post_id, r.error))
                for platform, r in results.items()
            )
            never_sent = [p.platform_name for p in self.publishers if p.platform_name not in entry.platforms]
            if never_sent or any(o.state == SENDING for o in entry.platforms.values()):
                return results  # unfinished until every platform has a known outcome
            if not self.ledger.finish_post(entry.content_hash, name, archive=self.config.content.archive):
                return results
            entry.archive_state = ARCHIVE_PENDING if self.config.content.archive else None
        if entry.archive_state == ARCHIVE_PENDING:
            await self._archive_pending(entry)
        return results

    async def _archive_pending(self, entry: LedgerEntry) -> None:
        """Archive a recorded post's image, or note that it left the library already."""
        stored = await self.storage.get_image(entry.image_name)
        if stored is None or await self.storage.content_hash(stored) != entry.content_hash:
            self.ledger.mark_archived(entry.content_hash)  # moved already (the run died after archiving)
        elif await self._archive_image(entry.image_name):
            self.ledger.mark_archived(entry.content_hash)

    async def resend_failed(self, entry: LedgerEntry, platforms: Sequence[str]) -> Dict[str, PublishResult]:
        """Send a FINISHED post again to `platforms`, which must be among its failed ones (`ledger retry`).

        The post is reopened in the ledger first (one caller wins; posted platforms stay posted, so they are
        refused by `begin_sending`), the image and its sidecar captions are read from the library or, once
        archived, from the archive, each outcome is recorded as it happens, then the post is finished again.
        """
        targets = [p for p in self.publishers if p.platform_name in set(platforms) & set(entry.failed_platforms)]
        if not targets:
            return {}
        if not self.ledger.reopen_failed(entry.content_hash):
            raise StorageError(f"{entry.image_name}: another command is re-sending it, or it changed; list again")
        log_json(
            logger,
            logging.WARNING,
            "ledger_resending_failed",
            image_name=entry.image_name,
            content_hash=entry.content_hash,
            platforms=[p.platform_name for p in targets],
        )
        try:
            return await self._resend(entry, targets)
        finally:
            await self._finish_resend(entry)

    async def _finish_resend(self, entry: LedgerEntry) -> None:
        """Record the reopened post as posted again (unless an outcome is unknown: then it stays for the
        operator), keeping its archive state: archived stays archived, a pending archive is done now."""
        if not self.ledger.finish_post(entry.content_hash, entry.image_name, archive=self.config.content.archive):
            return
        if entry.archive_state == ARCHIVE_DONE:
            self.ledger.mark_archived(entry.content_hash)
        elif self.config.content.archive:
            await self._archive_pending(entry)

    async def _resend(self, entry: LedgerEntry, targets: Sequence[Publisher]) -> Dict[str, PublishResult]:
        """Publish `entry`'s image (from the library, else the archive) to `targets`, recording each outcome."""
        storage, stored_name = await self._locate(entry)
        image = await fetch_image_content(storage, stored_name)
        approved = await read_approved_content(storage, image)  # the sidecar beside the stored name
        image = dataclasses.replace(image, name=entry.image_name)  # posted under the name it was posted with
        if approved is None:
            fresh = await self._analyze_image(image)
            approved = (fresh, await self._generate_caption(fresh))
        analysis, captions = approved
        return await self._publish_all(image, captions, analysis, entry.content_hash, targets)

    async def _locate(self, entry: LedgerEntry) -> Tuple[Storage, str]:
        """(storage, name) of the bytes `entry` recorded: the library's image, or its copy in the archive (an
        archived image may carry a suffix added to avoid a clash: `photo_1.jpg`, `photo (1).jpg`)."""
        stored = await self.storage.get_image(entry.image_name)
        if stored is not None and await self.storage.content_hash(stored) == entry.content_hash:
            return self.storage, entry.image_name
        archive = self.storage.archive_view()
        stem = Path(entry.image_name).stem
        suffix = Path(entry.image_name).suffix.lower()
        candidates = [
            e
            for e in await archive.list_images()
            if e.name.startswith(stem) and Path(e.name).suffix.lower() == suffix
        ]
        candidates.sort(key=lambda e: (e.name != entry.image_name, e.name))
        for candidate in candidates:
            if await archive.content_hash(candidate) == entry.content_hash:
                return archive, candidate.name
        raise StorageError(
            f"Image {entry.image_name} ({entry.content_hash[:12]}) is neither in the library nor in its archive"
        )
