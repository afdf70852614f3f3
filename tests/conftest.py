"""Shared fixtures: a real sample library on disk, built by the same command the README uses."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Upstream's dedup state (posted.json) is read from $XDG_CACHE_HOME when a ledger opens: no test may see the
# machine's real one (subprocesses inherit this too). Tests of the import set their own.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="publisher-tests-xdg-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)
BIN = Path(sys.executable).parent
#: The workflow's kill-test helpers (run as scripts by the ledger and CLI tests): tests/core/stage_killer.py, ...
CORE_HELPERS = Path(__file__).resolve().parent / "core"

SECRET_VARS = (
    "DROPBOX_APP_KEY",
    "DROPBOX_APP_SECRET",
    "DROPBOX_REFRESH_TOKEN",
    "OPENAI_API_KEY",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHANNEL_ID",
    "EMAIL_PASSWORD",
    "INSTA_PASSWORD",
)


@pytest.fixture(scope="session")
def sample_copy(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """`sample_copy(dest, count=8, seed=7)`: a real sample library (built once per session by `publisher-sample`
    for each (count, seed), then copied: its INI's paths are relative) at `dest`; returns the INI path.

    Building one takes ~0.2 s (real images, encoded); a copy takes a few ms, and every test still gets its own."""
    built: Dict[Tuple[int, int], Path] = {}

    def copy(dest: Path, count: int = 8, seed: int = 7) -> Path:
        key = (count, seed)
        if key not in built:
            template = tmp_path_factory.mktemp(f"sample-{count}-{seed}") / "library"
            made = subprocess.run(
                [str(BIN / "publisher-sample"), str(template), "--count", str(count), "--seed", str(seed)],
                capture_output=True, text=True, timeout=120,
            )
            assert made.returncode == 0, made.stderr
            built[key] = template
        shutil.copytree(built[key], dest)
        ini = dest / "publisher.ini"
        assert ini.is_file()
        return ini

    return copy


@pytest.fixture
def sample_library(tmp_path: Path, sample_copy: Callable[..., Path]) -> Path:
    """A small real library (8 images) and its INI on the embedded defaults; returns the INI path."""
    return sample_copy(tmp_path / "library")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Dict[str, str]]:
    """The process environment without secrets or telemetry switches (for subprocesses too)."""
    for name in (*SECRET_VARS, "PUBLISHER_AUTOINSTRUMENT", "PUBLISHER_TELEMETRY_MANIFEST", "AUTOINSTRUMENT",
                 "AUTOINSTRUMENT_MANIFEST", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield dict(os.environ)


def json_events(text: str) -> List[dict]:
    """Parse log output line by line: every non-empty line is one JSON event (the CLI's verdict too; see
    `tests.cli_output`, which fails on a plain-text line)."""
    from tests.cli_output import stderr_events

    return stderr_events(text)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """One throw-away PostgreSQL server for the session (skipped where none can be started)."""
    from tests.pg_server import ThrowawayPostgres, available

    reason = available()
    if reason and os.environ.get("PUBLISHER_TEST_REQUIRE_POSTGRES") == "1":  # CI: never skip silently
        pytest.fail(reason)
    if reason:
        pytest.skip(reason)
    server = ThrowawayPostgres()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_location(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """Where a test's ledger lives, once per store: a SQLite file path, or the URL of a fresh PostgreSQL
    database. `PostLedger(ledger_location)` opens either."""
    if request.param == "sqlite":
        return tmp_path / "state" / "ledger.sqlite"
    server = request.getfixturevalue("pg_server")
    return server.url(server.new_database())
