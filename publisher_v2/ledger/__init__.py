"""The ledger: the one truth, shared by every process, about which images are claimed, posting or posted.

Open it with `open_ledger(config)`. Modules: stores.py (SQLite file / PostgreSQL), schema.py (tables and
migrations), connection.py (one shared connection), queries.py / imports.py / post_ledger.py (PostLedger),
records.py (what it hands out), upstream.py (the import of upstream's posted.json), opening.py (`open_ledger`).
"""

from publisher_v2.ledger.opening import open_ledger, store_of
from publisher_v2.ledger.post_ledger import PostLedger
from publisher_v2.ledger.records import (
    ClaimConflict,
    ImageAlreadyPosted,
    ImageBusy,
    ImportRecord,
    LedgerEntry,
    PlatformOutcome,
)
from publisher_v2.ledger.schema import SCHEMA_VERSION, SchemaTooNew

__all__ = [
    "SCHEMA_VERSION",
    "ClaimConflict",
    "ImageAlreadyPosted",
    "ImageBusy",
    "ImportRecord",
    "LedgerEntry",
    "PlatformOutcome",
    "PostLedger",
    "SchemaTooNew",
    "open_ledger",
    "store_of",
]
