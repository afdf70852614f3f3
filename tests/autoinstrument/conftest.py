"""Fixtures for the autoinstrument tests: the fixture app on sys.path, a manifest writer, a clean state."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fixture_app import applog  # noqa: E402
from telemetry_testkit import WORKFLOW_MANIFEST  # noqa: E402

import autoinstrument  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The manifest cache of this session's interpreters (and their subprocesses) in a temp folder."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    """Every test starts and ends uninstalled, with an empty event log and a working log function."""
    autoinstrument.uninstall()
    applog.clear()
    applog.FAIL = False
    yield
    autoinstrument.uninstall()
    applog.FAIL = False
    applog.clear()


@pytest.fixture
def write_manifest(tmp_path: Path) -> Callable[[str], str]:
    """Write manifest text (dedented) to a file and return its path."""
    counter = [0]

    def write(text: str) -> str:
        counter[0] += 1
        path = tmp_path / f"telemetry-{counter[0]}.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def install_workflow(write_manifest: Callable[[str], str]) -> Callable[..., str]:
    """Install the fixture workflow's manifest (plus optional extra stage lines); returns the manifest
    path."""

    def install(extra_stages: str = "") -> str:
        path = write_manifest(WORKFLOW_MANIFEST + textwrap.indent(textwrap.dedent(extra_stages), "  "))
        assert autoinstrument.install(path) is True
        return path

    return install
