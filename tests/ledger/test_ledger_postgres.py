"""The ledger on PostgreSQL: how it is selected, its errors (naming the setting, never the password), losing the
server mid-run, the copy from SQLite, and a real CLI run. A throw-away server; real processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest

from publisher_v2.config.loader import load_application_config
from publisher_v2.domain.errors import ConfigurationError, StorageError
from publisher_v2.ledger import PostLedger, store_of
from publisher_v2.ledger.schema import SCHEMA_VERSION
from publisher_v2.ledger.stores import PostgresStore, SQLiteStore
from tests.cli_output import stderr_events, verdict
from tests.conftest import CORE_HELPERS
from tests.ledger.conftest import state_ini
from tests.pg_server import PASSWORD, PASSWORD_USER, ledger_query

PUBLISHER = str(Path(sys.executable).with_name("publisher"))


def test_the_ini_url_wins_over_database_url_and_sqlite_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: Dict[str, str]
) -> None:
    plain = load_application_config(state_ini(tmp_path))
    assert isinstance(store_of(plain), SQLiteStore)
    monkeypatch.setenv("DATABASE_URL", "postgresql://envuser:env-pass-1@db.example:5432/fromenv")
    from_env = store_of(load_application_config(state_ini(tmp_path)))
    assert isinstance(from_env, PostgresStore)
    assert from_env.where == "postgresql://envuser@db.example:5432/fromenv"  # no credential shown
    assert from_env.setting == "environment DATABASE_URL"
    ini = state_ini(tmp_path, "url = postgresql://iniuser:ini-pass-2@db.example/fromini")
    from_ini = store_of(load_application_config(ini))
    assert isinstance(from_ini, PostgresStore) and from_ini.where.endswith("/fromini")
    assert from_ini.setting == f"{ini}: [State] url"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("mysql://u:pw-secret-9@h/db", "expected a postgresql://"),
        ("postgresql://u:pw-secret-9@h:notaport/db", "not a valid PostgreSQL URL"),
        ("postgresql://u:pw-secret-9@h:5432", "names no database"),
    ],
)
def test_a_bad_url_is_a_configuration_error_naming_the_setting_not_the_password(
    tmp_path: Path, clean_env: Dict[str, str], url: str, expected: str
) -> None:
    ini = state_ini(tmp_path, f"url = {url}")
    with pytest.raises(ConfigurationError) as caught:
        load_application_config(ini)
    assert f"{ini}: [State] url" in str(caught.value) and expected in str(caught.value)
    assert "pw-secret-9" not in str(caught.value)


def test_an_unreachable_server_is_a_configuration_error_naming_the_setting(
    tmp_path: Path, clean_env: Dict[str, str], monkeypatch: pytest.MonkeyPatch, pg_server: Any
) -> None:
    closed = pg_server.url("postgres", PASSWORD_USER, PASSWORD).replace(str(pg_server.port), "1")
    monkeypatch.setenv("DATABASE_URL", closed)
    config = load_application_config(state_ini(tmp_path))
    with pytest.raises(ConfigurationError) as caught:
        PostLedger(store_of(config)).known_hashes()
    assert str(caught.value).startswith("environment DATABASE_URL: cannot use the PostgreSQL ledger at")
    assert PASSWORD not in str(caught.value) and f"at postgresql://{PASSWORD_USER}@127.0.0.1:1/postgres" in str(
        caught.value
    )


def test_a_wrong_password_and_missing_privileges_are_configuration_errors(pg_server: Any) -> None:
    wrong = PostgresStore(pg_server.url("postgres", PASSWORD_USER, "not-the-pw-77"))
    with pytest.raises(ConfigurationError, match="password authentication failed") as caught:
        PostLedger(wrong).known_hashes()
    assert "not-the-pw-77" not in str(caught.value)
    # A database owned by someone else: the user may connect but not create the ledger's tables.
    foreign = PostgresStore(pg_server.url(pg_server.new_database(), PASSWORD_USER, PASSWORD))
    with pytest.raises(ConfigurationError, match="permission denied") as caught:
        PostLedger(foreign).claim("h", "a.jpg")
    assert str(caught.value).startswith("[State] url: ") and PASSWORD not in str(caught.value)
    owned = PostgresStore(pg_server.url(pg_server.new_database(PASSWORD_USER), PASSWORD_USER, PASSWORD))
    assert PostLedger(owned).claim("h", "a.jpg") is True
    assert PostLedger(owned).schema_version() == SCHEMA_VERSION


def test_losing_the_server_mid_run_fails_cleanly_and_nothing_is_sent_twice(pg_server: Any) -> None:
    url = pg_server.url(pg_server.new_database())
    run = PostLedger(url)
    assert run.claim("h1", "a.jpg")
    run.mark_publishing("h1")
    assert run.begin_sending("h1", "telegram")
    pg_server.restart()  # every connection is dropped
    with pytest.raises(StorageError, match=r"Ledger postgresql://postgres@127\.0\.0\.1:\d+/ledger_\w+: "):
        run.record_outcome("h1", "telegram", True, "t-1", None)
    # The next call reconnects; the platform is still 'sending' (unknown), so nobody sends it again.
    assert run.begin_sending("h1", "telegram") is False
    other = PostLedger(url)
    assert other.claim("h1", "a.jpg") is False and "h1" in other.known_hashes()
    entry = other.entry("h1")
    assert entry is not None and entry.status == "publishing" and entry.unknown == ["telegram"]


def test_copying_a_sqlite_ledger_into_postgresql_is_idempotent(tmp_path: Path, pg_server: Any) -> None:
    sqlite_path = tmp_path / "state" / "ledger.sqlite"
    old = PostLedger(sqlite_path)
    old.record_post("h-posted", "a.jpg", {"telegram": {"success": True, "post_id": "t-1"}, "email": False})
    assert old.claim("h-claimed", "b.jpg")
    old.mark_rejected("h-bad", "c.txt.jpg", "not an image")
    old.close()
    url = pg_server.url(pg_server.new_database())
    already = PostLedger(url)
    already.record_post("h-posted-pg", "z.jpg", {"telegram": {"success": True, "post_id": "pg-1"}})
    ini = state_ini(tmp_path, f"url = {url}")
    outputs = [
        subprocess.run([PUBLISHER, "--config", str(ini), "migrate-to-postgres"], capture_output=True, text=True,
                       timeout=60)
        for _ in range(2)
    ]
    assert [o.returncode for o in outputs] == [0, 0], [o.stderr for o in outputs]
    assert "images: 3 copied, 0 already there (kept); platform outcomes: 2 copied; upstream import" in (
        outputs[0].stdout
    )
    assert "images: 0 copied, 3 already there (kept); platform outcomes: 0 copied; upstream import" in (
        outputs[1].stdout
    )
    copied = PostLedger(url)
    assert copied.known_hashes() == {"h-posted", "h-claimed", "h-bad", "h-posted-pg"}
    entry = copied.entry("h-posted")
    assert entry is not None and entry.posted_platforms == ["telegram"] and entry.platforms["email"].state == "failed"
    assert ledger_query(url, "SELECT COUNT(*) FROM platform_posts") == [(3,)]


def test_migrate_without_a_url_says_which_setting_to_set(tmp_path: Path, clean_env: Dict[str, str]) -> None:
    result = subprocess.run([PUBLISHER, "--config", str(state_ini(tmp_path)), "migrate-to-postgres"],
                            capture_output=True, text=True, timeout=60, env=clean_env)
    assert result.returncode == 1
    assert "[State] url: set it (or DATABASE_URL)" in result.stderr


@pytest.mark.slow
def test_a_cli_run_on_postgresql_posts_once_and_records_it(
    sample_library: Path, pg_server: Any, clean_env: Dict[str, str]
) -> None:
    url = pg_server.url(pg_server.new_database())
    env = {**clean_env, "DATABASE_URL": url}
    runs = [
        subprocess.run([PUBLISHER, "--config", str(sample_library)], capture_output=True, text=True, timeout=120,
                       env=env)
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]
    ledger = PostLedger(url)
    assert ledger.posted_count() == 2
    local = sample_library.parent / "state" / "ledger.sqlite"  # only the storage's hash cache lives here now
    if local.exists():
        with sqlite3.connect(local) as raw:
            tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "posted_images" not in tables
    listing = subprocess.run([PUBLISHER, "--config", str(sample_library), "ledger", "list", "--json"],
                             capture_output=True, text=True, timeout=60, env=env)
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)["ledger"] == url


@pytest.mark.slow
def test_a_server_restart_mid_run_fails_the_run_cleanly_and_nothing_is_posted_twice(
    sample_library: Path, pg_server: Any, clean_env: Dict[str, str], tmp_path: Path
) -> None:
    url = pg_server.url(pg_server.new_database())
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {**clean_env, "DATABASE_URL": url, "PAUSE_DIR": str(pause)}
    helper = CORE_HELPERS / "pause_after_post.py"
    run = subprocess.Popen([sys.executable, str(helper), "--config", str(sample_library)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (pause / "paused").exists():
        assert run.poll() is None and time.time() < deadline, run.communicate()
        time.sleep(0.05)
    pg_server.restart()  # the run's connection is gone while it is between a post and its record
    (pause / "go").touch()
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1 and "Ledger postgresql://" in verdict(err), (out, err)
    assert "Traceback" not in err

    again = [subprocess.run([PUBLISHER, "--config", str(sample_library)], capture_output=True, text=True,
                            timeout=120, env=env) for _ in range(2)]
    assert all(r.returncode in (0, 1) for r in again), [r.stderr[-1000:] for r in again]
    posts: Dict[tuple, int] = {}
    for record in (sample_library.parent / "outbox").glob("*/*/post.json"):
        key = (record.parent.parent.name, json.loads(record.read_text(encoding="utf-8"))["image_name"])
        posts[key] = posts.get(key, 0) + 1
    assert posts and set(posts.values()) == {1}, posts  # nothing posted twice
    unfinished = json.loads(subprocess.run([PUBLISHER, "--config", str(sample_library), "ledger", "list", "--json"],
                                           capture_output=True, text=True, timeout=60, env=env).stdout)["unfinished"]
    assert len(unfinished) == 1 and unfinished[0]["platforms"], unfinished  # the interrupted post, for the operator


@pytest.mark.slow
def test_a_web_worker_with_an_unreachable_database_stops_at_start_naming_the_setting(
    sample_library: Path, clean_env: Dict[str, str]
) -> None:
    from tests.web.conftest import free_port, uvicorn_command

    closed = free_port()  # nobody listens there
    env = {
        **clean_env,
        "CONFIG_PATH": str(sample_library),
        "DATABASE_URL": f"postgresql://bob:hunter22x@127.0.0.1:{closed}/db",
    }
    done = subprocess.run(uvicorn_command(free_port()), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    (event,) = stderr_events(done.stderr)  # ONE line (issue 22.6): no traceback, no "Application startup failed"
    assert event["message"] == "web_cannot_start" and event["error"].startswith(
        f"environment DATABASE_URL: cannot use the PostgreSQL ledger at postgresql://bob@127.0.0.1:{closed}/db:"
    )
    assert "hunter22x" not in done.stderr

    text = sample_library.read_text(encoding="utf-8")  # the INI's [State] url wins, and is the setting named
    url = f"postgresql://bob:hunter22x@127.0.0.1:{closed}/ini_db"
    sample_library.write_text(text.replace("[State]\n", f"[State]\nurl = {url}\n", 1), encoding="utf-8")
    done = subprocess.run(uvicorn_command(free_port()), env=env, capture_output=True, text=True, timeout=60)
    (event,) = stderr_events(done.stderr)
    assert done.returncode == 1 and event["error"].startswith(f"{sample_library}: [State] url: cannot use the ")


def test_without_psycopg_the_error_names_the_setting_and_the_extra(
    sample_library: Path, clean_env: Dict[str, str]
) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None; from publisher_v2.cli.app import main;"
        f" sys.exit(main(['--config', {str(sample_library)!r}]))"
    )
    env = {**clean_env, "DATABASE_URL": "postgresql://bob@db.example/ledger"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert verdict(done.stderr) == (
        "publisher: error: environment DATABASE_URL: a postgresql:// ledger needs psycopg 3:"
        " pip install 'publisher_v2[postgres]'"
    )
