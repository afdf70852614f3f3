"""THE way a ledger is opened: the CLI, the web service, the ledger commands and the workflow all call `open_ledger`.

Opening is two steps: the store the configuration names (SQLite file or PostgreSQL), then upstream's posted.json
imported once per ledger (ledger/upstream.py). The import is a step here, not a side effect of PostLedger's
constructor, so a tool that must not import (migrate-to-postgres) simply asks not to.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable, Optional, Union

from publisher_v2.config.schema import ApplicationConfig, StateConfig
from publisher_v2.ledger.post_ledger import PostLedger
from publisher_v2.ledger.stores import LedgerStore, ledger_store
from publisher_v2.ledger.upstream import import_upstream_posted

#: What names a ledger: a loaded configuration, its [State] section, a store, a postgresql:// URL or a file path.
LedgerSource = Union[ApplicationConfig, StateConfig, LedgerStore, Path, str]


def store_of(state: Union[ApplicationConfig, StateConfig]) -> LedgerStore:
    """The configured store: PostgreSQL when [State] url (or DATABASE_URL) is set, else the SQLite file."""
    section = state.state if isinstance(state, ApplicationConfig) else state
    return ledger_store(section.url, section.url_setting, section.ledger_path)


def open_ledger(
    where: LedgerSource,
    claim_ttl_seconds: Optional[int] = None,
    *,
    clock: Optional[Callable[[], datetime]] = None,
    import_upstream: bool = True,
) -> PostLedger:
    """The post ledger `where` names, with upstream's posted.json imported once (unless `import_upstream` is False).

    From a configuration the claim TTL is its [State] claim_ttl_seconds; `claim_ttl_seconds` overrides it.
    The import never raises (a corrupt file or a ledger failure is logged and tried again next time).
    """
    if isinstance(where, (ApplicationConfig, StateConfig)):
        section = where.state if isinstance(where, ApplicationConfig) else where
        location: Union[LedgerStore, Path, str] = store_of(section)
        ttl = claim_ttl_seconds if claim_ttl_seconds is not None else section.claim_ttl_seconds
    else:
        location, ttl = where, claim_ttl_seconds if claim_ttl_seconds is not None else 3600
    ledger = PostLedger(location, ttl, clock=clock)
    if import_upstream:
        import_upstream_posted(ledger)
    return ledger
