"""One connection to the ledger, shared by a process's threads: the base of PostLedger and the web's SessionStore.

Each call is one short transaction; database failures become StorageError naming the ledger (never its password).
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

from publisher_v2.domain.errors import StorageError
from publisher_v2.ledger.schema import Connection, _iso, _utc_now, open_ledger_connection
from publisher_v2.ledger.stores import LedgerStore, store_for

_Self = TypeVar("_Self", bound="LedgerConnection")


class LedgerConnection:
    """One connection to the ledger, shared by the threads of a process; each call is one short transaction.

    `location` is a SQLite file path, a postgresql:// URL or a LedgerStore (publisher_v2/ledger/stores.py).
    """

    def __init__(self, location: Union[LedgerStore, Path, str], clock: Optional[Callable[[], datetime]] = None) -> None:
        self.store = store_for(location)
        #: What was given (a Path for SQLite, the URL for PostgreSQL): another store class opens the same ledger.
        self.path = self.store.location
        self._clock = clock or _utc_now
        self._lock = threading.RLock()
        self._conn: Optional[Connection] = None
        self._opened = False
        self.store.prepare()

    @property
    def where(self) -> str:
        """The ledger's location, safe to print (no password)."""
        return self.store.where

    def _connection(self) -> Connection:
        if self._conn is None:
            try:
                self._conn = open_ledger_connection(self.store)
            except self.store.errors as exc:
                if self._opened:  # it worked before: the server went away mid-run
                    raise
                raise self.store.opening_failed(exc) from None
            self._opened = True
        return self._conn

    def _run(self, action: str, work: Callable[[Connection], Any]) -> Any:
        """Run `work` under the instance lock; database failures become StorageError naming the ledger."""
        with self._lock:
            try:
                return work(self._connection())
            except self.store.errors as exc:
                if self._conn is not None and self.store.connection_lost(self._conn):
                    self._drop_connection()
                raise StorageError(f"Ledger {self.where}: {action} failed: {exc}") from None

    def _write(self, action: str, work: Callable[[Connection], Any]) -> Any:
        """`work` as one check-then-write transaction (BEGIN IMMEDIATE on SQLite, SERIALIZABLE on PostgreSQL)."""
        return self._run(action, lambda conn: self.store.transaction(conn, work))

    def _drop_connection(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone either way
            pass
        self._conn = None

    def _now(self) -> str:
        return _iso(self._clock())

    def close(self) -> None:
        """Close the connection (a later call reopens it)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
