"""Where the ledger lives: one SQLite file (the default), or a PostgreSQL database (psycopg 3, `postgres` extra).

The ledger's SQL (`publisher_v2/ledger/`) is written once, with `?` placeholders and statements both
databases speak (`INSERT ... ON CONFLICT`, `CAST(? AS TEXT)`). A store only opens connections, runs a
check-then-write transaction the way its database serialises one, and runs the schema migration under a
database lock. Neither store uses a process lock:

- SQLite: `BEGIN IMMEDIATE` takes the file's write lock before the first read.
- PostgreSQL: SERIALIZABLE transactions. Of two racing writers the database aborts one (serialization failure,
  or a unique-key violation on the same new row); the loser runs again from the start on fresh data. The
  migration holds a transaction-scoped advisory lock, so processes starting together migrate once.
"""


from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple, TypeVar, Union

from publisher_v2.domain.errors import ConfigurationError, StorageError
from publisher_v2.utils.db_url import check_postgres_url, display_url, url_secrets
from publisher_v2.utils.logging import register_secret
from publisher_v2.utils.sqlite_wal import connect_wal

T = TypeVar("T")

#: Seconds a PostgreSQL connection attempt may take before the setting is reported as unreachable.
PG_CONNECT_TIMEOUT = 10

#: Key of the advisory lock the PostgreSQL migration holds (any constant; "ledger" in ASCII).
_MIGRATION_LOCK = 0x6C6564676572

#: Attempts of one PostgreSQL write transaction that lost races before giving up.
_PG_ATTEMPTS = 60


class LedgerStore:
    """What the ledger needs from a database: connections, write transactions, a migration lock."""

    kind = ""
    #: The exceptions of this database's driver (they become StorageError naming `where`).
    errors: Tuple[type, ...] = ()
    #: Where the ledger is, safe to print (never a password).
    where = ""
    #: What `PostLedger(...)` was given: a Path for SQLite, the URL for PostgreSQL.
    location: Union[Path, str] = ""

    def prepare(self) -> None:
        """Checks that need no connection (e.g. the folder of a SQLite file exists)."""

    def connect(self) -> Any:
        raise NotImplementedError

    def transaction(self, conn: Any, work: Callable[[Any], T]) -> T:
        """Run `work(conn)` as one check-then-write transaction that no concurrent writer can interleave."""
        raise NotImplementedError

    def migration(self, conn: Any, work: Callable[[Any], T]) -> T:
        """Run `work(conn)` in one transaction that only one process at a time may be in."""
        raise NotImplementedError

    def table_exists(self, conn: Any, name: str) -> bool:
        raise NotImplementedError

    def describe_mode(self, conn: Any) -> str:
        """SQLite's journal mode ('wal'); the server version for PostgreSQL."""
        raise NotImplementedError

    def connection_lost(self, conn: Any) -> bool:
        """Whether `conn` is unusable now (the server went away) and must be reopened."""
        return False

    def opening_failed(self, exc: Exception) -> Exception:
        """The error to raise when the first connection (or its migration) fails."""
        return StorageError(f"Ledger {self.where}: cannot open: {exc}")


class SQLiteStore(LedgerStore):
    """One SQLite file in WAL mode, shared by every process on this machine."""

    kind = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self.location = self.path
        self.where = str(self.path)

    def prepare(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"Cannot create the ledger folder {self.path.parent}: {exc}") from None

    def connect(self) -> sqlite3.Connection:
        return connect_wal(self.path)

    def transaction(self, conn: sqlite3.Connection, work: Callable[[Any], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    migration = transaction

    def table_exists(self, conn: sqlite3.Connection, name: str) -> bool:
        row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        return row is not None

    def describe_mode(self, conn: sqlite3.Connection) -> str:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


class _PgConnection:
    """A psycopg connection that takes the ledger's `?` placeholders (translated once per statement)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._sql: Dict[str, str] = {}

    def _translate(self, sql: str) -> str:
        translated = self._sql.get(sql)
        if translated is None:
            translated = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return translated

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(self._translate(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(self._translate(sql), [tuple(r) for r in rows])

    def close(self) -> None:
        self.raw.close()


def _psycopg(setting: str = "[State] url") -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigurationError(
            f"{setting}: a postgresql:// ledger needs psycopg 3: pip install 'publisher_v2[postgres]'"
        ) from None
    return psycopg


class PostgresStore(LedgerStore):
    """A PostgreSQL database shared by every process on every machine (psycopg 3, autocommit + SERIALIZABLE)."""

    kind = "postgresql"

    def __init__(self, url: str, setting: str = "[State] url") -> None:
        self.location = url
        self.setting = setting
        self.where = display_url(url)
        for secret in url_secrets(url):
            register_secret(secret)
        check_postgres_url(url, setting)
        self.errors = (_psycopg(setting).Error,)

    def connect(self) -> _PgConnection:
        psycopg = _psycopg()
        raw = psycopg.connect(self.location, autocommit=True, connect_timeout=PG_CONNECT_TIMEOUT)
        raw.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        return _PgConnection(raw)

    def transaction(self, conn: _PgConnection, work: Callable[[Any], T]) -> T:
        errors = _psycopg().errors
        retryable = (errors.SerializationFailure, errors.DeadlockDetected, errors.UniqueViolation)
        delay = 0.002
        for attempt in range(_PG_ATTEMPTS):
            try:
                with conn.raw.transaction():
                    return work(conn)
            except retryable:
                if attempt == _PG_ATTEMPTS - 1:
                    raise
            time.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter, not security
            delay = min(delay * 2, 0.1)
        raise AssertionError("unreachable")

    def migration(self, conn: _PgConnection, work: Callable[[Any], T]) -> T:
        # READ COMMITTED: each statement sees what the process that held the lock before us committed.
        psycopg = _psycopg()
        conn.raw.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        try:
            with conn.raw.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
                return work(conn)
        finally:
            conn.raw.isolation_level = psycopg.IsolationLevel.SERIALIZABLE

    def table_exists(self, conn: _PgConnection, name: str) -> bool:
        # A query on pg_tables, not to_regclass(): it reads with the statement's snapshot, so after waiting for
        # the migration lock it sees the tables the previous holder committed (to_regclass may not).
        return conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"
            " AND tablename = CAST(? AS TEXT))",
            (name,),
        ).fetchone()[0]

    def describe_mode(self, conn: _PgConnection) -> str:
        return f"postgresql {conn.raw.info.server_version}"

    def connection_lost(self, conn: _PgConnection) -> bool:
        return bool(conn.raw.closed or conn.raw.broken)

    def opening_failed(self, exc: Exception) -> Exception:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in url_secrets(self.location):
            text = text.replace(secret, "***")
        if isinstance(exc, ConfigurationError):
            return exc
        return ConfigurationError(f"{self.setting}: cannot use the PostgreSQL ledger at {self.where}: {text}")


def store_for(location: Union[LedgerStore, Path, str], setting: str = "[State] url") -> LedgerStore:
    """The store for a ledger location: a store as is, a postgresql:// URL, else a SQLite file path."""
    if isinstance(location, LedgerStore):
        return location
    if isinstance(location, str) and location.split(":", 1)[0] in ("postgresql", "postgres"):
        return PostgresStore(location, setting)
    return SQLiteStore(location)


def ledger_store(url: Optional[str], url_setting: str, ledger_path: Path) -> LedgerStore:
    """The configured store: PostgreSQL when a URL is set, else the SQLite file."""
    return PostgresStore(url, url_setting) if url else SQLiteStore(ledger_path)
