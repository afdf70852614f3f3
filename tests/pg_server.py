"""A throw-away PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temp folder, 127.0.0.1 on a free
port. PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (runuser) in a folder
it owns. Trust authentication for the local test user, plus one password user to prove redaction."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import List, Optional

PASSWORD_USER = "ledger_user"
PASSWORD = "s3cret-Ledger-pw"


def find_bin(name: str) -> Optional[str]:
    """`initdb`/`pg_ctl` on PATH, else in Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def available() -> Optional[str]:
    """None when a server can be started here, else why not."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    if not find_bin("initdb") or not find_bin("pg_ctl"):
        return "PostgreSQL server binaries (initdb, pg_ctl) not found"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root without runuser"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    """One server in a temp folder; `url(db)` for a database on it; `restart()` drops every connection."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ledger_pg_"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_user: List[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run([find_bin("initdb") or "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                   "--no-sync", "-E", "UTF8"])
        hba = self.data / "pg_hba.conf"  # the superuser without a password; everyone else with one
        hba.write_text("local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                       "host all all 127.0.0.1/32 scram-sha-256\n")
        self.start()
        self.admin(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")

    def _run(self, argv: List[str]) -> None:
        subprocess.run([*self.as_user, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd=str(self.root))

    def _ctl(self, *args: str) -> None:
        self._run([find_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", *args])

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._ctl("-o", options, "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def restart(self) -> None:
        """Drop every client connection (a server restart), then serve again on the same port."""
        self._ctl("-m", "fast", "restart")

    def url(self, database: str = "postgres", user: str = "postgres", password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self, owner: str = "postgres") -> str:
        """A fresh empty database (its name); `owner` may create tables in it."""
        name = "ledger_" + uuid.uuid4().hex[:12]
        self.admin(f"CREATE DATABASE {name} OWNER {owner}")
        return name

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def ledger_query(location: object, sql: str, params: tuple = ()) -> list:
    """Rows of one statement (`?` placeholders) on a ledger of either store, outside the classes under test."""
    from publisher_v2.ledger.schema import open_ledger_connection

    conn = open_ledger_connection(location)  # type: ignore[arg-type]
    try:
        cursor = conn.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
    finally:
        conn.close()
