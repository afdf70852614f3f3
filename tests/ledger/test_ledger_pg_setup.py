"""The operator guide's SQL for "create a database and a user" (issue 22.6) works as written: the block is read
from docs_v2/operator-guide.md, run as the superuser on the throw-away PostgreSQL server, and the ledger is then
opened as the new user: by the installed CLI (a real run and `ledger list`) and by PostLedger."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from publisher_v2.ledger import PostLedger
from publisher_v2.ledger.schema import SCHEMA_VERSION
from tests.conftest import BIN, REPO_ROOT

pytestmark = pytest.mark.usefixtures("clean_env")

GUIDE = REPO_ROOT / "docs_v2" / "operator-guide.md"


def guide_sql() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    (block,) = re.findall(r"^ *```sql\n(.*?)^ *```$", text, re.MULTILINE | re.DOTALL)
    return "\n".join(line.strip() for line in block.splitlines())


def statements(sql: str, names: Dict[str, str]) -> List[Tuple[str, str]]:
    """(database to run in, statement) pairs; `\\connect DB` switches the database, as psql does."""
    database, found = "postgres", []
    for line in sql.splitlines():
        for old, new in names.items():
            line = re.sub(rf"\b{re.escape(old)}\b", new, line)
        if line.startswith("\\connect "):
            database = line.split()[1]
        elif line:
            found.append((database, line.rstrip(";")))
    return found


def test_the_guides_sql_makes_a_user_the_ledger_can_run_as(pg_server: object, tmp_path: Path) -> None:
    import psycopg

    from publisher_v2.cli.sample import main as make_sample

    suffix = uuid.uuid4().hex[:8]
    user, database, password = f"publisher_{suffix}", f"publisher_{suffix}", f"pw-{suffix}-Xy9"
    sql = guide_sql()
    assert "CREATE ROLE publisher LOGIN PASSWORD" in sql and "CREATE DATABASE publisher OWNER publisher" in sql
    names = {"publisher": user, "change-me": password}
    for db, statement in statements(sql, names):  # the superuser, statement by statement, as psql would
        with psycopg.connect(pg_server.url(db), autocommit=True) as conn:  # type: ignore[attr-defined]
            conn.execute(statement)
    url = pg_server.url(database, user=user, password=password)  # type: ignore[attr-defined]

    assert make_sample([str(tmp_path / "lib"), "--count", "2", "--seed", "5"]) == 0
    ini = tmp_path / "lib" / "publisher.ini"
    text = ini.read_text(encoding="utf-8")
    assert "[State]\nledger_path" in text
    ini.write_text(text.replace("[State]\nledger_path", f"[State]\nurl = {url}\nledger_path", 1), encoding="utf-8")
    run = subprocess.run(
        [str(BIN / "publisher"), "--config", str(ini)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("Published ") and password not in run.stdout + run.stderr
    listing = subprocess.run(
        [str(BIN / "publisher"), "--config", str(ini), "ledger", "list"], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0 and listing.stdout.startswith(
        f"0 unfinished post(s) in postgresql://{user}@127.0.0.1:"
    ), listing

    with PostLedger(url) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION and ledger.posted_count() == 1
    with psycopg.connect(pg_server.url(database), autocommit=True) as conn:  # type: ignore[attr-defined]
        owners = {row[0] for row in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")}
    assert owners == {user}  # the new user created (and owns) every table
