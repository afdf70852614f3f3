"""Fixtures and helpers shared by the ledger tests (`test_ledger*.py`, `test_upstream*.py`): the store a test runs
on, a SQLite file for the tests of older files, a settable clock, a minimal INI and the captured JSON events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest


class FakeClock:
    """A settable UTC clock so TTL tests do not sleep."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(ledger_location: object) -> object:
    """Each test runs on both stores: a SQLite file, and a fresh PostgreSQL database."""
    return ledger_location


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    """A SQLite file (the tests of SQLite itself and of older ledger files)."""
    return tmp_path / "state" / "ledger.sqlite"


def state_ini(folder: Path, state: str = "") -> Path:
    """An INI on a local library in `folder` (its `images` folder created), the ledger at `state/ledger.sqlite`,
    plus `state`: more `[State]` lines (e.g. `url = postgresql://...`)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    ini = folder / "publisher.ini"
    ini.write_text(
        f"[Storage]\nbackend = local\n[Local]\nimage_folder = images\n[State]\nledger_path = state/ledger.sqlite\n"
        f"{state}\n",
        encoding="utf-8",
    )
    return ini


def logged(caplog: pytest.LogCaptureFixture, name: Optional[str] = None) -> List[Dict[str, Any]]:
    """The JSON events caplog captured (only those named `name`, when given)."""
    found = []
    for record in caplog.records:
        try:
            event = json.loads(record.getMessage())
        except ValueError:
            continue
        if isinstance(event, dict) and (name is None or event.get("message") == name):
            found.append(event)
    return found
