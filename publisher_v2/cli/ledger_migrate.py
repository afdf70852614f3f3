"""`publisher --config FILE migrate-to-postgres`: copy a SQLite ledger into PostgreSQL, once, idempotently.

A deployment outgrows one machine when runs or web workers on several hosts must share the ledger. The
operator stops the runs, points `[State] url` (or DATABASE_URL) at an empty (or partly filled) PostgreSQL
database and runs this command: every image row with its per-platform outcomes and the import records are
copied in ONE transaction. An image the database already knows keeps the database's row (so running the command
again copies nothing and changes nothing); login failures are not copied (they only count for 5 minutes).

Then upstream's `posted.json` (if present) is imported into PostgreSQL, once: the ledger's own import record
decides, so a second run (or a SQLite ledger that had imported it already) reports it and imports nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List

from publisher_v2.config.loader import load_application_config
from publisher_v2.domain.errors import ConfigurationError
from publisher_v2.ledger import PostLedger, store_of
from publisher_v2.ledger.records import readable_time
from publisher_v2.ledger.schema import open_ledger_connection
from publisher_v2.ledger.stores import PostgresStore, SQLiteStore
from publisher_v2.ledger.upstream import UpstreamImport, import_posted_file, move_legacy_marker

_IMAGE_COLUMNS = (
    "content_hash", "image_name", "status", "claim_owner", "claimed_at", "posted_at", "results", "reason",
    "attempt", "archive_state",
)
_OUTCOME_COLUMNS = ("content_hash", "attempt", "platform", "state", "post_id", "error", "updated_at")
_IMPORT_COLUMNS = ("source", "path", "imported_at", "hashes", "imported", "invalid")


def add_migrate_parser(commands: Any) -> None:
    """Add the `migrate-to-postgres` sub-command to `commands` (the CLI's subparsers)."""
    migrate = commands.add_parser(
        "migrate-to-postgres",
        help="copy the SQLite ledger into the PostgreSQL ledger ([State] url or DATABASE_URL), idempotently",
    )
    migrate.add_argument("--sqlite", metavar="PATH", help="the SQLite ledger to copy (default: [State] ledger_path)")
    migrate.add_argument(
        "--posted-json",
        metavar="PATH",
        help="upstream's dedup state to import (default: $XDG_CACHE_HOME/publisher_v2/posted.json)",
    )


def _insert(conn: Any, table: str, columns: tuple, rows: List[tuple], conflict: str) -> None:
    if rows:
        marks = ", ".join("?" * len(columns))
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT ({conflict}) DO NOTHING", rows
        )


def copy_ledger(source: SQLiteStore, target: PostgresStore) -> Dict[str, int]:
    """Copy `source` into `target` in one transaction; counts of what was copied and what was there already."""
    if not source.path.is_file():
        raise ConfigurationError(f"{source.where}: no SQLite ledger to copy (see [State] ledger_path or --sqlite)")
    try:
        with PostLedger(source) as old:  # brings an older file to the current schema
            move_legacy_marker(old)  # an earlier version's marker file beside it: into the ledger, then copied
        reader = open_ledger_connection(source)
        try:
            images = [tuple(r) for r in reader.execute(f"SELECT {', '.join(_IMAGE_COLUMNS)} FROM posted_images")]
            outcomes = [tuple(r) for r in reader.execute(f"SELECT {', '.join(_OUTCOME_COLUMNS)} FROM platform_posts")]
            imports = [tuple(r) for r in reader.execute(f"SELECT {', '.join(_IMPORT_COLUMNS)} FROM ledger_imports")]
            upstream = [tuple(r) for r in reader.execute("SELECT sha256 FROM upstream_hashes")]
        finally:
            reader.close()
    except source.errors as exc:  # not a SQLite file, or damaged: one line naming it, nothing copied
        raise ConfigurationError(f"{source.where}: cannot read the SQLite ledger to copy: {exc}") from None
    try:
        writer = open_ledger_connection(target)
    except target.errors as exc:
        raise target.opening_failed(exc) from None

    def work(conn: Any) -> Dict[str, int]:
        known = {row[0] for row in conn.execute("SELECT content_hash FROM posted_images")}
        new_images = [row for row in images if row[0] not in known]
        new_hashes = {row[0] for row in new_images}
        new_outcomes = [row for row in outcomes if row[0] in new_hashes]  # a kept row keeps its own outcomes
        _insert(conn, "posted_images", _IMAGE_COLUMNS, new_images, "content_hash")
        _insert(conn, "platform_posts", _OUTCOME_COLUMNS, new_outcomes, "content_hash, attempt, platform")
        known_imports = {row[0] for row in conn.execute("SELECT source FROM ledger_imports")}
        new_imports = [row for row in imports if row[0] not in known_imports]
        _insert(conn, "ledger_imports", _IMPORT_COLUMNS, new_imports, "source")
        _insert(conn, "upstream_hashes", ("sha256",), upstream, "sha256")
        return {
            "images_copied": len(new_images),
            "images_already_there": len(images) - len(new_images),
            "outcomes_copied": len(new_outcomes),
            "imports_copied": len(new_imports),
        }

    try:
        return target.transaction(writer, work)
    except target.errors as exc:
        raise target.opening_failed(exc) from None
    finally:
        writer.close()


def run_migrate_command(args: argparse.Namespace) -> int:
    """Run `publisher migrate-to-postgres`; prints the counts. Expected failures raise (one line, exit 1)."""
    config = load_application_config(args.config, args.env)
    target = store_of(config)
    if not isinstance(target, PostgresStore):
        raise ConfigurationError(
            f"{config.config_path}: [State] url: set it (or DATABASE_URL) to the postgresql:// URL to copy the"
            " ledger into"
        )
    source = SQLiteStore(Path(args.sqlite).resolve() if args.sqlite else config.state.ledger_path)
    counts = copy_ledger(source, target)
    print(f"Copied {source.where} into {target.where}:")
    print(
        f"  images: {counts['images_copied']} copied, {counts['images_already_there']} already there (kept);"
        f" platform outcomes: {counts['outcomes_copied']} copied;"
        f" upstream import records: {counts['imports_copied']} copied"
    )
    posted = getattr(args, "posted_json", None)
    with PostLedger(target) as ledger:
        outcome = import_posted_file(ledger, Path(posted).resolve() if posted else None)
    print(describe_upstream_import(outcome))
    return 1 if outcome.status == "corrupt" else 0


def describe_upstream_import(outcome: UpstreamImport) -> str:
    """One line for the operator: what became of upstream's posted.json."""
    record = outcome.record
    if outcome.status == "absent":
        return f"Upstream posted.json: none at {outcome.path}; nothing to import"
    if outcome.status == "corrupt":
        return f"Upstream posted.json {outcome.path}: corrupt, NOT imported ({outcome.error}); fix it and run again"
    assert record is not None
    counts = f"{record.hashes} hashes: {record.imported} imported, {record.already_known} already present"
    if record.invalid:
        counts += f", {record.invalid} invalid entries skipped"
    if outcome.status == "imported":
        return f"Upstream posted.json {outcome.path}: {counts}"
    return (
        f"Upstream posted.json: already imported on {readable_time(record.imported_at)} from {record.path}"
        f" ({counts}); nothing imported now"
    )
