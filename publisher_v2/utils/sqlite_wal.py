"""SQLite in WAL mode with a busy timeout: how the ledger file and local storage's hash cache are opened.

Several processes (cron runs, web workers) share these files; WAL lets readers run beside one writer, and the
busy timeout makes a writer wait for another's lock instead of failing at once.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

#: How long a writer waits for another one's lock before failing (milliseconds).
BUSY_TIMEOUT_MS = 15_000


def _enable_wal(conn: sqlite3.Connection) -> str:
    """Switch the file to WAL (a persistent setting), retrying while another process does the same.

    SQLite answers "database is locked" at once, without calling the busy handler, when two connections
    change the journal mode of a new file together (seen with four processes starting on a fresh ledger).
    """
    delay = 0.005
    for _ in range(60):
        mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode == "wal":
            return mode
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()


def connect_wal(path: Path) -> sqlite3.Connection:
    """An autocommit connection in WAL mode with a busy timeout, usable from any thread (callers lock).

    Autocommit (isolation_level=None) leaves transactions to us: BEGIN IMMEDIATE where a read decides a write.
    """
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        mode = _enable_wal(conn)
    except BaseException:
        conn.close()
        raise
    if mode != "wal":
        conn.close()
        raise sqlite3.OperationalError(f"cannot switch to WAL journal mode (got {mode!r})")
    # NORMAL is durable across application crashes in WAL mode; only a power cut may lose the last commits.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn

