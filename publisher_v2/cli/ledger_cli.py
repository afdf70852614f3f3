"""`publisher --config FILE ledger ...`: the operator's view of unfinished posts, and how to resolve them.

A run killed mid-post leaves its image 'claimed' or 'publishing' in the ledger, perhaps with a platform whose
outcome is unknown (the run died between calling it and recording the answer). Nothing resolves an unknown
outcome by itself, because guessing wrong would post twice. This command lists those posts and applies the
operator's decision:

- `list [--json]`: every unfinished post with its per-platform state.
- `mark-posted IMAGE [--platform P]... [--post-id ID]`: the operator saw the post on P (default: every
  unknown platform); once nothing is unknown the post is recorded and the image archived. Nothing is sent.
- `retry IMAGE [--platform P]...`: send to the platforms not recorded as posted, then record and archive.
  Naming an unknown platform with --platform states it was NOT posted, so it is sent again. On a FINISHED post
  with a platform recorded as failed (a partial failure), it sends only the failed platforms, reading the image
  and its sidecar from the library or the archive (`WorkflowOrchestrator.resend_failed`).
- `release IMAGE`: drop a claim on which nothing was posted, so the image can be picked again.

IMAGE is an image name or the first 8+ characters of a content hash. A post still held by a live run is left
alone unless `--force`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any, List

from publisher_v2.config.loader import load_application_config
from publisher_v2.config.schema import ALL_PLATFORMS, ApplicationConfig
from publisher_v2.domain.errors import StorageError
from publisher_v2.ledger import PostLedger, open_ledger
from publisher_v2.ledger.records import LedgerEntry, owner_alive, readable_time
from publisher_v2.ledger.schema import ARCHIVE_DONE, ARCHIVE_PENDING, CLAIMED, POSTED, PUBLISHING, SENDING
from publisher_v2.utils.logging import sanitize
from publisher_v2.utils.terminal import escape_controls, say

_UNFINISHED = (CLAIMED, PUBLISHING, POSTED)


def add_ledger_parser(commands: Any) -> None:
    """Add the `ledger` sub-command to `commands` (the CLI's subparsers)."""
    ledger = commands.add_parser("ledger", help="list and resolve interrupted posts (see docs_v2/ledger.md)")
    actions = ledger.add_subparsers(dest="ledger_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="unfinished posts with their per-platform state")
    listing.add_argument("--json", action="store_true", help="one JSON document instead of text")
    for name, text in (
        ("mark-posted", "record platforms as posted (nothing is sent), then finish and archive"),
        ("retry", "send to platforms not recorded as posted (a posted image: only its failed ones), then finish"),
        ("release", "drop a claim on which nothing was posted"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("image", metavar="IMAGE", help="image name or content-hash prefix (8+ chars)")
        action.add_argument("--force", action="store_true", help="also act on a post held by a live run")
        if name != "release":
            action.add_argument("--platform", action="append", default=[], help="a platform (repeatable)")
        if name == "mark-posted":
            action.add_argument("--post-id", help="the platform's post id, when known")


def _describe(entry: LedgerEntry, platforms: List[str], me: str = "") -> List[str]:
    alive = owner_alive(entry.claim_owner)
    owner = "this command" if entry.claim_owner == me else {True: "alive", False: "gone", None: "unknown host"}[alive]
    state = entry.status if entry.status != POSTED else "posted, archive pending"
    lines = [
        f"{entry.image_name}  {entry.content_hash[:16]}  {state}  since {readable_time(entry.claimed_at or '')}"
        f"  (run {entry.claim_owner}: {owner})"
    ]
    for platform in sorted(set(platforms) | set(entry.platforms)):
        outcome = entry.platforms.get(platform)
        if outcome is None:
            text = "not sent"
        elif outcome.state == SENDING:
            text = "UNKNOWN (sent, no outcome recorded): check the platform, then mark-posted or retry --platform"
        elif outcome.state == POSTED:
            text = f"posted (id {outcome.post_id})"
        else:
            text = f"failed ({outcome.error})"
        lines.append(f"    {platform:<10} {text}")
    return lines


def _list(ledger: PostLedger, config: ApplicationConfig, as_json: bool) -> int:
    entries = ledger.unfinished()
    platforms = config.enabled_platforms()
    failed = ledger.partly_failed(platforms)
    if as_json:  # redacted like a log line; json.dumps escapes every control character (\u001b)
        document = {
            "ledger": ledger.where,
            "platforms": platforms,
            "unfinished": [e.as_dict() for e in entries],
            "failed_platforms": [e.as_dict() for e in failed],
        }
        print(json.dumps(sanitize(document)), flush=True)
        return 0
    say(f"{len(entries)} unfinished post(s) in {ledger.where}")
    for entry in entries:
        for line in _describe(entry, platforms):  # each line escaped whole: a name cannot start a line of its own
            say(line)
    for line in _describe_failed(failed, config):
        say(line)
    return 0


def _describe_failed(entries: List[LedgerEntry], config: ApplicationConfig) -> List[str]:
    """Posted images with a platform that failed: each with its outcomes and the command that re-sends it."""
    if not entries:
        return []
    lines = [f"{len(entries)} posted image(s) with a failed platform (`retry` sends only the failed ones again)"]
    for entry in entries:
        archived = {ARCHIVE_PENDING: ", archive pending", ARCHIVE_DONE: ", archived"}.get(entry.archive_state or "", "")
        lines.append(
            f"{entry.image_name}  {entry.content_hash[:16]}  posted {readable_time(entry.posted_at or '')}{archived}"
        )
        for platform, outcome in sorted(entry.platforms.items()):
            text = f"posted (id {outcome.post_id})" if outcome.state == POSTED else f"FAILED ({outcome.error})"
            lines.append(f"    {platform:<10} {text}")
        lines.append(f"    run: publisher --config {config.config_path} ledger retry {entry.image_name}")
    return lines


def _unfinished_matches(ledger: PostLedger, key: str) -> List[LedgerEntry]:
    return [
        e
        for e in ledger.find(key)
        if e.status in _UNFINISHED and (e.status != POSTED or e.archive_state == ARCHIVE_PENDING)
    ]


def _target(ledger: PostLedger, key: str, force: bool, take: bool = True) -> LedgerEntry:
    """The one unfinished entry `key` names, taken over by this process unless not `take` (errors are
    StorageError)."""
    matches = _unfinished_matches(ledger, key)
    if not matches:
        raise StorageError(f"No unfinished post matches {key!r} (see `publisher ledger list`)")
    if len(matches) > 1:
        raise StorageError(f"{key!r} matches {len(matches)} posts; give more of the content hash")
    entry = matches[0]
    if not force and not ledger.is_stale(entry):
        raise StorageError(
            f"{entry.image_name} is held by a live run ({entry.claim_owner}, since {entry.claimed_at});"
            " wait for it, or use --force if that run is gone"
        )
    if not take:
        return entry
    if not ledger.take_over(entry.content_hash, entry.claim_owner):
        raise StorageError(f"{entry.image_name} changed while we looked; list again")
    taken = ledger.entry(entry.content_hash)
    assert taken is not None
    return taken


async def _resolve(args: argparse.Namespace, config: ApplicationConfig, ledger: PostLedger) -> int:
    from publisher_v2.core.workflow import WorkflowOrchestrator
    from publisher_v2.wiring import build_ai_service, build_publishers, build_storage

    _check_arguments(args)
    if args.ledger_action == "retry" and not _unfinished_matches(ledger, args.image):
        return await _retry_failed(args, config, ledger)
    entry = _target(ledger, args.image, args.force, take=args.ledger_action != "release")
    if args.ledger_action == "release":  # check and drop in one transaction, still held by the owner we saw
        if not ledger.release_unposted(entry.content_hash, owner=entry.claim_owner):
            raise StorageError(
                f"Cannot release {entry.image_name}: posted on {', '.join(entry.posted_platforms) or 'none'},"
                f" unknown on {', '.join(entry.unknown) or 'none'}; use mark-posted or retry"
                " (or it changed while we looked: list again); nothing was changed"
            )
        say(f"Released {entry.image_name}: it can be picked again")
        return 0
    unknown_named = [p for p in args.platform if p in entry.unknown]
    if args.ledger_action == "mark-posted":
        chosen = args.platform or entry.unknown
        if not chosen:
            raise StorageError(f"{entry.image_name} has no unknown platform; name one with --platform")
        for platform in chosen:
            ledger.resolve_platform(entry.content_hash, platform, posted=True, post_id=args.post_id)
    else:
        for platform in unknown_named:  # the operator checked: it was not posted
            ledger.resolve_platform(entry.content_hash, platform, posted=False, post_id=None)
    entry = ledger.entry(entry.content_hash)  # type: ignore[assignment]
    storage = build_storage(config)
    try:
        orchestrator = WorkflowOrchestrator(
            config, storage, build_ai_service(config), build_publishers(config), ledger=ledger
        )
        results = await orchestrator.complete_post(entry, send=args.ledger_action == "retry")
    finally:
        close = getattr(storage, "close", None)
        if callable(close):
            close()
    for platform, result in sorted(results.items()):
        say(f"{platform}: {'posted ' + str(result.post_id) if result.success else 'failed: ' + str(result.error)}")
    final = ledger.entry(entry.content_hash)
    if final is not None and final.status == POSTED and final.archive_state != ARCHIVE_PENDING:
        say(f"{entry.image_name}: finished (posted on {', '.join(final.posted_platforms)})")
        return 0
    say(f"{entry.image_name}: still unfinished")
    for line in _describe(final, config.enabled_platforms(), ledger.owner) if final else []:
        say(line)
    return 1 if any(not r.success for r in results.values()) else 0


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse what the ledger must not record: a platform the program does not know, an empty post id, or a
    post id with control characters (it would be replayed raw on every later listing)."""
    for platform in getattr(args, "platform", None) or []:
        if platform not in ALL_PLATFORMS:
            raise StorageError(
                f"--platform '{escape_controls(platform)}': not a platform; expected one of {', '.join(ALL_PLATFORMS)}"
            )
    post_id = getattr(args, "post_id", None)
    if post_id is not None and (not post_id.strip() or escape_controls(post_id) != post_id):
        raise StorageError(
            f"--post-id '{escape_controls(post_id)}': must be the platform's post id: not empty, no control characters"
        )


async def _retry_failed(args: argparse.Namespace, config: ApplicationConfig, ledger: PostLedger) -> int:
    """`retry` on a FINISHED post: send again only the platforms recorded as failed (all, or those named)."""
    from publisher_v2.core.workflow import WorkflowOrchestrator
    from publisher_v2.wiring import build_ai_service, build_publishers, build_storage

    matches = [e for e in ledger.find(args.image) if e.status == POSTED]
    if not matches:
        raise StorageError(f"No post matches {args.image!r} (see `publisher ledger list`)")
    if len(matches) > 1 and len([e for e in matches if e.failed_platforms]) == 1:
        matches = [e for e in matches if e.failed_platforms]  # one name, several images: the one that failed
    if len(matches) > 1:
        raise StorageError(f"{args.image!r} matches {len(matches)} posts; give more of the content hash")
    entry = matches[0]
    when = readable_time(entry.posted_at or "")
    if not entry.failed_platforms:
        say(f"{entry.image_name}: nothing to retry (posted on {_names(entry.posted_platforms)} on {when})")
        return 0
    enabled = config.enabled_platforms()
    for platform in args.platform:
        outcome = entry.platforms.get(platform)
        if outcome is not None and outcome.state == POSTED:
            raise StorageError(
                f"{entry.image_name} is recorded as posted on {platform} (id {outcome.post_id}); never sent twice"
            )
        if outcome is None:
            raise StorageError(
                f"{entry.image_name} was not sent to {platform}; it failed on {_names(entry.failed_platforms)}"
            )
        if platform not in enabled:
            raise StorageError(f"{platform} is not enabled in {config.config_path}; enable it to re-send")
    chosen = args.platform or [p for p in entry.failed_platforms if p in enabled]
    if not chosen:
        raise StorageError(
            f"{entry.image_name} failed on {_names(entry.failed_platforms)},"
            f" none of them enabled in {config.config_path}"
        )
    storage = build_storage(config)
    try:
        orchestrator = WorkflowOrchestrator(
            config, storage, build_ai_service(config), build_publishers(config), ledger=ledger
        )
        results = await orchestrator.resend_failed(entry, chosen)
    finally:
        close = getattr(storage, "close", None)
        if callable(close):
            close()
    for platform, result in sorted(results.items()):
        say(f"{platform}: {'posted ' + str(result.post_id) if result.success else 'failed: ' + str(result.error)}")
    final = ledger.entry(entry.content_hash)
    still = final.failed_platforms if final is not None else []
    posted = final.posted_platforms if final is not None else []
    if still:
        say(f"{entry.image_name}: posted on {_names(posted)}; still failed on {_names(still)}")
        return 1
    say(f"{entry.image_name}: finished (posted on {_names(posted)})")
    return 0


def _names(platforms: List[str]) -> str:
    return ", ".join(platforms) if platforms else "none"


def run_ledger_command(args: argparse.Namespace) -> int:
    """Run `publisher ledger ...`; expected failures raise SocialMediaPublisherError (one line, exit 1)."""
    config = load_application_config(args.config, args.env)
    with open_ledger(config) as ledger:
        if args.ledger_action == "list":
            return _list(ledger, config, args.json)
        return asyncio.run(_resolve(args, config, ledger))
