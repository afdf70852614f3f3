"""Fixtures shared by the ledger tests (`test_ledger*.py`, `test_upstream*.py`): the store a test runs on, a
SQLite file for the tests of older files, and a settable clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

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
